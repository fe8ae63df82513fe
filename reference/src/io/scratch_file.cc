#include "io/scratch_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace ckz {

Result<std::unique_ptr<ScratchFile>> ScratchFile::Create(const std::string& dir) {
  std::string folder = dir;
  if (folder.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    folder = tmp && *tmp ? tmp : "/tmp";
  }
  std::unique_ptr<ScratchFile> f(new ScratchFile);
  f->fd_ = ::open(folder.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (f->fd_ < 0) {  // a file system without O_TMPFILE: a named file, unlinked at once
    std::string name = folder + "/.ckz-scratch-XXXXXX";
    f->fd_ = mkostemp(&name[0], O_CLOEXEC);
    if (f->fd_ >= 0) unlink(name.c_str());
  }
  if (f->fd_ < 0)
    return Status(ErrorCode::kIoError,
                  folder + ": cannot create a temporary file: " + std::strerror(errno));
  return f;
}

ScratchFile::~ScratchFile() {
  if (fd_ >= 0) ::close(fd_);
}

uint64_t ScratchFile::Reserve(uint64_t bytes) {
  return end_.fetch_add((bytes + 63) / 64 * 64);
}

Status ScratchFile::Write(uint64_t at, ByteSpan bytes) {
  for (size_t done = 0; done < bytes.size;) {
    const ssize_t n = ::pwrite(fd_, bytes.data + done, bytes.size - done, off_t(at + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      return Status(ErrorCode::kIoError,
                    std::string("temporary file: write failed: ") + std::strerror(errno));
    done += size_t(n);
  }
  return Status::Ok();
}

Status ScratchFile::Read(uint64_t at, MutableByteSpan out) const {
  for (size_t done = 0; done < out.size;) {
    const ssize_t n = ::pread(fd_, out.data + done, out.size - done, off_t(at + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return Status(ErrorCode::kIoError,
                    std::string("temporary file: read failed: ") + std::strerror(errno));
    if (n == 0) {  // a hole at the end that was never written: zeros
      std::memset(out.data + done, 0, out.size - done);
      break;
    }
    done += size_t(n);
  }
  return Status::Ok();
}

void ScratchFile::Discard(uint64_t at, uint64_t bytes) {
  if (bytes > 0) (void)fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off_t(at), off_t(bytes));
}

}  // namespace ckz
