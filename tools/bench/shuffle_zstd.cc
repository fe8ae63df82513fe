// The byte-shuffle + zstd baseline of a safetensors file of any size, streamed, for the large
// benchmark (tools/history/bench_large.sh): each tensor's bytes in blocks of at most 64 MiB,
// each block's byte planes (ZipNN-style: every element's byte p together) as one zstd frame.
// ckz_bench measures the same baseline in memory on small histories.
//
//   ckz_shuffle_zstd compress LEVEL THREADS IN.safetensors OUT
//   ckz_shuffle_zstd decompress IN OUT
//
// OUT of compress: "CKZBSZ1\0", u64 le N, the input's first N bytes (its safetensors header),
// then per block: u64 le raw length, u32 le element width, u64 le frame length, the frame.
// A benchmark tool, not a format: nothing else reads these files.
#include <zstd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "baselines.h"
#include "ckz/io.h"
#include "ckz/safetensors.h"

namespace {

constexpr char kMagic[8] = {'C', 'K', 'Z', 'B', 'S', 'Z', '1', '\0'};
constexpr uint64_t kBlock = uint64_t{64} << 20;

[[noreturn]] void Die(const std::string& why) {
  fprintf(stderr, "ckz_shuffle_zstd: %s\n", why.c_str());
  exit(1);
}

void Put(FILE* f, const void* p, size_t n) {
  if (n && fwrite(p, 1, n, f) != n) Die("write failed");
}
void PutU64(FILE* f, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; ++i) b[i] = uint8_t(v >> (8 * i));
  Put(f, b, 8);
}
bool Get(FILE* f, void* p, size_t n) { return fread(p, 1, n, f) == n; }
uint64_t GetU64(FILE* f) {
  uint8_t b[8];
  if (!Get(f, b, 8)) Die("truncated input");
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(b[i]) << (8 * i);
  return v;
}

int Compress(int level, int threads, const char* in_path, const char* out_path) {
  auto mapped = ckz::MappedFile::Open(in_path);
  if (!mapped.ok()) Die(mapped.status().ToString());
  const ckz::ByteSpan file = mapped->bytes();
  auto header = ckz::ParseSafetensors(file);
  if (!header.ok()) Die(header.status().ToString());
  FILE* out = fopen(out_path, "wb");
  if (!out) Die(std::string("cannot create ") + out_path);
  Put(out, kMagic, 8);
  PutU64(out, header->data_start);
  Put(out, file.data, header->data_start);
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_nbWorkers, threads > 1 ? threads : 0);
  std::vector<uint8_t> planes(kBlock), frame(ZSTD_compressBound(kBlock));
  for (const ckz::SafetensorsEntry& t : header->tensors) {
    const uint64_t width = ckz::DTypeSize(t.dtype);
    const uint64_t block = kBlock / width * width;
    for (uint64_t at = t.begin; at < t.end; at += block) {
      const uint64_t n = std::min(block, t.end - at);
      const uint8_t* src = file.data + header->data_start + at;
      ckz::bench::ShuffleBytes(src, n, width, planes.data());
      const size_t size = ZSTD_compress2(cctx, frame.data(), frame.size(), planes.data(), n);
      if (ZSTD_isError(size)) Die(ZSTD_getErrorName(size));
      PutU64(out, n);
      const uint8_t w[4] = {uint8_t(width), 0, 0, 0};
      Put(out, w, 4);
      PutU64(out, size);
      Put(out, frame.data(), size);
      mapped->ReleasePages(header->data_start + at, header->data_start + at + n);
    }
  }
  ZSTD_freeCCtx(cctx);
  if (fclose(out) != 0) Die("write failed");
  return 0;
}

int Decompress(const char* in_path, const char* out_path) {
  FILE* in = fopen(in_path, "rb");
  if (!in) Die(std::string("cannot open ") + in_path);
  char magic[8];
  if (!Get(in, magic, 8) || memcmp(magic, kMagic, 8) != 0) Die("not a ckz_shuffle_zstd file");
  const uint64_t n_header = GetU64(in);
  if (n_header > (uint64_t{1} << 30)) Die("header too large");
  std::vector<uint8_t> head(n_header);
  if (!Get(in, head.data(), n_header)) Die("truncated input");
  FILE* out = fopen(out_path, "wb");
  if (!out) Die(std::string("cannot create ") + out_path);
  Put(out, head.data(), n_header);
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  std::vector<uint8_t> frame, planes(kBlock), raw(kBlock);
  uint8_t first;
  while (Get(in, &first, 1)) {
    if (ungetc(first, in) == EOF) Die("read failed");
    const uint64_t n = GetU64(in);
    uint8_t w[4];
    if (!Get(in, w, 4)) Die("truncated input");
    const uint64_t size = GetU64(in);
    if (n > kBlock || size > ZSTD_compressBound(kBlock) || w[0] == 0) Die("bad block");
    frame.resize(size);
    if (!Get(in, frame.data(), size)) Die("truncated input");
    const size_t got = ZSTD_decompressDCtx(dctx, planes.data(), n, frame.data(), size);
    if (ZSTD_isError(got) || got != n) Die("bad frame");
    ckz::bench::UnshuffleBytes(planes.data(), n, w[0], raw.data());
    Put(out, raw.data(), n);
  }
  ZSTD_freeDCtx(dctx);
  fclose(in);
  if (fclose(out) != 0) Die("write failed");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && strcmp(argv[1], "compress") == 0)
    return Compress(atoi(argv[2]), atoi(argv[3]), argv[4], argv[5]);
  if (argc == 4 && strcmp(argv[1], "decompress") == 0) return Decompress(argv[2], argv[3]);
  fprintf(stderr,
          "usage: ckz_shuffle_zstd compress LEVEL THREADS IN.safetensors OUT\n"
          "       ckz_shuffle_zstd decompress IN OUT\n");
  return 2;
}
