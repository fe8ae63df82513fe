// `ckz report`: one line per file of a compressed history — step, link depth, size, ratio, bits
// per element by role — and, against the original checkpoints, the lossy error by role.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "ckz/checkpoint.h"
#include "ckz/json.h"
#include "cli.h"

namespace ckz::cli {
namespace {

constexpr int kRoles = 4;  // Role::kOther .. kMoment2
const char* const kRoleColumn[kRoles] = {"other", "W", "m", "v"};

// Error of the decoded values against the original, over the lossy tensors of one role.
struct ErrorStats {
  double sum_sq_err = 0, sum_sq = 0, max_abs_err = 0;
  uint64_t elements = 0;
  double RelRms() const { return sum_sq > 0 ? std::sqrt(sum_sq_err / sum_sq) : 0; }
  double RelMax() const {
    return sum_sq > 0 ? max_abs_err / std::sqrt(sum_sq / double(elements)) : 0;
  }
};

struct RoleStats {
  uint64_t elements = 0, stored = 0;  // stored: bytes of the tensors' chunks
  size_t tensors = 0, lossy = 0;
  ErrorStats error;
};

struct FileRow {
  std::string path;
  std::optional<int64_t> step;
  size_t depth = 0;
  std::string parent;  // the parent's file name as recorded, for a link
  uint64_t file_bytes = 0, raw = 0;
  RoleStats roles[kRoles];
  bool compared = false;  // errors measured against an original
  std::string note;
};

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? uint64_t(st.st_size) : 0;
}

// Compares every lossy float tensor of `reader` with the original, piece by piece as they
// decode (memory: the decode window plus the original's mapping).
Status Compare(ChainReader& reader, const InputCheckpoint& original, int threads, FileRow* row) {
  const Archive& a = reader.archive();
  std::map<std::string, const InputTensor*> by_name;
  for (const InputTensor& t : original.tensors) by_name[t.spec.name] = &t;
  std::vector<uint32_t> order;
  for (size_t t = 0; t < a.tensors.size(); ++t) order.push_back(uint32_t(t));
  size_t missing = 0;
  Status s = StreamTensors(
      reader, order, uint64_t{64} << 20, threads,
      [&](size_t i, uint64_t offset, ByteSpan bytes) -> Status {
        const TensorInfo& info = a.tensors[i];
        if (!info.quantization || !DTypeIsFloat(info.dtype) || bytes.size == 0) return Status::Ok();
        auto it = by_name.find(info.name);
        if (it == by_name.end() || it->second->spec.dtype != info.dtype ||
            it->second->data.size != info.byte_length) {
          if (offset == 0) ++missing;
          return Status::Ok();
        }
        const size_t w = DTypeSize(info.dtype);
        const uint8_t* orig = it->second->data.data + offset;
        ErrorStats& e = row->roles[size_t(info.role)].error;
        for (size_t k = 0; k < bytes.size / w; ++k) {
          const double x = FloatElement(info.dtype, orig, k);
          const double y = FloatElement(info.dtype, bytes.data, k);
          if (!std::isfinite(x) || !std::isfinite(y)) continue;
          e.sum_sq_err += (y - x) * (y - x);
          e.sum_sq += x * x;
          e.max_abs_err = std::max(e.max_abs_err, std::fabs(y - x));
          ++e.elements;
        }
        return Status::Ok();
      });
  if (!s.ok()) return s;
  row->compared = true;
  if (missing)
    row->note = std::to_string(missing) + " lossy tensors not in the original";
  return Status::Ok();
}

std::string Percent(double x) {
  char buf[32];
  snprintf(buf, sizeof buf, x < 0.0001 ? "%.2g%%" : "%.3f%%", 100 * x);
  return buf;
}

std::string Json(const FileRow& r) {
  std::string o = "{\"file\": " + JsonQuote(r.path) +
                  ", \"step\": " + (r.step ? std::to_string(*r.step) : "null") +
                  ", \"depth\": " + std::to_string(r.depth) +
                  ", \"parent\": " + (r.depth ? JsonQuote(r.parent) : "null") +
                  ", \"file_bytes\": " + std::to_string(r.file_bytes) +
                  ", \"raw_bytes\": " + std::to_string(r.raw) + ", \"ratio\": " +
                  (r.file_bytes ? Number(double(r.raw) / double(r.file_bytes)) : "null") +
                  ", \"roles\": {";
  bool first = true;
  for (int k = 0; k < kRoles; ++k) {
    const RoleStats& s = r.roles[k];
    if (s.tensors == 0) continue;
    o += std::string(first ? "" : ", ") + "\"" + RoleName(Role(k)) + "\": {\"tensors\": " +
         std::to_string(s.tensors) + ", \"lossy_tensors\": " + std::to_string(s.lossy) +
         ", \"elements\": " + std::to_string(s.elements) +
         ", \"stored_bytes\": " + std::to_string(s.stored) + ", \"bits_per_element\": " +
         (s.elements ? Number(8.0 * double(s.stored) / double(s.elements)) : "null");
    if (r.compared && s.lossy)
      o += ", \"error\": {\"elements\": " + std::to_string(s.error.elements) +
           ", \"relative_rms\": " + Number(s.error.RelRms()) +
           ", \"max_abs\": " + Number(s.error.max_abs_err) +
           ", \"max_abs_over_rms\": " + Number(s.error.RelMax()) + "}";
    o += "}";
    first = false;
  }
  o += "}";
  if (!r.note.empty()) o += ", \"note\": " + JsonQuote(r.note);
  return o + "}";
}

}  // namespace

int PrintChainReport(const std::vector<std::string>& inputs, const ReportOptions& options,
                     const ChainOptions& chain) {
  // A folder stands for its .ckz files, in natural name order.
  std::vector<std::string> paths;
  for (const std::string& in : inputs) {
    struct stat st;
    if (stat(in.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      std::vector<std::string> names;
      if (DIR* d = opendir(in.c_str())) {
        while (const dirent* e = readdir(d)) {
          const std::string n = e->d_name;
          if (n.size() > 4 && n.compare(n.size() - 4, 4, ".ckz") == 0 && n[0] != '.')
            names.push_back(n);
        }
        closedir(d);
      }
      std::sort(names.begin(), names.end(), NaturalLess);
      for (const std::string& n : names) paths.push_back(in + "/" + n);
      if (names.empty()) {
        fprintf(stderr, "ckz: %s: no .ckz files\n", in.c_str());
        return kExitIo;
      }
    } else {
      paths.push_back(in);
    }
  }
  std::vector<FileRow> rows(paths.size());
  std::vector<bool> ok(paths.size(), false);
  int exit_code = kExitOk;
  ForEachInChainOrder(
      paths, chain,
      [&](size_t i, ChainReader& reader, bool) -> Status {
        const Archive& a = reader.archive();
        FileRow& r = rows[i];
        r.path = paths[i];
        r.step = a.step;
        r.depth = reader.depth();
        if (a.link) r.parent = a.link->path_hint;
        r.file_bytes = FileSize(paths[i]);
        r.raw = a.TotalRawBytes();
        for (const TensorInfo& t : a.tensors) {
          RoleStats& s = r.roles[size_t(t.role)];
          ++s.tensors;
          s.lossy += t.quantization.has_value();
          s.elements += t.num_elements;
          s.stored += t.stored_length;
        }
        if (!options.against.empty()) {
          std::string name = BaseName(paths[i]);
          name = name.substr(0, name.size() - 4);  // without .ckz
          const std::string original = options.against + "/" + name;
          auto input = LoadCheckpoint(original);
          if (!input.ok()) {
            r.note = "no original: " + ErrorText(input.status());
          } else if (Status s = Compare(reader, *input, options.threads, &r); !s.ok()) {
            return s;
          }
        }
        ok[i] = true;
        return Status::Ok();
      },
      [&](size_t i, const Status& s) {
        fprintf(stderr, "ckz: %s: %s\n", paths[i].c_str(), ErrorText(s).c_str());
        if (exit_code == kExitOk) exit_code = ExitCodeFor(s);
        return true;
      });

  if (options.json) {
    printf("[");
    bool first = true;
    for (size_t i = 0; i < rows.size(); ++i) {
      if (!ok[i]) continue;
      printf("%s\n  %s", first ? "" : ",", Json(rows[i]).c_str());
      first = false;
    }
    printf("\n]\n");
    return exit_code;
  }
  // Which role columns have data anywhere.
  bool any_role[kRoles] = {}, any_error = false;
  for (size_t i = 0; i < rows.size(); ++i)
    for (int k = 0; k < kRoles; ++k) {
      any_role[k] |= ok[i] && rows[i].roles[k].tensors > 0;
      any_error |= ok[i] && rows[i].compared && rows[i].roles[k].lossy > 0;
    }
  printf("%-28s %8s %5s %10s %10s %8s", "file", "step", "depth", "stored", "raw", "ratio");
  for (int k = 1; k <= kRoles; ++k)
    if (any_role[k % kRoles]) printf(" %7s", (std::string("b/el ") + kRoleColumn[k % kRoles]).c_str());
  if (any_error)
    for (int k = 1; k < kRoles; ++k) printf(" %9s", (std::string("err ") + kRoleColumn[k]).c_str());
  printf("\n");
  uint64_t total_file = 0, total_raw = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!ok[i]) continue;
    const FileRow& r = rows[i];
    total_file += r.file_bytes;
    total_raw += r.raw;
    printf("%-28s %8s %5zu %10s %10s %8s", BaseName(r.path).c_str(),
           r.step ? std::to_string(*r.step).c_str() : "-", r.depth, HumanBytes(r.file_bytes).c_str(),
           HumanBytes(r.raw).c_str(), Ratio(r.raw, r.file_bytes).c_str());
    for (int k = 1; k <= kRoles; ++k) {
      const RoleStats& s = r.roles[k % kRoles];
      if (!any_role[k % kRoles]) continue;
      if (s.elements)
        printf(" %7.3f", 8.0 * double(s.stored) / double(s.elements));
      else
        printf(" %7s", "-");
    }
    if (any_error)
      for (int k = 1; k < kRoles; ++k)
        printf(" %9s", r.compared && r.roles[k].lossy ? Percent(r.roles[k].error.RelRms()).c_str() : "-");
    if (!r.note.empty()) printf("  (%s)", r.note.c_str());
    printf("\n");
  }
  printf("%-28s %8s %5s %10s %10s %8s\n", "total", "", "", HumanBytes(total_file).c_str(),
         HumanBytes(total_raw).c_str(), Ratio(total_raw, total_file).c_str());
  if (any_error)
    printf("err: RMS of (decoded - original) over RMS of the original, lossy tensors of the role\n");
  return exit_code;
}

}  // namespace ckz::cli
