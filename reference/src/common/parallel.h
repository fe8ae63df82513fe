// Runs fn(i) for i in [0, n) on up to `threads` threads. Work is handed out by index, so
// callers that write result i to slot i get output independent of the thread count.
#ifndef CKZ_COMMON_PARALLEL_H_
#define CKZ_COMMON_PARALLEL_H_

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>

namespace ckz {

// `fn(i, worker)` gets the worker number in [0, threads) for per-thread scratch.
void ParallelFor(size_t n, int threads, const std::function<void(size_t i, int worker)>& fn);

// One thread that runs the tasks it is given one at a time, in order: a pipeline stage that
// overlaps the caller's work. The same thread runs every task, so its thread-local scratch
// (decoders, buffers) lives from task to task.
class BackgroundLane {
 public:
  BackgroundLane();
  ~BackgroundLane();  // waits for the task in flight
  BackgroundLane(const BackgroundLane&) = delete;
  BackgroundLane& operator=(const BackgroundLane&) = delete;

  // Starts `task`; the previous one must have been waited for.
  void Start(std::function<void()> task);
  // Waits until the task started last has finished (at once when none is in flight).
  void Wait();

 private:
  void Loop();
  std::mutex mutex_;
  std::condition_variable changed_;
  std::function<void()> task_;
  bool busy_ = false, stop_ = false;
  std::thread thread_;
};

// Threads to use for "-T 0" (all cores).
int HardwareThreads();

}  // namespace ckz

#endif  // CKZ_COMMON_PARALLEL_H_
