// Untrusted surface: PyTorch .pt files (ckz/torch.h): ParseTorchFile (zip reader, archive
// layout, storages), ParseTorchPickle and TensorPaths. Each input is tried
//  1. as a whole file, without and with CRC checks (mutations rarely keep CRCs right, so the
//     unchecked parse is what reaches the pickle inside a mutated zip);
//  2. as a pickle on its own (data.pkl seeds reach the unpickler directly);
//  3. when the pickle parses, inside a zip built here around it, with one zero-filled entry of
//     the right size per storage: that file must parse, to the same pickle.
// Besides "no crash, no hang, no leak, no UB", what parses must satisfy what the parsers
// promise (checked with __builtin_trap via FUZZ_CHECK): zip entries inside the file, sorted,
// not overlapping each other or the central directory, named validly and uniquely, every
// recorded CRC offset holding the entry's CRC-32 (and the data matching it when checked);
// pickle indices in range, opaque values with their six parts, opaque globals listed once,
// tensor views inside their storage's numel, storages with a CKZ dtype, unique keys and a
// byte size below 2^63; TensorPaths within its byte budget and every path cut at 4097 bytes; every storage mapped to the entry
// "<archive>/data/<key>" of exactly numel x dtype size bytes; errors with an expected code
// and a message; CRC checking never turning a failure into a success.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "ckz/torch.h"
#include "common/bytes.h"
#include "io/torch_internal.h"
#include "fuzz_check.h"

namespace {

using ckz::ErrorCode;

bool PickleCode(ErrorCode c) {
  return c == ErrorCode::kPickleMalformed || c == ErrorCode::kTorchStorageMismatch ||
         c == ErrorCode::kUnsupportedDtype || c == ErrorCode::kUnsupported ||
         c == ErrorCode::kLimitExceeded;
}
bool FileCode(ErrorCode c) {
  return PickleCode(c) || c == ErrorCode::kZipMalformed || c == ErrorCode::kZipChecksum ||
         c == ErrorCode::kUnsupported || c == ErrorCode::kTorchLegacyFormat;
}

void CheckZip(ckz::ByteSpan file, const ckz::ZipArchive& zip, bool crcs_checked) {
  std::set<std::string> names;
  uint64_t previous_end = 0;
  for (const ckz::ZipEntry& e : zip.entries) {
    FUZZ_CHECK(ckz::ZipNameProblem(e.name).empty());
    FUZZ_CHECK(names.insert(e.name).second);
    FUZZ_CHECK(e.header_offset >= previous_end);
    FUZZ_CHECK(e.data_offset >= e.header_offset + 30 + e.name.size());
    FUZZ_CHECK(e.data_offset <= file.size && e.size <= file.size - e.data_offset);
    previous_end = e.data_offset + e.size;
    FUZZ_CHECK(!e.crc_offsets.empty() && e.crc_offsets.size() <= 3);
    for (uint64_t off : e.crc_offsets) {
      FUZZ_CHECK(off <= file.size - 4);
      FUZZ_CHECK(ckz::LoadLE32(file.data + off) == e.crc32);
      // Not inside the data.
      FUZZ_CHECK(off + 4 <= e.data_offset || off >= e.data_offset + e.size);
    }
    // The central directory's copy comes last, after every entry's data.
    FUZZ_CHECK(e.crc_offsets.back() >= e.data_offset + e.size);
    if (crcs_checked) FUZZ_CHECK(ckz::ZipCrc32(file.subspan(e.data_offset, e.size)) == e.crc32);
    FUZZ_CHECK(zip.Find(e.name) == &e);
  }
  if (zip.entries.size() > 64) return;
  for (const ckz::ZipEntry& e : zip.entries)
    for (uint64_t off : e.crc_offsets)
      for (const ckz::ZipEntry& other : zip.entries)  // no CRC slot in another entry's data
        FUZZ_CHECK(off + 4 <= other.data_offset || off >= other.data_offset + other.size);
}

void CheckPickleResult(const ckz::TorchPickle& p, uint64_t max_values) {
  const size_t n = p.values.size();
  FUZZ_CHECK(n > 0 && n <= max_values);
  FUZZ_CHECK(p.root < n);
  for (const ckz::PickleValue& v : p.values) {
    for (uint32_t item : v.items) FUZZ_CHECK(item < n);
    if (v.kind == ckz::PickleValue::Kind::kTensor) FUZZ_CHECK(v.tensor < p.tensors.size());
    if (v.kind == ckz::PickleValue::Kind::kDict) FUZZ_CHECK(v.items.size() % 2 == 0);
    if (v.kind == ckz::PickleValue::Kind::kOpaque)
      FUZZ_CHECK(v.items.size() == ckz::PickleValue::kOpaqueSlots);
  }
  std::set<std::string> opaque(p.opaque_globals.begin(), p.opaque_globals.end());
  FUZZ_CHECK(opaque.size() == p.opaque_globals.size());
  std::set<std::string> keys;
  for (const ckz::TorchStorage& s : p.storages) {
    FUZZ_CHECK(ckz::DTypeSize(s.dtype) != 0);
    FUZZ_CHECK(!s.key.empty() && s.key.find('/') == std::string::npos);
    FUZZ_CHECK(keys.insert(s.key).second);
    FUZZ_CHECK(s.numel <= (uint64_t{1} << 63) / ckz::DTypeSize(s.dtype));
  }
  for (const ckz::TorchTensor& t : p.tensors) {
    FUZZ_CHECK(t.storage < p.storages.size());
    FUZZ_CHECK(t.shape.size() == t.stride.size());
    const uint64_t numel = p.storages[t.storage].numel;
    bool empty = false;
    unsigned __int128 last = t.storage_offset;
    for (size_t i = 0; i < t.shape.size(); ++i) {
      if (t.shape[i] == 0) empty = true;
      else last += (unsigned __int128)(t.shape[i] - 1) * t.stride[i];
    }
    if (empty)
      FUZZ_CHECK(t.storage_offset <= numel);
    else
      FUZZ_CHECK(last < numel);
  }
  constexpr uint64_t kBudget = 1 << 20;
  const std::vector<ckz::TensorPath> paths = ckz::TensorPaths(p, kBudget);
  uint64_t path_bytes = 0;
  for (const ckz::TensorPath& tp : paths) {
    FUZZ_CHECK(tp.tensor < p.tensors.size());
    FUZZ_CHECK(tp.path.size() <= 4097);
    FUZZ_CHECK(path_bytes < kBudget);  // listed only while under the budget
    path_bytes += 64 + tp.path.size();
  }
}

// A zip of stored entries without data descriptors (a layout torch.save does not write, so
// the parser's other branch is exercised too).
std::vector<uint8_t> BuildZip(const std::vector<std::pair<std::string, ckz::ByteSpan>>& entries) {
  std::vector<uint8_t> out;
  auto put16 = [&](uint16_t v) { out.push_back(uint8_t(v)), out.push_back(uint8_t(v >> 8)); };
  auto put32 = [&](uint32_t v) { put16(uint16_t(v)), put16(uint16_t(v >> 16)); };
  auto put = [&](const void* p, size_t n) {
    out.insert(out.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
  };
  std::vector<uint32_t> offsets, crcs;
  for (const auto& [name, data] : entries) {
    offsets.push_back(uint32_t(out.size()));
    crcs.push_back(ckz::ZipCrc32(data));
    put32(0x04034b50), put16(20), put16(0x800), put16(0), put32(0), put32(crcs.back());
    put32(uint32_t(data.size)), put32(uint32_t(data.size));
    put16(uint16_t(name.size())), put16(0), put(name.data(), name.size());
    put(data.data, data.size);
  }
  const uint32_t cd = uint32_t(out.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& [name, data] = entries[i];
    put32(0x02014b50), put16(20), put16(20), put16(0x800), put16(0), put32(0), put32(crcs[i]);
    put32(uint32_t(data.size)), put32(uint32_t(data.size));
    put16(uint16_t(name.size())), put16(0), put16(0), put16(0), put16(0), put32(0);
    put32(offsets[i]), put(name.data(), name.size());
  }
  const uint32_t cd_size = uint32_t(out.size()) - cd;
  put32(0x06054b50), put16(0), put16(0), put16(uint16_t(entries.size()));
  put16(uint16_t(entries.size())), put32(cd_size), put32(cd), put16(0);
  return out;
}

void CheckTorchFile(ckz::ByteSpan file, const ckz::TorchFile& f, bool crcs_checked) {
  CheckZip(file, f.zip, crcs_checked);
  CheckPickleResult(f.pickle, ckz::PickleLimits{}.max_values);
  FUZZ_CHECK(!f.archive_name.empty() && f.archive_name.find('/') == std::string::npos);
  for (const ckz::ZipEntry& e : f.zip.entries)
    FUZZ_CHECK(e.name.compare(0, f.archive_name.size() + 1, f.archive_name + "/") == 0);
  FUZZ_CHECK(f.zip.Find(f.archive_name + "/data.pkl") != nullptr);
  FUZZ_CHECK(f.storage_entries.size() == f.pickle.storages.size());
  for (size_t i = 0; i < f.storage_entries.size(); ++i) {
    const ckz::ZipEntry* e = f.storage_entries[i];
    const ckz::TorchStorage& s = f.pickle.storages[i];
    FUZZ_CHECK(e >= f.zip.entries.data() && e < f.zip.entries.data() + f.zip.entries.size());
    FUZZ_CHECK(e->name == f.archive_name + "/data/" + s.key);
    FUZZ_CHECK(e->size == s.numel * ckz::DTypeSize(s.dtype));
  }
}

void CheckFile(ckz::ByteSpan file) {
  ckz::Result<ckz::TorchFile> unchecked = ckz::ParseTorchFile(file, /*check_crcs=*/false);
  ckz::Result<ckz::TorchFile> checked = ckz::ParseTorchFile(file, /*check_crcs=*/true);
  if (checked.ok()) FUZZ_CHECK(unchecked.ok());
  if (!unchecked.ok()) {
    FUZZ_CHECK(FileCode(unchecked.status().code()));
    FUZZ_CHECK(!unchecked.status().message().empty());
    FUZZ_CHECK(!checked.ok());
    FUZZ_CHECK(checked.status().code() == unchecked.status().code() ||
               checked.status().code() == ErrorCode::kZipChecksum);
  } else {
    CheckTorchFile(file, *unchecked, false);
    if (checked.ok()) {
      CheckTorchFile(file, *checked, true);
      FUZZ_CHECK(checked->pickle.values.size() == unchecked->pickle.values.size());
    } else {
      FUZZ_CHECK(checked.status().code() == ErrorCode::kZipChecksum);
    }
  }
  // The zip alone agrees with the file's zip.
  ckz::Result<ckz::ZipArchive> zip = ckz::ParseZip(file, /*check_crcs=*/false);
  if (!zip.ok()) {
    FUZZ_CHECK(zip.status().code() == ErrorCode::kZipMalformed ||
               zip.status().code() == ErrorCode::kUnsupported);
    FUZZ_CHECK(!unchecked.ok());
  } else {
    CheckZip(file, *zip, false);
    if (unchecked.ok()) FUZZ_CHECK(unchecked->zip.entries.size() == zip->entries.size());
  }
}

void CheckPickle(ckz::ByteSpan bytes) {
  ckz::PickleLimits limits;
  limits.max_values = 1 << 16;
  ckz::Result<ckz::TorchPickle> p = ckz::ParseTorchPickle(bytes, limits);
  if (!p.ok()) {
    FUZZ_CHECK(PickleCode(p.status().code()));
    FUZZ_CHECK(!p.status().message().empty());
    return;
  }
  CheckPickleResult(*p, limits.max_values);
  // Deterministic.
  ckz::Result<ckz::TorchPickle> again = ckz::ParseTorchPickle(bytes, limits);
  FUZZ_CHECK(again.ok() && again->values.size() == p->values.size() &&
             again->tensors.size() == p->tensors.size() && again->root == p->root);

  // Inside a zip with storages of the right sizes, the file parses to the same pickle.
  uint64_t total = 0;
  for (const ckz::TorchStorage& s : p->storages) {
    total += s.numel * ckz::DTypeSize(s.dtype);
    if (total > (1 << 16)) return;
  }
  static const std::vector<uint8_t> zeros(1 << 16, 0);
  std::vector<std::pair<std::string, ckz::ByteSpan>> entries;
  entries.push_back({"arch/data.pkl", bytes});
  for (const ckz::TorchStorage& s : p->storages)
    entries.push_back(
        {"arch/data/" + s.key, ckz::ByteSpan(zeros.data(), s.numel * ckz::DTypeSize(s.dtype))});
  const std::vector<uint8_t> file = BuildZip(entries);
  ckz::Result<ckz::TorchFile> f = ckz::ParseTorchFile(ckz::ByteSpan(file));
  if (!f.ok()) {
    std::fprintf(stderr, "synthetic zip failed: %s\n", f.status().ToString().c_str());
    FUZZ_CHECK(f.ok());
  }
  CheckTorchFile(ckz::ByteSpan(file), *f, true);
  FUZZ_CHECK(f->archive_name == "arch");
  FUZZ_CHECK(f->pickle.values.size() == p->values.size());
  FUZZ_CHECK(f->pickle.storages.size() == p->storages.size());
  FUZZ_CHECK(f->pickle.tensors.size() == p->tensors.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ckz::ByteSpan input(data, size);
  CheckFile(input);
  CheckPickle(input);
  return 0;
}
