// What the context coders of one chunk read besides its own stream: spec 7.7.2's parent and aux
// indices (cm, lstm-cm) and 7.9.3's parent and aux levels (cml, lstm), decoded as every decoder
// derives them. Shared by the chunk decoder and the LSTM trainer's sample reader, so both see
// the same inputs.
#ifndef CKZ_DECOMPRESS_CODER_INPUTS_H_
#define CKZ_DECOMPRESS_CODER_INPUTS_H_

#include <cstdint>
#include <vector>

#include "ckz/archive.h"
#include "ckz/decoder.h"
#include "common/index_model.h"
#include "common/level_model.h"

namespace ckz {

// The inputs of elements [first, first + count) of level tensor t: `parent` and `aux` receive
// the levels `in` then points at (null where there are none). kReferenceRequired in a link
// without `source`; errors decoding the parent's or the aux tensor's levels keep their codes.
Status LevelInputs(const Archive& archive, size_t t, uint64_t first, uint64_t count,
                   ReferenceSource* source, IndexCache* cache, std::vector<int32_t>* parent,
                   std::vector<int32_t>* aux, LevelModelInputs* in);

// The cm inputs of elements [first, first + count) of codebook tensor t (in.lstm left null):
// `parent` and `aux` receive the indices `in` points at. Errors as LevelInputs'.
Status CmInputs(const Archive& archive, size_t t, uint64_t first, uint64_t count,
                ReferenceSource* source, IndexCache* cache, std::vector<uint8_t>* parent,
                std::vector<uint8_t>* aux, IndexModelInputs* in);

}  // namespace ckz

#endif  // CKZ_DECOMPRESS_CODER_INPUTS_H_
