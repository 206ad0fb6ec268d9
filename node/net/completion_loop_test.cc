#include "completion_loop.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace dynamo::server {
namespace {

// Records where and how its operation completed.
struct Recorder final : CompletionTag {
  void Done(bool ok) override {
    thread = std::this_thread::get_id();
    succeeded = ok;
    saw_stopping = loop->stopping();
    runs.fetch_add(1);
  }
  const CompletionLoop* loop = nullptr;
  std::thread::id thread;
  bool succeeded = false;
  bool saw_stopping = false;
  std::atomic<int> runs{0};
};

gpr_timespec In(std::chrono::milliseconds delay) {
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_millis(delay.count(), GPR_TIMESPAN));
}

TEST(CompletionLoopTest, RunsEveryTagOnItsOwnThread) {
  CompletionLoop loop(std::make_unique<grpc::CompletionQueue>());
  loop.Start("test-loop");
  std::vector<Recorder> tags(50);
  std::vector<grpc::Alarm> alarms(tags.size());
  for (size_t i = 0; i < tags.size(); ++i) {
    tags[i].loop = &loop;
    alarms[i].Set(loop.cq(), In(std::chrono::milliseconds(0)), static_cast<CompletionTag*>(&tags[i]));
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  auto all_ran = [&] {
    for (const Recorder& t : tags) {
      if (t.runs.load() != 1) return false;
    }
    return true;
  };
  while (!all_ran() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(all_ran());
  for (const Recorder& t : tags) {
    EXPECT_NE(t.thread, std::this_thread::get_id());
    EXPECT_EQ(t.thread, tags[0].thread) << "one thread runs them all";
    EXPECT_TRUE(t.succeeded);
    EXPECT_FALSE(t.saw_stopping);
  }
  loop.Stop();
}

// An operation still in flight at the stop completes before Stop returns, and
// its tag sees stopping(): it must start nothing more on the queue.
TEST(CompletionLoopTest, StopWaitsForOperationsInFlightWhoseTagsSeeTheStop) {
  CompletionLoop loop(std::make_unique<grpc::CompletionQueue>());
  loop.Start("test-loop");
  Recorder late;
  late.loop = &loop;
  grpc::Alarm alarm;
  alarm.Set(loop.cq(), In(std::chrono::milliseconds(200)), static_cast<CompletionTag*>(&late));
  loop.Stop();
  EXPECT_EQ(late.runs.load(), 1);
  EXPECT_TRUE(late.saw_stopping);
  EXPECT_TRUE(late.succeeded) << "the alarm fired: the queue waited for it";
}

}  // namespace
}  // namespace dynamo::server
