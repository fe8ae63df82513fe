#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "ckz/decoder.h"

namespace ckz {

struct IndexCache::Impl {
  // (file bytes, header CRC, tensor, chunk): an archive by what it was parsed from.
  using Key = std::tuple<const uint8_t*, uint32_t, size_t, size_t>;
  uint64_t budget = 0;
  uint64_t used = 0;
  mutable std::mutex mutex;
  Stats stats;
  std::map<Key, std::vector<uint8_t>> entries;
  std::deque<Key> order;  // insertion order, oldest first

  static Key KeyOf(const Archive& a, size_t tensor, size_t chunk) {
    return {a.file.data, a.preamble.header_crc32c, tensor, chunk};
  }
};

IndexCache::IndexCache(uint64_t budget_bytes) : impl_(new Impl) { impl_->budget = budget_bytes; }
IndexCache::~IndexCache() = default;

bool IndexCache::Lookup(const Archive& archive, size_t tensor, size_t chunk, MutableByteSpan out) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  ++impl_->stats.lookups;
  const auto it = impl_->entries.find(Impl::KeyOf(archive, tensor, chunk));
  if (it == impl_->entries.end() || it->second.size() != out.size) return false;
  std::copy(it->second.begin(), it->second.end(), out.data);
  ++impl_->stats.hits;
  return true;
}

bool IndexCache::LookupPart(const Archive& archive, size_t tensor, size_t chunk, uint64_t offset,
                            MutableByteSpan out) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  ++impl_->stats.lookups;
  const auto it = impl_->entries.find(Impl::KeyOf(archive, tensor, chunk));
  if (it == impl_->entries.end() || offset > it->second.size() ||
      out.size > it->second.size() - offset)
    return false;
  std::copy_n(it->second.begin() + ptrdiff_t(offset), out.size, out.data);
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
  while (impl_->used + indices.size > impl_->budget && !impl_->order.empty()) {
    const auto old = impl_->entries.find(impl_->order.front());
    impl_->used -= old->second.size();
    impl_->entries.erase(old);
    impl_->order.pop_front();
  }
  impl_->entries.emplace(key, std::vector<uint8_t>(indices.begin(), indices.end()));
  impl_->order.push_back(key);
  impl_->used += indices.size;
}

}  // namespace ckz
