// An unlinked temporary file for data too large to keep in memory (a decoded parent, plans
// kept for later tensors): its pages live in the file system's cache, which the kernel can
// reclaim, not in the process's anonymous memory, and it disappears with the process.
#ifndef CKZ_IO_SCRATCH_FILE_H_
#define CKZ_IO_SCRATCH_FILE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "ckz/status.h"
#include "ckz/types.h"

namespace ckz {

class ScratchFile {
 public:
  // A new file under `dir` ($TMPDIR, else /tmp, when empty).
  static Result<std::unique_ptr<ScratchFile>> Create(const std::string& dir = "");
  ~ScratchFile();
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;

  // Room for `bytes` more at the end (64-byte aligned): where to Write them. Thread-safe.
  uint64_t Reserve(uint64_t bytes);
  // pwrite/pread at `at`; safe from several threads at once (ranges written once).
  Status Write(uint64_t at, ByteSpan bytes);
  Status Read(uint64_t at, MutableByteSpan out) const;
  // Frees the disk (and cache) space of a range no longer needed; reads of it give zeros.
  void Discard(uint64_t at, uint64_t bytes);
  uint64_t size() const { return end_.load(); }

 private:
  ScratchFile() = default;
  int fd_ = -1;
  std::atomic<uint64_t> end_{0};
};

}  // namespace ckz

#endif  // CKZ_IO_SCRATCH_FILE_H_
