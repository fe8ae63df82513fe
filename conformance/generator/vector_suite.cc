// Definitions for vector_suite.h.
#include "vector_suite.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "ckz/archive.h"
#include "ckz/checkpoint.h"
#include "ckz/decoder.h"
#include "ckz/io.h"
#include "ckz/types.h"
#include "common/sha256.h"

namespace ckz::vectors {
namespace {

constexpr uint64_t kMaxSuiteBytes = 2u << 20;   // the whole suite
constexpr uint64_t kMaxCaseBytes = 48u << 10;   // one case folder

std::string Sha256Hex(const Bytes& b) {
  const auto d = Sha256::Hash(b.data(), b.size());
  return Hex(d.data(), d.size());
}

std::string JsonStr(const std::string& s) {
  std::string o = "\"";
  for (char ch : s) {
    const uint8_t c = uint8_t(ch);
    if (c == '"') o += "\\\"";
    else if (c == '\\') o += "\\\\";
    else if (c == '\n') o += "\\n";
    else if (c == '\t') o += "\\t";
    else if (c < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else {
      o.push_back(ch);
    }
  }
  return o + "\"";
}

void WriteFile(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  Check(bool(f), "cannot write " + path.string());
}
Bytes ReadFile(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  Check(bool(f), "cannot read " + path.string());
  return Bytes(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Every non-directory entry under `dir`, relative, '/'-separated, sorted.
std::map<std::string, Bytes> ListFiles(const fs::path& dir) {
  std::map<std::string, Bytes> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (!e.is_directory()) out[fs::relative(e.path(), dir).generic_string()] = ReadFile(e.path());
  return out;
}

// Features seen in a valid file: dtypes, shapes, codecs, planes, predictors, chain depth,
// source files. Hand-given features are added to these.
std::set<std::string> FileFeatures(const Bytes& file) {
  std::set<std::string> f;
  Archive a = Must(ParseArchive(ByteSpan(file)), "FileFeatures");
  for (size_t t = 0; t < a.tensors.size(); ++t) {
    const TensorInfo& ti = a.tensors[t];
    f.insert(std::string("dtype:") + DTypeName(ti.dtype));
    if (ti.shape.empty()) f.insert("shape:0-d");
    if (ti.byte_length == 0) f.insert("shape:empty");
    if (ti.chunks.size() > 1) f.insert("chunks:many");
    if (ti.byte_length > 0) f.insert(ti.byte_planes ? "byte-planes:on" : "byte-planes:off");
    if (ti.byte_length > 0) f.insert(std::string("predictor:") + PredictorName(ti.predictor));
    if (ti.role != Role::kOther) f.insert(std::string("role:") + RoleName(ti.role));
    if (ti.owner != -1) f.insert("owner");
    for (size_t c = 0; c < ti.chunks.size(); ++c)
      for (const StreamInfo& s : Must(ReadStreamDirectory(a, t, c), "stream directory"))
        f.insert(std::string("codec:") + StreamCodecName(s.codec));
  }
  if (a.link) f.insert("chain:depth-" + std::to_string(a.link->depth));
  if (!a.metadata.empty()) f.insert("metadata");
  if (a.step) f.insert("step");
  if (a.files.size() > 1) f.insert("files:many");
  for (const SourceFileInfo& s : a.files) {
    f.insert(std::string("source:") + SourceFormatName(s.format));
    if (s.path.find('/') != std::string::npos) f.insert("source:nested-path");
    if (s.prolog_codec != PrologCodec::kStored)
      f.insert(std::string("prolog:") + PrologCodecName(s.prolog_codec));
  }
  return f;
}

}  // namespace

Suite::Suite(fs::path root) : root_(std::move(root)) {
  scratch_ = fs::temp_directory_path() / ("ckz_make_vectors_" + std::to_string(getpid()));
  fs::remove_all(scratch_);
  fs::remove_all(root_ / "cases");
  fs::remove(root_ / "manifest.json");
}

Suite::~Suite() { fs::remove_all(scratch_); }

void Suite::Add(Case c) {
  Check(names_.insert(c.name).second, "case name used twice: " + c.name);
  for (char ch : c.name)
    Check((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-',
          "case name must be [a-z0-9-]: " + c.name);
  Check(c.profile == "core" || c.profile == "full", c.name + ": profile");
  Check(!c.files.empty() && c.files[0].first == "input.ckz", c.name + ": input.ckz first");
  Check(c.error.has_value() == c.expected.empty(), c.name + ": valid xor invalid");
  const fs::path dir = root_ / "cases" / c.name;
  for (const auto& [name, bytes] : c.files) WriteFile(dir / name, bytes);

  std::set<std::string> features;
  if (c.error) {
    Check(!c.rule.empty(), c.name + ": an invalid case names its rule");
    features.insert("rule:" + c.rule);
    CheckInvalid(c, dir);
  } else {
    features = FileFeatures(c.files[0].second);
    bool chain = features.count("predictor:xor") + features.count("predictor:sub") > 0;
    for (const std::string& f : features) chain = chain || f.rfind("chain:", 0) == 0;
    Check(c.profile == "full" || !chain, c.name + ": a core case has no chain");
    CheckValid(c, dir);
    for (const auto& [path, bytes] : c.expected) WriteFile(dir / "expected" / path, bytes);
  }
  features.insert(c.features.begin(), c.features.end());
  c.features.assign(features.begin(), features.end());
  WriteFile(dir / "case.json", Str(Entry(c, "") + "\n"));
  entries_.push_back(Entry(c, "    "));
  uint64_t size = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) size += e.file_size();
  Check(size <= kMaxCaseBytes, c.name + ": case is " + std::to_string(size) + " bytes");
  total_ += size;
  ++counts_[c.profile + " " + (c.error ? "invalid" : "valid")];
}

void Suite::Finish() {
  std::string m = "{\n";
  m += "  \"format\": \"CKZ\",\n";
  m += "  \"format_version\": \"" + std::to_string(kFormatMajor) + "." +
       std::to_string(kFormatMinor) + "\",\n";
  m += "  \"spec\": \"spec/ckz.md\",\n";
  m += "  \"generator\": \"conformance/make_vectors.cc\",\n";
  m += "  \"profiles\": {\n";
  m += "    \"core\": " + JsonStr("container, stored and zstd streams, byte planes, zstd-coded prologs; keyframes only") + ",\n";
  m += "    \"full\": " + JsonStr("everything in format 0.6: core plus reference chains, predictors, quantized tensors, cm index streams, prologs coded against the parent's, cmf-coded float values and coded headers") + "\n";
  m += "  },\n";
  m += "  \"cases\": [\n";
  for (size_t i = 0; i < entries_.size(); ++i)
    m += entries_[i] + (i + 1 < entries_.size() ? ",\n" : "\n");
  m += "  ]\n}\n";
  WriteFile(root_ / "manifest.json", Str(m));
  total_ += m.size();
  Check(total_ <= kMaxSuiteBytes, "suite is " + std::to_string(total_) + " bytes");
  printf("make_vectors: %zu cases (", entries_.size());
  bool first = true;
  for (const auto& [k, n] : counts_) {
    printf("%s%s %d", first ? "" : ", ", k.c_str(), n);
    first = false;
  }
  printf("), %llu bytes, in %s\n", static_cast<unsigned long long>(total_),
         (root_ / "cases").string().c_str());
}

// Decodes the case like a user would: the input file in the case folder, its parents found
// beside it, every source file written under an empty folder.
Status Suite::Decode(const fs::path& dir, const fs::path& out, VerifyReport* report) {
  fs::remove_all(out);
  fs::create_directories(out);
  auto reader = ChainReader::Open((dir / "input.ckz").string());
  if (!reader.ok()) return reader.status();
  CKZ_RETURN_IF_ERROR(RestoreFilesInto(**reader, out.string(), "input.safetensors", {}));
  auto r = VerifyChain(**reader);
  if (!r.ok()) return r.status();
  if (report) *report = *r;
  return Status::Ok();
}

void Suite::CheckValid(const Case& c, const fs::path& dir) {
  const fs::path out = scratch_ / c.name;
  VerifyReport report;
  MustOk(Decode(dir, out, &report), c.name + ": the reference decoder rejects a valid case");
  const auto got = ListFiles(out);
  Check(got == c.expected,
        c.name + ": decoded files differ from the checkpoint files the case was made from");
  for (const auto& [name, bytes] : c.files)
    if (name != "input.ckz" && name.size() > 4 && name.substr(name.size() - 4) == ".ckz")
      Must(ParseArchive(ByteSpan(bytes)), c.name + ": " + name + " is not valid");
  fs::remove_all(out);
}

void Suite::CheckInvalid(const Case& c, const fs::path& dir) {
  const fs::path out = scratch_ / c.name;
  const Status s = Decode(dir, out, nullptr);
  Check(!s.ok(), c.name + ": the reference decoder accepts an invalid case");
  Check(s.code() == *c.error, c.name + ": expected " + ErrorCodeName(*c.error) + ", got " +
                                  s.ToString());
  Check(ListFiles(out).empty(), c.name + ": a rejected file left output behind");
  fs::remove_all(out);
}

std::string Suite::Entry(const Case& c, const std::string& ind) const {
  auto list = [](const std::vector<std::pair<std::string, const Bytes*>>& files,
                 const std::string& in) {
    std::string s = "[\n";
    for (size_t i = 0; i < files.size(); ++i)
      s += in + "    {\"path\": " + JsonStr(files[i].first) +
           ", \"size\": " + std::to_string(files[i].second->size()) + ", \"sha256\": \"" +
           Sha256Hex(*files[i].second) + "\"}" + (i + 1 < files.size() ? ",\n" : "\n");
    return s + in + "  ]";
  };
  std::string e = ind + "{\n";
  e += ind + "  \"name\": " + JsonStr(c.name) + ",\n";
  e += ind + "  \"profile\": " + JsonStr(c.profile) + ",\n";
  e += ind + "  \"kind\": " + JsonStr(c.error ? "invalid" : "valid") + ",\n";
  e += ind + "  \"description\": " + JsonStr(c.description) + ",\n";
  e += ind + "  \"features\": [";
  for (size_t i = 0; i < c.features.size(); ++i)
    e += (i ? ", " : "") + JsonStr(c.features[i]);
  e += "],\n";
  e += ind + "  \"input\": \"input.ckz\",\n";
  std::vector<std::pair<std::string, const Bytes*>> files;
  for (const auto& [name, bytes] : c.files) files.push_back({name, &bytes});
  e += ind + "  \"files\": " + list(files, ind) + ",\n";
  if (c.error) {
    e += ind + "  \"expected_error\": " + JsonStr(ErrorCodeName(*c.error)) + ",\n";
    e += ind + "  \"expected_error_code\": " + std::to_string(unsigned(*c.error)) + ",\n";
    e += ind + "  \"rule\": " + JsonStr(c.rule) + "\n";
  } else {
    std::vector<std::pair<std::string, const Bytes*>> exp;
    for (const auto& [path, bytes] : c.expected) exp.push_back({path, &bytes});
    e += ind + "  \"expected\": " + list(exp, ind) + "\n";
  }
  return e + ind + "}";
}

Case Valid(const std::string& name, const std::string& profile, const std::string& description,
           const Ckpt& ckpt, const Bytes& input, std::vector<std::string> features) {
  Case c;
  c.name = name;
  c.profile = profile;
  c.description = description;
  c.features = std::move(features);
  c.files.push_back({"input.ckz", input});
  c.expected = BuildSources(ckpt).outputs;
  return c;
}

Case Invalid(const std::string& name, const std::string& profile, const std::string& rule,
             ErrorCode error, const std::string& description, const Bytes& input,
             std::vector<std::string> features) {
  Case c;
  c.name = name;
  c.profile = profile;
  c.rule = rule;
  c.error = error;
  c.description = description;
  c.features = std::move(features);
  c.files.push_back({"input.ckz", input});
  return c;
}

Case ChainInvalid(const std::string& name, const std::string& rule, ErrorCode error,
                  const std::string& description, const Bytes& input, const Bytes& parent,
                  std::vector<std::string> features) {
  Case c = Invalid(name, "full", rule, error, description, input, std::move(features));
  c.files.push_back({"parent-1.ckz", parent});
  return c;
}


Case ChainCase(const std::string& name, const std::string& description,
               const std::vector<Level>& levels, std::vector<std::string> features) {
  const auto names = ChainNames(levels.size());
  const auto files = WriteChain(levels, names);
  Case c = Valid(name, "full", description, levels.back().ckpt, files.back().bytes,
                 std::move(features));
  for (size_t i = levels.size() - 1; i-- > 0;) c.files.push_back({names[i], files[i].bytes});
  return c;
}

}  // namespace ckz::vectors
