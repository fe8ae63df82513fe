// Writing .pt files: the SourceFile layout (spec 8, format TorchZip) of the file torch.save
// (PyTorch 1.13) writes for an OrderedDict {name: tensor} of contiguous tensors that each own
// their storage. Everything but the storages' bytes is built here, byte for byte as torch
// builds it:
//
// - the pickle is what Python's pickler (protocol 2) emits for that object under torch's
//   persistent_id: the same opcodes, the same memo (BINPUT/BINGET) numbering, the same int
//   opcodes, SETITEMS in batches of 1000 like the pickler (a batch of one is a lone SETITEM);
// - the zip is what PyTorchStreamWriter (miniz 2.1.0, opened with MZ_ZIP_FLAG_WRITE_ZIP64 and
//   built with MINIZ_NO_TIME) emits: "data.pkl", then "data/<key>" for the storages in the
//   order of their keys sorted as strings (torch.save sorts the keys: "0", "1", "10", "11",
//   ..., "2", ...), then "version" ("3\n"); every entry stored, with a zero time and date,
//   version fields 0, a local header holding no CRC and no sizes (flag 0x0808: sizes in a data
//   descriptor, UTF-8 name; an empty entry has flag 0x0800, no descriptor, and its local
//   header's CRC is the real one: 0), then the local
//   extra fields: miniz's zip64 field when the entry's size or header offset is >= 0xFFFFFFFF
//   (uncompressed size and a compressed size of 0 as miniz writes them before the data, and
//   the offset when needed), then torch's "FB" field of 'Z' bytes that puts the data at a
//   multiple of 64 in the file; a data descriptor after the data (64-bit sizes when the entry
//   has the zip64 field); a central directory whose entries carry only the zip64 field;
//   always the zip64 end of central directory record and locator, then the end of central
//   directory record.
//
// What torch.save writes and this does not: the `_metadata` attribute that nn.Module's
// state_dict() attaches to its OrderedDict (a BUILD of {"": {"version": 1}, ...} before STOP).
// It only matters to Module.load_state_dict's version hooks, and a plain OrderedDict saved by
// torch.save has none, so the layout is byte-identical to torch.save(OrderedDict(...)).
// One known divergence: Python memoizes by object identity, so a tensor named exactly "cpu" or
// "storage" whose name string is the interned one torch uses makes torch emit a BINGET where
// this writes the string (both load to the same dict).
#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "ckz/torch.h"
#include "common/bytes.h"
#include "format/rules.h"

namespace ckz {
namespace {

// ---- pickle, protocol 2 ----

constexpr uint8_t kProto = 0x80, kGlobal = 'c', kBinPut = 'q', kLongBinPut = 'r',
                  kBinGet = 'h', kLongBinGet = 'j', kEmptyTuple = ')', kReduce = 'R',
                  kMark = '(', kBinUnicode = 'X', kTuple = 't', kTuple1 = 0x85,
                  kTuple2 = 0x86, kTuple3 = 0x87, kBinPersId = 'Q', kBinInt1 = 'K',
                  kBinInt2 = 'M', kBinInt = 'J', kLong1 = 0x8a, kNewFalse = 0x89,
                  kSetItem = 's', kSetItems = 'u', kStop = '.';

// The torch.<Name>Storage class torch.save names for each dtype (its pickle_storage_type).
const char* StorageClass(DType dtype) {
  switch (dtype) {
    case DType::kF64: return "DoubleStorage";
    case DType::kF32: return "FloatStorage";
    case DType::kF16: return "HalfStorage";
    case DType::kBF16: return "BFloat16Storage";
    case DType::kI64: return "LongStorage";
    case DType::kI32: return "IntStorage";
    case DType::kI16: return "ShortStorage";
    case DType::kI8: return "CharStorage";
    case DType::kU8: return "ByteStorage";
    case DType::kBool: return "BoolStorage";
    default: return nullptr;
  }
}

class Pickler {
 public:
  std::vector<uint8_t>& out() { return out_; }
  void Op(uint8_t op) { out_.push_back(op); }

  // Memoizes the object just written; returns its memo index.
  uint32_t Put() {
    const uint32_t index = next_memo_++;
    if (index < 256) {
      out_.push_back(kBinPut);
      out_.push_back(uint8_t(index));
    } else {
      out_.push_back(kLongBinPut);
      Le32(index);
    }
    return index;
  }
  void Get(uint32_t index) {
    if (index < 256) {
      out_.push_back(kBinGet);
      out_.push_back(uint8_t(index));
    } else {
      out_.push_back(kLongBinGet);
      Le32(index);
    }
  }

  // save_long: BININT1/BININT2/BININT for what fits, else LONG1 with the minimal two's
  // complement little-endian bytes ((bit_length >> 3) + 1 of them).
  void Int(uint64_t v) {
    if (v <= 0xff) {
      out_.push_back(kBinInt1);
      out_.push_back(uint8_t(v));
    } else if (v <= 0xffff) {
      out_.push_back(kBinInt2);
      out_.push_back(uint8_t(v));
      out_.push_back(uint8_t(v >> 8));
    } else if (v <= 0x7fffffff) {
      out_.push_back(kBinInt);
      Le32(uint32_t(v));
    } else {
      int bits = 0;
      for (uint64_t x = v; x; x >>= 1) ++bits;
      const int n = (bits >> 3) + 1;
      out_.push_back(kLong1);
      out_.push_back(uint8_t(n));
      for (int i = 0; i < n; ++i) out_.push_back(i < 8 ? uint8_t(v >> (8 * i)) : 0);
    }
  }

  // A str (memoized, as every str the pickler writes).
  uint32_t Unicode(std::string_view s) {
    out_.push_back(kBinUnicode);
    Le32(uint32_t(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
    return Put();
  }

  // A class or function (memoized).
  uint32_t Global(std::string_view module, std::string_view name) {
    out_.push_back(kGlobal);
    out_.insert(out_.end(), module.begin(), module.end());
    out_.push_back('\n');
    out_.insert(out_.end(), name.begin(), name.end());
    out_.push_back('\n');
    return Put();
  }

  // A tuple of ints: EMPTY_TUPLE (not memoized), TUPLE1..3, or MARK ... TUPLE (memoized).
  void IntTuple(const std::vector<uint64_t>& items) {
    if (items.empty()) {
      Op(kEmptyTuple);
      return;
    }
    if (items.size() > 3) Op(kMark);
    for (uint64_t v : items) Int(v);
    static constexpr uint8_t kSmall[] = {0, kTuple1, kTuple2, kTuple3};
    Op(items.size() > 3 ? kTuple : kSmall[items.size()]);
    Put();
  }

 private:
  void Le32(uint32_t v) {
    for (int i = 0; i < 4; ++i) out_.push_back(uint8_t(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
  uint32_t next_memo_ = 0;
};

struct PickledTensor {
  std::string name;
  DType dtype;
  std::string key;
  uint64_t numel;
  std::vector<uint64_t> shape;
  std::vector<uint64_t> stride;
};

std::vector<uint8_t> PickleStateDict(const std::vector<PickledTensor>& tensors) {
  Pickler p;
  p.Op(kProto);
  p.Op(2);
  const uint32_t ordered_dict = p.Global("collections", "OrderedDict");
  p.Op(kEmptyTuple);
  p.Op(kReduce);
  p.Put();
  constexpr uint32_t kNone = UINT32_MAX;
  uint32_t rebuild = kNone, storage_str = kNone, cpu_str = kNone;
  uint32_t storage_class[kMaxDType + 1];
  std::fill(std::begin(storage_class), std::end(storage_class), kNone);
  auto get_or = [&](uint32_t* memo, auto&& write) {
    if (*memo == kNone) {
      *memo = write();
    } else {
      p.Get(*memo);
    }
  };
  constexpr size_t kBatch = 1000;  // pickle's BATCHSIZE
  for (size_t start = 0; start < tensors.size(); start += kBatch) {
    const size_t end = std::min(tensors.size(), start + kBatch);
    if (end - start > 1) p.Op(kMark);
    for (size_t i = start; i < end; ++i) {
      const PickledTensor& t = tensors[i];
      p.Unicode(t.name);
      get_or(&rebuild, [&] { return p.Global("torch._utils", "_rebuild_tensor_v2"); });
      p.Op(kMark);  // the arguments of _rebuild_tensor_v2
      p.Op(kMark);  // the persistent id
      get_or(&storage_str, [&] { return p.Unicode("storage"); });
      get_or(&storage_class[uint8_t(t.dtype)],
             [&] { return p.Global("torch", StorageClass(t.dtype)); });
      p.Unicode(t.key);
      get_or(&cpu_str, [&] { return p.Unicode("cpu"); });
      p.Int(t.numel);
      p.Op(kTuple);
      p.Put();
      p.Op(kBinPersId);
      p.Int(0);  // storage_offset
      p.IntTuple(t.shape);
      p.IntTuple(t.stride);
      p.Op(kNewFalse);  // requires_grad
      p.Get(ordered_dict);  // backward_hooks: OrderedDict()
      p.Op(kEmptyTuple);
      p.Op(kReduce);
      p.Put();
      p.Op(kTuple);
      p.Put();
      p.Op(kReduce);
      p.Put();
    }
    p.Op(end - start > 1 ? kSetItems : kSetItem);
  }
  p.Op(kStop);
  return std::move(p.out());
}

// ---- zip, as PyTorchStreamWriter + miniz write it ----

constexpr uint64_t kMax32 = 0xFFFFFFFF;  // MZ_UINT32_MAX

class ZipBuilder {
 public:
  explicit ZipBuilder(SourceFileInfo* file) : file_(file) {}

  // Adds an entry of `size` bytes: `literal` (its bytes go into the prolog) or, when null,
  // storage `tensor` (a split; its CRC-32 is patched).
  void Add(const std::string& name, uint64_t size, const std::vector<uint8_t>* literal,
           uint32_t tensor) {
    std::vector<uint8_t>& out = file_->prolog;
    const uint64_t header_offset = pos_;
    const bool big_size = size >= kMax32, big_offset = header_offset >= kMax32;
    const bool zip64_field = big_size || big_offset;
    const uint16_t flags = size > 0 ? 0x0808 : 0x0800;
    const uint32_t crc = literal ? ZipCrc32(*literal) : 0;

    const uint64_t zip64_len = zip64_field ? 4 + (big_size ? 16 : 0) + (big_offset ? 8 : 0) : 0;
    // detail::getPadding: the data starts at a multiple of 64.
    const uint64_t start = header_offset + 30 + name.size() + zip64_len + 4;
    const uint64_t padding = (64 - start % 64) % 64;

    uint8_t h[30] = {};
    StoreLE32(h, 0x04034b50);
    StoreLE16(h + 6, flags);  // version needed, method, time, date, CRC, sizes: 0
    StoreLE16(h + 26, uint16_t(name.size()));
    StoreLE16(h + 28, uint16_t(zip64_len + 4 + padding));
    // Without a data descriptor (an empty entry) the local header's CRC is the entry's CRC
    // (that of no bytes, 0): patched too, like every place the zip records it.
    if (!literal && size == 0) AddPatch(out.size() + 14, tensor);
    Emit(h, 30);
    Emit(name.data(), name.size());
    if (zip64_field) {
      // Written before the data: the compressed size is still 0.
      Zip64Field(big_size ? &size : nullptr, big_size ? &kZero : nullptr,
                 big_offset ? &header_offset : nullptr);
    }
    const uint8_t fb[4] = {'F', 'B', uint8_t(padding), uint8_t(padding >> 8)};
    Emit(fb, 4);
    out.insert(out.end(), padding, 'Z');
    pos_ += padding;

    if (literal) {
      Emit(literal->data(), literal->size());
    } else {
      file_->splits.push_back(out.size());
      pos_ += size;
    }
    if (size > 0) {
      uint8_t d[24] = {};
      StoreLE32(d, 0x08074b50);
      StoreLE32(d + 4, crc);
      if (zip64_field) {
        StoreLE64(d + 8, size);
        StoreLE64(d + 16, size);
      } else {
        StoreLE32(d + 8, uint32_t(size));
        StoreLE32(d + 12, uint32_t(size));
      }
      if (!literal) AddPatch(out.size() + 4, tensor);
      Emit(d, zip64_field ? 24 : 16);
    }

    // The central directory entry, kept aside until the end.
    uint8_t c[46] = {};
    StoreLE32(c, 0x02014b50);
    StoreLE16(c + 8, flags);  // made by, needed, method, time, date: 0
    StoreLE32(c + 16, crc);
    StoreLE32(c + 20, uint32_t(std::min(size, kMax32)));
    StoreLE32(c + 24, uint32_t(std::min(size, kMax32)));
    StoreLE16(c + 28, uint16_t(name.size()));
    StoreLE16(c + 30, uint16_t(zip64_len));
    StoreLE32(c + 42, uint32_t(std::min(header_offset, kMax32)));
    if (!literal) central_patches_.push_back({central_.size() + 16, tensor});
    central_.insert(central_.end(), c, c + 46);
    central_.insert(central_.end(), name.begin(), name.end());
    if (zip64_field) {
      const size_t at = central_.size();
      central_.resize(at + zip64_len);
      WriteZip64Field(central_.data() + at, big_size ? &size : nullptr,
                      big_size ? &size : nullptr, big_offset ? &header_offset : nullptr);
    }
    ++entries_;
  }

  // The central directory, the zip64 end of central directory record and locator (torch's
  // miniz always writes them), the end of central directory record.
  void Finish() {
    std::vector<uint8_t>& out = file_->prolog;
    const uint64_t cd_offset = pos_, cd_size = central_.size();
    for (const Crc32Patch& p : central_patches_)
      file_->crc32_patches.push_back({out.size() + p.prolog_offset, p.tensor});
    Emit(central_.data(), central_.size());

    const uint64_t zip64_eocd_offset = pos_;
    uint8_t r[56] = {};
    StoreLE32(r, 0x06064b50);
    StoreLE64(r + 4, 44);
    StoreLE16(r + 12, 0x031E);  // made by: Unix, 3.0
    StoreLE16(r + 14, 0x002D);  // needed: 4.5
    StoreLE64(r + 24, entries_);
    StoreLE64(r + 32, entries_);
    StoreLE64(r + 40, cd_size);
    StoreLE64(r + 48, cd_offset);
    Emit(r, 56);

    uint8_t l[20] = {};
    StoreLE32(l, 0x07064b50);
    StoreLE64(l + 8, zip64_eocd_offset);
    StoreLE32(l + 16, 1);  // disks
    Emit(l, 20);

    uint8_t e[22] = {};
    StoreLE32(e, 0x06054b50);
    StoreLE16(e + 8, uint16_t(std::min<uint64_t>(entries_, 0xFFFF)));
    StoreLE16(e + 10, uint16_t(std::min<uint64_t>(entries_, 0xFFFF)));
    StoreLE32(e + 12, uint32_t(std::min(cd_size, kMax32)));
    StoreLE32(e + 16, uint32_t(std::min(cd_offset, kMax32)));
    Emit(e, 22);
  }

 private:
  static constexpr uint64_t kZero = 0;

  void AddPatch(uint64_t prolog_offset, uint32_t tensor) {
    file_->crc32_patches.push_back({prolog_offset, tensor});
  }
  void Emit(const void* data, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(data);
    file_->prolog.insert(file_->prolog.end(), b, b + n);
    pos_ += n;
  }
  // mz_zip_writer_create_zip64_extra_data: id 1, then the values asked for, in this order.
  static void WriteZip64Field(uint8_t* p, const uint64_t* uncompressed,
                              const uint64_t* compressed, const uint64_t* offset) {
    uint16_t n = 0;
    for (const uint64_t* v : {uncompressed, compressed, offset})
      if (v) StoreLE64(p + 4 + 8 * (n++), *v);
    StoreLE16(p, 0x0001);
    StoreLE16(p + 2, uint16_t(8 * n));
  }
  void Zip64Field(const uint64_t* uncompressed, const uint64_t* compressed,
                  const uint64_t* offset) {
    uint8_t f[28];
    WriteZip64Field(f, uncompressed, compressed, offset);
    Emit(f, 4 + LoadLE16(f + 2));
  }

  SourceFileInfo* file_;
  uint64_t pos_ = 0;  // offset in the assembled file
  std::vector<uint8_t> central_;
  std::vector<Crc32Patch> central_patches_;  // offsets in central_
  uint64_t entries_ = 0;
};

Status CheckArchiveName(const std::string& name) {
  const bool chars_ok = std::all_of(name.begin(), name.end(), [](char ch) {
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-';
  });
  if (name.empty() || name.size() > kMaxNameBytes || !chars_ok || name == "." || name == "..")
    return Status(ErrorCode::kBadName,
                  "archive name '" + name +
                      "' is not one path component of 1 to " + std::to_string(kMaxNameBytes) +
                      " characters from [A-Za-z0-9_.-] (and not '.' or '..')");
  return Status::Ok();
}

}  // namespace

Result<SourceFileInfo> BuildTorchStateDictLayout(const std::string& path,
                                                 const std::string& archive_name,
                                                 const std::vector<TorchTensorSpec>& tensors,
                                                 const std::vector<uint32_t>& tensor_indices) {
  CKZ_RETURN_IF_ERROR(CheckRelativePath(path, "path"));
  CKZ_RETURN_IF_ERROR(CheckArchiveName(archive_name));
  if (tensor_indices.size() != tensors.size())
    return Status(ErrorCode::kInvalidArgument,
                  std::to_string(tensor_indices.size()) + " tensor indices for " +
                      std::to_string(tensors.size()) + " tensors");

  std::vector<PickledTensor> pickled(tensors.size());
  std::vector<uint64_t> byte_lengths(tensors.size());
  std::unordered_set<std::string_view> names;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TorchTensorSpec& t = tensors[i];
    const std::string field = "tensors[" + std::to_string(i) + "]";
    CKZ_RETURN_IF_ERROR(CheckName(t.name, field + ".name"));
    if (!names.insert(t.name).second)
      return Status(ErrorCode::kDuplicateName, field + ": name '" + t.name + "' used twice");
    if (!StorageClass(t.dtype))
      return Status(ErrorCode::kInvalidArgument,
                    field + " '" + t.name + "': invalid dtype " + std::to_string(int(t.dtype)));
    PickledTensor& p = pickled[i];
    CKZ_RETURN_IF_ERROR(ShapeBytes(t.shape, t.dtype, field + " '" + t.name + "'", &p.numel,
                                   &byte_lengths[i]));
    // Contiguous strides as torch computes them: products of the later sizes, a size of 0
    // counting as 1. torch holds them as int64: an empty tensor may still overflow them.
    p.stride.assign(t.shape.size(), 1);
    uint64_t stride = 1;
    for (size_t d = t.shape.size(); d-- > 0;) {
      p.stride[d] = stride;
      const uint64_t size = std::max<uint64_t>(t.shape[d], 1);
      if (t.shape[d] > uint64_t(INT64_MAX) ||
          (d > 0 && stride > uint64_t(INT64_MAX) / size))
        return Status(ErrorCode::kShapeOverflow,
                      field + " '" + t.name + "': strides overflow int64");
      stride *= size;
    }
    p.name = t.name;
    p.dtype = t.dtype;
    p.key = std::to_string(i);
    p.shape = t.shape;
  }
  uint64_t total = 0;
  for (uint64_t n : byte_lengths) {
    if (n > UINT64_MAX / 2 - total)
      return Status(ErrorCode::kShapeOverflow, "the tensors' bytes overflow a file's size");
    total += n;
  }

  // Storages in the zip: keys sorted as strings, as torch.save writes them.
  std::vector<uint32_t> order(tensors.size());
  for (uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](uint32_t a, uint32_t b) { return pickled[a].key < pickled[b].key; });

  SourceFileInfo file;
  file.path = path;
  file.format = SourceFormat::kTorchZip;
  const std::string prefix = archive_name + "/";
  ZipBuilder zip(&file);
  const std::vector<uint8_t> pickle = PickleStateDict(pickled);
  zip.Add(prefix + "data.pkl", pickle.size(), &pickle, 0);
  for (uint32_t position = 0; position < order.size(); ++position) {
    const uint32_t i = order[position];
    file.tensors.push_back(tensor_indices[i]);
    zip.Add(prefix + "data/" + pickled[i].key, byte_lengths[i], nullptr, position);
  }
  const std::vector<uint8_t> version = {'3', '\n'};
  zip.Add(prefix + "version", version.size(), &version, 0);
  zip.Finish();
  return file;
}

}  // namespace ckz
