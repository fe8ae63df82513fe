// A whole torch.save file: the zip, its archive folder, data.pkl and one entry per storage.
// Storage bytes are never read here (only ParseZip's CRC-32 check reads them).
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ckz/torch.h"
#include "common/bytes.h"
#include "io/torch_internal.h"

namespace ckz {
namespace {

Status Malformed(const std::string& what) { return Status(ErrorCode::kZipMalformed, what); }

// torch < 1.6 wrote a pickle stream starting with the pickled magic number
// 0x1950a86a20f9469cfc6c (PROTO n, [FRAME], LONG1 10 bytes); older versions a tar archive.
bool IsLegacyTorch(ByteSpan file) {
  static const uint8_t kMagic[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                   0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  const uint8_t* d = file.data;
  size_t pos = 0;
  if (file.size >= 2 && d[0] == 0x80 && d[1] <= 5) {
    pos = 2;
    if (file.size >= pos + 9 && d[pos] == 0x95) pos += 9;  // FRAME (protocol 4+)
    if (file.size >= pos + sizeof kMagic && std::memcmp(d + pos, kMagic, sizeof kMagic) == 0)
      return true;
  }
  return file.size >= 262 && std::memcmp(d + 257, "ustar", 5) == 0;
}

std::string FirstBytes(ByteSpan file) {
  std::string out;
  for (size_t i = 0; i < file.size && i < 4; ++i) out += (i ? " " : "") + Hex(file.data[i], 2);
  return out.empty() ? "nothing (empty file)" : out;
}

}  // namespace

Result<TorchFile> ParseTorchFile(ByteSpan file, bool check_crcs) {
  // torch.save's archive starts with the local header of its first entry (data.pkl). Only a
  // file that does not is checked for the legacy formats (whose marks, "ustar" at 257 for
  // one, could also appear inside a zip).
  if (file.size < 4 || LoadLE32(file.data) != 0x04034b50) {
    if (IsLegacyTorch(file))
      return Status(ErrorCode::kTorchLegacyFormat,
                    "a legacy (pre-1.6, non-zip) torch.save file: re-save it with torch >= 1.6 "
                    "(torch.save(torch.load(f), f) writes the zip format)");
    return Malformed("not a torch.save file: it starts with " + FirstBytes(file) +
                     ", not a zip local header (50 4b 03 04) nor a legacy torch pickle");
  }

  TorchFile out;
  Result<ZipArchive> zip = ParseZip(file, check_crcs);
  if (!zip.ok()) return zip.status();
  out.zip = std::move(*zip);

  // The archive folder: the one entry named "<folder>/data.pkl" names it.
  const ZipEntry* pickle = nullptr;
  const std::string_view suffix = "/data.pkl";
  for (const ZipEntry& e : out.zip.entries) {
    const std::string_view name = e.name;
    if (name.size() <= suffix.size() || name.substr(name.size() - suffix.size()) != suffix)
      continue;
    const std::string_view folder = name.substr(0, name.size() - suffix.size());
    if (folder.find('/') != std::string_view::npos) continue;
    if (pickle)
      return Malformed("zip entries " + QuoteBytes(pickle->name) + " and " + QuoteBytes(e.name) +
                       ": two data.pkl entries; a torch.save archive has one");
    pickle = &e;
    out.archive_name = std::string(folder);
  }
  if (!pickle)
    return Malformed("the zip archive has no '<archive>/data.pkl' entry: not a torch.save file");
  const std::string prefix = out.archive_name + "/";
  for (const ZipEntry& e : out.zip.entries)
    if (e.name.compare(0, prefix.size(), prefix) != 0)
      return Malformed("zip entry " + QuoteBytes(e.name) + " at offset " +
                       std::to_string(e.header_offset) + " is not under the archive folder " +
                       QuoteBytes(prefix));

  std::unordered_map<std::string_view, const ZipEntry*> by_name;
  by_name.reserve(out.zip.entries.size());
  for (const ZipEntry& e : out.zip.entries) by_name.emplace(e.name, &e);

  auto byteorder = by_name.find(prefix + "byteorder");
  if (byteorder != by_name.end()) {
    const ZipEntry& e = *byteorder->second;
    const std::string_view value(reinterpret_cast<const char*>(file.data + e.data_offset),
                                 size_t(e.size));
    if (value == "big")
      return Status(ErrorCode::kUnsupported,
                    "zip entry " + QuoteBytes(e.name) +
                        ": a big-endian archive; only little-endian storages are supported");
    if (value != "little")
      return Malformed("zip entry " + QuoteBytes(e.name) + " at offset " +
                       std::to_string(e.data_offset) + " holds " + QuoteBytes(value, 32) +
                       ", not \"little\" or \"big\"");
  }

  Result<TorchPickle> parsed = ParseTorchPickle(file.subspan(pickle->data_offset, pickle->size));
  if (!parsed.ok()) return parsed.status().WithContext(pickle->name);
  out.pickle = std::move(*parsed);

  out.storage_entries.reserve(out.pickle.storages.size());
  for (const TorchStorage& s : out.pickle.storages) {
    const std::string name = prefix + "data/" + s.key;
    const std::string what = "storage '" + s.key + "' (" + std::to_string(s.numel) + " x " +
                             DTypeName(s.dtype) + ")";
    auto it = by_name.find(name);
    if (it == by_name.end())
      return Status(ErrorCode::kTorchStorageMismatch,
                    what + ": the archive has no entry " + QuoteBytes(name));
    const uint64_t bytes = s.numel * DTypeSize(s.dtype);  // < 2^63: checked by the unpickler
    if (it->second->size != bytes)
      return Status(ErrorCode::kTorchStorageMismatch,
                    what + " needs " + std::to_string(bytes) + " bytes; zip entry " +
                        QuoteBytes(name) + " at offset " +
                        std::to_string(it->second->data_offset) + " holds " +
                        std::to_string(it->second->size));
    out.storage_entries.push_back(it->second);
  }
  // Moved, not copied: storage_entries point into out.zip.entries, whose buffer a move keeps.
  return Result<TorchFile>(std::move(out));
}

}  // namespace ckz
