// Runs fn(i) for i in [0, n) on up to `threads` threads. Work is handed out by index, so
// callers that write result i to slot i get output independent of the thread count.
#ifndef CKZ_COMMON_PARALLEL_H_
#define CKZ_COMMON_PARALLEL_H_

#include <cstddef>
#include <functional>

namespace ckz {

// `fn(i, worker)` gets the worker number in [0, threads) for per-thread scratch.
void ParallelFor(size_t n, int threads, const std::function<void(size_t i, int worker)>& fn);

// Threads to use for "-T 0" (all cores).
int HardwareThreads();

}  // namespace ckz

#endif  // CKZ_COMMON_PARALLEL_H_
