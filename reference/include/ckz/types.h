// Plain value types shared by every part of the public API.
#ifndef CKZ_TYPES_H_
#define CKZ_TYPES_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ckz {

// Read-only view of bytes (C++17 has no std::span).
struct ByteSpan {
  const uint8_t* data = nullptr;
  size_t size = 0;

  ByteSpan() = default;
  ByteSpan(const uint8_t* d, size_t n) : data(d), size(n) {}
  ByteSpan(const std::vector<uint8_t>& v) : data(v.data()), size(v.size()) {}  // NOLINT
  bool empty() const { return size == 0; }
  ByteSpan subspan(size_t offset, size_t length) const { return {data + offset, length}; }
  const uint8_t* begin() const { return data; }
  const uint8_t* end() const { return data + size; }
};

struct MutableByteSpan {
  uint8_t* data = nullptr;
  size_t size = 0;

  MutableByteSpan() = default;
  MutableByteSpan(uint8_t* d, size_t n) : data(d), size(n) {}
  MutableByteSpan(std::vector<uint8_t>& v) : data(v.data()), size(v.size()) {}  // NOLINT
  operator ByteSpan() const { return {data, size}; }  // NOLINT
  MutableByteSpan subspan(size_t offset, size_t length) const { return {data + offset, length}; }
};

// Values match schema/ckz.fbs and spec/ckz.md (they feed the content id).
enum class DType : uint8_t {
  kInvalid = 0,
  kF64 = 1,
  kF32 = 2,
  kF16 = 3,
  kBF16 = 4,
  kI64 = 5,
  kI32 = 6,
  kI16 = 7,
  kI8 = 8,
  kU8 = 9,
  kBool = 10,
};
constexpr uint8_t kMaxDType = 10;

// Bytes per element; 0 for kInvalid.
size_t DTypeSize(DType dtype);
bool DTypeIsFloat(DType dtype);
// Element `i` of little-endian elements of a float dtype (F64, F32, F16, BF16) at `p`, exactly
// as a double; 0 for any other dtype.
double FloatElement(DType dtype, const uint8_t* p, size_t i);
// Safetensors spelling: "F32", "BF16", "BOOL", ...
const char* DTypeName(DType dtype);
std::optional<DType> DTypeFromName(std::string_view name);

enum class Role : uint8_t { kOther = 0, kWeight = 1, kMoment1 = 2, kMoment2 = 3 };
constexpr uint8_t kMaxRole = 3;
const char* RoleName(Role role);  // "other", "weight", "moment1", "moment2"

// (0.8) kKeySplit: 16-bit floats as key differences split into streams (spec 7.10).
enum class Predictor : uint8_t { kNone = 0, kXorRef = 1, kSubRef = 2, kKeySplit = 3 };
constexpr uint8_t kMaxPredictor = 3;
const char* PredictorName(Predictor predictor);  // "none", "xor", "sub", "keysplit"

// Per-stream entropy codec, stored in each chunk's stream directory (spec 7.2). kPacked (0.3)
// and kCm (0.4, the context-model arithmetic coder, spec 7.7) are for index streams of
// quantized tensors only; kCmFloat (0.6, spec 7.8) for unquantized F32 tensors without byte
// planes, whose values it codes against the reference.
// kCmLevels (0.7, spec 7.9) codes the integer levels of a tensor quantized with a level kind.
enum class StreamCodec : uint8_t {
  kStored = 0,
  kZstd = 1,
  kPacked = 2,
  kCm = 3,
  kCmFloat = 4,
  kCmLevels = 5,
  kLstmLevels = 6,  // (0.9) cml mixed with the file's LSTM model (spec 7.11)
  kLstmIndices = 7,  // (0.11) cm mixed with the file's LSTM model (spec 7.11.7)
};
constexpr uint8_t kMaxStreamCodec = 7;
// "stored", "zstd", "packed", "cm", "cmf", "cml", "lstm", "lstm-cm"
const char* StreamCodecName(StreamCodec codec);

// How a quantized tensor's indices become values (spec 7.6): a codebook of centres. Since 0.7
// (spec 7.9), the level kinds: each element is a signed integer level times a step.
enum class QuantKind : uint8_t {
  kInvalid = 0,
  kResidual = 1,
  kDirect = 2,
  kLevelResidual = 3,  // reference * scale + level * step
  kLevelDirect = 4,    // level * step
  kLevelLog = 5,       // reference * scale * 2^(level / 2^log_unit)
};
constexpr uint8_t kMaxQuantKind = 5;
// "residual", "direct", "level-residual", "level-direct", "level-log"
const char* QuantKindName(QuantKind kind);
inline bool IsLevelKind(QuantKind kind) { return kind >= QuantKind::kLevelResidual; }

enum class SourceFormat : uint8_t { kRaw = 0, kSafetensors = 1, kTorchZip = 2 };
constexpr uint8_t kMaxSourceFormat = 2;
const char* SourceFormatName(SourceFormat format);

// (0.5) How a source file's prolog is stored in the header (spec 8.4): verbatim, as one zstd
// frame, or as one zstd frame whose history is a prolog of the parent link.
enum class PrologCodec : uint8_t { kStored = 0, kZstd = 1, kZstdParent = 2 };
constexpr uint8_t kMaxPrologCodec = 2;
const char* PrologCodecName(PrologCodec codec);  // "stored", "zstd", "zstd-parent"

// Identity of a decoded checkpoint: SHA-256 over its tensors (spec 6).
using ContentId = std::array<uint8_t, 32>;
std::string ContentIdHex(const ContentId& id);
std::optional<ContentId> ContentIdFromHex(std::string_view hex);

}  // namespace ckz

#endif  // CKZ_TYPES_H_
