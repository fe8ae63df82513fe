// The level chunks of a written link with the contexts a decoder has for them (spec 7.9.3's
// parent and aux levels), or its codebook chunks with theirs (7.7.2), read back through the
// link's chain: what the LSTM trainer
// (lstm_trainer.h) learns from and what lstm_measure codes both ways. No libtorch here.
#ifndef CKZ_TRAIN_LEVEL_SAMPLES_H_
#define CKZ_TRAIN_LEVEL_SAMPLES_H_

#include <cstdint>
#include <vector>

#include "ckz/io.h"
#include "common/index_model.h"
#include "common/level_model.h"
#include "train/lstm_trainer.h"

namespace ckz {

struct LevelChunkSample {
  size_t tensor = 0;   // index in the link's header
  uint32_t role = 0;   // LstmRoleOf
  uint64_t row = 0;    // the last dimension, 0 for a 1-D tensor
  uint64_t first = 0;  // the chunk's first element
  std::vector<int32_t> levels, parent, aux;  // parent/aux empty when the chunk has none

  // The cml inputs of the chunk (no model set).
  LevelModelInputs Inputs() const;
};

// The level chunks of the link `reader` has open, in header order; with `max_elements` > 0
// about that many elements of them, every k-th chunk (memory stays bounded on a large
// checkpoint). Levels, parent and aux levels are decoded as a decoder does.
Result<std::vector<LevelChunkSample>> ReadLevelChunks(ChainReader& reader,
                                                      uint64_t max_elements = 0);

// The trainer's view of the samples (pointing into them).
std::vector<LstmTrainingChunk> TrainingChunks(const std::vector<LevelChunkSample>& samples);

// (0.11) The codebook chunks of a link (spec 7.7.2's indices with their parent and aux
// indices), for lstm-cm (spec 7.11.7): as ReadLevelChunks, for the ExCP path.
struct IndexChunkSample {
  size_t tensor = 0;
  uint32_t role = 0;
  uint64_t row = 0, first = 0;
  uint32_t centres = 0, parent_centres = 0, aux_centres = 0;
  std::vector<uint8_t> indices, parent, aux;  // parent/aux empty when the chunk has none

  IndexModelInputs Inputs() const;  // no model set
};

Result<std::vector<IndexChunkSample>> ReadIndexChunks(ChainReader& reader,
                                                      uint64_t max_elements = 0);
std::vector<LstmTrainingChunk> TrainingChunks(const std::vector<IndexChunkSample>& samples);

}  // namespace ckz

#endif  // CKZ_TRAIN_LEVEL_SAMPLES_H_
