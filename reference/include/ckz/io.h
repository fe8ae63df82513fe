// Files on disk: mapped inputs, atomic outputs, .ckz files and the chains they form.
#ifndef CKZ_IO_H_
#define CKZ_IO_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ckz/archive.h"
#include "ckz/decoder.h"
#include "ckz/lstm_model.h"
#include "ckz/status.h"
#include "ckz/types.h"
#include "ckz/writer.h"

namespace ckz {

// A read-only memory mapping of a whole file (empty files give an empty span).
class MappedFile {
 public:
  static Result<MappedFile> Open(const std::string& path);
  MappedFile() = default;
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  ByteSpan bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  // Unmaps the pages read so far from this process (they stay in the page cache and are
  // mapped again when read): a file read once end to end then costs no resident memory.
  void ReleasePages() const;
  // The same for the pages from the one holding `begin` up to the one holding `end` (excluded).
  void ReleasePages(uint64_t begin, uint64_t end) const;

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Writes to a temporary file beside `path` ("<dir>/.<name>.tmp-<random>"); Commit() flushes
// it to disk and renames it to `path`. Destroyed uncommitted, it deletes the temporary: no
// half-written file ever appears under the final name.
class AtomicFileSink final : public OutputSink {
 public:
  static Result<std::unique_ptr<AtomicFileSink>> Create(const std::string& path, bool overwrite);
  ~AtomicFileSink() override;
  Status Write(ByteSpan bytes) override;
  Status WriteAt(uint64_t offset, ByteSpan bytes) override;
  Status Commit() override;
  const std::string& temp_path() const { return temp_path_; }

 private:
  AtomicFileSink() = default;
  void StartWriteback();
  int fd_ = -1;
  uint64_t written_ = 0, writeback_from_ = 0;  // Write's position; below it: writeback started
  bool overwrite_ = false;
  bool committed_ = false;
  std::string path_, temp_path_;
};

// Writes `bytes` to `path` atomically (AtomicFileSink).
Status WriteFileAtomically(const std::string& path, ByteSpan bytes, bool overwrite);

// (0.9) The LSTM level model as a file of its own (magic CKZLSTM1, hidden, clip, the two
// shifts as bytes, then spec 7.11.1's parameter blob): what the trainer program
// (ckz-lstm-train, the only code linking libtorch) hands to a writer. Reading checks spec
// 7.11.1's rules (kUnsupportedInput otherwise).
Status WriteLstmModelFile(const std::string& path, const LstmModel& model);
Result<LstmModel> ReadLstmModelFile(const std::string& path);
// The trainer's budget in optimizer steps for a model used by a keyframe group: one step per
// MiB of the checkpoint times the group's links still to come, 60 to 400. Counted in steps,
// never seconds, so that the output does not depend on the machine's speed.
uint32_t LstmTrainingSteps(uint64_t checkpoint_bytes, uint64_t links_to_come);

// Unlinks every temporary file an AtomicFileSink has open. Async-signal-safe: the CLI calls
// it from its SIGINT/SIGTERM handler so an interrupted run leaves nothing behind.
void RemovePendingTemporaryFiles();

// A mapped, validated .ckz file.
struct CkzFile {
  MappedFile mapping;
  Archive archive;  // refers to mapping's bytes
};
Result<std::unique_ptr<CkzFile>> OpenCkzFile(const std::string& path, const Limits& limits = {});

struct ChainOptions {
  Limits limits;
  // Parent to use for the first link, instead of searching (a user's --ref). It must carry
  // the content id the link names, or opening fails with kWrongParent.
  std::string parent_path;
  // Directories searched for parents (content id match), after the link's path hint. The
  // opened file's own directory is always searched.
  std::vector<std::string> search_dirs;
};

// Finds .ckz files by content id in a set of directories (scanned once, lazily).
class ParentIndex {
 public:
  explicit ParentIndex(Limits limits) : limits_(limits) {}
  // The path of a .ckz file in `dir` whose header declares `id`, or empty.
  std::string Find(const std::string& dir, const ContentId& id);

 private:
  Limits limits_;
  std::map<std::string, std::map<ContentId, std::string>> dirs_;
};

class DecodedReference;
class ScratchFile;

// A .ckz file and, when it is a link, the chain of parents down to its keyframe. It is the
// ReferenceSource of its own tensors, so any range of any tensor decodes with bounded memory
// (one chunk per chain level).
class ChainReader : public ReferenceSource {
 public:
  static Result<std::unique_ptr<ChainReader>> Open(const std::string& path,
                                                   const ChainOptions& options = {});
  const Archive& archive() const { return file_->archive; }
  const std::string& path() const { return path_; }
  // The parent link (null for a keyframe): the ReferenceSource of this file's own tensors.
  const ChainReader* parent() const { return parent_.get(); }
  ChainReader* parent() { return parent_.get(); }
  size_t depth() const { return parent_ ? 1 + parent_->depth() : 0; }

  // Decode this link's tensors against `parent` instead of through the parent's chain: the
  // parent's decoded tensors, e.g. a DecodedReference kept from decoding the parent file just
  // before (many files of one history then cost one decode each). The caller checks that it
  // holds the file this link names (DecodedReference::content_id); it must outlive its use.
  void UseDecodedParent(ReferenceSource* parent) { decoded_parent_ = parent; }
  // While set, every piece of this file's tensors that StreamTensors decodes is also recorded
  // in `recorder` (which must be made for this file).
  void RecordInto(DecodedReference* recorder) { recorder_ = recorder; }
  DecodedReference* recorder() const { return recorder_; }

  // Decodes bytes [offset, offset + out.size) of tensor `index` of this file.
  Status ReadTensor(size_t index, uint64_t offset, MutableByteSpan out, int threads = 1);
  // Decodes several ranges of this file's tensors, their chunks sharing `threads` workers
  // (DecodeTensorRanges).
  Status ReadTensors(const std::vector<TensorRange>& ranges, int threads = 1);

  Status ReadReference(const TensorInfo& tensor, uint64_t offset, MutableByteSpan out) override;
  Status ReadReferenceIndices(const TensorInfo& tensor, uint64_t first, MutableByteSpan out,
                              uint32_t* centres) override;
  const std::vector<SourceFileInfo>* ReferenceFiles() override;
  // Releases the mapped pages of this file and of every file down its chain.
  void ReleaseMemory() override;

 private:
  // Decodes every coded prolog of the file (spec 8.4), the parent being open already.
  Status DecodeProlog();
  static Result<std::unique_ptr<ChainReader>> OpenWithIndex(
      const std::string& path, const ChainOptions& options, ParentIndex* index,
      std::shared_ptr<IndexCache> cache, std::shared_ptr<IndexCache> chunk_cache);
  std::string path_;
  std::unique_ptr<CkzFile> file_;
  std::unique_ptr<ChainReader> parent_;
  std::shared_ptr<IndexCache> index_cache_;  // shared by every level of the chain
  std::shared_ptr<IndexCache> chunk_cache_;  // DecodeOptions::chunk_cache, shared likewise
  ReferenceSource* decoded_parent_ = nullptr;
  DecodedReference* recorder_ = nullptr;
  ReferenceSource* reference() { return decoded_parent_ ? decoded_parent_ : parent_.get(); }
};

// The decoded tensors of one .ckz file (and the indices or levels of its quantized tensors),
// kept in an unlinked temporary file so that the next link of its chain decodes against them
// (ChainReader::UseDecodedParent) instead of decoding the whole chain again. The bytes live in
// the file system's page cache, not in the process's memory: reads copy them out (pread).
class DecodedReference final : public ReferenceSource {
 public:
  // Space for every tensor of `archive`, in a temporary file under `dir` ($TMPDIR or /tmp when
  // empty). Record the tensors' bytes as they decode, then Finish.
  static Result<std::unique_ptr<DecodedReference>> Create(const Archive& archive,
                                                          const std::string& dir = "");
  ~DecodedReference() override;
  DecodedReference(const DecodedReference&) = delete;
  DecodedReference& operator=(const DecodedReference&) = delete;

  const ContentId& content_id() const { return content_id_; }
  // Bytes [offset, offset + bytes.size) of tensor `tensor` of the archive.
  Status Record(size_t tensor, uint64_t offset, ByteSpan bytes);
  // Once every tensor's bytes were recorded: stores the indices (levels) of the quantized
  // tensors, read through `reader` (the same file: from its index cache when they are still
  // there), and makes the whole readable. kInvalidArgument if some bytes were never recorded.
  Status Finish(ChainReader& reader);

  Status ReadReference(const TensorInfo& tensor, uint64_t offset, MutableByteSpan out) override;
  Status ReadReferenceIndices(const TensorInfo& tensor, uint64_t first, MutableByteSpan out,
                              uint32_t* centres) override;
  const std::vector<SourceFileInfo>* ReferenceFiles() override { return &files_; }

 private:
  DecodedReference();
  struct Entry {
    std::string name;
    DType dtype = DType::kInvalid;
    std::vector<uint64_t> shape;
    uint64_t bytes_at = 0, byte_length = 0;
    uint64_t indices_at = 0;   // quantized tensors: symbol_bytes per element
    uint32_t centres = 0;      // codebook size (1 for levels); 0 when not quantized
    uint32_t symbol_bytes = 1; // 1 (indices) or 4 (levels, spec 7.9)
    bool levels = false;
  };
  const Entry* Find(const TensorInfo& tensor) const;
  ContentId content_id_{};
  std::vector<Entry> entries_;
  std::map<std::string, size_t> by_name_;
  std::vector<SourceFileInfo> files_;
  uint64_t recorded_ = 0, expected_ = 0;
  bool finished_ = false;
  std::unique_ptr<ScratchFile> file_;
};

// Decodes tensors order[0], order[1], ... of `reader` and hands their bytes to `visit` in that
// order, piece by piece: visit(i, offset, bytes) gets bytes [offset, offset + bytes.size) of
// tensor order[i], every tensor at least once (an empty one with no bytes). Tensors of at most
// `window` bytes are decoded together, in batches of at most `window` bytes whose chunks share
// the `threads` workers; larger ones in `window`-sized pieces. Memory: `window` bytes; with
// threads > 1, 2 x `window`, since the next window decodes while `visit` sees this one (on
// the calling thread, in order).
Status StreamTensors(ChainReader& reader, const std::vector<uint32_t>& order, uint64_t window,
                     int threads,
                     const std::function<Status(size_t i, uint64_t offset, ByteSpan bytes)>& visit);

// Decodes every tensor (checking each chunk's CRC-32C) and recomputes the content id.
// kContentIdMismatch if it differs from the header's.
struct VerifyReport {
  uint64_t tensors = 0;
  uint64_t chunks = 0;
  uint64_t raw_bytes = 0;
  ContentId computed{};
};
Result<VerifyReport> VerifyChain(ChainReader& reader, int threads = 1,
                                 const std::function<void(uint64_t)>& progress = {});

}  // namespace ckz

#endif  // CKZ_IO_H_
