#include "cli.h"

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <cstdlib>
#include <cstring>

namespace ckz::cli {

const char kExitCodeHelp[] =
    "Exit codes:\n"
    "  0  success\n"
    "  1  bad command line\n"
    "  2  invalid or corrupt input (format, checksum or content-id failure; a damaged\n"
    "     .pt, .safetensors or .ckz)\n"
    "  3  I/O error (cannot read or write; output exists without -f)\n"
    "  4  parent checkpoint missing or different from the one a link names\n"
    "  5  unsupported input: a valid file of a kind, dtype, version or size this build does\n"
    "     not handle (e.g. a legacy pre-1.6 .pt, a complex dtype)\n"
    "Errors are printed as 'NAME: message'; NAME is the error code of spec section 11.\n";

ExitCode ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case ErrorCode::kOk: return kExitOk;
    case ErrorCode::kInvalidArgument: return kExitUsage;
    case ErrorCode::kIoError: return kExitIo;
    case ErrorCode::kReferenceRequired:
    case ErrorCode::kParentNotFound:
    case ErrorCode::kWrongParent:
    case ErrorCode::kReferenceMismatch:
    case ErrorCode::kBadChain: return kExitChain;
    case ErrorCode::kUnsupported:
    case ErrorCode::kUnsupportedVersion:
    case ErrorCode::kUnknownRequiredFeature:
    case ErrorCode::kUnsupportedDtype:
    case ErrorCode::kUnsupportedInput:
    case ErrorCode::kTorchLegacyFormat:
    case ErrorCode::kPickleGlobalNotAllowed:
    case ErrorCode::kLimitExceeded: return kExitUnsupported;
    default: return kExitInvalid;
  }
}

std::string ErrorText(const Status& status) {
  return std::string(ErrorCodeName(status.code())) + ": " + status.message();
}

void LineBufferStdout() {
  if (!isatty(STDOUT_FILENO)) setvbuf(stdout, nullptr, _IOLBF, 0);
}

Args::Args(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) args_.emplace_back(argv[i]);
  used_.assign(args_.size(), false);
}

bool Args::Flag(std::initializer_list<const char*> names) {
  bool found = false;
  for (size_t i = 0; i < args_.size(); ++i) {
    if (args_[i] == "--") break;
    for (const char* n : names)
      if (!used_[i] && args_[i] == n) used_[i] = found = true;
  }
  return found;
}

std::optional<std::string> Args::Value(std::initializer_list<const char*> names) {
  std::vector<std::string> all = Values(names);
  if (all.empty()) return std::nullopt;
  return all.back();  // the last one wins, as in zstd and xz
}

std::vector<std::string> Args::Values(std::initializer_list<const char*> names) {
  std::vector<std::string> values;
  for (size_t i = 0; i < args_.size(); ++i) {
    if (args_[i] == "--") break;
    if (used_[i]) continue;
    for (const char* n : names) {
      const std::string name = n;
      const std::string& a = args_[i];
      if (a == name) {
        used_[i] = true;
        if (i + 1 >= args_.size()) {
          error_ = "option " + name + " needs a value";
          return values;
        }
        used_[++i] = true;
        values.push_back(args_[i]);
      } else if (name.size() > 2 && a.compare(0, name.size() + 1, name + "=") == 0) {
        used_[i] = true;
        values.push_back(a.substr(name.size() + 1));
      } else if (name.size() == 2 && a.size() > 2 && a.compare(0, 2, name) == 0 && a[1] != '-') {
        used_[i] = true;  // -T4, -oout.ckz
        values.push_back(a.substr(2));
      }
    }
  }
  return values;
}

std::vector<std::string> Args::Positionals() {
  std::vector<std::string> out;
  bool only_positionals = false;
  for (size_t i = 0; i < args_.size(); ++i) {
    if (used_[i]) continue;
    if (!only_positionals && args_[i] == "--") {
      only_positionals = true;
      continue;
    }
    if (!only_positionals && args_[i].size() > 1 && args_[i][0] == '-') {
      if (error_.empty()) error_ = "unknown option " + args_[i];
      continue;
    }
    out.push_back(args_[i]);
  }
  return out;
}

bool ParseUint(const std::string& text, uint64_t* out) {
  if (text.empty() || text.size() > 19) return false;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + uint64_t(c - '0');
  }
  *out = v;
  return true;
}

bool ParsePositive(const std::string& text, double* out) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(v > 0) || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

std::string HumanBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KB", "MB", "GB", "TB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1000 && u < 4) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", v, kUnits[u]);
  return buf;
}

std::string WithCommas(uint64_t n) {
  std::string s = std::to_string(n);
  for (int i = int(s.size()) - 3; i > 0; i -= 3) s.insert(size_t(i), ",");
  return s;
}

std::string Number(double d) {
  std::ostringstream o;
  o.precision(9);
  o << d;
  return o.str();
}

std::string Ratio(uint64_t raw, uint64_t stored) {
  if (stored == 0) return "-";
  char buf[32];
  snprintf(buf, sizeof buf, "%.2fx", double(raw) / double(stored));
  return buf;
}

Progress::Progress(std::string label, uint64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled && isatty(STDERR_FILENO)) {
  start_ = last_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { Finish(); }

void Progress::Update(uint64_t done) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double fraction = total_ ? std::min(1.0, double(done) / double(total_)) : 1.0;
  constexpr int kWidth = 30;
  const int filled = int(fraction * kWidth);
  std::string bar(size_t(filled), '=');
  if (filled < kWidth) bar += '>' + std::string(size_t(kWidth - filled - 1), ' ');
  fprintf(stderr, "\r%-28.28s [%s] %3.0f%% %s/s ", label_.c_str(), bar.c_str(), fraction * 100,
          HumanBytes(seconds > 0 ? uint64_t(double(done) / seconds) : 0).c_str());
  fflush(stderr);
  drawn_ = true;
}

void Progress::Finish() {
  if (drawn_) fprintf(stderr, "\r%80s\r", "");
  drawn_ = false;
}

// "step_20" < "step_100": digit runs compare by value.
bool NaturalLess(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (isdigit(uint8_t(a[i])) && isdigit(uint8_t(b[j]))) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && a[i2] == '0') ++i2;
      while (j2 < b.size() && b[j2] == '0') ++j2;
      size_t ie = i2, je = j2;
      while (ie < a.size() && isdigit(uint8_t(a[ie]))) ++ie;
      while (je < b.size() && isdigit(uint8_t(b[je]))) ++je;
      if (ie - i2 != je - j2) return ie - i2 < je - j2;
      const int c = a.compare(i2, ie - i2, b, j2, je - j2);
      if (c != 0) return c < 0;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

std::string BaseName(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace ckz::cli
