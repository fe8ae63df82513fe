#include "baselines.h"

#include <lzma.h>
#include <zstd.h>

#include <cstring>

namespace ckz::bench {

struct Zstd::Contexts {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~Contexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};

Zstd::Zstd() : ctx_(new Contexts) {}
Zstd::~Zstd() = default;

bool Zstd::Compress(ByteSpan in, int level, std::vector<uint8_t>* out, std::string* error) {
  out->resize(ZSTD_compressBound(in.size));
  const size_t n = ZSTD_compressCCtx(ctx_->c, out->data(), out->size(), in.data, in.size, level);
  if (ZSTD_isError(n)) {
    *error = std::string("zstd compress: ") + ZSTD_getErrorName(n);
    return false;
  }
  out->resize(n);
  return true;
}

bool Zstd::Decompress(ByteSpan in, MutableByteSpan out, std::string* error) {
  const size_t n = ZSTD_decompressDCtx(ctx_->d, out.data, out.size, in.data, in.size);
  if (ZSTD_isError(n)) {
    *error = std::string("zstd decompress: ") + ZSTD_getErrorName(n);
    return false;
  }
  if (n != out.size) {
    *error =
        "zstd decompress: " + std::to_string(n) + " bytes, expected " + std::to_string(out.size);
    return false;
  }
  return true;
}

bool XzCompress(ByteSpan in, uint32_t preset, std::vector<uint8_t>* out, std::string* error) {
  out->resize(lzma_stream_buffer_bound(in.size));
  size_t pos = 0;
  const lzma_ret r = lzma_easy_buffer_encode(preset, LZMA_CHECK_CRC64, nullptr, in.data, in.size,
                                             out->data(), &pos, out->size());
  if (r != LZMA_OK) {
    *error = "lzma_easy_buffer_encode failed (" + std::to_string(int(r)) + ")";
    return false;
  }
  out->resize(pos);
  return true;
}

bool XzDecompress(ByteSpan in, MutableByteSpan out, std::string* error) {
  uint64_t memlimit = UINT64_MAX;
  size_t in_pos = 0, out_pos = 0;
  const lzma_ret r = lzma_stream_buffer_decode(&memlimit, 0, nullptr, in.data, &in_pos, in.size,
                                               out.data, &out_pos, out.size);
  if (r != LZMA_OK || in_pos != in.size || out_pos != out.size) {
    *error = "lzma_stream_buffer_decode failed (" + std::to_string(int(r)) + "), " +
             std::to_string(out_pos) + " of " + std::to_string(out.size) + " bytes";
    return false;
  }
  return true;
}

namespace {

template <size_t W>
void Shuffle(const uint8_t* in, size_t n, uint8_t* out) {
  for (size_t i = 0; i < n; ++i)
    for (size_t p = 0; p < W; ++p) out[p * n + i] = in[i * W + p];
}

template <size_t W>
void Unshuffle(const uint8_t* in, size_t n, uint8_t* out) {
  for (size_t i = 0; i < n; ++i)
    for (size_t p = 0; p < W; ++p) out[i * W + p] = in[p * n + i];
}

}  // namespace

void ShuffleBytes(const uint8_t* in, size_t size, size_t width, uint8_t* out) {
  const size_t n = width ? size / width : 0;
  switch (width) {
    case 2:
      Shuffle<2>(in, n, out);
      break;
    case 4:
      Shuffle<4>(in, n, out);
      break;
    case 8:
      Shuffle<8>(in, n, out);
      break;
    default:
      std::memcpy(out, in, size);
      break;  // 1-byte elements: one plane
  }
}

void UnshuffleBytes(const uint8_t* in, size_t size, size_t width, uint8_t* out) {
  const size_t n = width ? size / width : 0;
  switch (width) {
    case 2:
      Unshuffle<2>(in, n, out);
      break;
    case 4:
      Unshuffle<4>(in, n, out);
      break;
    case 8:
      Unshuffle<8>(in, n, out);
      break;
    default:
      std::memcpy(out, in, size);
      break;
  }
}

}  // namespace ckz::bench
