// ckz_bench: ratio, speed and memory of CKZ's lossless modes next to baselines measured in the
// same run, on the same checkpoints.
//
//   ckz_bench [options] HISTORY_FOLDER      every *.safetensors in it, in natural order
//   ckz_bench [options] FILE...             these checkpoints, in the order given
//
// Rows: zstd -19 and xz -9 of each whole file, byte-shuffle + zstd -19 per tensor (ZipNN
// style), ckz keyframe (every checkpoint self-contained), ckz lossless delta (checkpoint k a
// link predicted from checkpoint k-1, the first a keyframe) and the same without the cmf float
// model (byte planes and zstd only). Everything is loaded into memory
// first; each encode and decode is timed alone (best of --repeat runs, steady_clock) and every
// decode is checked bit-exact against the input. Uses only the public API of libckz.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "baselines.h"
#include "bench_util.h"
#include "ckz/archive.h"
#include "ckz/checkpoint.h"
#include "ckz/decoder.h"
#include "ckz/writer.h"

namespace ckz::bench {
namespace {

constexpr int kExitUsage = 1;
constexpr int kExitInput = 2;
constexpr int kExitFailure = 3;  // a codec failed or a decode was not bit-exact

const char kUsage[] =
    "usage: ckz_bench [options] HISTORY_FOLDER\n"
    "       ckz_bench [options] CHECKPOINT...\n"
    "\n"
    "Measures ratio, encode/decode speed and peak memory of CKZ's lossless modes next to\n"
    "zstd -19, xz -9 and byte-shuffle + zstd -19, all in the same run on the same data.\n"
    "A folder is read as a history: its *.safetensors files in natural order (step_20 before\n"
    "step_100). Checkpoints named one by one (safetensors files, shard indexes or checkpoint\n"
    "folders) are taken in the order given.\n"
    "\n"
    "options:\n"
    "  --repeat N            best of N runs of each encode and decode (default 3)\n"
    "  --threads N, -T N     threads for the multi-threaded ckz columns (default: all cores)\n"
    "  --level N             zstd level inside ckz (default: the library's default)\n"
    "  --max-checkpoints N   only the first N checkpoints\n"
    "  --json FILE           also write the results as JSON\n"
    "  --markdown            print the tables as markdown\n"
    "  --per-checkpoint      also print the ratio of every checkpoint\n"
    "  --skip-baselines      only the ckz rows (for profiling our codec; no comparisons)\n"
    "  --lossy               also the lossy chains (the default levels, and ExCP + cm), checked\n"
    "                        against the reconstruction its encoder reports\n"
    "  -h, --help            this help\n"
    "\n"
    "Exit codes: 0 success, 1 bad command line, 2 unreadable input, 3 a codec failed or a\n"
    "decode was not bit-exact.\n";

[[noreturn]] void Die(int code, const std::string& message) {
  std::fflush(stdout);
  std::fprintf(stderr, "ckz_bench: %s%s\n", code == kExitFailure ? "FAILURE: " : "",
               message.c_str());
  std::exit(code);
}

struct Options {
  int repeat = 3;
  int threads = 0;  // 0: all cores
  int level = EncodeOptions{}.zstd_level;
  bool level_given = false;
  size_t max_checkpoints = 0;  // 0: all
  std::string json_path;
  bool markdown = false;
  bool per_checkpoint = false;
  bool skip_baselines = false;
  bool lossy = false;
  std::vector<std::string> inputs;
};

bool ParseInt(const std::string& text, long min, long max, long* out) {
  if (text.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max) return false;
  *out = v;
  return true;
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  bool only_positionals = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (only_positionals || a.size() < 2 || a[0] != '-') {
      o.inputs.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positionals = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (a == "--markdown") {
      o.markdown = true;
      continue;
    }
    if (a == "--per-checkpoint") {
      o.per_checkpoint = true;
      continue;
    }
    if (a == "--skip-baselines") {
      o.skip_baselines = true;
      continue;
    }
    if (a == "--lossy") {
      o.lossy = true;
      continue;
    }
    // Options with a value: "--x V", "--x=V", "-T4".
    std::string name = a, value;
    bool has_value = false;
    const size_t eq = a.find('=');
    if (a.compare(0, 2, "--") == 0 && eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    } else if (a.compare(0, 2, "-T") == 0 && a.size() > 2) {
      name = "-T";
      value = a.substr(2);
      has_value = true;
    }
    static const char* kWithValue[] = {"--repeat", "--threads",         "-T",
                                       "--level",  "--max-checkpoints", "--json"};
    bool known = false;
    for (const char* k : kWithValue) known |= name == k;
    if (!known) Die(kExitUsage, "unknown option " + a + " (see --help)");
    if (!has_value) {
      if (i + 1 >= argc) Die(kExitUsage, "option " + name + " needs a value");
      value = argv[++i];
    }
    long v = 0;
    if (name == "--json") {
      if (value.empty()) Die(kExitUsage, "--json needs a file name");
      o.json_path = value;
    } else if (name == "--repeat") {
      if (!ParseInt(value, 1, 1000, &v)) Die(kExitUsage, "--repeat wants 1..1000, got " + value);
      o.repeat = int(v);
    } else if (name == "--threads" || name == "-T") {
      if (!ParseInt(value, 0, 4096, &v))
        Die(kExitUsage, name + " wants 0..4096 (0: all cores), got " + value);
      o.threads = int(v);
    } else if (name == "--level") {
      if (!ParseInt(value, -131072, 22, &v))
        Die(kExitUsage, "--level wants a zstd level, got " + value);
      o.level = int(v);
      o.level_given = true;
    } else if (name == "--max-checkpoints") {
      if (!ParseInt(value, 1, 1000000, &v))
        Die(kExitUsage, "--max-checkpoints wants a positive number, got " + value);
      o.max_checkpoints = size_t(v);
    }
  }
  if (o.inputs.empty()) Die(kExitUsage, std::string("no input given\n") + kUsage);
  if (o.threads == 0) o.threads = CoreCount();
  return o;
}

// ---------------------------------------------------------------------------------------------
// Input: every checkpoint loaded and copied into memory before anything is timed.

struct Checkpoint {
  std::string path;
  std::string label;                        // file or folder name
  InputCheckpoint input;                    // tensor spans point into `files`
  std::vector<std::vector<uint8_t>> files;  // owned copies of the source files
  uint64_t tensor_bytes = 0;
  uint64_t file_bytes = 0;
};

std::unique_ptr<Checkpoint> Load(const std::string& path) {
  Result<InputCheckpoint> loaded = LoadCheckpoint(path);
  if (!loaded.ok()) Die(kExitInput, loaded.status().ToString());
  auto c = std::make_unique<Checkpoint>();
  c->path = path;
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  c->label = std::filesystem::path(trimmed).filename().string();
  c->input = std::move(loaded).value();
  // Own the bytes: a mapped file would fault its pages in during the first timed run.
  for (const MappedFile& m : c->input.mappings) {
    c->files.emplace_back(m.bytes().begin(), m.bytes().end());
    c->file_bytes += m.bytes().size;
  }
  for (InputTensor& t : c->input.tensors) {
    bool moved = false;
    for (size_t j = 0; j < c->input.mappings.size() && !moved; ++j) {
      const ByteSpan m = c->input.mappings[j].bytes();
      if (t.data.data >= m.data && t.data.data + t.data.size <= m.data + m.size) {
        t.data = ByteSpan(c->files[j].data() + (t.data.data - m.data), t.data.size);
        moved = true;
      }
    }
    if (!moved && t.data.size != 0)
      Die(kExitInput, path + ": tensor '" + t.spec.name + "' is outside the files it came from");
    c->tensor_bytes += t.data.size;
  }
  c->input.mappings.clear();
  return c;
}

std::vector<std::unique_ptr<Checkpoint>> LoadAll(const Options& o, std::string* described) {
  std::vector<std::string> paths;
  std::error_code ec;
  if (o.inputs.size() == 1 && std::filesystem::is_directory(o.inputs[0], ec)) {
    std::string error;
    if (!ListFiles(o.inputs[0], ".safetensors", &paths, &error)) Die(kExitInput, error);
    if (paths.empty()) paths.push_back(o.inputs[0]);  // e.g. a folder with a shard index
    *described = o.inputs[0];
  } else {
    paths = o.inputs;
    *described = o.inputs.size() == 1 ? o.inputs[0] : std::to_string(o.inputs.size()) + " files";
  }
  if (o.max_checkpoints && paths.size() > o.max_checkpoints) paths.resize(o.max_checkpoints);
  std::vector<std::unique_ptr<Checkpoint>> out;
  for (const std::string& p : paths) out.push_back(Load(p));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Methods. A method turns checkpoint k into a blob (a list of byte buffers) and back into
// either the checkpoint's files (whole-file baselines) or its tensors (the others).

using Buffers = std::vector<std::vector<uint8_t>>;
using History = std::vector<std::unique_ptr<Checkpoint>>;

class Method {
 public:
  Method(std::string name, const History& history) : name_(std::move(name)), h_(history) {}
  virtual ~Method() = default;
  const std::string& name() const { return name_; }
  virtual bool multithreaded() const { return false; }
  virtual bool whole_files() const { return false; }
  virtual void Encode(size_t k, int threads, Buffers* blob) = 0;
  // `out` arrives sized like the expected output; `prev` is the previous checkpoint's decoded
  // output (nullptr for the first).
  virtual void Decode(size_t k, const Buffers& blob, int threads, const Buffers* prev,
                      Buffers* out) = 0;
  // Stored bytes of each tensor of checkpoint k (payload only), or empty if not per tensor.
  virtual std::vector<uint64_t> TensorStored(size_t /*k*/, const Buffers& /*blob*/) { return {}; }
  // What decoding checkpoint k must give, byte for byte: its files or tensors, or (a lossy
  // method) what its encoder says every decoder reconstructs. Valid after Encode(k).
  virtual std::vector<ByteSpan> Expected(size_t k) const;

 protected:
  const Checkpoint& ck(size_t k) const { return *h_[k]; }
  std::string name_;
  const History& h_;
};

std::vector<ByteSpan> Method::Expected(size_t k) const {
  std::vector<ByteSpan> out;
  if (whole_files())
    for (const auto& f : ck(k).files) out.emplace_back(f);
  else
    for (const InputTensor& t : ck(k).input.tensors) out.push_back(t.data);
  return out;
}

class WholeFileZstd final : public Method {
 public:
  explicit WholeFileZstd(const History& h) : Method("zstd -19 (whole file)", h) {}
  bool whole_files() const override { return true; }
  void Encode(size_t k, int, Buffers* blob) override {
    const auto& files = ck(k).files;
    blob->resize(files.size());
    std::string error;
    for (size_t j = 0; j < files.size(); ++j)
      if (!zstd_.Compress(ByteSpan(files[j]), 19, &(*blob)[j], &error)) Die(kExitFailure, error);
  }
  void Decode(size_t, const Buffers& blob, int, const Buffers*, Buffers* out) override {
    std::string error;
    for (size_t j = 0; j < blob.size(); ++j)
      if (!zstd_.Decompress(ByteSpan(blob[j]), MutableByteSpan((*out)[j]), &error))
        Die(kExitFailure, name_ + ": " + error);
  }

 private:
  Zstd zstd_;
};

class WholeFileXz final : public Method {
 public:
  explicit WholeFileXz(const History& h) : Method("xz -9 (whole file)", h) {}
  bool whole_files() const override { return true; }
  void Encode(size_t k, int, Buffers* blob) override {
    const auto& files = ck(k).files;
    blob->resize(files.size());
    std::string error;
    for (size_t j = 0; j < files.size(); ++j)
      if (!XzCompress(ByteSpan(files[j]), 9, &(*blob)[j], &error)) Die(kExitFailure, error);
  }
  void Decode(size_t, const Buffers& blob, int, const Buffers*, Buffers* out) override {
    std::string error;
    for (size_t j = 0; j < blob.size(); ++j)
      if (!XzDecompress(ByteSpan(blob[j]), MutableByteSpan((*out)[j]), &error))
        Die(kExitFailure, name_ + ": " + error);
  }
};

class ShuffleZstd final : public Method {
 public:
  explicit ShuffleZstd(const History& h) : Method("byte-shuffle + zstd -19", h) {
    size_t largest = 0;
    for (const auto& c : h)
      for (const InputTensor& t : c->input.tensors) largest = std::max(largest, t.data.size);
    scratch_.resize(largest);  // allocated (and touched) before any timing
  }
  void Encode(size_t k, int, Buffers* blob) override {
    const auto& tensors = ck(k).input.tensors;
    blob->resize(tensors.size());
    std::string error;
    for (size_t i = 0; i < tensors.size(); ++i) {
      const InputTensor& t = tensors[i];
      ShuffleBytes(t.data.data, t.data.size, DTypeSize(t.spec.dtype), scratch_.data());
      if (!zstd_.Compress(ByteSpan(scratch_.data(), t.data.size), 19, &(*blob)[i], &error))
        Die(kExitFailure, error);
    }
  }
  void Decode(size_t k, const Buffers& blob, int, const Buffers*, Buffers* out) override {
    const auto& tensors = ck(k).input.tensors;
    std::string error;
    for (size_t i = 0; i < blob.size(); ++i) {
      std::vector<uint8_t>& o = (*out)[i];
      if (!zstd_.Decompress(ByteSpan(blob[i]), MutableByteSpan(scratch_.data(), o.size()), &error))
        Die(kExitFailure, name_ + ": tensor '" + tensors[i].spec.name + "': " + error);
      UnshuffleBytes(scratch_.data(), o.size(), DTypeSize(tensors[i].spec.dtype), o.data());
    }
  }
  std::vector<uint64_t> TensorStored(size_t, const Buffers& blob) override {
    std::vector<uint64_t> out;
    for (const auto& b : blob) out.push_back(b.size());
    return out;
  }

 private:
  Zstd zstd_;
  std::vector<uint8_t> scratch_;
};

// The previous checkpoint's decoded tensors, found by name: the reference of a link.
class DecodedReference final : public ReferenceSource {
 public:
  DecodedReference(const InputCheckpoint& specs, const Buffers& decoded)
      : specs_(specs), decoded_(decoded) {
    for (size_t i = 0; i < specs.tensors.size(); ++i) index_.emplace(specs.tensors[i].spec.name, i);
  }
  Status ReadReference(const TensorInfo& tensor, uint64_t offset, MutableByteSpan out) override {
    auto it = index_.find(tensor.name);
    if (it == index_.end())
      return Status(ErrorCode::kReferenceMismatch, "reference has no tensor '" + tensor.name + "'");
    const TensorSpec& s = specs_.tensors[it->second].spec;
    const std::vector<uint8_t>& bytes = decoded_[it->second];
    if (s.dtype != tensor.dtype || s.shape != tensor.shape)
      return Status(ErrorCode::kReferenceMismatch,
                    "reference tensor '" + tensor.name + "' has another dtype or shape");
    if (offset > bytes.size() || out.size > bytes.size() - offset)
      return Status(ErrorCode::kInvalidArgument, "reference range outside the tensor");
    std::memcpy(out.data, bytes.data() + offset, out.size);
    return Status::Ok();
  }

 private:
  const InputCheckpoint& specs_;
  const Buffers& decoded_;
  std::map<std::string, size_t> index_;
};

// Decodes every tensor of `a` into `out` the way the library restores a checkpoint: all
// chunks of all tensors share the `threads` workers (DecodeTensorRanges).
Status DecodeAll(const Archive& a, ReferenceSource* reference, IndexCache* cache, int threads,
                 Buffers* out) {
  std::vector<TensorRange> ranges;
  for (size_t i = 0; i < a.tensors.size(); ++i)
    ranges.push_back({i, 0, MutableByteSpan((*out)[i])});
  DecodeOptions options;
  options.threads = threads;
  options.index_cache = cache;
  return DecodeTensorRanges(a, ranges, reference, options);
}

// Our three modes. Keyframes: every checkpoint alone. Lossless delta: one chain, each link
// predicted from its parent, decoded against the previous decode's output. Lossy (the default of
// `ckz compress` for a history): links shrunk the ExCP way against the decoded parent (closed
// loop) with cm-coded indices; a link decodes against what the encoder says decoders
// reconstruct of its parent (values and indices), as a chain reader does once it has decoded
// the parent, and must give the encoder's reconstruction bit for bit.
// kLosslessCmf is the lossless delta with the cmf float model (spec 7.8) where it codes a
// sample of a tensor smaller (`ckz compress --lossless --entropy cm`).
// kLosslessPlanes is the lossless delta without the KeySplit predictor of 16-bit floats (spec
// 7.10, on by default since 0.8): the 0.7 coding, the baseline KeySplit is measured against.
// kLossy is the default of `ckz compress` for links since 0.7 (rate-distortion levels, spec
// 7.9); kLossyExcp is `--excp` (ExCP shrinking + cm).
enum class CkzMode { kKeyframe, kLosslessDelta, kLosslessCmf, kLosslessPlanes, kLossy, kLossyExcp };

class CkzMethod final : public Method {
 public:
  CkzMethod(const History& h, CkzMode mode, int level)
      : Method(mode == CkzMode::kKeyframe        ? "ckz keyframe"
               : mode == CkzMode::kLosslessDelta ? "ckz lossless delta"
               : mode == CkzMode::kLosslessCmf   ? "ckz lossless delta + cmf"
               : mode == CkzMode::kLosslessPlanes ? "ckz lossless delta, no KeySplit (0.7)"
               : mode == CkzMode::kLossy         ? "ckz lossy chain (levels, default)"
                                                 : "ckz lossy chain (ExCP + cm, --excp)",
               h),
        mode_(mode), level_(level), ids_(h.size()), refs_(h.size()), expected_(h.size()) {
    if (mode_ == CkzMode::kLosslessDelta || mode_ == CkzMode::kLosslessCmf ||
        mode_ == CkzMode::kLosslessPlanes)
      for (size_t k = 0; k < h.size(); ++k) {
        // Lossless: a checkpoint's decoded tensors are its input tensors.
        refs_[k] = std::make_unique<DecodedCheckpoint>();
        for (const InputTensor& t : h[k]->input.tensors) refs_[k]->AddView(t.spec, t.data);
      }
  }
  bool multithreaded() const override { return true; }
  bool lossy() const { return mode_ == CkzMode::kLossy || mode_ == CkzMode::kLossyExcp; }

  void Encode(size_t k, int threads, Buffers* blob) override {
    auto sink = std::make_unique<MemorySink>();
    MemorySink* memory = sink.get();
    EncodeOptions options;
    options.threads = threads;
    options.zstd_level = level_;
    if (mode_ == CkzMode::kLosslessCmf) options.float_codec.reset();  // cmf where it wins
    if (mode_ == CkzMode::kLosslessPlanes) options.key_split = false;
    Writer writer(std::move(sink), options);
    ReferenceSource* reference = nullptr;
    WriteOptions write;
    if (mode_ != CkzMode::kKeyframe && k > 0) {
      LinkInfo link;
      link.parent_content_id = ids_[k - 1];
      link.parent_step = ck(k - 1).input.step;
      link.path_hint = std::filesystem::path(ck(k - 1).label).stem().string() + ".ckz";
      link.depth = uint32_t(k);  // a chain from the first checkpoint (the keyframe, depth 0)
      writer.SetLink(link);
      reference = refs_[k - 1].get();
      if (mode_ == CkzMode::kLossy) write.rd = RdOptions{};
      if (mode_ == CkzMode::kLossyExcp) write.excp = ExcpOptions{};
    }
    std::unique_ptr<DecodedCheckpoint> decoded;
    if (lossy()) decoded = std::make_unique<DecodedCheckpoint>();
    Status s = WriteCheckpoint(ck(k).input, reference, &writer, write, decoded.get());
    if (!s.ok()) Die(kExitFailure, name_ + ": " + ck(k).path + ": " + s.ToString());
    Result<ContentId> id = writer.Finish();
    if (!id.ok()) Die(kExitFailure, name_ + ": " + ck(k).path + ": " + id.status().ToString());
    ids_[k] = *id;
    blob->resize(1);
    (*blob)[0] = std::move(memory->bytes());
    if (!decoded) return;
    // What decoders must get: the reconstruction, read back tensor by tensor.
    Buffers& e = expected_[k];
    e.clear();
    for (const InputTensor& t : ck(k).input.tensors) {
      TensorInfo info;
      info.name = t.spec.name;
      info.dtype = t.spec.dtype;
      info.shape = t.spec.shape;
      e.emplace_back(t.data.size);
      s = decoded->ReadReference(info, 0, MutableByteSpan(e.back()));
      if (!s.ok()) Die(kExitFailure, name_ + ": " + ck(k).path + ": " + s.ToString());
    }
    refs_[k] = std::move(decoded);
  }

  std::vector<ByteSpan> Expected(size_t k) const override {
    if (!lossy()) return Method::Expected(k);
    std::vector<ByteSpan> out;
    for (const auto& b : expected_[k]) out.emplace_back(b);
    return out;
  }

  void Decode(size_t k, const Buffers& blob, int threads, const Buffers* prev,
              Buffers* out) override {
    Result<Archive> archive = ParseArchive(ByteSpan(blob[0]));
    if (!archive.ok())
      Die(kExitFailure, name_ + ": " + ck(k).path + ": " + archive.status().ToString());
    const Archive& a = *archive;
    if (a.tensors.size() != out->size())
      Die(kExitFailure, name_ + ": " + ck(k).path + ": " + std::to_string(a.tensors.size()) +
                            " tensors decoded, " + std::to_string(out->size()) + " expected");
    for (size_t i = 0; i < a.tensors.size(); ++i)
      if (a.tensors[i].byte_length != (*out)[i].size())
        Die(kExitFailure, name_ + ": tensor '" + a.tensors[i].name + "' has " +
                              std::to_string(a.tensors[i].byte_length) + " bytes, expected " +
                              std::to_string((*out)[i].size()));
    std::optional<DecodedReference> previous;
    ReferenceSource* reference = nullptr;
    if (a.link) {
      if (k == 0 || prev == nullptr) Die(kExitFailure, name_ + ": first checkpoint is a link");
      if (a.link->parent_content_id != ids_[k - 1])
        Die(kExitFailure, name_ + ": " + ck(k).path + ": link names parent " +
                              ContentIdHex(a.link->parent_content_id) + ", expected " +
                              ContentIdHex(ids_[k - 1]));
      // Lossy links need the parent's indices too (cm contexts): the encoder's reconstruction.
      if (lossy()) {
        reference = refs_[k - 1].get();
      } else {
        previous.emplace(ck(k - 1).input, *prev);
        reference = &*previous;
      }
    }
    IndexCache cache;  // the link's own aux indices (a v chunk reads m's and W's)
    Status s = DecodeAll(a, reference, &cache, threads, out);
    if (!s.ok()) Die(kExitFailure, name_ + ": " + ck(k).path + ": " + s.ToString());
  }

  std::vector<uint64_t> TensorStored(size_t k, const Buffers& blob) override {
    Result<Archive> archive = ParseArchive(ByteSpan(blob[0]));
    if (!archive.ok())
      Die(kExitFailure, name_ + ": " + ck(k).path + ": " + archive.status().ToString());
    std::vector<uint64_t> out;
    for (const TensorInfo& t : archive->tensors) out.push_back(t.stored_length);
    return out;
  }

 private:
  CkzMode mode_;
  int level_;
  std::vector<ContentId> ids_;
  // refs_[k]: what decoders reconstruct of checkpoint k, the reference of link k + 1 (lossless
  // delta: the inputs; lossy: filled by Encode).
  std::vector<std::unique_ptr<DecodedCheckpoint>> refs_;
  std::vector<Buffers> expected_;  // lossy: refs_[k]'s bytes, what Decode(k) must give
};

// ---------------------------------------------------------------------------------------------
// Running a method over the history.

struct PassTimes {
  double encode_s = 0, decode_s = 0;
};

struct RowResult {
  std::string name;
  bool multithreaded = false;
  uint64_t raw = 0, stored = 0;
  std::vector<uint64_t> raw_per_ckpt, stored_per_ckpt;
  std::vector<std::vector<uint64_t>> tensor_stored;  // [checkpoint][tensor], may be empty
  PassTimes single, multi;
  bool has_multi = false;
};


void CheckBitExact(const Method& m, const Checkpoint& c, const std::vector<ByteSpan>& expected,
                   const Buffers& decoded, int threads) {
  for (size_t i = 0; i < expected.size(); ++i) {
    const ByteSpan e = expected[i];
    const std::vector<uint8_t>& d = decoded[i];
    if (d.size() == e.size && (e.size == 0 || std::memcmp(d.data(), e.data, e.size) == 0)) continue;
    size_t at = 0;
    while (at < std::min(d.size(), e.size) && d[at] == e.data[at]) ++at;
    const std::string what = m.whole_files() ? "file #" + std::to_string(i)
                                             : "tensor '" + c.input.tensors[i].spec.name + "'";
    Die(kExitFailure, m.name() + " (" + std::to_string(threads) + " thread(s)): " + c.path + ": " +
                          what + " NOT BIT-EXACT: first difference at byte " + std::to_string(at) +
                          " (decoded " + std::to_string(d.size()) + " bytes, expected " +
                          std::to_string(e.size) + ")");
  }
}

RowResult Run(Method& m, const History& h, const Options& o) {
  RowResult r;
  r.name = m.name();
  r.multithreaded = m.multithreaded();
  std::vector<int> passes = {1};
  if (m.multithreaded() && o.threads > 1) passes.push_back(o.threads);
  std::vector<Buffers> single_blobs;
  for (int threads : passes) {
    const auto start = std::chrono::steady_clock::now();
    PassTimes& times = threads == 1 ? r.single : r.multi;
    std::vector<Buffers> blobs(h.size());
    for (size_t k = 0; k < h.size(); ++k) {
      Buffers& blob = blobs[k];
      times.encode_s += BestOf(o.repeat, [&] {
        blob.clear();
        m.Encode(k, threads, &blob);
      });
      if (threads != 1 && blob != single_blobs[k])
        Die(kExitFailure, m.name() + ": " + h[k]->path + ": output with " +
                              std::to_string(threads) +
                              " threads differs from the single-threaded output");
    }
    Buffers prev, out;
    for (size_t k = 0; k < h.size(); ++k) {
      const std::vector<ByteSpan> expected = m.Expected(k);
      out.resize(expected.size());
      for (size_t i = 0; i < expected.size(); ++i) out[i].resize(expected[i].size);
      times.decode_s +=
          BestOf(o.repeat, [&] { m.Decode(k, blobs[k], threads, k ? &prev : nullptr, &out); });
      CheckBitExact(m, *h[k], expected, out, threads);
      std::swap(prev, out);
    }
    if (threads == 1) {
      for (size_t k = 0; k < h.size(); ++k) {
        uint64_t stored = 0;
        for (const auto& b : blobs[k]) stored += b.size();
        r.raw_per_ckpt.push_back(h[k]->tensor_bytes);
        r.stored_per_ckpt.push_back(stored);
        r.raw += h[k]->tensor_bytes;
        r.stored += stored;
        r.tensor_stored.push_back(m.TensorStored(k, blobs[k]));
      }
      if (passes.size() > 1) single_blobs = std::move(blobs);
    } else {
      r.has_multi = true;
    }
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "ckz_bench: %-26s %2d thread(s): %.1f s\n", m.name().c_str(), threads, s);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Reporting.

std::string RatioText(uint64_t raw, uint64_t stored) {
  return stored ? Format("%.3fx", double(raw) / double(stored)) : "-";
}

std::string Speed(uint64_t raw, double seconds) {
  return seconds > 0 ? Format("%.1f", double(raw) / 1e6 / seconds) : "-";
}

double SpeedValue(uint64_t raw, double seconds) {
  return seconds > 0 ? double(raw) / 1e6 / seconds : 0;
}

struct RoleStats {
  uint64_t raw = 0;
  size_t tensors = 0;
  std::map<std::string, uint64_t> stored;  // by row name
};

constexpr Role kRoles[] = {Role::kWeight, Role::kMoment1, Role::kMoment2, Role::kOther};

int Main(int argc, char** argv) {
  const Options o = ParseOptions(argc, argv);
  std::string described;
  const History h = LoadAll(o, &described);
  uint64_t tensor_bytes = 0, file_bytes = 0;
  size_t tensor_count = 0;
  for (const auto& c : h) {
    tensor_bytes += c->tensor_bytes;
    file_bytes += c->file_bytes;
    tensor_count += c->input.tensors.size();
  }
  if (tensor_bytes == 0) Die(kExitInput, "the checkpoints hold no tensor bytes");

  std::vector<std::unique_ptr<Method>> methods;
  if (!o.skip_baselines) {
    methods.push_back(std::make_unique<WholeFileZstd>(h));
    methods.push_back(std::make_unique<WholeFileXz>(h));
    methods.push_back(std::make_unique<ShuffleZstd>(h));
  }
  methods.push_back(std::make_unique<CkzMethod>(h, CkzMode::kKeyframe, o.level));
  methods.push_back(std::make_unique<CkzMethod>(h, CkzMode::kLosslessDelta, o.level));
  methods.push_back(std::make_unique<CkzMethod>(h, CkzMode::kLosslessCmf, o.level));
  methods.push_back(std::make_unique<CkzMethod>(h, CkzMode::kLosslessPlanes, o.level));
  if (o.lossy) {
    methods.push_back(std::make_unique<CkzMethod>(h, CkzMode::kLossy, o.level));
    methods.push_back(std::make_unique<CkzMethod>(h, CkzMode::kLossyExcp, o.level));
  }
  std::vector<RowResult> rows;
  for (auto& m : methods) rows.push_back(Run(*m, h, o));

  // Without the baselines, the comparisons below are made against an empty row (and say so).
  RowResult no_shuffle;
  no_shuffle.name = "byte-shuffle + zstd -19";
  no_shuffle.raw_per_ckpt = rows.back().raw_per_ckpt;
  no_shuffle.stored_per_ckpt.assign(h.size(), 0);
  no_shuffle.tensor_stored.assign(h.size(), {});
  const RowResult& shuffle = o.skip_baselines ? no_shuffle : rows[2];
  const size_t lossless_rows = rows.size() - (o.lossy ? 2 : 0);  // the lossy rows come last
  const RowResult& keyframe = rows[lossless_rows - 4];
  const RowResult& delta = rows[lossless_rows - 3];
  const RowResult& delta_cmf = rows[lossless_rows - 2];
  const RowResult& delta_planes = rows[lossless_rows - 1];

  // Header.
  const std::string date = LocalDateTime(), cpu = CpuModel();
  const int cores = CoreCount();
  std::string names;
  if (h.size() <= 4) {
    for (size_t k = 0; k < h.size(); ++k) names += (k ? ", " : "") + h[k]->label;
  } else {
    names = h.front()->label + ", " + h[1]->label + " ... " + h.back()->label;
  }
  const std::string level_text =
      Format("ckz zstd level %d%s", o.level, o.level_given ? "" : " (default)");
  const char* md = o.markdown ? "**" : "";
  std::printf("%sckz_bench%s %s | CPU: %s | %d cores\n\n", md, md, date.c_str(), cpu.c_str(),
              cores);
  std::printf(
      "Input: %s: %zu checkpoints (%s), %zu tensors, %s of tensors (%s bytes), "
      "%s of files\n\n",
      described.c_str(), h.size(), names.c_str(), tensor_count, HumanBytes(tensor_bytes).c_str(),
      std::to_string(tensor_bytes).c_str(), HumanBytes(file_bytes).c_str());
  std::printf(
      "Best of %d runs; MB/s = 10^6 raw tensor bytes per second; ratio = raw tensor "
      "bytes / stored bytes; %s; -T%d = %d threads.\n\n",
      o.repeat, level_text.c_str(), o.threads, o.threads);

  // Main table.
  const std::string mt = Format("-T%d", o.threads);
  Table table({"Method", "Ratio", "Stored", "Enc MB/s 1T", "Dec MB/s 1T", "Enc MB/s " + mt,
               "Dec MB/s " + mt},
              {false, true, true, true, true, true, true});
  for (const RowResult& r : rows) {
    table.AddRow({r.name, RatioText(r.raw, r.stored), HumanBytes(r.stored),
                  Speed(r.raw, r.single.encode_s), Speed(r.raw, r.single.decode_s),
                  r.has_multi ? Speed(r.raw, r.multi.encode_s) : "-",
                  r.has_multi ? Speed(r.raw, r.multi.decode_s) : "-"});
  }
  std::fputs(table.Render(o.markdown).c_str(), stdout);

  // Delta details: links only (every checkpoint but the first keyframe).
  const size_t first_link = h.size() > 1 ? 1 : 0;
  auto sum_from = [&](const std::vector<uint64_t>& v) {
    uint64_t s = 0;
    for (size_t k = first_link; k < v.size(); ++k) s += v[k];
    return s;
  };
  const uint64_t links_raw = sum_from(delta.raw_per_ckpt);
  const uint64_t links_delta = sum_from(delta.stored_per_ckpt);
  const uint64_t links_shuffle = sum_from(shuffle.stored_per_ckpt);
  const uint64_t links_keyframe = sum_from(keyframe.stored_per_ckpt);
  const uint64_t links_cmf = sum_from(delta_cmf.stored_per_ckpt);
  const uint64_t links_planes = sum_from(delta_planes.stored_per_ckpt);
  auto smaller = [](uint64_t ours, uint64_t theirs) {
    return theirs ? 100.0 * (1.0 - double(ours) / double(theirs)) : 0.0;
  };
  // Size change of ours relative to theirs: "-6.5%" is 6.5% smaller.
  auto vs_text = [&](uint64_t ours, uint64_t theirs) {
    return theirs ? Format("%+.1f%%", -smaller(ours, theirs)) : std::string("-");
  };
  auto smaller_text = [&](uint64_t ours, uint64_t theirs) {
    const double pct = smaller(ours, theirs);
    return pct >= 0 ? Format("%.1f%% smaller than", pct) : Format("%.1f%% larger than", -pct);
  };
  if (first_link == 0)
    std::printf("\nOnly one checkpoint: no links, the figures below are for its keyframe.\n");
  else
    std::printf(
        "\n%sckz lossless delta%s, links only (%zu of %zu checkpoints, the first is a "
        "keyframe): ratio %s (%s raw -> %s).\n",
        md, md, h.size() - first_link, h.size(), RatioText(links_raw, links_delta).c_str(),
        HumanBytes(links_raw).c_str(), HumanBytes(links_delta).c_str());
  if (first_link != 0)
    std::printf("%sckz lossless delta + cmf%s, links only: ratio %s (%s), %s ckz lossless delta.\n",
                md, md, RatioText(links_raw, links_cmf).c_str(), HumanBytes(links_cmf).c_str(),
                smaller_text(links_cmf, links_delta).c_str());
  if (first_link != 0 && links_planes != links_delta)
    std::printf("%sckz lossless delta%s (KeySplit for F16/BF16), links only: %s the byte planes "
                "alone (0.7: %s).\n",
                md, md, smaller_text(links_delta, links_planes).c_str(),
                HumanBytes(links_planes).c_str());
  if (shuffle.stored == 0)
    std::printf("No comparison with byte-shuffle + zstd -19: baselines skipped.\n\n");
  else
    std::printf(
        "Whole history: %s byte-shuffle + zstd -19 (%s vs %s); links only: %s it "
        "(%s vs %s).\n\n",
        smaller_text(delta.stored, shuffle.stored).c_str(), HumanBytes(delta.stored).c_str(),
        HumanBytes(shuffle.stored).c_str(), smaller_text(links_delta, links_shuffle).c_str(),
        HumanBytes(links_delta).c_str(), HumanBytes(links_shuffle).c_str());

  // Per-role breakdown over the links.
  std::map<Role, RoleStats> roles;
  const RowResult* per_tensor_rows[] = {&shuffle, &keyframe, &delta, &delta_cmf};
  for (size_t k = first_link; k < h.size(); ++k) {
    const auto& tensors = h[k]->input.tensors;
    for (size_t i = 0; i < tensors.size(); ++i) {
      RoleStats& s = roles[tensors[i].spec.role];
      s.raw += tensors[i].data.size;
      ++s.tensors;
      for (const RowResult* r : per_tensor_rows)
        if (i < r->tensor_stored[k].size()) s.stored[r->name] += r->tensor_stored[k][i];
    }
  }
  Table role_table({"Role (links only)", "Tensors", "Raw", "byte-shuffle + zstd -19",
                    "ckz keyframe", "ckz lossless delta", "delta + cmf", "delta vs shuffle"},
                   {false, true, true, true, true, true, true, true});
  uint64_t payload[4] = {0, 0, 0, 0};
  for (Role role : kRoles) {
    auto it = roles.find(role);
    if (it == roles.end()) continue;
    const RoleStats& s = it->second;
    std::vector<std::string> row = {RoleName(role), std::to_string(s.tensors), HumanBytes(s.raw)};
    for (int j = 0; j < 4; ++j) {
      const uint64_t st =
          s.stored.count(per_tensor_rows[j]->name) ? s.stored.at(per_tensor_rows[j]->name) : 0;
      payload[j] += st;
      row.push_back(RatioText(s.raw, st));
    }
    row.push_back(vs_text(s.stored.count(delta.name) ? s.stored.at(delta.name) : 0,
                          s.stored.count(shuffle.name) ? s.stored.at(shuffle.name) : 0));
    role_table.AddRow(row);
  }
  role_table.AddRow({"all tensor payload", "", HumanBytes(links_raw),
                     RatioText(links_raw, payload[0]), RatioText(links_raw, payload[1]),
                     RatioText(links_raw, payload[2]), RatioText(links_raw, payload[3]),
                     vs_text(payload[2], payload[0])});
  role_table.AddRow({"with container", "", HumanBytes(links_raw),
                     RatioText(links_raw, links_shuffle), RatioText(links_raw, links_keyframe),
                     RatioText(links_raw, links_delta), RatioText(links_raw, links_cmf),
                     vs_text(links_delta, links_shuffle)});
  std::fputs(role_table.Render(o.markdown).c_str(), stdout);

  if (o.per_checkpoint) {
    std::vector<std::string> header = {"Checkpoint", "Raw"};
    for (const RowResult& r : rows) header.push_back(r.name);
    Table per(header, std::vector<bool>(header.size(), true));
    for (size_t k = 0; k < h.size(); ++k) {
      std::vector<std::string> row = {h[k]->label, HumanBytes(h[k]->tensor_bytes)};
      for (const RowResult& r : rows)
        row.push_back(RatioText(r.raw_per_ckpt[k], r.stored_per_ckpt[k]));
      per.AddRow(row);
    }
    std::printf("\n");
    std::fputs(per.Render(o.markdown).c_str(), stdout);
  }

  const uint64_t rss = PeakRssBytes();
  std::printf(
      "\nPeak RSS: %s (the whole history, every row's encoded output and decode "
      "buffers are held in memory)\n",
      HumanBytes(rss).c_str());

  if (!o.json_path.empty()) {
    std::string j = "{\n";
    j += "  \"tool\": \"ckz_bench\",\n";
    j += "  \"date\": " + JsonString(date) + ",\n";
    j += "  \"cpu\": " + JsonString(cpu) + ",\n";
    j += "  \"cores\": " + std::to_string(cores) + ",\n";
    j += "  \"input\": " + JsonString(described) + ",\n";
    j += "  \"checkpoints\": [";
    for (size_t k = 0; k < h.size(); ++k) j += (k ? ", " : "") + JsonString(h[k]->path);
    j += "],\n";
    j += "  \"tensors\": " + std::to_string(tensor_count) + ",\n";
    j += "  \"tensor_bytes\": " + std::to_string(tensor_bytes) + ",\n";
    j += "  \"file_bytes\": " + std::to_string(file_bytes) + ",\n";
    j += "  \"repeat\": " + std::to_string(o.repeat) + ",\n";
    j += "  \"threads\": " + std::to_string(o.threads) + ",\n";
    j += "  \"ckz_zstd_level\": " + std::to_string(o.level) + ",\n";
    j += "  \"rows\": [\n";
    for (size_t i = 0; i < rows.size(); ++i) {
      const RowResult& r = rows[i];
      j += "    {\"name\": " + JsonString(r.name) + ", \"raw_bytes\": " + std::to_string(r.raw) +
           ", \"stored_bytes\": " + std::to_string(r.stored) +
           ", \"ratio\": " + JsonNumber(double(r.raw) / double(r.stored)) +
           ", \"encode_mb_s_1t\": " + JsonNumber(SpeedValue(r.raw, r.single.encode_s)) +
           ", \"decode_mb_s_1t\": " + JsonNumber(SpeedValue(r.raw, r.single.decode_s));
      if (r.has_multi)
        j += ", \"encode_mb_s_mt\": " + JsonNumber(SpeedValue(r.raw, r.multi.encode_s)) +
             ", \"decode_mb_s_mt\": " + JsonNumber(SpeedValue(r.raw, r.multi.decode_s));
      j += ", \"stored_per_checkpoint\": [";
      for (size_t k = 0; k < r.stored_per_ckpt.size(); ++k)
        j += (k ? ", " : "") + std::to_string(r.stored_per_ckpt[k]);
      j += "]}";
      j += i + 1 < rows.size() ? ",\n" : "\n";
    }
    j += "  ],\n";
    j += "  \"delta_links\": {\"checkpoints\": " + std::to_string(h.size() - first_link) +
         ", \"raw_bytes\": " + std::to_string(links_raw) +
         ", \"stored_bytes\": " + std::to_string(links_delta) +
         ", \"ratio\": " + JsonNumber(links_delta ? double(links_raw) / double(links_delta) : 0) +
         ", \"shuffle_zstd19_stored_bytes\": " + std::to_string(links_shuffle) +
         ", \"percent_smaller_than_shuffle_zstd19\": " +
         (links_shuffle ? JsonNumber(smaller(links_delta, links_shuffle)) : "null") +
         ", \"whole_history_percent_smaller_than_shuffle_zstd19\": " +
         (shuffle.stored ? JsonNumber(smaller(delta.stored, shuffle.stored)) : "null") +
         ",\n    \"roles\": [";
    bool first = true;
    for (Role role : kRoles) {
      auto it = roles.find(role);
      if (it == roles.end()) continue;
      const RoleStats& s = it->second;
      j += std::string(first ? "\n" : ",\n") + "      {\"role\": " + JsonString(RoleName(role)) +
           ", \"tensors\": " + std::to_string(s.tensors) +
           ", \"raw_bytes\": " + std::to_string(s.raw);
      for (const RowResult* r : per_tensor_rows) {
        const uint64_t st = s.stored.count(r->name) ? s.stored.at(r->name) : 0;
        j += ", " + JsonString(r->name + " stored_bytes") + ": " + std::to_string(st);
      }
      j += "}";
      first = false;
    }
    j += "]},\n";
    j += "  \"peak_rss_bytes\": " + std::to_string(rss) + "\n}\n";
    std::ofstream out(o.json_path, std::ios::binary | std::ios::trunc);
    out << j;
    out.close();
    if (!out) Die(kExitInput, o.json_path + ": cannot write the JSON results");
  }
  return 0;
}

}  // namespace
}  // namespace ckz::bench

int main(int argc, char** argv) { return ckz::bench::Main(argc, argv); }
