// Checkpoints as files on disk: what `ckz compress` reads and `ckz decompress` writes back.
#ifndef CKZ_CHECKPOINT_H_
#define CKZ_CHECKPOINT_H_

#include <cstdint>
#include <functional>
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

// Accepts: a .safetensors file; a model.safetensors.index.json (or a folder holding one) with
// its shards. Roles come from names (spec/ckz.md, section 8.3).
Result<InputCheckpoint> LoadCheckpoint(const std::string& path);

// Adds every tensor of `input` to `writer`, plus its files, metadata and step. With a
// `reference` (the writer must have its link set), each tensor that the reference has with the
// same name, dtype and shape is predicted from the reference's decoded bytes.
Status WriteCheckpoint(const InputCheckpoint& input, ReferenceSource* reference, Writer* writer);

// An input checkpoint as the reference of the next one. In lossless coding a checkpoint's
// decoded bytes are its input bytes, so a history can be chained without decoding anything.
class InputReference : public ReferenceSource {
 public:
  explicit InputReference(const InputCheckpoint& input);
  Status ReadReference(const TensorInfo& tensor, uint64_t offset, MutableByteSpan out) override;

 private:
  const InputCheckpoint& input_;
  std::map<std::string, size_t> index_;
};

// The link a file written against `parent` carries (content id, step, file name, depth).
LinkInfo LinkTo(const ChainReader& parent);

struct RestoreOptions {
  bool overwrite = false;
  int threads = 1;
  std::function<void(uint64_t)> progress;  // decoded bytes so far
  // Write the tensors as one file of this format (kSafetensors, or kTorchZip: a state_dict for
  // torch.load) instead of the recorded files. Only for checkpoints of at most one file: other
  // parts of a folder would be lost.
  std::optional<SourceFormat> convert_to;
};

// Writes the decoded checkpoint of `reader`. One source file: `out_path` is that file. Several:
// `out_path` is a folder that receives them all. None (a bare tensor set): a safetensors file.
// Every file is written atomically.
Status RestoreCheckpoint(ChainReader& reader, const std::string& out_path,
                         const RestoreOptions& options);

// Writes every source file of `reader` under the folder `dir` at its recorded path (creating
// folders as needed; each file atomically). A bare tensor set becomes `dir/<bare_name>`, a
// safetensors file.
Status RestoreFilesInto(ChainReader& reader, const std::string& dir, const std::string& bare_name,
                        const RestoreOptions& options);

}  // namespace ckz

#endif  // CKZ_CHECKPOINT_H_
