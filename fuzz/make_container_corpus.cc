// Writes the seed corpus of fuzz_container into the folder given on the command line:
//   make_container_corpus fuzz/corpus/fuzz_container
// Valid files cover every dtype, 0-d and empty tensors, multi-chunk tensors, every
// predictor x byte planes x stream codec (links with a reference), optimizer roles, metadata of
// every value type and source files, and (0.9) level tensors coded with an LSTM model (stream
// codec 6); invalid files break one rule each, made with the same file
// surgery the tests use. Every file is small (< 8 KiB) and the output is deterministic (fixed
// seeds). The generator checks each file before writing it: a valid file parses and decodes to
// the bytes it was made from, an invalid one fails with the error code its name promises.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ckz/archive.h"
#include "ckz/decoder.h"
#include "ckz/lstm_model.h"
#include "ckz/status.h"
#include "ckz/writer.h"
#include "common/bytes.h"
#include "file_surgery.h"
#include "fuzz_reference.h"
#include "format/preamble.h"

namespace {

using namespace ckz;  // NOLINT: a small tool

constexpr size_t kMaxSeedBytes = 8 * 1024;

struct Tensor {
  TensorSpec spec;
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> reference;  // parent bytes (empty: none)
};

// Bytes that look like a trained tensor: normal floats, small ints, 0/1 bools.
std::vector<uint8_t> RandomBytes(DType dtype, uint64_t elements, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 0.05f);
  const size_t width = DTypeSize(dtype);
  std::vector<uint8_t> out(elements * width);
  for (uint64_t i = 0; i < elements; ++i) {
    uint8_t* p = out.data() + i * width;
    const float f = normal(rng);
    switch (dtype) {
      case DType::kF64: {
        const double d = f;
        std::memcpy(p, &d, 8);
        break;
      }
      case DType::kF32:
        std::memcpy(p, &f, 4);
        break;
      case DType::kF16:
      case DType::kBF16: {
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        StoreLE16(p, uint16_t(bits >> 16));
        break;
      }
      case DType::kBool:
        *p = uint8_t(rng() & 1);
        break;
      default: {
        const uint64_t v = uint64_t(int64_t(rng() % 2001) - 1000);
        for (size_t b = 0; b < width; ++b) p[b] = uint8_t(v >> (8 * b));
      }
    }
  }
  return out;
}

Tensor Make(const std::string& name, DType dtype, std::vector<uint64_t> shape, uint32_t seed,
            Role role = Role::kOther, int32_t owner = -1) {
  Tensor t;
  t.spec = {name, dtype, std::move(shape), role, owner};
  uint64_t n = 1;
  for (uint64_t d : t.spec.shape) n *= d;
  t.bytes = RandomBytes(dtype, n, seed);
  return t;
}

// The next training step of `t`: floats moved a little, ints with a few low bits flipped; the
// current bytes become the reference.
Tensor NextStep(Tensor t, uint32_t seed) {
  t.reference = t.bytes;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.f, 1e-3f);
  const size_t width = DTypeSize(t.spec.dtype);
  for (size_t i = 0; i + width <= t.bytes.size(); i += width) {
    if (t.spec.dtype == DType::kF32) {
      float f;
      std::memcpy(&f, t.bytes.data() + i, 4);
      f += normal(rng) * std::fabs(f);
      std::memcpy(t.bytes.data() + i, &f, 4);
    } else {
      t.bytes[i] ^= uint8_t(rng() & 3);
    }
  }
  return t;
}

struct FileSpec {
  FileSpec() { options.code_header = false; }  // plain headers: mutations reach FlatBuffers
  std::vector<Tensor> tensors;
  EncodeOptions options;
  std::optional<LinkInfo> link;
  std::optional<int64_t> step;
  std::vector<MetaEntry> metadata;
  std::vector<SourceFileInfo> files;
  std::string writer;
  std::vector<uint8_t> parent_prolog;  // the history of ZstdParent prologs (file 0 of a parent)
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "make_container_corpus: %s\n", what.c_str());
  std::exit(1);
}

std::vector<uint8_t> Write(const FileSpec& f) {
  auto sink = std::make_unique<MemorySink>();
  MemorySink* mem = sink.get();
  Writer w(std::move(sink), f.options);
  if (f.link) w.SetLink(*f.link);
  if (f.step) w.SetStep(*f.step);
  if (!f.writer.empty()) w.SetWriterName(f.writer);
  for (const MetaEntry& e : f.metadata) w.AddMetadata(e);
  for (const SourceFileInfo& s : f.files) w.AddSourceFile(s, ByteSpan(f.parent_prolog), 0);
  for (const Tensor& t : f.tensors) {
    const Status s = w.AddTensor(t.spec, ByteSpan(t.bytes), ByteSpan(t.reference));
    if (!s.ok()) Die("AddTensor: " + s.ToString());
  }
  Result<ContentId> id = w.Finish();
  if (!id.ok()) Die("Finish: " + id.status().ToString());
  return std::move(mem->bytes());
}

class SeedReference : public ReferenceSource {
 public:
  explicit SeedReference(const std::vector<Tensor>& tensors) : tensors_(tensors) {}
  Status ReadReference(const TensorInfo& t, uint64_t offset, MutableByteSpan out) override {
    for (const Tensor& r : tensors_)
      if (r.spec.name == t.name && offset + out.size <= r.reference.size()) {
        std::memcpy(out.data, r.reference.data() + offset, out.size);
        return Status::Ok();
      }
    return Status(ErrorCode::kReferenceMismatch, "no reference for " + t.name);
  }

 private:
  const std::vector<Tensor>& tensors_;
};

// First error of parsing `file` and decoding all its tensors (OK if none). Decoding uses the
// tensors' references; a valid file must give back exactly the tensors' bytes.
Status ParseAndDecode(const std::vector<uint8_t>& file, const std::vector<Tensor>& tensors,
                      bool expect_bytes) {
  Result<Archive> a = ParseArchive(ByteSpan(file));
  if (!a.ok()) return a.status();
  SeedReference ref(tensors);
  for (size_t i = 0; i < a->tensors.size(); ++i) {
    std::vector<uint8_t> out(a->tensors[i].byte_length);
    const Status s = DecodeTensorRange(*a, i, 0, MutableByteSpan(out), &ref);
    if (!s.ok()) return s;
    if (expect_bytes && (i >= tensors.size() || out != tensors[i].bytes))
      Die("tensor " + a->tensors[i].name + " does not decode to its bytes");
  }
  return Status::Ok();
}

class Corpus {
 public:
  explicit Corpus(std::string dir) : dir_(std::move(dir)) {}

  void Valid(const std::string& name, const FileSpec& f) {
    const std::vector<uint8_t> bytes = Write(f);
    const Status s = ParseAndDecode(bytes, f.tensors, true);
    if (!s.ok()) Die(name + ": valid file fails with " + s.ToString());
    Save("valid_" + name, bytes);
  }

  // `bytes` made from `base`: must fail with `expected` when parsed or decoded.
  void Invalid(const std::string& name, ErrorCode expected, const std::vector<uint8_t>& bytes,
               const std::vector<Tensor>& base) {
    const Status s = ParseAndDecode(bytes, base, false);
    if (s.code() != expected)
      Die(name + ": expected " + ErrorCodeName(expected) + ", got " + s.ToString());
    Save(std::string("invalid_") + ErrorCodeName(expected) + "_" + name, bytes);
  }

  // A file written without FileSpec (level tensors): must parse and decode to `tensors`.
  void ValidFile(const std::string& name, const std::vector<uint8_t>& bytes,
                 const std::vector<Tensor>& tensors) {
    const Status s = ParseAndDecode(bytes, tensors, true);
    if (!s.ok()) Die(name + ": valid file fails with " + s.ToString());
    Save("valid_" + name, bytes);
  }

  size_t count() const { return count_; }

 private:
  void Save(const std::string& stem, const std::vector<uint8_t>& bytes) {
    if (bytes.size() > kMaxSeedBytes)
      Die(stem + " is " + std::to_string(bytes.size()) + " bytes, above the seed size cap");
    const std::string path = dir_ + "/" + stem + ".ckz";
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    if (!out) Die("cannot write " + path);
    std::printf("%6zu  %s\n", bytes.size(), path.c_str());
    ++count_;
  }

  std::string dir_;
  size_t count_ = 0;
};

LinkInfo Link(uint32_t depth, uint8_t id_byte) {
  LinkInfo link;
  link.depth = depth;
  link.parent_content_id.fill(id_byte);
  return link;
}

void MakeValid(Corpus& corpus) {
  const DType kAll[] = {DType::kF64, DType::kF32, DType::kF16, DType::kBF16, DType::kI64,
                        DType::kI32, DType::kI16, DType::kI8,  DType::kU8,   DType::kBool};
  {
    FileSpec f;  // every dtype, a 0-d and an empty tensor; automatic coding choice
    uint32_t seed = 1;
    for (DType d : kAll) f.tensors.push_back(Make(DTypeName(d), d, {3, 5}, seed++));
    f.tensors.push_back(Make("scalar", DType::kF32, {}, seed++));
    f.tensors.push_back(Make("empty", DType::kF32, {4, 0}, seed++));
    corpus.Valid("every_dtype", f);
    f.options.force_codec = StreamCodec::kStored;
    f.options.force_byte_planes = false;
    corpus.Valid("every_dtype_stored_flat", f);
    f.options.force_codec = StreamCodec::kZstd;
    f.options.force_byte_planes = true;
    corpus.Valid("every_dtype_zstd_planes", f);
  }
  {
    FileSpec f;
    f.tensors.push_back(Make("scalar_f64", DType::kF64, {}, 20));
    f.tensors.push_back(Make("scalar_bool", DType::kBool, {}, 21));
    corpus.Valid("scalars_0d", f);
  }
  {
    FileSpec f;
    f.tensors.push_back(Make("empty_a", DType::kI32, {0}, 22));
    f.tensors.push_back(Make("empty_b", DType::kBF16, {7, 0, 3}, 23));
    corpus.Valid("empty_tensors", f);
  }
  corpus.Valid("no_tensors", FileSpec{});
  {
    FileSpec f;  // many chunks: 1536 bytes in 256-byte chunks, and a ragged last chunk
    f.options.chunk_bytes = 256;
    f.tensors.push_back(Make("w", DType::kF32, {16, 24}, 24));
    f.tensors.push_back(Make("ids", DType::kI16, {150}, 25));
    corpus.Valid("multi_chunk_zstd", f);
    f.options.force_codec = StreamCodec::kStored;
    f.options.chunk_bytes = 100;  // rounds down to whole elements
    corpus.Valid("multi_chunk_stored", f);
  }
  {
    FileSpec f;  // a weight and its Adam moments
    f.tensors.push_back(Make("fc.weight", DType::kF32, {4, 8}, 26, Role::kWeight));
    f.tensors.push_back(Make("fc.exp_avg", DType::kF32, {4, 8}, 27, Role::kMoment1, 0));
    f.tensors.push_back(Make("fc.exp_avg_sq", DType::kF32, {4, 8}, 28, Role::kMoment2, 0));
    f.tensors.push_back(Make("step", DType::kI64, {}, 29, Role::kOther));
    corpus.Valid("optimizer_roles", f);
  }
  {
    FileSpec f;  // metadata of every value type
    f.step = 1000;
    f.writer = "make_container_corpus";
    f.metadata = {{"step", int64_t{-1000}},
                  {"lr", 3e-4},
                  {"framework", std::string("torch 2.1 \xc3\xa9")},
                  {"rng_state", std::vector<uint8_t>{0, 1, 2, 0xFF, 0x80}},
                  {"amp", true},
                  {"empty_string", std::string()},
                  {"empty_bytes", std::vector<uint8_t>{}}};
    f.tensors.push_back(Make("x", DType::kF16, {8}, 30));
    corpus.Valid("metadata_every_type", f);
  }
  {
    FileSpec f;  // source files: a safetensors file with two tensors, a raw side file
    f.tensors.push_back(Make("a", DType::kF32, {2, 3}, 31));
    f.tensors.push_back(Make("b", DType::kI64, {2}, 32));
    const std::string json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                             "\"b\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[24,40]}}";
    std::vector<uint8_t> prolog(8 + json.size());
    StoreLE64(prolog.data(), json.size());
    std::memcpy(prolog.data() + 8, json.data(), json.size());
    f.files.push_back({"model.safetensors", SourceFormat::kSafetensors, prolog, {1, 0}});
    const std::string config = "{\"hidden\": 3}\n";
    f.files.push_back({"sub/config.json", SourceFormat::kRaw, {config.begin(), config.end()}, {}});
    corpus.Valid("source_files", f);
    f.options.prolog_codec = PrologCodec::kZstd;
    corpus.Valid("source_files_zstd_prolog", f);
    // A link whose prologs are coded against the fuzz harness's parent prolog.
    static const char kHistory[] =  // fuzz_container.cc's kPrologHistory
        "CKZ fuzz parent prolog: {\"step\": 100, \"files\": [\"model.pt\"]}";
    f.parent_prolog.assign(kHistory, kHistory + sizeof kHistory - 1);
    f.files[1].prolog.insert(f.files[1].prolog.end(), f.parent_prolog.begin(),
                             f.parent_prolog.end());
    f.options.prolog_codec = PrologCodec::kZstdParent;
    LinkInfo link;
    link.depth = 1;
    link.parent_content_id.fill(0x11);
    f.link = link;
    corpus.Valid("source_files_zstd_parent_prolog", f);
  }

  // Links: every predictor x byte planes x stream codec, over an f32 tensor in two chunks, an
  // i64 tensor (integer delta) and a u8 tensor (planes of width 1).
  std::vector<Tensor> parent = {Make("w", DType::kF32, {8, 16}, 40),
                                Make("n", DType::kI64, {12}, 41),
                                Make("mask", DType::kU8, {40}, 42)};
  std::vector<Tensor> next;
  for (size_t i = 0; i < parent.size(); ++i) next.push_back(NextStep(parent[i], 50 + uint32_t(i)));
  for (Predictor p : {Predictor::kNone, Predictor::kXorRef, Predictor::kSubRef})
    for (bool planes : {false, true})
      for (StreamCodec codec : {StreamCodec::kStored, StreamCodec::kZstd}) {
        FileSpec f;
        f.tensors = next;
        f.link = Link(1 + uint32_t(p), 0x11 * (1 + uint8_t(p)));
        f.options.chunk_bytes = 256;
        f.options.force_predictor = p;
        f.options.force_byte_planes = planes;
        f.options.force_codec = codec;
        corpus.Valid(std::string("link_") + PredictorName(p) + (planes ? "_planes_" : "_flat_") +
                         StreamCodecName(codec),
                     f);
      }
  {
    // (0.8) KeySplit (spec 7.10): BF16 and F16 tensors in several chunks, stored and zstd.
    // The parents are fuzz_container's own reference bytes (fuzz_reference.h), so the seeds
    // decode through the symbols and the bit stream there, not only to a stream length.
    std::vector<Tensor> half = {Make("b", DType::kBF16, {6, 20}, 43),
                                Make("h", DType::kF16, {70}, 44)};
    for (Tensor& t : half) ckz_fuzz::FillReference(t.spec.name, 0, t.bytes.data(), t.bytes.size());
    std::vector<Tensor> half_next;
    for (size_t i = 0; i < half.size(); ++i) half_next.push_back(NextStep(half[i], 60 + uint32_t(i)));
    for (StreamCodec codec : {StreamCodec::kStored, StreamCodec::kZstd}) {
      FileSpec f;
      f.tensors = half_next;
      f.link = Link(1, 0x5B);
      f.options.chunk_bytes = 96;
      f.options.force_predictor = Predictor::kKeySplit;
      f.options.force_codec = codec;
      corpus.Valid(std::string("link_keysplit_") + StreamCodecName(codec), f);
    }
  }
  {
    FileSpec f;  // a link with everything: parent step, path hint, deep chain, automatic coding
    f.tensors = next;
    f.link = Link(7, 0xC3);
    f.link->parent_step = 2000;
    f.link->path_hint = "run/step-2000.ckz";
    f.step = 3000;
    corpus.Valid("link_full_auto", f);
    f.options.code_header = true;  // (0.6) the same, header stored as a zstd frame
    corpus.Valid("link_full_auto_coded_header", f);
  }
}

// The base of the invalid files: two tensors in small stored single-stream chunks (a
// predictable layout).
struct Base {
  std::vector<Tensor> tensors;
  std::vector<uint8_t> file;
  Archive archive;
};

Base MakeBase() {
  Base b;
  FileSpec f;
  f.options.chunk_bytes = 512;
  f.options.force_codec = StreamCodec::kStored;
  f.options.force_byte_planes = false;  // one stream per chunk: 5 directory bytes, then it
  f.tensors = {Make("a", DType::kF32, {300}, 1, Role::kWeight), Make("b", DType::kI64, {10}, 2)};
  b.tensors = f.tensors;
  b.file = Write(f);
  Result<Archive> a = ParseArchive(ByteSpan(b.file));
  if (!a.ok()) Die("base: " + a.status().ToString());
  b.archive = *a;
  return b;
}

void MakeInvalid(Corpus& corpus) {
  namespace po = preamble_offset;
  using testing::FixHeaderCrc;
  using testing::FixPreambleCrc;
  using testing::Rebuild;
  const Base base = MakeBase();
  const std::vector<uint8_t>& file = base.file;
  const Archive& archive = base.archive;
  auto invalid = [&](const std::string& name, ErrorCode code, const std::vector<uint8_t>& bytes) {
    corpus.Invalid(name, code, bytes, base.tensors);
  };
  auto rebuilt = [&](const std::string& name, ErrorCode code,
                     const std::function<void(Archive&)>& edit) {
    Archive a = archive;
    edit(a);
    invalid(name, code, Rebuild(a, ByteSpan(file)));
  };

  {
    auto f = file;
    f[1] = 'X';
    invalid("magic", ErrorCode::kBadMagic, f);
  }
  {
    auto f = file;
    f.erase(f.begin() + 4);  // CR LF -> LF
    invalid("crlf_to_lf", ErrorCode::kTextModeCorruption, f);
  }
  {
    auto f = file;
    f[0] &= 0x7F;  // 7-bit channel
    invalid("high_bit_stripped", ErrorCode::kTextModeCorruption, f);
  }
  {
    auto f = file;
    StoreLE16(f.data() + po::kMajor, 1);
    FixPreambleCrc(f);
    invalid("major_version_1", ErrorCode::kUnsupportedVersion, f);
  }
  {
    auto f = file;
    StoreLE64(f.data() + po::kRequiredFeatures, uint64_t{1} << 40);
    FixPreambleCrc(f);
    invalid("unknown_required_feature", ErrorCode::kUnknownRequiredFeature, f);
  }
  {
    auto f = file;
    f[po::kHeaderLength] ^= 1;
    invalid("preamble_crc", ErrorCode::kPreambleChecksum, f);
  }
  {
    auto f = file;
    f[archive.preamble.header_offset + 20] ^= 0x10;
    invalid("header_crc", ErrorCode::kHeaderChecksum, f);
  }
  {
    auto f = file;
    StoreLE64(f.data() + po::kHeaderOffset, file.size() + 64);
    FixPreambleCrc(f);
    invalid("header_past_end", ErrorCode::kHeaderOutOfBounds, f);
  }
  {
    auto f = file;
    f[archive.preamble.header_offset + 4] = 'X';
    FixHeaderCrc(f);
    invalid("header_identifier", ErrorCode::kHeaderMalformed, f);
  }
  {
    std::vector<uint8_t> f(file.begin(), file.begin() + 40);
    invalid("truncated_in_preamble", ErrorCode::kTruncated, f);
    std::vector<uint8_t> g(file.begin(), file.end() - 1);
    invalid("truncated_by_one", ErrorCode::kHeaderOutOfBounds, g);
  }
  rebuilt("dtype_77", ErrorCode::kFieldOutOfRange,
          [](Archive& a) { a.tensors[0].dtype = static_cast<DType>(77); });
  rebuilt("duplicate_tensor_name", ErrorCode::kDuplicateName,
          [](Archive& a) { a.tensors[1].name = "a"; });
  rebuilt("overlong_utf8_name", ErrorCode::kBadName,
          [](Archive& a) { a.tensors[1].name = std::string("\xc0\x80", 2); });
  rebuilt("shape_overflow", ErrorCode::kShapeOverflow, [](Archive& a) {
    a.tensors[0].shape = {uint64_t{1} << 40, uint64_t{1} << 40};
  });
  rebuilt("chunk_past_end", ErrorCode::kRangeOutOfFile, [](Archive& a) {
    a.tensors[0].chunks[0].offset = a.preamble.header_offset + 4096;
  });
  rebuilt("chunks_overlap", ErrorCode::kRangeOverlap, [](Archive& a) {
    a.tensors[0].chunks[1].offset = a.tensors[0].chunks[0].offset;
  });
  rebuilt("gap_between_chunks", ErrorCode::kUnexplainedBytes, [](Archive& a) {
    a.tensors[0].chunks[1].offset += 64;
    a.tensors[0].chunks[1].stored_length = 8;
  });
  rebuilt("chunk_raw_length", ErrorCode::kChunkLayout,
          [](Archive& a) { a.tensors[0].chunks[0].raw_length -= 4; });
  rebuilt("link_depth_0", ErrorCode::kBadLink, [](Archive& a) {
    a.link = LinkInfo{};
    a.preamble.required_features = kFeatureReferenceChain;
  });
  rebuilt("predicted_without_link", ErrorCode::kBadLink,
          [](Archive& a) { a.tensors[0].predictor = Predictor::kXorRef; });
  rebuilt("owner_shape_differs", ErrorCode::kBadOwner, [](Archive& a) {
    a.tensors[1].role = Role::kMoment1;
    a.tensors[1].owner = 0;
  });
  rebuilt("path_escapes", ErrorCode::kBadName, [](Archive& a) {
    a.files.push_back({"../escape", SourceFormat::kRaw, {1, 2}, {}});
  });
  rebuilt("duplicate_metadata_key", ErrorCode::kDuplicateName, [](Archive& a) {
    a.metadata = {{"k", int64_t{1}}, {"k", int64_t{2}}};
  });
  rebuilt("duplicate_file_path", ErrorCode::kDuplicateName, [](Archive& a) {
    a.files.push_back({"model.safetensors", SourceFormat::kSafetensors, {}, {0}});
    a.files.push_back({"model.safetensors", SourceFormat::kSafetensors, {}, {1}});
  });
  rebuilt("name_too_long", ErrorCode::kBadName,
          [](Archive& a) { a.tensors[1].name.assign(kMaxNameBytes + 1, 'n'); });
  {
    auto f = file;
    f.insert(f.end(), 64, 0);
    invalid("trailing_bytes", ErrorCode::kUnexplainedBytes, f);
  }
  {
    const ChunkInfo& c = archive.tensors[0].chunks[0];
    auto f = file;
    f[c.offset + c.stored_length] = 1;
    invalid("padding", ErrorCode::kNonzeroPadding, f);
  }
  // Payload damage: the header is intact, decoding fails.
  const ChunkInfo& c = archive.tensors[0].chunks[1];
  {
    auto f = file;
    f[c.offset + 100] ^= 0x20;
    invalid("payload_bit_flip", ErrorCode::kChunkChecksum, f);
  }
  {
    auto f = file;
    f[c.offset] = 7;
    invalid("stream_codec_7", ErrorCode::kChunkMalformed, f);
  }
  {
    auto f = file;
    StoreLE32(f.data() + c.offset + 1, 100);
    invalid("stream_length", ErrorCode::kChunkMalformed, f);
  }
  {
    auto f = file;
    f[c.offset] = uint8_t(StreamCodec::kZstd);
    invalid("not_a_zstd_frame", ErrorCode::kChunkDecodeFailed, f);
  }
  // Hand-made zstd frames filling the chunk's one stream exactly (spec 7.2 restricts frames).
  const size_t stream = c.offset + 5, stream_length = c.raw_length;  // stored: raw == stored
  auto zstd = [&](const std::string& name, std::vector<uint8_t> frame_header) {
    auto f = file;
    f[c.offset] = uint8_t(StreamCodec::kZstd);
    const std::vector<uint8_t> magic = {0x28, 0xB5, 0x2F, 0xFD};
    frame_header.insert(frame_header.begin(), magic.begin(), magic.end());
    const uint32_t block = uint32_t(stream_length - frame_header.size() - 3);
    // One last raw block (type 0) holding the rest: it decodes to fewer bytes than expected.
    const uint32_t block_header = (block << 3) | 1;
    std::memcpy(f.data() + stream, frame_header.data(), frame_header.size());
    for (int i = 0; i < 3; ++i) f[stream + frame_header.size() + i] = uint8_t(block_header >> (8 * i));
    invalid(name, ErrorCode::kChunkDecodeFailed, f);
  };
  zstd("zstd_short_content", {0x00, 0x00});        // window 1 KiB, no content size
  zstd("zstd_dictionary", {0x01, 0x00, 0x07});      // dictionary id 7
  zstd("zstd_window_2pow28", {0x00, 18 << 3});      // window 2^28 > the format's 2^27
  {
    auto f = file;  // a skippable frame is one frame, but not a zstd frame
    f[c.offset] = uint8_t(StreamCodec::kZstd);
    StoreLE32(f.data() + stream, 0x184D2A50);
    StoreLE32(f.data() + stream + 4, uint32_t(stream_length - 8));
    invalid("zstd_skippable_frame", ErrorCode::kChunkDecodeFailed, f);
  }
}

// (0.9) The LSTM level model (spec 7.11): a keyframe whose level tensors (LevelDirect: a
// weight 'w' and its first moment 'w.m', whose aux levels are the weight's) are coded with the
// model its header holds (stream codec 6, chunks of 24 levels), then faults of the model (rules
// LM1, LM3) and of a chunk's codec (C1). No parent is needed, so the fuzzer decodes them whole.
struct LstmSeed {
  std::vector<uint8_t> file;
  std::vector<Tensor> tensors;  // their decoded bytes
};

LstmSeed MakeLstmKeyframe() {
  auto model = std::make_shared<LstmModel>();
  model->hidden = 8;
  model->clip = 1;
  model->recur_shift = 10;
  model->out_shift = 9;
  std::mt19937 rng(70);
  auto fill = [&](std::vector<int16_t>& v, size_t n, int amp) {
    v.resize(n);
    for (int16_t& x : v) x = int16_t(int(rng() % uint32_t(2 * amp + 1)) - amp);
  };
  fill(model->gate_bias, LstmModel::GateBiasSize(8), 600);
  fill(model->embed, LstmModel::EmbedSize(8, 1), 1500);
  fill(model->role, LstmModel::RoleSize(8), 700);
  fill(model->recur, LstmModel::RecurSize(8), 800);
  fill(model->out, LstmModel::OutSize(8), 400);
  fill(model->out_bias, kLstmSlots, 200);
  model->mix_init.assign(LstmModel::kMixInitSize, 0);
  for (size_t i = 0; i < model->mix_init.size(); i += kLstmMixInputs) {
    model->mix_init[i] = 65536;                        // cml's stretch at 1
    model->mix_init[i + 1] = 16384 + int32_t(rng() % 16384);  // the network's logit
  }
  if (!model->WellFormed()) Die("lstm seed: the model is not well formed");

  EncodeOptions options;
  options.code_header = false;
  options.chunk_bytes = 96;
  options.force_codec = StreamCodec::kLstmLevels;
  auto sink = std::make_unique<MemorySink>();
  MemorySink* mem = sink.get();
  Writer w(std::move(sink), options);
  if (!w.SetLstmModel(model, false).ok()) Die("lstm seed: the writer refused the model");
  QuantizationInfo q;
  q.kind = QuantKind::kLevelDirect;
  q.step = 1.0f / 1024;
  std::vector<int32_t> levels[2];
  LstmSeed seed;
  for (int t = 0; t < 2; ++t) {
    levels[t].resize(48);
    for (int32_t& v : levels[t]) {
      const uint32_t r = rng();
      v = r % 8 < 3 ? 0 : int32_t(1 + (r >> 3) % (r % 29 == 0 ? 300 : 4)) * (r & 0x100 ? -1 : 1);
    }
    Tensor x;
    x.spec = t == 0 ? TensorSpec{"w", DType::kF32, {8, 6}, Role::kWeight, -1}
                    : TensorSpec{"w.m", DType::kF32, {8, 6}, Role::kMoment1, 0};
    x.bytes.resize(48 * 4);
    LevelContexts contexts;
    if (t == 1) contexts.aux = levels[0].data();
    const Status s = w.AddLevelTensor(x.spec, q, levels[t].data(), ByteSpan(), ByteSpan(),
                                      DType::kF32, MutableByteSpan(x.bytes), contexts);
    if (!s.ok()) Die("lstm seed: AddLevelTensor: " + s.ToString());
    seed.tensors.push_back(std::move(x));
  }
  Result<ContentId> id = w.Finish();
  if (!id.ok()) Die("lstm seed: Finish: " + id.status().ToString());
  if (w.lstm_chunks() != 4) Die("lstm seed: every chunk must use the model");
  seed.file = std::move(mem->bytes());
  return seed;
}

void MakeLstm(Corpus& corpus) {
  using testing::FixPreambleCrc;
  using testing::Rebuild;
  const LstmSeed seed = MakeLstmKeyframe();
  corpus.ValidFile("lstm_keyframe", seed.file, seed.tensors);
  Result<Archive> parsed = ParseArchive(ByteSpan(seed.file));
  if (!parsed.ok()) Die("lstm seed: " + parsed.status().ToString());
  const Archive& archive = *parsed;
  {
    Archive a = archive;
    auto m = std::make_shared<LstmModel>(*a.lstm_model);
    m->out_shift = 16;
    a.lstm_model = m;
    corpus.Invalid("lstm_out_shift_16", ErrorCode::kFieldOutOfRange,
                   Rebuild(a, ByteSpan(seed.file)), seed.tensors);
  }
  {
    HeaderDeviations dev;
    dev.lstm_params_delta = -2;
    corpus.Invalid("lstm_params_short", ErrorCode::kFieldOutOfRange,
                   Rebuild(archive, ByteSpan(seed.file), &dev), seed.tensors);
  }
  {
    auto f = seed.file;
    StoreLE64(f.data() + preamble_offset::kRequiredFeatures,
              archive.preamble.required_features & ~kFeatureLstm);
    FixPreambleCrc(f);
    corpus.Invalid("lstm_without_feature_bit", ErrorCode::kFieldOutOfRange, f, seed.tensors);
  }
  {
    auto f = seed.file;
    const ChunkInfo& c = archive.tensors[1].chunks[0];
    if (f[c.offset] != uint8_t(StreamCodec::kLstmLevels)) Die("lstm seed: codec 6 expected");
    f[c.offset] = uint8_t(StreamCodec::kCmFloat);  // not a codec of level tensors
    corpus.Invalid("lstm_codec_4_in_level_tensor", ErrorCode::kChunkMalformed, f, seed.tensors);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  std::filesystem::create_directories(argv[1]);
  Corpus corpus(argv[1]);
  MakeValid(corpus);
  MakeInvalid(corpus);
  MakeLstm(corpus);
  std::printf("%zu files\n", corpus.count());
  return 0;
}
