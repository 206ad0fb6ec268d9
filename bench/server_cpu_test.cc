#include "server_cpu.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace dynamo::bench {
namespace {

TEST(ServerCpuTest, ParsesNamesWithSpacesAndParentheses) {
  // Fields after the name: state, then 10 numbers, utime (14) and stime (15).
  std::optional<StatCpu> s =
      ParseStatCpu("4242 (rocksdb:low) x)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0", 100);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->name, "rocksdb:low) x)");
  EXPECT_DOUBLE_EQ(s->seconds, 3.0);
}

TEST(ServerCpuTest, RejectsTruncatedLines) {
  EXPECT_FALSE(ParseStatCpu("4242 (loop) S 1 2 3", 100).has_value());
  EXPECT_FALSE(ParseStatCpu("no name here", 100).has_value());
  EXPECT_FALSE(ParseStatCpu("", 100).has_value());
}

TEST(ServerCpuTest, SplitsThisProcessByThreadName) {
  std::atomic<bool> stop{false};
  std::thread spinner([&] {
    pthread_setname_np(pthread_self(), "cpu-test-spin");
    while (!stop.load()) {
    }
  });
  std::optional<ServerCpu> before = ReadServerCpu({getpid()});
  ASSERT_TRUE(before.has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::optional<ServerCpu> after = ReadServerCpu({getpid()});
  stop.store(true);
  spinner.join();
  ASSERT_TRUE(after.has_value());
  const ServerCpu used = CpuBetween(*before, *after);
  ASSERT_TRUE(used.by_thread_s.contains("cpu-test-spin"));
  // The spinning thread ran for most of the window; the process total holds it.
  EXPECT_GT(used.by_thread_s.at("cpu-test-spin"), 0.05);
  EXPECT_GE(used.total_s + 0.02, used.by_thread_s.at("cpu-test-spin"));
}

TEST(ServerCpuTest, EndedThreadsCountInTheTotalOnly) {
  ServerCpu before{10.0, {{"loop", 4.0}, {"worker", 6.0}}};
  ServerCpu after{13.0, {{"loop", 5.0}}};  // the worker ended after 1.5 more seconds
  const ServerCpu used = CpuBetween(before, after);
  EXPECT_DOUBLE_EQ(used.total_s, 3.0);
  EXPECT_DOUBLE_EQ(used.by_thread_s.at("loop"), 1.0);
  EXPECT_DOUBLE_EQ(used.by_thread_s.at(std::string(kEndedThreads)), 2.0);
  EXPECT_FALSE(used.by_thread_s.contains("worker"));
}

TEST(ServerCpuTest, AMissingProcessIsNotMeasured) {
  EXPECT_FALSE(ReadServerCpu({}).has_value());
  EXPECT_FALSE(ReadServerCpu({-5}).has_value());
}

}  // namespace
}  // namespace dynamo::bench
