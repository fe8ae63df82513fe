// The strict JSON parser behind safetensors headers and shard indexes.
#include "io/json.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace ckz {
namespace {

// Whether a message says what it must (the field, the offset, what was expected).
#define EXPECT_MESSAGE_HAS(status, text) \
  EXPECT_NE((status).message().find(text), std::string::npos) << (status).message()

Result<JsonValue> Parse(std::string_view text, const JsonLimits& limits = {}) {
  return ParseJson(ByteSpan(reinterpret_cast<const uint8_t*>(text.data()), text.size()), limits);
}

ErrorCode CodeOf(std::string_view text) { return Parse(text).status().code(); }

std::string StringOf(std::string_view text) {
  Result<JsonValue> v = Parse(text);
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_TRUE(v->is_string());
  return v->string_value();
}

TEST(Json, Scalars) {
  EXPECT_TRUE(Parse("null")->is_null());
  EXPECT_TRUE(Parse(" true ")->bool_value());
  EXPECT_FALSE(Parse("\tfalse\r\n")->bool_value());
  EXPECT_TRUE(Parse("false")->is_bool());
  EXPECT_EQ(Parse("-12.5e3")->number_text(), "-12.5e3");
  EXPECT_EQ(StringOf("\"abc\""), "abc");
  EXPECT_EQ(StringOf("\"\""), "");
}

TEST(Json, ObjectsKeepOrderAndOffsets) {
  Result<JsonValue> v = Parse(R"( {"b": 1, "a": [true, null, "x"], "c": {}} )");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_TRUE(v->is_object());
  EXPECT_EQ(v->offset(), 1u);
  ASSERT_EQ(v->members().size(), 3u);
  EXPECT_EQ(v->members()[0].key, "b");
  EXPECT_EQ(v->members()[0].key_offset, 2u);
  EXPECT_EQ(v->members()[1].key, "a");
  EXPECT_EQ(v->members()[2].key, "c");
  const JsonValue* a = v->Find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->is_array());
  ASSERT_EQ(a->items().size(), 3u);
  EXPECT_TRUE(a->items()[0].bool_value());
  EXPECT_TRUE(a->items()[1].is_null());
  EXPECT_EQ(a->items()[2].string_value(), "x");
  EXPECT_EQ(a->items()[2].offset(), 28u);
  EXPECT_TRUE(v->Find("c")->is_object());
  EXPECT_EQ(v->Find("missing"), nullptr);
  EXPECT_TRUE(Parse("[]")->items().empty());
  EXPECT_TRUE(Parse("{ }")->members().empty());
}

TEST(Json, Escapes) {
  EXPECT_EQ(StringOf(R"("\"\\\/\b\f\n\r\t")"), "\"\\/\b\f\n\r\t");
  EXPECT_EQ(StringOf(R"("\u0041\u00e9\u20AC")"), "A\xC3\xA9\xE2\x82\xAC");
  EXPECT_EQ(StringOf(R"("\u0000")"), std::string(1, '\0'));
  // A surrogate pair is one code point, U+1F600, in 4 UTF-8 bytes.
  EXPECT_EQ(StringOf(R"("\ud83d\ude00")"), "\xF0\x9F\x98\x80");
  EXPECT_EQ(StringOf(R"("\uDBFF\uDFFF")"), "\xF4\x8F\xBF\xBF");
  EXPECT_EQ(StringOf("\"\x7F\""), "\x7F");
  EXPECT_EQ(StringOf("\"\xF0\x9F\x98\x80 raw\""), "\xF0\x9F\x98\x80 raw");
}

TEST(Json, BadEscapesAndSurrogates) {
  EXPECT_EQ(CodeOf(R"("\x41")"), ErrorCode::kJsonMalformed);
  EXPECT_EQ(CodeOf(R"("\U0041")"), ErrorCode::kJsonMalformed);
  EXPECT_EQ(CodeOf(R"("\u00G1")"), ErrorCode::kJsonMalformed);
  EXPECT_EQ(CodeOf(R"("\u12")"), ErrorCode::kJsonMalformed);
  EXPECT_EQ(CodeOf(R"("\ud83d")"), ErrorCode::kJsonMalformed);        // lone high
  EXPECT_EQ(CodeOf(R"("\ud83dx")"), ErrorCode::kJsonMalformed);       // high, then a char
  EXPECT_EQ(CodeOf(R"("\ud83d\u0041")"), ErrorCode::kJsonMalformed);  // high, then not low
  EXPECT_EQ(CodeOf(R"("\ud83d\ud83d")"), ErrorCode::kJsonMalformed);  // high, high
  EXPECT_EQ(CodeOf(R"("\ude00")"), ErrorCode::kJsonMalformed);        // lone low
  EXPECT_EQ(CodeOf("\"\\"), ErrorCode::kJsonMalformed);
}

TEST(Json, StringsMustBeUtf8WithoutControlCharacters) {
  EXPECT_EQ(CodeOf("\"a\nb\""), ErrorCode::kJsonMalformed);
  EXPECT_EQ(CodeOf(std::string("\"a\0b\"", 5)), ErrorCode::kJsonMalformed);
  EXPECT_EQ(CodeOf("\"\x1F\""), ErrorCode::kJsonMalformed);
  EXPECT_EQ(CodeOf("\"\xC3\x28\""), ErrorCode::kJsonMalformed);          // bad continuation
  EXPECT_EQ(CodeOf("\"\xC0\xAF\""), ErrorCode::kJsonMalformed);          // overlong '/'
  EXPECT_EQ(CodeOf("\"\xED\xA0\x80\""), ErrorCode::kJsonMalformed);      // encoded surrogate
  EXPECT_EQ(CodeOf("\"\xF4\x90\x80\x80\""), ErrorCode::kJsonMalformed);  // > U+10FFFF
  EXPECT_EQ(CodeOf("\"\xE2\x82\""), ErrorCode::kJsonMalformed);          // truncated
  EXPECT_EQ(CodeOf("\"\xE2\x82\\n\""), ErrorCode::kJsonMalformed);       // truncated by an escape
  EXPECT_EQ(CodeOf("\"abc"), ErrorCode::kJsonMalformed);                 // unterminated
  EXPECT_EQ(CodeOf("\xEF\xBB\xBF{}"), ErrorCode::kJsonMalformed);        // BOM
}

TEST(Json, DuplicateKeys) {
  Result<JsonValue> v = Parse(R"({"a": 1, "b": 2, "a": 3})");
  EXPECT_EQ(v.status().code(), ErrorCode::kDuplicateName);
  EXPECT_MESSAGE_HAS(v.status(), "offset 17");
  EXPECT_MESSAGE_HAS(v.status(), "\"a\"");
  EXPECT_EQ(CodeOf(R"({"x": {"k": 1, "k": 1}})"), ErrorCode::kDuplicateName);
  // Keys compare after unescaping.
  EXPECT_EQ(CodeOf(R"({"A": 1, "\u0041": 2})"), ErrorCode::kDuplicateName);
  // The same key in different objects is fine.
  EXPECT_TRUE(Parse(R"({"x": {"k": 1}, "y": {"k": 1}, "z": [{"k": 1}, {"k": 2}]})").ok());
}

TEST(Json, DepthLimit) {
  auto nested = [](size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_TRUE(Parse(nested(64)).ok());
  Result<JsonValue> deep = Parse(nested(65));
  EXPECT_EQ(deep.status().code(), ErrorCode::kJsonMalformed);
  EXPECT_MESSAGE_HAS(deep.status(), "offset 64");
  // Far deeper than the limit: rejected without deep recursion.
  EXPECT_EQ(Parse(std::string(1000000, '[')).status().code(), ErrorCode::kJsonMalformed);
  std::string objects;
  for (int i = 0; i < 65; ++i) objects += "{\"a\":";
  objects += "1" + std::string(65, '}');
  EXPECT_EQ(CodeOf(objects), ErrorCode::kJsonMalformed);
  JsonLimits shallow;
  shallow.max_depth = 2;
  EXPECT_TRUE(Parse("[[1]]", shallow).ok());
  EXPECT_EQ(Parse("[[[1]]]", shallow).status().code(), ErrorCode::kJsonMalformed);
  EXPECT_EQ(Parse("[{\"a\":[]}]", shallow).status().code(), ErrorCode::kJsonMalformed);
}

TEST(Json, SizeLimit) {
  JsonLimits small;
  small.max_bytes = 4;
  EXPECT_TRUE(Parse("[12]", small).ok());
  EXPECT_EQ(Parse("[123]", small).status().code(), ErrorCode::kLimitExceeded);
}

TEST(Json, NumberGrammar) {
  for (const char* ok : {"0", "-0", "1", "-1", "10", "0.5", "-0.0", "1e5", "1E5", "1e+5", "1e-5",
                         "12.34e-56", "123456789012345678901234567890"})
    EXPECT_TRUE(Parse(ok).ok()) << ok;
  for (const char* bad : {"01", "-01", "+1", "1.", ".5", "1e", "1e+", "-", "--1", "1.e5", "0x10",
                          "NaN", "Infinity", "-Infinity", "1_000", "1 2"})
    EXPECT_EQ(CodeOf(bad), ErrorCode::kJsonMalformed) << bad;
}

TEST(Json, NumbersAsUint64) {
  EXPECT_EQ(Parse("0")->AsUint64(), 0u);
  EXPECT_EQ(Parse("18446744073709551615")->AsUint64(), UINT64_MAX);
  EXPECT_EQ(Parse("18446744073709551616")->AsUint64(), std::nullopt);
  EXPECT_EQ(Parse("99999999999999999999")->AsUint64(), std::nullopt);
  EXPECT_EQ(Parse("-0")->AsUint64(), std::nullopt);
  EXPECT_EQ(Parse("-1")->AsUint64(), std::nullopt);
  EXPECT_EQ(Parse("1.0")->AsUint64(), std::nullopt);
  EXPECT_EQ(Parse("1e2")->AsUint64(), std::nullopt);
  EXPECT_EQ(Parse("1e400")->AsUint64(), std::nullopt);
  EXPECT_EQ(Parse("\"1\"")->AsUint64(), std::nullopt);
}

TEST(Json, NumbersAsInt64) {
  EXPECT_EQ(Parse("-0")->AsInt64(), 0);
  EXPECT_EQ(Parse("9223372036854775807")->AsInt64(), INT64_MAX);
  EXPECT_EQ(Parse("-9223372036854775808")->AsInt64(), INT64_MIN);
  EXPECT_EQ(Parse("9223372036854775808")->AsInt64(), std::nullopt);
  EXPECT_EQ(Parse("-9223372036854775809")->AsInt64(), std::nullopt);
  EXPECT_EQ(Parse("18446744073709551616")->AsInt64(), std::nullopt);
  EXPECT_EQ(Parse("-1.5")->AsInt64(), std::nullopt);
}

TEST(Json, NumbersAsDouble) {
  EXPECT_EQ(Parse("0.1")->AsDouble(), 0.1);
  EXPECT_EQ(Parse("-2.5e-3")->AsDouble(), -2.5e-3);
  EXPECT_EQ(Parse("18446744073709551616")->AsDouble(), 18446744073709551616.0);
  EXPECT_EQ(Parse("5e-324")->AsDouble(), 5e-324);
  std::optional<double> negative_zero = Parse("-0")->AsDouble();
  ASSERT_TRUE(negative_zero.has_value());
  EXPECT_EQ(*negative_zero, 0.0);
  EXPECT_TRUE(std::signbit(*negative_zero));
  EXPECT_EQ(Parse("1e400")->AsDouble(), std::nullopt);
  EXPECT_EQ(Parse("-1e400")->AsDouble(), std::nullopt);
  EXPECT_EQ(Parse("1e-400")->AsDouble(), std::nullopt);
  EXPECT_EQ(Parse("true")->AsDouble(), std::nullopt);
}

TEST(Json, SyntaxErrorsNameOffsetAndExpectation) {
  for (const char* bad : {"",           "   ",       "[1,]",
                          "{\"a\":1,}", "{\"a\" 1}", "{a:1}",
                          "{'a':1}",    "[1 2]",     "{\"a\":1 \"b\":2}",
                          "[1] x",      "// c\n1",   "/* c */1",
                          "tru",        "nul",       "[",
                          "{",          "{\"a\":",   "{\"a\"",
                          "[1,",        "{,}",       "[,]",
                          "\"a\"\"b\""})
    EXPECT_EQ(CodeOf(bad), ErrorCode::kJsonMalformed) << bad;
  Status s = Parse("[1, 2,, 3]").status();
  EXPECT_EQ(s.code(), ErrorCode::kJsonMalformed);
  EXPECT_MESSAGE_HAS(s, "offset 6");
  EXPECT_MESSAGE_HAS(s, "expected a value");
  EXPECT_MESSAGE_HAS(s, "found ','");
  s = Parse("{\"a\": 1 x").status();
  EXPECT_MESSAGE_HAS(s, "offset 8");
  EXPECT_MESSAGE_HAS(s, "',' or '}'");
  s = Parse("[1]\x01").status();
  EXPECT_MESSAGE_HAS(s, "byte 0x01");
  EXPECT_MESSAGE_HAS(Parse("[").status(), "end of input");
}

TEST(Json, BaseOffsetShiftsEveryOffset) {
  JsonLimits limits;
  limits.base_offset = 8;
  Result<JsonValue> v = Parse("{\"a\": [1]}", limits);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->offset(), 8u);
  EXPECT_EQ(v->members()[0].key_offset, 9u);
  EXPECT_EQ(v->Find("a")->offset(), 14u);
  EXPECT_MESSAGE_HAS(Parse("[1,]", limits).status(), "offset 11");
}

TEST(Json, WriterEscapes) {
  EXPECT_EQ(JsonQuote("plain"), "\"plain\"");
  EXPECT_EQ(JsonQuote("a\"b\\c/"), "\"a\\\"b\\\\c/\"");
  EXPECT_EQ(JsonQuote("\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\"");
  EXPECT_EQ(JsonQuote(std::string("\0\x1f\x7f", 3)), "\"\\u0000\\u001f\x7f\"");
  EXPECT_EQ(JsonQuote("\xC3\xA9"), "\"\xC3\xA9\"");
  std::string out = "x";
  AppendJsonString("y", &out);
  EXPECT_EQ(out, "x\"y\"");
}

TEST(Json, WriterRoundTrips) {
  std::string all;
  for (int c = 0; c < 0x80; ++c) all.push_back(char(c));
  all += "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
  for (const std::string& s : {std::string(), all, std::string("layers.0.weight")})
    EXPECT_EQ(StringOf(JsonQuote(s)), s);
}

}  // namespace
}  // namespace ckz
