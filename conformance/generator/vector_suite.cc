// Definitions for vector_suite.h.
#include "vector_suite.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "ckz/archive.h"
#include "ckz/checkpoint.h"
#include "ckz/decoder.h"
#include "ckz/io.h"
#include "ckz/types.h"
#include "common/rule_switch.h"
#include "common/sha256.h"

namespace ckz::vectors {
namespace {

constexpr uint64_t kMaxSuiteBytes = 5u << 19;   // the whole suite (2.5 MiB)
constexpr uint64_t kMaxCaseBytes = 48u << 10;   // one case folder

// The rules (labels of conformance/README.md) that report each error code, from spec section 9
// and the rules of sections 7, 8.4 and 10 that it names.
const std::map<ErrorCode, std::set<std::string>>& RulesReporting() {
  using E = ErrorCode;
  static const std::map<ErrorCode, std::set<std::string>> rules = {
      {E::kBadMagic, {"P1"}},
      {E::kTextModeCorruption, {"P1"}},
      {E::kTruncated, {"P2"}},
      {E::kUnsupportedVersion, {"P3"}},
      {E::kPreambleChecksum, {"P4"}},
      {E::kUnknownRequiredFeature, {"P5"}},
      {E::kHeaderTooLarge, {"P6", "P9", "H8"}},
      {E::kHeaderOutOfBounds, {"P7"}},
      {E::kMisaligned, {"P8", "T8"}},
      {E::kHeaderChecksum, {"H1"}},
      {E::kHeaderMalformed, {"H2", "H3", "H8"}},
      {E::kFieldOutOfRange, {"H4", "H6", "T2", "T5", "T6", "T11", "T12", "Q1", "Q2", "Q3", "Q4", "Q5", "Q6",
                             "Q8", "Q9", "Q10", "Q11", "Q12", "F2", "F3", "F4", "F5", "F6", "F8", "F9",
                             "F11", "M2", "LM1", "LM2", "LM3", "LM4"}},
      {E::kBadName, {"H6", "H7", "T1", "F1", "M1", "M3"}},
      {E::kBadLink, {"H5", "H6", "T7", "Q7", "F10", "LM2"}},
      {E::kShapeOverflow, {"T3"}},
      {E::kLimitExceeded, {"T4", "F9"}},
      {E::kChunkLayout, {"T8", "T9"}},
      {E::kNonzeroPadding, {"T8", "F6", "L3"}},
      {E::kRangeOutOfFile, {"T8"}},
      {E::kDuplicateName, {"T10", "F7", "M4"}},
      {E::kBadOwner, {"O1"}},
      {E::kRangeOverlap, {"L1"}},
      {E::kUnexplainedBytes, {"L2", "L4"}},
      {E::kChunkMalformed, {"C1"}},
      {E::kChunkDecodeFailed, {"C2"}},
      {E::kChunkChecksum, {"C5"}},
      {E::kCodebookIndex, {"C6"}},
      {E::kPrologDecodeFailed, {"C7"}},
      {E::kParentNotFound, {"R1"}},
      {E::kWrongParent, {"R1"}},
      {E::kBadChain, {"R2"}},
      {E::kReferenceMismatch, {"R3", "R4", "R5"}},
  };
  return rules;
}

// What a decoder does with the case's input, short of writing files: open it with its chain
// (parents found beside it, prologs decoded) and decode every tensor.
Status DecodeTensors(const fs::path& dir) {
  auto reader = ChainReader::Open((dir / "input.ckz").string());
  if (!reader.ok()) return reader.status();
  std::vector<uint32_t> order((*reader)->archive().tensors.size());
  for (uint32_t t = 0; t < order.size(); ++t) order[t] = t;
  return StreamTensors(**reader, order, uint64_t{64} << 20, 1,
                       [](size_t, uint64_t, ByteSpan) { return Status::Ok(); });
}

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
  Check(c.error.has_value() == (c.expected.empty() && !c.output_reader_defined),
        c.name + ": valid xor invalid");
  Check(!c.output_reader_defined || c.expected.empty(), c.name + ": reader-defined output");
  const fs::path dir = root_ / "cases" / c.name;
  for (const auto& [name, bytes] : c.files) WriteFile(dir / name, bytes);

  std::set<std::string> features;
  if (c.error) {
    Check(!c.rule.empty(), c.name + ": an invalid case names its rule");
    features.insert("rule:" + c.rule);
    rules_.insert(c.rule);
    CheckInvalid(c, dir);
    CheckRule(c, dir);
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
  // Every rule has a case (which CheckRule shows it rejects), except the reader's own limits:
  // they depend on how a decoder is configured.
  for (const auto& [error, rules] : RulesReporting())
    for (const std::string& rule : rules)
      Check(rules_.count(rule) || rule == "P9" || rule == "T4",
            "no invalid case for rule " + rule + " (" + ErrorCodeName(error) + ")");
  std::string m = "{\n";
  m += "  \"format\": \"CKZ\",\n";
  m += "  \"format_version\": \"" + std::to_string(kFormatMajor) + "." +
       std::to_string(kFormatMinor) + "\",\n";
  m += "  \"spec\": \"spec/ckz.md\",\n";
  m += "  \"generator\": \"conformance/make_vectors.cc\",\n";
  m += "  \"profiles\": {\n";
  m += "    \"core\": " + JsonStr("container, stored and zstd streams, byte planes, zstd-coded prologs; keyframes only") + ",\n";
  m += "    \"full\": " + JsonStr("everything in format 0.11: core plus reference chains, predictors, quantized tensors, cm index streams, prologs coded against the parent's, cmf-coded float values, coded headers, level tensors, the KeySplit predictor (section 7.10), the LSTM level model (section 7.11) with its lstm-cm index codec (section 7.11.7), and moment contexts (section 7.9.3)") + "\n";
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
  printf("make_vectors: each invalid case is rejected by the rule it names:");
  first = true;
  for (const auto& [how, n] : rule_checks_) {
    printf("%s %d %s", first ? "" : ";", n, how.c_str());
    first = false;
  }
  printf("\n");
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
  if (c.output_reader_defined) {
    // The reference writes a bare tensor set as one safetensors file (spec 8).
    const Archive a = Must(ParseArchive(ByteSpan(c.files[0].second)), c.name);
    Check(a.files.empty() && got.size() == 1, c.name + ": a bare tensor set gives one file");
  } else {
    Check(got == c.expected,
          c.name + ": decoded files differ from the checkpoint files the case was made from");
  }
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

// Shows that the rule the case names rejects it: by its error code when no other rule reports
// that error, else by decoding it again with the rule switched off (common/rule_switch.h), when
// it must be accepted or fail with the later error the case declares. A rule without a switch
// (its checks guard memory, or there is nothing to decode without them) needs the case to say
// why instead.
void Suite::CheckRule(const Case& c, const fs::path& dir) {
  const auto reporting = RulesReporting().find(*c.error);
  Check(reporting != RulesReporting().end() && reporting->second.count(c.rule),
        c.name + ": rule " + c.rule + " does not report " + ErrorCodeName(*c.error));
  if (!c.by_construction.empty()) {
    Check(!c.error_without_rule, c.name + ": by construction or by a switch, not both");
    ++rule_checks_["by construction"];
    return;
  }
  if (reporting->second.size() == 1) {
    Check(!c.error_without_rule, c.name + ": " + ErrorCodeName(*c.error) + " is " + c.rule +
                                     "'s alone; nothing is decoded without it");
    ++rule_checks_["by the error code, reported by this rule alone"];
    return;
  }
  const auto& switchable = SwitchableRules();
  Check(std::find(switchable.begin(), switchable.end(), c.rule) != switchable.end(),
        c.name + ": rule " + c.rule + " cannot be switched off and " + ErrorCodeName(*c.error) +
            " is not its alone: say why the case is rejected by it (ByConstruction)");
  SwitchRuleOff(c.rule);
  const Status s = DecodeTensors(dir);
  SwitchRuleOff("");
  const std::string without = c.name + ": with rule " + c.rule + " off, the reference ";
  if (c.error_without_rule) {
    Check(*c.error_without_rule != *c.error, c.name + ": the error without the rule is its own");
    Check(!s.ok() && s.code() == *c.error_without_rule,
          without + "should fail with " + ErrorCodeName(*c.error_without_rule) + ", got " +
              s.ToString());
    ++rule_checks_["with the rule off: a later error, as declared"];
  } else {
    Check(s.ok(), without + "still rejects it: " + s.ToString());
    ++rule_checks_["with the rule off: accepted"];
  }
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
  } else if (c.output_reader_defined) {
    e += ind + "  \"expected_output\": \"reader-defined\"\n";
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
