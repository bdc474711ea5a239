// A pool of worker threads created once and pinned to cores, for data-parallel kernels.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace moerun {

// Fixed set of pinned workers; parallel_for splits [0, n_tasks) among them and the caller.
class ThreadPool {
 public:
  // Starts n_threads - 1 workers (the calling thread is the n-th); pins them to cores when `pin`.
  explicit ThreadPool(int n_threads, bool pin = true);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Number of threads that run tasks, the caller included.
  int size() const;

  // Runs fn(task, thread) for every task in [0, n_tasks); thread is in [0, size()). Blocks until
  // done.
  void parallel_for(int64_t n_tasks, const std::function<void(int64_t task, int thread)>& fn);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Number of threads to use by default: the physical cores available to this process.
int default_thread_count();

}  // namespace moerun
