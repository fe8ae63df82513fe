// The container: a pure, validating parser over the bytes of a whole .ckz file.
//
// ParseArchive() does no I/O and touches no global state: give it a byte span (a mapped file,
// a buffer, fuzzer input) and it returns either a fully validated description of the file or
// a Status naming the first rule broken (spec/ckz.md, section 9).
#ifndef CKZ_ARCHIVE_H_
#define CKZ_ARCHIVE_H_

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "ckz/lstm_model.h"
#include "ckz/status.h"
#include "ckz/types.h"

namespace ckz {

// Format constants (spec/ckz.md, sections 2-4).
inline constexpr uint16_t kFormatMajor = 0;
inline constexpr uint16_t kFormatMinor = 11;
inline constexpr size_t kPreambleSize = 64;
inline constexpr uint64_t kAlignment = 64;
inline constexpr uint64_t kMaxHeaderBytes = uint64_t{1} << 26;    // 64 MiB
inline constexpr uint64_t kMaxChunkRawBytes = uint64_t{1} << 26;  // 64 MiB
inline constexpr size_t kMaxNdim = 32;
inline constexpr size_t kMaxNameBytes = 4096;
inline constexpr uint32_t kMaxHeaderTables = uint32_t{1} << 22;  // FlatBuffers tables
// Required feature bits (preamble offset 16).
inline constexpr uint64_t kFeatureReferenceChain = uint64_t{1} << 0;
inline constexpr uint64_t kFeatureQuantized = uint64_t{1} << 1;  // (0.3) lossy tensors
// (0.4) some chunk uses the cm stream codec (spec 7.7): older readers reject the file upfront.
inline constexpr uint64_t kFeatureContextModel = uint64_t{1} << 2;
// (0.5) some source file's prolog is zstd-coded (spec 8.4): an older reader would take the
// coded bytes for the prolog.
inline constexpr uint64_t kFeatureCodedProlog = uint64_t{1} << 3;
// (0.6) some chunk uses the cmf stream codec (spec 7.8).
inline constexpr uint64_t kFeatureFloatModel = uint64_t{1} << 4;
// (0.6) the header is stored as one zstd frame (spec 4.1): an older reader would take the frame
// for a FlatBuffers buffer.
inline constexpr uint64_t kFeatureCodedHeader = uint64_t{1} << 5;
// (0.7) some tensor is quantized with a level kind (spec 7.9), its chunks coded with cml.
inline constexpr uint64_t kFeatureLevels = uint64_t{1} << 6;
// (0.8) some tensor has the KeySplit predictor (spec 7.10): its chunks have ten streams.
inline constexpr uint64_t kFeatureKeySplit = uint64_t{1} << 7;
// (0.9) the file has an LSTM level model, its own or its parent's (spec 7.11): some chunks may
// use the lstm stream codec.
inline constexpr uint64_t kFeatureLstm = uint64_t{1} << 8;
// (0.10) a link's level Weight tensors take their Moment1's levels in the parent as aux levels
// (spec 7.9.3): the update follows the optimizer's moment.
inline constexpr uint64_t kFeatureMomentContext = uint64_t{1} << 9;
// (0.11) some chunk of a codebook-quantized tensor uses the lstm-cm stream codec (spec 7.11.7):
// cm's index decisions mixed with the file's LSTM model. Needs bit 8 (rule LM4).
inline constexpr uint64_t kFeatureLstmIndices = uint64_t{1} << 10;
inline constexpr uint64_t kKnownRequiredFeatures =
    kFeatureReferenceChain | kFeatureQuantized | kFeatureContextModel | kFeatureCodedProlog |
    kFeatureFloatModel | kFeatureCodedHeader | kFeatureLevels | kFeatureKeySplit | kFeatureLstm |
    kFeatureMomentContext | kFeatureLstmIndices;
// (0.5) Decoded length of a coded prolog, at most (spec 13).
inline constexpr uint64_t kMaxPrologBytes = uint64_t{1} << 30;
inline constexpr uint8_t kMaxQuantBits = 8;
// (0.7) Level kinds (spec 7.9): |level| < 2^24 (exact in binary32), step shifts up to 2^±32,
// log units 2^-4 .. 2^4.
inline constexpr int32_t kMaxLevel = (1 << 24) - 1;
inline constexpr uint8_t kMaxStepLimit = 32;
inline constexpr int8_t kMinLogUnit = -4;
inline constexpr int8_t kMaxLogUnit = 4;

// Reader-side limits, never looser than the format's own.
struct Limits {
  uint64_t max_header_bytes = kMaxHeaderBytes;
  uint64_t max_tensor_bytes = uint64_t{1} << 62;
  uint64_t max_prolog_bytes = kMaxPrologBytes;  // decoded length of a coded prolog
  // Bounded memory: called now and then while the parser checks the padding after every
  // chunk (rule L3 reads a few bytes per chunk, all over the file) with an offset below which
  // it reads nothing more, so that a caller parsing a mapped file can drop the pages read so
  // far (the kernel maps up to 16 pages around each one read: ~6 % of a large file otherwise).
  // Never changes the result. Unset: never called.
  std::function<void(uint64_t offset)> read_below;
};

struct Preamble {
  uint16_t major = 0;
  uint16_t minor = 0;
  uint64_t required_features = 0;
  uint64_t optional_features = 0;
  uint64_t header_offset = 0;
  uint64_t header_length = 0;
  uint32_t header_crc32c = 0;
};

struct ChunkInfo {
  uint64_t offset = 0;         // in the file
  uint64_t stored_length = 0;  // in the file
  uint64_t raw_offset = 0;     // in the tensor's decoded bytes (prefix sum of raw lengths)
  uint64_t raw_length = 0;
  uint32_t crc32c = 0;
};

// (0.3) A quantized tensor: one index per element; index 0 is the pruned value. (0.7) Or one
// signed integer level per element (the level kinds, spec 7.9).
struct QuantizationInfo {
  QuantKind kind = QuantKind::kInvalid;
  uint8_t bits = 0;             // codebook kinds: the index width
  std::vector<float> codebook;  // codebook kinds: index i > 0 -> codebook[i - 1]
  // Residual kinds: the reference is multiplied by this first (spec 7.6, 7.9); exactly 1 means
  // the reference itself. Finite and > 0.
  float reference_scale = 1.0f;
  float prune_k = NAN;          // informative
  float prune_threshold = NAN;  // informative
  // (0.7) Level kinds: element i's step is step * 2^shift_i, where shift_i follows the
  // exponent of the parent's decoded element i of tensor `step_source` (-1: shift_i = 0):
  // shift_i = clamp(floor(step_slope * (exponent_i - step_center) / 2), -step_limit, step_limit).
  float step = 0.0f;
  int32_t step_source = -1;
  int8_t step_slope = 0;      // +1 or -1 with a step_source, else 0
  int32_t step_center = 0;
  uint8_t step_limit = 0;
  int8_t log_unit = 0;        // kLevelLog: a level is 2^-log_unit in log2 of the value

  bool IsLevels() const { return IsLevelKind(kind); }
  // Bytes per element of the decoded symbol stream: a u8 index, or an i32 level.
  size_t SymbolBytes() const { return IsLevels() ? 4 : 1; }
  // Decoding needs the parent's tensor of the same name.
  bool NeedsReference() const {
    return kind == QuantKind::kResidual || kind == QuantKind::kLevelResidual ||
           kind == QuantKind::kLevelLog;
  }
};

struct TensorInfo {
  std::string name;
  DType dtype = DType::kInvalid;
  std::vector<uint64_t> shape;
  Role role = Role::kOther;
  int32_t owner = -1;  // index of the Weight this optimizer state belongs to, or -1
  Predictor predictor = Predictor::kNone;
  bool byte_planes = false;
  std::vector<ChunkInfo> chunks;
  std::optional<QuantizationInfo> quantization;

  // Decoding needs the parent's tensor of the same name (a predictor or a residual codebook).
  bool NeedsReference() const {
    return predictor != Predictor::kNone || (quantization && quantization->NeedsReference());
  }

  uint64_t num_elements = 1;  // product of shape (1 for 0-d)
  uint64_t byte_length = 0;   // num_elements * DTypeSize(dtype)
  uint64_t stored_length = 0; // sum of the chunks' stored lengths
};

struct LinkInfo {
  ContentId parent_content_id{};
  std::optional<int64_t> parent_step;
  std::string path_hint;
  uint32_t depth = 0;  // >= 1
};

using MetaValue = std::variant<int64_t, double, std::string, std::vector<uint8_t>, bool>;

struct MetaEntry {
  std::string key;
  MetaValue value;
};

struct Crc32Patch {
  uint64_t prolog_offset = 0;
  uint32_t tensor = 0;  // position in SourceFileInfo::tensors
};

struct SourceFileInfo {
  std::string path;
  SourceFormat format = SourceFormat::kRaw;
  // The decoded prolog. ParseArchive fills it only for a stored prolog; a coded one (0.5, spec
  // 8.4) is in `prolog_coded` until DecodeProlog runs (ChainReader::Open decodes every one).
  std::vector<uint8_t> prolog;
  std::vector<uint32_t> tensors;  // indices into Archive::tensors, in output order
  // splits[i]: prolog bytes written before tensors[i] (non-decreasing). Empty: the whole
  // prolog comes first.
  std::vector<uint64_t> splits{};
  std::vector<Crc32Patch> crc32_patches{};
  PrologCodec prolog_codec = PrologCodec::kStored;
  std::vector<uint8_t> prolog_coded{};  // the zstd frame, as stored in the header
  uint64_t prolog_length = 0;           // coded prologs: the decoded length
  uint32_t prolog_crc32c = 0;           // coded prologs: CRC-32C of the decoded prolog
  uint32_t prolog_parent_file = 0;      // ZstdParent: index in the parent's files

  // The decoded prolog's length, whether or not it has been decoded yet.
  uint64_t PrologLength() const {
    return prolog_codec == PrologCodec::kStored ? prolog.size() : prolog_length;
  }
  bool PrologDecoded() const { return prolog_codec == PrologCodec::kStored || !prolog.empty(); }
};

// A validated .ckz file. It refers to, but does not own, the file bytes it was parsed from:
// keep them alive while decoding.
struct Archive {
  ByteSpan file;
  Preamble preamble;
  ContentId content_id{};
  std::optional<int64_t> step;
  std::optional<LinkInfo> link;
  std::vector<TensorInfo> tensors;
  std::vector<SourceFileInfo> files;
  std::vector<MetaEntry> metadata;
  std::string writer;
  // The FlatBuffers header's size: preamble.header_length, or (0.6) the decoded size of a
  // zstd-coded header.
  uint64_t header_bytes = 0;
  // (0.9) The LSTM level model (spec 7.11) the file's lstm chunks code with: its own
  // (Header.lstm_model), or, when lstm_model_from_parent, its parent's, which the parser
  // cannot see: null until ResolveLstmModel sets it from the parent.
  std::shared_ptr<const LstmModel> lstm_model;
  bool lstm_model_from_parent = false;
  bool lstm_model_own = false;  // the header holds the model's parameters

  std::optional<size_t> FindTensor(std::string_view name) const;
  const MetaEntry* FindMetadata(std::string_view key) const;
  uint64_t TotalRawBytes() const;
  uint64_t TotalStoredBytes() const;

  std::unordered_map<std::string, size_t> index_by_name;
};

// Parses and validates the preamble only. `file_size` is the size of the whole file (the
// header range is checked against it). `bytes` must hold at least kPreambleSize bytes.
Result<Preamble> ParsePreamble(ByteSpan bytes, uint64_t file_size);

// Parses and fully validates a whole file.
Result<Archive> ParseArchive(ByteSpan file, const Limits& limits = {});

// (0.9, spec 10.2) Gives `link` its parent's LSTM model when its header says
// lstm_model_from_parent (the parent's own or, likewise, its parent's: resolved already);
// kReferenceMismatch when the parent has none. Nothing to do for other files.
Status ResolveLstmModel(Archive* link, const Archive& parent);

}  // namespace ckz

#endif  // CKZ_ARCHIVE_H_
