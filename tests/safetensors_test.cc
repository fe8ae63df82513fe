// safetensors parsing (one handcrafted bad file per rule, each with its exact error code),
// canonical prologs, and shard indexes.
#include "ckz/safetensors.h"

#include <gtest/gtest.h>

#include <string>

#include "common/bytes.h"
#include "test_util.h"

namespace ckz {
namespace {

#define EXPECT_MESSAGE_HAS(status, text) \
  EXPECT_NE((status).message().find(text), std::string::npos) << (status).message()

// u64le N, then `json` (N bytes), then `data_bytes` bytes of data.
std::vector<uint8_t> File(const std::string& json, size_t data_bytes = 0) {
  std::vector<uint8_t> file(8 + json.size() + data_bytes);
  StoreLE64(file.data(), json.size());
  std::copy(json.begin(), json.end(), file.begin() + 8);
  for (size_t i = 0; i < data_bytes; ++i) file[8 + json.size() + i] = uint8_t(i * 7 + 1);
  return file;
}

ErrorCode CodeOf(const std::string& json, size_t data_bytes = 0) {
  return ParseSafetensors(File(json, data_bytes)).status().code();
}

// One F32 tensor "w" with the given fields spliced in.
std::string OneTensor(const std::string& fields) { return "{\"w\":{" + fields + "}}"; }

ByteSpan Bytes(const std::string& s) {
  return ByteSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

TEST(Safetensors, EveryDtypeRoundTripsThroughABuiltProlog) {
  std::vector<SafetensorsEntry> entries = {
      {"f64", DType::kF64, {3, 5}, 0, 0}, {"f32", DType::kF32, {2, 3}, 0, 0},
      {"f16", DType::kF16, {7}, 0, 0},    {"bf16", DType::kBF16, {1, 1, 3}, 0, 0},
      {"i64", DType::kI64, {2}, 0, 0},    {"i32", DType::kI32, {2, 2}, 0, 0},
      {"i16", DType::kI16, {5}, 0, 0},    {"i8", DType::kI8, {3}, 0, 0},
      {"u8", DType::kU8, {9}, 0, 0},      {"bool", DType::kBool, {4}, 0, 0},
      {"scalar", DType::kF32, {}, 0, 0},  {"empty", DType::kF16, {4, 0}, 0, 0},
      {"empty1d", DType::kI8, {0}, 0, 0}, {"tail", DType::kU8, {1}, 0, 0},
  };
  const std::vector<std::pair<std::string, std::string>> metadata = {
      {"format", "pt"}, {"step", "1200"}, {"quote\"d", "line\nbreak \xC3\xA9"}};
  std::vector<uint8_t> file = BuildSafetensorsProlog(entries, metadata);
  ASSERT_EQ(file.size() % 8, 0u);
  EXPECT_EQ(LoadLE64(file.data()) + 8, file.size());
  const uint64_t data_start = file.size();
  uint64_t expected_offset = 0;
  for (const SafetensorsEntry& e : entries) {
    EXPECT_EQ(e.begin, expected_offset) << e.name;
    expected_offset = e.end;
  }
  for (uint64_t i = 0; i < expected_offset; ++i) file.push_back(uint8_t(i));

  Result<SafetensorsHeader> h = ParseSafetensors(file);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->data_start, data_start);
  EXPECT_EQ(h->metadata, metadata);
  ASSERT_EQ(h->tensors.size(), entries.size());
  // Data order: zero-length tensors first at a shared offset, by name.
  std::vector<std::string> names;
  for (const SafetensorsEntry& t : h->tensors) names.push_back(t.name);
  std::vector<std::string> expected_names;
  for (const SafetensorsEntry& e : entries) expected_names.push_back(e.name);
  EXPECT_EQ(names, expected_names);
  for (size_t i = 0; i < entries.size(); ++i) {
    const SafetensorsEntry& a = h->tensors[i];
    const SafetensorsEntry& b = entries[i];
    EXPECT_EQ(a.dtype, b.dtype) << a.name;
    EXPECT_EQ(a.shape, b.shape) << a.name;
    EXPECT_EQ(a.begin, b.begin) << a.name;
    EXPECT_EQ(a.end, b.end) << a.name;
  }
}

TEST(Safetensors, CanonicalPrologText) {
  std::vector<SafetensorsEntry> entries = {{"b", DType::kF32, {2, 3}, 99, 99},
                                           {"a\"x", DType::kBF16, {}, 0, 0}};
  std::vector<uint8_t> prolog = BuildSafetensorsProlog(entries, {{"k", "v"}});
  const std::string json(prolog.begin() + 8, prolog.end());
  const std::string expected =
      R"({"b":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("a\"x":{"dtype":"BF16","shape":[],"data_offsets":[24,26]},"__metadata__":{"k":"v"}})";
  ASSERT_GE(json.size(), expected.size());
  EXPECT_EQ(json.substr(0, expected.size()), expected);
  EXPECT_EQ(json.substr(expected.size()), std::string(json.size() - expected.size(), ' '));
  EXPECT_LT(json.size() - expected.size(), 8u);
  EXPECT_EQ(entries[0].begin, 0u);
  EXPECT_EQ(entries[0].end, 24u);
  EXPECT_EQ(entries[1].begin, 24u);
  EXPECT_EQ(entries[1].end, 26u);

  std::vector<SafetensorsEntry> none;
  prolog = BuildSafetensorsProlog(none, {});
  EXPECT_EQ(std::string(prolog.begin() + 8, prolog.end()), "{}      ");
  Result<SafetensorsHeader> h = ParseSafetensors(prolog);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_TRUE(h->tensors.empty());
  EXPECT_EQ(h->data_start, 16u);
}

TEST(Safetensors, HandwrittenFileInAnyKeyOrder) {
  const std::string json =
      R"({ "__metadata__" : {"a": "1"}, "z": {"shape": [2], "data_offsets": [8, 16], "dtype": "I32"},)"
      R"( "y": {"data_offsets": [0, 8], "dtype": "F64", "shape": []} })";
  Result<SafetensorsHeader> h = ParseSafetensors(File(json, 16));
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(h->tensors.size(), 2u);
  EXPECT_EQ(h->tensors[0].name, "y");
  EXPECT_EQ(h->tensors[0].dtype, DType::kF64);
  EXPECT_TRUE(h->tensors[0].shape.empty());
  EXPECT_EQ(h->tensors[1].name, "z");
  EXPECT_EQ(h->tensors[1].shape, std::vector<uint64_t>{2});
  EXPECT_EQ(h->data_start, 8 + json.size());
  ASSERT_EQ(h->metadata.size(), 1u);
  EXPECT_EQ(h->metadata[0].first, "a");
}

TEST(Safetensors, ZeroLengthTensorsTieByNameBeforeTheirNeighbour) {
  const std::string json = R"({"c":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                           R"("b":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},)"
                           R"("a":{"dtype":"U8","shape":[0,5],"data_offsets":[0,0]},)"
                           R"("d":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}})";
  Result<SafetensorsHeader> h = ParseSafetensors(File(json, 2));
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  std::vector<std::string> names;
  for (const auto& t : h->tensors) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "c", "d"}));
}

TEST(Safetensors, SizeFields) {
  EXPECT_EQ(ParseSafetensors(std::vector<uint8_t>{}).status().code(),
            ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(ParseSafetensors(std::vector<uint8_t>(7, 0)).status().code(),
            ErrorCode::kSafetensorsMalformed);
  // N = 0: an empty header is not a JSON object.
  EXPECT_EQ(ParseSafetensors(std::vector<uint8_t>(8, 0)).status().code(),
            ErrorCode::kSafetensorsMalformed);
  std::vector<uint8_t> file = File("{}");
  StoreLE64(file.data(), 3);  // one byte past the end
  Status s = ParseSafetensors(file).status();
  EXPECT_EQ(s.code(), ErrorCode::kSafetensorsMalformed);
  EXPECT_MESSAGE_HAS(s, "offset 0");
  StoreLE64(file.data(), UINT64_MAX);  // 8 + N overflows
  EXPECT_EQ(ParseSafetensors(file).status().code(), ErrorCode::kSafetensorsMalformed);
  StoreLE64(file.data(), kMaxSafetensorsHeaderBytes + 1);
  s = ParseSafetensors(file).status();
  EXPECT_EQ(s.code(), ErrorCode::kSafetensorsMalformed);
  EXPECT_MESSAGE_HAS(s, "limit");
}

TEST(Safetensors, HeaderMustBeAJsonObject) {
  Status s = ParseSafetensors(File("{\"w\":")).status();
  EXPECT_EQ(s.code(), ErrorCode::kSafetensorsMalformed);
  EXPECT_MESSAGE_HAS(s, "offset 13");  // JSON offsets are file offsets
  EXPECT_EQ(CodeOf("[]"), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(CodeOf("\"x\""), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(CodeOf("{} x"), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(CodeOf("{\"\xFF\":1}"), ErrorCode::kSafetensorsMalformed);  // not UTF-8
  EXPECT_EQ(CodeOf(std::string("{}\0", 3)), ErrorCode::kSafetensorsMalformed);
  // Trailing spaces (the padding writers use) are fine; so is leading whitespace.
  EXPECT_EQ(CodeOf(" {}   "), ErrorCode::kOk);
}

TEST(Safetensors, Metadata) {
  EXPECT_EQ(CodeOf(R"({"__metadata__":{}})"), ErrorCode::kOk);
  EXPECT_EQ(CodeOf(R"({"__metadata__":[]})"), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(CodeOf(R"({"__metadata__":"x"})"), ErrorCode::kSafetensorsMalformed);
  Status s = ParseSafetensors(File(R"({"__metadata__":{"a":"1","step":12}})")).status();
  EXPECT_EQ(s.code(), ErrorCode::kSafetensorsMalformed);
  EXPECT_MESSAGE_HAS(s, "\"step\"");
  EXPECT_MESSAGE_HAS(s, "offset 40");
  EXPECT_EQ(CodeOf(R"({"__metadata__":{"a":null}})"), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(CodeOf(R"({"__metadata__":{"a":"1","a":"2"}})"), ErrorCode::kDuplicateName);
  EXPECT_EQ(CodeOf(R"({"__metadata__":{},"__metadata__":{}})"), ErrorCode::kDuplicateName);
}

TEST(Safetensors, TensorObjectFields) {
  const std::string dtype = R"("dtype":"F32")";
  const std::string shape = R"("shape":[2])";
  const std::string offsets = R"("data_offsets":[0,8])";
  EXPECT_EQ(CodeOf(OneTensor(dtype + "," + shape + "," + offsets), 8), ErrorCode::kOk);
  EXPECT_EQ(CodeOf(R"({"w":[]})", 8), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(CodeOf(R"({"w":"F32"})", 8), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(CodeOf(OneTensor(shape + "," + offsets), 8), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(CodeOf(OneTensor(dtype + "," + offsets), 8), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(CodeOf(OneTensor(dtype + "," + shape), 8), ErrorCode::kSafetensorsMalformed);
  Status s =
      ParseSafetensors(File(OneTensor(dtype + "," + shape + "," + offsets + R"(,"extra":1)"), 8))
          .status();
  EXPECT_EQ(s.code(), ErrorCode::kSafetensorsMalformed);
  EXPECT_MESSAGE_HAS(s, "tensor \"w\"");
  EXPECT_MESSAGE_HAS(s, "\"extra\"");
  EXPECT_MESSAGE_HAS(s, "offset 61");
  EXPECT_EQ(CodeOf(OneTensor(dtype + "," + dtype + "," + shape + "," + offsets), 8),
            ErrorCode::kDuplicateName);
}

TEST(Safetensors, Dtype) {
  const std::string rest = R"(,"shape":[2],"data_offsets":[0,8])";
  EXPECT_EQ(CodeOf(OneTensor(R"("dtype":4)" + rest), 8), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(CodeOf(OneTensor(R"("dtype":null)" + rest), 8), ErrorCode::kSafetensorsMalformed);
  for (const char* unsupported : {"F8_E4M3", "U16", "U32", "U64", "C64", "f32", "", "F32 "}) {
    Status s = ParseSafetensors(
                   File(OneTensor("\"dtype\":\"" + std::string(unsupported) + "\"" + rest), 8))
                   .status();
    EXPECT_EQ(s.code(), ErrorCode::kUnsupportedDtype) << unsupported;
    EXPECT_MESSAGE_HAS(s, "\"" + std::string(unsupported) + "\"");
    EXPECT_MESSAGE_HAS(s, "tensor \"w\"");
    EXPECT_MESSAGE_HAS(s, "offset 22");
  }
}

TEST(Safetensors, Shape) {
  auto with_shape = [](const std::string& shape, const std::string& offsets = "[0,4]") {
    return CodeOf(OneTensor(R"("dtype":"U8","shape":)" + shape + R"(,"data_offsets":)" + offsets),
                  4);
  };
  EXPECT_EQ(with_shape("[4]"), ErrorCode::kOk);
  EXPECT_EQ(with_shape("[2,1,2]"), ErrorCode::kOk);
  EXPECT_EQ(with_shape("4"), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(with_shape("{}"), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(with_shape("[-4]"), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(with_shape("[-0]", "[0,0]"), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(with_shape("[4.0]"), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(with_shape("[4e0]"), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(with_shape("[\"4\"]"), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(with_shape("[[4]]"), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(with_shape("[18446744073709551616]"), ErrorCode::kSafetensorsMalformed);
  // Products past 2^63 bytes, and more than 32 dimensions.
  EXPECT_EQ(with_shape("[4294967296,4294967296]"), ErrorCode::kShapeOverflow);
  std::string many = "[1";
  for (int i = 0; i < 32; ++i) many += ",1";
  many += "]";
  EXPECT_EQ(with_shape(many, "[0,1]"), ErrorCode::kShapeOverflow);
}

TEST(Safetensors, DataOffsets) {
  auto with_offsets = [](const std::string& offsets, size_t data = 8) {
    return ParseSafetensors(
               File(OneTensor(R"("dtype":"F32","shape":[2],"data_offsets":)" + offsets), data))
        .status();
  };
  EXPECT_TRUE(with_offsets("[0,8]").ok());
  for (const char* bad :
       {"{}", "[]", "[0]", "[0,8,8]", "[0,\"8\"]", "[0,8.0]", "[-1,8]", "[0,18446744073709551616]"})
    EXPECT_EQ(with_offsets(bad).code(), ErrorCode::kSafetensorsMalformed) << bad;
  Status s = with_offsets("[8,0]");
  EXPECT_EQ(s.code(), ErrorCode::kSafetensorsMalformed);
  EXPECT_MESSAGE_HAS(s, "ends before it begins");
  s = with_offsets("[0,12]", 12);  // 12 bytes for 2 x F32
  EXPECT_EQ(s.code(), ErrorCode::kSafetensorsMalformed);
  EXPECT_MESSAGE_HAS(s, "needs 8");
  EXPECT_MESSAGE_HAS(s, "tensor \"w\".data_offsets");
}

TEST(Safetensors, TensorsMustTileTheDataSection) {
  auto u8 = [](const std::string& name, uint64_t begin, uint64_t end) {
    return "\"" + name + "\":{\"dtype\":\"U8\",\"shape\":[" + std::to_string(end - begin) +
           "],\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(end) + "]}";
  };
  EXPECT_EQ(CodeOf("{" + u8("a", 0, 4) + "," + u8("b", 4, 6) + "}", 6), ErrorCode::kOk);
  // A gap before the first tensor.
  Status s = ParseSafetensors(File("{" + u8("a", 2, 6) + "}", 6)).status();
  EXPECT_EQ(s.code(), ErrorCode::kSafetensorsMalformed);
  EXPECT_MESSAGE_HAS(s, "gap");
  EXPECT_MESSAGE_HAS(s, "tensor \"a\"");
  // A gap between tensors.
  EXPECT_EQ(CodeOf("{" + u8("a", 0, 2) + "," + u8("b", 3, 6) + "}", 6),
            ErrorCode::kSafetensorsMalformed);
  // Overlaps, including two tensors at the same offset.
  s = ParseSafetensors(File("{" + u8("a", 0, 4) + "," + u8("b", 2, 6) + "}", 6)).status();
  EXPECT_EQ(s.code(), ErrorCode::kSafetensorsMalformed);
  EXPECT_MESSAGE_HAS(s, "overlap");
  EXPECT_EQ(CodeOf("{" + u8("a", 0, 3) + "," + u8("b", 0, 3) + "}", 3),
            ErrorCode::kSafetensorsMalformed);
  // Data left over after the last tensor, or too little data.
  s = ParseSafetensors(File("{" + u8("a", 0, 4) + "}", 5)).status();
  EXPECT_EQ(s.code(), ErrorCode::kSafetensorsMalformed);
  EXPECT_MESSAGE_HAS(s, "cover 4 of its 5 bytes");
  EXPECT_EQ(CodeOf("{" + u8("a", 0, 4) + "}", 3), ErrorCode::kSafetensorsMalformed);
  EXPECT_EQ(CodeOf("{}", 1), ErrorCode::kSafetensorsMalformed);
  // Offsets near 2^64 do not wrap around.
  EXPECT_EQ(CodeOf("{" + u8("a", 0, 4) + "," + u8("b", 4, 4) + "," +
                       "\"c\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":"
                       "[18446744073709551615,18446744073709551615]}}",
                   4),
            ErrorCode::kSafetensorsMalformed);
}

TEST(Safetensors, TensorNames) {
  const std::string body = R"({"dtype":"U8","shape":[0],"data_offsets":[0,0]})";
  EXPECT_EQ(CodeOf("{\"a\":" + body + ",\"a\":" + body + "}"), ErrorCode::kDuplicateName);
  Status s = ParseSafetensors(File("{\"\":" + body + "}")).status();
  EXPECT_EQ(s.code(), ErrorCode::kBadName);
  EXPECT_MESSAGE_HAS(s, "offset 9");
  EXPECT_EQ(CodeOf("{\"a\\u0000b\":" + body + "}"), ErrorCode::kBadName);
  EXPECT_EQ(CodeOf("{\"" + std::string(5000, 'n') + "\":" + body + "}"), ErrorCode::kBadName);
  EXPECT_EQ(CodeOf("{\"layers.0.\xC3\xA9\":" + body + "}"), ErrorCode::kOk);
}

TEST(ShardIndex, Valid) {
  const std::string json = R"({"metadata": {"total_size": 123, "nested": {"x": [1]}},
    "weight_map": {"b.weight": "model-00001-of-00002.safetensors",
                   "a.weight": "sub/model-00002-of-00002.safetensors",
                   "c.weight": "model-00001-of-00002.safetensors"}})";
  Result<ShardIndex> index = ParseShardIndex(Bytes(json));
  ASSERT_TRUE(index.ok()) << index.status().ToString();
  ASSERT_EQ(index->weight_map.size(), 3u);
  EXPECT_EQ(index->weight_map[0].first, "b.weight");
  EXPECT_EQ(index->weight_map[1].second, "sub/model-00002-of-00002.safetensors");
  EXPECT_EQ(index->shards, (std::vector<std::string>{"model-00001-of-00002.safetensors",
                                                     "sub/model-00002-of-00002.safetensors"}));
  // No metadata, and unknown top-level keys, are fine.
  EXPECT_TRUE(ParseShardIndex(Bytes(R"({"weight_map":{"a":"x.safetensors"},"other":1})")).ok());
}

TEST(ShardIndex, Invalid) {
  auto code = [](const std::string& json) { return ParseShardIndex(Bytes(json)).status().code(); };
  EXPECT_EQ(code(""), ErrorCode::kShardIndexMalformed);
  EXPECT_EQ(code("{\"weight_map\":{"), ErrorCode::kShardIndexMalformed);
  EXPECT_EQ(code("[]"), ErrorCode::kShardIndexMalformed);
  EXPECT_EQ(code("{}"), ErrorCode::kShardIndexMalformed);
  EXPECT_EQ(code(R"({"metadata":{}})"), ErrorCode::kShardIndexMalformed);
  EXPECT_EQ(code(R"({"weight_map":[]})"), ErrorCode::kShardIndexMalformed);
  EXPECT_EQ(code(R"({"weight_map":{}})"), ErrorCode::kShardIndexMalformed);
  EXPECT_EQ(code(R"({"weight_map":{"a":1}})"), ErrorCode::kShardIndexMalformed);
  EXPECT_EQ(code(R"({"weight_map":{"a":"x"},"metadata":[]})"), ErrorCode::kShardIndexMalformed);
  EXPECT_EQ(code(R"({"weight_map":{"a":"x","a":"y"}})"), ErrorCode::kDuplicateName);
  EXPECT_EQ(code(R"({"weight_map":{"":"x"}})"), ErrorCode::kBadName);
  for (const char* path :
       {"", "../x.safetensors", "/abs.safetensors", "a/./b", "a//b", "a\\\\b", "c:x", "a/"}) {
    Status s =
        ParseShardIndex(Bytes("{\"weight_map\":{\"t\":\"" + std::string(path) + "\"}}")).status();
    EXPECT_EQ(s.code(), ErrorCode::kBadName) << path;
    EXPECT_MESSAGE_HAS(s, "weight_map.\"t\"");
    EXPECT_MESSAGE_HAS(s, "offset 19");
  }
}

}  // namespace
}  // namespace ckz
