#include "source_assembly.h"

#include "ckz/torch.h"

namespace ckz::testing {

std::vector<uint8_t> AssembleSourceFile(
    const SourceFileInfo& f, const std::function<const std::vector<uint8_t>&(size_t k)>& bytes_of) {
  auto split = [&](size_t k) { return f.splits.empty() ? f.prolog.size() : f.splits[k]; };
  std::vector<uint8_t> out;
  uint64_t pos = 0;
  for (size_t k = 0; k < f.tensors.size(); ++k) {
    out.insert(out.end(), f.prolog.begin() + long(pos), f.prolog.begin() + long(split(k)));
    pos = split(k);
    const std::vector<uint8_t>& b = bytes_of(k);
    out.insert(out.end(), b.begin(), b.end());
  }
  out.insert(out.end(), f.prolog.begin() + long(pos), f.prolog.end());
  for (const Crc32Patch& p : f.crc32_patches) {
    uint64_t at = p.prolog_offset;
    for (size_t k = 0; k < f.tensors.size(); ++k)
      if (split(k) <= p.prolog_offset) at += bytes_of(k).size();
    const uint32_t crc = ZipCrc32(ByteSpan(bytes_of(p.tensor)));
    for (int i = 0; i < 4; ++i) out[at + size_t(i)] = uint8_t(crc >> (8 * i));
  }
  return out;
}

}  // namespace ckz::testing
