// The container's rules (spec 9: preamble, header, tensors, owners, source files, metadata,
// layout), core profile: each file is a valid file with one rule broken, the first one in the
// order of section 9.
#include "vectors.h"

#include <functional>

#include "common/bytes.h"
#include "ckz_generated.h"
#include "common/crc32c.h"
#include "file_surgery.h"
#include "format/preamble.h"

namespace ckz::vectors {

void ContainerInvalid(Suite& s) {
  const Bytes base = BaseFile();
  const Archive ba = Must(ParseArchive(ByteSpan(base)), "base");
  const uint64_t hoff = ba.preamble.header_offset;
  auto model = [&] { return FromFile(base); };

  // ---- Preamble.
  s.Add(Invalid("invalid-empty-file", "core", "P2", ErrorCode::kTruncated,
                "A 0-byte file (the magic check of P1 passes vacuously on 0 bytes).", {}));
  s.Add(Invalid("invalid-truncated-inside-magic", "core", "P2", ErrorCode::kTruncated,
                "The first 5 bytes of a valid file: they agree with the magic, but the file is "
                "shorter than the 64-byte preamble.",
                Bytes(base.begin(), base.begin() + 5)));
  s.Add(Invalid("invalid-truncated-preamble", "core", "P2", ErrorCode::kTruncated,
                "The first 40 bytes of a valid file.", Bytes(base.begin(), base.begin() + 40)));
  {
    Bytes f = base;
    f[3] = 'Q';
    s.Add(Invalid("invalid-bad-magic", "core", "P1", ErrorCode::kBadMagic,
                  "Magic byte 3 is 'Q' instead of 'Z': not a CKZ file.", f));
    const Ckpt c = BaseCkpt();
    s.Add(Invalid("invalid-safetensors-not-ckz", "core", "P1", ErrorCode::kBadMagic,
                  "A safetensors file (the checkpoint of the base case) given as a CKZ file.",
                  BuildSources(c).outputs.begin()->second));
  }
  {
    Bytes f = base;
    f.erase(f.begin() + 4);  // CR LF -> LF
    s.Add(Invalid("invalid-text-mode-crlf", "core", "P1", ErrorCode::kTextModeCorruption,
                  "CR LF in the magic turned into LF, as a text-mode transfer does (the file is one "
                  "byte shorter): bytes 1..3 are still 'CKZ'.",
                  f));
    Bytes g;
    for (uint8_t b : base) {
      if (b == '\n') g.push_back('\r');
      g.push_back(b);
    }
    s.Add(Invalid("invalid-text-mode-lf-to-crlf", "core", "P1", ErrorCode::kTextModeCorruption,
                  "Every LF of a valid file turned into CR LF, as a Unix-to-DOS text transfer does.", g));
    Bytes h = base;
    h[0] &= 0x7F;
    s.Add(Invalid("invalid-text-mode-7bit", "core", "P1", ErrorCode::kTextModeCorruption,
                  "The high bit of magic byte 0 cleared, as a 7-bit channel does.", h));
  }
  {
    Model m = model();
    m.major = 1;
    s.Add(Invalid("invalid-unsupported-version", "core", "P3", ErrorCode::kUnsupportedVersion,
                  "Major version 1 (checksums correct): a 0.x reader must refuse it.", Assemble(m)));
  }
  {
    Bytes f = base;
    f[preamble_offset::kReserved1 + 3] ^= 0x40;
    s.Add(Invalid("invalid-preamble-checksum", "core", "P4", ErrorCode::kPreambleChecksum,
                  "One bit of the reserved1 field changed without updating preamble_crc32c: "
                  "reserved bytes are covered by the checksum.", f));
  }
  {
    Model m = model();
    m.required = uint64_t{1} << 61;  // far above the bits a version assigns
    s.Add(Invalid("invalid-unknown-required-feature", "core", "P5",
                  ErrorCode::kUnknownRequiredFeature,
                  "Required feature bit 61, which no version defines, is set.", Assemble(m),
                  {"feature-bits:required"}));
  }
  {
    Bytes f = base;
    StoreLE64(f.data() + preamble_offset::kHeaderLength, (uint64_t{1} << 26) + 1);
    testing::FixPreambleCrc(f);
    s.Add(Invalid("invalid-header-too-large", "core", "P6", ErrorCode::kHeaderTooLarge,
                  "header_length is 2^26 + 1 (also past the end of the file: P6 is checked before P7).", f)
              .WithoutRuleFails(ErrorCode::kHeaderOutOfBounds));
  }
  {
    Bytes f = base;
    StoreLE64(f.data() + preamble_offset::kHeaderOffset, Align64(f.size()) + 64);
    testing::FixPreambleCrc(f);
    s.Add(Invalid("invalid-header-out-of-bounds", "core", "P7", ErrorCode::kHeaderOutOfBounds,
                  "header_offset points past the end of the file.", f));
    Bytes t(base.begin(), base.end() - 10);
    s.Add(Invalid("invalid-truncated-header", "core", "P7", ErrorCode::kHeaderOutOfBounds,
                  "The last 10 bytes of a valid file are missing: the header range ends past the end "
                  "of the file.", t));
    Bytes z = base;
    StoreLE64(z.data() + preamble_offset::kHeaderOffset, 0);
    testing::FixPreambleCrc(z);
    s.Add(Invalid("invalid-header-overlaps-preamble", "core", "P7", ErrorCode::kHeaderOutOfBounds,
                  "header_offset is 0 (a multiple of 64, but inside the preamble).", z));
  }
  {
    Model m = model();
    m.header_gap = 8;
    s.Add(Invalid("invalid-header-misaligned", "core", "P8", ErrorCode::kMisaligned,
                  "The header starts 8 bytes after a 64-byte boundary (its checksum is correct).",
                  Assemble(m))
              .WithoutRuleFails(ErrorCode::kUnexplainedBytes));
  }
  // ---- Header.
  {
    Bytes f = base;
    f[hoff + HeaderLength(f) - 6] ^= 0x01;
    s.Add(Invalid("invalid-header-checksum", "core", "H1", ErrorCode::kHeaderChecksum,
                  "One bit of the header changed without updating header_crc32c.", f));
  }
  {
    Bytes f = base;
    f[hoff + 7] = 'X';
    testing::FixHeaderCrc(f);
    s.Add(Invalid("invalid-header-identifier", "core", "H2", ErrorCode::kHeaderMalformed,
                  "The FlatBuffers file identifier is 'CKZX' instead of 'CKZH' (checksums correct).", f));
    Bytes g = base;
    StoreLE32(g.data() + hoff, 0x7FFFFFF0);
    testing::FixHeaderCrc(g);
    s.Add(Invalid("invalid-header-not-flatbuffer", "core", "H3", ErrorCode::kHeaderMalformed,
                  "The header's root offset points far outside the buffer: FlatBuffers verification "
                  "fails (checksums correct).", g)
              .ByConstruction("FlatBuffers' own verification (the bounds half of H3) cannot be "
                              "left out; no rule before H3 reads the root offset"));
    // A 4-byte header at the end of the payload.
    Bytes h(base.begin(), base.begin() + long(hoff));
    const uint8_t four[4] = {4, 0, 0, 0};
    h.insert(h.end(), four, four + 4);
    StoreLE64(h.data() + preamble_offset::kHeaderLength, 4);
    testing::FixHeaderCrc(h);
    s.Add(Invalid("invalid-header-shorter-than-8", "core", "H2", ErrorCode::kHeaderMalformed,
                  "header_length is 4: too short to hold a root offset and the identifier.", h)
              .ByConstruction("4 bytes hold no FlatBuffers buffer: without H2 the verifier (H3) "
                              "rejects them with the same error"));
  }
  {
    Model m = model();
    m.tweaks.content_id_bytes = 31;
    s.Add(Invalid("invalid-content-id-length", "core", "H4", ErrorCode::kFieldOutOfRange,
                  "Header.content_id has 31 bytes instead of 32.", Assemble(m)));
  }
  {
    Model m = model();
    m.h.writer = "ckz \xff\xfe";
    s.Add(Invalid("invalid-writer-not-utf8", "core", "H7", ErrorCode::kBadName,
                  "Header.writer is not valid UTF-8.", Assemble(m)));
  }
  // ---- Tensors.
  struct NameCase {
    const char* name;
    std::string value;
    const char* what;
  };
  const NameCase names[] = {
      {"invalid-tensor-name-overlong-utf8", std::string("b\xc0\x80", 3),
       "a tensor name with an overlong UTF-8 encoding of NUL (C0 80)"},
      {"invalid-tensor-name-surrogate", std::string("b\xed\xa0\x80", 4),
       "a tensor name with a UTF-16 surrogate encoded in UTF-8 (ED A0 80)"},
      {"invalid-tensor-name-above-u10ffff", std::string("b\xf4\x90\x80\x80", 5),
       "a tensor name with a code point above U+10FFFF (F4 90 80 80)"},
      {"invalid-tensor-name-empty", std::string(), "an empty tensor name"},
      {"invalid-tensor-name-nul", std::string("b\0c", 3), "a tensor name containing a NUL byte"},
      {"invalid-tensor-name-4097-bytes", std::string(4097, 'n'), "a tensor name of 4097 bytes"},
  };
  for (const NameCase& n : names) {
    Model m = model();
    m.h.tensors[1].name = n.value;
    s.Add(Invalid(n.name, "core", "T1", ErrorCode::kBadName, std::string("Rule N1: ") + n.what + ".",
                  Assemble(m)));
  }
  {
    Model m = model();
    m.h.tensors[1].dtype = static_cast<DType>(0);
    const std::string no_size =
        "a dtype outside 1..10 has no element size, so nothing after T2 (shape, chunks) can be "
        "evaluated; only the dtype differs from a valid file";
    s.Add(Invalid("invalid-dtype-zero", "core", "T2", ErrorCode::kFieldOutOfRange,
                  "Tensor 'b' has dtype 0 (Invalid).", Assemble(m))
              .ByConstruction(no_size));
    Model n = model();
    n.h.tensors[1].dtype = static_cast<DType>(11);
    s.Add(Invalid("invalid-dtype-unknown", "core", "T2", ErrorCode::kFieldOutOfRange,
                  "Tensor 'b' has dtype 11, which no version defines (0.6 has 1..10).",
                  Assemble(n))
              .ByConstruction(no_size));
  }
  {
    Model m = model();
    m.h.tensors[1].shape = std::vector<uint64_t>(33, 1);
    m.h.tensors[1].shape[0] = 4;
    s.Add(Invalid("invalid-shape-33-dims", "core", "T3", ErrorCode::kShapeOverflow,
                  "Tensor 'b' has 33 dimensions [4, 1, 1, ...] (byte length unchanged).", Assemble(m)));
    Model n = model();
    n.h.tensors[0].shape = {uint64_t{1} << 31, uint64_t{1} << 31};
    s.Add(Invalid("invalid-shape-overflow", "core", "T3", ErrorCode::kShapeOverflow,
                  "Tensor 'a' (F32) has shape [2^31, 2^31]: 2^62 elements of 4 bytes overflow 64 bits.",
                  Assemble(n)));
    Model o = model();
    o.h.tensors[1].dtype = DType::kU8;
    o.h.tensors[1].shape = {uint64_t{1} << 63};
    s.Add(Invalid("invalid-shape-2-pow-63-bytes", "core", "T3", ErrorCode::kShapeOverflow,
                  "Tensor 'b' is U8 of shape [2^63]: the byte length must be below 2^63.", Assemble(o)));
  }
  {
    Model m = model();
    m.h.tensors[1].role = static_cast<Role>(4);
    s.Add(Invalid("invalid-role-out-of-range", "core", "T5", ErrorCode::kFieldOutOfRange,
                  "Tensor 'b' has role 4, which no version defines (0.6 has 0..3).", Assemble(m)));
  }
  // T8, per chunk.
  {
    Model m = model();
    m.tweaks.chunk_reserved[{0, 1}] = 1;
    s.Add(Invalid("invalid-chunk-reserved-nonzero", "core", "T8", ErrorCode::kNonzeroPadding,
                  "Chunk 1 of tensor 'a' has reserved = 1.", Assemble(m)));
  }
  {
    // Each with chunks that still cover the tensor and decode, so that T8 alone rejects it.
    Model m = model();
    m.h.tensors[0].chunks.push_back(ChunkInfo{});  // raw_length 0, CRC-32C of nothing: 0
    m.stored[0].push_back(MakeChunk({{StreamCodec::kStored, {}}}));
    s.Add(Invalid("invalid-chunk-raw-length-zero", "core", "T8", ErrorCode::kChunkLayout,
                  "Tensor 'a' has a fourth chunk of raw_length 0 after its three (5 stored bytes: "
                  "one empty stored stream, CRC-32C 0); the chunks still sum to its 160 bytes.",
                  Assemble(m)));
    Model n = model();
    const Bytes a = BaseCkpt().tensors[0].bytes;
    const Bytes first(a.begin(), a.begin() + 62), second(a.begin() + 62, a.begin() + 128);
    n.stored[0][0] = MakeChunk({{StreamCodec::kStored, first}});
    n.stored[0][1] = MakeChunk({{StreamCodec::kStored, second}});
    n.edit = [&](Archive& h) {
      h.tensors[0].chunks[0].raw_length = 62;
      h.tensors[0].chunks[0].crc32c = Crc32c(first.data(), first.size());
      h.tensors[0].chunks[1].raw_length = 66;
      h.tensors[0].chunks[1].crc32c = Crc32c(second.data(), second.size());
    };
    s.Add(Invalid("invalid-chunk-partial-element", "core", "T8", ErrorCode::kChunkLayout,
                  "Tensor 'a' (F32) has chunks of 62 and 66 bytes (stored streams of those bytes, "
                  "with their CRC-32C): they sum right but split an element.",
                  Assemble(n)));
    Model o = model();
    o.stored[0][1].clear();
    s.Add(Invalid("invalid-chunk-stored-length-zero", "core", "T8", ErrorCode::kChunkLayout,
                  "Chunk 1 of tensor 'a' has stored_length 0 (no stored bytes: it starts where "
                  "chunk 2 does).",
                  Assemble(o))
              .WithoutRuleFails(ErrorCode::kChunkMalformed));
    Model p = model();
    p.edit = [](Archive& h) { h.tensors[0].chunks[2].raw_length = 64; };
    s.Add(Invalid("invalid-chunk-past-tensor-end", "core", "T8", ErrorCode::kChunkLayout,
                  "The last chunk of tensor 'a' (160 bytes) claims 64 bytes at raw offset 128.",
                  Assemble(p))
              .ByConstruction("chunks that sum to the tensor's length never pass its end, so "
                              "this part of T8 only orders the error before T9's, which is the "
                              "same"));
  }
  {
    // One U8 chunk of 2^26 + 1 bytes (zstd of zeros: a few KB).
    Ckpt c = Single({MakeT("big", DType::kU8, {(uint64_t{1} << 26) + 1}, 0)});
    std::fill(c.tensors[0].bytes.begin(), c.tensors[0].bytes.end(), 0);
    Ckpt small = Single({MakeT("big", DType::kU8, {64}, 0)});
    Model m = FromFile(Encode(small, Opt(StreamCodec::kZstd, false, 64)).bytes);
    m.h.tensors[0].shape = c.tensors[0].shape;
    m.h.files = BuildSources(c).infos;
    m.h.tensors[0].chunks[0].raw_length = c.tensors[0].bytes.size();
    m.h.tensors[0].chunks[0].crc32c = Crc32c(c.tensors[0].bytes.data(), c.tensors[0].bytes.size());
    m.stored[0][0] = MakeChunk({{StreamCodec::kZstd, Zstd(c.tensors[0].bytes.data(), c.tensors[0].bytes.size(), false, true, 3, 27)}});
    s.Add(Invalid("invalid-chunk-raw-length-too-large", "core", "T8", ErrorCode::kChunkLayout,
                  "A U8 tensor of 2^26 + 1 bytes in one chunk: raw_length is at most 2^26 (the "
                  "zstd stream, with a 2^27-byte window, would decode correctly to 64 MiB of "
                  "zeros).", Assemble(m)));
  }
  {
    Model m = model();
    m.gap_before[{0, 1}] = 8;
    s.Add(Invalid("invalid-chunk-misaligned", "core", "T8", ErrorCode::kMisaligned,
                  "Chunk 1 of tensor 'a' starts 8 bytes after a 64-byte boundary.", Assemble(m))
              .WithoutRuleFails(ErrorCode::kUnexplainedBytes));
    Model n = model();
    n.edit = [](Archive& h) { h.tensors[1].chunks[0].offset = h.tensors[1].chunks[0].offset + 4096; };
    s.Add(Invalid("invalid-chunk-out-of-file", "core", "T8", ErrorCode::kRangeOutOfFile,
                  "The chunk of tensor 'b' starts past the end of the file.", Assemble(n)));
    Model o = model();
    o.edit = [](Archive& h) { h.tensors[1].chunks[0].stored_length = ~uint64_t{0} - 63; };
    s.Add(Invalid("invalid-chunk-length-overflow", "core", "T8", ErrorCode::kRangeOutOfFile,
                  "The chunk of tensor 'b' has stored_length 2^64 - 64: offset + stored_length "
                  "overflows 64 bits (a reader must check without overflowing).", Assemble(o)));
  }
  {
    Model m = model();
    m.h.tensors[0].chunks.pop_back();
    m.stored[0].pop_back();
    s.Add(Invalid("invalid-chunks-do-not-cover", "core", "T9", ErrorCode::kChunkLayout,
                  "Tensor 'a' (160 bytes) has only its first two chunks (128 bytes); the file has no "
                  "other fault.", Assemble(m))
              .ByConstruction("both chunks left are the valid file's, so T8 holds for each: only "
                              "their sum is wrong"));
  }
  {
    Model m = model();
    m.h.tensors[1].name = "a";
    s.Add(Invalid("invalid-duplicate-tensor-name", "core", "T10", ErrorCode::kDuplicateName,
                  "Two tensors named 'a'.", Assemble(m)));
  }
  // ---- Owners.
  {
    Ckpt c = Single({MakeT("w", DType::kF32, {4}, 1301, Role::kWeight),
                     MakeT("w.exp_avg", DType::kF32, {4}, 1302, Role::kMoment1, 0),
                     MakeT("x", DType::kF32, {2}, 1303, Role::kWeight)});
    const Bytes f = Encode(c, Opt(StreamCodec::kStored, false)).bytes;
    struct OwnerCase {
      const char* name;
      std::function<void(Archive&)> change;
      const char* what;
    };
    const OwnerCase cases[] = {
        {"invalid-owner-not-a-weight", [](Archive& h) { h.tensors[0].role = Role::kOther; },
         "'w.exp_avg' (Moment1) is owned by 'w', whose role is Other"},
        {"invalid-owner-shape-differs", [](Archive& h) { h.tensors[1].owner = 2; },
         "'w.exp_avg' (shape [4]) is owned by 'x' (shape [2])"},
        {"invalid-owner-out-of-range", [](Archive& h) { h.tensors[1].owner = 3; },
         "'w.exp_avg' names owner 3 in a file of 3 tensors"},
        {"invalid-owner-self", [](Archive& h) { h.tensors[1].owner = 1; },
         "'w.exp_avg' names itself as its owner"},
        {"invalid-owner-on-a-weight", [](Archive& h) { h.tensors[2].owner = 0; },
         "the Weight 'x' has an owner: only Moment1 and Moment2 may"},
    };
    for (const OwnerCase& oc : cases) {
      Model m = FromFile(f);
      oc.change(m.h);
      s.Add(Invalid(oc.name, "core", "O1", ErrorCode::kBadOwner, std::string("Rule O1: ") + oc.what + ".",
                    Assemble(m)));
    }
  }
  // ---- Source files.
  {
    const char* bad_paths[][2] = {{"../model.safetensors", "a path with a '..' component"},
                                  {"/model.safetensors", "an absolute path"},
                                  {"dir\\model.safetensors", "a path with a backslash"},
                                  {"c:model.safetensors", "a path with a colon"},
                                  {"dir//model.safetensors", "a path with an empty component"},
                                  {"./model.safetensors", "a path with a '.' component"}};
    const char* path_cases[] = {"invalid-source-path-dotdot", "invalid-source-path-absolute",
                           "invalid-source-path-backslash", "invalid-source-path-colon",
                           "invalid-source-path-empty-component", "invalid-source-path-dot"};
    for (size_t i = 0; i < 6; ++i) {
      Model m = model();
      m.h.files[0].path = bad_paths[i][0];
      s.Add(Invalid(path_cases[i], "core", "F1", ErrorCode::kBadName,
                    std::string("Rule N2: the source file's path '") + bad_paths[i][0] + "' is " +
                        bad_paths[i][1] + ".",
                    Assemble(m)));
    }
  }
  {
    Model m = model();
    m.h.files[0].format = static_cast<SourceFormat>(kMaxSourceFormat + 1);
    s.Add(Invalid("invalid-source-format", "core", "F2", ErrorCode::kFieldOutOfRange,
                  "The source file has a format value no version defines (0..2 are).",
                  Assemble(m)));
    Model n = model();
    n.h.files[0].format = SourceFormat::kRaw;
    s.Add(Invalid("invalid-raw-file-lists-tensors", "core", "F3", ErrorCode::kFieldOutOfRange,
                  "A Raw source file lists tensors.", Assemble(n)));
    Model o = model();
    o.h.files[0].tensors.push_back(2);
    s.Add(Invalid("invalid-source-tensor-index", "core", "F4", ErrorCode::kFieldOutOfRange,
                  "The source file lists tensor index 2 in a file of 2 tensors.", Assemble(o))
              .ByConstruction("index 2 names no tensor, so there are no bytes to put in the "
                              "file; only the list differs from a valid file"));
    Model p = model();
    p.h.files[0].tensors = {0, 1, 0};
    s.Add(Invalid("invalid-source-tensor-twice", "core", "F4", ErrorCode::kFieldOutOfRange,
                  "The source file lists tensor 0 twice.", Assemble(p)));
    Model q = model();
    q.h.files[0].tensors = {0};
    SourceFileInfo second = q.h.files[0];
    second.tensors = {1};
    second.prolog = {};
    q.h.files.push_back(second);
    s.Add(Invalid("invalid-duplicate-source-path", "core", "F7", ErrorCode::kDuplicateName,
                  "Two source files with the same path.", Assemble(q)));
    Model r = model();
    r.h.files[0].tensors = {0};
    s.Add(Invalid("invalid-tensor-in-no-file", "core", "F8", ErrorCode::kFieldOutOfRange,
                  "Tensor 'b' belongs to no source file, while there are source files.", Assemble(r)));
    Model t = model();
    SourceFileInfo other = t.h.files[0];
    other.path = "second.safetensors";
    other.tensors = {0};
    t.h.files.push_back(other);
    s.Add(Invalid("invalid-tensor-in-two-files", "core", "F4", ErrorCode::kFieldOutOfRange,
                  "Tensor 'a' is listed by two source files.", Assemble(t)));
    // Splits and CRC-32 patches (0.2), on a file with prolog "PROLOG--" and tensors a, b.
    auto pieces = [&](std::vector<uint64_t> splits, std::vector<Crc32Patch> patches) {
      Model m = model();
      m.h.files[0].format = SourceFormat::kTorchZip;
      m.h.files[0].prolog = Str("PROLOG--");
      m.h.files[0].splits = std::move(splits);
      m.h.files[0].crc32_patches = std::move(patches);
      return m;
    };
    s.Add(Invalid("invalid-splits-count", "core", "F5", ErrorCode::kFieldOutOfRange,
                  "Three splits for a file of two tensors.", Assemble(pieces({0, 2, 4}, {}))));
    s.Add(Invalid("invalid-splits-decreasing", "core", "F5", ErrorCode::kFieldOutOfRange,
                  "Splits 4 then 2: a tensor would go before the one listed ahead of it.",
                  Assemble(pieces({4, 2}, {}))));
    s.Add(Invalid("invalid-splits-past-prolog", "core", "F5", ErrorCode::kFieldOutOfRange,
                  "A split of 9 in an 8-byte prolog.", Assemble(pieces({2, 9}, {}))));
    s.Add(Invalid("invalid-crc32-patch-past-prolog", "core", "F6", ErrorCode::kFieldOutOfRange,
                  "A CRC-32 patch at prolog offset 6: its 4 bytes run past the 8-byte prolog.",
                  Assemble(pieces({0, 4}, {{6, 0}}))));
    s.Add(Invalid("invalid-crc32-patches-overlap", "core", "F6", ErrorCode::kFieldOutOfRange,
                  "CRC-32 patches at prolog offsets 0 and 2 overlap.",
                  Assemble(pieces({8, 8}, {{0, 0}, {2, 1}}))));
    s.Add(Invalid("invalid-crc32-patch-tensor", "core", "F6", ErrorCode::kFieldOutOfRange,
                  "A CRC-32 patch names the file's tensor 2; it has tensors 0 and 1.",
                  Assemble(pieces({8, 8}, {{0, 2}}))));
    Model patched = pieces({8, 8}, {{0, 0}, {4, 1}});
    patched.tweaks.patch_reserved[{0, 1}] = 7;
    s.Add(Invalid("invalid-crc32-patch-reserved", "core", "F6", ErrorCode::kNonzeroPadding,
                  "The second CRC-32 patch of the file (at prolog offset 4, for tensor 1) has "
                  "reserved = 7.",
                  Assemble(patched)));
    // Rule H3's alignment of 8-byte elements (section 4.1), which FlatBuffers 2.0.8's verifier
    // does not check: found by fuzz_container (fuzz/README.md, crash-misaligned-*).
    auto misaligned = [&](Model m, VectorField field, size_t index) {
      m.tweaks.misaligned = MisalignedVector{field, index};
      return Assemble(m);
    };
    const std::string moved =
        " vector is moved to the end of the header with its length prefix at a multiple of 8 "
        "from the buffer's start, so its elements start 4 bytes off their 8-byte alignment, "
        "inside the buffer. FlatBuffers 2.0's own verifier accepts that, rule H3 (section 4.1) "
        "does not: only that alignment check rejects the file (a reader without it decodes "
        "it).";
    s.Add(Invalid("invalid-misaligned-shape-vector", "core", "H3", ErrorCode::kHeaderMalformed,
                  "tensors[0].shape (u64 elements):" + moved,
                  misaligned(model(), VectorField::kShape, 0)));
    s.Add(Invalid("invalid-misaligned-chunks-vector", "core", "H3", ErrorCode::kHeaderMalformed,
                  "tensors[0].chunks (32-byte structs aligned to 8):" + moved,
                  misaligned(model(), VectorField::kChunks, 0)));
    s.Add(Invalid("invalid-misaligned-splits-vector", "core", "H3", ErrorCode::kHeaderMalformed,
                  "files[0].splits (u64 elements) of a TorchZip file with prolog \"PROLOG--\" "
                  "and splits 2, 4:" + moved,
                  misaligned(pieces({2, 4}, {{4, 1}}), VectorField::kSplits, 0)));
    s.Add(Invalid("invalid-misaligned-crc32-patches-vector", "core", "H3",
                  ErrorCode::kHeaderMalformed,
                  "files[0].crc32_patches (16-byte structs aligned to 8) of the same file, one "
                  "patch at prolog offset 4 for tensor 1:" + moved,
                  misaligned(pieces({2, 4}, {{4, 1}}), VectorField::kCrc32Patches, 0)));
    Check(ParseArchive(ByteSpan(Assemble(pieces({2, 4}, {{4, 1}})))).ok(),
          "misaligned vectors: the file before the move must be valid");
  }
  // ---- Metadata.
  {
    auto with_meta = [&](std::vector<MetaEntry> meta) {
      Model m = model();
      m.h.metadata = std::move(meta);
      return m;
    };
    Model a = with_meta({{"ok", int64_t{1}}, {"", int64_t{2}}});
    s.Add(Invalid("invalid-metadata-key-empty", "core", "M1", ErrorCode::kBadName,
                  "A metadata entry with an empty key (rule N1).", Assemble(a)));
    Model b = with_meta({{"ok", int64_t{1}}, {"bad", int64_t{2}}});
    b.tweaks.meta_type[1] = 0;
    s.Add(Invalid("invalid-metadata-type-none", "core", "M2", ErrorCode::kFieldOutOfRange,
                  "A metadata value of union type 0 (NONE) with a value table present.", Assemble(b)));
    Model c = with_meta({{"ok", int64_t{1}}, {"future", int64_t{2}}});
    c.tweaks.meta_type[1] = 6;
    s.Add(Invalid("invalid-metadata-type-unknown", "core", "M2", ErrorCode::kFieldOutOfRange,
                  "A metadata value of union type 6, which no version defines (0.6 has 1..5).",
                  Assemble(c)));
    // Spec 4.1: verification checks a union's value offset whatever its type (H3 before M2).
    Model o = with_meta({{"ok", int64_t{1}}, {"future", int64_t{2}}});
    o.tweaks.meta_type[1] = 6;
    o.code_header = [](const Bytes& buffer) {
      Bytes b = buffer;
      const fb::Header* h = fb::GetHeader(b.data());
      const size_t at = FieldPosition(b, h->metadata()->Get(1), fb::MetaEntry::VT_VALUE);
      StoreLE32(b.data() + at, uint32_t(b.size() + 64 - at));  // 64 bytes past the end
      return b;
    };
    s.Add(Invalid("invalid-metadata-unknown-type-value-outside", "core", "H3",
                  ErrorCode::kHeaderMalformed,
                  "A metadata value of union type 6 (unknown, a semantic fault: rule M2) whose "
                  "value offset points 64 bytes past the end of the header buffer. Spec 4.1: "
                  "verification checks the required value offset whatever the type (only the "
                  "table it points at goes unverified for an unknown type), and verification "
                  "(H3) comes before the semantic rules, so the error is HeaderMalformed, not "
                  "FieldOutOfRange.",
                  Assemble(o))
              .ByConstruction("an offset out of the buffer is FlatBuffers' own verification, "
                              "which cannot be left out; the rest is the valid type-6 case "
                              "above"));
    Model d = with_meta({{"text", std::string("caf\xe9")}});
    s.Add(Invalid("invalid-metadata-string-not-utf8", "core", "M3", ErrorCode::kBadName,
                  "A StringValue that is not UTF-8 (Latin-1 'caf\\xe9').", Assemble(d)));
    Model e = with_meta({{"k", int64_t{1}}, {"k", std::string("again")}});
    s.Add(Invalid("invalid-duplicate-metadata-key", "core", "M4", ErrorCode::kDuplicateName,
                  "Two metadata entries with the key 'k'.", Assemble(e)));
  }
  // ---- Layout (section 5).
  {
    // "b2" is a copy of "a": a writer that deduplicates identical chunks by pointing both at the
    // same bytes makes an invalid file (regions must not overlap).
    Ckpt c = BaseCkpt();
    T copy = c.tensors[0];
    copy.name = "a2";
    copy.role = Role::kOther;
    c.tensors.push_back(copy);
    c.files[0].tensors.push_back("a2");
    Model m = FromFile(Encode(c, Opt(StreamCodec::kStored, false, 64)).bytes);
    m.share_chunks[2] = 0;
    s.Add(Invalid("invalid-overlapping-chunks", "core", "L1", ErrorCode::kRangeOverlap,
                  "Tensor 'a2' is a copy of 'a', and its chunks point at the same bytes as those of "
                  "'a' (deduplicated): regions must not overlap. Everything else is valid.",
                  Assemble(m)));
    Model n = model();
    n.edit = [](Archive& h) { h.tensors[1].chunks[0].offset = 0; };
    s.Add(Invalid("invalid-chunk-overlaps-preamble", "core", "L1", ErrorCode::kRangeOverlap,
                  "The chunk of tensor 'b' claims offset 0, inside the preamble.", Assemble(n)));
  }
  {
    Model m = model();
    m.gap_before[{0, 2}] = 64;
    s.Add(Invalid("invalid-gap-between-chunks", "core", "L2", ErrorCode::kUnexplainedBytes,
                  "64 zero bytes more than alignment needs before chunk 2 of tensor 'a'.", Assemble(m)));
    Bytes t = base;
    t.push_back(0);
    s.Add(Invalid("invalid-trailing-bytes", "core", "L4", ErrorCode::kUnexplainedBytes,
                  "One zero byte after the header, at the end of the file.", t));
  }
  {
    Bytes f = base;
    const ChunkInfo& c = ba.tensors[0].chunks[0];
    f[c.offset + c.stored_length + 3] = 0x01;
    s.Add(Invalid("invalid-nonzero-padding", "core", "L3", ErrorCode::kNonzeroPadding,
                  "A padding byte between two chunks is 0x01 (padding is not covered by any checksum).",
                  f));
  }
}

}  // namespace ckz::vectors
