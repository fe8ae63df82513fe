// Spec 7.9.3: what the cml (and lstm) level coder of one chunk reads besides its own stream:
// the parent's levels of the tensor and the aux levels, decoded as every decoder derives them.
// Shared by the chunk decoder and the LSTM trainer's sample reader, so both see the same inputs.
#ifndef CKZ_DECOMPRESS_LEVEL_INPUTS_H_
#define CKZ_DECOMPRESS_LEVEL_INPUTS_H_

#include <cstdint>
#include <vector>

#include "ckz/archive.h"
#include "ckz/decoder.h"
#include "common/level_model.h"

namespace ckz {

// The inputs of elements [first, first + count) of level tensor t: `parent` and `aux` receive
// the levels `in` then points at (null where there are none). kReferenceRequired in a link
// without `source`; errors decoding the parent's or the aux tensor's levels keep their codes.
Status LevelInputs(const Archive& archive, size_t t, uint64_t first, uint64_t count,
                   ReferenceSource* source, IndexCache* cache, std::vector<int32_t>* parent,
                   std::vector<int32_t>* aux, LevelModelInputs* in);

}  // namespace ckz

#endif  // CKZ_DECOMPRESS_LEVEL_INPUTS_H_
