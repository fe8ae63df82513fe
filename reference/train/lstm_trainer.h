// The encoder-side trainer of the LSTM model (spec 7.11): fits the float network to a sample
// of the level (or, 7.11.7, index) streams about to be coded, then quantizes it to the integer model the
// format stores. The only part of CKZ that uses libtorch (target ckz_lstm_train); nothing on
// the decode path includes this header.
#ifndef CKZ_TRAIN_LSTM_TRAINER_H_
#define CKZ_TRAIN_LSTM_TRAINER_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/index_model.h"
#include "common/level_model.h"

namespace ckz {

// One chunk's levels with the cml inputs a decoder has for it (in.lstm is ignored), or (0.11)
// a codebook chunk's indices with its cm inputs (spec 7.11.7; index_in.lstm ignored).
struct LstmTrainingChunk {
  LevelModelInputs in;
  const int32_t* levels = nullptr;
  IndexModelInputs index_in;
  const uint8_t* indices = nullptr;  // set for an index chunk (levels null)
  size_t count = 0;
};

struct LstmTrainOptions {
  uint32_t hidden = 16;        // H: 8, 16, 24 or 32
  uint32_t clip = 7;           // features' range -clip..clip (1..7)
  uint32_t window = 64;        // elements per training sequence (truncated backpropagation)
  uint32_t batch = 128;        // sequences per step
  size_t sample_elements = 1u << 19;  // elements drawn from the chunks (whole windows)
  uint32_t max_steps = 400;    // optimizer steps at most ...
  double max_seconds = 30.0;   // ... and at most this long (checked between steps)
  double learning_rate = 0.01;
  // The last quarter of the steps with the forward pass rounded as the integer model rounds
  // (weights, activation tables, cell, output), gradients passed straight through.
  bool quantization_aware = true;
  uint64_t seed = 1;
};

struct LstmTrainReport {
  uint32_t steps = 0;
  double seconds = 0;
  double first_loss = 0, last_loss = 0;  // mean bits per mixed decision, over a step's batch
  double cml_loss = 0;                   // cml alone on the same decisions
};

// Trains on windows drawn from `chunks` (deterministic for a seed and a machine; the result
// may differ between BLAS libraries, which is harmless: the stored integers are what codes).
LstmModel TrainLevelLstm(const std::vector<LstmTrainingChunk>& chunks,
                         const LstmTrainOptions& options, LstmTrainReport* report = nullptr);

}  // namespace ckz

#endif  // CKZ_TRAIN_LSTM_TRAINER_H_
