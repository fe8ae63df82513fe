// Shared pieces of the command-line tools: argument scanning, exit codes, progress display,
// number formatting and the `info` report. Built only on the public library API.
#ifndef CKZ_TOOLS_CLI_CLI_H_
#define CKZ_TOOLS_CLI_CLI_H_

#include <chrono>
#include <functional>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ckz/archive.h"
#include "ckz/io.h"
#include "ckz/status.h"

namespace ckz::cli {

// Exit codes, documented in --help of every tool.
enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 1,        // bad command line
  kExitInvalid = 2,      // input is not a valid CKZ file, or fails its checksums / content id
  kExitIo = 3,           // cannot read or write a file (or it exists and -f was not given)
  kExitChain = 4,        // parent checkpoint missing or different
  kExitUnsupported = 5,  // input kind, dtype or feature not supported
};
ExitCode ExitCodeFor(const Status& status);
extern const char kExitCodeHelp[];
// How the tools print an error: "IoError: x.pt: cannot open: No such file or directory" (the
// code's name, never its number, which is not the exit code).
std::string ErrorText(const Status& status);
// Standard output line-buffered when it is not a terminal, so a log or a pipe sees each
// summary line as soon as it is printed (and all of them before an interruption).
void LineBufferStdout();

// Scans argv: options (with values as "-o X", "-oX", "--out X" or "--out=X") and positionals.
class Args {
 public:
  Args(int argc, char** argv, int first);
  // True if `flag` (any of its spellings) was given; removes it.
  bool Flag(std::initializer_list<const char*> names);
  // The value of an option, removed; nullopt if absent. Sets error() if the value is missing.
  std::optional<std::string> Value(std::initializer_list<const char*> names);
  // Every value of a repeatable option, in order, removed.
  std::vector<std::string> Values(std::initializer_list<const char*> names);
  // Everything not consumed. Sets error() for unknown options (anything starting with '-').
  std::vector<std::string> Positionals();
  const std::string& error() const { return error_; }

 private:
  std::vector<std::string> args_;
  std::vector<bool> used_;
  std::string error_;
};

bool ParseUint(const std::string& text, uint64_t* out);

bool ParsePositive(const std::string& text, double* out);  // a finite number > 0
// "1.23 MB" style (decimal units, like zstd).
std::string HumanBytes(uint64_t bytes);
std::string WithCommas(uint64_t n);
std::string Ratio(uint64_t raw, uint64_t stored);  // "12.34x"
std::string Number(double d);                      // shortest text, up to 9 digits
// The last component of a path ("a/b.pt/" -> "b.pt").
std::string BaseName(std::string path);
// "step_20" < "step_100": digit runs compare by value (the order of a history's members).
bool NaturalLess(const std::string& a, const std::string& b);

// A one-line progress bar on stderr, only when stderr is a terminal and not quiet.
class Progress {
 public:
  Progress(std::string label, uint64_t total, bool enabled);
  ~Progress();
  void Update(uint64_t done);
  void Finish();

 private:
  std::string label_;
  uint64_t total_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

// Visits `paths` (the .ckz files to read) so that each link comes right after its parent when
// both are given, and decodes each file once: a link whose parent was just decoded is decoded
// against what that gave (kept in a DecodedReference), not through its chain again. `visit`
// gets the input's index, its open chain and whether its parent came from the previous file.
// An input that fails to open or to visit is reported by `failed`; the walk stops when it
// returns false.
void ForEachInChainOrder(const std::vector<std::string>& paths, const ChainOptions& chain,
                         const std::function<Status(size_t, ChainReader&, bool)>& visit,
                         const std::function<bool(size_t, const Status&)>& failed);

struct ReportOptions {
  bool json = false;
  std::string against;  // folder of the original checkpoints: measure the lossy error
  int threads = 1;
};
// `ckz report`: a line per file, in the order given (a folder stands for its .ckz files in
// natural name order; files are decoded in chain order), errors on stderr; returns the exit
// code of the first failure.
int PrintChainReport(const std::vector<std::string>& inputs, const ReportOptions& options,
                     const ChainOptions& chain);

struct InfoOptions {
  bool json = false;    // one JSON object per file; several files: one JSON array of them
  bool jsonl = false;   // one JSON object per file, each on one line (JSON Lines)
  bool chunks = false;  // list every chunk and stream
};
// Prints the report of `ckzinfo` for one file to stdout.
Status PrintInfo(const std::string& path, const InfoOptions& options);
// The report of `ckzinfo` for every file, in order, errors on stderr prefixed with `tool`;
// returns the exit code (of the first failure). A failed file is left out of a JSON array.
int PrintInfoFiles(const std::vector<std::string>& paths, const InfoOptions& options,
                   const char* tool);
// How tensor `t` of `a` is coded, as ckzinfo shows it ("excp residual 4b/15c k=0.0992 cmx1").
// With `pages` (a's file mapping), the pages its chunk directories were read from are given back.
std::string TensorCodingText(const Archive& a, size_t t, const MappedFile* pages = nullptr);

}  // namespace ckz::cli

#endif  // CKZ_TOOLS_CLI_CLI_H_
