// The restricted unpickler of ckz/torch.h: pickle protocol <= 2 as torch.save writes it, read
// into a value graph without executing anything. Only whitelisted globals are accepted, and
// each one is interpreted here (an OrderedDict becomes a dict, _rebuild_tensor_v2 a tensor
// view checked against its storage, ...), the way torch.load(weights_only=True) does it.
//
// Semantics follow CPython's unpickler (Lib/pickle.py): a MARK fences the stack (popping below
// it is an underflow), the memo maps an index to the very same object (so a dict filled after
// it was memoized is seen filled), a dict key given twice keeps its first position and takes
// the last value. Stricter than CPython: the stream must end right after STOP with exactly one
// value on the stack, strings must be valid UTF-8, integers must fit in 64 bits, dict keys
// must be None, bool, int, float (not NaN), str, bytes or tuples of those, and the
// object graph reachable from the root must be acyclic, nested at most limits.max_depth
// containers deep and, expanded as a tree (a shared value counted once per path to it), have
// at most limits.max_values values and at most 64 * limits.max_values bytes of tensor paths
// (so that TensorPaths stays bounded).
//
// In the graph, a storage (BINPERSID) is a kObject whose text is its storage class
// ("torch.FloatStorage") and whose items are the persistent id; a tensor view and a parameter
// are kTensor values; the state BUILD gives an OrderedDict (a state_dict's _metadata) is
// checked to be a dict and left out. Besides the globals ckz/torch.h lists, builtins.bytes()
// (how protocol 2 writes b"") is accepted, with no arguments only.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
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
  }
  return "an invalid value";
}

// ---- the whitelist ----

enum class Global : uint8_t {
  kOrderedDict,
  kRebuildTensorV2,
  kRebuildParameter,
  kStorage,  // torch.<X>Storage: `dtype`
  kSize,
  kDevice,
  kDtype,         // torch.float32, ...: a value, not callable
  kCodecsEncode,  // _codecs.encode(str, "latin1"): bytes in protocol 2
  kBytes,         // builtins.bytes(): the empty bytes in protocol 2
};

struct GlobalInfo {
  Global global = Global::kOrderedDict;
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

// kOk with *info for a whitelisted global; kUnsupportedDtype for a torch storage class of a
// dtype CKZ lacks; kPickleGlobalNotAllowed otherwise.
ErrorCode LookupGlobal(std::string_view module, std::string_view name, GlobalInfo* info) {
  if (module == "collections" && name == "OrderedDict") {
    info->global = Global::kOrderedDict;
    return ErrorCode::kOk;
  }
  if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
    info->global = Global::kRebuildTensorV2;
    return ErrorCode::kOk;
  }
  if (module == "torch._utils" && name == "_rebuild_parameter") {
    info->global = Global::kRebuildParameter;
    return ErrorCode::kOk;
  }
  if (module == "_codecs" && name == "encode") {
    info->global = Global::kCodecsEncode;
    return ErrorCode::kOk;
  }
  if ((module == "__builtin__" || module == "builtins") && name == "bytes") {
    info->global = Global::kBytes;
    return ErrorCode::kOk;
  }
  if (module != "torch") return ErrorCode::kPickleGlobalNotAllowed;
  if (name == "Size") {
    info->global = Global::kSize;
    return ErrorCode::kOk;
  }
  if (name == "device") {
    info->global = Global::kDevice;
    return ErrorCode::kOk;
  }
  for (const StorageClass& s : kStorageClasses) {
    if (name == s.name) {
      info->global = Global::kStorage;
      info->dtype = s.dtype;
      return ErrorCode::kOk;
    }
  }
  for (const char* d : kTorchDtypes) {
    if (name == d) {
      info->global = Global::kDtype;
      return ErrorCode::kOk;
    }
  }
  const std::string_view suffix = "Storage";
  if (name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix)
    return ErrorCode::kUnsupportedDtype;  // ComplexFloatStorage, QInt8Storage, ...
  return ErrorCode::kPickleGlobalNotAllowed;
}

// Tuples nested deeper than this in a dict key are refused.
constexpr int kMaxKeyDepth = 16;

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
    default: return "?";
  }
}

bool IsContainer(Kind k) {
  return k == Kind::kTuple || k == Kind::kList || k == Kind::kDict || k == Kind::kObject;
}

uint64_t SatAdd(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }
uint64_t SatMul(uint64_t a, uint64_t b) {
  return (a != 0 && b > UINT64_MAX / a) ? UINT64_MAX : a * b;
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
  // A line ending in '\n' (GLOBAL's arguments), without the '\n'.
  Status ReadLine(std::string* line) {
    const void* nl = std::memchr(in_.data + pos_, '\n', in_.size - pos_);
    if (!nl) return Malformed("truncated: no end of line after offset " + std::to_string(pos_));
    const size_t end = size_t(static_cast<const uint8_t*>(nl) - in_.data);
    line->assign(reinterpret_cast<const char*>(in_.data + pos_), end - pos_);
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
  Status Long(uint64_t n);
  Status String(uint64_t n);
  Status Tuple(std::vector<uint32_t> items) {
    PickleValue p;
    p.kind = Kind::kTuple;
    p.items = std::move(items);
    return PushNew(std::move(p));
  }
  Status Put(uint32_t memo_index);
  Status Get(uint32_t memo_index);
  Status GlobalOp();
  Status Call(bool newobj);
  Status Build();
  Status PersistentId();
  Status Append(const std::vector<uint32_t>& items, uint32_t list);
  Status SetItems(const std::vector<uint32_t>& items, uint32_t dict);
  Status Stop();

  Status RebuildTensor(const std::vector<uint32_t>& args, uint32_t* out);
  Status KeyId(uint32_t key, int depth, uint32_t* id);
  Status CheckGraph();

  ByteSpan in_;
  PickleLimits limits_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  uint8_t op_ = 0;
  bool stopped_ = false;
  TorchPickle out_;
  std::vector<uint32_t> stack_;
  std::vector<size_t> marks_;
  std::vector<uint32_t> memo_dense_;                 // memo entries 0 .. size-1
  std::unordered_map<uint32_t, uint32_t> memo_;      // memo entries beyond
  std::unordered_map<uint32_t, GlobalInfo> globals_;          // value -> what the global is
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
    if (p[i] != (negative ? 0xFF : 0x00))
      return Malformed("an integer of " + std::to_string(n) + " bytes does not fit in 64 bits");
  int64_t v;
  std::memcpy(&v, &u, 8);
  return PushInt(v);
}

Status Unpickler::String(uint64_t n) {
  const uint8_t* p;
  CKZ_RETURN_IF_ERROR(Read(n, &p));
  PickleValue v;
  v.kind = Kind::kString;
  v.text.assign(reinterpret_cast<const char*>(p), size_t(n));
  if (!IsValidUtf8(v.text)) return Malformed("a string of " + std::to_string(n) + " bytes is not valid UTF-8");
  return PushNew(std::move(v));
}

// The memo: dense for the indices 0, 1, 2, ... that picklers use, a map for any other.
Status Unpickler::Put(uint32_t memo_index) {
  uint32_t top = 0;
  CKZ_RETURN_IF_ERROR(Top(&top));
  if (memo_index < memo_dense_.size()) {
    memo_dense_[memo_index] = top;
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

Status Unpickler::Get(uint32_t memo_index) {
  if (memo_index < memo_dense_.size()) return Push(memo_dense_[memo_index]);
  auto it = memo_.find(memo_index);
  if (it == memo_.end())
    return Malformed("memo entry " + std::to_string(memo_index) + " was never stored");
  return Push(it->second);
}

Status Unpickler::GlobalOp() {
  std::string module, name;
  CKZ_RETURN_IF_ERROR(ReadLine(&module));
  CKZ_RETURN_IF_ERROR(ReadLine(&name));
  const std::string full = module + "." + name;
  if (!IsValidUtf8(full)) return Malformed("global " + QuoteBytes(full) + " is not valid UTF-8");
  GlobalInfo info;
  switch (LookupGlobal(module, name, &info)) {
    case ErrorCode::kOk:
      break;
    case ErrorCode::kUnsupportedDtype:
      return Error(ErrorCode::kUnsupportedDtype,
                   "storage class '" + full +
                       "' has a dtype CKZ does not carry (F64 F32 F16 BF16 I64 I32 I16 I8 U8 "
                       "BOOL are supported)");
    default:
      return Error(ErrorCode::kPickleGlobalNotAllowed,
                   "global " + QuoteBytes(full) + " is not allowed (only torch tensors, storages, dtypes, Size and device, "
                       "collections.OrderedDict and bytes are)");
  }
  PickleValue v;
  v.kind = Kind::kGlobal;
  v.text = full;
  uint32_t index;
  CKZ_RETURN_IF_ERROR(NewValue(std::move(v), &index));
  globals_.emplace(index, info);
  return Push(index);
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

// REDUCE (callable, args) and NEWOBJ (class, args).
Status Unpickler::Call(bool newobj) {
  uint32_t args_index = 0, callable = 0;
  CKZ_RETURN_IF_ERROR(Pop(&args_index));
  CKZ_RETURN_IF_ERROR(Pop(&callable));
  if (V(callable).kind != Kind::kGlobal)
    return Malformed(std::string("calls ") + KindName(V(callable).kind) + ", not a global");
  if (V(args_index).kind != Kind::kTuple)
    return Malformed(std::string("the arguments are ") + KindName(V(args_index).kind) +
                     ", not a tuple");
  const GlobalInfo info = globals_.at(callable);
  const std::string name = V(callable).text;
  const std::vector<uint32_t> args = V(args_index).items;
  const bool is_class = info.global == Global::kOrderedDict || info.global == Global::kSize ||
                        info.global == Global::kDevice;
  if (newobj && !is_class) return Malformed(name + " is not a class");

  PickleValue v;
  switch (info.global) {
    case Global::kOrderedDict: {
      if (!args.empty())
        return Malformed("collections.OrderedDict is called with " +
                         std::to_string(args.size()) + " arguments; only () is supported");
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
    case Global::kRebuildParameter: {
      const std::string fn = "torch._utils._rebuild_parameter: ";
      if (args.size() != 3)
        return Malformed(fn + "takes 3 arguments, not " + std::to_string(args.size()));
      if (V(args[0]).kind != Kind::kTensor) return Malformed(fn + "argument 0 is not a tensor");
      if (V(args[1]).kind != Kind::kBool) return Malformed(fn + "requires_grad is not a bool");
      if (V(args[2]).kind != Kind::kDict) return Malformed(fn + "backward_hooks is not a dict");
      TorchTensor& t = out_.tensors[V(args[0]).tensor];
      t.parameter = true;
      t.requires_grad = V(args[1]).boolean;
      return Push(args[0]);
    }
    case Global::kSize: {
      if (args.size() != 1 ||
          (V(args[0]).kind != Kind::kTuple && V(args[0]).kind != Kind::kList))
        return Malformed("torch.Size takes one tuple of ints");
      for (uint32_t item : V(args[0]).items)
        if (V(item).kind != Kind::kInt) return Malformed("torch.Size takes one tuple of ints");
      break;
    }
    case Global::kDevice: {
      const bool ok = (args.size() == 1 || args.size() == 2) &&
                      V(args[0]).kind == Kind::kString &&
                      (args.size() == 1 || V(args[1]).kind == Kind::kInt);
      if (!ok) return Malformed("torch.device takes (str) or (str, int)");
      break;
    }
    case Global::kCodecsEncode: {
      if (args.size() != 2 || V(args[0]).kind != Kind::kString ||
          V(args[1]).kind != Kind::kString)
        return Malformed("_codecs.encode takes (str, encoding)");
      const std::string& encoding = V(args[1]).text;
      if (encoding != "latin1" && encoding != "latin-1")
        return Malformed("_codecs.encode with encoding " + QuoteBytes(encoding) +
                         "; only 'latin1' (bytes in protocol 2) is supported");
      // Code points 0..255 of the (valid UTF-8) string are the bytes.
      const std::string& s = V(args[0]).text;
      std::string bytes;
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
      v.kind = Kind::kBytes;
      v.text = std::move(bytes);
      return PushNew(std::move(v));
    }
    case Global::kBytes: {
      if (!args.empty()) return Malformed(name + " is only supported as bytes()");
      v.kind = Kind::kBytes;
      return PushNew(std::move(v));
    }
    case Global::kStorage:
    case Global::kDtype:
      return Malformed(name + " cannot be called");
  }
  // torch.Size and torch.device: an object of the global with its arguments.
  v.kind = Kind::kObject;
  v.text = name;
  v.items = args;
  return PushNew(std::move(v));
}

Status Unpickler::Build() {
  uint32_t state = 0, inst = 0;
  CKZ_RETURN_IF_ERROR(Pop(&state));
  CKZ_RETURN_IF_ERROR(Top(&inst));
  if (!ordered_dicts_.count(inst))
    return Malformed(std::string("BUILD on ") + KindName(V(inst).kind) +
                     " is not supported (only on an OrderedDict)");
  // The state of an OrderedDict is its __dict__ (a state_dict's _metadata): kept out of the
  // graph, but it must be a dict (or None).
  if (V(state).kind != Kind::kDict && V(state).kind != Kind::kNone)
    return Malformed(std::string("the state of an OrderedDict is ") + KindName(V(state).kind) +
                     ", not a dict");
  return Status::Ok();
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
  if (key.text.empty() || key.text.size() > 4096 || key.text == "." || key.text == ".." ||
      key.text.find('/') != std::string::npos || key.text.find('\0') != std::string::npos)
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

Status Unpickler::Append(const std::vector<uint32_t>& items, uint32_t list) {
  if (V(list).kind != Kind::kList)
    return Malformed(std::string("appends to ") + KindName(V(list).kind) + ", not a list");
  std::vector<uint32_t>& dst = V(list).items;
  dst.insert(dst.end(), items.begin(), items.end());
  return Status::Ok();
}

// The identity of a dict key under Python equality: values that compare equal get the same
// id. Keys are immutable (lists and dicts cannot be keys), so each value's id is computed once
// and a tuple's canonical form names its items by id: work and memory stay linear in the
// input however much the tuples share.
Status Unpickler::KeyId(uint32_t key, int depth, uint32_t* id) {
  auto known = key_ids_.find(key);
  if (known != key_ids_.end()) {
    *id = known->second;
    return Status::Ok();
  }
  const PickleValue& v = V(key);
  std::string canonical;
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
      if (std::isnan(f)) return Malformed("a NaN dict key");
      if (f >= -9223372036854775808.0 && f < 9223372036854775808.0 && f == std::trunc(f)) {
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
    case Kind::kTuple: {
      if (depth >= kMaxKeyDepth)
        return Malformed("a dict key nests tuples more than " + std::to_string(kMaxKeyDepth) +
                         " deep");
      canonical = "t";
      const std::vector<uint32_t> items = v.items;
      for (uint32_t item : items) {
        uint32_t item_id = 0;
        CKZ_RETURN_IF_ERROR(KeyId(item, depth + 1, &item_id));
        canonical += std::to_string(item_id) + ",";
      }
      break;
    }
    default:
      return Malformed(std::string(KindName(v.kind)) + " cannot be a dict key");
  }
  auto [it, inserted] = interned_keys_.emplace(std::move(canonical), uint32_t(interned_keys_.size()));
  key_ids_.emplace(key, it->second);
  *id = it->second;
  return Status::Ok();
}

Status Unpickler::SetItems(const std::vector<uint32_t>& items, uint32_t dict) {
  if (V(dict).kind != Kind::kDict)
    return Malformed(std::string("sets items of ") + KindName(V(dict).kind) + ", not a dict");
  if (items.size() % 2 != 0)
    return Malformed("an odd number of values (" + std::to_string(items.size()) +
                     ") for key/value pairs");
  auto& index = dict_keys_[dict];
  for (size_t i = 0; i < items.size(); i += 2) {
    uint32_t id = 0;
    CKZ_RETURN_IF_ERROR(KeyId(items[i], 0, &id));
    std::vector<uint32_t>& dst = V(dict).items;
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
  return CheckGraph();
}

// Acyclic, depth, expanded size and tensor path bytes of what the root reaches (see the top
// of the file), by an iterative depth-first search.
Status Unpickler::CheckGraph() {
  const size_t n = out_.values.size();
  std::vector<uint8_t> color(n, 0);  // 0 new, 1 on the DFS stack, 2 done
  std::vector<uint32_t> depth(n, 0);
  std::vector<uint64_t> count(n, 0), tensors(n, 0), path_bytes(n, 0);
  struct Frame {
    uint32_t value;
    size_t next;
  };
  std::vector<Frame> dfs;
  dfs.push_back({out_.root, 0});
  color[out_.root] = 1;
  while (!dfs.empty()) {
    Frame& f = dfs.back();
    const PickleValue& v = out_.values[f.value];
    if (IsContainer(v.kind) && f.next < v.items.size()) {
      const uint32_t child = v.items[f.next++];
      if (color[child] == 1)
        return Status(ErrorCode::kPickleMalformed,
                      "pickle: the object graph has a cycle (" + std::string(KindName(v.kind)) +
                          " reaches itself)");
      if (color[child] == 0) {
        color[child] = 1;
        dfs.push_back({child, 0});
      }
      continue;
    }
    // All children done: combine.
    const uint32_t index = f.value;
    dfs.pop_back();
    color[index] = 2;
    uint64_t c = 1, t = v.kind == Kind::kTensor ? 1 : 0, pb = 0;
    uint32_t d = 0;
    if (IsContainer(v.kind)) {
      for (size_t i = 0; i < v.items.size(); ++i) {
        const uint32_t child = v.items[i];
        c = SatAdd(c, count[child]);
        d = std::max(d, depth[child]);
        const bool walked = v.kind == Kind::kTuple || v.kind == Kind::kList ||
                            (v.kind == Kind::kDict && i % 2 == 1);
        if (!walked || tensors[child] == 0) continue;
        const uint64_t label = v.kind == Kind::kDict ? Label(out_, v.items[i - 1]).size()
                                                     : std::to_string(i).size();
        t = SatAdd(t, tensors[child]);
        pb = SatAdd(pb, SatAdd(SatMul(label + 1, tensors[child]), path_bytes[child]));
      }
      d += 1;
    }
    count[index] = c;
    tensors[index] = t;
    path_bytes[index] = pb;
    depth[index] = d;
    if (d > limits_.max_depth)
      return Status(ErrorCode::kLimitExceeded,
                    "pickle: containers are nested more than " +
                        std::to_string(limits_.max_depth) + " deep");
  }
  const uint32_t r = out_.root;
  if (count[r] > limits_.max_values)
    return Status(ErrorCode::kLimitExceeded,
                  "pickle: the object graph, counting a shared value once per path to it, has "
                  "more than " +
                      std::to_string(limits_.max_values) + " values");
  if (path_bytes[r] > SatMul(64, limits_.max_values))
    return Status(ErrorCode::kLimitExceeded,
                  "pickle: the tensor paths would take more than " +
                      std::to_string(SatMul(64, limits_.max_values)) + " bytes");
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
    std::vector<uint32_t> items;
    uint32_t a = 0, b = 0, c = 0;
    switch (op_) {
      case 0x80:  // PROTO
        CKZ_RETURN_IF_ERROR(Read(1, &p));
        if (p[0] > 2)
          return Malformed("protocol " + std::to_string(p[0]) +
                           " is not supported (torch.save writes protocol 2)");
        break;
      case 0x95:  // FRAME: a hint for buffering, ignored
        CKZ_RETURN_IF_ERROR(Read(8, &p));
        if (LoadLE64(p) > in_.size - pos_) return Malformed("the frame runs past the end");
        break;
      case '}': {
        PickleValue v;
        v.kind = Kind::kDict;
        CKZ_RETURN_IF_ERROR(PushNew(std::move(v)));
        break;
      }
      case ']': {
        PickleValue v;
        v.kind = Kind::kList;
        CKZ_RETURN_IF_ERROR(PushNew(std::move(v)));
        break;
      }
      case ')':
        CKZ_RETURN_IF_ERROR(Tuple({}));
        break;
      case '(':
        if (marks_.size() >= limits_.max_values)
          return Error(ErrorCode::kLimitExceeded, "too many open MARKs");
        marks_.push_back(stack_.size());
        break;
      case 't':
        CKZ_RETURN_IF_ERROR(PopMark(&items));
        CKZ_RETURN_IF_ERROR(Tuple(std::move(items)));
        break;
      case 0x85:
        CKZ_RETURN_IF_ERROR(Pop(&a));
        CKZ_RETURN_IF_ERROR(Tuple({a}));
        break;
      case 0x86:
        CKZ_RETURN_IF_ERROR(Pop(&b));
        CKZ_RETURN_IF_ERROR(Pop(&a));
        CKZ_RETURN_IF_ERROR(Tuple({a, b}));
        break;
      case 0x87:
        CKZ_RETURN_IF_ERROR(Pop(&c));
        CKZ_RETURN_IF_ERROR(Pop(&b));
        CKZ_RETURN_IF_ERROR(Pop(&a));
        CKZ_RETURN_IF_ERROR(Tuple({a, b, c}));
        break;
      case 'X':  // BINUNICODE
        CKZ_RETURN_IF_ERROR(Read(4, &p));
        CKZ_RETURN_IF_ERROR(String(LoadLE32(p)));
        break;
      case 0x8c:  // SHORT_BINUNICODE
        CKZ_RETURN_IF_ERROR(Read(1, &p));
        CKZ_RETURN_IF_ERROR(String(p[0]));
        break;
      case 0x8d:  // BINUNICODE8
        CKZ_RETURN_IF_ERROR(Read(8, &p));
        CKZ_RETURN_IF_ERROR(String(LoadLE64(p)));
        break;
      case 'T': {  // BINSTRING: a str (torch.load decodes with utf-8)
        CKZ_RETURN_IF_ERROR(Read(4, &p));
        const int32_t n = int32_t(LoadLE32(p));
        if (n < 0) return Malformed("negative string length " + std::to_string(n));
        CKZ_RETURN_IF_ERROR(String(uint64_t(n)));
        break;
      }
      case 'U':  // SHORT_BINSTRING
        CKZ_RETURN_IF_ERROR(Read(1, &p));
        CKZ_RETURN_IF_ERROR(String(p[0]));
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
      case 0x88:
        CKZ_RETURN_IF_ERROR(PushBool(true));
        break;
      case 0x89:
        CKZ_RETURN_IF_ERROR(PushBool(false));
        break;
      case 'N':
        CKZ_RETURN_IF_ERROR(PushNew(PickleValue{}));
        break;
      case 'a':  // APPEND
        CKZ_RETURN_IF_ERROR(Pop(&a));
        CKZ_RETURN_IF_ERROR(Top(&b));
        CKZ_RETURN_IF_ERROR(Append({a}, b));
        break;
      case 'e':  // APPENDS
        CKZ_RETURN_IF_ERROR(PopMark(&items));
        CKZ_RETURN_IF_ERROR(Top(&b));
        CKZ_RETURN_IF_ERROR(Append(items, b));
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
      case 0x94:  // MEMOIZE
        // CPython: memo[len(memo)] = top. A dense memo's length is its size; entries stored
        // at other indices count too.
        if (memo_dense_.size() + memo_.size() >= UINT32_MAX) return Malformed("memo full");
        CKZ_RETURN_IF_ERROR(Put(uint32_t(memo_dense_.size() + memo_.size())));
        break;
      case 'h':  // BINGET
        CKZ_RETURN_IF_ERROR(Read(1, &p));
        CKZ_RETURN_IF_ERROR(Get(p[0]));
        break;
      case 'j':  // LONG_BINGET
        CKZ_RETURN_IF_ERROR(Read(4, &p));
        CKZ_RETURN_IF_ERROR(Get(LoadLE32(p)));
        break;
      case 'c':
        CKZ_RETURN_IF_ERROR(GlobalOp());
        break;
      case 'R':
        CKZ_RETURN_IF_ERROR(Call(false));
        break;
      case 0x81:
        CKZ_RETURN_IF_ERROR(Call(true));
        break;
      case 'b':
        CKZ_RETURN_IF_ERROR(Build());
        break;
      case 'Q':
        CKZ_RETURN_IF_ERROR(PersistentId());
        break;
      case '.':
        CKZ_RETURN_IF_ERROR(Stop());
        break;
      default:
        return Malformed(OpcodeName(op_) ? "this opcode is not supported"
                                         : "not a pickle opcode");
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

std::vector<TensorPath> TensorPaths(const TorchPickle& pickle) {
  std::vector<TensorPath> out;
  const size_t n = pickle.values.size();
  if (pickle.root >= n) return out;
  // Iterative depth-first walk keeping one path string; a value already on the current path
  // is not entered again (a hand-built graph may have cycles; a parsed one has none).
  struct Frame {
    uint32_t value;
    size_t next;
    size_t path_length;  // of `path` before this value's label
  };
  std::vector<uint8_t> on_path(n, 0);
  std::vector<Frame> dfs;
  std::string path;
  auto enter = [&](uint32_t value, size_t path_length) {
    const PickleValue& v = pickle.values[value];
    if (v.kind == Kind::kTensor) {
      out.push_back({path, v.tensor});
      path.resize(path_length);
      return;
    }
    if (v.kind != Kind::kDict && v.kind != Kind::kList && v.kind != Kind::kTuple) {
      path.resize(path_length);
      return;
    }
    on_path[value] = 1;
    dfs.push_back({value, 0, path_length});
  };
  enter(pickle.root, 0);
  while (!dfs.empty()) {
    Frame& f = dfs.back();
    const PickleValue& v = pickle.values[f.value];
    const size_t step = v.kind == Kind::kDict ? 2 : 1;
    if (f.next + step - 1 >= v.items.size()) {
      on_path[f.value] = 0;
      path.resize(f.path_length);
      dfs.pop_back();
      continue;
    }
    const size_t i = f.next;
    f.next += step;
    const uint32_t child = v.items[i + step - 1];
    if (child >= n || on_path[child]) continue;
    const size_t before = path.size();
    if (dfs.size() > 1) path += '/';
    path += v.kind == Kind::kDict ? Label(pickle, v.items[i]) : std::to_string(i);
    enter(child, before);
  }
  return out;
}

}  // namespace ckz
