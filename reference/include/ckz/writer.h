// Streaming writer: tensors are encoded and appended as they come (bounded memory: a window
// of chunks per thread), the header goes last and the preamble is patched at the end. Output
// goes to an OutputSink; the file sink (ckz/io.h) writes a temporary file and renames it
// into place only on Commit, so an interrupted write never leaves a file under its final name.
#ifndef CKZ_WRITER_H_
#define CKZ_WRITER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ckz/archive.h"
#include "ckz/status.h"
#include "ckz/types.h"

namespace ckz {

class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual Status Write(ByteSpan bytes) = 0;                      // append
  virtual Status WriteAt(uint64_t offset, ByteSpan bytes) = 0;   // overwrite written bytes
  virtual Status Commit() = 0;                                   // publish the result
};

// Collects the file in memory (tests, fuzz seeds, conformance tools).
class MemorySink final : public OutputSink {
 public:
  Status Write(ByteSpan bytes) override;
  Status WriteAt(uint64_t offset, ByteSpan bytes) override;
  Status Commit() override { return Status::Ok(); }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

struct EncodeOptions {
  int threads = 1;                    // the output never depends on it
  // Raw bytes per chunk (rounded down to whole elements; the last chunk of a tensor holds the
  // rest), or 0: automatic, each tensor split into as few equal chunks as 1 MiB (lossless
  // tensors) or 256 KiB (quantized ones) allows. Quantized indices decode several times slower
  // per byte, so their smaller chunks keep every decoding thread busy on models whose few large
  // tensors hold most of the bytes (cost: ~0.5 % of a lossy link, docs/benchmark.md).
  uint64_t chunk_bytes = 0;
  int zstd_level = 3;
  // Encoder choices are normally automatic; these force one (tests, conformance vectors).
  std::optional<Predictor> force_predictor;
  std::optional<bool> force_byte_planes;
  std::optional<StreamCodec> force_codec;  // (0.9) kLstmLevels: every level chunk with the model
  // Index streams of quantized tensors: zstd, packed, cm, or (unset) the smallest per chunk.
  std::optional<StreamCodec> index_codec;
  // (0.6) Values of unquantized F32 tensors: the byte-plane pipeline (kZstd, the default), the
  // cmf context model (kCmFloat, spec 7.8), or (unset) cmf in links where it codes a sample of
  // the tensor smaller than zstd does. cmf saves 2-5 % of a lossless link but decodes ~20x
  // slower than zstd (docs/lossless-planes.md), so it is asked for, not the default.
  std::optional<StreamCodec> float_codec = StreamCodec::kZstd;
  // (0.8) F16 and BF16 tensors of links: the KeySplit predictor (spec 7.10) where its streams
  // code a sample smaller than the byte planes do. It decodes at zstd's speed, so it is on by
  // default; false keeps the 0.7 byte-plane coding (no required feature bit 7).
  bool key_split = true;
  // (0.6) Store the header as one zstd frame when that is smaller (spec 4.1, required feature
  // bit 5): 3-9 % of a default lossy link, 11-24 % in ExCP's paper regime (docs/benchmark.md).
  bool code_header = true;
  // (0.5) Prologs: stored, zstd, zstd against the parent's prolog, or (unset) the smallest.
  std::optional<PrologCodec> prolog_codec;
  // Called from the writing thread with the number of input bytes encoded so far.
  std::function<void(uint64_t)> progress;
};

// (0.4) What the cm index codec's contexts see of a quantized tensor (spec 7.7.2), as whole-
// tensor index arrays. The caller must pass exactly what a decoder will derive: `parent`, the
// parent link's indices of the tensor of the same name (when the parent's tensor is quantized
// with the same dtype and shape), and `aux`, the indices of the tensor CmAuxTensor names.
struct IndexContexts {
  ByteSpan parent;
  uint32_t parent_centres = 0;  // 0: no parent indices
  ByteSpan aux;
  uint32_t aux_centres = 0;     // 0: no aux tensor
};

// (0.7) What the cml level codec's contexts see of a level tensor (spec 7.9.3), as whole-tensor
// level arrays (one i32 per element), or null: `parent`, the parent link's levels of the tensor
// of the same name when that tensor has a level kind and the same dtype and shape; `aux`, the
// levels of the tensor CmAuxTensor names among the level tensors.
struct LevelContexts {
  const int32_t* parent = nullptr;
  const int32_t* aux = nullptr;
};

// A lossy tensor's inputs fetched chunk by chunk, for a caller that does not hold them whole
// (compressing in bounded memory): each function fills what the elements [first, first +
// count) of the chunk being encoded need, `count` being out.size over the bytes per element;
// it is called from the encoding threads, several at once. An unset function: no such input.
struct ChunkContexts {
  // The reference (the parent's decoded tensor), for the residual kinds: those elements' bytes.
  std::function<Status(uint64_t first, MutableByteSpan out)> reference;
  // The cm / cml contexts (spec 7.7.2, 7.9.3): the parent's and the aux tensor's indices (one
  // byte each; their codebook sizes below) or levels (four bytes each, little-endian).
  std::function<Status(uint64_t first, MutableByteSpan out)> parent, aux;
  uint32_t parent_centres = 0, aux_centres = 0;  // indices only
  // (0.7) Level kinds with a step source: the parent's bytes of that tensor (of
  // `step_source_dtype`) at those elements.
  std::function<Status(uint64_t first, MutableByteSpan out)> step_source;
  DType step_source_dtype = DType::kF32;
};

struct TensorSpec {
  std::string name;
  DType dtype = DType::kInvalid;
  std::vector<uint64_t> shape;
  Role role = Role::kOther;
  int32_t owner = -1;
};

// What the writer does to every prolog before coding it (spec 8.1): the 4 bytes under each
// CRC-32 patch become 0 (decoders overwrite them anyway), so the prolog no longer depends on
// the tensors' values and codes better against the parent's. Patches outside the prolog are
// left for the writer's checks to report.
void ClearCrc32PatchBytes(SourceFileInfo* file);

// How many elements each chunk of a tensor gets (the last may hold fewer): the writer's layout,
// for encoders that adapt to chunk boundaries (each chunk's context model starts afresh).
uint64_t ChunkElements(const EncodeOptions& options, DType dtype, uint64_t elements,
                       bool quantized);

class Writer {
 public:
  Writer(std::unique_ptr<OutputSink> sink, EncodeOptions options);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  const EncodeOptions& options() const;

  void SetStep(int64_t step);
  // Makes the file a link of a chain. Tensors added with a reference are then predicted.
  void SetLink(const LinkInfo& link);
  // (0.9) An LSTM level model (spec 7.11), set before the first level tensor: each level chunk
  // is then coded with cml and with the model, and keeps the smaller (stream codec 6); (0.11)
  // each codebook chunk is coded with cm and with the model (codec 7, spec 7.11.7) too. The
  // header holds the model when some chunk uses it; with `from_parent` (a link whose parent's
  // model this is) it names the parent's instead, whether or not a chunk uses it, so the next
  // link can take it from this one. The caller makes sure the parent really has this model.
  // kInvalidArgument (and nothing set) for a model whose sizes the coder cannot run (hidden
  // above 32 or odd, clip above 7, arrays of other sizes than hidden and clip give), or
  // from_parent without a link set before. The other rules of spec 7.11.1 (shifts, the mixer's
  // range) are checked by readers (rule LM1); WellFormed() says whether a model meets them.
  Status SetLstmModel(std::shared_ptr<const LstmModel> model, bool from_parent);
  // Level and index chunks coded with the model so far.
  uint64_t lstm_chunks() const;
  // (0.10) The caller passes, as the aux levels of a link's level Weight, the parent's levels
  // of its Moment1 (spec 7.9.3; WeightMoment1's rule) instead of none: the file then sets
  // required feature bit 9, which tells decoders so, when some weight has them (a link whose
  // parent has no level Moment1, such as a keyframe's first link, keeps 0.9's contexts and no
  // bit). Off by default (0.9's contexts).
  void SetMomentContext(bool on);
  void SetWriterName(std::string name);
  void AddMetadata(MetaEntry entry);
  // Source files refer to tensors by their index (the order of AddTensor calls). The prolog's
  // CRC-32 patch bytes are cleared (ClearCrc32PatchBytes) and the prolog is coded (spec 8.4);
  // `parent_prolog`, when given, is the decoded prolog of the parent's files[parent_file], the
  // history it may be coded against.
  void AddSourceFile(SourceFileInfo file, ByteSpan parent_prolog = {}, uint32_t parent_file = 0);

  // Encodes and appends one tensor. `reference` is the parent's decoded bytes of the tensor of
  // the same name (same dtype and shape), or empty when it has none.
  Status AddTensor(const TensorSpec& spec, ByteSpan data, ByteSpan reference = {});

  // Appends a quantized tensor (spec 7.6, lossy): one index per element in `indices` (each at
  // most quant.codebook.size()); `reference` as above, needed for QuantKind::kResidual. Fills
  // `decoded` (the tensor's byte length) with the values every decoder reconstructs: the
  // reference of the next link in a chain.
  // `contexts` feed the cm codec (required when the file is a link or the tensor has an aux
  // tensor, should cm be chosen).
  Status AddQuantizedTensor(const TensorSpec& spec, const QuantizationInfo& quant,
                            ByteSpan indices, ByteSpan reference, MutableByteSpan decoded,
                            const IndexContexts& contexts = {});

  // (0.7) Appends a tensor quantized with a level kind (spec 7.9, lossy): `levels` holds one
  // level per element (|level| <= kMaxLevel); `reference` as above, for the residual kinds;
  // `step_source`, when quant.step_source >= 0, the parent's decoded bytes of that tensor
  // (`step_source_dtype`). Fills `decoded` like AddQuantizedTensor. Every span and pointer
  // must stay valid until the tensor is encoded (EndBatch, or Finish).
  Status AddLevelTensor(const TensorSpec& spec, const QuantizationInfo& quant,
                        const int32_t* levels, ByteSpan reference, ByteSpan step_source,
                        DType step_source_dtype, MutableByteSpan decoded,
                        const LevelContexts& contexts = {});

  // The same with the reference and the contexts fetched chunk by chunk (ChunkContexts), so
  // that only the indices or levels and `decoded` are whole arrays; they must stay valid
  // until the tensor is encoded (EndBatch, or Finish).
  Status AddQuantizedTensorChunked(const TensorSpec& spec, const QuantizationInfo& quant,
                                   ByteSpan indices, MutableByteSpan decoded,
                                   const ChunkContexts& contexts);
  Status AddLevelTensorChunked(const TensorSpec& spec, const QuantizationInfo& quant,
                               const int32_t* levels, MutableByteSpan decoded,
                               const ChunkContexts& contexts);

  // Batches: between BeginBatch() and EndBatch(), AddTensor, AddQuantizedTensor and AddLevelTensor check their
  // arguments and queue the tensor; EndBatch (or Finish) encodes the chunks of all queued
  // tensors together on the `threads` workers and appends them in order, so many small tensors
  // encode in parallel too. Until then every span passed must stay valid, and a quantized
  // tensor's `decoded` is filled only then. The output does not depend on batching.
  void BeginBatch();
  Status EndBatch();
  // Drops the queued tensors (their buffers are going away) and fails the writer with `why`:
  // the file would miss them.
  void AbortBatch(Status why);

  // Writes the header, patches the preamble and commits the sink. Returns the content id.
  Result<ContentId> Finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ckz

#endif  // CKZ_WRITER_H_
