#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "ckz/decoder.h"
#include "common/level_width.h"

namespace ckz {

struct IndexCache::Impl {
  // (file bytes, header CRC, tensor, chunk): an archive by what it was parsed from.
  using Key = std::tuple<const uint8_t*, uint32_t, size_t, size_t>;
  // Bytes that are not zero-filled first: every insert writes all of them.
  struct Buffer {
    std::unique_ptr<uint8_t[]> data;
    size_t size = 0, capacity = 0;
    void Resize(size_t n) {
      if (capacity < n) {
        data.reset(new uint8_t[n]);
        capacity = n;
      }
      size = n;
    }
    const uint8_t* begin() const { return data.get(); }
  };
  struct Entry {
    Buffer bytes;
    uint32_t level_width = 0;  // 0: bytes as inserted; 1, 2, 4: i32 levels held this narrow
  };
  uint64_t budget = 0;
  uint64_t used = 0;
  mutable std::mutex mutex;
  Stats stats;
  std::map<Key, Entry> entries;
  std::deque<Key> order;  // insertion order, oldest first
  // Buffers of evicted entries, reused by the next inserts: once the cache is full, inserting
  // touches no fresh pages (page faults cost more than the copy).
  std::vector<Buffer> spare;

  static Key KeyOf(const Archive& a, size_t tensor, size_t chunk) {
    return {a.file.data, a.preamble.header_crc32c, tensor, chunk};
  }

  // Under the mutex: room for `size` more bytes; returns a buffer to fill (recycled if any).
  Buffer MakeRoom(uint64_t size) {
    while (used + size > budget && !order.empty()) {
      const auto old = entries.find(order.front());
      used -= old->second.bytes.size;
      if (spare.size() < kMaxSpare) spare.push_back(std::move(old->second.bytes));
      entries.erase(old);
      order.pop_front();
    }
    Buffer buffer;
    if (!spare.empty()) {
      buffer = std::move(spare.back());
      spare.pop_back();
    }
    return buffer;
  }
  void Add(const Key& key, Entry entry) {
    used += entry.bytes.size;
    entries.emplace(key, std::move(entry));
    order.push_back(key);
  }
  static constexpr size_t kMaxSpare = 16;
};

IndexCache::IndexCache(uint64_t budget_bytes) : impl_(new Impl) { impl_->budget = budget_bytes; }
IndexCache::~IndexCache() = default;

bool IndexCache::Lookup(const Archive& archive, size_t tensor, size_t chunk, MutableByteSpan out) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  ++impl_->stats.lookups;
  const auto it = impl_->entries.find(Impl::KeyOf(archive, tensor, chunk));
  if (it == impl_->entries.end() || it->second.level_width != 0 ||
      it->second.bytes.size != out.size)
    return false;
  std::copy_n(it->second.bytes.begin(), out.size, out.data);
  ++impl_->stats.hits;
  return true;
}

bool IndexCache::LookupPart(const Archive& archive, size_t tensor, size_t chunk, uint64_t offset,
                            MutableByteSpan out) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  ++impl_->stats.lookups;
  const auto it = impl_->entries.find(Impl::KeyOf(archive, tensor, chunk));
  if (it == impl_->entries.end() || it->second.level_width != 0 ||
      offset > it->second.bytes.size || out.size > it->second.bytes.size - offset)
    return false;
  std::copy_n(it->second.bytes.begin() + ptrdiff_t(offset), out.size, out.data);
  ++impl_->stats.hits;
  return true;
}

bool IndexCache::LookupLevels(const Archive& archive, size_t tensor, size_t chunk, int32_t* out,
                              size_t count) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  ++impl_->stats.lookups;
  const auto it = impl_->entries.find(Impl::KeyOf(archive, tensor, chunk));
  if (it == impl_->entries.end()) return false;
  const Impl::Entry& e = it->second;
  if (e.level_width == 0 || e.bytes.size != count * e.level_width) return false;
  WidenLevels(e.bytes.begin(), count, e.level_width, out);
  ++impl_->stats.hits;
  return true;
}

IndexCache::Stats IndexCache::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->stats;
}

void IndexCache::Insert(const Archive& archive, size_t tensor, size_t chunk, ByteSpan indices) {
  if (indices.size > impl_->budget) return;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  const Impl::Key key = Impl::KeyOf(archive, tensor, chunk);
  if (impl_->entries.count(key)) return;
  Impl::Entry e;
  e.bytes = impl_->MakeRoom(indices.size);
  e.bytes.Resize(indices.size);
  std::copy_n(indices.data, indices.size, e.bytes.data.get());
  impl_->Add(key, std::move(e));
}

void IndexCache::InsertLevels(const Archive& archive, size_t tensor, size_t chunk,
                              const int32_t* levels, size_t count) {
  const uint32_t width = LevelWidth(levels, count);  // outside the lock
  const uint64_t size = uint64_t(count) * width;
  if (size > impl_->budget) return;
  std::lock_guard<std::mutex> lock(impl_->mutex);
  const Impl::Key key = Impl::KeyOf(archive, tensor, chunk);
  if (impl_->entries.count(key)) return;
  Impl::Entry e;
  e.bytes = impl_->MakeRoom(size);
  e.bytes.Resize(size_t(size));
  e.level_width = width;
  NarrowLevels(levels, count, width, e.bytes.data.get());
  impl_->Add(key, std::move(e));
}

}  // namespace ckz
