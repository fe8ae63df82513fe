// ckzinfo: what a .ckz file holds and how it is coded (header and stream directories only).
#include <cstdio>

#include "cli.h"

int main(int argc, char** argv) {
  using namespace ckz::cli;
  LineBufferStdout();
  Args args(argc, argv, 1);
  if (args.Flag({"-h", "--help"})) {
    printf(
        "ckzinfo - describe CKZ files\n\n"
        "Usage: ckzinfo FILE.ckz... [--json | --jsonl] [--chunks]\n\n"
        "  --json     machine-readable output: one JSON object for one file, a JSON array\n"
        "             of them for several\n"
        "  --jsonl    one JSON object per file, each on its own line (JSON Lines)\n"
        "  --chunks   list every chunk with its offset, sizes, CRC-32C and streams\n\n"
        "Reads the header and chunk directories only: no decoding, no parent files needed.\n"
        "Use 'ckz verify' to check the data itself.\n\n%s",
        kExitCodeHelp);
    return kExitOk;
  }
  InfoOptions options;
  options.json = args.Flag({"--json"});
  options.jsonl = args.Flag({"--jsonl"});
  options.chunks = args.Flag({"--chunks"});
  const std::vector<std::string> files = args.Positionals();
  if (!args.error().empty() || files.empty()) {
    fprintf(stderr, "ckzinfo: %s\nUsage: ckzinfo FILE.ckz... [--json | --jsonl] [--chunks]\n",
            args.error().empty() ? "no input file" : args.error().c_str());
    return kExitUsage;
  }
  return PrintInfoFiles(files, options, "ckzinfo");
}
