#include "dynamo/core/sync_gate.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace dynamo::core {
namespace {

// One step's outputs: a client reply `client`, and messages whose to_node
// names them ("ack" is a reply to a peer, "write" a replica write).
Outputs Step(uint64_t client, std::vector<std::string> messages, bool sync) {
  Outputs out;
  for (const std::string& name : messages) {
    OutMessage m;
    m.to_node = name;
    if (name == "write") {
      m.envelope.mutable_write();
    } else {
      m.envelope.set_is_reply(true);
      m.envelope.mutable_write_ack();
    }
    out.messages.push_back(std::move(m));
  }
  if (client != 0) out.replies.push_back({client, absl::OkStatus(), v1::PutResponse()});
  out.sync = sync;
  return out;
}

std::vector<std::string> Names(const Outputs& out) {
  std::vector<std::string> names;
  for (const OutMessage& m : out.messages) names.push_back(m.to_node);
  for (const ClientReply& r : out.replies) names.push_back("client" + std::to_string(r.client_id));
  return names;
}

using Seq = std::vector<std::string>;

TEST(SyncGateTest, OutputsWithoutWritesLeaveAtOnceWhenNothingWaits) {
  SyncGate gate;
  EXPECT_EQ(Names(gate.Take(Step(1, {"ack"}, false))), (Seq{"ack", "client1"}));
  EXPECT_EQ(gate.requested(), 0u);
  EXPECT_FALSE(gate.holding());
}

TEST(SyncGateTest, WritesWaitForTheirSyncAndLaterOutputsWaitBehindThem) {
  SyncGate gate;
  // The replica write leaves before the sync; the rest waits for sync 1.
  EXPECT_EQ(Names(gate.Take(Step(1, {"ack", "write"}, true))), (Seq{"write"}));
  EXPECT_EQ(gate.requested(), 1u);
  // No write of its own, but it may tell of the first step's write: it waits.
  EXPECT_EQ(Names(gate.Take(Step(2, {}, false))), Seq{});
  EXPECT_EQ(Names(gate.Take(Step(3, {}, true))), Seq{});
  EXPECT_EQ(gate.requested(), 2u);
  std::vector<Outputs> first = gate.Synced(1, absl::OkStatus());
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(Names(first[0]), (Seq{"ack", "client1"}));
  EXPECT_EQ(Names(first[1]), (Seq{"client2"}));
  EXPECT_TRUE(gate.holding());
  std::vector<Outputs> second = gate.Synced(2, absl::OkStatus());
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(Names(second[0]), (Seq{"client3"}));
  EXPECT_FALSE(gate.holding());
}

TEST(SyncGateTest, AFailedSyncFailsWhatWaitedAndEveryStepWaitsForASyncUntilOneSucceeds) {
  SyncGate gate;
  (void)gate.Take(Step(1, {"ack"}, true));
  std::vector<Outputs> failed = gate.Synced(1, absl::InternalError("EIO"));
  ASSERT_EQ(failed.size(), 1u);
  ASSERT_EQ(failed[0].replies.size(), 1u);
  EXPECT_EQ(failed[0].replies[0].status.message(), "storage could not sync: EIO");
  ASSERT_EQ(failed[0].messages.size(), 1u);
  EXPECT_TRUE(failed[0].messages[0].envelope.has_error());
  EXPECT_EQ(gate.error(), absl::InternalError("EIO"));
  // A coordinator's answer counting its own write, which that sync covered:
  // it needs a sync of its own now.
  EXPECT_EQ(Names(gate.Take(Step(2, {}, false))), Seq{});
  EXPECT_EQ(gate.requested(), 2u);
  std::vector<Outputs> again = gate.Synced(2, absl::InternalError("EIO"));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_FALSE(again[0].replies[0].status.ok());
  (void)gate.Take(Step(3, {}, false));
  std::vector<Outputs> recovered = gate.Synced(3, absl::OkStatus());
  ASSERT_EQ(recovered.size(), 1u);
  EXPECT_TRUE(recovered[0].replies[0].status.ok());
  EXPECT_TRUE(gate.error().ok());
  EXPECT_EQ(Names(gate.Take(Step(4, {}, false))), (Seq{"client4"}));
  EXPECT_EQ(gate.requested(), 3u);
}

TEST(SyncGateTest, AFailedCheckOfBufferedStorageFailsWhatWaitedForItOnly) {
  SyncGate gate(/*real_syncs=*/false);
  (void)gate.Take(Step(1, {}, true));
  std::vector<Outputs> failed = gate.Synced(1, absl::ResourceExhaustedError("disk full"));
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_FALSE(failed[0].replies[0].status.ok());
  // Reads and the like go on: its writes reach the OS as they are made.
  EXPECT_EQ(Names(gate.Take(Step(2, {}, false))), (Seq{"client2"}));
  EXPECT_FALSE(gate.error().ok()) << "the failure is still reported (readiness)";
}

TEST(SyncGateTest, InLineSyncsRunOnlyForOutputsThatWaitAndKeepTheOrder) {
  SyncGate gate;
  int syncs = 0;
  auto sync = [&] {
    ++syncs;
    return absl::OkStatus();
  };
  std::vector<Outputs> read = gate.TakeSyncingInLine(Step(1, {"ack"}, false), sync);
  EXPECT_EQ(syncs, 0);
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(Names(read[0]), (Seq{"ack", "client1"}));
  std::vector<Outputs> write = gate.TakeSyncingInLine(Step(2, {"ack", "write"}, true), sync);
  EXPECT_EQ(syncs, 1);
  ASSERT_EQ(write.size(), 2u);
  EXPECT_EQ(Names(write[0]), (Seq{"write"}));  // before the sync
  EXPECT_EQ(Names(write[1]), (Seq{"ack", "client2"}));
  EXPECT_FALSE(gate.holding());
  std::vector<Outputs> failed = gate.TakeSyncingInLine(
      Step(3, {}, true), [] { return absl::DataLossError("fsync: Input/output error"); });
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(failed[1].replies[0].status.code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace dynamo::core
