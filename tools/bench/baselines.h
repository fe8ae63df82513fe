// The baselines ckz_bench measures next to our codec: zstd and xz of whole files, and the
// ZipNN-style byte shuffle (byte planes of each element) followed by zstd.
#ifndef CKZ_TOOLS_BENCH_BASELINES_H_
#define CKZ_TOOLS_BENCH_BASELINES_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ckz/types.h"

namespace ckz::bench {

// One-shot zstd with reusable contexts (single-threaded: libzstd's default nbWorkers = 0).
class Zstd {
 public:
  Zstd();
  ~Zstd();
  Zstd(const Zstd&) = delete;
  Zstd& operator=(const Zstd&) = delete;

  // Replaces *out with one zstd frame of `in`. False (and *error) on failure.
  bool Compress(ByteSpan in, int level, std::vector<uint8_t>* out, std::string* error);
  // Decodes one frame into exactly `out.size` bytes.
  bool Decompress(ByteSpan in, MutableByteSpan out, std::string* error);

 private:
  struct Contexts;
  std::unique_ptr<Contexts> ctx_;
};

// xz container, liblzma preset `preset` (9 = xz -9), CRC64 check like the xz tool.
bool XzCompress(ByteSpan in, uint32_t preset, std::vector<uint8_t>* out, std::string* error);
bool XzDecompress(ByteSpan in, MutableByteSpan out, std::string* error);

// Byte planes: out[p * n + i] = in[i * width + p] for n = size / width elements.
void ShuffleBytes(const uint8_t* in, size_t size, size_t width, uint8_t* out);
void UnshuffleBytes(const uint8_t* in, size_t size, size_t width, uint8_t* out);

}  // namespace ckz::bench

#endif  // CKZ_TOOLS_BENCH_BASELINES_H_
