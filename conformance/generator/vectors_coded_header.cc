// Coded headers (format 0.6, spec 4.1, rule H8), full profile except where bit 5 is clear.
#include "vectors.h"

#include <zstd.h>

#include <functional>

#include "format/preamble.h"

namespace ckz::vectors {

void CodedHeader(Suite& s) {
  Ckpt k = ChainBase(6001);
  EncodeOptions o = Opt(StreamCodec::kZstd, true, 256);
  o.code_header = true;
  const Encoded e = Encode(k, o);
  const Model base = FromFile(e.bytes);
  Check(base.required & kFeatureCodedHeader, "full-coded-header: the writer must code it");
  s.Add(Valid("full-coded-header", "full",
              "A keyframe whose header is stored as one zstd frame (required feature bit 5, "
              "spec 4.1): the frame declares its content size and decodes to the FlatBuffers "
              "buffer; header_crc32c covers the coded bytes.",
              k, e.bytes, {"header:coded"}));
  // An invalid case: `base` with its header region made by `coded` from the FlatBuffers buffer
  // (null: the plain buffer), bit 5 as `bit5` says.
  auto invalid = [&](const std::string& name, const std::string& profile, const std::string& rule,
                     ErrorCode error, const std::string& description,
                     std::function<Bytes(const Bytes&)> coded, bool bit5 = true) {
    Model m = base;
    m.code_header = std::move(coded);
    if (!bit5) m.required &= ~kFeatureCodedHeader;
    return Invalid(name, profile, rule, error, description, Assemble(m), {"header:coded"});
  };
  // The first zstd frame of `f` decoded, to check that a frame's only fault is elsewhere.
  auto first_frame = [](const Bytes& f, const Bytes& header) {
    Bytes out(header.size());
    const size_t n = ZSTD_findFrameCompressedSize(f.data(), f.size());
    Check(!ZSTD_isError(n), "coded header: no frame");
    Check(ZSTD_decompress(out.data(), out.size(), f.data(), n) == header.size() && out == header,
          "coded header: the frame does not decode to the header");
    return f;
  };
  s.Add(invalid("invalid-coded-header-plain", "full", "H8", ErrorCode::kHeaderMalformed,
                "Required feature bit 5 is set but the header region holds the plain FlatBuffers "
                "buffer, not a zstd frame (4.1).",
                nullptr)
            .ByConstruction("the region is the valid file's own FlatBuffers buffer: only bit 5 "
                            "says it is a frame"));
  s.Add(invalid("invalid-coded-header-bit-clear", "core", "H2", ErrorCode::kHeaderMalformed,
                "The header is a zstd frame but required feature bit 5 is clear: the reader takes "
                "the bytes as a FlatBuffers buffer, whose bytes 4..7 are not CKZH.",
                WriterHeaderFrame, false)
            .ByConstruction("read as a FlatBuffers buffer, a zstd frame's root offset (its magic, "
                            "0xFD2FB528) points outside it: without H2 the verifier (H3) rejects "
                            "it with the same error"));
  s.Add(invalid("invalid-coded-header-no-content-size", "full", "H8", ErrorCode::kHeaderMalformed,
                "The header's zstd frame does not declare its content size (4.1 requires it, so "
                "that the decoded size is checked before anything is allocated).",
                [&](const Bytes& h) {
                  return first_frame(Zstd(h.data(), h.size(), false, false, 19), h);
                })
            .ByConstruction("the frame decodes to the valid file's header (checked): only the "
                            "missing content size is wrong"));
  s.Add(invalid("invalid-coded-header-trailing-byte", "full", "H8", ErrorCode::kHeaderMalformed,
                "One zero byte after the header's zstd frame: the header region must be exactly "
                "one frame (4.1).",
                [&](const Bytes& h) {
                  Bytes f = WriterHeaderFrame(h);
                  f.push_back(0);
                  return first_frame(f, h);
                })
            .ByConstruction("the frame decodes to the valid file's header (checked): only the "
                            "byte after it is wrong"));
  s.Add(invalid("invalid-coded-header-truncated", "full", "H8", ErrorCode::kHeaderMalformed,
                "The header's zstd frame without its last two bytes (header_length and "
                "header_crc32c match the cut bytes): it does not decode (4.1).",
                [&](const Bytes& h) {
                  Bytes f = WriterHeaderFrame(h);
                  f.resize(f.size() - 2);
                  return f;
                })
            .ByConstruction("a cut frame decodes to no buffer, so no later rule has anything to "
                            "judge"));
  // Frame header only: single segment, an 8-byte Frame_Content_Size of 2^26 + 1.
  Bytes too_large = {0x28, 0xB5, 0x2F, 0xFD, 0xE0};
  for (int i = 0; i < 8; ++i) too_large.push_back(uint8_t(((uint64_t{1} << 26) + 1) >> (8 * i)));
  // Then one empty raw last block: the declared size fails before anything is decoded.
  s.Add(invalid("invalid-coded-header-too-large", "full", "H8", ErrorCode::kHeaderTooLarge,
                "The header's zstd frame declares a content size of 2^26 + 1 bytes, above the "
                "header limit (4.1, section 13); a reader refuses it before allocating (its one "
                "empty block would decode to 0 bytes: without the limit, HeaderMalformed).",
                [&](const Bytes&) {
                  Bytes f = too_large;
                  f.insert(f.end(), {0x01, 0x00, 0x00});
                  return f;
                })
            .WithoutRuleFails(ErrorCode::kHeaderMalformed));
  s.Add(invalid("invalid-coded-header-not-ckzh", "full", "H2", ErrorCode::kHeaderMalformed,
                "The header's zstd frame decodes, but to a buffer whose bytes 4..7 are not CKZH: "
                "H2 applies to the decoded bytes.",
                [&](const Bytes& h) {
                  Bytes b = h;
                  b[4] = 'X';  // the file identifier
                  return WriterHeaderFrame(b);
                }));
  // 4.1's order inside a coded header: the declared size is judged as soon as the frame header
  // is read, before the frame's blocks.
  s.Add(invalid("invalid-coded-header-too-large-truncated", "full", "H8",
                ErrorCode::kHeaderTooLarge,
                "The header region is only a zstd frame header (single segment) that declares "
                "2^26 + 1 bytes, with no block after it: too large and cut short at once. Spec "
                "4.1 reads the frame header first and checks the declared size before anything "
                "after it, so the error is HeaderTooLarge, not HeaderMalformed.",
                [&](const Bytes&) { return too_large; })
            .WithoutRuleFails(ErrorCode::kHeaderMalformed));
}

}  // namespace ckz::vectors
