// The zip reader of ckz/torch.h: archives of stored entries as torch.save writes them (miniz:
// zip64 end records, data descriptors after each entry, local CRC-32 and sizes 0), read as a
// pure function over the bytes. Every offset and size comes from the file, so each one is
// overflow-checked and kept inside the file before it is used; nothing is allocated for a
// declared count before the bytes that would hold it are known to exist.
#include <algorithm>
#include <string>
#include <string_view>
#include <unordered_set>

#include "ckz/torch.h"
#include "common/bytes.h"
#include "io/torch_internal.h"

namespace ckz {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;       // "PK\3\4"
constexpr uint32_t kCentralSig = 0x02014b50;     // "PK\1\2"
constexpr uint32_t kEocdSig = 0x06054b50;        // "PK\5\6"
constexpr uint32_t kZip64EocdSig = 0x06064b50;   // "PK\6\6"
constexpr uint32_t kZip64LocatorSig = 0x07064b50;  // "PK\6\7"
constexpr uint32_t kDescriptorSig = 0x08074b50;  // "PK\7\8"
constexpr uint64_t kEocdSize = 22;
constexpr uint64_t kLocatorSize = 20;
constexpr uint64_t kZip64EocdSize = 56;  // without extensible data
constexpr uint64_t kCentralSize = 46;
constexpr uint64_t kLocalSize = 30;
constexpr uint64_t kMaxComment = 0xFFFF;
constexpr uint16_t kZip64ExtraId = 0x0001;

constexpr uint16_t kFlagEncrypted = 1 << 0;
constexpr uint16_t kFlagDescriptor = 1 << 3;
constexpr uint16_t kFlagStrongEncryption = 1 << 6;

Status Malformed(const std::string& field, uint64_t offset, const std::string& what) {
  return Status(ErrorCode::kZipMalformed,
                "zip " + field + " at offset " + std::to_string(offset) + ": " + what);
}

// Whether [offset, offset + length) lies inside [0, size), without overflow.
bool Inside(uint64_t offset, uint64_t length, uint64_t size) {
  return offset <= size && length <= size - offset;
}

// The zip64 extended information extra field of a header, when it has one.
struct Extras {
  bool has_zip64 = false;
  const uint8_t* zip64 = nullptr;
  uint16_t zip64_size = 0;
};

// Extra fields are a sequence of (u16 id, u16 size, data); they must tile the area exactly.
Status ParseExtras(const uint8_t* p, uint64_t size, uint64_t file_offset, const std::string& field,
                   Extras* out) {
  uint64_t pos = 0;
  while (pos < size) {
    if (size - pos < 4)
      return Malformed(field + " extra field", file_offset + pos,
                       std::to_string(size - pos) + " bytes left, too few for a field header");
    const uint16_t id = LoadLE16(p + pos);
    const uint16_t length = LoadLE16(p + pos + 2);
    if (length > size - pos - 4)
      return Malformed(field + " extra field", file_offset + pos,
                       "field 0x" + Hex(id, 4) + " of " + std::to_string(length) +
                           " bytes runs past the end of the extra area");
    if (id == kZip64ExtraId) {
      if (out->has_zip64)
        return Malformed(field + " extra field", file_offset + pos, "a second zip64 field");
      out->has_zip64 = true;
      out->zip64 = p + pos + 4;
      out->zip64_size = length;
    }
    pos += 4 + uint64_t(length);
  }
  return Status::Ok();
}

// Reads, in zip64 order, the 8-byte values of the fields whose 32-bit value is the 0xFFFFFFFF
// sentinel (and the 4-byte disk number when its 16-bit value is 0xFFFF).
Status ReadZip64(const Extras& extras, uint64_t file_offset, const std::string& field,
                 uint64_t* size, uint64_t* compressed, uint64_t* local_offset, uint32_t* disk) {
  uint64_t* wanted[3] = {size, compressed, local_offset};
  const bool need_disk = disk && *disk == 0xFFFF;
  bool needed = need_disk;
  for (uint64_t* w : wanted) needed = needed || (w && *w == 0xFFFFFFFFu);
  if (!needed) return Status::Ok();
  if (!extras.has_zip64)
    return Malformed(field, file_offset,
                     "a size or offset is 0xFFFFFFFF but there is no zip64 extra field");
  uint64_t pos = 0;
  for (uint64_t* w : wanted) {
    if (!w || *w != 0xFFFFFFFFu) continue;
    if (extras.zip64_size - pos < 8)
      return Malformed(field, file_offset, "the zip64 extra field is too short for its values");
    *w = LoadLE64(extras.zip64 + pos);
    pos += 8;
  }
  if (need_disk) {
    if (extras.zip64_size - pos < 4)
      return Malformed(field, file_offset, "the zip64 extra field is too short for its values");
    *disk = LoadLE32(extras.zip64 + pos);
  }
  return Status::Ok();
}

// What the central directory says about one entry.
struct CentralEntry {
  std::string name;
  uint64_t cd_offset = 0;  // of the central directory header
  uint16_t flags = 0;
  uint32_t crc32 = 0;
  uint64_t size = 0;
  uint64_t header_offset = 0;
};

struct Span {
  uint64_t begin = 0, end = 0;  // local header .. end of data (and data descriptor)
  size_t entry = 0;
};

// The end of central directory record (and its zip64 counterpart): where the central
// directory is and how many entries it has.
struct EndRecord {
  uint64_t entries = 0;
  uint64_t cd_offset = 0;
  uint64_t cd_size = 0;
  uint64_t cd_end_expected = 0;  // where the record after the central directory starts
};

Status FindEndRecord(ByteSpan file, EndRecord* out) {
  const uint8_t* d = file.data;
  const uint64_t n = file.size;
  if (n < kEocdSize)
    return Malformed("end of central directory record", 0,
                     "the file is " + std::to_string(n) + " bytes, too short for a zip archive");
  // The record is 22 bytes plus a comment of up to 65535 bytes, and the comment runs to the
  // end of the file: the last signature whose comment length says so is the record.
  uint64_t eocd = UINT64_MAX;
  const uint64_t last = n - kEocdSize;
  const uint64_t lowest = last > kMaxComment ? last - kMaxComment : 0;
  for (uint64_t p = last + 1; p-- > lowest;) {
    if (LoadLE32(d + p) == kEocdSig && LoadLE16(d + p + 20) == n - kEocdSize - p) {
      eocd = p;
      break;
    }
  }
  if (eocd == UINT64_MAX)
    return Malformed("end of central directory record", lowest,
                     "not found in the last " + std::to_string(n - lowest) +
                         " bytes (not a zip archive, or truncated)");
  const uint8_t* e = d + eocd;
  const uint32_t disk = LoadLE16(e + 4), cd_disk = LoadLE16(e + 6);
  uint64_t entries_here = LoadLE16(e + 8), entries = LoadLE16(e + 10);
  uint64_t cd_size = LoadLE32(e + 12), cd_offset = LoadLE32(e + 16);
  uint64_t cd_end_expected = eocd;

  if (eocd >= kLocatorSize && LoadLE32(d + eocd - kLocatorSize) == kZip64LocatorSig) {
    const uint64_t loc = eocd - kLocatorSize;
    const uint32_t z_disk = LoadLE32(d + loc + 4);
    const uint64_t z_offset = LoadLE64(d + loc + 8);
    const uint32_t disks = LoadLE32(d + loc + 16);
    if (z_disk != 0 || disks > 1)
      return Status(ErrorCode::kUnsupported,
                    "zip64 end of central directory locator at offset " + std::to_string(loc) +
                        ": multi-disk (split) zip archives are not supported");
    if (!Inside(z_offset, kZip64EocdSize, loc))
      return Malformed("zip64 end of central directory locator", loc,
                       "the zip64 record offset " + std::to_string(z_offset) +
                           " leaves no room for the record before the locator");
    const uint8_t* z = d + z_offset;
    if (LoadLE32(z) != kZip64EocdSig)
      return Malformed("zip64 end of central directory record", z_offset,
                       "signature 0x" + Hex(LoadLE32(z), 8) + ", not 0x06064b50");
    const uint64_t record_size = LoadLE64(z + 4);
    if (record_size < kZip64EocdSize - 12 || record_size != loc - z_offset - 12)
      return Malformed("zip64 end of central directory record", z_offset,
                       "its size field " + std::to_string(record_size) +
                           " does not end it at the locator (offset " + std::to_string(loc) +
                           ")");
    const uint32_t z_this_disk = LoadLE32(z + 16), z_cd_disk = LoadLE32(z + 20);
    const uint64_t z_entries_here = LoadLE64(z + 24), z_entries = LoadLE64(z + 32);
    const uint64_t z_cd_size = LoadLE64(z + 40), z_cd_offset = LoadLE64(z + 48);
    // The 16/32-bit fields either hold the value or say "see zip64".
    auto agree = [](uint64_t small, uint64_t sentinel, uint64_t big) {
      return small == sentinel || small == big;
    };
    if (!agree(disk, 0xFFFF, z_this_disk) || !agree(cd_disk, 0xFFFF, z_cd_disk) ||
        !agree(entries_here, 0xFFFF, z_entries_here) || !agree(entries, 0xFFFF, z_entries) ||
        !agree(cd_size, 0xFFFFFFFF, z_cd_size) || !agree(cd_offset, 0xFFFFFFFF, z_cd_offset))
      return Malformed("end of central directory record", eocd,
                       "disagrees with the zip64 end of central directory record at offset " +
                           std::to_string(z_offset));
    if (z_this_disk != 0 || z_cd_disk != 0 || z_entries_here != z_entries)
      return Status(ErrorCode::kUnsupported,
                    "zip64 end of central directory record at offset " +
                        std::to_string(z_offset) +
                        ": multi-disk (split) zip archives are not supported");
    entries = z_entries;
    cd_size = z_cd_size;
    cd_offset = z_cd_offset;
    cd_end_expected = z_offset;
  } else if (disk != 0 || cd_disk != 0 || entries_here != entries) {
    return Status(ErrorCode::kUnsupported,
                  "end of central directory record at offset " + std::to_string(eocd) +
                      ": multi-disk (split) zip archives are not supported");
  }
  if (cd_offset > cd_end_expected || cd_size != cd_end_expected - cd_offset)
    return Malformed("central directory", cd_offset,
                     std::to_string(cd_size) + " bytes from offset " + std::to_string(cd_offset) +
                         " do not end where the end records start (offset " +
                         std::to_string(cd_end_expected) + ")");
  if (entries > cd_size / kCentralSize)
    return Malformed("central directory", cd_offset,
                     std::to_string(entries) + " entries cannot fit in " +
                         std::to_string(cd_size) + " bytes");
  out->entries = entries;
  out->cd_offset = cd_offset;
  out->cd_size = cd_size;
  out->cd_end_expected = cd_end_expected;
  return Status::Ok();
}

Status ParseCentralDirectory(ByteSpan file, const EndRecord& end,
                             std::vector<CentralEntry>* out) {
  const uint8_t* d = file.data;
  const uint64_t cd_end = end.cd_offset + end.cd_size;
  uint64_t pos = end.cd_offset;
  out->reserve(end.entries);  // bounded by cd_size / 46 above
  std::unordered_set<std::string> names;
  for (uint64_t i = 0; i < end.entries; ++i) {
    const std::string field = "central directory entry " + std::to_string(i);
    if (cd_end - pos < kCentralSize)
      return Malformed(field, pos, "truncated (" + std::to_string(cd_end - pos) + " bytes left)");
    const uint8_t* c = d + pos;
    if (LoadLE32(c) != kCentralSig)
      return Malformed(field, pos, "signature 0x" + Hex(LoadLE32(c), 8) + ", not 0x02014b50");
    CentralEntry entry;
    entry.cd_offset = pos;
    entry.flags = LoadLE16(c + 8);
    const uint16_t method = LoadLE16(c + 10);
    entry.crc32 = LoadLE32(c + 16);
    uint64_t compressed = LoadLE32(c + 20);
    uint64_t size = LoadLE32(c + 24);
    const uint16_t name_length = LoadLE16(c + 28);
    const uint16_t extra_length = LoadLE16(c + 30);
    const uint16_t comment_length = LoadLE16(c + 32);
    uint32_t disk = LoadLE16(c + 34);
    uint64_t header_offset = LoadLE32(c + 42);
    const uint64_t total = kCentralSize + name_length + extra_length + comment_length;
    if (total > cd_end - pos)
      return Malformed(field, pos,
                       "name, extra field and comment (" + std::to_string(total - kCentralSize) +
                           " bytes) run past the end of the central directory");
    entry.name.assign(reinterpret_cast<const char*>(c + kCentralSize), name_length);
    const std::string problem = ZipNameProblem(entry.name);
    if (!problem.empty())
      return Malformed(field + " name " + QuoteBytes(entry.name), pos + kCentralSize, problem);
    const std::string named = "entry " + QuoteBytes(entry.name);
    if (entry.flags & (kFlagEncrypted | kFlagStrongEncryption))
      return Status(ErrorCode::kUnsupported, "zip " + named + " at offset " +
                                                 std::to_string(pos) +
                                                 ": encrypted zip entries are not supported");
    if (method != 0)
      return Status(ErrorCode::kUnsupported,
                    "zip " + named + " at offset " + std::to_string(pos) +
                        ": compressed zip entries are not supported (compression method " +
                        std::to_string(method) + "; torch.save stores entries uncompressed)");
    Extras extras;
    CKZ_RETURN_IF_ERROR(ParseExtras(c + kCentralSize + name_length, extra_length,
                                    pos + kCentralSize + name_length,
                                    "central directory " + named, &extras));
    CKZ_RETURN_IF_ERROR(ReadZip64(extras, pos, "central directory " + named, &size, &compressed,
                                  &header_offset, &disk));
    if (disk != 0)
      return Status(ErrorCode::kUnsupported,
                    "zip " + named + " at offset " + std::to_string(pos) +
                        ": multi-disk (split) zip archives are not supported");
    if (compressed != size)
      return Malformed("central directory " + named, pos,
                       "a stored entry's compressed size " + std::to_string(compressed) +
                           " differs from its size " + std::to_string(size));
    if (!names.insert(entry.name).second)
      return Malformed("central directory " + named, pos, "the name is used twice");
    entry.size = size;
    entry.header_offset = header_offset;
    out->push_back(std::move(entry));
    pos += total;
  }
  if (pos != cd_end)
    return Malformed("central directory", pos,
                     std::to_string(cd_end - pos) + " bytes after its last entry");
  return Status::Ok();
}

// Local header, data and data descriptor of one entry, checked against the central directory.
Status ParseLocal(ByteSpan file, const CentralEntry& c, ZipEntry* out, Span* span) {
  const uint8_t* d = file.data;
  const uint64_t n = file.size;
  const std::string field = "local header of entry " + QuoteBytes(c.name);
  const uint64_t h = c.header_offset;
  if (!Inside(h, kLocalSize, n))
    return Malformed(field, h, "the header does not fit in the file (" + std::to_string(n) +
                                   " bytes)");
  const uint8_t* l = d + h;
  if (LoadLE32(l) != kLocalSig)
    return Malformed(field, h, "signature 0x" + Hex(LoadLE32(l), 8) + ", not 0x04034b50");
  const uint16_t flags = LoadLE16(l + 6);
  const uint16_t method = LoadLE16(l + 8);
  const uint32_t crc = LoadLE32(l + 14);
  uint64_t compressed = LoadLE32(l + 18);
  uint64_t size = LoadLE32(l + 22);
  const uint16_t name_length = LoadLE16(l + 26);
  const uint16_t extra_length = LoadLE16(l + 28);
  if (!Inside(h + kLocalSize, uint64_t(name_length) + extra_length, n))
    return Malformed(field, h, "name and extra field run past the end of the file");
  if (std::string_view(reinterpret_cast<const char*>(l + kLocalSize), name_length) != c.name)
    return Malformed(field, h,
                     "names " +
                         QuoteBytes(std::string(reinterpret_cast<const char*>(l + kLocalSize),
                                                name_length)) +
                         ", not the central directory's name");
  const uint16_t significant = kFlagEncrypted | kFlagDescriptor | kFlagStrongEncryption;
  if ((flags & significant) != (c.flags & significant))
    return Malformed(field, h,
                     "flags 0x" + Hex(flags, 4) + " disagree with the central directory's 0x" +
                         Hex(c.flags, 4));
  if (method != 0)
    return Malformed(field, h,
                     "compression method " + std::to_string(method) +
                         " disagrees with the central directory's 0 (stored)");
  Extras extras;
  CKZ_RETURN_IF_ERROR(ParseExtras(l + kLocalSize + name_length, extra_length,
                                  h + kLocalSize + name_length, field, &extras));
  CKZ_RETURN_IF_ERROR(ReadZip64(extras, h, field, &size, &compressed, nullptr, nullptr));
  const uint64_t data_offset = h + kLocalSize + name_length + extra_length;
  if (!Inside(data_offset, c.size, n))
    return Malformed("data of entry " + QuoteBytes(c.name), data_offset,
                     std::to_string(c.size) + " bytes run past the end of the file (" +
                         std::to_string(n) + " bytes)");
  const bool descriptor = flags & kFlagDescriptor;
  // Without a data descriptor the local header holds the CRC and sizes; with one it may
  // hold zeros instead (torch.save does), or the values.
  const auto ok_value = [&](uint64_t local, uint64_t central) {
    return local == central || (descriptor && local == 0);
  };
  if (!ok_value(crc, c.crc32))
    return Malformed(field, h,
                     "CRC-32 0x" + Hex(crc, 8) + " disagrees with the central directory's 0x" +
                         Hex(c.crc32, 8));
  if (!ok_value(size, c.size) || !ok_value(compressed, c.size))
    return Malformed(field, h,
                     "sizes " + std::to_string(compressed) + "/" + std::to_string(size) +
                         " disagree with the central directory's " + std::to_string(c.size));

  out->name = c.name;
  out->header_offset = h;
  out->data_offset = data_offset;
  out->size = c.size;
  out->crc32 = c.crc32;
  if (!descriptor || crc != 0) out->crc_offsets.push_back(h + 14);
  uint64_t end = data_offset + c.size;
  if (descriptor) {
    // Optional signature, CRC-32, then both sizes in 4 bytes, or 8 in zip64 (a local zip64
    // extra field says which; the other width is tried too).
    const int first_width = extras.has_zip64 ? 8 : 4;
    bool found = false;
    for (int width : {first_width, 12 - first_width}) {
      for (bool signature : {true, false}) {
        const uint64_t length = (signature ? 4 : 0) + 4 + 2 * uint64_t(width);
        if (!Inside(end, length, n)) continue;
        const uint8_t* p = d + end;
        if (signature) {
          if (LoadLE32(p) != kDescriptorSig) continue;
          p += 4;
        }
        const uint64_t s1 = width == 8 ? LoadLE64(p + 4) : LoadLE32(p + 4);
        const uint64_t s2 = width == 8 ? LoadLE64(p + 4 + width) : LoadLE32(p + 4 + width);
        if (LoadLE32(p) != c.crc32 || s1 != c.size || s2 != c.size) continue;
        out->crc_offsets.push_back(end + (signature ? 4 : 0));
        end += length;
        found = true;
        break;
      }
      if (found) break;
    }
    if (!found)
      return Malformed("data descriptor of entry " + QuoteBytes(c.name), end,
                       "no data descriptor with the central directory's CRC-32 0x" +
                           Hex(c.crc32, 8) + " and size " + std::to_string(c.size) +
                           " follows the data");
  }
  out->crc_offsets.push_back(c.cd_offset + 16);
  span->begin = h;
  span->end = end;
  return Status::Ok();
}

}  // namespace

const ZipEntry* ZipArchive::Find(std::string_view name) const {
  for (const ZipEntry& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

Result<ZipArchive> ParseZip(ByteSpan file, bool check_crcs) {
  EndRecord end;
  CKZ_RETURN_IF_ERROR(FindEndRecord(file, &end));
  std::vector<CentralEntry> central;
  CKZ_RETURN_IF_ERROR(ParseCentralDirectory(file, end, &central));

  ZipArchive archive;
  archive.entries.resize(central.size());
  std::vector<Span> spans(central.size());
  for (size_t i = 0; i < central.size(); ++i) {
    CKZ_RETURN_IF_ERROR(ParseLocal(file, central[i], &archive.entries[i], &spans[i]));
    spans[i].entry = i;
  }
  // Entries (local header, data, descriptor) must not overlap each other or the central
  // directory.
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin; });
  for (size_t i = 0; i < spans.size(); ++i) {
    const uint64_t limit = i + 1 < spans.size() ? spans[i + 1].begin : end.cd_offset;
    if (spans[i].end > limit) {
      const ZipEntry& a = archive.entries[spans[i].entry];
      const std::string other = i + 1 < spans.size()
                                    ? "entry " + QuoteBytes(archive.entries[spans[i + 1].entry].name)
                                    : std::string("the central directory");
      return Malformed("entry " + QuoteBytes(a.name), spans[i].begin,
                       "its header and data (up to offset " + std::to_string(spans[i].end) +
                           ") overlap " + other + " at offset " + std::to_string(limit));
    }
  }
  std::vector<ZipEntry> sorted;
  sorted.reserve(spans.size());
  for (const Span& s : spans) sorted.push_back(std::move(archive.entries[s.entry]));
  archive.entries = std::move(sorted);

  if (check_crcs) {
    for (const ZipEntry& e : archive.entries) {
      const uint32_t crc = ZipCrc32(file.subspan(e.data_offset, e.size));
      if (crc != e.crc32)
        return Status(ErrorCode::kZipChecksum,
                      "zip entry " + QuoteBytes(e.name) + " (" + std::to_string(e.size) +
                          " bytes at offset " + std::to_string(e.data_offset) +
                          "): CRC-32 of the data is 0x" + Hex(crc, 8) +
                          ", the archive records 0x" + Hex(e.crc32, 8));
    }
  }
  return archive;
}

}  // namespace ckz
