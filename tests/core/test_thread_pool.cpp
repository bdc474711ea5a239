#include "core/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace moerun {
namespace {

// Every task in [0, n) runs exactly once, on a thread index within [0, size()).
void expect_exact_coverage(ThreadPool& pool, int64_t n) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::atomic<int> bad_thread{0};
  pool.parallel_for(n, [&](int64_t task, int thread) {
    hits[static_cast<size_t>(task)].fetch_add(1);
    if (thread < 0 || thread >= pool.size()) bad_thread.fetch_add(1);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "task " << i;
  EXPECT_EQ(bad_thread.load(), 0);
}

TEST(ThreadPool, CoversEveryTaskOnceForManySizes) {
  for (int threads : {1, 2, 3, 4, 7}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 2, 3, 5, 7, 8, 13, 64, 100, 1000, 4097}) {
      expect_exact_coverage(pool, n);
    }
  }
}

TEST(ThreadPool, ManyRepeatedCallsSumCorrectly) {
  ThreadPool pool(4);
  std::atomic<int64_t> sum{0};
  for (int call = 0; call < 2000; ++call) {
    pool.parallel_for(call % 17 + 1, [&](int64_t task, int) { sum.fetch_add(task + 1); });
  }
  int64_t expected = 0;
  for (int call = 0; call < 2000; ++call) {
    const int64_t n = call % 17 + 1;
    expected += n * (n + 1) / 2;
  }
  EXPECT_EQ(sum.load(), expected);
}

TEST(ThreadPool, TasksWithEqualCountsGetOneTaskPerThread) {
  ThreadPool pool(4);
  std::vector<int> thread_of(4, -1);
  pool.parallel_for(
      4, [&](int64_t task, int thread) { thread_of[static_cast<size_t>(task)] = thread; });
  for (int t = 0; t < 4; ++t) EXPECT_EQ(thread_of[static_cast<size_t>(t)], t);
}

TEST(ThreadPool, PropagatesAnExceptionAndStaysUsable) {
  ThreadPool pool(3);
  for (int64_t failing : {0, 5, 99}) {
    std::atomic<int> ran{0};
    EXPECT_THROW(pool.parallel_for(100,
                                   [&](int64_t task, int) {
                                     ran.fetch_add(1);
                                     if (task == failing) throw std::runtime_error("boom");
                                   }),
                 std::runtime_error);
    EXPECT_GE(ran.load(), 1);
  }
  // Every thread throwing: still exactly one exception reaches the caller.
  EXPECT_THROW(pool.parallel_for(3, [](int64_t, int) { throw std::logic_error("all"); }),
               std::logic_error);
  expect_exact_coverage(pool, 1000);
}

TEST(ThreadPool, SizeOnePoolRunsOnTheCaller) {
  ThreadPool pool(1);
  std::vector<int> order;
  pool.parallel_for(5, [&](int64_t task, int thread) {
    EXPECT_EQ(thread, 0);
    order.push_back(static_cast<int>(task));
  });
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_THROW(pool.parallel_for(2, [](int64_t, int) { throw std::runtime_error("x"); }),
               std::runtime_error);
}

TEST(ThreadPool, NestedCallRunsInline) {
  ThreadPool pool(2);
  std::atomic<int> inner{0};
  pool.parallel_for(
      2, [&](int64_t, int) { pool.parallel_for(3, [&](int64_t, int) { inner.fetch_add(1); }); });
  EXPECT_EQ(inner.load(), 6);
}

TEST(ThreadPool, WorkersWakeAfterSleeping) {
  ThreadPool pool(3);
  std::atomic<int> n{0};
  for (int i = 0; i < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // long enough to reach the futex
    pool.parallel_for(3, [&](int64_t, int) { n.fetch_add(1); });
  }
  EXPECT_EQ(n.load(), 9);
}

TEST(ThreadPool, RejectsZeroThreadsAndDefaultCountIsPositive) {
  EXPECT_ANY_THROW(ThreadPool(0));
  EXPECT_GE(default_thread_count(), 1);
}

}  // namespace
}  // namespace moerun
