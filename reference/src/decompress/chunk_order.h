// The order in which decoding workers take chunks (DecodeTensorRanges' scheduler). Pure: no
// threads here, so the policy is tested on its own.
#ifndef CKZ_DECOMPRESS_CHUNK_ORDER_H_
#define CKZ_DECOMPRESS_CHUNK_ORDER_H_

#include <cstddef>
#include <set>
#include <vector>

namespace ckz {

inline constexpr size_t kNoItem = ~size_t{0};

// The item `worker` takes next from `ready` (indices into the work list, whose order is the
// priority order; must not be empty). `last[w]` is the item worker w took last (kNoItem if
// none). Neighbouring items are neighbouring chunks of a tensor, and a link's neighbouring
// chunks read the same parent chunk (256 KiB chunks read 1 MiB ones through the chain's chunk
// cache): two workers on neighbours would both miss it and decode it twice. So each worker
// walks a run: the item after its last one when that is ready; else the first item of the
// longest run of ready items, or the middle of that run when another worker's last item is
// just before it (that worker walks into the run from its start). With one worker this is the
// priority order itself.
size_t NextItem(const std::set<size_t>& ready, const std::vector<size_t>& last, size_t worker);

}  // namespace ckz

#endif  // CKZ_DECOMPRESS_CHUNK_ORDER_H_
