// Coded headers (format 0.6, spec 4.1, rule H8), full profile except where bit 5 is clear.
#include "vectors.h"

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
    s.Add(Invalid(name, profile, rule, error, description, Assemble(m), {"header:coded"}));
  };
  invalid("invalid-coded-header-plain", "full", "H8", ErrorCode::kHeaderMalformed,
          "Required feature bit 5 is set but the header region holds the plain FlatBuffers "
          "buffer, not a zstd frame (4.1).",
          nullptr);
  invalid("invalid-coded-header-bit-clear", "core", "H2", ErrorCode::kHeaderMalformed,
          "The header is a zstd frame but required feature bit 5 is clear: the reader takes the "
          "bytes as a FlatBuffers buffer, whose bytes 4..7 are not CKZH.",
          WriterHeaderFrame, false);
  invalid("invalid-coded-header-no-content-size", "full", "H8", ErrorCode::kHeaderMalformed,
          "The header's zstd frame does not declare its content size (4.1 requires it, so that "
          "the decoded size is checked before anything is allocated).",
          [](const Bytes& h) { return Zstd(h.data(), h.size(), false, false, 19); });
  invalid("invalid-coded-header-trailing-byte", "full", "H8", ErrorCode::kHeaderMalformed,
          "One zero byte after the header's zstd frame: the header region must be exactly one "
          "frame (4.1).",
          [&](const Bytes& h) {
            Bytes f = WriterHeaderFrame(h);
            f.push_back(0);
            return f;
          });
  invalid("invalid-coded-header-truncated", "full", "H8", ErrorCode::kHeaderMalformed,
          "The header's zstd frame without its last two bytes (header_length and header_crc32c "
          "match the cut bytes): it does not decode (4.1).",
          [&](const Bytes& h) {
            Bytes f = WriterHeaderFrame(h);
            f.resize(f.size() - 2);
            return f;
          });
  // Frame header only: single segment, an 8-byte Frame_Content_Size of 2^26 + 1, then one
  // empty raw last block. The declared size fails before anything is decoded.
  invalid("invalid-coded-header-too-large", "full", "H8", ErrorCode::kHeaderTooLarge,
          "The header's zstd frame declares a content size of 2^26 + 1 bytes, above the header "
          "limit (4.1, section 13); a reader refuses it before allocating.",
          [](const Bytes&) {
            Bytes f = {0x28, 0xB5, 0x2F, 0xFD, 0xE0};
            for (int i = 0; i < 8; ++i) f.push_back(uint8_t(((uint64_t{1} << 26) + 1) >> (8 * i)));
            f.insert(f.end(), {0x01, 0x00, 0x00});
            return f;
          });
  invalid("invalid-coded-header-not-ckzh", "full", "H2", ErrorCode::kHeaderMalformed,
          "The header's zstd frame decodes, but to a buffer whose bytes 4..7 are not CKZH: H2 "
          "applies to the decoded bytes.",
          [&](const Bytes& h) {
            Bytes b = h;
            b[4] = 'X';  // the file identifier
            return WriterHeaderFrame(b);
          });
}

}  // namespace ckz::vectors
