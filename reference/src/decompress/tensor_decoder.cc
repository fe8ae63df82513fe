// Range decoding over chunks: finds the chunks the requested byte ranges touch, fetches their
// reference bytes when predicted, decodes them (in parallel when asked) and copies the wanted
// slices.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "ckz/decoder.h"
#include "common/index_model.h"
#include "decompress/chunk_order.h"
#include "decompress/decode_scratch.h"

namespace ckz {

namespace {
thread_local std::vector<std::unique_ptr<DecodeScratch>> t_scratch_pool;
}  // namespace

PooledScratch::PooledScratch() {
  if (t_scratch_pool.empty()) {
    scratch_ = std::make_unique<DecodeScratch>();
  } else {
    scratch_ = std::move(t_scratch_pool.back());
    t_scratch_pool.pop_back();
  }
}

PooledScratch::~PooledScratch() { t_scratch_pool.push_back(std::move(scratch_)); }

namespace {

// One chunk to decode: chunk `chunk` of ranges[range].tensor.
struct ChunkWork {
  size_t range = 0;
  size_t chunk = 0;
  uint64_t raw_length = 0;
};

// Checks a range and the reference it needs; appends the chunks it touches to `work`.
Status PlanRange(const Archive& archive, const TensorRange& r, size_t range_index,
                 ReferenceSource* reference, std::vector<ChunkWork>* work) {
  if (r.tensor >= archive.tensors.size())
    return Status(ErrorCode::kInvalidArgument, "tensor index out of range");
  const TensorInfo& t = archive.tensors[r.tensor];
  if (r.offset > t.byte_length || r.out.size > t.byte_length - r.offset)
    return Status(ErrorCode::kInvalidArgument,
                  "range [" + std::to_string(r.offset) + ", +" + std::to_string(r.out.size) +
                      ") is outside tensor '" + t.name + "' of " +
                      std::to_string(t.byte_length) + " bytes");
  const bool predicted = t.NeedsReference();
  if (predicted && reference == nullptr)
    return Status(ErrorCode::kReferenceRequired,
                  "tensor '" + t.name + "' is predicted from the parent checkpoint; decode it "
                  "through its chain (the parent file is needed)");
  // Rule R3 holds for a tensor without elements too: it has no chunk to ask for its reference,
  // so ask for none of the reference's bytes, which checks its name, dtype and shape; likewise
  // the parent's tensor of a level tensor's step source (spec 7.9.1).
  if (predicted && t.byte_length == 0)
    CKZ_RETURN_IF_ERROR(reference->ReadReference(t, 0, MutableByteSpan()));
  if (t.byte_length == 0 && t.quantization && t.quantization->step_source >= 0) {
    const TensorInfo& u = archive.tensors[size_t(t.quantization->step_source)];
    if (reference == nullptr)
      return Status(ErrorCode::kReferenceRequired,
                    "tensor '" + t.name + "' has its steps from the parent's '" + u.name +
                        "'; decode it through its chain (the parent file is needed)");
    CKZ_RETURN_IF_ERROR(reference->ReadReference(u, 0, MutableByteSpan()));
  }
  if (r.out.size == 0) return Status::Ok();
  const uint64_t end = r.offset + r.out.size;
  auto first = std::upper_bound(t.chunks.begin(), t.chunks.end(), r.offset,
                                [](uint64_t v, const ChunkInfo& c) { return v < c.raw_offset; });
  for (size_t c = size_t(first - t.chunks.begin()) - 1;
       c < t.chunks.size() && t.chunks[c].raw_offset < end; ++c)
    work->push_back({range_index, c, t.chunks[c].raw_length});
  return Status::Ok();
}

// Decodes chunk `chunk` of r.tensor and copies the part of it inside the range into r.out.
// A chunk wanted only in part goes through `chunk_cache` (may be null) whole.
Status DecodeChunkInto(const Archive& archive, const TensorRange& r, size_t chunk_index,
                       ReferenceSource* reference, IndexCache* chunk_cache,
                       DecodeScratch& scratch) {
  const TensorInfo& t = archive.tensors[r.tensor];
  const ChunkInfo& chunk = t.chunks[chunk_index];
  const uint64_t end = r.offset + r.out.size;
  const uint64_t lo = std::max(r.offset, chunk.raw_offset);
  const uint64_t hi = std::min(end, chunk.raw_offset + chunk.raw_length);
  const bool whole_chunk = lo == chunk.raw_offset && hi == chunk.raw_offset + chunk.raw_length;
  const MutableByteSpan part = r.out.subspan(lo - r.offset, hi - lo);
  if (!whole_chunk && chunk_cache &&
      chunk_cache->LookupPart(archive, r.tensor, chunk_index, lo - chunk.raw_offset, part))
    return Status::Ok();
  ByteSpan ref;
  if (t.NeedsReference()) {
    scratch.ref.resize(chunk.raw_length);
    CKZ_RETURN_IF_ERROR(reference->ReadReference(t, chunk.raw_offset, MutableByteSpan(scratch.ref)));
    ref = ByteSpan(scratch.ref);
  }
  // Decode straight into the output when the chunk lies wholly inside the range.
  if (whole_chunk) return scratch.decoder.Decode(archive, r.tensor, chunk_index, ref, part, reference);
  scratch.whole.resize(chunk.raw_length);
  CKZ_RETURN_IF_ERROR(scratch.decoder.Decode(archive, r.tensor, chunk_index, ref,
                                             MutableByteSpan(scratch.whole), reference));
  std::memcpy(part.data, scratch.whole.data() + (lo - chunk.raw_offset), part.size);
  if (chunk_cache) chunk_cache->Insert(archive, r.tensor, chunk_index, ByteSpan(scratch.whole));
  return Status::Ok();
}

// The aux tensor (spec 7.7.2) of each requested tensor and of the tensors down its aux chain,
// -1 if none, and its wave: 0 without an aux tensor, else one more than its aux tensor's
// (Weight 0, Moment1 1, Moment2 2). Other tensors are left at -1 and 0. A single tensor's
// ranges need none of it (its chunks never wait for each other): the graph is then empty. That
// is the common call, once per chunk of a parent read through a chain, so it costs nothing
// there.
struct AuxGraph {
  std::vector<int> aux;
  std::vector<uint32_t> wave;
  uint32_t WaveOf(size_t t) const { return wave.empty() ? 0 : wave[t]; }
};

AuxGraph AuxTensors(const Archive& archive, const std::vector<TensorRange>& ranges) {
  bool several = false;
  for (const TensorRange& r : ranges) several |= r.tensor != ranges.front().tensor;
  if (!several) return {};
  const size_t n = archive.tensors.size();
  AuxGraph g{std::vector<int>(n, -1), std::vector<uint32_t>(n, 0)};
  const std::vector<CmTensorRole> roles = CmRoles(archive.tensors);
  std::vector<bool> known(n, false);
  for (const TensorRange& r : ranges)
    // Aux chains are short and acyclic (7.7.2); the bound only guards.
    for (size_t t = r.tensor, steps = 0; !known[t] && steps < n; ++steps) {
      known[t] = true;
      g.aux[t] = CmAuxTensor(roles, t);
      if (g.aux[t] < 0) break;
      t = size_t(g.aux[t]);
    }
  for (size_t t = 0; t < n; ++t)
    if (known[t])
      for (int a = g.aux[t]; a >= 0 && g.wave[t] < n; a = g.aux[size_t(a)]) ++g.wave[t];
  return g;
}

// Element range [first, end) of a chunk.
std::pair<uint64_t, uint64_t> Elements(const TensorInfo& t, size_t chunk) {
  const uint64_t width = DTypeSize(t.dtype);
  const ChunkInfo& c = t.chunks[chunk];
  return {c.raw_offset / width, (c.raw_offset + c.raw_length) / width};
}

// Hands out chunk work to `workers` workers, each item only once the items it depends on are
// done: in the priority order (the `work` order), each worker walking its own run of
// neighbouring items (NextItem, chunk_order.h). A cm chunk reads the indices of its aux
// tensor at the same elements (spec 7.7.2: a moment reads its weight's): when those chunks are
// decoded by the same call, the chunk waits for them and finds their indices in the index
// cache, so no indices are decoded twice and no worker idles at a barrier.
class Scheduler {
 public:
  Scheduler(const Archive& archive, const std::vector<TensorRange>& ranges,
            const std::vector<ChunkWork>& work, const AuxGraph& graph, size_t workers)
      : archive_(archive), graph_(graph), waiting_(work.size(), 0), dependents_(work.size()),
        last_(workers, kNoItem) {
    for (size_t i = 0; i < work.size() && !graph.aux.empty(); ++i)
      item_of_.emplace(std::make_pair(ranges[work[i].range].tensor, work[i].chunk), i);
    for (size_t i = 0; i < work.size() && !graph.aux.empty(); ++i) {
      const size_t t = ranges[work[i].range].tensor;
      const auto [first, end] = Elements(archive.tensors[t], work[i].chunk);
      std::set<size_t> deps;
      AuxDependencies(t, first, end, &deps);
      for (size_t j : deps) {
        dependents_[j].push_back(i);
        ++waiting_[i];
      }
    }
    for (size_t i = 0; i < work.size(); ++i)
      if (waiting_[i] == 0) ready_.insert(i);
  }

  // The next item for `worker` (0 .. workers - 1) to run, or nullopt when all are handed out.
  std::optional<size_t> Take(size_t worker) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return !ready_.empty() || handed_ == waiting_.size(); });
    if (ready_.empty()) return std::nullopt;
    const size_t i = NextItem(ready_, last_, worker);
    ready_.erase(i);
    last_[worker] = i;
    ++handed_;
    return i;
  }

  void Done(size_t i) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t d : dependents_[i])
      if (--waiting_[d] == 0) ready_.insert(d);
    changed_.notify_all();
  }

 private:
  // The items that elements [first, end) of tensor t wait for: the chunks of t's aux tensor
  // holding those elements, when they are items; a chunk that is not one gets decoded on
  // demand, which needs its own aux tensor's indices: then those chunks, and so on down the
  // chain. Only towards a lower wave: even a malformed aux relation never makes a cycle.
  void AuxDependencies(size_t t, uint64_t first, uint64_t end, std::set<size_t>* deps) const {
    const int a = graph_.aux[t];
    if (a < 0 || graph_.wave[size_t(a)] >= graph_.wave[t]) return;
    const TensorInfo& at = archive_.tensors[size_t(a)];
    const uint64_t width = DTypeSize(at.dtype);
    auto c = std::upper_bound(at.chunks.begin(), at.chunks.end(), first * width,
                              [](uint64_t v, const ChunkInfo& ch) { return v < ch.raw_offset; });
    if (c != at.chunks.begin()) --c;
    for (; c != at.chunks.end() && c->raw_offset < end * width; ++c) {
      const size_t chunk = size_t(c - at.chunks.begin());
      const auto item = item_of_.find({size_t(a), chunk});
      if (item != item_of_.end()) {
        deps->insert(item->second);
      } else {
        const auto [a_first, a_end] = Elements(at, chunk);
        AuxDependencies(size_t(a), a_first, a_end, deps);
      }
    }
  }

  const Archive& archive_;
  const AuxGraph& graph_;
  std::map<std::pair<size_t, size_t>, size_t> item_of_;  // (tensor, chunk) -> first work item
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<size_t> waiting_;                 // unfinished items each item depends on
  std::vector<std::vector<size_t>> dependents_;
  std::set<size_t> ready_;                      // runnable, lowest (highest priority) first
  std::vector<size_t> last_;                    // each worker's last item (chunk_order.h)
  size_t handed_ = 0;
};

}  // namespace

Status DecodeTensorRanges(const Archive& archive, const std::vector<TensorRange>& ranges,
                          ReferenceSource* reference, const DecodeOptions& options) {
  std::vector<ChunkWork> work;
  for (size_t r = 0; r < ranges.size(); ++r)
    CKZ_RETURN_IF_ERROR(PlanRange(archive, ranges[r], r, reference, &work));
  if (work.empty()) return Status::Ok();
  // The cache carries aux indices from chunk to chunk even if the caller gave none.
  std::optional<IndexCache> local_cache;
  IndexCache* cache = options.index_cache;
  if (cache == nullptr && ranges.size() > 1) cache = &local_cache.emplace();
  // Priority: by wave (the chunks others wait for first), then the largest chunks first, so
  // the last ones to finish are short.
  const AuxGraph graph = AuxTensors(archive, ranges);
  std::stable_sort(work.begin(), work.end(), [&](const ChunkWork& a, const ChunkWork& b) {
    const uint32_t wa = graph.WaveOf(ranges[a.range].tensor), wb = graph.WaveOf(ranges[b.range].tensor);
    if (wa != wb) return wa < wb;
    return a.raw_length > b.raw_length;
  });
  const size_t workers = std::min(work.size(), size_t(std::max(1, options.threads)));
  Scheduler scheduler(archive, ranges, work, graph, workers);

  std::vector<Status> results(work.size());
  // The error reported is that of the first failing chunk in (range, chunk) order, whatever the
  // thread count: chunks after the first failure seen so far are skipped, those before it run.
  std::mutex failure_mutex;
  size_t first_failure = SIZE_MAX;  // a work index, guarded by failure_mutex
  auto before_locked = [&](size_t i) {
    const size_t f = first_failure;
    return f == SIZE_MAX || work[i].range < work[f].range ||
           (work[i].range == work[f].range && work[i].chunk < work[f].chunk);
  };
  auto before_failure = [&](size_t i) {
    std::lock_guard<std::mutex> lock(failure_mutex);
    return before_locked(i);
  };
  auto record_failure = [&](size_t i) {
    std::lock_guard<std::mutex> lock(failure_mutex);
    if (before_locked(i)) first_failure = i;
  };
  auto worker = [&](size_t id) {
    PooledScratch scratch;
    scratch->decoder.set_index_cache(cache);
    while (const std::optional<size_t> next = scheduler.Take(id)) {
      const size_t i = *next;
      if (before_failure(i)) {
        results[i] = DecodeChunkInto(archive, ranges[work[i].range], work[i].chunk, reference,
                                     options.chunk_cache, *scratch);
        if (!results[i].ok()) record_failure(i);
      }
      scheduler.Done(i);
    }
  };
  std::vector<std::thread> pool;
  for (size_t w = 1; w < workers; ++w) pool.emplace_back(worker, w);
  worker(0);
  for (std::thread& t : pool) t.join();
  return first_failure == SIZE_MAX ? Status::Ok() : results[first_failure];
}

Status DecodeTensorRange(const Archive& archive, size_t tensor, uint64_t offset,
                         MutableByteSpan out, ReferenceSource* reference,
                         const DecodeOptions& options) {
  return DecodeTensorRanges(archive, {TensorRange{tensor, offset, out}}, reference, options);
}

}  // namespace ckz
