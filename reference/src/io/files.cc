// Mapped input files and atomic output files.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include "ckz/io.h"

namespace ckz {
namespace {

Status Errno(const std::string& what, const std::string& path) {
  return Status(ErrorCode::kIoError, path + ": " + what + ": " + std::strerror(errno));
}

// Temporary files in flight, kept where a signal handler can reach them without locks or
// allocation: fixed slots claimed with an atomic flag.
constexpr size_t kTempSlots = 64;
constexpr size_t kTempPathMax = 4096;
struct TempSlot {
  std::atomic<int> state{0};  // 0 free, 1 being written, 2 holds a path
  char path[kTempPathMax];
};
TempSlot g_temp_slots[kTempSlots];

int ClaimTempSlot(const std::string& path) {
  if (path.size() >= kTempPathMax) return -1;
  for (size_t i = 0; i < kTempSlots; ++i) {
    int expected = 0;
    if (g_temp_slots[i].state.compare_exchange_strong(expected, 1)) {
      std::memcpy(g_temp_slots[i].path, path.c_str(), path.size() + 1);
      g_temp_slots[i].state.store(2);
      return int(i);
    }
  }
  return -1;
}

void ReleaseTempSlot(const std::string& path) {
  for (size_t i = 0; i < kTempSlots; ++i)
    if (g_temp_slots[i].state.load() == 2 && path == g_temp_slots[i].path) {
      g_temp_slots[i].state.store(0);
      return;
    }
}

std::string RandomSuffix() {
  static const char kChars[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device rd;
  std::string s;
  for (int i = 0; i < 8; ++i) s.push_back(kChars[rd() % 36]);
  return s;
}

}  // namespace

void RemovePendingTemporaryFiles() {
  for (size_t i = 0; i < kTempSlots; ++i)
    if (g_temp_slots[i].state.load() == 2) unlink(g_temp_slots[i].path);
}

Result<MappedFile> MappedFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", path);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    Status s = Errno("cannot stat", path);
    ::close(fd);
    return s;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status(ErrorCode::kIoError, path + ": not a regular file");
  }
  MappedFile m;
  m.path_ = path;
  m.size_ = size_t(st.st_size);
  if (m.size_ > 0) {
    void* p = mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      Status s = Errno("cannot map", path);
      ::close(fd);
      return s;
    }
    m.data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return m;
}

void MappedFile::ReleasePages() const {
  // A private read-only file mapping: dropped pages come back from the file unchanged.
  if (data_) madvise(const_cast<uint8_t*>(data_), size_, MADV_DONTNEED);
}

void MappedFile::ReleasePages(uint64_t begin, uint64_t end) const {
  const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  // The page holding `begin` goes too (a caller releasing range after range leaves no page
  // behind); only the page holding `end`, maybe still in use, stays. A read-only mapping's
  // dropped pages come back unchanged when read.
  const uint64_t first = begin / page * page;
  const uint64_t last = std::min<uint64_t>(end, size_) / page * page;
  if (data_ && first < last) madvise(const_cast<uint8_t*>(data_ + first), last - first, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<uint8_t*>(data_), size_);
}

MappedFile::MappedFile(MappedFile&& o) noexcept
    : data_(o.data_), size_(o.size_), path_(std::move(o.path_)) {
  o.data_ = nullptr;
  o.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (data_) munmap(const_cast<uint8_t*>(data_), size_);
    data_ = o.data_;
    size_ = o.size_;
    path_ = std::move(o.path_);
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

Result<std::unique_ptr<AtomicFileSink>> AtomicFileSink::Create(const std::string& path,
                                                               bool overwrite) {
  struct stat st;
  if (!overwrite && lstat(path.c_str(), &st) == 0)
    return Status(ErrorCode::kIoError, path + ": already exists (use -f to overwrite)");
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  std::unique_ptr<AtomicFileSink> sink(new AtomicFileSink);
  sink->path_ = path;
  sink->overwrite_ = overwrite;
  for (int attempt = 0; attempt < 16 && sink->fd_ < 0; ++attempt) {
    sink->temp_path_ = dir + "." + base + ".tmp-" + RandomSuffix();
    sink->fd_ = ::open(sink->temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (sink->fd_ < 0 && errno != EEXIST) return Errno("cannot create", sink->temp_path_);
  }
  if (sink->fd_ < 0) return Errno("cannot create a temporary file", path);
  ClaimTempSlot(sink->temp_path_);
  return sink;
}

AtomicFileSink::~AtomicFileSink() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) {
    unlink(temp_path_.c_str());
    ReleaseTempSlot(temp_path_);
  }
}

Status AtomicFileSink::Write(ByteSpan bytes) {
  size_t done = 0;
  while (done < bytes.size) {
    const ssize_t n = ::write(fd_, bytes.data + done, bytes.size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write failed", temp_path_);
    }
    done += size_t(n);
  }
  written_ += bytes.size;
  StartWriteback();
  return Status::Ok();
}

// Commit's fsync waits for every dirty page of the file: on a file of gigabytes that was over
// a second after decoding had finished. Starting the writeback of each 32 MiB written, without
// waiting for it, lets the disk work while the next bytes are decoded. Only a hint: the data
// are made durable by Commit's fsync either way.
void AtomicFileSink::StartWriteback() {
#if defined(__linux__)
  constexpr uint64_t kStep = uint64_t{32} << 20;
  if (written_ - writeback_from_ < kStep) return;
  sync_file_range(fd_, off_t(writeback_from_), off_t(written_ - writeback_from_),
                  SYNC_FILE_RANGE_WRITE);
  writeback_from_ = written_;
#endif
}

Status AtomicFileSink::WriteAt(uint64_t offset, ByteSpan bytes) {
  size_t done = 0;
  while (done < bytes.size) {
    const ssize_t n = ::pwrite(fd_, bytes.data + done, bytes.size - done, off_t(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write failed", temp_path_);
    }
    done += size_t(n);
  }
  return Status::Ok();
}

Status AtomicFileSink::Commit() {
  if (fsync(fd_) != 0) return Errno("fsync failed", temp_path_);
  if (::close(fd_) != 0) {
    fd_ = -1;
    return Errno("close failed", temp_path_);
  }
  fd_ = -1;
  bool placed = false;
  if (!overwrite_) {
    // link() fails if the name appeared meanwhile, so -f is never bypassed by a race.
    if (link(temp_path_.c_str(), path_.c_str()) == 0) {
      unlink(temp_path_.c_str());
      placed = true;
    } else if (errno == EEXIST) {
      return Errno("cannot create", path_);
    }
    // Other failures: a file system without hard links; fall back to rename.
  }
  if (!placed && rename(temp_path_.c_str(), path_.c_str()) != 0)
    return Errno("cannot rename into place", path_);
  committed_ = true;
  ReleaseTempSlot(temp_path_);
  // Make the new directory entry durable too.
  const size_t slash = path_.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash + 1);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

Status WriteFileAtomically(const std::string& path, ByteSpan bytes, bool overwrite) {
  auto sink = AtomicFileSink::Create(path, overwrite);
  if (!sink.ok()) return sink.status();
  CKZ_RETURN_IF_ERROR((*sink)->Write(bytes));
  return (*sink)->Commit();
}

}  // namespace ckz
