// Checkpoints as files on disk: what `ckz compress` reads and `ckz decompress` writes back.
#ifndef CKZ_CHECKPOINT_H_
#define CKZ_CHECKPOINT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ckz/archive.h"
#include "ckz/io.h"
#include "ckz/status.h"
#include "ckz/writer.h"

namespace ckz {

struct InputTensor {
  TensorSpec spec;
  ByteSpan data;  // into one of InputCheckpoint::mappings
  // The optimizer state key a reader found it under ("exp_avg_sq", "square_avg", "sum",
  // "momentum_buffer", ...), or empty. The lossy planner takes a Moment2 for Adam's v when its
  // key is "exp_avg_sq" or empty (a caller who sets the role says so).
  std::string state_key;
};

// A checkpoint read from disk, ready for the Writer: tensors in file order, the source files
// that rebuild the original layout, metadata.
struct InputCheckpoint {
  std::string kind;  // "safetensors", "safetensors-sharded", "torch", "folder"
  std::vector<InputTensor> tensors;
  std::vector<SourceFileInfo> files;  // tensor indices refer to `tensors`
  std::vector<MetaEntry> metadata;
  std::optional<int64_t> step;
  std::vector<MappedFile> mappings;
  // What the reader decided that a user should know (a file kept verbatim because it could not
  // be read safely, an optimizer whose state could not be linked to parameters).
  std::vector<std::string> notes;
  uint64_t TotalBytes() const;      // tensor bytes
  uint64_t TotalFileBytes() const;  // the input files' bytes (tensors, headers, other files)
};

// Metadata key (a JSON string) a .pt input gets when its pickle reaches stored tensors under
// other paths or carries Python objects CKZ does not interpret: {"tied": {path: stored tensor
// name}, "tied_total": n, "views": [path...], "views_total": n, "objects": ["module.name"...]}
// (tied cut to 4096 entries, views and objects to 64). Informative
// (conversions read it); decoding never needs it.
inline constexpr char kTorchPickleMetadataKey[] = "torch.pickle";

// Accepts: a .safetensors file; a torch.save .pt/.pth/.bin file; a model.safetensors.index.json
// with its shards; a checkpoint folder (shard index, Trainer checkpoint, or one checkpoint file
// with the files beside it). Roles come from names and optimizer state (spec 8.3); what the
// reader decided that a user should know is in `notes`.
Result<InputCheckpoint> LoadCheckpoint(const std::string& path);

// The same for one checkpoint file already in memory (a safetensors file or a torch.save
// file, e.g. what torch.save wrote into a buffer), recorded as source file `name`. The tensors
// point into `bytes`, which the caller keeps alive and unchanged while the result is used (the
// result's `mappings` are empty).
Result<InputCheckpoint> LoadCheckpointFromMemory(ByteSpan bytes, const std::string& name);

// ExCP shrinking of a link (lossy): see spec Appendix A and the ExCP paper.
struct ExcpOptions {
  double alpha = 5e-5;     // weight pruning: k = min(2.5, alpha / sqrt(mean(v)))
  double beta = 2.0;       // momentum pruning: keep |m| > beta * mean|m|
  unsigned bits = 4;       // index width: 2^bits - 1 centres per tensor
  // k for a weight without Adam's second moment (SGD, RMSprop, Adagrad, a weights-only file).
  // Unset (the default): such weights, and so their moments, stay lossless. ExCP's formula
  // needs Adam's v, and a fixed k prunes half of a tensor's residuals or more whatever the
  // damage (+46 % val loss on an SGD history, docs/fidelity.md).
  std::optional<double> fallback_k;
  bool k_at_cap = false;   // use k = 2.5 everywhere (the regime of late LLM training)
  // v (Adam's second moment) as a residual against the decoded parent's v, so that a pruned
  // element keeps the parent's value; false: ExCP's own choice, pruned v becomes 0, which
  // makes the resumed Adam take full-size sign steps there (docs/fidelity.md).
  bool v_residual = true;
};

// (0.7) Rate-distortion coding of a link (lossy; spec 7.9, Appendix A, docs/rate-distortion.md):
// weights as level residuals of the decoded parent, Adam's m as levels in units of the
// parent's sqrt(v), Adam's v as log-domain levels against the parent's v, all entropy-coded
// with cml. One trade-off, `strength`, scales every step; the per-stream factors weight each
// stream's error the way resumed training feels it (measured, docs/rate-distortion.md).
struct RdOptions {
  // StrengthOfQuality(quality); the default is quality 4 (2^(1/4)): the largest links'
  // ratio whose resume damage stayed within ExCP's default on every history measured.
  double strength = 1.189207115002721;
  double weight_step = 2.0;   // dW's step, in units of the tensor's RMS update this link
  double moment1_step = 1.5;  // m's step, in units of sqrt(parent's v) (a power of two)
  double moment2_step = 2.0;  // v's step, in log2 units (rounded to a power of two, 1/16..16)
  // Level choice: squared error in steps + lambda * bits. 0 (plain rounding) by default: any
  // lambda > 0 biases levels toward zero, and that lag costs more resume fidelity than the bits
  // it saves (docs/rate-distortion.md).
  double rdoq_lambda = 0.0;
  // Weights without Adam's v (weights-only files, SGD): unset, lossless; else a uniform step of
  // this times the tensor's RMS, rounded to the nearest level: |error| <= step / 2 (plus the
  // dtype's own rounding), recorded in the header.
  std::optional<double> weights_only_step;
};

// The strength of `ckz compress --quality Q` (1..9): 2^((5 - Q) / 4), so quality 5 is
// strength 1 and every quality level changes each step by a factor of about 1.19.
double StrengthOfQuality(int quality);

struct WriteOptions {
  std::optional<ExcpOptions> excp;  // set: the link's weights and moments are shrunk (lossy)
  std::optional<RdOptions> rd;      // (0.7) set (and excp not): rate-distortion levels (lossy)
  // The input's tensor bytes are writable memory of the caller's (an in-memory snapshot) that
  // nothing but `decoded` needs once written: each shrunk tensor's decoded values then
  // overwrite its input bytes and `decoded` views them there, instead of keeping a second
  // copy of the checkpoint (peak memory: the input plus the indices of the shrunk tensors).
  bool decode_into_input = false;
  // Bounded memory: the index or level arrays of planned tensors that later tensors of their
  // group still need (a weight's, read by its moments written later) stay in memory up to
  // this many bytes, the rest in a temporary file in $TMPDIR. Never changes the output.
  uint64_t kept_plan_bytes = uint64_t{64} << 20;
  // Tensors handed to the writer together (about this many bytes), so that the chunks of many
  // small tensors encode in parallel: the memory of a batch's decoded lossy tensors against
  // the parallelism. Never changes the output.
  uint64_t batch_bytes = uint64_t{64} << 20;
  // The reference serves this one write: once a tensor is written, its parent's indices are
  // released (ReferenceSource::ReleaseIndices), so a chain holds one link's indices, not two.
  // Never changes the output; the reference cannot serve another write after this one.
  bool release_reference_indices = false;
  // (0.10) Rate-distortion links: a weight's levels are coded with its first moment's levels
  // in the parent as context (spec 7.9.3, required feature bit 9): the update follows Adam's
  // m. false writes 0.9's contexts, files that 0.9 readers decode.
  bool moment_context = true;
};

// What decoders reconstruct from a written checkpoint, tensor by tensor: the reference of the
// next link of a chain (closed loop: predicting from these bytes, not the inputs, keeps the
// error of lossy links from accumulating). Reads may come from several threads at once.
class DecodedCheckpoint : public ReferenceSource {
 public:
  DecodedCheckpoint();
  ~DecodedCheckpoint() override;
  DecodedCheckpoint(DecodedCheckpoint&&) noexcept;
  DecodedCheckpoint& operator=(DecodedCheckpoint&&) noexcept;
  // Bounded memory: what is added after `memory_bytes` of owned bytes, indices and levels are
  // held goes to an unlinked temporary file under `dir` ($TMPDIR or /tmp when empty) instead,
  // read back on demand (the file system's cache holds it, not the process). Default: all in
  // memory.
  void SpillOver(uint64_t memory_bytes, std::string dir = "");
  // A tensor whose decoded bytes are `bytes` (kept alive by the caller, e.g. an input mapping).
  void AddView(const TensorSpec& spec, ByteSpan bytes);
  // A tensor whose decoded bytes differ from its input (a lossy tensor); `indices` and
  // `centres` are its quantization indices and codebook size (the next link's cm contexts),
  // or with `levels` (0.7) its levels (4 bytes each) and centres = 1. Fails only when spilling
  // to the temporary file fails.
  Status AddOwned(const TensorSpec& spec, std::vector<uint8_t> bytes, ByteSpan indices = {},
                  uint32_t centres = 0, bool levels = false);
  // Gives tensor `name` (added before) a copy of its quantization indices and codebook size,
  // or (0.7) with `levels` its levels (4 bytes each) and centres = 1.
  Status SetIndices(const std::string& name, ByteSpan indices, uint32_t centres,
                    bool levels = false);
  // (0.5) A source file as decoders will see it (its prolog is the history of the next link's
  // coded prologs, spec 8.4).
  void AddFile(SourceFileInfo file);
  // Keeps `input`'s mappings alive for the views into them.
  void KeepAlive(InputCheckpoint input);
  Status ReadReference(const TensorInfo& tensor, uint64_t offset, MutableByteSpan out) override;
  Status ReadReferenceIndices(const TensorInfo& tensor, uint64_t first, MutableByteSpan out,
                              uint32_t* centres) override;
  const std::vector<SourceFileInfo>* ReferenceFiles() override;
  // A view when the tensor's bytes are in memory (or mapped), not when they were spilled.
  std::optional<ByteSpan> ReferenceView(const TensorInfo& tensor) override;
  // Releases the pages of the kept inputs' mappings read so far.
  void ReleaseMemory() override;
  void ReleaseIndices(const TensorInfo& tensor) override;

 private:
  struct Entry {
    TensorSpec spec;
    ByteSpan bytes;
    std::vector<uint8_t> owned;
    std::vector<uint8_t> indices;  // a quantized tensor's, else empty
    uint32_t centres = 0;
    bool levels = false;  // indices are i32 levels, held level_width (1, 2 or 4) bytes each
    uint32_t level_width = 4;
    // Spilled to the temporary file: bytes at bytes_at (then `bytes` is empty), indices at
    // indices_at (then `indices` is empty).
    bool bytes_spilled = false, indices_spilled = false;
    uint64_t bytes_at = 0, byte_length = 0, indices_at = 0;
    uint64_t indices_length = 0;  // as given (i32 levels: 4 bytes each), not as held
    bool indices_released = false;  // by ReleaseIndices: reading them is an error
  };
  // Counts `data` against the budget (nullopt: the caller keeps it in memory), or writes it to
  // the temporary file and says where.
  Result<std::optional<uint64_t>> Keep(ByteSpan data);
  std::map<std::string, Entry> tensors_;
  std::vector<SourceFileInfo> files_;
  std::vector<InputCheckpoint> kept_;
  uint64_t budget_ = UINT64_MAX, held_ = 0;
  std::string spill_dir_;
  std::unique_ptr<ScratchFile> spill_;
};

// What WriteCheckpoint did to each tensor, for reports.
struct WriteReport {
  size_t quantized = 0;  // tensors coded lossy (codebooks or levels)
  std::vector<std::string> lossless;  // "name: why" for link tensors ExCP left bit-exact
  // Weights kept lossless because they have no Adam second moment (and no fallback_k).
  size_t without_adam_v = 0;
};

// Adds every tensor of `input` to `writer`, plus its files, metadata and step. With a
// `reference` (the writer must have its link set), each tensor that the reference has with the
// same name, dtype and shape is predicted from the reference's decoded bytes — and, with
// options.excp, weights and their optimizer moments are shrunk (spec 7.6). `decoded`, when
// given, receives what decoders will reconstruct.
Status WriteCheckpoint(const InputCheckpoint& input, ReferenceSource* reference, Writer* writer,
                       const WriteOptions& options = {}, DecodedCheckpoint* decoded = nullptr,
                       WriteReport* report = nullptr);

// (0.5) The parent's file whose prolog the prolog of `file`, the `index`-th file of its
// checkpoint, is coded against (spec 8.4): the one of the same path, else the one at the same
// position when it has the same format (a history of single files: step_100.pt after
// step_80.pt), else the first of the same format; nullopt when none has it.
std::optional<uint32_t> MatchingParentFile(const SourceFileInfo& file, size_t index,
                                           const std::vector<SourceFileInfo>& parent_files);

// The link a file written against `parent` carries (content id, step, file name, depth).
LinkInfo LinkTo(const ChainReader& parent);

struct RestoreOptions {
  bool overwrite = false;
  int threads = 1;
  std::function<void(uint64_t)> progress;  // decoded bytes so far
  // Write the tensors as one file of this format (kSafetensors, or kTorchZip: a state_dict for
  // torch.load) instead of the recorded files. Only for checkpoints of at most one file: other
  // parts of a folder would be lost. A conversion to safetensors stores tied tensors once and
  // names the others in its metadata, as safetensors' save_model does.
  std::optional<SourceFormat> convert_to;
  // What a user should know: what a conversion could not carry (a .pt's other pickle contents,
  // views into tensors) and how it carried tied tensors.
  std::function<void(const std::string&)> note;
};

// Writes the decoded checkpoint of `reader`. One source file: `out_path` is that file. Several:
// `out_path` is a folder that receives them all. None (a bare tensor set): a safetensors file.
// Every file is written atomically.
Status RestoreCheckpoint(ChainReader& reader, const std::string& out_path,
                         const RestoreOptions& options);

// (In memory) The size of source file `file` (< archive().files.size()) of `reader` as rebuilt
// (RestoreCheckpoint writes it with this many bytes).
uint64_t RestoredFileSize(const ChainReader& reader, size_t file);

// Where each tensor of source file `file` (in the order of its `tensors`) starts in the rebuilt
// file.
std::vector<uint64_t> RestoredTensorOffsets(const ChainReader& reader, size_t file);

// Copies the prolog pieces of source file `file` to their places in `out` (exactly
// RestoredFileSize bytes) and leaves the tensors' ranges untouched: the file's structure (a
// .pt's zip directory and pickle) without decoding a tensor.
Status RestoreProlog(const ChainReader& reader, size_t file, MutableByteSpan out);

// Rebuilds source file `file` of `reader` into `out` (exactly RestoredFileSize bytes): the
// prolog pieces, and every tensor decoded in place, the chunks of all of them sharing `threads`
// workers. With `zip_crcs` false the CRC-32 fields of a torch.save zip are left as the prolog
// has them (zero): for a caller that reads the entries itself and needs no valid zip.
Status RestoreFileToMemory(ChainReader& reader, size_t file, MutableByteSpan out, int threads,
                           bool zip_crcs = true);

// Writes every source file of `reader` under the folder `dir` at its recorded path (creating
// folders as needed; each file atomically). A bare tensor set becomes `dir/<bare_name>`, a
// safetensors file.
Status RestoreFilesInto(ChainReader& reader, const std::string& dir, const std::string& bare_name,
                        const RestoreOptions& options);

}  // namespace ckz

#endif  // CKZ_CHECKPOINT_H_
