// Untrusted surface: a whole .ckz file. The preamble parser, the header parser and its semantic
// validation (spec section 9), the stream directories and the chunk decoder.
//
// Besides "no crash, no hang, no sanitizer report", every answer must keep what the API promises:
//  - an error has a known, non-OK code from the set that stage may return, and a message;
//  - ParsePreamble on the first 64 bytes agrees with ParseArchive on the whole file;
//  - a parsed archive re-checks, independently of the parser, as valid: enums in range, shapes
//    without overflow and under the limit, the LSTM model's rules LM1-LM3, chunks aligned,
//    inside the file, covering the tensor in order in whole elements, no two regions
//    overlapping, every other byte zero padding, owners, source files and metadata consistent;
//  - a stream directory that reads has one stream per byte plane (or one), back to back,
//    filling the chunk exactly; a chunk whose directory fails never decodes;
//  - a coded prolog (spec 8.4) decodes to its declared length and CRC-32C or fails with
//    PrologDecodeFailed, the same way twice; a ZstdParent prolog's history is kPrologHistory;
//  - a successful decode holds bytes whose per-chunk CRC-32C matches the header, and a second
//    decode through another path (chunk by chunk, into another buffer) gives the same bytes, and
//    so does a decode of a sub-range (on two threads); a failed decode fails the same way again.
// Predicted tensors are decoded against deterministic pseudo-random reference bytes, a function
// of (tensor name, byte offset) only, so every path sees the same reference. Every input is
// also tried with its header and preamble CRC-32C recomputed, so that mutations of the header
// reach the FlatBuffers verifier and the semantic pass. See fuzz/README.md.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_set>
#include <vector>

#include "ckz/archive.h"
#include "ckz/decoder.h"
#include "ckz/status.h"
#include "ckz/types.h"
#include "common/bytes.h"
#include "common/crc32c.h"
#include "common/utf8.h"
#include "format/chunk_layout.h"
#include "format/preamble.h"
#include "format/rules.h"
#include "fuzz_check.h"
#include "fuzz_reference.h"

namespace {

using ckz::ErrorCode;

// Tight limits keep every input fast: a tensor decodes to at most 4 MiB.
constexpr uint64_t kMaxTensorBytes = uint64_t{4} << 20;
constexpr uint64_t kMaxHeaderBytes = uint64_t{1} << 20;
// Decoded bytes per input, over all tensors and all decode paths. A tensor that does not fit
// in what is left is decoded chunk by chunk while chunks fit.
constexpr uint64_t kDecodeBudget = uint64_t{24} << 20;

bool KnownCode(ErrorCode code) {
  return code != ErrorCode::kOk && std::strcmp(ckz::ErrorCodeName(code), "Unknown") != 0;
}

bool CodeIn(ErrorCode code, const std::vector<ErrorCode>& allowed) {
  return std::find(allowed.begin(), allowed.end(), code) != allowed.end();
}

// An error is well formed: a known code, one this stage may return, and a message.
void CheckError(const ckz::Status& s, bool allowed) {
  FUZZ_CHECK(!s.ok());
  FUZZ_CHECK(KnownCode(s.code()));
  FUZZ_CHECK(allowed);
  FUZZ_CHECK(!s.message().empty());
  FUZZ_CHECK(!s.ToString().empty());
}
void CheckError(const ckz::Status& s, const std::vector<ErrorCode>& allowed) {
  CheckError(s, CodeIn(s.code(), allowed));
}

// Codes the preamble parser may return.
const std::vector<ErrorCode> kPreambleCodes = {
    ErrorCode::kTruncated,         ErrorCode::kBadMagic,
    ErrorCode::kTextModeCorruption, ErrorCode::kUnsupportedVersion,
    ErrorCode::kUnknownRequiredFeature, ErrorCode::kPreambleChecksum,
    ErrorCode::kHeaderOutOfBounds, ErrorCode::kHeaderTooLarge,
    ErrorCode::kMisaligned};

// Codes ParseArchive may return: the container's, and the reader's limit.
bool IsContainerCode(ErrorCode code) {
  const auto v = static_cast<uint16_t>(code);
  return code == ErrorCode::kLimitExceeded || (v >= 10 && v <= 31);
}

// The parent prolog every ZstdParent prolog is decoded against (make_container_corpus codes its
// seed against the same bytes, so the success path is reachable).
constexpr char kPrologHistory[] = "CKZ fuzz parent prolog: {\"step\": 100, \"files\": [\"model.pt\"]}";
constexpr uint64_t kMaxPrologBytes = uint64_t{1} << 20;  // the harness's reader limit

// Codes decoding may return: payload errors (our ReferenceSource never fails), among them a
// codebook index beyond the codebook, which a quantized stream can decode to (more so against
// our reference's parent, which has no indices: 7.7.2's temporal context left out); and (0.9)
// ReferenceRequired for level chunks coded with a model the parent holds, which is not open.
std::vector<ErrorCode> DecodeCodes(const ckz::Archive& a) {
  std::vector<ErrorCode> codes = {ErrorCode::kChunkMalformed, ErrorCode::kChunkDecodeFailed,
                                  ErrorCode::kChunkChecksum, ErrorCode::kCodebookIndex};
  if (a.lstm_model_from_parent && !a.lstm_model) codes.push_back(ErrorCode::kReferenceRequired);
  return codes;
}

using ckz_fuzz::FillReference;
using ckz_fuzz::HashBytes;
using ckz_fuzz::SplitMix64;

class FuzzReference final : public ckz::ReferenceSource {
 public:
  explicit FuzzReference(const ckz::Archive& a) : archive_(a) {}
  ckz::Status ReadReference(const ckz::TensorInfo& t, uint64_t offset,
                            ckz::MutableByteSpan out) override {
    // The decoder asks only for tensors of this archive: a predicted one (a predictor, or a
    // quantization predicted from the parent) one whole chunk at a time, or (0.7) the step
    // source of a level tensor at the elements of one of that tensor's chunks.
    FUZZ_CHECK(!archive_.tensors.empty() && &t >= &archive_.tensors.front() &&
               &t <= &archive_.tensors.back());
    FUZZ_CHECK(offset <= t.byte_length && out.size <= t.byte_length - offset);
    if (out.size == 0) return ckz::Status::Ok();  // rule R3's check of an empty tensor
    bool expected = false;
    if (t.NeedsReference())
      for (const ckz::ChunkInfo& c : t.chunks)
        expected |= c.raw_offset == offset && c.raw_length == out.size;
    const int32_t index = int32_t(&t - &archive_.tensors.front());
    const uint64_t w = ckz::DTypeSize(t.dtype);
    for (const ckz::TensorInfo& u : archive_.tensors) {
      if (!u.quantization || u.quantization->step_source != index) continue;
      const uint64_t uw = ckz::DTypeSize(u.dtype);
      for (const ckz::ChunkInfo& c : u.chunks)
        expected |= c.raw_offset / uw * w == offset && c.raw_length / uw * w == out.size;
    }
    FUZZ_CHECK(expected);
    FillReference(t.name, offset, out.data, out.size);
    return ckz::Status::Ok();
  }
  // A parent without quantized tensors of these names (spec 7.7.2, 7.9.3: no temporal
  // context), which the decoder must take as well as a parent that has them.
  ckz::Status ReadReferenceIndices(const ckz::TensorInfo&, uint64_t, ckz::MutableByteSpan,
                                   uint32_t* centres) override {
    *centres = 0;
    return ckz::Status::Ok();
  }

 private:
  const ckz::Archive& archive_;
};

void CheckPreambleFields(const ckz::Preamble& p, const uint8_t* bytes, uint64_t file_size) {
  namespace o = ckz::preamble_offset;
  FUZZ_CHECK(std::memcmp(bytes, ckz::kMagic, sizeof ckz::kMagic) == 0);
  FUZZ_CHECK(ckz::Crc32c(bytes, o::kPreambleCrc) == ckz::LoadLE32(bytes + o::kPreambleCrc));
  FUZZ_CHECK(p.major == ckz::kFormatMajor);
  FUZZ_CHECK(p.minor == ckz::LoadLE16(bytes + o::kMinor));
  FUZZ_CHECK((p.required_features & ~ckz::kKnownRequiredFeatures) == 0);
  FUZZ_CHECK(p.optional_features == ckz::LoadLE64(bytes + o::kOptionalFeatures));
  FUZZ_CHECK(p.header_offset == ckz::LoadLE64(bytes + o::kHeaderOffset));
  FUZZ_CHECK(p.header_length == ckz::LoadLE64(bytes + o::kHeaderLength));
  FUZZ_CHECK(p.header_crc32c == ckz::LoadLE32(bytes + o::kHeaderCrc));
  FUZZ_CHECK(p.header_length <= ckz::kMaxHeaderBytes);
  FUZZ_CHECK(p.header_offset >= ckz::kPreambleSize && p.header_offset % ckz::kAlignment == 0);
  FUZZ_CHECK(p.header_offset <= file_size && p.header_length <= file_size - p.header_offset);
}

bool SamePreamble(const ckz::Preamble& a, const ckz::Preamble& b) {
  return a.major == b.major && a.minor == b.minor && a.required_features == b.required_features &&
         a.optional_features == b.optional_features && a.header_offset == b.header_offset &&
         a.header_length == b.header_length && a.header_crc32c == b.header_crc32c;
}

// Re-checks a parsed archive against the rules of spec section 9, without the parser's code.
void CheckArchive(const ckz::Archive& a, ckz::ByteSpan file) {
  FUZZ_CHECK(a.file.data == file.data && a.file.size == file.size);
  CheckPreambleFields(a.preamble, file.data, file.size);
  FUZZ_CHECK(a.preamble.header_length <= kMaxHeaderBytes);
  if (a.preamble.required_features & ckz::kFeatureCodedHeader) {
    // (0.6) One zstd frame that decodes to the FlatBuffers buffer (spec 4.1).
    static const uint8_t kZstdMagic[4] = {0x28, 0xB5, 0x2F, 0xFD};
    FUZZ_CHECK(a.preamble.header_length >= 4);
    FUZZ_CHECK(std::memcmp(file.data + a.preamble.header_offset, kZstdMagic, 4) == 0);
    FUZZ_CHECK(a.header_bytes >= 8 && a.header_bytes <= kMaxHeaderBytes);
  } else {
    FUZZ_CHECK(a.preamble.header_length >= 8 && a.header_bytes == a.preamble.header_length);
    FUZZ_CHECK(std::memcmp(file.data + a.preamble.header_offset + 4, "CKZH", 4) == 0);
  }
  FUZZ_CHECK(ckz::Crc32c(file.data + a.preamble.header_offset, a.preamble.header_length) ==
             a.preamble.header_crc32c);
  const bool chain = (a.preamble.required_features & ckz::kFeatureReferenceChain) != 0;
  FUZZ_CHECK(a.link.has_value() == chain);
  if (a.link) {
    FUZZ_CHECK(a.link->depth >= 1);
    if (!a.link->path_hint.empty())
      FUZZ_CHECK(ckz::CheckRelativePath(a.link->path_hint, "hint").ok());
  }
  FUZZ_CHECK(ckz::IsValidUtf8(a.writer));

  struct Region {
    uint64_t offset, length;
  };
  std::vector<Region> regions = {{0, ckz::kPreambleSize},
                                 {a.preamble.header_offset, a.preamble.header_length}};
  FUZZ_CHECK(a.index_by_name.size() == a.tensors.size());
  uint64_t total_raw = 0;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const ckz::TensorInfo& t = a.tensors[i];
    FUZZ_CHECK(ckz::CheckName(t.name, "name").ok());
    FUZZ_CHECK(a.FindTensor(t.name) == i);
    const auto dtype = static_cast<uint8_t>(t.dtype);
    FUZZ_CHECK(dtype >= 1 && dtype <= ckz::kMaxDType);
    FUZZ_CHECK(static_cast<uint8_t>(t.role) <= ckz::kMaxRole);
    FUZZ_CHECK(static_cast<uint8_t>(t.predictor) <= ckz::kMaxPredictor);
    FUZZ_CHECK(t.predictor == ckz::Predictor::kNone || a.link.has_value());
    FUZZ_CHECK(t.shape.size() <= ckz::kMaxNdim);
    const uint64_t width = ckz::DTypeSize(t.dtype);
    FUZZ_CHECK(width == 1 || width == 2 || width == 4 || width == 8);
    unsigned __int128 elements = 1;
    for (uint64_t d : t.shape) {
      elements *= d;
      if (elements > (unsigned __int128)1 << 64) elements = (unsigned __int128)1 << 64;
    }
    FUZZ_CHECK(elements == t.num_elements);
    FUZZ_CHECK((unsigned __int128)t.num_elements * width == t.byte_length);
    FUZZ_CHECK(t.byte_length <= kMaxTensorBytes);
    total_raw += t.byte_length;

    // Owners: a moment of another, same-shape weight.
    if (t.owner != -1) {
      FUZZ_CHECK(t.owner >= 0 && size_t(t.owner) < a.tensors.size() && size_t(t.owner) != i);
      FUZZ_CHECK(t.role == ckz::Role::kMoment1 || t.role == ckz::Role::kMoment2);
      FUZZ_CHECK(a.tensors[size_t(t.owner)].role == ckz::Role::kWeight);
      FUZZ_CHECK(a.tensors[size_t(t.owner)].shape == t.shape);
    }

    uint64_t raw = 0, stored = 0;
    for (const ckz::ChunkInfo& c : t.chunks) {
      FUZZ_CHECK(c.offset % ckz::kAlignment == 0);
      FUZZ_CHECK(c.stored_length >= 1);
      FUZZ_CHECK(c.offset <= file.size && c.stored_length <= file.size - c.offset);
      FUZZ_CHECK(c.raw_length >= 1 && c.raw_length <= ckz::kMaxChunkRawBytes);
      FUZZ_CHECK(c.raw_length % width == 0);
      FUZZ_CHECK(c.raw_offset == raw);
      raw += c.raw_length;
      FUZZ_CHECK(raw <= t.byte_length);
      stored += c.stored_length;
      regions.push_back({c.offset, c.stored_length});
    }
    FUZZ_CHECK(raw == t.byte_length);
    FUZZ_CHECK(stored == t.stored_length);
    FUZZ_CHECK(t.chunks.empty() == (t.byte_length == 0));
  }
  FUZZ_CHECK(a.TotalRawBytes() == total_raw);

  // Layout: regions do not overlap; each gap is the zero padding up to a 64-byte boundary;
  // nothing follows the last region.
  std::sort(regions.begin(), regions.end(),
            [](const Region& x, const Region& y) { return x.offset < y.offset; });
  FUZZ_CHECK(regions[0].offset == 0);
  for (size_t i = 1; i < regions.size(); ++i) {
    const uint64_t prev_end = regions[i - 1].offset + regions[i - 1].length;
    FUZZ_CHECK(regions[i].offset >= prev_end);
    FUZZ_CHECK(regions[i].offset - prev_end < ckz::kAlignment);
    for (uint64_t p = prev_end; p < regions[i].offset; ++p) FUZZ_CHECK(file.data[p] == 0);
  }
  FUZZ_CHECK(regions.back().offset + regions.back().length == file.size);

  // Source files: valid unique paths; tensors listed at most once, all of them when any file
  // is present, none by a raw file.
  std::unordered_set<std::string> paths;
  std::vector<int> listed(a.tensors.size(), 0);
  bool coded = false;
  for (const ckz::SourceFileInfo& f : a.files) {
    FUZZ_CHECK(ckz::CheckRelativePath(f.path, "path").ok());
    FUZZ_CHECK(paths.insert(f.path).second);
    FUZZ_CHECK(static_cast<uint8_t>(f.format) <= ckz::kMaxSourceFormat);
    FUZZ_CHECK(f.format != ckz::SourceFormat::kRaw || f.tensors.empty());
    for (uint32_t t : f.tensors) {
      FUZZ_CHECK(t < a.tensors.size());
      FUZZ_CHECK(++listed[t] == 1);
    }
    FUZZ_CHECK(static_cast<uint8_t>(f.prolog_codec) <= ckz::kMaxPrologCodec);
    if (f.prolog_codec == ckz::PrologCodec::kStored) {
      FUZZ_CHECK(f.prolog_coded.empty() && f.prolog_length == 0 && f.prolog_crc32c == 0);
    } else {
      FUZZ_CHECK(!f.prolog_coded.empty() && f.prolog.empty());
      FUZZ_CHECK(f.prolog_length >= 1 && f.prolog_length <= kMaxPrologBytes);
      FUZZ_CHECK(f.prolog_codec != ckz::PrologCodec::kZstdParent || a.link.has_value());
      coded = true;
    }
  }
  FUZZ_CHECK(coded == ((a.preamble.required_features & ckz::kFeatureCodedProlog) != 0));
  if (!a.files.empty())
    for (int n : listed) FUZZ_CHECK(n == 1);

  // Metadata: valid unique keys, UTF-8 strings.
  std::unordered_set<std::string> keys;
  for (const ckz::MetaEntry& e : a.metadata) {
    FUZZ_CHECK(ckz::CheckName(e.key, "key").ok());
    FUZZ_CHECK(keys.insert(e.key).second);
    FUZZ_CHECK(a.FindMetadata(e.key) == &e);
    if (const auto* s = std::get_if<std::string>(&e.value)) FUZZ_CHECK(ckz::IsValidUtf8(*s));
  }
  // (0.9) Rules LM1-LM3: a model the parser accepts is well formed and stored; a reference to
  // the parent's is in a link and alone; bit 8 says whether there is either.
  if (a.lstm_model_own) FUZZ_CHECK(a.lstm_model && a.lstm_model->WellFormed());
  if (!a.lstm_model_own) FUZZ_CHECK(!a.lstm_model);  // the parser never resolves a reference
  if (a.lstm_model_from_parent) FUZZ_CHECK(a.link && !a.lstm_model_own);
  FUZZ_CHECK(((a.preamble.required_features & ckz::kFeatureLstm) != 0) ==
             (a.lstm_model_own || a.lstm_model_from_parent));
}

// Checks one chunk's stream directory; returns whether it reads.
bool CheckStreamDirectory(const ckz::Archive& a, size_t t, size_t c) {
  const ckz::TensorInfo& tensor = a.tensors[t];
  const ckz::ChunkInfo& chunk = tensor.chunks[c];
  ckz::Result<std::vector<ckz::StreamInfo>> dir = ckz::ReadStreamDirectory(a, t, c);
  if (!dir.ok()) {
    CheckError(dir.status(), {ErrorCode::kChunkMalformed});
    return false;
  }
  const size_t count =
      ckz::StreamCount(tensor.predictor, tensor.byte_planes, ckz::DTypeSize(tensor.dtype));
  FUZZ_CHECK(dir->size() == count);
  // (0.8) KeySplit streams' decoded lengths follow from the reference: 0 in the directory.
  const bool key_split = tensor.predictor == ckz::Predictor::kKeySplit;
  uint64_t pos = chunk.offset + count * ckz::kStreamEntryBytes;
  uint64_t raw = 0;
  // What each stream decodes to (7.1): a quantized chunk's one stream holds a symbol per
  // element (1 byte each, or 4 for levels), any other chunk's streams L / S bytes each.
  const uint64_t stream_raw =
      tensor.quantization
          ? chunk.raw_length / ckz::DTypeSize(tensor.dtype) * tensor.quantization->SymbolBytes()
          : chunk.raw_length / count;
  for (const ckz::StreamInfo& s : *dir) {
    FUZZ_CHECK(static_cast<uint8_t>(s.codec) <= ckz::kMaxStreamCodec);
    FUZZ_CHECK(s.offset == pos);
    pos += s.stored_length;
    FUZZ_CHECK(pos <= chunk.offset + chunk.stored_length);
    FUZZ_CHECK(s.raw_length == (key_split ? 0 : stream_raw));
    FUZZ_CHECK(!key_split || static_cast<uint8_t>(s.codec) <= 1);
    raw += s.raw_length;
  }
  FUZZ_CHECK(pos == chunk.offset + chunk.stored_length);
  FUZZ_CHECK(raw == (key_split ? 0 : stream_raw * count));
  return true;
}

// Decodes chunk `c` of tensor `t` on its own into a fresh buffer.
ckz::Status DecodeChunk(ckz::ChunkDecoder& decoder, const ckz::Archive& a, size_t t, size_t c,
                        FuzzReference& reference, std::vector<uint8_t>* out) {
  const ckz::TensorInfo& tensor = a.tensors[t];
  const ckz::ChunkInfo& chunk = tensor.chunks[c];
  std::vector<uint8_t> ref;
  if (tensor.NeedsReference()) {
    ref.resize(chunk.raw_length);
    FillReference(tensor.name, chunk.raw_offset, ref.data(), ref.size());
  }
  out->assign(chunk.raw_length, 0xA5);
  return decoder.Decode(a, t, c, ckz::ByteSpan(ref), ckz::MutableByteSpan(*out), &reference);
}

void CheckTensor(const ckz::Archive& a, size_t t, uint64_t seed, uint64_t* budget) {
  const std::vector<ErrorCode> decode_codes = DecodeCodes(a);
  const ckz::TensorInfo& tensor = a.tensors[t];
  std::vector<bool> directory_ok(tensor.chunks.size());
  for (size_t c = 0; c < tensor.chunks.size(); ++c) directory_ok[c] = CheckStreamDirectory(a, t, c);

  FuzzReference reference(a);
  ckz::ChunkDecoder decoder;
  std::vector<uint8_t> piece;

  if (tensor.byte_length * 2 > *budget) {
    // Too big for what is left: chunks on their own while they fit.
    for (size_t c = 0; c < tensor.chunks.size(); ++c) {
      const ckz::ChunkInfo& chunk = tensor.chunks[c];
      if (chunk.raw_length > *budget) break;
      *budget -= chunk.raw_length;
      const ckz::Status s = DecodeChunk(decoder, a, t, c, reference, &piece);
      if (s.ok()) {
        FUZZ_CHECK(directory_ok[c]);
        FUZZ_CHECK(ckz::Crc32c(piece.data(), piece.size()) == chunk.crc32c);
      } else {
        CheckError(s, decode_codes);
        FUZZ_CHECK(directory_ok[c] || s.code() == ErrorCode::kChunkMalformed);
      }
    }
    return;
  }
  *budget -= tensor.byte_length * 2;

  // 1. The whole tensor through DecodeTensorRange.
  std::vector<uint8_t> whole(tensor.byte_length, 0x5A);
  const ckz::Status s = ckz::DecodeTensorRange(a, t, 0, ckz::MutableByteSpan(whole), &reference);

  // 2. Chunk by chunk into other buffers: the same bytes, or the same first failure.
  ckz::Status first_failure;
  for (size_t c = 0; c < tensor.chunks.size(); ++c) {
    const ckz::ChunkInfo& chunk = tensor.chunks[c];
    const ckz::Status cs = DecodeChunk(decoder, a, t, c, reference, &piece);
    if (cs.ok()) {
      FUZZ_CHECK(directory_ok[c]);
      FUZZ_CHECK(ckz::Crc32c(piece.data(), piece.size()) == chunk.crc32c);
      if (s.ok()) FUZZ_CHECK(std::memcmp(piece.data(), whole.data() + chunk.raw_offset,
                                         chunk.raw_length) == 0);
    } else {
      CheckError(cs, decode_codes);
      if (!directory_ok[c]) FUZZ_CHECK(cs.code() == ErrorCode::kChunkMalformed);
      if (first_failure.ok()) first_failure = cs;
    }
  }
  if (s.ok()) {
    FUZZ_CHECK(first_failure.ok());
    for (const ckz::ChunkInfo& chunk : tensor.chunks)
      FUZZ_CHECK(ckz::Crc32c(whole.data() + chunk.raw_offset, chunk.raw_length) ==
                 chunk.crc32c);
  } else {
    CheckError(s, decode_codes);
    FUZZ_CHECK(!first_failure.ok());
    FUZZ_CHECK(s.code() == first_failure.code());
    FUZZ_CHECK(s.message() == first_failure.message());
  }

  // 3. A sub-range, on two threads when it spans chunks: the same bytes as the whole.
  if (s.ok() && tensor.byte_length > 0) {
    const uint64_t r = SplitMix64(seed ^ t);
    const uint64_t begin = r % tensor.byte_length;
    const uint64_t length = (r >> 32) % (tensor.byte_length - begin + 1);
    std::vector<uint8_t> part(length, 0xC3);
    ckz::DecodeOptions options;
    options.threads = 2;
    const ckz::Status ps =
        ckz::DecodeTensorRange(a, t, begin, ckz::MutableByteSpan(part), &reference, options);
    FUZZ_CHECK(ps.ok());
    FUZZ_CHECK(length == 0 || std::memcmp(part.data(), whole.data() + begin, length) == 0);
  }
  // A predicted chunk without its reference bytes, and an output of the wrong size, are
  // refused before anything is decoded.
  if (!tensor.chunks.empty()) {
    const ckz::ChunkInfo& chunk = tensor.chunks[0];
    std::vector<uint8_t> out(chunk.raw_length + 1);
    CheckError(decoder.Decode(a, t, 0, ckz::ByteSpan(),
                              ckz::MutableByteSpan(out.data(), chunk.raw_length + 1)),
               {ErrorCode::kInvalidArgument});
    if (tensor.NeedsReference())
      CheckError(decoder.Decode(a, t, 0, ckz::ByteSpan(out.data(), chunk.raw_length - 1),
                                ckz::MutableByteSpan(out.data(), chunk.raw_length)),
                 {ErrorCode::kReferenceRequired});
  }
  // Out-of-range requests are refused, not read.
  uint8_t one = 0;
  const ckz::Status oob =
      ckz::DecodeTensorRange(a, t, tensor.byte_length, ckz::MutableByteSpan(&one, 1), &reference);
  CheckError(oob, {ErrorCode::kInvalidArgument});
  if (tensor.NeedsReference() && tensor.byte_length > 0) {
    std::vector<uint8_t> out(std::min<uint64_t>(tensor.byte_length, 64));
    CheckError(ckz::DecodeTensorRange(a, t, 0, ckz::MutableByteSpan(out), nullptr),
               {ErrorCode::kReferenceRequired});
  }
}

void CheckPreambleAlone(const uint8_t* data, size_t size) {
  const ckz::ByteSpan first(data, std::min<size_t>(size, ckz::kPreambleSize));
  // Against the real file size, and against a file size taken from the input (huge values
  // and values near the header range test the overflow checks).
  uint64_t sizes[2] = {size, size};
  if (size >= ckz::kPreambleSize + 8) sizes[1] = ckz::LoadLE64(data + ckz::kPreambleSize);
  for (uint64_t file_size : sizes) {
    ckz::Result<ckz::Preamble> p = ckz::ParsePreamble(first, file_size);
    if (p.ok()) {
      FUZZ_CHECK(first.size == ckz::kPreambleSize && file_size >= ckz::kPreambleSize);
      CheckPreambleFields(*p, data, file_size);
    } else {
      CheckError(p.status(), kPreambleCodes);
    }
  }
}

// Mutations rarely keep the checksums right, and a wrong header CRC-32C stops the parse before
// the FlatBuffers verifier and the semantic pass. So each input is also tried with the header
// and preamble checksums recomputed (when the preamble's header range lies inside the input).
std::vector<uint8_t> WithChecksumsFixed(const uint8_t* data, size_t size) {
  namespace o = ckz::preamble_offset;
  if (size < ckz::kPreambleSize) return {};
  std::vector<uint8_t> f(data, data + size);
  const uint64_t offset = ckz::LoadLE64(f.data() + o::kHeaderOffset);
  const uint64_t length = ckz::LoadLE64(f.data() + o::kHeaderLength);
  if (offset <= size && length <= size - offset)
    ckz::StoreLE32(f.data() + o::kHeaderCrc, ckz::Crc32c(f.data() + offset, size_t(length)));
  ckz::StoreLE32(f.data() + o::kPreambleCrc, ckz::Crc32c(f.data(), o::kPreambleCrc));
  return f;
}

void CheckFile(const uint8_t* data, size_t size) {
  const ckz::ByteSpan file(data, size);

  CheckPreambleAlone(data, size);

  ckz::Limits limits;
  limits.max_header_bytes = kMaxHeaderBytes;
  limits.max_tensor_bytes = kMaxTensorBytes;
  limits.max_prolog_bytes = kMaxPrologBytes;
  ckz::Result<ckz::Archive> parsed = ckz::ParseArchive(file, limits);

  // The preamble alone decides the same way as the whole parse, as far as it goes.
  ckz::Result<ckz::Preamble> preamble =
      ckz::ParsePreamble(ckz::ByteSpan(data, std::min<size_t>(size, ckz::kPreambleSize)), size);
  if (!preamble.ok()) {
    FUZZ_CHECK(!parsed.ok());
    FUZZ_CHECK(parsed.status().code() == preamble.status().code());
  }
  if (!parsed.ok()) {
    CheckError(parsed.status(), IsContainerCode(parsed.status().code()));
    return;
  }
  FUZZ_CHECK(preamble.ok());
  const ckz::Archive& a = *parsed;
  FUZZ_CHECK(SamePreamble(a.preamble, *preamble));
  CheckArchive(a, file);

  // A parse is a pure function of the bytes: a second one over a copy agrees.
  std::vector<uint8_t> copy(data, data + size);
  ckz::Result<ckz::Archive> again = ckz::ParseArchive(ckz::ByteSpan(copy), limits);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->tensors.size() == a.tensors.size() && again->content_id == a.content_id &&
             again->metadata.size() == a.metadata.size() && again->files.size() == a.files.size());
  // The same file under a lower tensor limit fails with kLimitExceeded exactly when a tensor
  // is above it.
  uint64_t largest = 0;
  for (const ckz::TensorInfo& t : a.tensors) largest = std::max(largest, t.byte_length);
  if (largest > 0) {
    ckz::Limits lower = limits;
    lower.max_tensor_bytes = largest - 1;
    ckz::Result<ckz::Archive> limited = ckz::ParseArchive(file, lower);
    FUZZ_CHECK(!limited.ok() && limited.status().code() == ErrorCode::kLimitExceeded);
  }

  // ... and under a lower header limit with kHeaderTooLarge.
  ckz::Limits small_header = limits;
  small_header.max_header_bytes = a.preamble.header_length - 1;
  ckz::Result<ckz::Archive> too_large = ckz::ParseArchive(file, small_header);
  FUZZ_CHECK(!too_large.ok() && too_large.status().code() == ErrorCode::kHeaderTooLarge);

  // Coded prologs: a pure function of the frame (and history), checked to length and CRC.
  for (const ckz::SourceFileInfo& f : a.files) {
    if (f.prolog_codec == ckz::PrologCodec::kStored) continue;
    const ckz::ByteSpan history(reinterpret_cast<const uint8_t*>(kPrologHistory),
                                sizeof kPrologHistory - 1);
    ckz::SourceFileInfo first = f, second = f;
    const ckz::Status s1 = ckz::DecodeProlog(&first, history);
    const ckz::Status s2 = ckz::DecodeProlog(&second, history);
    FUZZ_CHECK(s1.code() == s2.code());
    if (!s1.ok()) {
      CheckError(s1, {ErrorCode::kPrologDecodeFailed});
      continue;
    }
    FUZZ_CHECK(first.prolog.size() == f.prolog_length && first.prolog == second.prolog);
    FUZZ_CHECK(ckz::Crc32c(first.prolog.data(), first.prolog.size()) == f.prolog_crc32c);
  }

  const uint64_t seed = HashBytes(data, std::min<size_t>(size, 256), size);
  uint64_t budget = kDecodeBudget;
  for (size_t t = 0; t < a.tensors.size(); ++t) CheckTensor(a, t, seed, &budget);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // libFuzzer never passes null, but a replay of an empty file may.
  static const uint8_t kEmpty[1] = {0};
  if (data == nullptr) data = kEmpty;
  CheckFile(data, size);
  const std::vector<uint8_t> fixed = WithChecksumsFixed(data, size);
  if (!fixed.empty() && std::memcmp(fixed.data(), data, size) != 0)
    CheckFile(fixed.data(), fixed.size());
  return 0;
}
