#include "compress/chunk_encoder.h"

// ZSTD_compressSequences (literals-only frames) is in zstd's experimental API; Debian's libzstd
// exports it, and what it writes is an ordinary frame any zstd decoder reads.
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include <array>
#include <cmath>
#include <cstring>

#include "common/bytes.h"
#include "common/float_model.h"
#include "common/key_split.h"
#include "common/transforms.h"
#include "format/chunk_layout.h"

namespace ckz {
namespace {

// Order-0 entropy of `n` bytes, in bits. Encoder heuristics only, never in a decode path.
double EntropyBits(const uint8_t* p, size_t n) {
  if (n == 0) return 0;
  // Four interleaved histograms avoid store-to-load stalls on runs of equal bytes.
  std::array<std::array<uint32_t, 256>, 4> h{};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    ++h[0][p[i]];
    ++h[1][p[i + 1]];
    ++h[2][p[i + 2]];
    ++h[3][p[i + 3]];
  }
  for (; i < n; ++i) ++h[0][p[i]];
  double bits = 0;
  for (int b = 0; b < 256; ++b) {
    const uint32_t c = h[0][b] + h[1][b] + h[2][b] + h[3][b];
    if (c) bits -= double(c) * std::log2(double(c) / double(n));
  }
  return bits;
}

// Sets `cctx` up for one zstd frame of `n` bytes into `out`, as every chunk stream is written:
// deterministic (single-threaded), content size in the header, no frame checksum (the chunk
// CRC covers the decoded bytes).
void StartFrame(ZSTD_CCtx* cctx, size_t n, int level, std::vector<uint8_t>* out) {
  out->resize(ZSTD_compressBound(n));
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);
}

// zstd's own frame of the `n` bytes; its size or a zstd error code.
size_t ZstdFrame(ZSTD_CCtx* cctx, const uint8_t* src, size_t n, int level,
                 std::vector<uint8_t>* out) {
  StartFrame(cctx, n, level, out);
  return ZSTD_compress2(cctx, out->data(), out->size(), src, n);
}

// The same frame with no matches at all: every block's bytes are Huffman-coded literals (or
// raw, or RLE, whichever zstd finds smaller). A float's exponent plane is close to independent
// bytes of a few bits each; zstd's match finder spends bits on short spurious matches there, and
// its decoder is then bound by executing them. Literals-only decodes 2-2.5x faster on such
// planes and is often smaller (docs/large-checkpoints.md); where real matches exist (zero runs,
// repeated rows) ZstdFrame wins, and the encoder keeps the smaller of the two.
size_t ZstdLiteralsFrame(ZSTD_CCtx* cctx, const uint8_t* src, size_t n, int level,
                         std::vector<uint8_t>* out) {
  StartFrame(cctx, n, level, out);
#if ZSTD_VERSION_NUMBER >= 10500  // the API as it has been since zstd 1.5.0
  return ZSTD_compressSequences(cctx, out->data(), out->size(), nullptr, 0, src, n);
#else
  (void)src, (void)n;
  return size_t(-ZSTD_error_GENERIC);  // older zstd: the matched frame alone
#endif
}

// Above this many bits per byte a stream is stored: zstd would not pay for its time.
constexpr double kIncompressibleBitsPerByte = 7.97;
// Bytes a stream costs besides its data: its directory entry, and a zstd frame's header.
constexpr double kStreamOverheadBytes = kStreamEntryBytes + 9;
// The coding choice looks at this many bytes, taken as slices spread over the tensor.
constexpr size_t kSampleSlices = 4;
constexpr size_t kSampleSliceBytes = 1 << 14;

// Estimated stored bytes of `sample` coded as `streams` streams.
double StreamsCost(const std::vector<uint8_t>& transformed, size_t streams) {
  const size_t len = transformed.size() / streams;
  double bytes = 0;
  for (size_t s = 0; s < streams; ++s) {
    const double coded = EntropyBits(transformed.data() + s * len, len) / 8;
    bytes += std::min(coded + kStreamOverheadBytes, double(len) + kStreamEntryBytes);
  }
  return bytes;
}

// cmf against the byte-plane pipeline's `coding`, both coded for real on the sample (the
// cmf model's gain, 2-5 % of a link, is below the order-0 estimate's error).
bool FloatModelWins(const TensorCoding& coding, const std::vector<uint8_t>& sample,
                    const std::vector<uint8_t>& sample_ref, int level) {
  const size_t streams = StreamCount(coding.byte_planes, 4);
  std::vector<uint8_t> transformed(sample.size()), buf;
  ForwardTransform(coding.predictor, coding.byte_planes, 4, sample.data(),
                   coding.predictor == Predictor::kNone ? nullptr : sample_ref.data(),
                   sample.size(), transformed.data());
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  size_t planes = 0;
  const size_t len = sample.size() / streams;
  for (size_t s = 0; s < streams; ++s) {
    const size_t r = ZstdFrame(cctx, transformed.data() + s * len, len, level, &buf);
    planes += ZSTD_isError(r) ? len : std::min(r, len);  // else stored
  }
  ZSTD_freeCCtx(cctx);
  std::vector<uint8_t> coded;
  EncodeFloatStream(sample.data(), sample_ref.data(), sample.size() / 4, &coded);
  return coded.size() + kStreamEntryBytes < planes + streams * kStreamEntryBytes;
}

// KeySplit (spec 7.10) against the byte-plane pipeline's `coding`, both with real zstd on the
// sample: the symbol streams' gain is in what zstd's entropy stage does with them.
bool KeySplitWins(DType dtype, const TensorCoding& coding, const std::vector<uint8_t>& sample,
                  const std::vector<uint8_t>& sample_ref, int level) {
  const size_t width = 2, streams = StreamCount(coding.byte_planes, width);
  std::vector<uint8_t> transformed(sample.size()), buf;
  ForwardTransform(coding.predictor, coding.byte_planes, width, sample.data(),
                   coding.predictor == Predictor::kNone ? nullptr : sample_ref.data(),
                   sample.size(), transformed.data());
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  auto coded = [&](const uint8_t* p, size_t n) {
    const size_t r = n ? ZstdFrame(cctx, p, n, level, &buf) : 0;
    return kStreamEntryBytes + (ZSTD_isError(r) ? n : std::min(r, n));  // else stored
  };
  size_t planes = 0;
  const size_t len = sample.size() / streams;
  for (size_t s = 0; s < streams; ++s) planes += coded(transformed.data() + s * len, len);
  std::vector<uint8_t> symbols[kKeySplitClasses], bits;
  KeySplitForward(dtype, sample.data(), sample_ref.data(), sample.size() / 2, symbols, &bits);
  size_t split = coded(bits.data(), bits.size());
  for (const std::vector<uint8_t>& s : symbols) split += coded(s.data(), s.size());
  ZSTD_freeCCtx(cctx);
  return split < planes;
}

}  // namespace

TensorCoding ChooseCoding(DType dtype, ByteSpan data, ByteSpan reference,
                          const EncodeOptions& options) {
  const size_t width = DTypeSize(dtype);
  // cmf: forced, or (float_codec unset) a candidate in links unless a codec or a plane split is
  // forced.
  const bool float_forced = dtype == DType::kF32 &&
                            (options.float_codec == StreamCodec::kCmFloat ||
                             options.force_codec == StreamCodec::kCmFloat);
  const bool float_candidate = dtype == DType::kF32 && !reference.empty() &&
                               !options.float_codec && !options.force_codec &&
                               !options.force_byte_planes && data.size >= 4;
  if (float_forced) {
    TensorCoding c;
    c.float_model = true;
    if (!reference.empty()) c.predictor = options.force_predictor.value_or(Predictor::kSubRef);
    return c;
  }
  std::vector<Predictor> predictors = {Predictor::kNone};
  if (!reference.empty()) predictors = {Predictor::kXorRef, Predictor::kSubRef, Predictor::kNone};
  const bool sixteen = dtype == DType::kF16 || dtype == DType::kBF16;
  if (options.force_predictor == Predictor::kKeySplit) {
    TensorCoding c;
    if (sixteen && !reference.empty()) c.predictor = Predictor::kKeySplit;
    return c;  // (other dtypes, or no reference: None, no planes)
  }
  // KeySplit: a candidate for the 16-bit floats of a link unless a coding is forced.
  const bool key_split_candidate = options.key_split && sixteen && !reference.empty() &&
                                   !options.force_predictor &&
                                   !options.force_codec && !options.force_byte_planes &&
                                   data.size >= 2;
  if (options.force_predictor)
    predictors = {reference.empty() ? Predictor::kNone : *options.force_predictor};
  std::vector<bool> planes = {true, false};
  if (width == 1) planes = {false};
  if (options.force_byte_planes) planes = {*options.force_byte_planes};
  if (predictors.size() * planes.size() == 1 && !float_candidate && !key_split_candidate)
    return {predictors[0], planes[0]};

  // The sample: whole-element slices at evenly spaced places (all of a small tensor).
  std::vector<uint8_t> sample, sample_ref;
  const size_t slice = std::max<size_t>(kSampleSliceBytes / width, 1) * width;
  if (data.size <= kSampleSlices * slice) {
    sample.assign(data.begin(), data.end());
    if (!reference.empty()) sample_ref.assign(reference.begin(), reference.end());
  } else {
    const size_t elements = data.size / width;
    for (size_t k = 0; k < kSampleSlices; ++k) {
      const size_t begin = (elements - slice / width) * k / (kSampleSlices - 1) * width;
      sample.insert(sample.end(), data.data + begin, data.data + begin + slice);
      if (!reference.empty())
        sample_ref.insert(sample_ref.end(), reference.data + begin, reference.data + begin + slice);
    }
  }
  std::vector<uint8_t> transformed(sample.size());
  TensorCoding best;
  double best_cost = INFINITY;
  for (Predictor p : predictors) {
    for (bool split : planes) {
      ForwardTransform(p, split, width, sample.data(),
                       sample_ref.empty() ? nullptr : sample_ref.data(), sample.size(),
                       transformed.data());
      const double cost = StreamsCost(transformed, StreamCount(split, width));
      if (cost < best_cost) {
        best_cost = cost;
        best = {p, split};
      }
    }
  }
  if (float_candidate && FloatModelWins(best, sample, sample_ref, options.zstd_level)) {
    TensorCoding c;
    c.predictor = options.force_predictor.value_or(Predictor::kSubRef);
    c.float_model = c.predictor != Predictor::kNone;
    if (c.float_model) return c;
  }
  if (key_split_candidate && KeySplitWins(dtype, best, sample, sample_ref, options.zstd_level))
    return {Predictor::kKeySplit, false};
  return best;
}

struct ChunkEncoder::Scratch {
  ZSTD_CCtx* cctx = nullptr;
  int level = 0;
  std::vector<uint8_t> transformed;
  std::vector<uint8_t> packed, literals;
  std::vector<uint8_t> key_symbols[kKeySplitClasses], key_bits;
  ~Scratch() { ZSTD_freeCCtx(cctx); }
};

ChunkEncoder::ChunkEncoder() : scratch_(new Scratch) {}
ChunkEncoder::~ChunkEncoder() = default;

void ChunkEncoder::Encode(const TensorCoding& coding, DType dtype, ByteSpan data,
                          ByteSpan reference, const EncodeOptions& options,
                          std::vector<uint8_t>* out) {
  if (coding.float_model) {
    // Spec 7.8: one cmf stream of the values, predicted by the reference when there is one.
    out->assign(kStreamEntryBytes, 0);
    (*out)[0] = uint8_t(StreamCodec::kCmFloat);
    EncodeFloatStream(data.data, coding.predictor == Predictor::kNone ? nullptr : reference.data,
                      data.size / 4, out);
    StoreLE32(out->data() + 1, uint32_t(out->size() - kStreamEntryBytes));
    return;
  }
  Scratch& s = *scratch_;
  // Stream i's `n` bytes, stored or zstd (spec 7.2), after the directory.
  auto append = [&](size_t i, const uint8_t* src, size_t n) {
    StreamCodec codec = StreamCodec::kStored;
    size_t packed = 0;
    const bool try_zstd =
        options.force_codec ? *options.force_codec == StreamCodec::kZstd
                            : n > 0 && EntropyBits(src, n) < kIncompressibleBitsPerByte * double(n);
    if (try_zstd) {
      if (!s.cctx) s.cctx = ZSTD_createCCtx();
      size_t r = ZstdFrame(s.cctx, src, n, options.zstd_level, &s.packed);
      const size_t l = ZstdLiteralsFrame(s.cctx, src, n, options.zstd_level, &s.literals);
      // Ties go to the literals-only frame, the faster to decode.
      if (!ZSTD_isError(l) && (ZSTD_isError(r) || l <= r)) r = l, s.packed.swap(s.literals);
      const bool forced = options.force_codec.has_value();
      if (!ZSTD_isError(r) && (r < n || forced)) {
        codec = StreamCodec::kZstd;
        packed = r;
      }
    }
    uint8_t* entry = out->data() + i * kStreamEntryBytes;
    entry[0] = uint8_t(codec);
    if (codec == StreamCodec::kZstd) {
      StoreLE32(entry + 1, uint32_t(packed));
      out->insert(out->end(), s.packed.data(), s.packed.data() + packed);
    } else {
      StoreLE32(entry + 1, uint32_t(n));
      out->insert(out->end(), src, src + n);
    }
  };
  if (coding.predictor == Predictor::kKeySplit) {
    // Spec 7.10: nine symbol streams by the reference's exponent class, then the low bits.
    KeySplitForward(dtype, data.data, reference.data, data.size / 2, s.key_symbols, &s.key_bits);
    out->assign(kKeySplitStreams * kStreamEntryBytes, 0);
    for (size_t c = 0; c < kKeySplitClasses; ++c)
      append(c, s.key_symbols[c].data(), s.key_symbols[c].size());
    append(kKeySplitClasses, s.key_bits.data(), s.key_bits.size());
    return;
  }
  const size_t width = DTypeSize(dtype);
  const size_t streams = StreamCount(coding.byte_planes, width);
  const size_t stream_raw = data.size / streams;
  s.transformed.resize(data.size);
  ForwardTransform(coding.predictor, coding.byte_planes, width, data.data,
                   coding.predictor == Predictor::kNone ? nullptr : reference.data, data.size,
                   s.transformed.data());
  out->assign(streams * kStreamEntryBytes, 0);
  for (size_t i = 0; i < streams; ++i) append(i, s.transformed.data() + i * stream_raw, stream_raw);
}

namespace {

void PackIndices(ByteSpan indices, unsigned bits, std::vector<uint8_t>* out) {
  out->assign(PackedBytes(indices.size, bits), 0);
  uint64_t bit = 0;
  for (size_t i = 0; i < indices.size; ++i, bit += bits) {
    const uint32_t v = uint32_t(indices.data[i]) << (bit % 8);
    (*out)[bit / 8] |= uint8_t(v);
    if ((bit % 8) + bits > 8) (*out)[bit / 8 + 1] |= uint8_t(v >> 8);
  }
}

}  // namespace

void ChunkEncoder::EncodeIndices(ByteSpan indices, unsigned bits, const IndexModelInputs& cm,
                                 const EncodeOptions& options, std::vector<uint8_t>* out) {
  Scratch& s = *scratch_;
  // Candidates: packed, zstd of the index bytes, cm; the smallest wins unless one is forced.
  const bool auto_choice = !options.index_codec.has_value();
  StreamCodec forced = options.index_codec.value_or(StreamCodec::kStored);
  if (forced == StreamCodec::kLstmIndices && !cm.lstm) forced = StreamCodec::kCm;  // no model
  auto wanted = [&](StreamCodec c) { return auto_choice || forced == c; };
  std::vector<uint8_t> packed, coded;
  if (wanted(StreamCodec::kPacked)) PackIndices(indices, bits, &packed);
  IndexModelInputs plain = cm;
  plain.lstm = nullptr;
  if (wanted(StreamCodec::kCm)) EncodeIndexStream(plain, indices.data, indices.size, &coded);
  // (0.11) With a model, cm mixed with it too (codec lstm-cm, spec 7.11.7), kept when smaller.
  std::vector<uint8_t>& mixed = lstm_stream_;
  mixed.clear();
  if (cm.lstm && wanted(StreamCodec::kLstmIndices))
    EncodeIndexStream(cm, indices.data, indices.size, &mixed);
  size_t zstd_size = SIZE_MAX;
  if (wanted(StreamCodec::kZstd)) {
    if (!s.cctx) s.cctx = ZSTD_createCCtx();
    const size_t r =
        ZstdFrame(s.cctx, indices.data, indices.size, options.zstd_level, &s.packed);
    if (!ZSTD_isError(r)) zstd_size = r;
  }
  StreamCodec codec = forced;
  if (auto_choice) {
    // Ties go to the simpler codec: packed, then zstd, then cm.
    codec = StreamCodec::kPacked;
    size_t best = packed.size();
    if (zstd_size < best) codec = StreamCodec::kZstd, best = zstd_size;
    if (coded.size() < best) codec = StreamCodec::kCm, best = coded.size();
    if (cm.lstm && mixed.size() < best) codec = StreamCodec::kLstmIndices;
  }
  if (codec == StreamCodec::kZstd && zstd_size == SIZE_MAX) codec = StreamCodec::kStored;

  out->assign(kStreamEntryBytes, 0);
  (*out)[0] = uint8_t(codec);
  const uint8_t* data = indices.data;
  size_t size = indices.size;
  if (codec == StreamCodec::kZstd) {
    data = s.packed.data();
    size = zstd_size;
  } else if (codec == StreamCodec::kPacked) {
    data = packed.data();
    size = packed.size();
  } else if (codec == StreamCodec::kCm) {
    data = coded.data();
    size = coded.size();
  } else if (codec == StreamCodec::kLstmIndices) {
    data = mixed.data();
    size = mixed.size();
  }
  StoreLE32(out->data() + 1, uint32_t(size));
  out->insert(out->end(), data, data + size);
}

bool ChunkEncoder::EncodeLevels(const int32_t* levels, size_t count, const LevelModelInputs& cml,
                                bool force_lstm, std::vector<uint8_t>* out) {
  LevelModelInputs plain = cml;
  plain.lstm = nullptr;
  out->assign(kStreamEntryBytes, 0);
  (*out)[0] = uint8_t(StreamCodec::kCmLevels);
  EncodeLevelStream(plain, levels, count, out);
  StoreLE32(out->data() + 1, uint32_t(out->size() - kStreamEntryBytes));
  if (cml.lstm == nullptr) return false;
  std::vector<uint8_t>& mixed = lstm_stream_;
  mixed.assign(kStreamEntryBytes, 0);
  mixed[0] = uint8_t(StreamCodec::kLstmLevels);
  EncodeLevelStream(cml, levels, count, &mixed);
  if (!force_lstm && mixed.size() >= out->size()) return false;
  StoreLE32(mixed.data() + 1, uint32_t(mixed.size() - kStreamEntryBytes));
  out->swap(mixed);
  return true;
}

}  // namespace ckz
