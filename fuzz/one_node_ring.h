#pragma once

// Shared by the fuzz targets that drive a real core::Node: a one-node ring
// over a MemoryEngine, founded at start (its own address is its only seed),
// on a network where every other peer is down (messages to them are dropped
// and time out).
//
// Header-only so that each target stays one .cc file. Not thread-safe (nor
// is libFuzzer's loop).

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "dynamo/core/config.h"
#include "dynamo/core/context.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/node.h"
#include "dynamo/storage/memory_engine.h"
#include "fuzz_check.h"

namespace dynamo::fuzz {

inline constexpr char kNodeId[] = "n1";
inline constexpr char kNodeAddress[] = "127.0.0.1:7001";
inline constexpr uint64_t kNodeSeed = 42;  // fixed: the actor, and so every run, is reproducible
inline constexpr int64_t kStartMs = 1'000'000;
inline constexpr int64_t kTickMs = 50;
// Bound on the ticks spent waiting for one reply: past request_timeout_ms
// every request has failed, so an answer must have come by then.
inline constexpr int kTicksToReplyMax = 64;

// Keys PutSeedData writes: one holds a value, the other a tombstone.
inline constexpr char kSeedValueKey[] = "k1";
inline constexpr char kSeedTombstoneKey[] = "k2";

inline core::NodeConfig OneNodeConfig() {
  core::NodeConfig c;
  c.node_id = kNodeId;
  c.address = kNodeAddress;
  c.seeds = {kNodeAddress};
  c.auto_join = true;
  c.vnodes = 8;
  // N = R = W = 1: a one-node ring serves every valid request by itself.
  c.replicas_n = 1;
  c.read_quorum_r = 1;
  c.write_quorum_w = 1;
  c.ring.partitions = 16;  // small: the node's start cost is paid per input
  c.merkle = {4, 2};
  c.request_timeout_ms = 500;
  c.gossip_interval_ms = 200;
  c.ring_change_interval_ms = 200;
  c.background_interval_ms = 50;
  c.antientropy_interval_ms = 300;
  c.tombstone_grace_ms = 1000;
  return c;
}

// One node that founded its own ring. Keeps the time; honours Outputs::sync;
// drops every message (no peer is up; requests to peers time out).
class OneNodeRing {
 public:
  OneNodeRing() : engine_(std::make_unique<storage::MemoryEngine>()), now_ms_(kStartMs) {
    absl::StatusOr<std::unique_ptr<core::Node>> node =
        core::Node::Open(OneNodeConfig(), engine_.get(), kNodeSeed, now_ms_);
    FUZZ_CHECK(node.ok(), "Node::Open: %s", node.status().ToString().c_str());
    node_ = *std::move(node);
    core::Outputs out;
    Tick(&out);  // founds the ring: auto_join, and its own address is its only seed
    std::string why;
    FUZZ_CHECK(node_->Ready(&why), "the node did not found its ring: %s", why.c_str());
    FUZZ_CHECK(SoleMember(), "the founded ring is not this node alone");
  }

  core::Node& node() { return *node_; }
  int64_t now_ms() const { return now_ms_; }

  // Delivers what the node produced: syncs storage if asked, drops messages.
  void Deliver(core::Outputs* out) {
    if (out->sync) {
      absl::Status s = engine_->Sync();
      FUZZ_CHECK(s.ok(), "MemoryEngine::Sync: %s", s.ToString().c_str());
      out->sync = false;
    }
    out->messages.clear();
  }

  // Advances time by one tick and runs the node's Tick.
  void Tick(core::Outputs* out) {
    now_ms_ += kTickMs;
    node_->Tick(now_ms_, out);
    if (out->sync) {
      absl::Status s = engine_->Sync();
      FUZZ_CHECK(s.ok(), "MemoryEngine::Sync: %s", s.ToString().c_str());
      out->sync = false;
    }
  }

  // True if the ring names exactly this node (gossip may have changed it).
  bool SoleMember() const {
    const core::Ring& ring = node_->membership().ring();
    return ring.nodes().size() == 1 && ring.nodes()[0].id == kNodeId;
  }

  // Sends one client request and ticks until it is answered. The core's
  // contract: exactly one reply per request, before its timeout.
  core::ClientReply Call(core::ClientRequest request) {
    const uint64_t client_id = next_client_id_++;
    core::Outputs out;
    node_->HandleClient(client_id, std::move(request), now_ms_, &out);
    std::vector<core::ClientReply> replies;
    for (int tick = 0;; ++tick) {
      Deliver(&out);
      for (core::ClientReply& r : out.replies) {
        FUZZ_CHECK(r.client_id == client_id, "a reply for client %llu, which has no request",
                   static_cast<unsigned long long>(r.client_id));
        replies.push_back(std::move(r));
      }
      out.replies.clear();
      if (!replies.empty() || tick == kTicksToReplyMax) break;
      Tick(&out);
    }
    FUZZ_CHECK(replies.size() == 1, "client request got %zu replies, expected exactly 1",
               replies.size());
    // A late duplicate would show up on the following ticks.
    for (int tick = 0; tick < 2; ++tick) {
      Tick(&out);
      Deliver(&out);
      FUZZ_CHECK(out.replies.empty(), "client request got a second reply %d ticks later", tick + 1);
    }
    return std::move(replies.front());
  }

  // Writes kSeedValueKey = "v1" and a tombstone for kSeedTombstoneKey, so
  // that reads, Merkle and leaf-key requests and reaps find data.
  void PutSeedData() {
    v1::PutRequest put;
    put.set_key(kSeedValueKey);
    put.set_value("v1");
    FUZZ_CHECK(Call({put, 0}).status.ok(), "setup put failed");
    put.set_key(kSeedTombstoneKey);
    FUZZ_CHECK(Call({put, 0}).status.ok(), "setup put failed");
    v1::GetRequest get;
    get.set_key(kSeedTombstoneKey);
    core::ClientReply read = Call({get, 0});
    FUZZ_CHECK(read.status.ok(), "setup get failed");
    v1::DeleteRequest del;
    del.set_key(kSeedTombstoneKey);
    del.set_context(std::get<v1::GetResponse>(read.response).context());
    FUZZ_CHECK(Call({del, 0}).status.ok(), "setup delete failed");
  }

  // The node still serves a valid read-modify-write: get, put with the
  // read's context, get again. Each gets exactly one reply; while the ring
  // is this node alone they must succeed and the last read must see exactly
  // the value written (the read's context covered every earlier sibling).
  void CheckServes(const std::string& key, const std::string& value) {
    v1::GetRequest get;
    get.set_key(key);
    core::ClientReply first = Call({get, 0});
    if (!SoleMember()) return;
    FUZZ_CHECK(first.status.ok(), "get in a one-node ring failed: %s",
               first.status.ToString().c_str());
    const auto& read = std::get<v1::GetResponse>(first.response);

    v1::PutRequest put;
    put.set_key(key);
    put.set_value(value);
    put.set_context(read.context());
    core::ClientReply written = Call({put, 0});
    if (!SoleMember()) return;
    FUZZ_CHECK(written.status.ok(), "put with a fresh context in a one-node ring failed: %s",
               written.status.ToString().c_str());
    absl::StatusOr<core::VersionVector> before =
        core::DecodeContext(read.context(), core::KeyPosition(key));
    absl::StatusOr<core::VersionVector> after = core::DecodeContext(
        std::get<v1::PutResponse>(written.response).context(), core::KeyPosition(key));
    FUZZ_CHECK(before.ok() && after.ok(), "a get or put returned a context that does not decode");
    // The write is a new event: the read's clock must not cover it (else its
    // dot was seen already, and replicas would drop it). Not "strictly
    // after": pruning may drop the read clock's oldest entries.
    FUZZ_CHECK(!before->Descends(*after),
               "a put's clock %s is covered by the clock %s it was "
               "based on",
               after->ToString().c_str(), before->ToString().c_str());

    core::ClientReply second = Call({get, 0});
    if (!SoleMember()) return;
    FUZZ_CHECK(second.status.ok(), "get after put failed: %s", second.status.ToString().c_str());
    const auto& reread = std::get<v1::GetResponse>(second.response);
    FUZZ_CHECK(reread.found() && reread.siblings_size() == 1 && reread.siblings(0).value() == value,
               "after a read-modify-write the key reads as found=%d with %d siblings",
               reread.found(), reread.siblings_size());
  }

 private:
  std::unique_ptr<storage::MemoryEngine> engine_;
  std::unique_ptr<core::Node> node_;
  int64_t now_ms_;
  uint64_t next_client_id_ = 1;
};

}  // namespace dynamo::fuzz
