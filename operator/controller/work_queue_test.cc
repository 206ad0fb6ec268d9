#include "dynamo/operator/work_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace dynamo::op {
namespace {

using Clock = std::chrono::steady_clock;

TEST(WorkQueueTest, KeysCoalesceWhileWaiting) {
  WorkQueue q;
  q.Add("a");
  q.Add("a");
  q.Add("b");
  EXPECT_EQ(q.waiting(), 2u);
  std::string k;
  ASSERT_TRUE(q.Get(&k));
  q.Done(k);
  ASSERT_TRUE(q.Get(&k));
  q.Done(k);
  EXPECT_EQ(q.waiting(), 0u);
}

TEST(WorkQueueTest, AKeyIsNeverProcessedTwiceAtOnce) {
  WorkQueue q;
  q.Add("a");
  std::string first;
  ASSERT_TRUE(q.Get(&first));
  q.Add("a");  // changed while being processed
  std::atomic<bool> got{false};
  std::thread other([&] {
    std::string k;
    if (q.Get(&k)) {
      got = true;
      q.Done(k);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(got.load());  // held back until Done
  q.Done(first);
  other.join();
  EXPECT_TRUE(got.load());
}

TEST(WorkQueueTest, DelayedAddsKeepTheEarliestTime) {
  WorkQueue q;
  const auto start = Clock::now();
  q.AddAfter("a", 5000);
  q.AddAfter("a", 100);
  std::string k;
  ASSERT_TRUE(q.Get(&k));
  const auto waited = Clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(90));
  EXPECT_LT(waited, std::chrono::milliseconds(2000));
}

TEST(WorkQueueTest, FailuresBackOffExponentiallyUpToTheCap) {
  WorkQueue q(WorkQueue::Options{50, 200});
  std::string k;
  const int64_t want_ms[] = {50, 100, 200, 200};
  for (const int64_t want : want_ms) {
    const auto start = Clock::now();
    q.AddRateLimited("a");
    ASSERT_TRUE(q.Get(&k));
    q.Done(k);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    EXPECT_GE(ms, want - 5);
    EXPECT_LT(ms, want + 500);
  }
  EXPECT_EQ(q.Failures("a"), 4);
  q.Forget("a");
  EXPECT_EQ(q.Failures("a"), 0);
}

TEST(WorkQueueTest, ShutDownWakesWorkers) {
  WorkQueue q;
  std::thread t([&] {
    std::string k;
    EXPECT_FALSE(q.Get(&k));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  q.ShutDown();
  t.join();
  q.Add("late");
  EXPECT_EQ(q.waiting(), 0u);
}

TEST(WorkQueueTest, IsBounded) {
  WorkQueue q;
  for (size_t i = 0; i < WorkQueue::kKeysMax + 10; ++i) q.Add(std::to_string(i));
  EXPECT_EQ(q.waiting(), WorkQueue::kKeysMax);
  EXPECT_EQ(q.dropped(), 10u);
}

}  // namespace
}  // namespace dynamo::op
