// Encoder-side chunk coding: picks a tensor's predictor and plane split, and encodes chunks
// in the layout of spec 7.2. Choices here are free (not normative); the layout is not.
#ifndef CKZ_COMPRESS_CHUNK_ENCODER_H_
#define CKZ_COMPRESS_CHUNK_ENCODER_H_

#include <memory>
#include <optional>
#include <vector>

#include "ckz/types.h"
#include "common/index_model.h"
#include "common/level_model.h"
#include "ckz/writer.h"

namespace ckz {

struct TensorCoding {
  Predictor predictor = Predictor::kNone;
  bool byte_planes = false;
  bool float_model = false;  // chunks are one cmf stream (spec 7.8); then byte_planes is false
};

// Picks the (predictor, planes) pair whose streams have the lowest order-0 entropy on a
// sample of the tensor, then, for an F32 tensor of a link, cmf instead when it codes the
// sample smaller than zstd does; for an F16 or BF16 tensor of a link, KeySplit (spec 7.10)
// when its streams code the sample smaller than that pair's. `reference` empty: only kNone is considered.
TensorCoding ChooseCoding(DType dtype, ByteSpan data, ByteSpan reference,
                          const EncodeOptions& options);

// One per thread: holds a zstd context and buffers.
class ChunkEncoder {
 public:
  ChunkEncoder();
  ~ChunkEncoder();
  // Encodes `data` (one chunk; `reference` its co-located parent bytes or empty) into `out`.
  void Encode(const TensorCoding& coding, DType dtype, ByteSpan data, ByteSpan reference,
              const EncodeOptions& options, std::vector<uint8_t>* out);
  // A quantized chunk (spec 7.6): its single stream of `indices`, `bits` wide; `cm` are the
  // chunk's cm contexts (spec 7.7.2). (0.11) With cm.lstm set, lstm-cm (spec 7.11.7) is one
  // more candidate.
  void EncodeIndices(ByteSpan indices, unsigned bits, const IndexModelInputs& cm,
                     const EncodeOptions& options, std::vector<uint8_t>* out);

  // (0.7) A level chunk (spec 7.9): its single cml stream of `count` levels. (0.9) With
  // cml.lstm set, also coded with the model (codec 6, spec 7.11), kept when smaller (always
  // with `force_lstm`): true then.
  bool EncodeLevels(const int32_t* levels, size_t count, const LevelModelInputs& cml,
                    bool force_lstm, std::vector<uint8_t>* out);

  // Buffers for a chunk's inputs fetched by the writer (ChunkContexts), reused from chunk to
  // chunk on this thread.
  struct Inputs {
    std::vector<uint8_t> reference, parent, aux, step_source;
    std::vector<int32_t> parent_levels, aux_levels;
    std::vector<int8_t> shifts;
  };
  Inputs& inputs() { return inputs_; }

 private:
  struct Scratch;
  std::unique_ptr<Scratch> scratch_;
  Inputs inputs_;
  std::vector<uint8_t> lstm_stream_;  // the second coding of EncodeLevels and EncodeIndices
};

}  // namespace ckz

#endif  // CKZ_COMPRESS_CHUNK_ENCODER_H_
