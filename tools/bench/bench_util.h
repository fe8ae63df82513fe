// Small helpers of ckz_bench: natural sort, machine description, timing, tables, JSON text.
#ifndef CKZ_TOOLS_BENCH_BENCH_UTIL_H_
#define CKZ_TOOLS_BENCH_BENCH_UTIL_H_

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "cli.h"

namespace ckz::bench {

// "step_20" < "step_100": runs of digits compare by value, the rest byte by byte.
bool NaturalLess(const std::string& a, const std::string& b);

// The regular files directly inside `dir` whose names end with `suffix`, in natural order.
// Returns false (and sets *error) when the folder cannot be listed.
bool ListFiles(const std::string& dir, const std::string& suffix, std::vector<std::string>* out,
               std::string* error);

std::string CpuModel();       // "model name" of /proc/cpuinfo, or "unknown"
int CoreCount();              // logical CPUs this process may run on
std::string LocalDateTime();  // "2025-11-23 18:30:00 UTC"
uint64_t PeakRssBytes();      // getrusage(RUSAGE_SELF).ru_maxrss

// Runs `f` `repeat` times and returns the fastest wall time in seconds (steady_clock).
template <typename F>
double BestOf(int repeat, F&& f) {
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < repeat; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  return best;
}

std::string Format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
using cli::HumanBytes;  // decimal units: "12.35 MB"

// A table printed either with aligned columns or as a GitHub markdown table.
class Table {
 public:
  explicit Table(std::vector<std::string> header, std::vector<bool> right_aligned = {});
  void AddRow(std::vector<std::string> cells);
  std::string Render(bool markdown) const;

 private:
  std::vector<std::string> header_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

// JSON string literal (quotes included) and a number that is always valid JSON.
std::string JsonString(const std::string& s);
std::string JsonNumber(double v);

}  // namespace ckz::bench

#endif  // CKZ_TOOLS_BENCH_BENCH_UTIL_H_
