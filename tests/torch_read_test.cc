// Reading torch.save files: ParseZip, ParseTorchPickle, TensorPaths and ParseTorchFile.
//  - Every fixture of tests/data/torch/ (real torch.save files, made by make_fixtures.py)
//    parses to what its JSON sidecar says torch itself read from it.
//  - Zip layouts torch.save does not write but other writers do (no data descriptor, zip64
//    extra fields, descriptor without signature, archive comment) read the same.
//  - One handcrafted broken input per error, each with its exact error code.
#include "ckz/torch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "io/json.h"

using namespace std::string_literals;

namespace ckz {
namespace {

#define EXPECT_MESSAGE_HAS(status, text) \
  EXPECT_NE((status).message().find(text), std::string::npos) << (status).ToString()

std::filesystem::path FixtureDir() {
  return std::filesystem::path(CKZ_TESTS_DIR) / "data" / "torch";
}

std::vector<uint8_t> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << path;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

ByteSpan Span(const std::string& s) {
  return ByteSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::string LE16(uint16_t v) {
  std::string s(2, '\0');
  StoreLE16(reinterpret_cast<uint8_t*>(&s[0]), v);
  return s;
}
std::string LE32(uint32_t v) {
  std::string s(4, '\0');
  StoreLE32(reinterpret_cast<uint8_t*>(&s[0]), v);
  return s;
}
std::string LE64(uint64_t v) {
  std::string s(8, '\0');
  StoreLE64(reinterpret_cast<uint8_t*>(&s[0]), v);
  return s;
}

// ---- a zip writer for handcrafted archives ----

struct ZipOptions {
  bool descriptor = true;            // flag bit 3: local CRC and sizes 0, a data descriptor
  bool descriptor_signature = true;  // "PK\7\8" before the descriptor
  bool zip64_extras = false;         // 0xFFFFFFFF sizes/offsets with zip64 extra fields
  bool zip64_end = true;             // zip64 end record and locator (torch.save writes them)
  std::string comment;               // archive comment
  uint16_t method = 0;
  uint16_t flags = 0;  // extra flag bits
};

struct BuiltZip {
  std::string bytes;
  std::vector<uint64_t> local_offsets, data_offsets, cd_entry_offsets;
  uint64_t cd_offset = 0, cd_size = 0, eocd_offset = 0;
  std::vector<uint8_t> vec() const { return std::vector<uint8_t>(bytes.begin(), bytes.end()); }
};

using Entries = std::vector<std::pair<std::string, std::string>>;

std::string LocalHeader(const std::string& name, const std::string& data, uint32_t crc,
                        const ZipOptions& o) {
  const uint16_t flags = uint16_t((o.descriptor ? 8 : 0) | 0x800 | o.flags);
  std::string extra;
  uint32_t size32 = uint32_t(data.size());
  if (o.zip64_extras) {
    extra = LE16(1) + LE16(16) + LE64(data.size()) + LE64(data.size());
    size32 = 0xFFFFFFFF;
  }
  std::string h = LE32(0x04034b50) + LE16(45) + LE16(flags) + LE16(o.method) + LE16(0) +
                  LE16(0x21);
  if (o.descriptor)
    h += LE32(0) + LE32(0) + LE32(0);
  else
    h += LE32(crc) + LE32(size32) + LE32(size32);
  return h + LE16(uint16_t(name.size())) + LE16(uint16_t(extra.size())) + name + extra;
}

BuiltZip BuildZip(const Entries& entries, const ZipOptions& o = {}) {
  BuiltZip z;
  std::string& b = z.bytes;
  std::vector<uint32_t> crcs;
  for (const auto& [name, data] : entries) {
    const uint32_t crc = ZipCrc32(Span(data));
    crcs.push_back(crc);
    z.local_offsets.push_back(b.size());
    b += LocalHeader(name, data, crc, o);
    z.data_offsets.push_back(b.size());
    b += data;
    if (o.descriptor) {
      if (o.descriptor_signature) b += LE32(0x08074b50);
      b += LE32(crc);
      if (o.zip64_extras)
        b += LE64(data.size()) + LE64(data.size());
      else
        b += LE32(uint32_t(data.size())) + LE32(uint32_t(data.size()));
    }
  }
  z.cd_offset = b.size();
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& [name, data] = entries[i];
    z.cd_entry_offsets.push_back(b.size());
    const uint16_t flags = uint16_t((o.descriptor ? 8 : 0) | 0x800 | o.flags);
    std::string extra;
    uint32_t size32 = uint32_t(data.size()), offset32 = uint32_t(z.local_offsets[i]);
    if (o.zip64_extras) {
      extra = LE16(1) + LE16(24) + LE64(data.size()) + LE64(data.size()) +
              LE64(z.local_offsets[i]);
      size32 = offset32 = 0xFFFFFFFF;
    }
    b += LE32(0x02014b50) + LE16(0x031e) + LE16(45) + LE16(flags) + LE16(o.method) + LE16(0) +
         LE16(0x21) + LE32(crcs[i]) + LE32(size32) + LE32(size32) +
         LE16(uint16_t(name.size())) + LE16(uint16_t(extra.size())) + LE16(0) + LE16(0) +
         LE16(0) + LE32(0) + LE32(offset32) + name + extra;
  }
  z.cd_size = b.size() - z.cd_offset;
  const uint16_t count = uint16_t(entries.size());
  if (o.zip64_end) {
    const uint64_t z64 = b.size();
    b += LE32(0x06064b50) + LE64(44) + LE16(0x031e) + LE16(45) + LE32(0) + LE32(0) +
         LE64(entries.size()) + LE64(entries.size()) + LE64(z.cd_size) + LE64(z.cd_offset);
    b += LE32(0x07064b50) + LE32(0) + LE64(z64) + LE32(1);
  }
  z.eocd_offset = b.size();
  b += LE32(0x06054b50) + LE16(0) + LE16(0) + LE16(count) + LE16(count) +
       LE32(uint32_t(z.cd_size)) + LE32(uint32_t(z.cd_offset)) +
       LE16(uint16_t(o.comment.size())) + o.comment;
  return z;
}

// ---- a pickle writer for handcrafted pickles (protocol 2, as torch.save writes) ----

namespace pk {
std::string Str(const std::string& s) { return "X" + LE32(uint32_t(s.size())) + s; }
std::string Int(int64_t v) {
  if (v >= 0 && v < 256) return "K" + std::string(1, char(v));
  if (v >= 0 && v < 65536) return "M" + LE16(uint16_t(v));
  if (v >= INT32_MIN && v <= INT32_MAX) return "J" + LE32(uint32_t(int32_t(v)));
  return "\x8a\x08" + LE64(uint64_t(v));
}
std::string Global(const std::string& module, const std::string& name) {
  return "c" + module + "\n" + name + "\n";
}
std::string Tuple(const std::vector<int64_t>& ints) {
  std::string s = "(";
  for (int64_t v : ints) s += Int(v);
  return s + "t";
}
const std::string kHead = "\x80\x02";
const std::string kEmptyOrderedDict = Global("collections", "OrderedDict") + ")R";
std::string Storage(const std::string& cls, const std::string& key, int64_t numel) {
  return "(" + Str("storage") + Global("torch", cls) + Str(key) + Str("cpu") + Int(numel) +
         "tQ";
}
std::string Tensor(const std::string& storage, int64_t offset, const std::vector<int64_t>& shape,
                   const std::vector<int64_t>& stride) {
  return Global("torch._utils", "_rebuild_tensor_v2") + "(" + storage + Int(offset) +
         Tuple(shape) + Tuple(stride) + "\x89" + kEmptyOrderedDict + "tR";
}
// {k0: v0, ...} (values already pickled)
std::string Dict(const std::vector<std::pair<std::string, std::string>>& items) {
  std::string s = "}(";
  for (const auto& [k, v] : items) s += Str(k) + v;
  return s + "u";
}
std::string Pickle(const std::string& body) { return kHead + body + "."; }
}  // namespace pk

// A torch.save-like archive: <archive>/data.pkl, data/<key> per storage, version.
std::vector<uint8_t> TorchZip(const std::string& pickle, const Entries& storages,
                              const std::string& archive = "archive",
                              const ZipOptions& o = {}, const Entries& more = {}) {
  Entries entries = {{archive + "/data.pkl", pickle}};
  for (const auto& [key, bytes] : storages) entries.push_back({archive + "/data/" + key, bytes});
  entries.push_back({archive + "/version", "3\n"});
  for (const auto& e : more) entries.push_back(e);
  return BuildZip(entries, o).vec();
}

// One F32 tensor of 4 elements, "w".
std::string OneTensorPickle() {
  return pk::Pickle(pk::Dict({{"w", pk::Tensor(pk::Storage("FloatStorage", "0", 4), 0, {4}, {1})}}));
}
const Entries kOneStorage = {{"0", std::string(16, '\x01')}};

ErrorCode PickleCode(const std::string& pickle, const PickleLimits& limits = {}) {
  return ParseTorchPickle(Span(pickle), limits).status().code();
}

// ---- fixtures ----

void CheckCrcOffsets(ByteSpan file, const ZipArchive& zip) {
  for (const ZipEntry& e : zip.entries) {
    ASSERT_GE(e.crc_offsets.size(), 1u) << e.name;
    for (uint64_t off : e.crc_offsets) {
      ASSERT_LE(off + 4, file.size) << e.name;
      EXPECT_EQ(LoadLE32(file.data + off), e.crc32) << e.name << " at " << off;
    }
    EXPECT_EQ(ZipCrc32(file.subspan(e.data_offset, e.size)), e.crc32) << e.name;
  }
}

void CheckAgainstSidecar(const std::filesystem::path& json_path) {
  SCOPED_TRACE(json_path.string());
  const std::vector<uint8_t> json_bytes = ReadFile(json_path);
  Result<JsonValue> json = ParseJson(ByteSpan(json_bytes));
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  const JsonValue& j = *json;
  const std::vector<uint8_t> file = ReadFile(json_path.parent_path() / j.Find("file")->string_value());
  ASSERT_FALSE(file.empty());

  if (const JsonValue* error = j.Find("error")) {
    for (bool crc : {true, false}) {
      Result<TorchFile> parsed = ParseTorchFile(ByteSpan(file), crc);
      ASSERT_FALSE(parsed.ok());
      EXPECT_EQ(ErrorCodeName(parsed.status().code()), error->string_value())
          << parsed.status().ToString();
      EXPECT_MESSAGE_HAS(parsed.status(), j.Find("message_contains")->string_value());
    }
    return;
  }

  for (bool crc : {true, false}) {
    Result<TorchFile> parsed = ParseTorchFile(ByteSpan(file), crc);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    const TorchFile& f = *parsed;
    EXPECT_EQ(f.archive_name, j.Find("archive_name")->string_value());
    CheckCrcOffsets(ByteSpan(file), f.zip);
    // The globals carried opaquely, as Python's pickletools lists them.
    std::vector<std::string> opaque;
    for (const JsonValue& g : j.Find("opaque_globals")->items()) opaque.push_back(g.string_value());
    EXPECT_EQ(f.pickle.opaque_globals, opaque);

    const auto& storages = j.Find("storages")->items();
    ASSERT_EQ(f.pickle.storages.size(), storages.size());
    ASSERT_EQ(f.storage_entries.size(), storages.size());
    for (size_t i = 0; i < storages.size(); ++i) {
      const TorchStorage& s = f.pickle.storages[i];
      const JsonValue& e = storages[i];
      EXPECT_EQ(s.key, e.Find("key")->string_value());
      EXPECT_STREQ(DTypeName(s.dtype), e.Find("dtype")->string_value().c_str()) << s.key;
      EXPECT_EQ(s.numel, *e.Find("numel")->AsUint64()) << s.key;
      EXPECT_EQ(s.location, e.Find("location")->string_value());
      ASSERT_NE(f.storage_entries[i], nullptr);
      EXPECT_EQ(f.storage_entries[i]->name, f.archive_name + "/data/" + s.key);
      EXPECT_EQ(f.storage_entries[i]->size, s.numel * DTypeSize(s.dtype));
    }

    const std::vector<TensorPath> paths = TensorPaths(f.pickle);
    const auto& tensors = j.Find("tensors")->items();
    ASSERT_EQ(paths.size(), tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      const JsonValue& e = tensors[i];
      SCOPED_TRACE(e.Find("path")->string_value());
      EXPECT_EQ(paths[i].path, e.Find("path")->string_value());
      ASSERT_LT(paths[i].tensor, f.pickle.tensors.size());
      const TorchTensor& t = f.pickle.tensors[paths[i].tensor];
      EXPECT_EQ(f.pickle.storages[t.storage].key, e.Find("storage_key")->string_value());
      EXPECT_EQ(t.storage_offset, *e.Find("storage_offset")->AsUint64());
      std::vector<uint64_t> shape, stride;
      for (const JsonValue& v : e.Find("shape")->items()) shape.push_back(*v.AsUint64());
      for (const JsonValue& v : e.Find("stride")->items()) stride.push_back(*v.AsUint64());
      EXPECT_EQ(t.shape, shape);
      EXPECT_EQ(t.stride, stride);
      EXPECT_EQ(t.requires_grad, e.Find("requires_grad")->bool_value());
      EXPECT_EQ(t.parameter, e.Find("parameter")->bool_value());
    }
  }
}

TEST(TorchFixtures, EveryFixtureMatchesWhatTorchRead) {
  size_t count = 0;
  std::vector<std::filesystem::path> sidecars;
  for (const auto& entry : std::filesystem::directory_iterator(FixtureDir()))
    if (entry.path().extension() == ".json") sidecars.push_back(entry.path());
  std::sort(sidecars.begin(), sidecars.end());
  for (const auto& p : sidecars) {
    CheckAgainstSidecar(p);
    ++count;
  }
  EXPECT_GE(count, 24u) << "fixtures missing from " << FixtureDir();
}

TEST(TorchFixtures, AdamCheckpointHasTheExpectedStructure) {
  const std::vector<uint8_t> file = ReadFile(FixtureDir() / "adam.pt");
  Result<TorchFile> f = ParseTorchFile(ByteSpan(file));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const TorchPickle& p = f->pickle;
  const PickleValue& root = p.values[p.root];
  ASSERT_EQ(root.kind, PickleValue::Kind::kDict);
  std::map<std::string, PickleValue::Kind> top;
  for (size_t i = 0; i + 1 < root.items.size(); i += 2)
    top[p.values[root.items[i]].text] = p.values[root.items[i + 1]].kind;
  EXPECT_EQ(top["model"], PickleValue::Kind::kDict);  // an OrderedDict
  EXPECT_EQ(top["optimizer"], PickleValue::Kind::kDict);
  EXPECT_EQ(top["step"], PickleValue::Kind::kInt);
  EXPECT_EQ(top["scheduler"], PickleValue::Kind::kDict);
  bool exp_avg_sq = false;
  for (const TensorPath& t : TensorPaths(p))
    exp_avg_sq = exp_avg_sq || t.path == "optimizer/state/0/exp_avg_sq";
  EXPECT_TRUE(exp_avg_sq);
  // Storage entries: the pickle's keys, in the zip, of numel x dtype bytes.
  for (size_t i = 0; i < p.storages.size(); ++i)
    EXPECT_EQ(f->storage_entries[i]->size, p.storages[i].numel * DTypeSize(p.storages[i].dtype));
}

TEST(TorchFixtures, NestedValuesReadAsPickled) {
  const std::vector<uint8_t> file = ReadFile(FixtureDir() / "nested.pt");
  Result<TorchFile> f = ParseTorchFile(ByteSpan(file));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  const TorchPickle& p = f->pickle;
  const PickleValue& root = p.values[p.root];
  std::map<std::string, uint32_t> top;
  for (size_t i = 0; i + 1 < root.items.size(); i += 2) {
    const PickleValue& k = p.values[root.items[i]];
    top[k.kind == PickleValue::Kind::kInt ? std::to_string(k.integer) : k.text] = root.items[i + 1];
  }
  const PickleValue& ints = p.values[top["ints"]];
  ASSERT_EQ(ints.kind, PickleValue::Kind::kList);
  const std::vector<int64_t> expected = {0,         255,        256,       65535,
                                         65536,     2147483647, -2147483648LL, 2147483648LL,
                                         1LL << 62, INT64_MAX,  INT64_MIN, -1};
  ASSERT_EQ(ints.items.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_EQ(p.values[ints.items[i]].integer, expected[i]) << i;
  EXPECT_EQ(p.values[top["str"]].text, "\xC3\xA9\xE2\x9C\x93 unicode");
  EXPECT_EQ(p.values[top["bytes"]].kind, PickleValue::Kind::kBytes);
  EXPECT_EQ(p.values[top["bytes"]].text, "\x00\xff" "ab"s);
  EXPECT_EQ(p.values[top["empty_bytes"]].kind, PickleValue::Kind::kBytes);
  EXPECT_EQ(p.values[top["empty_bytes"]].text, "");
  EXPECT_EQ(p.values[top["dtype"]].kind, PickleValue::Kind::kGlobal);
  EXPECT_EQ(p.values[top["dtype"]].text, "torch.float16");
  EXPECT_EQ(p.values[top["device"]].kind, PickleValue::Kind::kObject);
  EXPECT_EQ(p.values[top["device"]].text, "torch.device");
  const PickleValue& cuda = p.values[top["cuda_device"]];
  ASSERT_EQ(cuda.items.size(), 2u);
  EXPECT_EQ(p.values[cuda.items[0]].text, "cuda");
  EXPECT_EQ(p.values[cuda.items[1]].integer, 1);
  EXPECT_EQ(p.values[top["size"]].text, "torch.Size");
  EXPECT_EQ(p.values[top["none"]].kind, PickleValue::Kind::kNone);
  const PickleValue& list = p.values[top["list"]];
  ASSERT_EQ(list.items.size(), 7u);
  EXPECT_EQ(p.values[list.items[2]].kind, PickleValue::Kind::kBool);
  EXPECT_TRUE(p.values[list.items[2]].boolean);
  EXPECT_EQ(p.values[list.items[4]].number, 1.5);
  EXPECT_TRUE(std::signbit(p.values[list.items[5]].number));
  EXPECT_TRUE(std::isinf(p.values[list.items[6]].number));
  EXPECT_EQ(p.values[p.values[list.items[1]].items[1]].kind, PickleValue::Kind::kTuple);
}

// The fixtures' zips rebuilt in other layouts (no data descriptor, zip64 extras, descriptor
// without signature, a comment, no zip64 end record) read the same.
TEST(TorchFixtures, OtherZipLayoutsReadTheSame) {
  const std::vector<uint8_t> original = ReadFile(FixtureDir() / "adam.pt");
  Result<TorchFile> reference = ParseTorchFile(ByteSpan(original));
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  Entries entries;
  for (const ZipEntry& e : reference->zip.entries)
    entries.push_back({e.name, std::string(reinterpret_cast<const char*>(original.data() +
                                                                          e.data_offset),
                                           e.size)});
  std::vector<ZipOptions> layouts(6);
  layouts[0].descriptor = false;
  layouts[1].zip64_extras = true;
  layouts[2].descriptor_signature = false;
  layouts[3].comment = "a comment with PK\x05\x06 inside";
  layouts[4].zip64_end = false;
  layouts[5].descriptor = false;
  layouts[5].zip64_extras = true;
  layouts[5].zip64_end = false;
  for (size_t i = 0; i < layouts.size(); ++i) {
    SCOPED_TRACE(i);
    const BuiltZip z = BuildZip(entries, layouts[i]);
    Result<TorchFile> f = ParseTorchFile(Span(z.bytes));
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    CheckCrcOffsets(Span(z.bytes), f->zip);
    ASSERT_EQ(f->zip.entries.size(), entries.size());
    for (size_t k = 0; k < entries.size(); ++k) {
      EXPECT_EQ(f->zip.entries[k].data_offset, z.data_offsets[k]);
      EXPECT_EQ(f->zip.entries[k].header_offset, z.local_offsets[k]);
      // Local header (without a descriptor), descriptor (with one), central directory.
      EXPECT_EQ(f->zip.entries[k].crc_offsets.size(), 2u);
      EXPECT_EQ(f->zip.entries[k].crc_offsets.back(), z.cd_entry_offsets[k] + 16);
    }
    ASSERT_EQ(f->pickle.storages.size(), reference->pickle.storages.size());
    ASSERT_EQ(f->pickle.tensors.size(), reference->pickle.tensors.size());
    for (size_t k = 0; k < f->pickle.tensors.size(); ++k)
      EXPECT_EQ(f->pickle.tensors[k].shape, reference->pickle.tensors[k].shape);
  }
}

// adam.pt as Python's zipfile rewrote it (make_fixtures.py): once with a "byteorder" entry and
// an archive comment, once streamed with data descriptors and zip64 extras. Every storage must
// read as the same bytes as torch's own file, and the archive name must follow the rewrite.
TEST(TorchFixtures, PythonZipfileRewritesReadLikeTorchsOwn) {
  const std::vector<uint8_t> original = ReadFile(FixtureDir() / "adam.pt");
  Result<TorchFile> reference = ParseTorchFile(ByteSpan(original));
  ASSERT_TRUE(reference.ok()) << reference.status().ToString();
  for (const char* name : {"adam_pyzip", "adam_pyzip64"}) {
    SCOPED_TRACE(name);
    const std::vector<uint8_t> file = ReadFile(FixtureDir() / (std::string(name) + ".pt"));
    Result<TorchFile> f = ParseTorchFile(ByteSpan(file));
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    EXPECT_EQ(f->archive_name, name);
    CheckCrcOffsets(ByteSpan(file), f->zip);
    ASSERT_EQ(f->storage_entries.size(), reference->storage_entries.size());
    for (size_t k = 0; k < f->storage_entries.size(); ++k) {
      const ZipEntry& a = *reference->storage_entries[k];
      const ZipEntry& b = *f->storage_entries[k];
      ASSERT_EQ(a.size, b.size) << k;
      EXPECT_EQ(0, std::memcmp(original.data() + a.data_offset, file.data() + b.data_offset,
                               a.size))
          << "storage " << k;
      EXPECT_EQ(a.crc32, b.crc32) << k;
    }
    ASSERT_EQ(f->pickle.tensors.size(), reference->pickle.tensors.size());
    for (size_t k = 0; k < f->pickle.tensors.size(); ++k) {
      EXPECT_EQ(f->pickle.tensors[k].shape, reference->pickle.tensors[k].shape);
      EXPECT_EQ(f->pickle.tensors[k].stride, reference->pickle.tensors[k].stride);
    }
  }
}

TEST(TorchFixtures, EveryPrefixOfEveryPickleIsTruncated) {
  for (const auto& entry : std::filesystem::directory_iterator(FixtureDir())) {
    if (entry.path().extension() != ".pt" || entry.path().stem() == "legacy") continue;
    const std::vector<uint8_t> file = ReadFile(entry.path());
    Result<ZipArchive> zip = ParseZip(ByteSpan(file));
    ASSERT_TRUE(zip.ok()) << entry.path() << zip.status().ToString();
    const ZipEntry* pkl = nullptr;
    for (const ZipEntry& e : zip->entries)
      if (e.name.size() > 9 && e.name.substr(e.name.size() - 9) == "/data.pkl") pkl = &e;
    ASSERT_NE(pkl, nullptr);
    for (uint64_t n = 0; n < pkl->size; ++n) {
      Result<TorchPickle> p = ParseTorchPickle(ByteSpan(file.data() + pkl->data_offset, n));
      ASSERT_FALSE(p.ok()) << entry.path() << " prefix " << n;
      ASSERT_EQ(p.status().code(), ErrorCode::kPickleMalformed) << p.status().ToString();
      ASSERT_NE(p.status().message().find("truncated"), std::string::npos)
          << p.status().ToString();
    }
  }
}

// ---- zip ----

TEST(TorchZip, ReadsEntriesAndCrcOffsets) {
  const BuiltZip z = BuildZip({{"a/x", "hello"}, {"a/empty", ""}, {"a/y", std::string(300, 'z')}});
  Result<ZipArchive> zip = ParseZip(Span(z.bytes));
  ASSERT_TRUE(zip.ok()) << zip.status().ToString();
  ASSERT_EQ(zip->entries.size(), 3u);
  EXPECT_EQ(zip->entries[0].name, "a/x");
  EXPECT_EQ(zip->entries[0].size, 5u);
  EXPECT_EQ(zip->entries[1].size, 0u);
  EXPECT_EQ(zip->entries[1].crc32, 0u);
  EXPECT_EQ(zip->entries[2].data_offset, z.data_offsets[2]);
  ASSERT_NE(zip->Find("a/y"), nullptr);
  EXPECT_EQ(zip->Find("a/y")->size, 300u);
  EXPECT_EQ(zip->Find("a/z"), nullptr);
  // With a descriptor and a zero local CRC: descriptor then central directory.
  EXPECT_EQ(zip->entries[0].crc_offsets,
            (std::vector<uint64_t>{z.data_offsets[0] + 5 + 4, z.cd_entry_offsets[0] + 16}));
  CheckCrcOffsets(Span(z.bytes), *zip);
  EXPECT_EQ(ZipCrc32(Span(std::string("123456789"))), 0xCBF43926u);
}

TEST(TorchZip, EmptyArchiveIsValid) {
  const BuiltZip z = BuildZip({});
  Result<ZipArchive> zip = ParseZip(Span(z.bytes));
  ASSERT_TRUE(zip.ok()) << zip.status().ToString();
  EXPECT_TRUE(zip->entries.empty());
}

TEST(TorchZip, EntriesAreSortedByDataOffset) {
  BuiltZip z = BuildZip({{"a/1", "one"}, {"a/2", "two"}});
  // Swap the two central directory entries (same sizes): the archive lists entry 2 first.
  std::string& b = z.bytes;
  const size_t first = z.cd_entry_offsets[0], second = z.cd_entry_offsets[1];
  const std::string e1 = b.substr(first, second - first), e2 = b.substr(second, e1.size());
  b.replace(first, 2 * e1.size(), e2 + e1);
  Result<ZipArchive> zip = ParseZip(Span(b));
  ASSERT_TRUE(zip.ok()) << zip.status().ToString();
  EXPECT_EQ(zip->entries[0].name, "a/1");
  EXPECT_EQ(zip->entries[1].name, "a/2");
}

TEST(TorchZip, LocalHeaderHoldingTheCrcIsListed) {
  ZipOptions o;
  o.descriptor = false;
  const BuiltZip z = BuildZip({{"a/x", "hello"}}, o);
  Result<ZipArchive> zip = ParseZip(Span(z.bytes));
  ASSERT_TRUE(zip.ok()) << zip.status().ToString();
  EXPECT_EQ(zip->entries[0].crc_offsets,
            (std::vector<uint64_t>{z.local_offsets[0] + 14, z.cd_entry_offsets[0] + 16}));
}

TEST(TorchZip, RefusesBrokenEndRecords) {
  const BuiltZip z = BuildZip({{"a/x", "hello"}});
  {  // too short
    Result<ZipArchive> r = ParseZip(Span(std::string("PK\x05\x06")));
    EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
  }
  {  // no end record: signature damaged
    std::string b = z.bytes;
    b[z.eocd_offset] = 'Q';
    Result<ZipArchive> r = ParseZip(Span(b));
    EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
    EXPECT_MESSAGE_HAS(r.status(), "end of central directory record");
  }
  {  // comment length that does not reach the end of the file
    std::string b = z.bytes + "xyz";
    Result<ZipArchive> r = ParseZip(Span(b));
    EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
  }
  {  // truncated anywhere
    for (size_t n = 0; n < z.bytes.size(); ++n) {
      Result<ZipArchive> r = ParseZip(Span(z.bytes.substr(0, n)));
      EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed) << n;
    }
  }
  {  // multi-disk
    std::string b = z.bytes;
    b[z.eocd_offset + 4] = 1;
    ZipOptions o;
    o.zip64_end = false;
    BuiltZip plain = BuildZip({{"a/x", "hello"}}, o);
    plain.bytes[plain.eocd_offset + 4] = 1;
    EXPECT_EQ(ParseZip(Span(b)).status().code(), ErrorCode::kZipMalformed);  // disagrees
    EXPECT_EQ(ParseZip(Span(plain.bytes)).status().code(), ErrorCode::kUnsupported);
  }
  {  // zip64 record that disagrees with the end record
    std::string b = z.bytes;
    const size_t z64 = z.cd_offset + z.cd_size;
    b[z64 + 32] = 2;  // total entries
    Result<ZipArchive> r = ParseZip(Span(b));
    EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
    EXPECT_MESSAGE_HAS(r.status(), "disagrees");
  }
  {  // zip64 locator pointing nowhere
    std::string b = z.bytes;
    b.replace(z.eocd_offset - 20 + 8, 8, LE64(1u << 30));
    EXPECT_EQ(ParseZip(Span(b)).status().code(), ErrorCode::kZipMalformed);
  }
}

TEST(TorchZip, RefusesCentralDirectoryOutOfPlace) {
  ZipOptions o;
  o.zip64_end = false;
  const BuiltZip z = BuildZip({{"a/x", "hello"}, {"a/y", "world"}}, o);
  for (uint32_t offset : {uint32_t(z.cd_offset + 1), uint32_t(z.cd_offset - 1), 0xFFFFFFF0u}) {
    std::string b = z.bytes;
    b.replace(z.eocd_offset + 16, 4, LE32(offset));
    Result<ZipArchive> r = ParseZip(Span(b));
    EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed) << offset;
    EXPECT_MESSAGE_HAS(r.status(), "central directory");
  }
  {  // more entries than the central directory can hold
    std::string b = z.bytes;
    b.replace(z.eocd_offset + 8, 4, LE16(60000) + LE16(60000));
    Result<ZipArchive> r = ParseZip(Span(b));
    EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
    EXPECT_MESSAGE_HAS(r.status(), "cannot fit");
  }
  {  // fewer entries: bytes left after the last one
    std::string b = z.bytes;
    b.replace(z.eocd_offset + 8, 4, LE16(1) + LE16(1));
    EXPECT_EQ(ParseZip(Span(b)).status().code(), ErrorCode::kZipMalformed);
  }
  {  // a central directory entry's signature
    std::string b = z.bytes;
    b[z.cd_entry_offsets[1]] = 'Q';
    EXPECT_EQ(ParseZip(Span(b)).status().code(), ErrorCode::kZipMalformed);
  }
  {  // local header offset past the end, or onto the wrong header
    std::string b = z.bytes;
    b.replace(z.cd_entry_offsets[1] + 42, 4, LE32(0x7FFFFFFF));
    EXPECT_EQ(ParseZip(Span(b)).status().code(), ErrorCode::kZipMalformed);
    b = z.bytes;
    b.replace(z.cd_entry_offsets[1] + 42, 4, LE32(0));
    Result<ZipArchive> r = ParseZip(Span(b));
    EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
    EXPECT_MESSAGE_HAS(r.status(), "names \"a/x\"");
  }
}

TEST(TorchZip, RefusesOverlappingEntries) {
  // Entry "a/1"'s data holds a complete local header and data of "a/2", and the central
  // directory points "a/2" there: each entry reads alone, but they overlap.
  ZipOptions o;
  o.descriptor = false;
  const std::string inner_data = "inner";
  const std::string inner =
      LocalHeader("a/2", inner_data, ZipCrc32(Span(inner_data)), o) + inner_data;
  BuiltZip z = BuildZip({{"a/1", "xx" + inner + "yy"}, {"a/2", inner_data}}, o);
  std::string b = z.bytes;
  b.replace(z.cd_entry_offsets[1] + 42, 4, LE32(uint32_t(z.data_offsets[0] + 2)));
  Result<ZipArchive> r = ParseZip(Span(b));
  EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
  EXPECT_MESSAGE_HAS(r.status(), "overlap");
  // The last entry running into the central directory.
  BuiltZip into = BuildZip({{"a/1", "abc"}}, o);
  into.bytes.replace(into.local_offsets[0] + 18, 8, LE32(4) + LE32(4));
  into.bytes.replace(into.cd_entry_offsets[0] + 20, 8, LE32(4) + LE32(4));
  r = ParseZip(Span(into.bytes), /*check_crcs=*/false);
  EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
  EXPECT_MESSAGE_HAS(r.status(), "overlap the central directory");
}

TEST(TorchZip, RefusesCompressedAndEncryptedEntries) {
  ZipOptions o;
  o.method = 8;
  Result<ZipArchive> r = ParseZip(Span(BuildZip({{"a/x", "hello"}}, o).bytes));
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  EXPECT_MESSAGE_HAS(r.status(), "compressed zip entries are not supported");
  EXPECT_MESSAGE_HAS(r.status(), "a/x");
  ZipOptions e;
  e.flags = 1;
  r = ParseZip(Span(BuildZip({{"a/x", "hello"}}, e).bytes));
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  EXPECT_MESSAGE_HAS(r.status(), "encrypted");
}

TEST(TorchZip, ChecksCrcs) {
  BuiltZip z = BuildZip({{"a/x", "hello"}, {"a/y", "world"}});
  z.bytes[z.data_offsets[1] + 2] ^= 1;
  Result<ZipArchive> r = ParseZip(Span(z.bytes));
  EXPECT_EQ(r.status().code(), ErrorCode::kZipChecksum);
  EXPECT_MESSAGE_HAS(r.status(), "\"a/y\"");
  EXPECT_TRUE(ParseZip(Span(z.bytes), /*check_crcs=*/false).ok());
}

TEST(TorchZip, RefusesInconsistentLocalHeaders) {
  ZipOptions plain;
  plain.descriptor = false;
  const BuiltZip z = BuildZip({{"a/x", "hello"}}, plain);
  const size_t h = z.local_offsets[0];
  auto code = [](std::string b) { return ParseZip(Span(b)).status().code(); };
  std::string b = z.bytes;
  b[h] = 'Q';  // signature
  EXPECT_EQ(code(b), ErrorCode::kZipMalformed);
  b = z.bytes;
  b[h + 30] = 'b';  // name
  EXPECT_EQ(code(b), ErrorCode::kZipMalformed);
  b = z.bytes;
  b.replace(h + 14, 4, LE32(1234));  // CRC
  EXPECT_EQ(code(b), ErrorCode::kZipMalformed);
  b = z.bytes;
  b.replace(h + 18, 4, LE32(4));  // size
  EXPECT_EQ(code(b), ErrorCode::kZipMalformed);
  b = z.bytes;
  b.replace(h + 6, 2, LE16(0x808));  // flags: descriptor, which is not there
  EXPECT_EQ(code(b), ErrorCode::kZipMalformed);
  b = z.bytes;
  b.replace(h + 8, 2, LE16(8));  // method differs from the central directory's
  EXPECT_EQ(code(b), ErrorCode::kZipMalformed);
  b = z.bytes;
  b.replace(h + 28, 2, LE16(3));  // extra field that is not a whole field
  EXPECT_EQ(code(b), ErrorCode::kZipMalformed);
  // Data descriptor with the wrong CRC or size.
  const BuiltZip d = BuildZip({{"a/x", "hello"}});
  b = d.bytes;
  b[d.data_offsets[0] + 5 + 4] ^= 1;
  Result<ZipArchive> r = ParseZip(Span(b));
  EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
  EXPECT_MESSAGE_HAS(r.status(), "data descriptor");
}

TEST(TorchZip, RefusesBadNames) {
  for (const std::string& name : {std::string("../x"), std::string("a/../x"),
                                  std::string("/abs"), std::string("a\0b", 3), std::string(),
                                  std::string("\xff\xfe")}) {
    Result<ZipArchive> r = ParseZip(Span(BuildZip({{name, "data"}}).bytes));
    EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed) << name;
    EXPECT_MESSAGE_HAS(r.status(), "name");
  }
  EXPECT_TRUE(ParseZip(Span(BuildZip({{"a/..b/c..", "data"}}).bytes)).ok());
  Result<ZipArchive> r = ParseZip(Span(BuildZip({{"a/x", "1"}, {"a/x", "2"}}).bytes));
  EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
  EXPECT_MESSAGE_HAS(r.status(), "twice");
}

TEST(TorchZip, RefusesZip64SentinelsWithoutExtraField) {
  ZipOptions o;
  o.zip64_end = false;
  BuiltZip z = BuildZip({{"a/x", "hello"}}, o);
  z.bytes.replace(z.cd_entry_offsets[0] + 20, 8, LE32(0xFFFFFFFF) + LE32(0xFFFFFFFF));
  Result<ZipArchive> r = ParseZip(Span(z.bytes));
  EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
  EXPECT_MESSAGE_HAS(r.status(), "zip64");
}

// ---- pickle ----

TEST(TorchPickle, ReadsAHandmadeStateDict) {
  const std::string pickle = pk::Pickle(
      pk::kEmptyOrderedDict + "(" + pk::Str("a") +
      pk::Tensor(pk::Storage("HalfStorage", "7", 6), 0, {2, 3}, {3, 1}) + pk::Str("b") +
      pk::Tensor(pk::Storage("HalfStorage", "7", 6), 4, {2}, {1}) + "u" + "}b");
  Result<TorchPickle> p = ParseTorchPickle(Span(pickle));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->storages.size(), 1u);  // the same key twice: one storage
  EXPECT_EQ(p->storages[0].key, "7");
  EXPECT_EQ(p->storages[0].dtype, DType::kF16);
  EXPECT_EQ(p->storages[0].numel, 6u);
  EXPECT_EQ(p->storages[0].location, "cpu");
  ASSERT_EQ(p->tensors.size(), 2u);
  EXPECT_EQ(p->tensors[1].storage_offset, 4u);
  const std::vector<TensorPath> paths = TensorPaths(*p);
  ASSERT_EQ(paths.size(), 2u);
  EXPECT_EQ(paths[0].path, "a");
  EXPECT_EQ(paths[1].path, "b");
  EXPECT_EQ(paths[1].tensor, 1u);
}

TEST(TorchPickle, CarriesUnknownGlobalsWithoutCallingThem) {
  using Kind = PickleValue::Kind;
  // A global alone, called (REDUCE), instantiated (NEWOBJ) with a state (BUILD) and items
  // (APPENDS, SETITEMS): an opaque value whose parts stay in the graph. Nothing runs.
  for (const auto& [module, name] : std::vector<std::pair<std::string, std::string>>{
           {"os", "system"}, {"builtins", "eval"}, {"torch", "load"},
           {"numpy.core.multiarray", "_reconstruct"}, {"collections", "defaultdict"}}) {
    SCOPED_TRACE(module + "." + name);
    Result<TorchPickle> r = ParseTorchPickle(Span(pk::Pickle(pk::Global(module, name))));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->values[r->root].kind, Kind::kGlobal);
    EXPECT_EQ(r->opaque_globals, std::vector<std::string>{module + "." + name});
    r = ParseTorchPickle(Span(pk::Pickle(pk::Global(module, name) + pk::Str("rm -rf /") + "\x85R")));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const PickleValue& call = r->values[r->root];
    ASSERT_EQ(call.kind, Kind::kOpaque);
    EXPECT_EQ(call.text, module + "." + name);
    ASSERT_EQ(call.items.size(), PickleValue::kOpaqueSlots);
    const PickleValue& args = r->values[call.items[PickleValue::kArgs]];
    ASSERT_EQ(args.kind, Kind::kTuple);
    EXPECT_EQ(r->values[args.items[0]].text, "rm -rf /");
  }
  // An instance with a tensor in its state, items appended and set, and a call of one of its
  // methods (getattr(obj, "f")(...), as OneCycleLR's state holds).
  const std::string tensor = pk::Tensor(pk::Storage("FloatStorage", "0", 4), 0, {4}, {1});
  const std::string pickle = pk::Pickle(
      "}(" + pk::Str("obj") + pk::Global("my.mod", "Thing") + ")\x81q\x01" + "(K\x07" "e" +
      "(" + pk::Str("k") + tensor + "u" + "}(" + pk::Str("attr") + tensor + "ub" +
      pk::Str("call") + pk::Global("__builtin__", "getattr") + "h\x01" + pk::Str("f") +
      "\x86R)R" + "u");
  Result<TorchPickle> r = ParseTorchPickle(Span(pickle));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->opaque_globals, (std::vector<std::string>{"my.mod.Thing", "__builtin__.getattr"}));
  const PickleValue& root = r->values[r->root];
  const PickleValue& obj = r->values[root.items[1]];
  ASSERT_EQ(obj.kind, Kind::kOpaque);
  EXPECT_EQ(obj.text, "my.mod.Thing");
  EXPECT_EQ(r->values[obj.items[PickleValue::kListItems]].items.size(), 1u);
  EXPECT_EQ(r->values[obj.items[PickleValue::kDictItems]].items.size(), 2u);
  EXPECT_EQ(r->values[obj.items[PickleValue::kState]].kind, Kind::kDict);
  EXPECT_EQ(r->values[obj.items[PickleValue::kKwargs]].kind, Kind::kNone);
  const PickleValue& call = r->values[root.items[3]];
  ASSERT_EQ(call.kind, Kind::kOpaque);
  EXPECT_EQ(call.text, "");  // the callable is itself opaque
  EXPECT_EQ(r->values[call.items[PickleValue::kCallable]].text, "__builtin__.getattr");
  std::vector<std::string> paths;
  for (const TensorPath& t : TensorPaths(*r)) paths.push_back(t.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"obj/k", "obj/attr"}));  // the object adds no label

  // What Python would make of a known global called unusually is carried too.
  for (const std::string& p :
       {pk::Global("collections", "OrderedDict") + "]\x85R",            // OrderedDict([])
        pk::Global("_codecs", "encode") + pk::Str("a") + pk::Str("ascii") + "\x86R",
        pk::Global("__builtin__", "bytes") + "K\x03\x85R",               // bytes(3)
        pk::Global("torch", "FloatStorage") + "K\x03\x85R"}) {         // a storage made by hand
    Result<TorchPickle> q = ParseTorchPickle(Span(pk::Pickle(p)));
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    EXPECT_EQ(q->values[q->root].kind, Kind::kOpaque);
  }
  Result<TorchPickle> utf8 = ParseTorchPickle(
      Span(pk::Pickle(pk::Global("_codecs", "encode") + pk::Str("\xc3\xa9") + pk::Str("utf-8") + "\x86R")));
  ASSERT_TRUE(utf8.ok()) << utf8.status().ToString();
  EXPECT_EQ(utf8->values[utf8->root].kind, Kind::kBytes);
  EXPECT_EQ(utf8->values[utf8->root].text, "\xc3\xa9");

  // A storage of a dtype CKZ lacks cannot be carried; its class alone is harmless.
  r = ParseTorchPickle(Span(pk::Pickle(
      pk::Tensor(pk::Storage("ComplexFloatStorage", "0", 4), 0, {4}, {1}))));
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupportedDtype);
  EXPECT_MESSAGE_HAS(r.status(), "torch.ComplexFloatStorage");
  for (const char* g : {"float32", "bfloat16", "bool", "Size", "device", "FloatStorage",
                        "ComplexFloatStorage"})
    EXPECT_TRUE(ParseTorchPickle(Span(pk::Pickle(pk::Global("torch", g)))).ok()) << g;
}

// Opcodes of protocols 0, 1, 3, 4 and 5 (torch.save writes 2 unless asked): values as Python
// reads them.
TEST(TorchPickle, EveryProtocol) {
  using Kind = PickleValue::Kind;
  struct Case {
    std::string body;
    Kind kind;
    std::string text;  // kString, kBytes, kOpaque
    int64_t integer;   // kInt, kBool; items of a container
  };
  const std::vector<Case> cases = {
      {"I42\n", Kind::kInt, "", 42},
      {"I-0x1F\n", Kind::kInt, "", -31},
      {"I01\n", Kind::kBool, "", 1},
      {"I1_000\n", Kind::kInt, "", 1000},
      {"L123L\n", Kind::kInt, "", 123},
      {"L99999999999999999999999L\n", Kind::kOpaque, "builtins.int", 0},
      {"\x8a\x09" + std::string(8, '\0') + "\x01", Kind::kOpaque, "builtins.int", 0},
      {"F1.5\n", Kind::kFloat, "", 0},
      {"S'a\\x41\\n\\'b'\n", Kind::kString, "aA\n'b", 0},
      {"Va\\u00e9\\\\u0041\n", Kind::kString, "a\xc3\xa9\\\\u0041", 0},
      {"V\\ud800\n", Kind::kString, "\xed\xa0\x80", 0},          // a lone surrogate
      {"X\x03\x00\x00\x00\xed\xa0\x80"s, Kind::kString, "\xed\xa0\x80", 0},
      {"C\x02" "ab", Kind::kBytes, "ab", 0},
      {"B\x01\x00\x00\x00z"s, Kind::kBytes, "z", 0},
      {"\x8e\x01" + std::string(7, '\0') + "y", Kind::kBytes, "y", 0},
      {"\x96\x01" + std::string(7, '\0') + "w", Kind::kBytes, "w", 0},
      {"\x8d\x01" + std::string(7, '\0') + "v", Kind::kString, "v", 0},
      {"(K\x01K\x02l", Kind::kList, "", 2},
      {"(K\x01K\x02K\x03K\x04" "d", Kind::kDict, "", 4},
      {"\x8f(K\x01K\x02\x90", Kind::kOpaque, "builtins.set", 0},
      {"(K\x01\x91", Kind::kOpaque, "builtins.frozenset", 0},
      {"K\x05p7\n0g7\n", Kind::kInt, "", 5},                            // PUT, POP, GET
      {"K\x05\x94\x30h\x00"s, Kind::kInt, "", 5},                        // MEMOIZE
      {"K\x01\x32\x86", Kind::kTuple, "", 2},                            // DUP
      {"K\x01(K\x02" "1", Kind::kInt, "", 1},                             // POP_MARK
      {"(K\x01(0t", Kind::kTuple, "", 1},                                  // POP pops a MARK
      {"\x8c\x04" "argp" "\x8c\x02" "ns\x93)\x81", Kind::kOpaque, "argp.ns", 0},
      {"\x8c\x01" "m\x8c\x01" "C\x93)}\x92", Kind::kOpaque, "m.C", 0},  // NEWOBJ_EX
      {"(K\x01imy\nC\n", Kind::kOpaque, "my.C", 0},                       // INST
      {"(cmy\nC\nK\x01o", Kind::kOpaque, "my.C", 0},                      // OBJ
      {"\x95\x02" + std::string(7, '\0') + "K\x01", Kind::kInt, "", 1},  // FRAME
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    for (char protocol : {'\x00', '\x02', '\x05'}) {
      Result<TorchPickle> r =
          ParseTorchPickle(Span(std::string("\x80") + protocol + c.body + "."));
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      const PickleValue& v = r->values[r->root];
      ASSERT_EQ(v.kind, c.kind);
      if (c.kind == Kind::kInt || c.kind == Kind::kBool) {
        EXPECT_EQ(c.kind == Kind::kInt ? v.integer : int64_t(v.boolean), c.integer);
      } else if (c.kind == Kind::kString || c.kind == Kind::kBytes || c.kind == Kind::kOpaque) {
        EXPECT_EQ(v.text, c.text);
      } else if (c.kind == Kind::kFloat) {
        EXPECT_EQ(v.number, 1.5);
      } else {
        EXPECT_EQ(v.items.size(), size_t(c.integer));
      }
    }
  }
  // A protocol Python does not know is unsupported, not malformed.
  Result<TorchPickle> r = ParseTorchPickle(Span(std::string("\x80\x06K\x01.")));
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  EXPECT_MESSAGE_HAS(r.status(), "protocol 6");
}

TEST(TorchPickle, RefusesMalformedStreams) {
  using pk::Pickle;
  const std::string one = pk::Int(1);
  struct Case {
    std::string pickle;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"", "truncated"},
      {"\x80\x02", "truncated"},
      {"\x80\x02K", "truncated"},
      {"\x80\x02X\x10\x00\x00\x00"s "abc", "truncated"},
      {"\x80\x02" "cos\nsys", "truncated"},
      {"\x80\x02\xff.", "not a pickle opcode"},
      {"\x80\x02i__main__\nX\n.", "no MARK"},
      {Pickle("0"), "POP"},
      {Pickle("I12x\n"), "not an integer"},
      {Pickle("I\n"), "not an integer"},
      {Pickle("L0x\n"), "not an integer"},
      {Pickle("F1.5.5\n"), "not a float"},
      {Pickle("Sabc\n"), "quoted"},
      {Pickle("S'\\x4'\n"), "\\x escape"},
      {Pickle("S'\xff'\n"), "UTF-8"},
      {Pickle("V\\u12\n"), "\\u escape"},
      {Pickle("V\\U00110000\n"), "U+10FFFF"},
      {Pickle("g-1\n"), "memo index"},
      {Pickle("Pabc\n"), "persistent id"},
      {Pickle("\x82\x01"), "torch.load"},
      {Pickle("\x97"), "torch.load"},
      {Pickle("\x93"), "stack underflow"},
      {Pickle("K\x01K\x02\x93"), "two str"},
      {Pickle("(o"), "OBJ without a class"},
      {Pickle("K\x01(K\x02\x90"), "not a set"},
      {Pickle("]K\x01\x94(K\x02\x90"), "not a set"},
      {"\x80\x02.", "stack underflow"},
      {Pickle("a"), "stack underflow"},
      {Pickle("]K\x01(a"), "stack underflow"},  // APPEND below the MARK
      {Pickle("}K\x01s"), "stack underflow"},
      {Pickle("t"), "no MARK"},
      {Pickle("h\x05"), "memo entry 5"},
      {Pickle("j\x05\x00\x00\x01"s), "memo entry 16777221"},
      {Pickle("K\x01K\x02"), "left on the stack"},
      {Pickle("(K\x01"), "MARK is still open"},
      {"\x80\x02K\x01.junk", "follow STOP"},
      {Pickle("X\x02\x00\x00\x00\xc3\x28"s), "UTF-8"},
      {Pickle("T\xff\xff\xff\xff"), "negative"},
      {Pickle("K\x01K\x02R"), "calls an int"},
      {Pickle(pk::kEmptyOrderedDict + "K\x01K\x02" "a"), "not a list"},
      {Pickle("]K\x01K\x02s"), "not a dict"},
      {Pickle("}(K\x01u"), "odd number"},
      {Pickle("}]K\x01s"), "dict key"},
      {Pickle("]}b"), "BUILD on a list"},
      {Pickle(pk::kEmptyOrderedDict + "]b"), "not a dict"},
      {Pickle(pk::Global("torch", "float32") + ")R"), "cannot be called"},
      {Pickle(pk::Global("torch._utils", "_rebuild_tensor_v2") + ")\x81"), "not a class"},
      {Pickle("K\x01Q"), "persistent id"},
      {Pickle("(" + pk::Str("storage") + pk::Global("torch", "float32") + pk::Str("0") +
              pk::Str("cpu") + one + "tQ"),
       "not a torch storage class"},
      {Pickle("(" + pk::Str("storage") + pk::Global("torch", "FloatStorage") + pk::Str("a/b") +
              pk::Str("cpu") + one + "tQ"),
       "cannot name a zip entry"},
      {Pickle(pk::Global("torch._utils", "_rebuild_tensor_v2") + "(K\x01K\x00)))\x89}tR"s),
       "not a storage"},
      {Pickle(pk::Global("torch._utils", "_rebuild_tensor_v2") + "(" +
              pk::Storage("FloatStorage", "0", 4) + "K\x00"s + pk::Tuple({2}) +
              pk::Tuple({1, 1}) + "\x89}tR"),
       "dimensions"},
      {Pickle(pk::Global("torch._utils", "_rebuild_parameter") + "(K\x01\x88}tR"),
       "not a tensor"},
      {Pickle(pk::Global("_codecs", "encode") + pk::Str("\xe2\x9c\x93") + pk::Str("latin1") +
              "\x86R"),
       "latin1"},
      {Pickle(pk::Global("torch", "device") + "K\x01\x85R"), "torch.device"},
      {Pickle(pk::Global("torch", "Size") + pk::Str("x") + "\x85R"), "torch.Size"},
  };
  for (const Case& c : cases) {
    Result<TorchPickle> r = ParseTorchPickle(Span(c.pickle));
    EXPECT_EQ(r.status().code(), ErrorCode::kPickleMalformed) << c.message;
    EXPECT_MESSAGE_HAS(r.status(), c.message);
  }
  // Error messages name the byte offset and the opcode.
  Result<TorchPickle> r = ParseTorchPickle(Span(std::string("\x80\x02K\x01\xff.")));
  EXPECT_MESSAGE_HAS(r.status(), "offset 4");
  EXPECT_MESSAGE_HAS(r.status(), "0xff");
  r = ParseTorchPickle(Span(std::string("\x80\x02" "0.")));
  EXPECT_MESSAGE_HAS(r.status(), "'0' (POP)");
}

TEST(TorchPickle, ChecksViewsAgainstTheirStorage) {
  auto view = [](int64_t numel, int64_t offset, std::vector<int64_t> shape,
                 std::vector<int64_t> stride) {
    return PickleCode(pk::Pickle(
        pk::Tensor(pk::Storage("FloatStorage", "0", numel), offset, shape, stride)));
  };
  EXPECT_EQ(view(4, 0, {4}, {1}), ErrorCode::kOk);
  EXPECT_EQ(view(4, 1, {3}, {1}), ErrorCode::kOk);
  EXPECT_EQ(view(4, 2, {3}, {1}), ErrorCode::kTorchStorageMismatch);
  EXPECT_EQ(view(12, 0, {4, 3}, {1, 4}), ErrorCode::kOk);  // transposed
  EXPECT_EQ(view(12, 0, {4, 3}, {1, 5}), ErrorCode::kTorchStorageMismatch);
  EXPECT_EQ(view(1, 0, {5, 7}, {0, 0}), ErrorCode::kOk);  // expanded
  EXPECT_EQ(view(0, 0, {0}, {1}), ErrorCode::kOk);         // empty
  EXPECT_EQ(view(4, 4, {0, 3}, {3, 1}), ErrorCode::kOk);
  EXPECT_EQ(view(4, 5, {0}, {1}), ErrorCode::kTorchStorageMismatch);
  EXPECT_EQ(view(1, 0, {}, {}), ErrorCode::kOk);  // 0-d
  EXPECT_EQ(view(0, 0, {}, {}), ErrorCode::kTorchStorageMismatch);
  EXPECT_EQ(view(10, 0, {3, INT64_MAX}, {INT64_MAX, 1}), ErrorCode::kTorchStorageMismatch);
  EXPECT_EQ(view(10, INT64_MAX, {1}, {1}), ErrorCode::kTorchStorageMismatch);
  EXPECT_EQ(view(4, -1, {1}, {1}), ErrorCode::kPickleMalformed);
  EXPECT_EQ(view(4, 0, {-1}, {1}), ErrorCode::kPickleMalformed);
  EXPECT_EQ(view(4, 0, {2}, {-1}), ErrorCode::kPickleMalformed);
  // A storage key used twice must agree.
  const std::string twice = pk::Pickle(
      "(" + pk::Tensor(pk::Storage("FloatStorage", "0", 4), 0, {4}, {1}) +
      pk::Tensor(pk::Storage("FloatStorage", "0", 5), 0, {4}, {1}) + "t");
  Result<TorchPickle> r = ParseTorchPickle(Span(twice));
  EXPECT_EQ(r.status().code(), ErrorCode::kTorchStorageMismatch);
  EXPECT_MESSAGE_HAS(r.status(), "'0'");
  EXPECT_EQ(PickleCode(pk::Pickle(
                "(" + pk::Tensor(pk::Storage("FloatStorage", "0", 4), 0, {4}, {1}) +
                pk::Tensor(pk::Storage("IntStorage", "0", 4), 0, {4}, {1}) + "t")),
            ErrorCode::kTorchStorageMismatch);
  // A storage too large to have a byte size.
  EXPECT_EQ(PickleCode(pk::Pickle(pk::Storage("DoubleStorage", "0", INT64_MAX))),
            ErrorCode::kLimitExceeded);
}

TEST(TorchPickle, IntegersOfEveryWidth) {
  struct Case {
    std::string bytes;
    int64_t value;
  };
  const std::vector<Case> cases = {
      {"K\xff", 255},
      {"M\xff\xff", 65535},
      {"J\xff\xff\xff\xff", -1},
      {"J\x00\x00\x00\x80"s, INT32_MIN},
      {"\x8a\x00"s, 0},
      {"\x8a\x01\xff", -1},
      {"\x8a\x02\x00\x80"s, -32768},
      {"\x8a\x03\x00\x80\x00"s, 32768},
      {"\x8a\x08" + LE64(uint64_t(INT64_MIN)), INT64_MIN},
      {"\x8a\x09" + LE64(uint64_t(-5)) + "\xff", -5},  // redundant sign byte
      {"\x8b\x02\x00\x00\x00\x34\x12"s, 0x1234},
  };
  for (const Case& c : cases) {
    Result<TorchPickle> r = ParseTorchPickle(Span(pk::Pickle(c.bytes)));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->values[r->root].kind, PickleValue::Kind::kInt);
    EXPECT_EQ(r->values[r->root].integer, c.value);
  }
  Result<TorchPickle> big = ParseTorchPickle(Span(pk::Pickle("\x8a\x09" + LE64(uint64_t(INT64_MAX)) + "\xff")));
  ASSERT_TRUE(big.ok()) << big.status().ToString();
  EXPECT_EQ(big->values[big->root].kind, PickleValue::Kind::kOpaque);  // beyond 64 bits
  EXPECT_EQ(big->values[big->root].text, "builtins.int");
  EXPECT_EQ(PickleCode(pk::Pickle("\x8b\xff\xff\xff\xff")), ErrorCode::kPickleMalformed);
}

TEST(TorchPickle, DictKeysFollowPythonEquality) {
  // {1: a, True: b, 1.0: c, "1": d}: 1, True and 1.0 are one key, which keeps its first
  // place and takes the last value.
  const std::string pickle = pk::Pickle("}(K\x01" + pk::Str("a") + "\x88" + pk::Str("b") +
                                        "G\x3f\xf0\x00\x00\x00\x00\x00\x00"s + pk::Str("c") +
                                        pk::Str("1") + pk::Str("d") + "u");
  Result<TorchPickle> r = ParseTorchPickle(Span(pickle));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const PickleValue& d = r->values[r->root];
  ASSERT_EQ(d.items.size(), 4u);
  EXPECT_EQ(r->values[d.items[0]].kind, PickleValue::Kind::kInt);
  EXPECT_EQ(r->values[d.items[1]].text, "c");
  EXPECT_EQ(r->values[d.items[2]].text, "1");
  EXPECT_EQ(r->values[d.items[3]].text, "d");
}

TEST(TorchPickle, MemoSharesObjects) {
  // A list memoized empty, filled afterwards, and fetched again: both references see it full.
  const std::string pickle =
      pk::Pickle("(]q\x01K\x07" "ah\x01t");  // ( [] put1 7 append get1 tuple
  Result<TorchPickle> r = ParseTorchPickle(Span(pickle));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const PickleValue& t = r->values[r->root];
  ASSERT_EQ(t.items.size(), 2u);
  EXPECT_EQ(t.items[0], t.items[1]);
  EXPECT_EQ(r->values[t.items[0]].items.size(), 1u);
}

TEST(TorchPickle, TensorPathsWalkDictsListsAndTuples) {
  const std::string tensor = pk::Tensor(pk::Storage("FloatStorage", "0", 4), 0, {4}, {1});
  // {"m": {3: [t, (None, t)]}, "": t}: int keys in decimal, an empty key.
  const std::string pickle = pk::Pickle(
      "}(" + pk::Str("m") + "}K\x03](" + tensor + "q\x09N" + "h\x09\x86" + "es" + pk::Str("") +
      "h\x09" + "u");
  Result<TorchPickle> r = ParseTorchPickle(Span(pickle));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const std::vector<TensorPath> paths = TensorPaths(*r);
  ASSERT_EQ(paths.size(), 3u);
  EXPECT_EQ(paths[0].path, "m/3/0");
  EXPECT_EQ(paths[1].path, "m/3/1/1");
  EXPECT_EQ(paths[2].path, "");
  EXPECT_EQ(paths[0].tensor, paths[2].tensor);  // the same tensor reached twice
  // A tensor as the root.
  r = ParseTorchPickle(Span(pk::Pickle(tensor)));
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(TensorPaths(*r).size(), 1u);
  EXPECT_EQ(TensorPaths(*r)[0].path, "");
  // A hand-built graph with a cycle does not hang TensorPaths.
  TorchPickle cyclic;
  cyclic.values.resize(2);
  cyclic.values[0].kind = PickleValue::Kind::kList;
  cyclic.values[0].items = {0, 1, 7};
  cyclic.values[1].kind = PickleValue::Kind::kTensor;
  cyclic.tensors.resize(1);
  ASSERT_EQ(TensorPaths(cyclic).size(), 1u);
  EXPECT_EQ(TensorPaths(cyclic)[0].path, "1");
}

TEST(TorchPickle, Parameters) {
  const std::string pickle = pk::Pickle(
      pk::Global("torch._utils", "_rebuild_parameter") + "(" +
      pk::Tensor(pk::Storage("FloatStorage", "0", 4), 0, {4}, {1}) + "\x88" +
      pk::kEmptyOrderedDict + "tR");
  Result<TorchPickle> r = ParseTorchPickle(Span(pickle));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->tensors.size(), 1u);
  EXPECT_TRUE(r->tensors[0].parameter);
  EXPECT_TRUE(r->tensors[0].requires_grad);
}

TEST(TorchPickle, Limits) {
  // Deep nesting is no limit (the walk is iterative): 100,000 nested lists, with a tensor at
  // the bottom whose path is cut at 4097 bytes (too long to name a tensor).
  std::string deep = "\x80\x02";
  for (int i = 0; i < 100000; ++i) deep += "]";
  deep += pk::Tensor(pk::Storage("FloatStorage", "0", 1), 0, {}, {});
  for (int i = 0; i < 100000; ++i) deep += "a";
  deep += ".";
  Result<TorchPickle> r = ParseTorchPickle(Span(deep));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<TensorPath> paths = TensorPaths(*r);
  ASSERT_EQ(paths.size(), 1u);
  EXPECT_EQ(paths[0].path.size(), 4097u);
  EXPECT_EQ(paths[0].path.substr(0, 6), "0/0/0/");
  // Too many values, stack entries, memo entries or MARKs.
  PickleLimits few;
  few.max_values = 10;
  std::string many = "\x80\x02(";
  for (int i = 0; i < 20; ++i) many += "N";
  many += "t.";
  EXPECT_EQ(PickleCode(many, few), ErrorCode::kLimitExceeded);
  std::string memo = "\x80\x02N";
  for (int i = 0; i < 20; ++i) memo += "q" + std::string(1, char(i));
  EXPECT_EQ(PickleCode(memo + ".", few), ErrorCode::kLimitExceeded);
  EXPECT_EQ(PickleCode("\x80\x02" + std::string(20, '(') + "N.", few), ErrorCode::kLimitExceeded);
  std::string dups = "\x80\x02N";
  for (int i = 0; i < 20; ++i) dups += "2";
  EXPECT_EQ(PickleCode(dups + ".", few), ErrorCode::kLimitExceeded);
  // Declared lengths beyond the input are refused before anything is allocated.
  for (const std::string& op : {"\x8e"s, "\x96"s, "\x8d"s, "\x95"s})
    EXPECT_EQ(PickleCode("\x80\x02" + op + LE64(uint64_t(1) << 62) + "."), ErrorCode::kPickleMalformed);
  // Sharing that would expand exponentially as a tree: a tuple holding the previous one twice,
  // 60 times, over a tensor. Each container is walked once: 2 paths per level, not 2^60.
  std::string wide = "\x80\x02" + pk::Tensor(pk::Storage("FloatStorage", "0", 1), 0, {}, {}) + "q\x00"s;
  for (int i = 0; i < 60; ++i) wide += "h\x00\x86q\x00"s;
  wide += ".";
  r = ParseTorchPickle(Span(wide));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(TensorPaths(*r).size(), 2u);
  // The paths listed stop at max_bytes.
  std::string list = "\x80\x02](" + pk::Tensor(pk::Storage("FloatStorage", "0", 1), 0, {}, {}) + "q\x00"s;
  for (int i = 0; i < 999; ++i) list += "h\x00"s;
  list += "e.";
  r = ParseTorchPickle(Span(list));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(TensorPaths(*r).size(), 1000u);
  // Each path counts its bytes plus 64: "0".."9" take 650, then 6 of 2 bytes reach 1046.
  EXPECT_EQ(TensorPaths(*r, 1000).size(), 16u);
}

TEST(TorchPickle, CyclesAreFine) {
  // A list that holds itself (Python loads it), and an object whose state holds a bound method
  // of itself (OneCycleLR's anneal_func): the walk enters each container once.
  const std::string tensor = pk::Tensor(pk::Storage("FloatStorage", "0", 4), 0, {4}, {1});
  Result<TorchPickle> r = ParseTorchPickle(Span(pk::Pickle("]q\x00(h\x00"s + tensor + "e")));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<TensorPath> paths = TensorPaths(*r);
  ASSERT_EQ(paths.size(), 1u);
  EXPECT_EQ(paths[0].path, "1");
  const std::string pickle = pk::Pickle(
      pk::Global("sched", "OneCycle") + ")\x81q\x01}(" + pk::Str("w") + tensor + pk::Str("f") +
      pk::Global("__builtin__", "getattr") + "h\x01" + pk::Str("_cos") + "\x86R" + "ub");
  r = ParseTorchPickle(Span(pickle));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  paths = TensorPaths(*r);
  ASSERT_EQ(paths.size(), 1u);
  EXPECT_EQ(paths[0].path, "w");
}

// ---- whole files ----

TEST(TorchFile, ReadsAHandmadeFile) {
  const std::vector<uint8_t> file = TorchZip(OneTensorPickle(), kOneStorage, "my_ckpt");
  Result<TorchFile> f = ParseTorchFile(ByteSpan(file));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->archive_name, "my_ckpt");
  ASSERT_EQ(f->storage_entries.size(), 1u);
  EXPECT_EQ(f->storage_entries[0]->name, "my_ckpt/data/0");
  // Moving the result keeps storage_entries valid.
  TorchFile moved = std::move(*f);
  EXPECT_EQ(moved.storage_entries[0], &moved.zip.entries[1]);
}

TEST(TorchFile, RefusesStoragesThatDoNotMatchTheirEntries) {
  Result<TorchFile> r = ParseTorchFile(ByteSpan(TorchZip(OneTensorPickle(), {{"0", std::string(12, 'x')}})));
  EXPECT_EQ(r.status().code(), ErrorCode::kTorchStorageMismatch);
  EXPECT_MESSAGE_HAS(r.status(), "archive/data/0");
  EXPECT_MESSAGE_HAS(r.status(), "16 bytes");
  r = ParseTorchFile(ByteSpan(TorchZip(OneTensorPickle(), {{"0", std::string(20, 'x')}})));
  EXPECT_EQ(r.status().code(), ErrorCode::kTorchStorageMismatch);
  r = ParseTorchFile(ByteSpan(TorchZip(OneTensorPickle(), {{"1", std::string(16, 'x')}})));
  EXPECT_EQ(r.status().code(), ErrorCode::kTorchStorageMismatch);
  EXPECT_MESSAGE_HAS(r.status(), "no entry");
  // A view past its storage, inside the file.
  const std::string past = pk::Pickle(pk::Tensor(pk::Storage("FloatStorage", "0", 4), 1, {4}, {1}));
  r = ParseTorchFile(ByteSpan(TorchZip(past, kOneStorage)));
  EXPECT_EQ(r.status().code(), ErrorCode::kTorchStorageMismatch);
  EXPECT_MESSAGE_HAS(r.status(), "archive/data.pkl: pickle at offset");
}

TEST(TorchFile, ByteOrder) {
  EXPECT_TRUE(ParseTorchFile(ByteSpan(TorchZip(OneTensorPickle(), kOneStorage, "a", {},
                                               {{"a/byteorder", "little"}})))
                  .ok());
  Result<TorchFile> r = ParseTorchFile(
      ByteSpan(TorchZip(OneTensorPickle(), kOneStorage, "a", {}, {{"a/byteorder", "big"}})));
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  EXPECT_MESSAGE_HAS(r.status(), "big-endian");
  r = ParseTorchFile(
      ByteSpan(TorchZip(OneTensorPickle(), kOneStorage, "a", {}, {{"a/byteorder", "middle"}})));
  EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
}

TEST(TorchFile, RefusesWhatIsNotATorchArchive) {
  Result<TorchFile> r = ParseTorchFile(Span(std::string("hello world, not a zip")));
  EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
  EXPECT_MESSAGE_HAS(r.status(), "not a torch.save file");
  r = ParseTorchFile(ByteSpan());
  EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
  // Legacy: the fixture, and the magic alone.
  r = ParseTorchFile(ByteSpan(ReadFile(FixtureDir() / "legacy.pt")));
  EXPECT_EQ(r.status().code(), ErrorCode::kTorchLegacyFormat);
  r = ParseTorchFile(Span(std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.")));
  EXPECT_EQ(r.status().code(), ErrorCode::kTorchLegacyFormat);
  // A zip without data.pkl, with two, with an entry outside the archive folder.
  r = ParseTorchFile(Span(BuildZip({{"a/version", "3\n"}}).bytes));
  EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
  EXPECT_MESSAGE_HAS(r.status(), "data.pkl");
  r = ParseTorchFile(ByteSpan(
      TorchZip(OneTensorPickle(), kOneStorage, "a", {}, {{"b/data.pkl", OneTensorPickle()}})));
  EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
  EXPECT_MESSAGE_HAS(r.status(), "two data.pkl");
  r = ParseTorchFile(
      ByteSpan(TorchZip(OneTensorPickle(), kOneStorage, "a", {}, {{"elsewhere", ""}})));
  EXPECT_EQ(r.status().code(), ErrorCode::kZipMalformed);
  EXPECT_MESSAGE_HAS(r.status(), "\"elsewhere\"");
  // Errors of the zip and the pickle come through.
  ZipOptions compressed;
  compressed.method = 8;
  EXPECT_EQ(ParseTorchFile(ByteSpan(TorchZip(OneTensorPickle(), kOneStorage, "a", compressed)))
                .status()
                .code(),
            ErrorCode::kUnsupported);
  r = ParseTorchFile(ByteSpan(TorchZip("\x80\x06N.", {})));
  EXPECT_EQ(r.status().code(), ErrorCode::kUnsupported);
  EXPECT_MESSAGE_HAS(r.status(), "protocol 6");
  std::vector<uint8_t> bad_crc = TorchZip(OneTensorPickle(), kOneStorage);
  Result<ZipArchive> zip = ParseZip(ByteSpan(bad_crc));
  ASSERT_TRUE(zip.ok());
  bad_crc[zip->Find("archive/data/0")->data_offset] ^= 0x40;
  r = ParseTorchFile(ByteSpan(bad_crc));
  EXPECT_EQ(r.status().code(), ErrorCode::kZipChecksum);
  EXPECT_MESSAGE_HAS(r.status(), "archive/data/0");
  EXPECT_TRUE(ParseTorchFile(ByteSpan(bad_crc), /*check_crcs=*/false).ok());
}

// Found by fuzz_torch: a zip whose byte 257 starts "ustar" (here inside a storage key) was
// taken for a legacy tar file.
TEST(TorchFile, LegacyMarksInsideAZipDoNotMatter) {
  const std::string key(300, 'k');
  std::string pickle = pk::Pickle(pk::Tensor(pk::Storage("FloatStorage", key, 1), 0, {}, {}));
  std::vector<uint8_t> file = TorchZip(pickle, {{key, std::string(4, '\0')}});
  // Put "ustar" in the key at file offset 257.
  Result<ZipArchive> zip = ParseZip(ByteSpan(file));
  ASSERT_TRUE(zip.ok());
  const size_t key_at = pickle.find(key) + zip->entries[0].data_offset;
  ASSERT_LT(key_at, 257u);
  std::string marked = key;
  marked.replace(257 - key_at, 5, "ustar");
  pickle = pk::Pickle(pk::Tensor(pk::Storage("FloatStorage", marked, 1), 0, {}, {}));
  file = TorchZip(pickle, {{marked, std::string(4, '\0')}});
  ASSERT_EQ(std::string(file.begin() + 257, file.begin() + 262), "ustar");
  Result<TorchFile> f = ParseTorchFile(ByteSpan(file));
  EXPECT_TRUE(f.ok()) << f.status().ToString();
}

TEST(TorchFile, NumpyFixturesNameTheirGlobals) {
  for (const char* name : {"numpy.pt", "numpy_rng.pt"}) {
    Result<TorchFile> r = ParseTorchFile(ByteSpan(ReadFile(FixtureDir() / name)));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    const auto& g = r->pickle.opaque_globals;
    EXPECT_NE(std::find(g.begin(), g.end(), "numpy.core.multiarray._reconstruct"), g.end()) << name;
  }
}

}  // namespace
}  // namespace ckz
