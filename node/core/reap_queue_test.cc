#include "dynamo/core/reap_queue.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dynamo/core/storage_keys.h"
#include "dynamo/storage/memory_engine.h"

namespace dynamo::core {
namespace {

using storage::MemoryEngine;
using storage::Space;

VersionVector ClockOf(uint64_t counter) {
  VersionVector v;
  v.Advance("n1#a", counter, 0);
  return v;
}

// Pops everything queued (due or not), as key@due.
std::vector<std::string> Drain(ReapQueue& queue) {
  std::vector<std::string> out;
  for (;;) {
    absl::StatusOr<const ReapQueue::Item*> front = queue.Front();
    EXPECT_TRUE(front.ok()) << front.status();
    if (!front.ok() || *front == nullptr) break;
    out.push_back((*front)->key + "@" + std::to_string((*front)->due_ms));
    EXPECT_TRUE(queue.Pop().ok());
  }
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.size(), 0u);
  return out;
}

size_t Records(MemoryEngine& engine) {
  size_t n = 0;
  EXPECT_TRUE(engine
                  .Scan(Space::kMeta, meta::kReapPrefix, PrefixEnd(meta::kReapPrefix),
                        [&](std::string_view, std::string_view) { return ++n > 0; })
                  .ok());
  return n;
}

TEST(ReapQueueTest, OldestFirstAndEachPopForgetsItsRecord) {
  MemoryEngine engine;
  LocalStore store(&engine, MerkleShape{});
  ReapQueue queue(&store, 100);
  ASSERT_TRUE(queue.Load(1, 1'000'000).ok());
  EXPECT_TRUE(queue.empty());
  ASSERT_TRUE(queue.Push("a", 10, ClockOf(1), 100).ok());
  ASSERT_TRUE(queue.Push("b", 20, ClockOf(2), 200).ok());
  const ReapQueue::Item* front = *queue.Front();
  ASSERT_NE(front, nullptr);
  EXPECT_EQ(front->key, "a");
  EXPECT_EQ(front->position, 10u);
  EXPECT_EQ(front->clock, ClockOf(1));
  EXPECT_EQ(Records(engine), 2u);
  EXPECT_EQ(queue.size(), 2u);
  ASSERT_TRUE(queue.Pop().ok());
  EXPECT_EQ(queue.size(), 1u);
  EXPECT_EQ(Records(engine), 1u);
  EXPECT_EQ(Drain(queue), std::vector<std::string>{"b@200"});
  EXPECT_EQ(Records(engine), 0u);
}

// A restart (a new generation) finds what was queued, in order, and due no
// later than its start allows: the clock that set the due times may be gone.
TEST(ReapQueueTest, ARestartKeepsTheQueueAndBoundsItsDueTimes) {
  MemoryEngine engine;
  LocalStore store(&engine, MerkleShape{});
  {
    ReapQueue queue(&store, 100);
    ASSERT_TRUE(queue.Load(1, 0).ok());
    ASSERT_TRUE(queue.Push("a", 1, ClockOf(1), 100).ok());
    ASSERT_TRUE(queue.Push("b", 2, ClockOf(2), 5'000).ok());
    ASSERT_TRUE(queue.Push("c", 3, ClockOf(3), 9'000).ok());
    ASSERT_TRUE(queue.Pop().ok());  // "a" was reaped before the crash
  }
  ReapQueue queue(&store, 100);
  ASSERT_TRUE(queue.Load(2, 6'000).ok());
  EXPECT_FALSE(queue.empty());
  const ReapQueue::Item* front = *queue.Front();
  ASSERT_NE(front, nullptr);
  EXPECT_EQ(front->clock, ClockOf(2));
  EXPECT_EQ(front->position, 2u);
  // This generation's own pushes keep their due times.
  ASSERT_TRUE(queue.Push("d", 4, ClockOf(4), 7'000).ok());
  EXPECT_EQ(Drain(queue), (std::vector<std::string>{"b@5000", "c@6000", "d@7000"}));
}

// More than the window: the rest waits in storage and comes back in order,
// across a restart too.
TEST(ReapQueueTest, WhatTheWindowCannotHoldWaitsInStorage) {
  MemoryEngine engine;
  LocalStore store(&engine, MerkleShape{});
  std::vector<std::string> want;
  {
    ReapQueue queue(&store, 3);
    ASSERT_TRUE(queue.Load(1, 1'000'000).ok());
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(queue.Push("k" + std::to_string(i), i, ClockOf(i + 1), 100 + i).ok());
      want.push_back("k" + std::to_string(i) + "@" + std::to_string(100 + i));
    }
    EXPECT_EQ(Records(engine), 10u);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(queue.Pop().ok() && (*queue.Front()) != nullptr);
  }
  want.erase(want.begin(), want.begin() + 4);
  ReapQueue queue(&store, 3);
  ASSERT_TRUE(queue.Load(2, 1'000'000).ok());
  EXPECT_EQ(queue.size(), 6u) << "counted in storage, past the window";
  ASSERT_TRUE(queue.Push("late", 0, ClockOf(99), 500).ok());
  EXPECT_EQ(queue.size(), 7u);
  want.push_back("late@500");
  EXPECT_EQ(Drain(queue), want);
  EXPECT_EQ(Records(engine), 0u);
}

// A refill starts where the last one ended, past the records already popped;
// a record written behind that point while the rest waits in storage is
// still found.
TEST(ReapQueueTest, ARecordQueuedBehindTheLastRefillIsNotSkipped) {
  MemoryEngine engine;
  LocalStore store(&engine, MerkleShape{});
  ReapQueue queue(&store, 2);
  ASSERT_TRUE(queue.Load(1, 1'000'000).ok());
  for (int i = 1; i <= 4; ++i) {
    ASSERT_TRUE(queue.Push("k" + std::to_string(i), i, ClockOf(i), 100 * i).ok());
  }
  ASSERT_TRUE(queue.Pop().ok());
  ASSERT_TRUE(queue.Pop().ok());
  ASSERT_EQ((*queue.Front())->key, "k3");  // read back from storage
  ASSERT_TRUE(queue.Push("early", 5, ClockOf(5), 50).ok());
  EXPECT_EQ(Drain(queue), (std::vector<std::string>{"k3@300", "k4@400", "early@50"}));
  EXPECT_EQ(Records(engine), 0u);
}

// A reap sent but not yet acknowledged stays queued under a new record, due
// again later; acknowledged, that record goes, wherever it waits.
TEST(ReapQueueTest, APostponedReapIsQueuedAgainUntilRemoved) {
  MemoryEngine engine;
  LocalStore store(&engine, MerkleShape{});
  ReapQueue queue(&store, 2);
  ASSERT_TRUE(queue.Load(1, 1'000'000).ok());
  ASSERT_TRUE(queue.Push("a", 1, ClockOf(1), 100).ok());
  ASSERT_TRUE(queue.Push("b", 2, ClockOf(2), 200).ok());
  absl::StatusOr<std::string> a_again = queue.Postpone(300);
  ASSERT_TRUE(a_again.ok()) << a_again.status();
  EXPECT_EQ(queue.size(), 2u);
  EXPECT_EQ(Records(engine), 2u);
  EXPECT_EQ((*queue.Front())->key, "b");
  absl::StatusOr<std::string> b_again = queue.Postpone(400);  // past the window: in storage
  ASSERT_TRUE(b_again.ok()) << b_again.status();
  ASSERT_TRUE(queue.Remove(*b_again).ok());
  EXPECT_EQ(queue.size(), 1u);
  ASSERT_TRUE(queue.Remove(*b_again).ok()) << "removing twice changes nothing";
  EXPECT_EQ(queue.size(), 1u);
  {
    ReapQueue restarted(&store, 2);  // what a crash now would find
    ASSERT_TRUE(restarted.Load(2, 1'000'000).ok());
    EXPECT_EQ(restarted.size(), 1u);
  }
  EXPECT_EQ(Drain(queue), std::vector<std::string>{"a@300"});
  ASSERT_TRUE(queue.Push("c", 3, ClockOf(3), 500).ok());
  absl::StatusOr<std::string> c_again = queue.Postpone(600);  // in the window
  ASSERT_TRUE(c_again.ok());
  ASSERT_TRUE(queue.Remove(*c_again).ok());
  EXPECT_TRUE(queue.empty());
  EXPECT_EQ(queue.size(), 0u);
  EXPECT_EQ(Records(engine), 0u);
  EXPECT_FALSE(queue.Postpone(700).ok()) << "nothing to postpone";
}

TEST(ReapQueueTest, AnUnreadableRecordIsDroppedNotServed) {
  MemoryEngine engine;
  LocalStore store(&engine, MerkleShape{});
  const std::string bad = std::string(meta::kReapPrefix) + std::string(24, '\0');
  ASSERT_TRUE(engine.Put(Space::kMeta, bad, "not a record").ok());
  ASSERT_TRUE(engine.Put(Space::kMeta, std::string(meta::kReapPrefix) + "short", "x").ok());
  ReapQueue queue(&store, 100);
  ASSERT_TRUE(queue.Load(1, 1'000'000).ok());
  ASSERT_TRUE(queue.Push("a", 1, ClockOf(1), 100).ok());
  EXPECT_EQ(Drain(queue), std::vector<std::string>{"a@100"});
  EXPECT_EQ(Records(engine), 0u);
  EXPECT_EQ(queue.size(), 0u);
}

}  // namespace
}  // namespace dynamo::core
