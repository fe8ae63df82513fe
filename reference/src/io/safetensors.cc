// safetensors headers and model.safetensors.index.json: parsed strictly (every rule of
// ckz/safetensors.h, in the order written there), and built back canonically.
#include "ckz/safetensors.h"

#include <algorithm>
#include <string_view>
#include <unordered_set>

#include "common/bytes.h"
#include "format/rules.h"
#include "io/json.h"

namespace ckz {
namespace {

// Messages read "<field> at offset <file offset>: <what is wrong>".
std::string At(const std::string& field, uint64_t offset) {
  return field + " at offset " + std::to_string(offset);
}

Status Malformed(const std::string& field, uint64_t offset, const std::string& what) {
  return Status(ErrorCode::kSafetensorsMalformed, At(field, offset) + ": " + what);
}

// "an array", "a string", ... for "is <kind>, not <expected>".
std::string Kind(const JsonValue& v) {
  switch (v.type()) {
    case JsonValue::Type::kNull:
      return "null";
    case JsonValue::Type::kBool:
      return "a boolean";
    case JsonValue::Type::kNumber:
      return "the number " + v.number_text();
    case JsonValue::Type::kString:
      return "a string";
    case JsonValue::Type::kArray:
      return "an array";
    case JsonValue::Type::kObject:
      return "an object";
  }
  return "invalid";
}

// Syntax errors in the header are errors of the safetensors file; repeated keys keep their
// own code (kDuplicateName), as duplicate tensor names do.
Status AsFormatError(const Status& json_status, ErrorCode code, const std::string& what) {
  if (json_status.code() != ErrorCode::kJsonMalformed) return json_status.WithContext(what);
  return Status(code, what + ": " + json_status.message());
}

Status ParseMetadata(const JsonValue& value,
                     std::vector<std::pair<std::string, std::string>>* out) {
  if (!value.is_object())
    return Malformed("\"__metadata__\"", value.offset(),
                     "is " + Kind(value) + ", not an object of strings");
  for (const JsonMember& m : value.members()) {
    if (!m.value.is_string())
      return Malformed("\"__metadata__\"." + JsonQuote(m.key), m.value.offset(),
                       "is " + Kind(m.value) + ", not a string");
    out->emplace_back(m.key, m.value.string_value());
  }
  return Status::Ok();
}

Status ParseUint64(const JsonValue& value, const std::string& field, uint64_t* out) {
  std::optional<uint64_t> v = value.AsUint64();
  if (!v)
    return Malformed(field, value.offset(), "is " + Kind(value) + ", not an integer in 0..2^64-1");
  *out = *v;
  return Status::Ok();
}

// One tensor entry; `offsets_at` receives the file offset of its data_offsets (for the
// tiling messages, which come later).
Status ParseTensorEntry(const JsonMember& member, SafetensorsEntry* out, uint64_t* offsets_at) {
  const std::string field = "tensor " + JsonQuote(member.key);
  CKZ_RETURN_IF_ERROR(CheckName(member.key, At(field, member.key_offset)));
  out->name = member.key;
  const JsonValue& v = member.value;
  if (!v.is_object())
    return Malformed(field, v.offset(),
                     "is " + Kind(v) + ", not an object {dtype, shape, data_offsets}");

  const JsonValue* dtype = nullptr;
  const JsonValue* shape = nullptr;
  const JsonValue* offsets = nullptr;
  for (const JsonMember& m : v.members()) {
    if (m.key == "dtype") {
      dtype = &m.value;
    } else if (m.key == "shape") {
      shape = &m.value;
    } else if (m.key == "data_offsets") {
      offsets = &m.value;
    } else {
      return Malformed(field + "." + JsonQuote(m.key), m.key_offset,
                       "unknown key; a tensor has exactly dtype, shape and data_offsets");
    }
  }
  if (!dtype || !shape || !offsets)
    return Malformed(field, v.offset(),
                     std::string("lacks \"") +
                         (!dtype   ? "dtype"
                          : !shape ? "shape"
                                   : "data_offsets") +
                         "\"");

  if (!dtype->is_string())
    return Malformed(field + ".dtype", dtype->offset(), "is " + Kind(*dtype) + ", not a string");
  std::optional<DType> dt = DTypeFromName(dtype->string_value());
  if (!dt)
    return Status(ErrorCode::kUnsupportedDtype,
                  At(field + ".dtype", dtype->offset()) + ": " + JsonQuote(dtype->string_value()) +
                      " is not supported (F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL are)");
  out->dtype = *dt;

  if (!shape->is_array())
    return Malformed(field + ".shape", shape->offset(), "is " + Kind(*shape) + ", not an array");
  out->shape.resize(shape->items().size());
  for (size_t i = 0; i < out->shape.size(); ++i)
    CKZ_RETURN_IF_ERROR(ParseUint64(shape->items()[i], field + ".shape[" + std::to_string(i) + "]",
                                    &out->shape[i]));
  uint64_t num_elements, byte_length;
  CKZ_RETURN_IF_ERROR(ShapeBytes(out->shape, out->dtype, At(field + ".shape", shape->offset()),
                                 &num_elements, &byte_length));

  const std::string offsets_field = field + ".data_offsets";
  if (!offsets->is_array() || offsets->items().size() != 2)
    return Malformed(offsets_field, offsets->offset(),
                     "is " + Kind(*offsets) + ", not an array [begin, end]");
  *offsets_at = offsets->offset();
  CKZ_RETURN_IF_ERROR(ParseUint64(offsets->items()[0], offsets_field + "[0]", &out->begin));
  CKZ_RETURN_IF_ERROR(ParseUint64(offsets->items()[1], offsets_field + "[1]", &out->end));
  const std::string range =
      "[" + std::to_string(out->begin) + ", " + std::to_string(out->end) + "]";
  if (out->begin > out->end)
    return Malformed(offsets_field, offsets->offset(), range + " ends before it begins");
  if (out->end - out->begin != byte_length)
    return Malformed(offsets_field, offsets->offset(),
                     range + " holds " + std::to_string(out->end - out->begin) + " bytes; " +
                         dtype->string_value() + " of that shape needs " +
                         std::to_string(byte_length));
  return Status::Ok();
}

}  // namespace

Result<SafetensorsHeader> ParseSafetensors(ByteSpan file) {
  if (file.size < 8)
    return Malformed("header length", 0,
                     "the file is " + std::to_string(file.size) +
                         " bytes; a safetensors file starts with an 8-byte header length");
  const uint64_t n = LoadLE64(file.data);
  if (n > kMaxSafetensorsHeaderBytes)
    return Malformed(
        "header length", 0,
        std::to_string(n) + " is above the limit of " + std::to_string(kMaxSafetensorsHeaderBytes));
  if (n > file.size - 8)
    return Malformed("header length", 0,
                     std::to_string(n) + " runs past the end of the " + std::to_string(file.size) +
                         "-byte file");
  SafetensorsHeader header;
  header.data_start = 8 + n;
  const uint64_t data_size = file.size - header.data_start;

  JsonLimits limits;
  limits.max_bytes = kMaxSafetensorsHeaderBytes;
  limits.base_offset = 8;
  Result<JsonValue> json = ParseJson(file.subspan(8, size_t(n)), limits);
  if (!json.ok()) return AsFormatError(json.status(), ErrorCode::kSafetensorsMalformed, "header");
  if (!json->is_object())
    return Malformed("header", json->offset(), "is " + Kind(*json) + ", not a JSON object");

  // Duplicate keys, tensor names included, were rejected by ParseJson (kDuplicateName).
  struct Parsed {
    SafetensorsEntry entry;
    uint64_t at;  // file offset of its data_offsets, for messages
  };
  std::vector<Parsed> parsed;
  parsed.reserve(json->members().size());
  for (const JsonMember& m : json->members()) {
    if (m.key == "__metadata__") {
      CKZ_RETURN_IF_ERROR(ParseMetadata(m.value, &header.metadata));
      continue;
    }
    Parsed p;
    CKZ_RETURN_IF_ERROR(ParseTensorEntry(m, &p.entry, &p.at));
    parsed.push_back(std::move(p));
  }

  // Zero-length tensors sort before a tensor starting at the same offset, then by name, so
  // the order of the data is well defined.
  std::sort(parsed.begin(), parsed.end(), [](const Parsed& a, const Parsed& b) {
    if (a.entry.begin != b.entry.begin) return a.entry.begin < b.entry.begin;
    if (a.entry.end != b.entry.end) return a.entry.end < b.entry.end;
    return a.entry.name < b.entry.name;
  });
  uint64_t expected = 0;
  const std::string* previous = nullptr;
  for (const Parsed& p : parsed) {
    const SafetensorsEntry& t = p.entry;
    const std::string field = "tensor " + JsonQuote(t.name) + ".data_offsets";
    const std::string range = "[" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "]";
    const std::string after = previous
                                  ? "tensor " + JsonQuote(*previous) +
                                        ", which ends at data offset " + std::to_string(expected)
                                  : "the start of the data section";
    if (t.begin > expected) return Malformed(field, p.at, range + " leaves a gap after " + after);
    if (t.begin < expected) return Malformed(field, p.at, range + " overlaps " + after);
    if (t.end > data_size)
      return Malformed(field, p.at,
                       range + " ends past the data section, which holds " +
                           std::to_string(data_size) + " bytes");
    expected = t.end;
    previous = &t.name;
  }
  if (expected != data_size)
    return Malformed("data section", header.data_start + expected,
                     "the tensors cover " + std::to_string(expected) + " of its " +
                         std::to_string(data_size) + " bytes; the rest is in no tensor");
  header.tensors.reserve(parsed.size());
  for (Parsed& p : parsed) header.tensors.push_back(std::move(p.entry));
  return header;
}

std::vector<uint8_t> BuildSafetensorsProlog(
    std::vector<SafetensorsEntry>& tensors,
    const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::string json = "{";
  uint64_t offset = 0;
  for (SafetensorsEntry& t : tensors) {
    uint64_t num_elements = 0, byte_length = 0;
    // Shapes come from validated sources; an overflowing one gets no bytes.
    if (!ShapeBytes(t.shape, t.dtype, t.name, &num_elements, &byte_length).ok()) byte_length = 0;
    t.begin = offset;
    t.end = offset + byte_length;
    offset = t.end;
    if (json.size() > 1) json.push_back(',');
    AppendJsonString(t.name, &json);
    json += ":{\"dtype\":\"";
    json += DTypeName(t.dtype);
    json += "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) {
      if (i) json.push_back(',');
      json += std::to_string(t.shape[i]);
    }
    json += "],\"data_offsets\":[" + std::to_string(t.begin) + "," + std::to_string(t.end) + "]}";
  }
  if (!metadata.empty()) {
    if (json.size() > 1) json.push_back(',');
    json += "\"__metadata__\":{";
    for (size_t i = 0; i < metadata.size(); ++i) {
      if (i) json.push_back(',');
      AppendJsonString(metadata[i].first, &json);
      json.push_back(':');
      AppendJsonString(metadata[i].second, &json);
    }
    json.push_back('}');
  }
  json.push_back('}');
  // Spaces (JSON whitespace) pad the header so that the data section starts 8-byte aligned.
  while (json.size() % 8 != 0) json.push_back(' ');

  std::vector<uint8_t> prolog(8 + json.size());
  StoreLE64(prolog.data(), json.size());
  std::copy(json.begin(), json.end(), prolog.begin() + 8);
  return prolog;
}

Result<ShardIndex> ParseShardIndex(ByteSpan json_bytes) {
  JsonLimits limits;
  limits.max_bytes = kMaxSafetensorsHeaderBytes;
  Result<JsonValue> json = ParseJson(json_bytes, limits);
  if (!json.ok())
    return AsFormatError(json.status(), ErrorCode::kShardIndexMalformed, "shard index");
  auto malformed = [](const std::string& field, uint64_t offset, const std::string& what) {
    return Status(ErrorCode::kShardIndexMalformed,
                  "shard index " + At(field, offset) + ": " + what);
  };
  if (!json->is_object())
    return malformed("top level", json->offset(), "is " + Kind(*json) + ", not an object");
  // Other top-level keys are ignored: the index file itself is kept verbatim.
  const JsonValue* metadata = json->Find("metadata");
  if (metadata && !metadata->is_object())
    return malformed("\"metadata\"", metadata->offset(),
                     "is " + Kind(*metadata) + ", not an object");
  const JsonValue* map = json->Find("weight_map");
  if (!map) return malformed("top level", json->offset(), "has no \"weight_map\"");
  if (!map->is_object())
    return malformed("\"weight_map\"", map->offset(), "is " + Kind(*map) + ", not an object");
  if (map->members().empty()) return malformed("\"weight_map\"", map->offset(), "is empty");

  ShardIndex index;
  std::unordered_set<std::string> seen;
  index.weight_map.reserve(map->members().size());
  for (const JsonMember& m : map->members()) {
    const std::string field = "weight_map." + JsonQuote(m.key);
    CKZ_RETURN_IF_ERROR(CheckName(m.key, "shard index " + At(field, m.key_offset)));
    if (!m.value.is_string())
      return malformed(field, m.value.offset(), "is " + Kind(m.value) + ", not a file name");
    const std::string& shard = m.value.string_value();
    CKZ_RETURN_IF_ERROR(CheckRelativePath(shard, "shard index " + At(field, m.value.offset())));
    index.weight_map.emplace_back(m.key, shard);
    if (seen.insert(shard).second) index.shards.push_back(shard);
  }
  return index;
}

}  // namespace ckz
