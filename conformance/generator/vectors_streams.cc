// Coding tool 1, stored and zstd streams (spec 7.1, 7.2, 7.5), core profile: chunks whose
// stream directory or streams break their rules, or whose decoded bytes fail their checksum.
#include "vectors.h"

#include "common/bytes.h"
#include "format/chunk_layout.h"

namespace ckz::vectors {

void StreamsInvalid(Suite& s) {
  const Bytes base = BaseFile();
  const Archive ba = Must(ParseArchive(ByteSpan(base)), "base");
  auto model = [&] { return FromFile(base); };
  {
    Bytes f = base;
    const ChunkInfo& c = ba.tensors[0].chunks[2];
    f[c.offset + 5 + 9] ^= 0x04;
    s.Add(Invalid("invalid-chunk-checksum", "core", "C5", ErrorCode::kChunkChecksum,
                  "A bit of the last chunk of tensor 'a' flipped in its stored stream: the chunk "
                  "decodes, but not to its CRC-32C. The first chunks are intact: a decoder must not "
                  "leave a partial output file.", f));
    Model m = model();
    m.edit = [](Archive& h) { h.tensors[1].chunks[0].crc32c ^= 0x80000000u; };
    s.Add(Invalid("invalid-chunk-crc-field", "core", "C5", ErrorCode::kChunkChecksum,
                  "The header's crc32c of the chunk of tensor 'b' is wrong; the stored bytes are intact.",
                  Assemble(m)));
  }
  {
    Bytes f = base;
    const ChunkInfo& c = ba.tensors[0].chunks[1];
    f[c.offset] = 2;
    s.Add(Invalid("invalid-stream-directory", "core", "C1", ErrorCode::kChunkMalformed,
                  "Chunk 1 of tensor 'a' names stream codec 2 (packed, since 0.3), which only a "
                  "quantized tensor may use; 'a' is not quantized (7.1).", f));
    Bytes u = base;
    u[c.offset] = 5;
    s.Add(Invalid("invalid-stream-codec-unknown", "core", "C1", ErrorCode::kChunkMalformed,
                  "Chunk 1 of tensor 'a' names stream codec 5, which no version defines (0.6 "
                  "has 0..4).", u));
    Bytes g = base;
    StoreLE32(g.data() + c.offset + 1, 65);
    s.Add(Invalid("invalid-stream-directory-lengths", "core", "C1", ErrorCode::kChunkMalformed,
                  "The stream directory of chunk 1 of tensor 'a' declares 65 stored bytes; the chunk "
                  "holds 5 + 64.", g));
  }
  {
    // A byte-plane chunk of an I64 tensor (8 streams: a 40-byte directory) of 12 stored bytes.
    Model m = FromFile(BaseFile(StreamCodec::kStored, true));
    m.stored[1][0] = Bytes(12, 0);
    s.Add(Invalid("invalid-stream-directory-truncated", "core", "C1", ErrorCode::kChunkMalformed,
                  "Tensor 'b' (I64, byte planes: 8 streams, a 40-byte directory) has a chunk of 12 "
                  "stored bytes.", Assemble(m)));
  }
  {
    Model m = model();
    Bytes data = Bytes(m.stored[1][0].begin() + 5, m.stored[1][0].end());
    data.push_back(0);
    m.stored[1][0] = MakeChunk({{StreamCodec::kStored, data}});
    s.Add(Invalid("invalid-stored-stream-wrong-length", "core", "C2", ErrorCode::kChunkDecodeFailed,
                  "A stored stream of 33 bytes in a chunk of raw_length 32 (directory and "
                  "stored_length agree with it).", Assemble(m)));
  }
  {
    // zstd streams that break section 7.2, each in the chunk of tensor 'b' (raw 32 bytes).
    const Ckpt c = BaseCkpt();
    const Bytes raw = c.tensors[1].bytes;
    auto zcase = [&](const std::string& name, const Bytes& stream, const std::string& what,
                     std::vector<std::string> features = {}) {
      Model m = FromFile(BaseFile(StreamCodec::kZstd));
      m.stored[1][0] = MakeChunk({{StreamCodec::kZstd, stream}});
      s.Add(Invalid(name, "core", "C2", ErrorCode::kChunkDecodeFailed, what, Assemble(m),
                    std::move(features)));
    };
    Bytes trailing = Zstd(raw);
    trailing.insert(trailing.end(), {0, 0, 0});
    zcase("invalid-zstd-trailing-bytes", trailing,
          "A zstd stream followed by 3 zero bytes: a stream is exactly one frame and nothing else.");
    Bytes two = Zstd(raw.data(), 16);
    const Bytes second = Zstd(raw.data() + 16, 16);
    two.insert(two.end(), second.begin(), second.end());
    zcase("invalid-zstd-two-frames", two,
          "Two zstd frames of 16 bytes each: together they decode to the right 32 bytes, but a "
          "stream is exactly one frame.");
    Bytes skip = {0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 'C', 'K', 'Z', '!'};
    const Bytes frame = Zstd(raw);
    skip.insert(skip.end(), frame.begin(), frame.end());
    zcase("invalid-zstd-skippable-frame", skip,
          "A skippable frame (4 bytes of user data) before the zstd frame: not allowed.");
    Bytes fcs = Zstd(raw);
    Check(fcs[4] == 0x20, "expected a single-segment frame with a 1-byte content size");
    fcs[5] = uint8_t(raw.size() + 1);
    zcase("invalid-zstd-content-size-mismatch", fcs,
          "The zstd frame header declares 33 bytes of content; the chunk's stream is 32 bytes "
          "(and the frame's blocks do decode to 32).");
    zcase("invalid-zstd-short-output", Zstd(raw.data(), 28, false, false),
          "A zstd frame without a content size that decodes to 28 bytes; the stream must be 32.");
    Bytes sum = Zstd(raw, true, true);
    sum.back() ^= 0x01;
    zcase("invalid-zstd-bad-checksum", sum,
          "A zstd frame with a frame checksum that does not match (the decoded bytes themselves "
          "are right, so the chunk CRC would pass): the frame checksum MUST be checked.");
    Bytes window = Zstd(raw, false, false);
    Check((window[4] & 0x20) == 0, "expected a frame with a window descriptor");
    window[5] = 18 << 3;  // Window_Log = 10 + 18 = 28
    zcase("invalid-zstd-window-too-large", window,
          "A zstd frame whose window descriptor asks for a 2^28-byte window (more than 2^27); "
          "its blocks decode correctly to the 32 bytes.");
    zcase("invalid-zstd-garbage", raw,
          "A stream marked zstd whose bytes are the raw tensor bytes: not a zstd frame.");
  }
  {
    // Spec 7.2: Window_Size >= the stream's decoded length. A 4 KiB tensor in one chunk, its
    // zstd frame without a content size and with a 1 KiB window (libzstd decodes it anyway).
    const Ckpt c = Single({MakeT("big", DType::kF32, {32, 32}, 41)});
    Model m = FromFile(Encode(c, Opt(StreamCodec::kZstd, false, 4096)).bytes);
    const Bytes& raw = c.tensors[0].bytes;
    const Bytes frame = Zstd(raw.data(), raw.size(), false, false, 3, 10);
    Check((frame[4] & 0x20) == 0 && frame[5] == 0, "expected a 1 KiB window descriptor");
    m.stored[0][0] = MakeChunk({{StreamCodec::kZstd, frame}});
    s.Add(Invalid("invalid-zstd-window-smaller-than-output", "core", "C2",
                  ErrorCode::kChunkDecodeFailed,
                  "Tensor 'big' (4096 bytes, one chunk) is one zstd frame without a content size "
                  "whose window descriptor gives Window_Size 1024: spec 7.2 requires a window at "
                  "least as large as the stream's 4096 decoded bytes (libzstd's one-shot decoder "
                  "would accept it).",
                  Assemble(m)));
  }
  {
    // Spec 8: without source files a reader still decodes and checks every tensor.
    Bytes f = Encode(BareCkpt(), Opt(StreamCodec::kStored, false)).bytes;
    const Archive a = Must(ParseArchive(ByteSpan(f)), "bare tensor set");
    f[a.tensors[0].chunks[0].offset + kStreamEntryBytes + 7] ^= 0x20;
    s.Add(Invalid("invalid-bare-tensor-set-chunk-checksum", "core", "C5",
                  ErrorCode::kChunkChecksum,
                  "core-bare-tensor-set (tensors, no source files) with one bit of the stored "
                  "stream of 'w' flipped: whatever a reader writes for a bare tensor set, it "
                  "decodes and checks every chunk (spec 8, 7.5) and rejects the file.",
                  f, {"files:none"}));
  }
}

}  // namespace ckz::vectors
