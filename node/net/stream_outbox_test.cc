#include "stream_outbox.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace dynamo::server {
namespace {

v1::Envelope Request(uint64_t id, size_t key_bytes = 8) {
  v1::Envelope e;
  e.set_request_id(id);
  e.mutable_read()->add_keys(std::string(key_bytes, 'k'));
  return e;
}

std::vector<v1::Envelope> Requests(uint64_t first, int count) {
  std::vector<v1::Envelope> out;
  for (int i = 0; i < count; ++i) out.push_back(Request(first + static_cast<uint64_t>(i)));
  return out;
}

std::vector<uint64_t> Ids(const v1::EnvelopeBatch* batch) {
  std::vector<uint64_t> ids;
  for (const v1::Envelope& e : batch->envelopes()) ids.push_back(e.request_id());
  return ids;
}

// The batching the stream's peers rely on: nothing waits while the stream is
// idle, and what comes during a write leaves, all together, in the next.
TEST(StreamOutboxTest, WhatQueuesDuringAWriteLeavesTogetherInTheNext) {
  StreamOutbox outbox(1 << 20);
  std::vector<v1::Envelope> too_large;
  std::vector<v1::Envelope> first = Requests(1, 1);
  StreamOutbox::Added added = outbox.Add(&first, &too_large);
  ASSERT_TRUE(added.accepted);
  ASSERT_NE(added.write, nullptr);
  EXPECT_EQ(Ids(added.write), (std::vector<uint64_t>{1}));
  EXPECT_TRUE(first.empty());

  for (uint64_t id : {2, 3, 4}) {
    std::vector<v1::Envelope> more = Requests(id, 1);
    added = outbox.Add(&more, &too_large);
    EXPECT_TRUE(added.accepted);
    EXPECT_EQ(added.write, nullptr) << "one write at a time";
  }
  StreamOutbox::Next next = outbox.WriteDone(true);
  ASSERT_NE(next.write, nullptr);
  EXPECT_EQ(Ids(next.write), (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_FALSE(next.end);
  next = outbox.WriteDone(true);
  EXPECT_EQ(next.write, nullptr);
  EXPECT_FALSE(next.end);
  EXPECT_TRUE(too_large.empty());
}

TEST(StreamOutboxTest, AWriteHoldsNoMoreThanItsBoundsAllow) {
  const size_t one = Request(1).ByteSizeLong();
  StreamOutbox outbox(6 * one);  // three envelopes of this size per write
  std::vector<v1::Envelope> too_large;
  std::vector<v1::Envelope> first = Requests(1, 1);
  ASSERT_NE(outbox.Add(&first, &too_large).write, nullptr);
  std::vector<v1::Envelope> many = Requests(2, 7);
  EXPECT_EQ(outbox.Add(&many, &too_large).write, nullptr);
  std::vector<std::vector<uint64_t>> writes;
  for (StreamOutbox::Next next = outbox.WriteDone(true); next.write != nullptr;
       next = outbox.WriteDone(true)) {
    writes.push_back(Ids(next.write));
  }
  EXPECT_EQ(writes, (std::vector<std::vector<uint64_t>>{{2, 3, 4}, {5, 6, 7}, {8}}));

  StreamOutbox counted(1 << 30);
  std::vector<v1::Envelope> lots = Requests(1, StreamOutbox::kBatchEnvelopesMax + 1);
  const StreamOutbox::Added added = counted.Add(&lots, &too_large);
  ASSERT_NE(added.write, nullptr);
  EXPECT_EQ(added.write->envelopes_size(), StreamOutbox::kBatchEnvelopesMax);
  const StreamOutbox::Next rest = counted.WriteDone(true);
  ASSERT_NE(rest.write, nullptr);
  EXPECT_EQ(Ids(rest.write),
            (std::vector<uint64_t>{static_cast<uint64_t>(StreamOutbox::kBatchEnvelopesMax) + 1}));
}

TEST(StreamOutboxTest, AnEnvelopeLargerThanABatchLeavesAloneOneTooLargeForAMessageIsHandedBack) {
  StreamOutbox outbox(200);  // batches of 100 bytes, envelopes up to 184
  std::vector<v1::Envelope> mixed;
  mixed.push_back(Request(1));
  mixed.push_back(Request(2, 150));
  mixed.push_back(Request(3, 190));
  std::vector<v1::Envelope> too_large;
  const StreamOutbox::Added added = outbox.Add(&mixed, &too_large);
  ASSERT_NE(added.write, nullptr);
  EXPECT_EQ(Ids(added.write), (std::vector<uint64_t>{1}));
  const StreamOutbox::Next next = outbox.WriteDone(true);
  ASSERT_NE(next.write, nullptr);
  EXPECT_EQ(Ids(next.write), (std::vector<uint64_t>{2}));
  ASSERT_EQ(too_large.size(), 1u);
  EXPECT_EQ(too_large[0].request_id(), 3u);
}

// A peer that does not read its replies: past a few messages' worth queued
// the stream is backlogged (its owner takes no more requests), until writes
// drain the queue; a broken stream is never backlogged.
TEST(StreamOutboxTest, ABacklogPastAFewMessagesLastsUntilWritesDrainIt) {
  // Ids of two varint bytes each: every envelope is the same size.
  const size_t message = 100 * Request(1000, 200).ByteSizeLong();
  StreamOutbox outbox(message);
  std::vector<v1::Envelope> too_large;
  auto add = [&](uint64_t first, int count) {
    std::vector<v1::Envelope> batch;
    for (int i = 0; i < count; ++i) batch.push_back(Request(first + static_cast<uint64_t>(i), 200));
    return outbox.Add(&batch, &too_large);
  };
  ASSERT_NE(add(1000, 1).write, nullptr);  // in flight from here on
  // Queued: exactly, then over, kBacklogMessages messages' worth.
  add(1001, static_cast<int>(StreamOutbox::kBacklogMessages) * 100);
  EXPECT_FALSE(outbox.Backlogged());
  EXPECT_TRUE(outbox.Backlogged(1)) << "counting what is coming";
  add(3000, 1);
  EXPECT_TRUE(outbox.Backlogged());
  StreamOutbox::Next next = outbox.WriteDone(true);  // takes half a message
  ASSERT_NE(next.write, nullptr);
  EXPECT_FALSE(outbox.Backlogged());
  EXPECT_TRUE(too_large.empty());

  add(4000, 300);
  EXPECT_TRUE(outbox.Backlogged());
  outbox.WriteDone(false);
  EXPECT_FALSE(outbox.Backlogged(message * 10)) << "a broken stream takes nothing more";
}

// The stream ends (Finish) exactly once, and only when its reads are over
// and no write is in flight: its last operation must know it is last.
TEST(StreamOutboxTest, TheStreamEndsOnceNoWriteIsInFlight) {
  std::vector<v1::Envelope> too_large;
  StreamOutbox idle(1 << 20);
  EXPECT_TRUE(idle.Close()) << "nothing in flight: end now";
  EXPECT_FALSE(idle.Close()) << "ended already";
  std::vector<v1::Envelope> late = Requests(1, 1);
  EXPECT_FALSE(idle.Add(&late, &too_large).accepted);
  EXPECT_EQ(late.size(), 1u) << "a refused envelope stays with the caller";

  StreamOutbox busy(1 << 20);
  std::vector<v1::Envelope> some = Requests(1, 1);
  ASSERT_NE(busy.Add(&some, &too_large).write, nullptr);
  std::vector<v1::Envelope> queued = Requests(2, 1);
  ASSERT_TRUE(busy.Add(&queued, &too_large).accepted);
  EXPECT_FALSE(busy.Close()) << "a write is in flight";
  StreamOutbox::Next next = busy.WriteDone(true);
  EXPECT_EQ(next.write, nullptr) << "what was queued is dropped at the close";
  EXPECT_TRUE(next.end);
  EXPECT_FALSE(busy.WriteDone(true).end);

  StreamOutbox broken(1 << 20);
  std::vector<v1::Envelope> one = Requests(1, 1);
  ASSERT_NE(broken.Add(&one, &too_large).write, nullptr);
  std::vector<v1::Envelope> after = Requests(2, 1);
  ASSERT_TRUE(broken.Add(&after, &too_large).accepted);
  const StreamOutbox::Next failed = broken.WriteDone(false);
  EXPECT_EQ(failed.write, nullptr) << "a failed write stops the writes";
  EXPECT_FALSE(failed.end) << "a read may still be in flight";
  std::vector<v1::Envelope> later = Requests(3, 1);
  EXPECT_FALSE(broken.Add(&later, &too_large).accepted);
  EXPECT_TRUE(broken.Close()) << "the reads are over, no write in flight: end now";
}

}  // namespace
}  // namespace dynamo::server
