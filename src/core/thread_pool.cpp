#include "core/thread_pool.h"

#include <immintrin.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <exception>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.h"

namespace moerun {
namespace {

// Spin iterations before a waiting thread sleeps on the futex: the first kPauseSpins are `pause`,
// the rest sched_yield, so an oversubscribed machine still runs the threads we wait for.
constexpr int kPauseSpins = 1 << 11;
constexpr int kSpinIterations = kPauseSpins + 256;

// One step of a spin-wait loop.
void spin_step(int iteration) {
  if (iteration < kPauseSpins) {
    _mm_pause();
  } else {
    sched_yield();
  }
}

// Set while a thread runs a pool task, so a nested parallel_for runs inline instead of deadlocking.
thread_local bool t_inside_pool_task = false;

// Blocks while *addr == expected (or until woken).
void futex_wait(std::atomic<uint32_t>* addr, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
}

// Wakes every thread blocked on addr.
void futex_wake_all(std::atomic<uint32_t>* addr) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr,
          nullptr, 0);
}

// Reads one small integer from a sysfs file; -1 when it cannot.
int read_sysfs_int(const std::string& path) {
  std::ifstream in(path);
  int value = -1;
  if (!(in >> value)) return -1;
  return value;
}

// A logical CPU with the physical core it belongs to.
struct LogicalCpu {
  int cpu;
  int package;
  int core;
};

// The CPUs this process may run on, one per physical core first, then their SMT siblings.
std::vector<int> allowed_cpus_by_core() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return {};
  std::vector<LogicalCpu> cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &set)) continue;
    const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
    cpus.push_back(
        {c, read_sysfs_int(base + "physical_package_id"), read_sysfs_int(base + "core_id")});
  }
  std::vector<int> first, siblings;
  std::set<std::pair<int, int>> seen;
  for (const LogicalCpu& c : cpus) {
    const bool known = c.core >= 0;
    if (!known || seen.insert({c.package, c.core}).second) {
      first.push_back(c.cpu);
    } else {
      siblings.push_back(c.cpu);
    }
  }
  first.insert(first.end(), siblings.begin(), siblings.end());
  return first;
}

// Number of distinct physical cores among the allowed CPUs (0 when unknown).
int allowed_physical_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
  std::set<std::pair<int, int>> cores;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &set)) continue;
    const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
    const int core = read_sysfs_int(base + "core_id");
    if (core < 0) return CPU_COUNT(&set);  // topology unknown: count logical CPUs
    cores.insert({read_sysfs_int(base + "physical_package_id"), core});
  }
  return static_cast<int>(cores.size());
}

// Pins the calling thread to one CPU; failure only costs locality, so it is ignored.
void pin_current_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)sched_setaffinity(0, sizeof(set), &set);
}

}  // namespace

struct ThreadPool::State {
  int n_threads = 1;
  std::vector<std::thread> workers;

  // The current job, written by the caller before `generation` is bumped.
  const std::function<void(int64_t, int)>* fn = nullptr;
  int64_t n_tasks = 0;

  std::atomic<uint32_t> generation{0};  // bumped once per job (and once to stop)
  std::atomic<int> sleepers{0};         // workers blocked (or about to block) on the futex
  std::atomic<int> pending{0};          // workers that have not finished the current job
  bool stop = false;

  std::mutex error_mutex;
  std::exception_ptr error;  // first exception thrown by a task of the current job

  std::mutex call_mutex;  // one parallel_for at a time

  // Runs thread `thread`'s contiguous share of the current job's tasks.
  void run_share(int thread) {
    const int64_t begin = n_tasks * thread / n_threads;
    const int64_t end = n_tasks * (thread + 1) / n_threads;
    t_inside_pool_task = true;
    try {
      for (int64_t task = begin; task < end; ++task) (*fn)(task, thread);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
    }
    t_inside_pool_task = false;
  }

  // Waits (spin, then futex) until `generation` differs from `seen`; returns the new value.
  uint32_t wait_for_job(uint32_t seen) {
    for (int i = 0; i < kSpinIterations; ++i) {
      const uint32_t g = generation.load(std::memory_order_acquire);
      if (g != seen) return g;
      spin_step(i);
    }
    while (true) {
      sleepers.fetch_add(1, std::memory_order_seq_cst);
      uint32_t g = generation.load(std::memory_order_seq_cst);
      if (g == seen) {
        futex_wait(&generation, seen);
        g = generation.load(std::memory_order_acquire);
      }
      sleepers.fetch_sub(1, std::memory_order_seq_cst);
      if (g != seen) return g;
    }
  }

  void worker_loop(int thread, int cpu) {
    if (cpu >= 0) pin_current_thread(cpu);
    uint32_t seen = 0;
    while (true) {
      seen = wait_for_job(seen);
      if (stop) return;
      run_share(thread);
      pending.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  // Publishes the job to the workers (who are idle).
  void start_job() {
    pending.store(n_threads - 1, std::memory_order_relaxed);
    generation.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers.load(std::memory_order_seq_cst) > 0) futex_wake_all(&generation);
  }

  // Spins (then yields, for oversubscribed machines) until every worker is done.
  void wait_for_workers() {
    for (int i = 0; pending.load(std::memory_order_acquire) != 0; ++i) {
      spin_step(std::min(i, kPauseSpins));
    }
  }
};

ThreadPool::ThreadPool(int n_threads, bool pin) : state_(std::make_unique<State>()) {
  if (n_threads < 1) fail("thread pool needs at least 1 thread, got {}", n_threads);
  state_->n_threads = n_threads;
  std::vector<int> cpus;
  if (pin) cpus = allowed_cpus_by_core();
  state_->workers.reserve(n_threads - 1);
  for (int t = 1; t < n_threads; ++t) {
    // Worker t takes the t-th allowed core; the caller (thread 0) keeps its own affinity and
    // usually lands on the first core, which no worker takes.
    const int cpu = static_cast<size_t>(t) < cpus.size() ? cpus[t] : -1;
    state_->workers.emplace_back([s = state_.get(), t, cpu] { s->worker_loop(t, cpu); });
  }
}

ThreadPool::~ThreadPool() {
  state_->stop = true;
  state_->generation.fetch_add(1, std::memory_order_seq_cst);
  futex_wake_all(&state_->generation);
  for (std::thread& w : state_->workers) w.join();
}

int ThreadPool::size() const {
  return state_->n_threads;
}

void ThreadPool::parallel_for(int64_t n_tasks,
                              const std::function<void(int64_t task, int thread)>& fn) {
  if (n_tasks <= 0) return;
  State& s = *state_;
  if (s.n_threads == 1 || t_inside_pool_task) {
    // No workers, or called from inside a task: run everything here as thread 0.
    const bool outer = !t_inside_pool_task;
    t_inside_pool_task = true;
    try {
      for (int64_t task = 0; task < n_tasks; ++task) fn(task, 0);
    } catch (...) {
      if (outer) t_inside_pool_task = false;
      throw;
    }
    if (outer) t_inside_pool_task = false;
    return;
  }
  std::lock_guard<std::mutex> lock(s.call_mutex);
  s.fn = &fn;
  s.n_tasks = n_tasks;
  s.error = nullptr;
  s.start_job();
  s.run_share(0);
  s.wait_for_workers();
  s.fn = nullptr;
  if (s.error) std::rethrow_exception(std::exchange(s.error, nullptr));
}

int default_thread_count() {
  const int cores = allowed_physical_cores();
  if (cores > 0) return cores;
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

}  // namespace moerun
