// PyTorch checkpoints (what torch.save writes since 1.6: a zip of stored entries holding a
// pickle and one raw entry per storage), read without executing anything and without
// libtorch: a zip reader and a pickle walker that never imports or calls anything (globals it
// does not know are carried as names). All parsers here are pure functions over bytes.
#ifndef CKZ_TORCH_H_
#define CKZ_TORCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "ckz/archive.h"
#include "ckz/status.h"
#include "ckz/types.h"

namespace ckz {

// ---- zip ----

struct ZipEntry {
  std::string name;
  uint64_t header_offset = 0;  // local file header
  uint64_t data_offset = 0;    // first byte of the stored data
  uint64_t size = 0;           // bytes of data (stored: compressed size == size)
  uint32_t crc32 = 0;          // CRC-32 of the data, as the central directory records it
  // Every file offset where the entry's CRC-32 is written as a u32le: the local header (when it
  // holds the CRC rather than 0), the data descriptor (when present), the central directory.
  std::vector<uint64_t> crc_offsets;
};

struct ZipArchive {
  std::vector<ZipEntry> entries;  // in order of data_offset
  const ZipEntry* Find(std::string_view name) const;
};

// Parses a zip archive of stored (uncompressed) entries, zip64 included. Checks: the end of
// central directory record and central directory inside the file, every local header
// consistent with its central directory entry, entries not overlapping, names valid, and
// (unless check_crcs is false) every entry's CRC-32. Compressed entries are kUnsupported.
// Errors: kZipMalformed, kZipChecksum, kUnsupported.
Result<ZipArchive> ParseZip(ByteSpan file, bool check_crcs = true);

// CRC-32 as zip uses it (ISO-HDLC: reflected polynomial 0xEDB88320, init and final xor
// 0xFFFFFFFF). Continues like Crc32c: ZipCrc32(b, ZipCrc32(a)) == ZipCrc32(a || b).
uint32_t ZipCrc32(ByteSpan bytes, uint32_t crc = 0);

// ---- pickle ----

// One node of the unpickled object graph. Nodes live in TorchPickle::values and refer to each
// other by index; the memo may make a node reachable more than once, and the graph may have
// cycles (a list that holds itself, an object whose state refers back to it).
struct PickleValue {
  enum class Kind : uint8_t {
    kNone, kBool, kInt, kFloat, kString, kBytes, kTuple, kList, kDict,
    kTensor,  // a torch tensor: `tensor` indexes TorchPickle::tensors
    kGlobal,  // a global (class or function) named by the pickle: `text` is "module.name".
              // Nothing is ever imported: CKZ knows some globals, the others stay names
    kObject,  // an instance built by a global CKZ interprets (torch.device, torch.Size, a
              // storage): `text` is the global, `items` its arguments
    kOpaque,  // anything else, carried without being interpreted: an instance made by an
              // unknown global or by calling another opaque value (REDUCE, NEWOBJ, NEWOBJ_EX,
              // INST, OBJ), a set, a frozenset, an int beyond 64 bits. `text` names the
              // callable ("argparse.Namespace", "builtins.set", "builtins.int"; empty when the
              // callable is not a global); `items` has kOpaqueSlots entries (below)
  };
  // The items of a kOpaque value, each a value index (a None value when absent): the callable,
  // its positional arguments (a tuple, or whatever REDUCE was given), NEWOBJ_EX's keyword
  // arguments, the items APPENDS/ADDITEMS added (a list), the pairs SETITEMS added (a dict,
  // keys as given: an opaque object's keys are never compared), the state BUILD gave it.
  static constexpr size_t kCallable = 0, kArgs = 1, kKwargs = 2, kListItems = 3,
                          kDictItems = 4, kState = 5, kOpaqueSlots = 6;
  Kind kind = Kind::kNone;
  bool boolean = false;
  int64_t integer = 0;           // kInt
  double number = 0;             // kFloat
  std::string text;              // kString (UTF-8), kBytes, kGlobal, kObject, kOpaque
  std::vector<uint32_t> items;   // kTuple, kList; kDict: key0, value0, key1, value1, ...;
                                 // kObject, kOpaque: see above
  uint32_t tensor = 0;           // kTensor
};

struct TorchStorage {
  std::string key;       // the zip entry is "<archive>/data/<key>"
  DType dtype = DType::kInvalid;
  uint64_t numel = 0;    // elements, as the pickle declares
  std::string location;  // "cpu", "cuda:0", ...
};

struct TorchTensor {
  uint32_t storage = 0;          // index into TorchPickle::storages
  uint64_t storage_offset = 0;   // in elements
  std::vector<uint64_t> shape;
  std::vector<uint64_t> stride;  // in elements
  bool requires_grad = false;
  bool parameter = false;        // rebuilt through torch._utils._rebuild_parameter
};

struct TorchPickle {
  std::vector<PickleValue> values;
  uint32_t root = 0;                   // values[root] is the unpickled object
  std::vector<TorchStorage> storages;  // in order of first appearance
  std::vector<TorchTensor> tensors;    // in order of appearance
  // The globals CKZ carries without interpreting them ("argparse.Namespace",
  // "numpy.core.multiarray._reconstruct", ...), each once, in order of first appearance.
  std::vector<std::string> opaque_globals;
};

struct PickleLimits {
  // Values, stack entries, memo entries and open MARKs: each at most this many.
  uint64_t max_values = uint64_t{1} << 22;
};

// Walks a pickle (protocols 0 to 5; torch.save writes 2) into a value graph without executing
// anything and without constructing unknown objects: every global is only a name. Globals CKZ
// interprets: collections.OrderedDict, torch._utils._rebuild_tensor_v2 / _rebuild_parameter /
// _rebuild_parameter_with_state, torch._tensor._rebuild_from_type_v2 (a tensor subclass),
// the torch.*Storage classes, torch.Size, torch.device, the torch dtypes, _codecs.encode and
// builtins.bytes (bytes in protocol 2). Any other global, and whatever calling it makes, is
// carried as a kGlobal / kOpaque value, so anything torch.load(weights_only=False) loads reads
// here, as long as its tensors can be found. Views are checked against their storage's
// declared numel (kTorchStorageMismatch); a storage of a dtype CKZ lacks is kUnsupportedDtype;
// a protocol above 5 is kUnsupported. Errors: kPickleMalformed (with the byte offset and
// opcode: what Python's unpickler would refuse too, and a persistent id torch.load cannot
// read), kTorchStorageMismatch, kUnsupportedDtype, kUnsupported, kLimitExceeded.
Result<TorchPickle> ParseTorchPickle(ByteSpan pickle, const PickleLimits& limits = {});

// Every tensor reachable from the root, with its path: dict keys (strings or ints) and list or
// tuple indices joined by '/', e.g. "model/fc1.weight", "optimizer/state/0/exp_avg". An opaque
// object adds no label of its own: its arguments (by position), the items and pairs added to
// it and its state (a dict by key) continue its path, so an argparse.Namespace "args" with a
// tensor attribute "w" gives "args/w". Paths are in depth-first order of the graph as
// pickled, each container walked once (the first time it is reached): a tensor held by two
// containers, or twice by one, is listed at each place. A path longer than 4096 bytes is cut
// to 4097 bytes (too long to name a tensor); once the paths listed reach `max_bytes` bytes in
// all (each counted as its length plus 64), the walk stops.
struct TensorPath {
  std::string path;
  uint32_t tensor = 0;
};
std::vector<TensorPath> TensorPaths(const TorchPickle& pickle, uint64_t max_bytes = uint64_t{1} << 28);

// ---- a whole .pt file ----

struct TorchFile {
  ZipArchive zip;
  std::string archive_name;  // the folder every entry is under, e.g. "step_000020" or "archive"
  TorchPickle pickle;
  // zip entry of each storage, parallel to pickle.storages; its size was checked to be
  // numel * dtype size.
  std::vector<const ZipEntry*> storage_entries;
};

// Parses a torch.save file. A legacy (pre-1.6, non-zip) file is kTorchLegacyFormat ("re-save
// with torch >= 1.6"); a big-endian archive ("byteorder" entry) is kUnsupported; a storage
// entry missing or of the wrong size is kTorchStorageMismatch.
Result<TorchFile> ParseTorchFile(ByteSpan file, bool check_crcs = true);

// ---- writing ----

// The layout of a torch.save-compatible file holding an OrderedDict {name: tensor} (a
// state_dict), each tensor contiguous with its own storage, in the format of SourceFile
// (section 8 of the spec): the literal bytes (zip headers, the pickle, "version", the central
// directory) as `prolog`, the prolog offset before each tensor's data in `splits`, and where
// the zip CRC-32 of each tensor goes in `crc32_patches`. The storage of `tensors[k]` has
// key "k" (entry "<archive_name>/data/k"); `tensor_indices[k]` is its CKZ index. The
// result's `tensors` lists those indices in the zip's storage order, which is torch.save's:
// keys sorted as strings ("0", "1", "10", "11", ..., "2", ...). Rebuilding the file from it
// (RestoreCheckpoint) gives a file torch.load reads, byte-identical to
// torch.save(OrderedDict(...)) of the same tensors (no state_dict `_metadata`).
// Errors: kBadName, kDuplicateName, kShapeOverflow, kInvalidArgument.
struct TorchTensorSpec {
  std::string name;
  DType dtype = DType::kInvalid;
  std::vector<uint64_t> shape;
};
Result<SourceFileInfo> BuildTorchStateDictLayout(const std::string& path,
                                                 const std::string& archive_name,
                                                 const std::vector<TorchTensorSpec>& tensors,
                                                 const std::vector<uint32_t>& tensor_indices);

}  // namespace ckz

#endif  // CKZ_TORCH_H_
