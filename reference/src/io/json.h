// A small, strict RFC 8259 JSON parser (a pure function over bytes) and the string escaping the
// writers need. Used for safetensors headers and model.safetensors.index.json, both untrusted.
//
// Strict means: exactly the RFC grammar (no comments, trailing commas, NaN, leading '+' or
// zeros, single quotes, BOM), strings must be valid UTF-8 with no raw control characters and no
// lone surrogate escapes, and duplicate keys in one object are an error (RFC 8259 leaves their
// meaning open, so two readers could disagree on which one wins).
#ifndef CKZ_IO_JSON_H_
#define CKZ_IO_JSON_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ckz/json.h"
#include "ckz/status.h"
#include "ckz/types.h"

namespace ckz {

struct JsonLimits {
  size_t max_depth = 64;                   // arrays/objects nested deeper: kJsonMalformed
  uint64_t max_bytes = uint64_t{1} << 28;  // longer input: kLimitExceeded, before any parsing
  // More values (about 100 bytes of tree each): kLimitExceeded. Bounds memory for hostile
  // input; a safetensors header of 100,000 tensors has about 700,000.
  uint64_t max_values = uint64_t{1} << 22;
  // Added to every offset in error messages and in JsonValue::offset(), so that JSON embedded
  // in a file (a safetensors header starts at byte 8) reports file offsets.
  uint64_t base_offset = 0;
};

struct JsonMember;

class JsonValue {
 public:
  enum class Type : uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };

  JsonValue() = default;
  static JsonValue Null(uint64_t offset = 0);
  static JsonValue Bool(bool value, uint64_t offset = 0);
  static JsonValue Number(std::string text, uint64_t offset = 0);  // text must be a JSON number
  static JsonValue String(std::string value, uint64_t offset = 0);
  static JsonValue Array(uint64_t offset = 0);
  static JsonValue Object(uint64_t offset = 0);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }
  // Where the value starts in the input (plus JsonLimits::base_offset).
  uint64_t offset() const { return offset_; }

  bool bool_value() const { return bool_; }
  // kString: the unescaped UTF-8 value. kNumber: the number's source text, as written.
  const std::string& string_value() const { return text_; }
  const std::string& number_text() const { return text_; }
  const std::vector<JsonValue>& items() const { return items_; }       // kArray
  const std::vector<JsonMember>& members() const { return members_; }  // kObject, file order
  std::vector<JsonValue>& items() { return items_; }
  std::vector<JsonMember>& members() { return members_; }
  // The member named `key` of an object, or null (keys are unique: ParseJson rejects repeats).
  const JsonValue* Find(std::string_view key) const;

  // A number's exact value in the given type, or nullopt: the text has a fraction or exponent
  // (integers), is negative (uint64, "-0" included), or is out of range (2^64, 1e400).
  std::optional<uint64_t> AsUint64() const;
  std::optional<int64_t> AsInt64() const;
  // The nearest double (correctly rounded); nullopt if it overflows or underflows to zero
  // from a non-zero literal.
  std::optional<double> AsDouble() const;

  // "null", "bool", "number", "string", "array", "object": for error messages.
  static const char* TypeName(Type type);

 private:
  Type type_ = Type::kNull;
  bool bool_ = false;
  uint64_t offset_ = 0;
  std::string text_;
  std::vector<JsonValue> items_;
  std::vector<JsonMember> members_;
};

struct JsonMember {
  std::string key;
  uint64_t key_offset = 0;  // where the key's opening quote is (plus base_offset)
  JsonValue value;
};

// Parses one JSON text (surrounding whitespace allowed). Errors: kJsonMalformed naming the
// byte offset and what was expected; kDuplicateName for a repeated key in one object;
// kLimitExceeded when the text is longer than limits.max_bytes.
Result<JsonValue> ParseJson(ByteSpan text, const JsonLimits& limits = {});

// AppendJsonString / JsonQuote (public, ckz/json.h, for the tools) are implemented in json.cc:
// '\\' and '"' escaped, control characters as \b \f \n \r \t or \u00xx, everything else
// (UTF-8 included) copied as is: the same output as serde_json, which the safetensors reference
// implementation uses.

}  // namespace ckz

#endif  // CKZ_IO_JSON_H_
