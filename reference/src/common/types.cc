#include "ckz/types.h"

namespace ckz {
namespace {

struct DTypeRow {
  DType dtype;
  const char* name;
  size_t size;
  bool is_float;
};
constexpr DTypeRow kDTypes[] = {
    {DType::kF64, "F64", 8, true},  {DType::kF32, "F32", 4, true}, {DType::kF16, "F16", 2, true},
    {DType::kBF16, "BF16", 2, true}, {DType::kI64, "I64", 8, false}, {DType::kI32, "I32", 4, false},
    {DType::kI16, "I16", 2, false}, {DType::kI8, "I8", 1, false},   {DType::kU8, "U8", 1, false},
    {DType::kBool, "BOOL", 1, false},
};

const DTypeRow* Row(DType dtype) {
  for (const auto& row : kDTypes)
    if (row.dtype == dtype) return &row;
  return nullptr;
}

}  // namespace

size_t DTypeSize(DType dtype) {
  const DTypeRow* row = Row(dtype);
  return row ? row->size : 0;
}

bool DTypeIsFloat(DType dtype) {
  const DTypeRow* row = Row(dtype);
  return row && row->is_float;
}

const char* DTypeName(DType dtype) {
  const DTypeRow* row = Row(dtype);
  return row ? row->name : "INVALID";
}

std::optional<DType> DTypeFromName(std::string_view name) {
  for (const auto& row : kDTypes)
    if (name == row.name) return row.dtype;
  return std::nullopt;
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kOther: return "other";
    case Role::kWeight: return "weight";
    case Role::kMoment1: return "moment1";
    case Role::kMoment2: return "moment2";
  }
  return "invalid";
}

const char* PredictorName(Predictor predictor) {
  switch (predictor) {
    case Predictor::kNone: return "none";
    case Predictor::kXorRef: return "xor";
    case Predictor::kSubRef: return "sub";
    case Predictor::kKeySplit: return "keysplit";
  }
  return "invalid";
}

const char* StreamCodecName(StreamCodec codec) {
  switch (codec) {
    case StreamCodec::kStored: return "stored";
    case StreamCodec::kZstd: return "zstd";
    case StreamCodec::kPacked: return "packed";
    case StreamCodec::kCm: return "cm";
    case StreamCodec::kCmFloat: return "cmf";
    case StreamCodec::kCmLevels: return "cml";
    case StreamCodec::kLstmLevels: return "lstm";
    case StreamCodec::kLstmIndices: return "lstm-cm";
  }
  return "invalid";
}

const char* QuantKindName(QuantKind kind) {
  switch (kind) {
    case QuantKind::kResidual: return "residual";
    case QuantKind::kDirect: return "direct";
    case QuantKind::kLevelResidual: return "level-residual";
    case QuantKind::kLevelDirect: return "level-direct";
    case QuantKind::kLevelLog: return "level-log";
    case QuantKind::kInvalid: break;
  }
  return "invalid";
}

const char* SourceFormatName(SourceFormat format) {
  switch (format) {
    case SourceFormat::kRaw: return "raw";
    case SourceFormat::kSafetensors: return "safetensors";
    case SourceFormat::kTorchZip: return "torch-zip";
  }
  return "invalid";
}

const char* PrologCodecName(PrologCodec codec) {
  switch (codec) {
    case PrologCodec::kStored: return "stored";
    case PrologCodec::kZstd: return "zstd";
    case PrologCodec::kZstdParent: return "zstd-parent";
  }
  return "invalid";
}

std::string ContentIdHex(const ContentId& id) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (uint8_t b : id) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

std::optional<ContentId> ContentIdFromHex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  ContentId id;
  for (size_t i = 0; i < 32; ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    id[i] = uint8_t(hi << 4 | lo);
  }
  return id;
}

}  // namespace ckz
