#include "io/json.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>

#include "common/utf8.h"

namespace ckz {

JsonValue JsonValue::Null(uint64_t offset) {
  JsonValue v;
  v.offset_ = offset;
  return v;
}

JsonValue JsonValue::Bool(bool value, uint64_t offset) {
  JsonValue v = Null(offset);
  v.type_ = Type::kBool;
  v.bool_ = value;
  return v;
}

JsonValue JsonValue::Number(std::string text, uint64_t offset) {
  JsonValue v = Null(offset);
  v.type_ = Type::kNumber;
  v.text_ = std::move(text);
  return v;
}

JsonValue JsonValue::String(std::string value, uint64_t offset) {
  JsonValue v = Null(offset);
  v.type_ = Type::kString;
  v.text_ = std::move(value);
  return v;
}

JsonValue JsonValue::Array(uint64_t offset) {
  JsonValue v = Null(offset);
  v.type_ = Type::kArray;
  return v;
}

JsonValue JsonValue::Object(uint64_t offset) {
  JsonValue v = Null(offset);
  v.type_ = Type::kObject;
  return v;
}

const JsonValue* JsonValue::Find(std::string_view key) const {
  for (const JsonMember& m : members_)
    if (m.key == key) return &m.value;
  return nullptr;
}

namespace {

// Digits of a JSON number that is an integer (no fraction, no exponent), or empty.
std::string_view IntegerDigits(const std::string& text, bool* negative) {
  std::string_view s = text;
  *negative = !s.empty() && s[0] == '-';
  if (*negative) s.remove_prefix(1);
  if (s.empty()) return {};
  for (char c : s)
    if (c < '0' || c > '9') return {};
  return s;
}

std::optional<uint64_t> DigitsToUint64(std::string_view digits) {
  uint64_t v = 0;
  for (char c : digits) {
    const uint64_t d = uint64_t(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

}  // namespace

std::optional<uint64_t> JsonValue::AsUint64() const {
  if (type_ != Type::kNumber) return std::nullopt;
  bool negative;
  std::string_view digits = IntegerDigits(text_, &negative);
  if (digits.empty() || negative) return std::nullopt;
  return DigitsToUint64(digits);
}

std::optional<int64_t> JsonValue::AsInt64() const {
  if (type_ != Type::kNumber) return std::nullopt;
  bool negative;
  std::string_view digits = IntegerDigits(text_, &negative);
  if (digits.empty()) return std::nullopt;
  std::optional<uint64_t> magnitude = DigitsToUint64(digits);
  constexpr uint64_t kMaxPositive = uint64_t(std::numeric_limits<int64_t>::max());
  if (!magnitude || *magnitude > kMaxPositive + (negative ? 1 : 0)) return std::nullopt;
  if (!negative) return int64_t(*magnitude);
  // -2^63 is not representable as a positive int64: negate in unsigned arithmetic.
  return int64_t(~*magnitude + 1);
}

std::optional<double> JsonValue::AsDouble() const {
  if (type_ != Type::kNumber) return std::nullopt;
  double d = 0;
  const char* end = text_.data() + text_.size();
  auto [ptr, ec] = std::from_chars(text_.data(), end, d);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return d;
}

const char* JsonValue::TypeName(Type type) {
  switch (type) {
    case Type::kNull:
      return "null";
    case Type::kBool:
      return "bool";
    case Type::kNumber:
      return "number";
    case Type::kString:
      return "string";
    case Type::kArray:
      return "array";
    case Type::kObject:
      return "object";
  }
  return "invalid";
}

namespace {

// Recursive descent over the input; recursion depth is bounded by limits.max_depth.
class Parser {
 public:
  Parser(ByteSpan text, const JsonLimits& limits) : p_(text.data), n_(text.size), limits_(limits) {}

  Result<JsonValue> ParseDocument() {
    SkipWhitespace();
    JsonValue value;
    CKZ_RETURN_IF_ERROR(ParseValue(0, &value));
    SkipWhitespace();
    if (pos_ != n_) return Fail(pos_, "end of input after the top-level value");
    return value;
  }

 private:
  uint64_t At(size_t pos) const { return limits_.base_offset + pos; }

  std::string Found(size_t pos) const {
    if (pos >= n_) return "end of input";
    const uint8_t c = p_[pos];
    char buf[16];
    if (c >= 0x20 && c < 0x7F)
      std::snprintf(buf, sizeof buf, "'%c'", char(c));
    else
      std::snprintf(buf, sizeof buf, "byte 0x%02X", unsigned(c));
    return buf;
  }

  Status Fail(size_t pos, const std::string& expected) const {
    return Status(ErrorCode::kJsonMalformed, "JSON at offset " + std::to_string(At(pos)) +
                                                 ": expected " + expected + ", found " +
                                                 Found(pos));
  }

  Status FailAt(size_t pos, const std::string& what) const {
    return Status(ErrorCode::kJsonMalformed,
                  "JSON at offset " + std::to_string(At(pos)) + ": " + what);
  }

  void SkipWhitespace() {
    while (pos_ < n_ &&
           (p_[pos_] == ' ' || p_[pos_] == '\t' || p_[pos_] == '\n' || p_[pos_] == '\r'))
      ++pos_;
  }

  bool Consume(char c) {
    if (pos_ < n_ && p_[pos_] == uint8_t(c)) {
      ++pos_;
      return true;
    }
    return false;
  }

  bool ConsumeLiteral(std::string_view word) {
    if (n_ - pos_ < word.size()) return false;
    if (!std::equal(word.begin(), word.end(), p_ + pos_)) return false;
    pos_ += word.size();
    return true;
  }

  Status ParseValue(size_t depth, JsonValue* out) {
    const size_t start = pos_;
    if (pos_ >= n_) return Fail(pos_, "a value");
    if (++values_ > limits_.max_values)
      return Status(ErrorCode::kLimitExceeded,
                    "JSON at offset " + std::to_string(At(pos_)) + ": more than " +
                        std::to_string(limits_.max_values) + " values");
    switch (p_[pos_]) {
      case '{':
        return ParseObject(depth + 1, out);
      case '[':
        return ParseArray(depth + 1, out);
      case '"': {
        std::string s;
        CKZ_RETURN_IF_ERROR(ParseString(&s));
        *out = JsonValue::String(std::move(s), At(start));
        return Status::Ok();
      }
      case 't':
        if (!ConsumeLiteral("true")) break;
        *out = JsonValue::Bool(true, At(start));
        return Status::Ok();
      case 'f':
        if (!ConsumeLiteral("false")) break;
        *out = JsonValue::Bool(false, At(start));
        return Status::Ok();
      case 'n':
        if (!ConsumeLiteral("null")) break;
        *out = JsonValue::Null(At(start));
        return Status::Ok();
      default:
        if (p_[pos_] == '-' || (p_[pos_] >= '0' && p_[pos_] <= '9')) return ParseNumber(out);
        break;
    }
    return Fail(start, "a value (object, array, string, number, true, false or null)");
  }

  Status EnterContainer(size_t depth) const {
    if (depth > limits_.max_depth)
      return FailAt(pos_, "arrays and objects nested deeper than the limit of " +
                              std::to_string(limits_.max_depth));
    return Status::Ok();
  }

  Status ParseArray(size_t depth, JsonValue* out) {
    CKZ_RETURN_IF_ERROR(EnterContainer(depth));
    *out = JsonValue::Array(At(pos_));
    ++pos_;  // '['
    SkipWhitespace();
    if (Consume(']')) return Status::Ok();
    while (true) {
      SkipWhitespace();
      out->items().emplace_back();
      CKZ_RETURN_IF_ERROR(ParseValue(depth, &out->items().back()));
      SkipWhitespace();
      if (Consume(']')) return Status::Ok();
      if (!Consume(',')) return Fail(pos_, "',' or ']' after an array element");
    }
  }

  Status ParseObject(size_t depth, JsonValue* out) {
    CKZ_RETURN_IF_ERROR(EnterContainer(depth));
    *out = JsonValue::Object(At(pos_));
    ++pos_;  // '{'
    SkipWhitespace();
    if (!Consume('}')) {
      while (true) {
        SkipWhitespace();
        if (pos_ >= n_ || p_[pos_] != '"') return Fail(pos_, "a string key");
        JsonMember member;
        member.key_offset = At(pos_);
        CKZ_RETURN_IF_ERROR(ParseString(&member.key));
        SkipWhitespace();
        if (!Consume(':')) return Fail(pos_, "':' after an object key");
        SkipWhitespace();
        CKZ_RETURN_IF_ERROR(ParseValue(depth, &member.value));
        out->members().push_back(std::move(member));
        SkipWhitespace();
        if (Consume('}')) break;
        if (!Consume(',')) return Fail(pos_, "',' or '}' after an object member");
      }
    }
    return CheckUniqueKeys(out->members());
  }

  // Sorting once per object keeps this O(n log n) even for headers with 10^5 tensors.
  Status CheckUniqueKeys(const std::vector<JsonMember>& members) const {
    if (members.size() < 2) return Status::Ok();
    std::vector<const JsonMember*> sorted;
    sorted.reserve(members.size());
    for (const JsonMember& m : members) sorted.push_back(&m);
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const JsonMember* a, const JsonMember* b) { return a->key < b->key; });
    const JsonMember* first_repeat = nullptr;
    for (size_t i = 1; i < sorted.size(); ++i)
      if (sorted[i]->key == sorted[i - 1]->key &&
          (!first_repeat || sorted[i]->key_offset < first_repeat->key_offset))
        first_repeat = sorted[i];
    if (!first_repeat) return Status::Ok();
    return Status(ErrorCode::kDuplicateName,
                  "JSON at offset " + std::to_string(first_repeat->key_offset) + ": key " +
                      JsonQuote(first_repeat->key) + " appears twice in one object");
  }

  static int HexValue(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  // Reads the 4 hex digits of a \u escape whose 'u' is at pos_ - 1.
  Status ParseHex4(uint32_t* out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = pos_ < n_ ? HexValue(p_[pos_]) : -1;
      if (h < 0) return Fail(pos_, "4 hex digits after \\u");
      v = (v << 4) | uint32_t(h);
      ++pos_;
    }
    *out = v;
    return Status::Ok();
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(char(cp));
    } else if (cp < 0x800) {
      out->push_back(char(0xC0 | (cp >> 6)));
      out->push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(char(0xE0 | (cp >> 12)));
      out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(char(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(char(0xF0 | (cp >> 18)));
      out->push_back(char(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(char(0x80 | (cp & 0x3F)));
    }
  }

  Status ParseEscape(std::string* out) {
    const size_t backslash = pos_ - 1;
    if (pos_ >= n_) return Fail(pos_, "an escape character after '\\'");
    const uint8_t c = p_[pos_++];
    switch (c) {
      case '"':
        out->push_back('"');
        return Status::Ok();
      case '\\':
        out->push_back('\\');
        return Status::Ok();
      case '/':
        out->push_back('/');
        return Status::Ok();
      case 'b':
        out->push_back('\b');
        return Status::Ok();
      case 'f':
        out->push_back('\f');
        return Status::Ok();
      case 'n':
        out->push_back('\n');
        return Status::Ok();
      case 'r':
        out->push_back('\r');
        return Status::Ok();
      case 't':
        out->push_back('\t');
        return Status::Ok();
      case 'u':
        break;
      default:
        return Fail(pos_ - 1, "one of \" \\ / b f n r t u after '\\'");
    }
    uint32_t cp = 0;
    CKZ_RETURN_IF_ERROR(ParseHex4(&cp));
    if (cp >= 0xDC00 && cp <= 0xDFFF)
      return FailAt(backslash, "\\u escape of a low surrogate without a high surrogate before it");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      // A high surrogate must be followed at once by the escaped low surrogate of its pair.
      if (!ConsumeLiteral("\\u"))
        return FailAt(backslash,
                      "\\u escape of a high surrogate not followed by a \\u escape "
                      "of a low surrogate");
      const size_t low_at = pos_ - 2;
      uint32_t low = 0;
      CKZ_RETURN_IF_ERROR(ParseHex4(&low));
      if (low < 0xDC00 || low > 0xDFFF)
        return FailAt(low_at, "\\u escape after a high surrogate is not a low surrogate");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    AppendUtf8(cp, out);
    return Status::Ok();
  }

  Status ParseString(std::string* out) {
    const size_t open = pos_;
    ++pos_;  // '"'
    out->clear();
    while (true) {
      // Copy a run of plain bytes; its end is ASCII, so validating runs one by one validates
      // the whole string.
      const size_t run = pos_;
      while (pos_ < n_ && p_[pos_] != '"' && p_[pos_] != '\\' && p_[pos_] >= 0x20) ++pos_;
      std::string_view plain(reinterpret_cast<const char*>(p_ + run), pos_ - run);
      if (!IsValidUtf8(plain))
        return FailAt(run, "string (opened at offset " + std::to_string(At(open)) +
                               ") is not valid UTF-8 between here and offset " +
                               std::to_string(At(pos_)));
      out->append(plain);
      if (pos_ >= n_)
        return Fail(pos_, "'\"' closing the string opened at offset " + std::to_string(At(open)));
      const uint8_t c = p_[pos_++];
      if (c == '"') return Status::Ok();
      if (c == '\\') {
        CKZ_RETURN_IF_ERROR(ParseEscape(out));
        continue;
      }
      return Fail(pos_ - 1, "a string character (control characters must be escaped)");
    }
  }

  bool IsDigit(size_t pos) const { return pos < n_ && p_[pos] >= '0' && p_[pos] <= '9'; }

  // number = [ "-" ] ( "0" / [1-9] *DIGIT ) [ "." 1*DIGIT ] [ ( "e" / "E" ) [ "-" / "+" ] 1*DIGIT ]
  Status ParseNumber(JsonValue* out) {
    const size_t start = pos_;
    Consume('-');
    if (!IsDigit(pos_)) return Fail(pos_, "a digit in the number");
    if (p_[pos_] == '0') {
      ++pos_;
      if (IsDigit(pos_)) return Fail(pos_, "no leading zero in the number");
    } else {
      while (IsDigit(pos_)) ++pos_;
    }
    if (Consume('.')) {
      if (!IsDigit(pos_)) return Fail(pos_, "a digit after the decimal point");
      while (IsDigit(pos_)) ++pos_;
    }
    if (Consume('e') || Consume('E')) {
      if (!Consume('+')) Consume('-');
      if (!IsDigit(pos_)) return Fail(pos_, "a digit in the exponent");
      while (IsDigit(pos_)) ++pos_;
    }
    *out = JsonValue::Number(std::string(reinterpret_cast<const char*>(p_ + start), pos_ - start),
                             At(start));
    return Status::Ok();
  }

  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
  const JsonLimits& limits_;
  uint64_t values_ = 0;
};

}  // namespace

Result<JsonValue> ParseJson(ByteSpan text, const JsonLimits& limits) {
  if (text.size > limits.max_bytes)
    return Status(ErrorCode::kLimitExceeded,
                  "JSON at offset " + std::to_string(limits.base_offset) + " is " +
                      std::to_string(text.size) + " bytes, above the limit of " +
                      std::to_string(limits.max_bytes));
  return Parser(text, limits).ParseDocument();
}

void AppendJsonString(std::string_view value, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char ch : value) {
    const uint8_t c = uint8_t(ch);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xF]);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}

std::string JsonQuote(std::string_view value) {
  std::string out;
  AppendJsonString(value, &out);
  return out;
}

}  // namespace ckz
