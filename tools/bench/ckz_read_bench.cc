// ckz_read_bench: how fast checkpoint files are read (issue 3's ">= 500 MB/s for .pt").
//
//   ckz_read_bench [--repeat N] FILE...
//
// For each file (a .pt, a .safetensors, or anything LoadCheckpoint takes): the time of
// LoadCheckpoint (mapping, zip + pickle or JSON header parsing, role mapping) and of that
// plus copying every tensor's bytes out of the mapping into memory, best of N runs, as MB/s of
// the file's size. The file is read once before timing, so this is the page-cache speed of
// our parser, not of the disk. Public API of libckz only.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "ckz/checkpoint.h"

namespace {

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

int main(int argc, char** argv) {
  int repeat = 5;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--repeat") && i + 1 < argc) {
      repeat = std::max(1, std::atoi(argv[++i]));
    } else if (argv[i][0] == '-') {
      std::fprintf(stderr, "usage: ckz_read_bench [--repeat N] FILE...\n");
      return 1;
    } else {
      files.push_back(argv[i]);
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "usage: ckz_read_bench [--repeat N] FILE...\n");
    return 1;
  }
  std::printf("%-40s %12s %8s %14s %14s\n", "file", "bytes", "tensors", "parse MB/s",
              "parse+copy MB/s");
  for (const std::string& path : files) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
      std::fprintf(stderr, "%s: cannot stat\n", path.c_str());
      return 3;
    }
    const double mb = double(st.st_size) / 1e6;
    double parse = 1e30, copy = 1e30;
    size_t tensors = 0;
    std::vector<uint8_t> sink;
    for (int r = 0; r <= repeat; ++r) {  // run 0 warms the page cache
      const auto t0 = std::chrono::steady_clock::now();
      ckz::Result<ckz::InputCheckpoint> c = ckz::LoadCheckpoint(path);
      const auto t1 = std::chrono::steady_clock::now();
      if (!c.ok()) {
        std::fprintf(stderr, "%s: %s\n", path.c_str(), c.status().ToString().c_str());
        return 2;
      }
      uint64_t total = 0;
      for (const ckz::InputTensor& t : c->tensors) total += t.data.size;
      sink.resize(total);
      uint64_t at = 0;
      for (const ckz::InputTensor& t : c->tensors) {
        if (t.data.size) std::memcpy(sink.data() + at, t.data.data, t.data.size);
        at += t.data.size;
      }
      const auto t2 = std::chrono::steady_clock::now();
      tensors = c->tensors.size();
      if (r > 0) {
        parse = std::min(parse, Seconds(t1 - t0));
        copy = std::min(copy, Seconds(t2 - t0));
      }
    }
    std::printf("%-40s %12lld %8zu %14.0f %14.0f\n", path.c_str(),
                static_cast<long long>(st.st_size), tensors, mb / parse, mb / copy);
  }
  return 0;
}
