#include "decompress/chunk_order.h"

namespace ckz {

size_t NextItem(const std::set<size_t>& ready, const std::vector<size_t>& last, size_t worker) {
  const size_t mine = last[worker];
  if (mine != kNoItem && ready.count(mine + 1)) return mine + 1;
  // The longest run of consecutive ready items (the first on a tie), among the first
  // kScanned: a worker looks for a new run only a few times per call, but never scans a
  // whole checkpoint's chunks each time.
  constexpr size_t kScanned = 4096;
  size_t best_first = *ready.begin(), best_length = 0, scanned = 0;
  for (auto it = ready.begin(); it != ready.end() && scanned < kScanned;) {
    const size_t first = *it;
    size_t length = 1;
    for (++it; it != ready.end() && *it == first + length; ++it) ++length;
    scanned += length;
    if (length > best_length) best_first = first, best_length = length;
  }
  bool walked_into = false;
  for (size_t w = 0; w < last.size(); ++w)
    walked_into |= w != worker && best_first > 0 && last[w] == best_first - 1;
  return walked_into ? best_first + best_length / 2 : best_first;
}

}  // namespace ckz
