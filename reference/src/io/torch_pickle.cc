// The pickle walker of ckz/torch.h: any pickle protocol (0 to 5; torch.save writes 2) read
// into a value graph without executing anything. Nothing is imported or called: a global is
// a name. The globals torch.save uses for tensors are interpreted here (an OrderedDict becomes
// a dict, _rebuild_tensor_v2 a tensor view checked against its storage, ...); every other
// global, and whatever calling it, NEWOBJ, BUILD, APPENDS or SETITEMS make of it, is carried
// as an opaque value whose parts stay in the graph (so tensors inside it are still found and
// named). The .pt file itself is kept byte for byte by the caller: the graph only has to find
// the tensors and give enough structure for names and optimizer roles.
//
// Semantics follow CPython's unpickler (Lib/pickle.py): a MARK fences the stack (popping below
// it is an underflow; POP with nothing above the MARK pops the MARK), the memo maps an index to
// the very same object (so a dict filled after it was memoized is seen filled, and a container
// may hold itself), a plain dict key given twice keeps its first position and takes the last
// value (keys compare as Python compares None, bools, ints, floats, str, bytes and tuples of
// those; other keys, NaN included, are distinct unless they are the same value). What Python
// refuses is refused here too (kPickleMalformed): a truncated stream, an unknown opcode, a
// call of a non-callable value, APPENDS on a dict, an unhashable dict key, a string that is
// not UTF-8 (surrogates are allowed, as Python's 'surrogatepass' decoding does), a persistent
// id that is not torch's ('storage', class, key, location, numel) tuple. Stricter than CPython
// only where a byte-identical copy does not care: the stream must end right after STOP with
// exactly one value on the stack.
//
// Memory is bounded by the input and limits.max_values: every declared length is checked
// against the bytes left before anything is allocated, and values, stack, memo and MARKs are
// each at most max_values entries. The walk is iterative everywhere (no recursion but the
// tuple-key comparison, which stops at 16 levels), so no nesting depth can exhaust the stack.
//
// In the graph, a storage (BINPERSID) is a kObject whose text is its storage class
// ("torch.FloatStorage") and whose items are the persistent id; a tensor view and a parameter
// are kTensor values; the state BUILD gives an OrderedDict (a state_dict's _metadata) is
// dropped.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "ckz/torch.h"
#include "common/bytes.h"
#include "common/utf8.h"
#include "io/torch_internal.h"

namespace ckz {
namespace {

using Kind = PickleValue::Kind;

const char* OpcodeName(uint8_t op) {
  switch (op) {
    case '(': return "MARK";
    case '.': return "STOP";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case '2': return "DUP";
    case 'F': return "FLOAT";
    case 'I': return "INT";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'L': return "LONG";
    case 'M': return "BININT2";
    case 'N': return "NONE";
    case 'P': return "PERSID";
    case 'Q': return "BINPERSID";
    case 'R': return "REDUCE";
    case 'S': return "STRING";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE";
    case 'X': return "BINUNICODE";
    case 'a': return "APPEND";
    case 'b': return "BUILD";
    case 'c': return "GLOBAL";
    case 'd': return "DICT";
    case '}': return "EMPTY_DICT";
    case 'e': return "APPENDS";
    case 'g': return "GET";
    case 'h': return "BINGET";
    case 'i': return "INST";
    case 'j': return "LONG_BINGET";
    case 'l': return "LIST";
    case ']': return "EMPTY_LIST";
    case 'o': return "OBJ";
    case 'p': return "PUT";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 's': return "SETITEM";
    case 't': return "TUPLE";
    case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS";
    case 'G': return "BINFLOAT";
    case 0x80: return "PROTO";
    case 0x81: return "NEWOBJ";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x92: return "NEWOBJ_EX";
    case 0x93: return "STACK_GLOBAL";
    case 0x94: return "MEMOIZE";
    case 0x95: return "FRAME";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return nullptr;
  }
}

std::string OpcodeText(uint8_t op) {
  std::string out = "0x" + Hex(op, 2);
  if (op >= 0x20 && op < 0x7F) out += std::string(" '") + char(op) + "'";
  const char* name = OpcodeName(op);
  out += name ? std::string(" (") + name + ")" : std::string(" (not a pickle opcode)");
  return out;
}

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "a bool";
    case Kind::kInt: return "an int";
    case Kind::kFloat: return "a float";
    case Kind::kString: return "a str";
    case Kind::kBytes: return "bytes";
    case Kind::kTuple: return "a tuple";
    case Kind::kList: return "a list";
    case Kind::kDict: return "a dict";
    case Kind::kTensor: return "a tensor";
    case Kind::kGlobal: return "a global";
    case Kind::kObject: return "an object";
    case Kind::kOpaque: return "an opaque object";
  }
  return "an invalid value";
}

// ---- the globals CKZ interprets ----

enum class Global : uint8_t {
  kOpaque,  // any global CKZ does not interpret: carried as a name
  kOrderedDict,
  kRebuildTensorV2,
  kRebuildParameter,           // (tensor, requires_grad, hooks)
  kRebuildParameterWithState,  // (tensor, requires_grad, hooks, state)
  kRebuildFromType,            // torch._tensor._rebuild_from_type_v2(func, type, args, state)
  kStorage,  // torch.<X>Storage: `dtype` (kInvalid for a dtype CKZ lacks)
  kSize,
  kDevice,
  kDtype,         // torch.float32, ...: a value, not callable
  kCodecsEncode,  // _codecs.encode(str, "latin1"): bytes in protocol 2
  kBytes,         // builtins.bytes(): the empty bytes in protocol 2
};

struct GlobalInfo {
  Global global = Global::kOpaque;
  DType dtype = DType::kInvalid;
};

struct StorageClass {
  const char* name;
  DType dtype;
};
constexpr StorageClass kStorageClasses[] = {
    {"DoubleStorage", DType::kF64}, {"FloatStorage", DType::kF32},
    {"HalfStorage", DType::kF16},   {"BFloat16Storage", DType::kBF16},
    {"LongStorage", DType::kI64},   {"IntStorage", DType::kI32},
    {"ShortStorage", DType::kI16},  {"CharStorage", DType::kI8},
    {"ByteStorage", DType::kU8},    {"BoolStorage", DType::kBool},
    {"UntypedStorage", DType::kU8},  // bytes (torch >= 2.0 saves untyped storages so)
};

// Every attribute of the torch module that is a torch.dtype.
constexpr const char* kTorchDtypes[] = {
    "float64", "double",   "float32",  "float",      "float16",  "half",     "bfloat16",
    "int64",   "long",     "int32",    "int",        "int16",    "short",    "int8",
    "uint8",   "bool",     "complex32", "chalf",     "complex64", "cfloat",  "complex128",
    "cdouble", "qint8",    "quint8",   "qint32",     "quint4x2", "quint2x4", "float8_e5m2",
    "float8_e4m3fn", "uint16", "uint32", "uint64", "bits8", "bits16", "bits1x8", "bits2x4",
    "bits4x2",
};

bool IsBuiltins(std::string_view module) { return module == "__builtin__" || module == "builtins"; }

GlobalInfo LookupGlobal(std::string_view module, std::string_view name) {
  GlobalInfo info;
  if (module == "collections" && name == "OrderedDict") info.global = Global::kOrderedDict;
  if (module == "torch._utils" && name == "_rebuild_tensor_v2")
    info.global = Global::kRebuildTensorV2;
  if (module == "torch._utils" && name == "_rebuild_parameter")
    info.global = Global::kRebuildParameter;
  if (module == "torch._utils" && name == "_rebuild_parameter_with_state")
    info.global = Global::kRebuildParameterWithState;
  if (module == "torch._tensor" && name == "_rebuild_from_type_v2")
    info.global = Global::kRebuildFromType;
  if (module == "_codecs" && name == "encode") info.global = Global::kCodecsEncode;
  if (IsBuiltins(module) && name == "bytes") info.global = Global::kBytes;
  if (module != "torch" || info.global != Global::kOpaque) return info;
  if (name == "Size") info.global = Global::kSize;
  if (name == "device") info.global = Global::kDevice;
  for (const char* d : kTorchDtypes)
    if (name == d) info.global = Global::kDtype;
  const std::string_view suffix = "Storage";
  if (name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix) {
    info.global = Global::kStorage;  // ComplexFloatStorage, QInt8Storage, ...: dtype kInvalid
    for (const StorageClass& s : kStorageClasses)
      if (name == s.name) info.dtype = s.dtype;
  }
  return info;
}

// Tuples nested deeper than this in a dict key compare by identity (KeyId recurses).
constexpr int kMaxKeyDepth = 16;
// Longer paths cannot name a tensor (spec rule N1): TensorPaths cuts them here.
constexpr size_t kMaxPathBytes = 4097;
// What TensorPaths counts for each path besides its bytes (the entry itself), so that its
// budget bounds the memory of the list however short the paths.
constexpr uint64_t kPathEntryBytes = 64;

std::string IntText(int64_t v) { return std::to_string(v); }

// How a dict key or list index appears in a tensor path.
std::string Label(const TorchPickle& p, uint32_t key) {
  if (key >= p.values.size()) return "?";
  const PickleValue& v = p.values[key];
  switch (v.kind) {
    case Kind::kString: return v.text;
    case Kind::kInt: return IntText(v.integer);
    case Kind::kBool: return v.boolean ? "True" : "False";
    case Kind::kNone: return "None";
    case Kind::kFloat: {
      char buf[64];
      const auto r = std::to_chars(buf, buf + sizeof buf, v.number);
      return std::string(buf, r.ptr);
    }
    case Kind::kBytes: return "(bytes)";
    case Kind::kTuple: return "(tuple)";
    default: return "(object)";
  }
}

uint64_t SatAdd(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }
uint64_t SatMul(uint64_t a, uint64_t b) {
  return (a != 0 && b > UINT64_MAX / a) ? UINT64_MAX : a * b;
}

// Python's 'surrogatepass' UTF-8: RFC 3629 UTF-8, and also the 3-byte forms of U+D800..DFFF.
bool IsUtf8SurrogatePass(std::string_view text) {
  if (IsValidUtf8(text)) return true;
  std::string copy(text);
  for (size_t i = 0; i + 2 < copy.size(); ++i)
    if (uint8_t(copy[i]) == 0xED && (uint8_t(copy[i + 1]) & 0xE0) == 0xA0 &&
        (uint8_t(copy[i + 2]) & 0xC0) == 0x80) {
      copy[i] = copy[i + 1] = copy[i + 2] = 'x';  // a valid surrogate: any ASCII stands in
      i += 2;
    }
  return IsValidUtf8(copy);
}

void AppendUtf8(uint32_t cp, std::string* out) {  // surrogates included (as surrogatepass)
  if (cp < 0x80) {
    *out += char(cp);
  } else if (cp < 0x800) {
    *out += char(0xC0 | (cp >> 6));
    *out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += char(0xE0 | (cp >> 12));
    *out += char(0x80 | ((cp >> 6) & 0x3F));
    *out += char(0x80 | (cp & 0x3F));
  } else {
    *out += char(0xF0 | (cp >> 18));
    *out += char(0x80 | ((cp >> 12) & 0x3F));
    *out += char(0x80 | ((cp >> 6) & 0x3F));
    *out += char(0x80 | (cp & 0x3F));
  }
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view Strip(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// Python's int(text, base) for the text opcodes (INT and LONG take base 0, GET and PUT 10).
// False when Python would refuse the text; *big when the value does not fit in 64 bits.
bool ParsePythonInt(std::string_view text, int base, int64_t* value, bool* big) {
  text = Strip(text);
  bool negative = false;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  if (base == 0) {
    base = 10;
    if (text.size() >= 2 && text[0] == '0') {
      const char p = char(text[1] | 0x20);
      base = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 10;
      if (base != 10) text.remove_prefix(2);
      if (!text.empty() && text[0] == '_') text.remove_prefix(1);  // 0x_1f
    }
  }
  if (text.empty()) return false;
  unsigned __int128 v = 0;
  *big = false;
  bool digit_before = false;
  for (char c : text) {
    if (c == '_') {
      if (!digit_before) return false;  // no leading or doubled underscore
      digit_before = false;
      continue;
    }
    const int d = HexDigit(c);
    if (d < 0 || d >= base) return false;
    digit_before = true;
    if (!*big) {
      v = v * unsigned(base) + unsigned(d);
      if (v > (unsigned __int128)(uint64_t{1} << 63)) *big = true;
    }
  }
  if (!digit_before) return false;  // a trailing underscore
  if (!*big && !negative && v == (unsigned __int128)(uint64_t{1} << 63)) *big = true;
  if (*big) return true;
  const uint64_t u = uint64_t(v);
  *value = negative ? int64_t(~u + 1) : int64_t(u);
  return true;
}

class Unpickler {
 public:
  Unpickler(ByteSpan in, const PickleLimits& limits) : in_(in), limits_(limits) {}

  Status Run();
  TorchPickle& result() { return out_; }

 private:
  // ---- errors ----
  std::string Where() const {
    return "pickle at offset " + std::to_string(op_pos_) + ", opcode " + OpcodeText(op_) + ": ";
  }
  Status Malformed(const std::string& what) const {
    return Status(ErrorCode::kPickleMalformed, Where() + what);
  }
  Status Error(ErrorCode code, const std::string& what) const { return Status(code, Where() + what); }

  // ---- input ----
  Status Need(uint64_t n) const {
    if (in_.size - pos_ < n)
      return Malformed("truncated: needs " + std::to_string(n) + " bytes at offset " +
                       std::to_string(pos_) + ", the pickle ends at offset " +
                       std::to_string(in_.size));
    return Status::Ok();
  }
  Status Read(uint64_t n, const uint8_t** p) {
    CKZ_RETURN_IF_ERROR(Need(n));
    *p = in_.data + pos_;
    pos_ += n;
    return Status::Ok();
  }
  // A line ending in '\n' (the arguments of the text opcodes), without the '\n'.
  Status ReadLine(std::string_view* line) {
    const void* nl = std::memchr(in_.data + pos_, '\n', in_.size - pos_);
    if (!nl) return Malformed("truncated: no end of line after offset " + std::to_string(pos_));
    const size_t end = size_t(static_cast<const uint8_t*>(nl) - in_.data);
    *line = std::string_view(reinterpret_cast<const char*>(in_.data + pos_), end - pos_);
    pos_ = end + 1;
    return Status::Ok();
  }

  // ---- values and stack ----
  Status NewValue(PickleValue v, uint32_t* index) {
    if (out_.values.size() >= limits_.max_values)
      return Error(ErrorCode::kLimitExceeded,
                   "more than " + std::to_string(limits_.max_values) + " values");
    *index = uint32_t(out_.values.size());
    out_.values.push_back(std::move(v));
    return Status::Ok();
  }
  Status PushNew(PickleValue v) {
    uint32_t index;
    CKZ_RETURN_IF_ERROR(NewValue(std::move(v), &index));
    return Push(index);
  }
  Status Push(uint32_t index) {
    if (stack_.size() >= limits_.max_values)
      return Error(ErrorCode::kLimitExceeded,
                   "more than " + std::to_string(limits_.max_values) + " values on the stack");
    stack_.push_back(index);
    return Status::Ok();
  }
  size_t Fence() const { return marks_.empty() ? 0 : marks_.back(); }
  Status Pop(uint32_t* index) {
    if (stack_.size() <= Fence()) return Malformed("stack underflow");
    *index = stack_.back();
    stack_.pop_back();
    return Status::Ok();
  }
  Status Top(uint32_t* index) const {
    if (stack_.size() <= Fence()) return Malformed("stack underflow (nothing to apply it to)");
    *index = stack_.back();
    return Status::Ok();
  }
  // The values above the last MARK, which is removed.
  Status PopMark(std::vector<uint32_t>* items) {
    if (marks_.empty()) return Malformed("no MARK on the stack");
    const size_t mark = marks_.back();
    marks_.pop_back();
    items->assign(stack_.begin() + std::ptrdiff_t(mark), stack_.end());
    stack_.resize(mark);
    return Status::Ok();
  }
  const PickleValue& V(uint32_t index) const { return out_.values[index]; }
  PickleValue& V(uint32_t index) { return out_.values[index]; }
  // The one None value that stands for an absent part of an opaque value.
  Status NoneValue(uint32_t* index) {
    if (!none_) {
      uint32_t i;
      CKZ_RETURN_IF_ERROR(NewValue(PickleValue{}, &i));
      none_ = i;
    }
    *index = *none_;
    return Status::Ok();
  }

  // ---- opcodes ----
  Status PushInt(int64_t v) {
    PickleValue p;
    p.kind = Kind::kInt;
    p.integer = v;
    return PushNew(std::move(p));
  }
  Status PushBool(bool b) {
    PickleValue p;
    p.kind = Kind::kBool;
    p.boolean = b;
    return PushNew(std::move(p));
  }
  Status PushBigInt() {  // an int beyond 64 bits: carried, its value not needed
    uint32_t index;
    CKZ_RETURN_IF_ERROR(NewOpaque("builtins.int", {}, {}, {}, &index));
    return Push(index);
  }
  Status PushContainer(Kind kind, std::vector<uint32_t> items) {
    PickleValue p;
    p.kind = kind;
    p.items = std::move(items);
    return PushNew(std::move(p));
  }
  Status NewTuple(std::vector<uint32_t> items, uint32_t* index) {
    PickleValue p;
    p.kind = Kind::kTuple;
    p.items = std::move(items);
    return NewValue(std::move(p), index);
  }
  Status Long(uint64_t n);
  Status Chars(uint64_t n, Kind kind);
  Status TextInt(bool long_opcode);
  Status TextFloat();
  Status TextString();
  Status TextUnicode();
  Status DictFromMark();
  Status Put(uint64_t memo_index);
  Status Get(uint64_t memo_index);
  Status GlobalOp(std::string_view module, std::string_view name);
  Status NewOpaque(std::string text, std::optional<uint32_t> callable, std::optional<uint32_t> args,
                   std::optional<uint32_t> kwargs, uint32_t* index);
  // Calls `callable` with `args` (REDUCE), or makes an instance of the class `callable`
  // (NEWOBJ, NEWOBJ_EX with `kwargs`).
  Status Call(uint32_t callable, uint32_t args, std::optional<uint32_t> kwargs, bool newobj);
  Status CallKnown(const GlobalInfo& info, const std::string& name,
                   const std::vector<uint32_t>& args, bool* handled);
  Status Build();
  Status PersistentId();
  Status Append(const std::vector<uint32_t>& items, uint32_t target, bool add);
  Status SetItems(const std::vector<uint32_t>& items, uint32_t target);
  Status OpaquePart(uint32_t target, size_t slot, Kind kind, uint32_t* part);
  Status Stop();

  Status RebuildTensor(const std::vector<uint32_t>& args, uint32_t* out);
  Status KeyId(uint32_t key, int depth, uint32_t* id);

  ByteSpan in_;
  PickleLimits limits_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  uint8_t op_ = 0;
  bool stopped_ = false;
  TorchPickle out_;
  std::optional<uint32_t> none_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::vector<uint32_t> memo_dense_;                 // memo entries 0 .. size-1
  std::unordered_map<uint64_t, uint32_t> memo_;      // memo entries beyond
  std::unordered_map<uint32_t, GlobalInfo> globals_;          // value -> what the global is
  std::unordered_set<std::string> opaque_names_;              // out_.opaque_globals as a set
  std::unordered_map<uint32_t, uint32_t> storage_of_value_;   // value -> storage index
  std::unordered_map<std::string, uint32_t> storage_by_key_;  // key -> storage index
  std::unordered_set<uint32_t> ordered_dicts_;                // dict values made by OrderedDict
  // Dict keys: value -> key id, canonical form -> key id, and per dict value: key id -> index
  // of the key in its items.
  std::unordered_map<uint32_t, uint32_t> key_ids_;
  std::unordered_map<std::string, uint32_t> interned_keys_;
  std::unordered_map<uint32_t, std::unordered_map<uint32_t, size_t>> dict_keys_;
};

Status Unpickler::Long(uint64_t n) {
  const uint8_t* p;
  CKZ_RETURN_IF_ERROR(Read(n, &p));
  if (n == 0) return PushInt(0);
  // Little-endian two's complement; it fits in 64 bits when every byte past the eighth is the
  // sign extension of the eighth.
  const uint64_t low = n < 8 ? n : 8;
  uint64_t u = 0;
  for (uint64_t i = 0; i < low; ++i) u |= uint64_t(p[i]) << (8 * i);
  const bool negative = p[low - 1] & 0x80;
  if (low < 8 && negative) u |= ~uint64_t{0} << (8 * low);
  for (uint64_t i = 8; i < n; ++i)
    if (p[i] != (negative ? 0xFF : 0x00)) return PushBigInt();
  int64_t v;
  std::memcpy(&v, &u, 8);
  return PushInt(v);
}

// The next n bytes as a str (kString) or bytes (kBytes).
Status Unpickler::Chars(uint64_t n, Kind kind) {
  const uint8_t* p;
  CKZ_RETURN_IF_ERROR(Read(n, &p));
  PickleValue v;
  v.kind = kind;
  v.text.assign(reinterpret_cast<const char*>(p), size_t(n));
  // BINUNICODE decodes with 'surrogatepass'; torch.load decodes protocol 0-2 str with utf-8.
  const bool unicode = op_ == 'X' || op_ == 0x8c || op_ == 0x8d;
  if (kind == Kind::kString && (unicode ? !IsUtf8SurrogatePass(v.text) : !IsValidUtf8(v.text)))
    return Malformed("a string of " + std::to_string(n) + " bytes is not valid UTF-8");
  return PushNew(std::move(v));
}

// INT ("00"/"01" are False/True) and LONG (an optional trailing 'L'), in Python's int(x, 0).
Status Unpickler::TextInt(bool long_opcode) {
  std::string_view line;
  CKZ_RETURN_IF_ERROR(ReadLine(&line));
  if (!long_opcode && (line == "00" || line == "01")) return PushBool(line == "01");
  if (long_opcode && !line.empty() && line.back() == 'L') line.remove_suffix(1);
  int64_t value = 0;
  bool big = false;
  if (!ParsePythonInt(line, 0, &value, &big))
    return Malformed("not an integer: " + QuoteBytes(line, 40));
  return big ? PushBigInt() : PushInt(value);
}

// FLOAT: Python's float(text).
Status Unpickler::TextFloat() {
  std::string_view line;
  CKZ_RETURN_IF_ERROR(ReadLine(&line));
  std::string text;
  for (char c : Strip(line))
    if (c != '_') text += c;
  bool negative = false;
  size_t at = 0;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) negative = text[at++] == '-';
  double d = 0;
  const auto r = std::from_chars(text.data() + at, text.data() + text.size(), d);
  if (text.size() == at || r.ec != std::errc() || r.ptr != text.data() + text.size() ||
      text[at] == '+' || text[at] == '-')
    return Malformed("not a float: " + QuoteBytes(line, 40));
  PickleValue v;
  v.kind = Kind::kFloat;
  v.number = negative ? -d : d;
  return PushNew(std::move(v));
}

// STRING: a quoted literal with Python's escapes (codecs.escape_decode), then UTF-8.
Status Unpickler::TextString() {
  std::string_view line;
  CKZ_RETURN_IF_ERROR(ReadLine(&line));
  if (line.size() < 2 || line.front() != line.back() || (line[0] != '\'' && line[0] != '"'))
    return Malformed("the STRING opcode argument must be quoted");
  line = line.substr(1, line.size() - 2);
  std::string out;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] != '\\') {
      out += line[i];
      continue;
    }
    if (++i == line.size()) return Malformed("a \\ at the end of a STRING");
    const char c = line[i];
    static const char kFrom[] = "\\'\"abfnrtv", kTo[] = "\\'\"\a\b\f\n\r\t\v";
    if (const char* e = std::strchr(kFrom, c); e && c) {
      out += kTo[e - kFrom];
    } else if (c == '\n') {
      // a line continuation: nothing
    } else if (c >= '0' && c <= '7') {
      int v = c - '0';
      for (int k = 0; k < 2 && i + 1 < line.size() && line[i + 1] >= '0' && line[i + 1] <= '7'; ++k)
        v = v * 8 + (line[++i] - '0');
      out += char(v & 0xFF);
    } else if (c == 'x') {
      if (i + 2 >= line.size() || HexDigit(line[i + 1]) < 0 || HexDigit(line[i + 2]) < 0)
        return Malformed("an invalid \\x escape in a STRING");
      out += char(HexDigit(line[i + 1]) * 16 + HexDigit(line[i + 2]));
      i += 2;
    } else {
      out += '\\';  // unknown escapes stay as they are
      out += c;
    }
  }
  if (!IsValidUtf8(out)) return Malformed("a STRING is not valid UTF-8");
  PickleValue v;
  v.kind = Kind::kString;
  v.text = std::move(out);
  return PushNew(std::move(v));
}

// UNICODE: raw-unicode-escape (bytes are code points, \uXXXX and \UXXXXXXXX escapes after an
// odd number of backslashes).
Status Unpickler::TextUnicode() {
  std::string_view line;
  CKZ_RETURN_IF_ERROR(ReadLine(&line));
  std::string out;
  for (size_t i = 0; i < line.size();) {
    if (line[i] != '\\') {
      AppendUtf8(uint8_t(line[i++]), &out);
      continue;
    }
    size_t run = 0;
    while (i + run < line.size() && line[i + run] == '\\') ++run;
    const size_t after = i + run;
    if (run % 2 == 0 || after >= line.size() || (line[after] != 'u' && line[after] != 'U')) {
      out.append(run, '\\');
      i = after;
      continue;
    }
    out.append(run - 1, '\\');
    const size_t digits = line[after] == 'u' ? 4 : 8;
    if (after + digits >= line.size())
      return Malformed("a truncated \\u escape in a UNICODE string");
    uint32_t cp = 0;
    for (size_t k = 1; k <= digits; ++k) {
      const int d = HexDigit(line[after + k]);
      if (d < 0) return Malformed("a truncated \\u escape in a UNICODE string");
      cp = cp * 16 + uint32_t(d);
    }
    if (cp > 0x10FFFF) return Malformed("a \\U escape above U+10FFFF in a UNICODE string");
    AppendUtf8(cp, &out);
    i = after + 1 + digits;
  }
  PickleValue v;
  v.kind = Kind::kString;
  v.text = std::move(out);
  return PushNew(std::move(v));
}

// The memo: dense for the indices 0, 1, 2, ... that picklers use, a map for any other.
Status Unpickler::Put(uint64_t memo_index) {
  uint32_t top = 0;
  CKZ_RETURN_IF_ERROR(Top(&top));
  if (memo_index < memo_dense_.size()) {
    memo_dense_[size_t(memo_index)] = top;
    return Status::Ok();
  }
  auto it = memo_.find(memo_index);
  if (it != memo_.end()) {
    it->second = top;
    return Status::Ok();
  }
  if (memo_dense_.size() + memo_.size() >= limits_.max_values)
    return Error(ErrorCode::kLimitExceeded,
                 "more than " + std::to_string(limits_.max_values) + " memo entries");
  if (memo_index == memo_dense_.size())
    memo_dense_.push_back(top);
  else
    memo_.emplace(memo_index, top);
  return Status::Ok();
}

Status Unpickler::Get(uint64_t memo_index) {
  if (memo_index < memo_dense_.size()) return Push(memo_dense_[size_t(memo_index)]);
  auto it = memo_.find(memo_index);
  if (it == memo_.end())
    return Malformed("memo entry " + std::to_string(memo_index) + " was never stored");
  return Push(it->second);
}

Status Unpickler::GlobalOp(std::string_view module, std::string_view name) {
  const std::string full = std::string(module) + "." + std::string(name);
  if (!IsValidUtf8(full)) return Malformed("global " + QuoteBytes(full) + " is not valid UTF-8");
  const GlobalInfo info = LookupGlobal(module, name);
  if (info.global == Global::kOpaque && opaque_names_.insert(full).second)
    out_.opaque_globals.push_back(full);
  PickleValue v;
  v.kind = Kind::kGlobal;
  v.text = full;
  uint32_t index;
  CKZ_RETURN_IF_ERROR(NewValue(std::move(v), &index));
  globals_.emplace(index, info);
  return Push(index);
}

Status Unpickler::NewOpaque(std::string text, std::optional<uint32_t> callable,
                            std::optional<uint32_t> args, std::optional<uint32_t> kwargs,
                            uint32_t* index) {
  uint32_t none = 0;
  CKZ_RETURN_IF_ERROR(NoneValue(&none));
  PickleValue v;
  v.kind = Kind::kOpaque;
  v.text = std::move(text);
  v.items.assign(PickleValue::kOpaqueSlots, none);
  if (callable) v.items[PickleValue::kCallable] = *callable;
  if (args) v.items[PickleValue::kArgs] = *args;
  if (kwargs) v.items[PickleValue::kKwargs] = *kwargs;
  return NewValue(std::move(v), index);
}

// The list or dict part of an opaque value, made on first use (never a value of the pickle
// itself, so adding to it changes nothing else).
Status Unpickler::OpaquePart(uint32_t target, size_t slot, Kind kind, uint32_t* part) {
  uint32_t none = 0;
  CKZ_RETURN_IF_ERROR(NoneValue(&none));
  if (V(target).items[slot] == none) {
    PickleValue v;
    v.kind = kind;
    uint32_t index;
    CKZ_RETURN_IF_ERROR(NewValue(std::move(v), &index));
    V(target).items[slot] = index;
  }
  *part = V(target).items[slot];
  return Status::Ok();
}

Status Unpickler::RebuildTensor(const std::vector<uint32_t>& args, uint32_t* out) {
  const std::string fn = "torch._utils._rebuild_tensor_v2: ";
  if (args.size() != 6 && args.size() != 7)
    return Malformed(fn + "takes 6 or 7 arguments, not " + std::to_string(args.size()));
  auto storage_it = storage_of_value_.find(args[0]);
  if (storage_it == storage_of_value_.end())
    return Malformed(fn + "argument 0 is " + KindName(V(args[0]).kind) + ", not a storage");
  const TorchStorage& storage = out_.storages[storage_it->second];
  TorchTensor t;
  t.storage = storage_it->second;
  if (V(args[1]).kind != Kind::kInt || V(args[1]).integer < 0)
    return Malformed(fn + "the storage offset is not a non-negative int");
  t.storage_offset = uint64_t(V(args[1]).integer);
  const PickleValue& size = V(args[2]);
  const PickleValue& stride = V(args[3]);
  if (size.kind != Kind::kTuple || stride.kind != Kind::kTuple)
    return Malformed(fn + "size and stride must be tuples");
  if (size.items.size() != stride.items.size())
    return Malformed(fn + "size has " + std::to_string(size.items.size()) +
                     " dimensions, stride " + std::to_string(stride.items.size()));
  for (size_t i = 0; i < size.items.size(); ++i) {
    const PickleValue& s = V(size.items[i]);
    const PickleValue& st = V(stride.items[i]);
    if (s.kind != Kind::kInt || s.integer < 0)
      return Malformed(fn + "size[" + std::to_string(i) + "] is not a non-negative int");
    if (st.kind != Kind::kInt || st.integer < 0)
      return Malformed(fn + "stride[" + std::to_string(i) + "] is not a non-negative int");
    t.shape.push_back(uint64_t(s.integer));
    t.stride.push_back(uint64_t(st.integer));
  }
  if (V(args[4]).kind != Kind::kBool) return Malformed(fn + "requires_grad is not a bool");
  t.requires_grad = V(args[4]).boolean;
  if (V(args[5]).kind != Kind::kDict) return Malformed(fn + "backward_hooks is not a dict");
  if (args.size() == 7 && V(args[6]).kind != Kind::kDict && V(args[6]).kind != Kind::kNone)
    return Malformed(fn + "metadata is neither a dict nor None");

  // The view must lie inside the storage: its last element (offset + sum (size-1) * stride)
  // below numel. An empty view reaches nothing; its offset may be at most numel.
  bool empty = false;
  for (uint64_t s : t.shape) empty = empty || s == 0;
  const std::string view = "a tensor view (storage offset " + std::to_string(t.storage_offset) +
                           ") of storage '" + storage.key + "' (" +
                           std::to_string(storage.numel) + " elements)";
  if (empty) {
    if (t.storage_offset > storage.numel)
      return Error(ErrorCode::kTorchStorageMismatch, view + " starts past its end");
  } else {
    uint64_t last = t.storage_offset;
    bool overflow = false;
    for (size_t i = 0; i < t.shape.size(); ++i) {
      const uint64_t reach = SatMul(t.shape[i] - 1, t.stride[i]);
      overflow = overflow || reach == UINT64_MAX;
      last = SatAdd(last, reach);
    }
    if (overflow || last == UINT64_MAX || last >= storage.numel)
      return Error(ErrorCode::kTorchStorageMismatch,
                   view + " reaches element " + (overflow || last == UINT64_MAX ? std::string(">= 2^64") : std::to_string(last)) +
                       ", past its end");
  }
  PickleValue v;
  v.kind = Kind::kTensor;
  v.tensor = uint32_t(out_.tensors.size());
  CKZ_RETURN_IF_ERROR(NewValue(std::move(v), out));
  out_.tensors.push_back(std::move(t));
  return Status::Ok();
}

// A call of a global CKZ interprets. *handled false: carry the call as an opaque value
// instead (what Python would accept but CKZ need not understand, e.g. OrderedDict([...])).
Status Unpickler::CallKnown(const GlobalInfo& info, const std::string& name,
                            const std::vector<uint32_t>& args, bool* handled) {
  *handled = true;
  PickleValue v;
  switch (info.global) {
    case Global::kOpaque:
      break;
    case Global::kOrderedDict: {
      if (!args.empty()) break;
      v.kind = Kind::kDict;
      uint32_t index;
      CKZ_RETURN_IF_ERROR(NewValue(std::move(v), &index));
      ordered_dicts_.insert(index);
      return Push(index);
    }
    case Global::kRebuildTensorV2: {
      uint32_t index;
      CKZ_RETURN_IF_ERROR(RebuildTensor(args, &index));
      return Push(index);
    }
    case Global::kRebuildParameter:
    case Global::kRebuildParameterWithState: {
      const std::string fn = name + ": ";
      const size_t n = info.global == Global::kRebuildParameter ? 3 : 4;
      if (args.size() != n)
        return Malformed(fn + "takes " + std::to_string(n) + " arguments, not " +
                         std::to_string(args.size()));
      if (V(args[0]).kind != Kind::kTensor) return Malformed(fn + "argument 0 is not a tensor");
      if (V(args[1]).kind != Kind::kBool) return Malformed(fn + "requires_grad is not a bool");
      if (V(args[2]).kind != Kind::kDict) return Malformed(fn + "backward_hooks is not a dict");
      TorchTensor& t = out_.tensors[V(args[0]).tensor];
      t.parameter = true;
      t.requires_grad = V(args[1]).boolean;
      return Push(args[0]);
    }
    case Global::kRebuildFromType: {
      // (func, type, args, state): a tensor subclass. Interpreted when func is
      // _rebuild_tensor_v2, whose arguments make the tensor; the type and state are dropped.
      if (args.size() != 4) break;
      auto func = globals_.find(args[0]);
      if (func == globals_.end() || func->second.global != Global::kRebuildTensorV2 ||
          V(args[2]).kind != Kind::kTuple)
        break;
      const std::vector<uint32_t> inner = V(args[2]).items;
      uint32_t index;
      CKZ_RETURN_IF_ERROR(RebuildTensor(inner, &index));
      return Push(index);
    }
    case Global::kSize: {
      if (args.size() != 1 ||
          (V(args[0]).kind != Kind::kTuple && V(args[0]).kind != Kind::kList))
        return Malformed("torch.Size takes one tuple of ints");
      for (uint32_t item : V(args[0]).items)
        if (V(item).kind != Kind::kInt) return Malformed("torch.Size takes one tuple of ints");
      v.kind = Kind::kObject;
      v.text = name;
      v.items = args;
      return PushNew(std::move(v));
    }
    case Global::kDevice: {
      const bool ok = (args.size() == 1 || args.size() == 2) &&
                      V(args[0]).kind == Kind::kString &&
                      (args.size() == 1 || V(args[1]).kind == Kind::kInt);
      if (!ok) return Malformed("torch.device takes (str) or (str, int)");
      v.kind = Kind::kObject;
      v.text = name;
      v.items = args;
      return PushNew(std::move(v));
    }
    case Global::kCodecsEncode: {
      if (args.size() != 2 || V(args[0]).kind != Kind::kString ||
          V(args[1]).kind != Kind::kString)
        break;
      const std::string& encoding = V(args[1]).text;
      const std::string& s = V(args[0]).text;
      std::string bytes;
      if (encoding == "utf-8" || encoding == "utf8") {
        if (!IsValidUtf8(s)) break;  // lone surrogates: Python refuses, but let it say so
        bytes = s;
      } else if (encoding == "latin1" || encoding == "latin-1") {
        // Code points 0..255 of the string are the bytes.
        bytes.reserve(s.size());
        for (size_t i = 0; i < s.size();) {
          const uint8_t c = uint8_t(s[i]);
          if (c < 0x80) {
            bytes += char(c);
            i += 1;
          } else if ((c & 0xE0) == 0xC0 && c <= 0xC3) {
            bytes += char(((c & 0x1F) << 6) | (uint8_t(s[i + 1]) & 0x3F));
            i += 2;
          } else {
            return Malformed("_codecs.encode: a character above U+00FF is not latin1");
          }
        }
      } else {
        break;  // another encoding: carried as a call
      }
      v.kind = Kind::kBytes;
      v.text = std::move(bytes);
      return PushNew(std::move(v));
    }
    case Global::kBytes: {
      if (!args.empty()) break;
      v.kind = Kind::kBytes;
      return PushNew(std::move(v));
    }
    case Global::kStorage:
      break;  // torch.FloatStorage(n) makes a storage in Python: carried
    case Global::kDtype:
      return Malformed(name + " cannot be called");
  }
  *handled = false;
  return Status::Ok();
}

// REDUCE (callable, args), NEWOBJ (class, args) and NEWOBJ_EX (class, args, kwargs); INST and
// OBJ come here too.
Status Unpickler::Call(uint32_t callable, uint32_t args_index, std::optional<uint32_t> kwargs,
                       bool newobj) {
  const Kind kind = V(callable).kind;
  if (kind == Kind::kOpaque) {  // e.g. getattr(obj, "f")(...)
    uint32_t index;
    CKZ_RETURN_IF_ERROR(NewOpaque("", callable, args_index, kwargs, &index));
    return Push(index);
  }
  if (kind != Kind::kGlobal)
    return Malformed(std::string("calls ") + KindName(kind) + ", not a global");
  const GlobalInfo info = globals_.at(callable);
  const std::string name = V(callable).text;
  const bool is_class = info.global == Global::kOrderedDict || info.global == Global::kSize ||
                        info.global == Global::kDevice || info.global == Global::kStorage ||
                        info.global == Global::kBytes || info.global == Global::kOpaque;
  if (newobj && !is_class) return Malformed(name + " is not a class");
  const Kind args_kind = V(args_index).kind;
  const bool kwargs_given = kwargs && !(V(*kwargs).kind == Kind::kDict && V(*kwargs).items.empty());
  if (info.global != Global::kOpaque && (args_kind == Kind::kTuple || args_kind == Kind::kList) &&
      !kwargs_given) {
    const std::vector<uint32_t> args = V(args_index).items;
    bool handled = false;
    CKZ_RETURN_IF_ERROR(CallKnown(info, name, args, &handled));
    if (handled) return Status::Ok();
  } else if (info.global == Global::kDtype) {
    return Malformed(name + " cannot be called");
  }
  uint32_t index;
  CKZ_RETURN_IF_ERROR(NewOpaque(name, callable, args_index, kwargs, &index));
  return Push(index);
}

Status Unpickler::Build() {
  uint32_t state = 0, inst = 0;
  CKZ_RETURN_IF_ERROR(Pop(&state));
  CKZ_RETURN_IF_ERROR(Top(&inst));
  const Kind kind = V(inst).kind;
  if (ordered_dicts_.count(inst)) {
    // The state of an OrderedDict is its __dict__ (a state_dict's _metadata): dropped.
    const Kind s = V(state).kind;
    if (s != Kind::kDict && s != Kind::kNone && s != Kind::kTuple)
      return Malformed(std::string("the state of an OrderedDict is ") + KindName(s) +
                       ", not a dict");
    return Status::Ok();
  }
  if (kind == Kind::kOpaque) {
    // A second BUILD replaces the first here (Python applies both; only names could differ).
    V(inst).items[PickleValue::kState] = state;
    return Status::Ok();
  }
  if (kind == Kind::kTensor ||
      (kind == Kind::kGlobal && globals_.at(inst).global == Global::kOpaque))
    return Status::Ok();  // Tensor.__setstate__, a class attribute: nothing CKZ needs
  return Malformed(std::string("BUILD on ") + KindName(kind) +
                   " (Python cannot set the state of one)");
}

Status Unpickler::PersistentId() {
  uint32_t pid = 0;
  CKZ_RETURN_IF_ERROR(Pop(&pid));
  const PickleValue& id = V(pid);
  const std::string shape =
      "a persistent id must be ('storage', storage class, key, location, numel)";
  if (id.kind != Kind::kTuple || id.items.size() != 5) return Malformed(shape);
  const PickleValue& tag = V(id.items[0]);
  const PickleValue& cls = V(id.items[1]);
  const PickleValue& key = V(id.items[2]);
  const PickleValue& location = V(id.items[3]);
  const PickleValue& numel = V(id.items[4]);
  if (tag.kind != Kind::kString || tag.text != "storage" || cls.kind != Kind::kGlobal ||
      key.kind != Kind::kString || location.kind != Kind::kString || numel.kind != Kind::kInt)
    return Malformed(shape);
  const GlobalInfo info = globals_.at(id.items[1]);
  if (info.global != Global::kStorage)
    return Malformed("the storage class is '" + cls.text + "', not a torch storage class");
  if (info.dtype == DType::kInvalid)
    return Error(ErrorCode::kUnsupportedDtype,
                 "storage class '" + cls.text +
                     "' has a dtype CKZ does not carry (F64 F32 F16 BF16 I64 I32 I16 I8 U8 "
                     "BOOL are supported)");
  if (key.text.empty() || key.text.size() > 4096 || key.text == "." || key.text == ".." ||
      key.text.find('/') != std::string::npos || key.text.find('\0') != std::string::npos ||
      !IsValidUtf8(key.text))
    return Malformed("storage key " + QuoteBytes(key.text) + " cannot name a zip entry");
  if (numel.integer < 0) return Malformed("storage '" + key.text + "' has a negative numel");
  TorchStorage s;
  s.key = key.text;
  s.dtype = info.dtype;
  s.numel = uint64_t(numel.integer);
  s.location = location.text;
  if (s.numel > (uint64_t{1} << 63) / DTypeSize(s.dtype))
    return Error(ErrorCode::kLimitExceeded,
                 "storage '" + s.key + "' of " + std::to_string(s.numel) + " " +
                     DTypeName(s.dtype) + " elements has 2^63 bytes or more");

  uint32_t storage_index;
  auto it = storage_by_key_.find(s.key);
  if (it != storage_by_key_.end()) {
    const TorchStorage& first = out_.storages[it->second];
    if (first.dtype != s.dtype || first.numel != s.numel || first.location != s.location)
      return Error(ErrorCode::kTorchStorageMismatch,
                   "storage '" + s.key + "' is declared as " + DTypeName(first.dtype) + " x " +
                       std::to_string(first.numel) + " on " + QuoteBytes(first.location) +
                       " and again as " + DTypeName(s.dtype) + " x " +
                       std::to_string(s.numel) + " on " + QuoteBytes(s.location));
    storage_index = it->second;
  } else {
    storage_index = uint32_t(out_.storages.size());
    storage_by_key_.emplace(s.key, storage_index);
    out_.storages.push_back(std::move(s));
  }
  PickleValue v;
  v.kind = Kind::kObject;
  v.text = cls.text;
  v.items = id.items;
  uint32_t index;
  CKZ_RETURN_IF_ERROR(NewValue(std::move(v), &index));
  storage_of_value_.emplace(index, storage_index);
  return Push(index);
}

// APPEND(S) (add false) on a list or an opaque value; ADDITEMS (add true) on an opaque value
// (a set).
Status Unpickler::Append(const std::vector<uint32_t>& items, uint32_t target, bool add) {
  uint32_t list = target;
  if (V(target).kind == Kind::kOpaque) {
    CKZ_RETURN_IF_ERROR(OpaquePart(target, PickleValue::kListItems, Kind::kList, &list));
  } else if (add || V(target).kind != Kind::kList) {
    return Malformed(std::string(add ? "adds to " : "appends to ") + KindName(V(target).kind) +
                     (add ? ", not a set" : ", not a list"));
  }
  std::vector<uint32_t>& dst = V(list).items;
  dst.insert(dst.end(), items.begin(), items.end());
  return Status::Ok();
}

// The identity of a dict key under Python equality: values that compare equal get the same
// id. Keys are immutable (lists and dicts cannot be keys), so each value's id is computed once
// and a tuple's canonical form names its items by id: work and memory stay linear in the
// input however much the tuples share. Values whose equality CKZ cannot know (objects,
// tensors, NaN, tuples nested too deep) are equal only to themselves: at worst a key Python
// merges stays twice, which changes no byte and at most a tensor's name.
Status Unpickler::KeyId(uint32_t key, int depth, uint32_t* id) {
  auto known = key_ids_.find(key);
  if (known != key_ids_.end()) {
    *id = known->second;
    return Status::Ok();
  }
  const PickleValue& v = V(key);
  std::string canonical;
  const std::string identity = "o" + std::to_string(key);
  switch (v.kind) {
    case Kind::kNone:
      canonical = "N";
      break;
    case Kind::kBool:
      canonical = v.boolean ? "i1" : "i0";
      break;
    case Kind::kInt:
      canonical = "i" + IntText(v.integer);
      break;
    case Kind::kFloat: {
      const double f = v.number;
      if (std::isnan(f)) {
        canonical = identity;
      } else if (f >= -9223372036854775808.0 && f < 9223372036854775808.0 && f == std::trunc(f)) {
        canonical = "i" + IntText(int64_t(f));  // 1.0 == 1, -0.0 == 0
      } else {
        uint64_t bits;
        std::memcpy(&bits, &f, 8);
        canonical = "f" + Hex(bits, 16);
      }
      break;
    }
    case Kind::kString:
      canonical = "s" + v.text;
      break;
    case Kind::kBytes:
      canonical = "b" + v.text;
      break;
    case Kind::kGlobal:
      canonical = "g" + v.text;  // the same name is the same Python object
      break;
    case Kind::kTuple: {
      if (depth >= kMaxKeyDepth) {
        canonical = identity;
        break;
      }
      canonical = "t";
      const std::vector<uint32_t> items = v.items;
      for (uint32_t item : items) {
        uint32_t item_id = 0;
        CKZ_RETURN_IF_ERROR(KeyId(item, depth + 1, &item_id));
        canonical += std::to_string(item_id) + ",";
      }
      break;
    }
    case Kind::kList:
    case Kind::kDict:
      return Malformed(std::string(KindName(v.kind)) + " cannot be a dict key (unhashable)");
    default:
      canonical = identity;
  }
  auto [it, inserted] = interned_keys_.emplace(std::move(canonical), uint32_t(interned_keys_.size()));
  key_ids_.emplace(key, it->second);
  *id = it->second;
  return Status::Ok();
}

Status Unpickler::SetItems(const std::vector<uint32_t>& items, uint32_t target) {
  const Kind kind = V(target).kind;
  if (kind != Kind::kDict && kind != Kind::kOpaque)
    return Malformed(std::string("sets items of ") + KindName(kind) + ", not a dict");
  if (items.size() % 2 != 0)
    return Malformed("an odd number of values (" + std::to_string(items.size()) +
                     ") for key/value pairs");
  if (kind == Kind::kOpaque) {  // a dict subclass (defaultdict, ...): pairs as given
    uint32_t dict = 0;
    CKZ_RETURN_IF_ERROR(OpaquePart(target, PickleValue::kDictItems, Kind::kDict, &dict));
    std::vector<uint32_t>& dst = V(dict).items;
    dst.insert(dst.end(), items.begin(), items.end());
    return Status::Ok();
  }
  auto& index = dict_keys_[target];
  for (size_t i = 0; i < items.size(); i += 2) {
    uint32_t id = 0;
    CKZ_RETURN_IF_ERROR(KeyId(items[i], 0, &id));
    std::vector<uint32_t>& dst = V(target).items;
    auto [it, inserted] = index.emplace(id, dst.size());
    if (inserted) {
      dst.push_back(items[i]);
      dst.push_back(items[i + 1]);
    } else {
      dst[it->second + 1] = items[i + 1];  // Python: the first key stays, the last value wins
    }
  }
  return Status::Ok();
}

// DICT: {items[0]: items[1], ...} from the values above the MARK.
Status Unpickler::DictFromMark() {
  std::vector<uint32_t> items;
  CKZ_RETURN_IF_ERROR(PopMark(&items));
  PickleValue v;
  v.kind = Kind::kDict;
  uint32_t index;
  CKZ_RETURN_IF_ERROR(NewValue(std::move(v), &index));
  CKZ_RETURN_IF_ERROR(SetItems(items, index));
  return Push(index);
}

Status Unpickler::Stop() {
  uint32_t root = 0;
  CKZ_RETURN_IF_ERROR(Pop(&root));
  if (!marks_.empty()) return Malformed("a MARK is still open");
  if (!stack_.empty())
    return Malformed(std::to_string(stack_.size()) + " values are left on the stack");
  if (pos_ != in_.size)
    return Malformed(std::to_string(in_.size - pos_) + " bytes follow STOP");
  out_.root = root;
  stopped_ = true;
  return Status::Ok();
}

Status Unpickler::Run() {
  // torch.save pickles take about 7 bytes per value: reserve for most of them (bounded by the
  // input, which holds at least one byte per value).
  out_.values.reserve(size_t(std::min<uint64_t>(limits_.max_values, in_.size / 8)));
  while (!stopped_) {
    op_pos_ = pos_;
    if (pos_ >= in_.size) {
      op_ = 0;
      return Status(ErrorCode::kPickleMalformed,
                    "pickle at offset " + std::to_string(pos_) +
                        ": truncated: the stream ends without STOP");
    }
    op_ = in_.data[pos_++];
    const uint8_t* p = nullptr;
    std::string_view line, line2;
    std::vector<uint32_t> items;
    uint32_t a = 0, b = 0, c = 0;
    int64_t number = 0;
    bool big = false;
    switch (op_) {
      case 0x80:  // PROTO
        CKZ_RETURN_IF_ERROR(Read(1, &p));
        if (p[0] > 5)
          return Error(ErrorCode::kUnsupported,
                       "protocol " + std::to_string(p[0]) +
                           " is not supported (Python reads protocols 0 to 5)");
        break;
      case 0x95:  // FRAME: a hint for buffering, ignored
        CKZ_RETURN_IF_ERROR(Read(8, &p));
        if (LoadLE64(p) > in_.size - pos_) return Malformed("truncated: the frame runs past the end");
        break;
      case '}':
        CKZ_RETURN_IF_ERROR(PushContainer(Kind::kDict, {}));
        break;
      case ']':
        CKZ_RETURN_IF_ERROR(PushContainer(Kind::kList, {}));
        break;
      case ')':
        CKZ_RETURN_IF_ERROR(PushContainer(Kind::kTuple, {}));
        break;
      case 0x8f:  // EMPTY_SET
        CKZ_RETURN_IF_ERROR(NewOpaque("builtins.set", {}, {}, {}, &a));
        CKZ_RETURN_IF_ERROR(Push(a));
        break;
      case '(':
        if (marks_.size() >= limits_.max_values)
          return Error(ErrorCode::kLimitExceeded, "too many open MARKs");
        marks_.push_back(stack_.size());
        break;
      case 't':
        CKZ_RETURN_IF_ERROR(PopMark(&items));
        CKZ_RETURN_IF_ERROR(PushContainer(Kind::kTuple, std::move(items)));
        break;
      case 'l':  // LIST
        CKZ_RETURN_IF_ERROR(PopMark(&items));
        CKZ_RETURN_IF_ERROR(PushContainer(Kind::kList, std::move(items)));
        break;
      case 'd':  // DICT
        CKZ_RETURN_IF_ERROR(DictFromMark());
        break;
      case 0x91:  // FROZENSET
        CKZ_RETURN_IF_ERROR(PopMark(&items));
        CKZ_RETURN_IF_ERROR(NewOpaque("builtins.frozenset", {}, {}, {}, &a));
        CKZ_RETURN_IF_ERROR(Append(items, a, true));
        CKZ_RETURN_IF_ERROR(Push(a));
        break;
      case 0x85:
        CKZ_RETURN_IF_ERROR(Pop(&a));
        CKZ_RETURN_IF_ERROR(PushContainer(Kind::kTuple, {a}));
        break;
      case 0x86:
        CKZ_RETURN_IF_ERROR(Pop(&b));
        CKZ_RETURN_IF_ERROR(Pop(&a));
        CKZ_RETURN_IF_ERROR(PushContainer(Kind::kTuple, {a, b}));
        break;
      case 0x87:
        CKZ_RETURN_IF_ERROR(Pop(&c));
        CKZ_RETURN_IF_ERROR(Pop(&b));
        CKZ_RETURN_IF_ERROR(Pop(&a));
        CKZ_RETURN_IF_ERROR(PushContainer(Kind::kTuple, {a, b, c}));
        break;
      case 'X':  // BINUNICODE
        CKZ_RETURN_IF_ERROR(Read(4, &p));
        CKZ_RETURN_IF_ERROR(Chars(LoadLE32(p), Kind::kString));
        break;
      case 0x8c:  // SHORT_BINUNICODE
        CKZ_RETURN_IF_ERROR(Read(1, &p));
        CKZ_RETURN_IF_ERROR(Chars(p[0], Kind::kString));
        break;
      case 0x8d:  // BINUNICODE8
        CKZ_RETURN_IF_ERROR(Read(8, &p));
        CKZ_RETURN_IF_ERROR(Chars(LoadLE64(p), Kind::kString));
        break;
      case 'T': {  // BINSTRING: a str (torch.load decodes with utf-8)
        CKZ_RETURN_IF_ERROR(Read(4, &p));
        const int32_t n = int32_t(LoadLE32(p));
        if (n < 0) return Malformed("negative string length " + std::to_string(n));
        CKZ_RETURN_IF_ERROR(Chars(uint64_t(n), Kind::kString));
        break;
      }
      case 'U':  // SHORT_BINSTRING
        CKZ_RETURN_IF_ERROR(Read(1, &p));
        CKZ_RETURN_IF_ERROR(Chars(p[0], Kind::kString));
        break;
      case 'S':
        CKZ_RETURN_IF_ERROR(TextString());
        break;
      case 'V':
        CKZ_RETURN_IF_ERROR(TextUnicode());
        break;
      case 'B':  // BINBYTES
        CKZ_RETURN_IF_ERROR(Read(4, &p));
        CKZ_RETURN_IF_ERROR(Chars(LoadLE32(p), Kind::kBytes));
        break;
      case 'C':  // SHORT_BINBYTES
        CKZ_RETURN_IF_ERROR(Read(1, &p));
        CKZ_RETURN_IF_ERROR(Chars(p[0], Kind::kBytes));
        break;
      case 0x8e:  // BINBYTES8
      case 0x96:  // BYTEARRAY8
        CKZ_RETURN_IF_ERROR(Read(8, &p));
        CKZ_RETURN_IF_ERROR(Chars(LoadLE64(p), Kind::kBytes));
        break;
      case 'J':  // BININT
        CKZ_RETURN_IF_ERROR(Read(4, &p));
        CKZ_RETURN_IF_ERROR(PushInt(int32_t(LoadLE32(p))));
        break;
      case 'K':  // BININT1
        CKZ_RETURN_IF_ERROR(Read(1, &p));
        CKZ_RETURN_IF_ERROR(PushInt(p[0]));
        break;
      case 'M':  // BININT2
        CKZ_RETURN_IF_ERROR(Read(2, &p));
        CKZ_RETURN_IF_ERROR(PushInt(LoadLE16(p)));
        break;
      case 'I':
        CKZ_RETURN_IF_ERROR(TextInt(false));
        break;
      case 'L':
        CKZ_RETURN_IF_ERROR(TextInt(true));
        break;
      case 0x8a:  // LONG1
        CKZ_RETURN_IF_ERROR(Read(1, &p));
        CKZ_RETURN_IF_ERROR(Long(p[0]));
        break;
      case 0x8b: {  // LONG4
        CKZ_RETURN_IF_ERROR(Read(4, &p));
        const int32_t n = int32_t(LoadLE32(p));
        if (n < 0) return Malformed("negative integer length " + std::to_string(n));
        CKZ_RETURN_IF_ERROR(Long(uint64_t(n)));
        break;
      }
      case 'G': {  // BINFLOAT: big-endian IEEE 754 double
        CKZ_RETURN_IF_ERROR(Read(8, &p));
        uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
        PickleValue v;
        v.kind = Kind::kFloat;
        std::memcpy(&v.number, &bits, 8);
        CKZ_RETURN_IF_ERROR(PushNew(std::move(v)));
        break;
      }
      case 'F':
        CKZ_RETURN_IF_ERROR(TextFloat());
        break;
      case 0x88:
        CKZ_RETURN_IF_ERROR(PushBool(true));
        break;
      case 0x89:
        CKZ_RETURN_IF_ERROR(PushBool(false));
        break;
      case 'N':
        CKZ_RETURN_IF_ERROR(PushNew(PickleValue{}));
        break;
      case '0':  // POP: with nothing above the MARK, Python pops the MARK
        if (stack_.size() > Fence()) {
          stack_.pop_back();
        } else {
          CKZ_RETURN_IF_ERROR(PopMark(&items));
        }
        break;
      case '1':  // POP_MARK
        CKZ_RETURN_IF_ERROR(PopMark(&items));
        break;
      case '2':  // DUP
        CKZ_RETURN_IF_ERROR(Top(&a));
        CKZ_RETURN_IF_ERROR(Push(a));
        break;
      case 'a':  // APPEND
        CKZ_RETURN_IF_ERROR(Pop(&a));
        CKZ_RETURN_IF_ERROR(Top(&b));
        CKZ_RETURN_IF_ERROR(Append({a}, b, false));
        break;
      case 'e':  // APPENDS
        CKZ_RETURN_IF_ERROR(PopMark(&items));
        CKZ_RETURN_IF_ERROR(Top(&b));
        CKZ_RETURN_IF_ERROR(Append(items, b, false));
        break;
      case 0x90:  // ADDITEMS
        CKZ_RETURN_IF_ERROR(PopMark(&items));
        CKZ_RETURN_IF_ERROR(Top(&b));
        CKZ_RETURN_IF_ERROR(Append(items, b, true));
        break;
      case 's':  // SETITEM
        CKZ_RETURN_IF_ERROR(Pop(&b));
        CKZ_RETURN_IF_ERROR(Pop(&a));
        CKZ_RETURN_IF_ERROR(Top(&c));
        CKZ_RETURN_IF_ERROR(SetItems({a, b}, c));
        break;
      case 'u':  // SETITEMS
        CKZ_RETURN_IF_ERROR(PopMark(&items));
        CKZ_RETURN_IF_ERROR(Top(&c));
        CKZ_RETURN_IF_ERROR(SetItems(items, c));
        break;
      case 'q':  // BINPUT
        CKZ_RETURN_IF_ERROR(Read(1, &p));
        CKZ_RETURN_IF_ERROR(Put(p[0]));
        break;
      case 'r':  // LONG_BINPUT
        CKZ_RETURN_IF_ERROR(Read(4, &p));
        CKZ_RETURN_IF_ERROR(Put(LoadLE32(p)));
        break;
      case 'p':  // PUT
      case 'g':  // GET
        CKZ_RETURN_IF_ERROR(ReadLine(&line));
        if (!ParsePythonInt(line, 10, &number, &big) || big || number < 0)
          return Malformed("memo index " + QuoteBytes(line, 40) + " is not a non-negative int");
        CKZ_RETURN_IF_ERROR(op_ == 'p' ? Put(uint64_t(number)) : Get(uint64_t(number)));
        break;
      case 0x94:  // MEMOIZE
        // CPython: memo[len(memo)] = top. A dense memo's length is its size; entries stored
        // at other indices count too.
        CKZ_RETURN_IF_ERROR(Put(memo_dense_.size() + memo_.size()));
        break;
      case 'h':  // BINGET
        CKZ_RETURN_IF_ERROR(Read(1, &p));
        CKZ_RETURN_IF_ERROR(Get(p[0]));
        break;
      case 'j':  // LONG_BINGET
        CKZ_RETURN_IF_ERROR(Read(4, &p));
        CKZ_RETURN_IF_ERROR(Get(LoadLE32(p)));
        break;
      case 'c':  // GLOBAL
        CKZ_RETURN_IF_ERROR(ReadLine(&line));
        CKZ_RETURN_IF_ERROR(ReadLine(&line2));
        CKZ_RETURN_IF_ERROR(GlobalOp(line, line2));
        break;
      case 0x93:  // STACK_GLOBAL
        CKZ_RETURN_IF_ERROR(Pop(&b));
        CKZ_RETURN_IF_ERROR(Pop(&a));
        if (V(a).kind != Kind::kString || V(b).kind != Kind::kString)
          return Malformed("STACK_GLOBAL needs two str");
        CKZ_RETURN_IF_ERROR(GlobalOp(std::string(V(a).text), std::string(V(b).text)));
        break;
      case 'i': {  // INST: a class named inline, called with the values above the MARK
        CKZ_RETURN_IF_ERROR(ReadLine(&line));
        CKZ_RETURN_IF_ERROR(ReadLine(&line2));
        CKZ_RETURN_IF_ERROR(PopMark(&items));
        CKZ_RETURN_IF_ERROR(GlobalOp(line, line2));
        CKZ_RETURN_IF_ERROR(Pop(&a));
        CKZ_RETURN_IF_ERROR(NewTuple(std::move(items), &b));
        CKZ_RETURN_IF_ERROR(Call(a, b, std::nullopt, false));
        break;
      }
      case 'o':  // OBJ: class and arguments above the MARK
        CKZ_RETURN_IF_ERROR(PopMark(&items));
        if (items.empty()) return Malformed("OBJ without a class");
        a = items[0];
        items.erase(items.begin());
        CKZ_RETURN_IF_ERROR(NewTuple(std::move(items), &b));
        CKZ_RETURN_IF_ERROR(Call(a, b, std::nullopt, false));
        break;
      case 'R':  // REDUCE
        CKZ_RETURN_IF_ERROR(Pop(&b));
        CKZ_RETURN_IF_ERROR(Pop(&a));
        CKZ_RETURN_IF_ERROR(Call(a, b, std::nullopt, false));
        break;
      case 0x81:  // NEWOBJ
        CKZ_RETURN_IF_ERROR(Pop(&b));
        CKZ_RETURN_IF_ERROR(Pop(&a));
        CKZ_RETURN_IF_ERROR(Call(a, b, std::nullopt, true));
        break;
      case 0x92:  // NEWOBJ_EX
        CKZ_RETURN_IF_ERROR(Pop(&c));
        CKZ_RETURN_IF_ERROR(Pop(&b));
        CKZ_RETURN_IF_ERROR(Pop(&a));
        CKZ_RETURN_IF_ERROR(Call(a, b, c, true));
        break;
      case 'b':
        CKZ_RETURN_IF_ERROR(Build());
        break;
      case 'Q':
        CKZ_RETURN_IF_ERROR(PersistentId());
        break;
      case 'P':  // PERSID: torch.load's persistent_load cannot read a text id
        return Malformed("a text persistent id (protocol 0): torch.load cannot read it");
      case 0x82:  // EXT1, EXT2, EXT4: the copyreg registry is empty where torch.load runs
      case 0x83:
      case 0x84:
      case 0x97:  // NEXT_BUFFER, READONLY_BUFFER: torch.load passes no out-of-band buffers
      case 0x98:
        return Malformed("this opcode needs what torch.load does not provide");
      case '.':
        CKZ_RETURN_IF_ERROR(Stop());
        break;
      default:
        return Malformed("not a pickle opcode");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<TorchPickle> ParseTorchPickle(ByteSpan pickle, const PickleLimits& limits) {
  Unpickler u(pickle, limits);
  CKZ_RETURN_IF_ERROR(u.Run());
  return std::move(u.result());
}

std::vector<TensorPath> TensorPaths(const TorchPickle& pickle, uint64_t max_bytes) {
  std::vector<TensorPath> out;
  const size_t n = pickle.values.size();
  if (pickle.root >= n) return out;
  // Iterative depth-first walk, each container entered once, keeping one path string (cut at
  // kMaxPathBytes; `length` is what it would be uncut). An opaque value adds no label: its
  // parts are entered in its place.
  struct Frame {
    uint32_t value;
    size_t next;
    uint64_t length;  // of the path, uncut, at this container
    uint32_t labels;  // labels in the path at this container
  };
  std::vector<uint8_t> entered(n, 0);
  std::vector<Frame> dfs;
  std::string path;
  uint64_t bytes = 0;
  auto cut = [&](uint64_t length) { path.resize(size_t(std::min<uint64_t>(length, kMaxPathBytes))); };
  auto enter = [&](uint32_t value, uint64_t length, uint32_t labels) {
    const PickleValue& v = pickle.values[value];
    if (v.kind == Kind::kTensor) {
      if (bytes < max_bytes) out.push_back({path, v.tensor});
      bytes = SatAdd(bytes, kPathEntryBytes + path.size());
      return;
    }
    const bool container = v.kind == Kind::kDict || v.kind == Kind::kList ||
                           v.kind == Kind::kTuple || v.kind == Kind::kOpaque;
    if (!container || entered[value]) return;
    entered[value] = 1;
    dfs.push_back({value, 0, length, labels});
  };
  enter(pickle.root, 0, 0);
  while (!dfs.empty() && bytes < max_bytes) {
    Frame& f = dfs.back();
    const PickleValue& v = pickle.values[f.value];
    const size_t step = v.kind == Kind::kDict ? 2 : 1;
    if (f.next + step - 1 >= v.items.size()) {
      dfs.pop_back();
      continue;
    }
    const size_t i = f.next;
    f.next += step;
    const uint32_t child = v.items[i + step - 1];
    if (child >= n) continue;
    const uint64_t length = f.length;
    const uint32_t labels = f.labels;
    cut(length);
    if (v.kind == Kind::kOpaque) {  // transparent
      enter(child, length, labels);
      continue;
    }
    const std::string label = v.kind == Kind::kDict ? Label(pickle, v.items[i]) : std::to_string(i);
    const uint64_t grown = length + (labels > 0 ? 1 : 0) + label.size();
    if (path.size() < kMaxPathBytes) {
      if (labels > 0) path += '/';
      path += label;
    }
    cut(grown);
    enter(child, grown, labels + 1);
  }
  return out;
}

}  // namespace ckz
