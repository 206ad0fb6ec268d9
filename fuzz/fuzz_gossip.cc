// Fuzzes membership by gossip: the bytes are parsed as a dynamo.v1.Gossip and
// merged into the Membership of a node that founded a one-node ring, which
// then takes its claimant's step (MaybeClaim) as its Tick would.
//
// Properties: the merge never crashes; the node keeps its identity; a peer
// that believed whatever the gossip says of the node takes the node's own
// state once it hears the node (the jump past a newer state of itself); the
// ring it holds is always one RingFromState accepts and its version never
// goes back; merging the same gossip again, or the node's own gossip, changes
// nothing; the members stay within kMembersMax; and the gossip the node
// makes afterwards serializes and parses back to the same message.

#include <cstddef>
#include <cstdint>
#include <string>

#include "dynamo/core/failure_detector.h"
#include "dynamo/core/membership.h"
#include "dynamo/core/random.h"
#include "dynamo/v1/replica.pb.h"
#include "one_node_ring.h"

namespace dynamo::fuzz {
namespace {

void CheckState(const core::Membership& m, uint64_t ring_version_before) {
  FUZZ_CHECK(
      m.self_id() == kNodeId && m.self().node_id() == kNodeId && m.self().address() == kNodeAddress,
      "the node's own state changed identity");
  FUZZ_CHECK(m.members().size() <= core::Membership::kMembersMax, "%zu members",
             m.members().size());
  FUZZ_CHECK(m.ring_state().version() >= ring_version_before, "the ring version went back");
  FUZZ_CHECK(core::RingFromState(m.ring_state()).ok(), "the held ring state is malformed");
}

}  // namespace
}  // namespace dynamo::fuzz

DYNAMO_FUZZ_INITIALIZE

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dynamo;
  v1::Gossip gossip;
  if (!gossip.ParseFromArray(data, static_cast<int>(size))) return 0;

  const core::NodeConfig config = fuzz::OneNodeConfig();
  int64_t now_ms = fuzz::kStartMs;
  v1::MemberState self;
  self.set_node_id(config.node_id);
  self.set_address(config.address);
  self.set_generation(static_cast<uint64_t>(now_ms));
  self.set_version(1);
  self.set_intent(v1::MEMBER_INTENT_JOIN);
  self.set_vnodes(config.vnodes);
  core::Membership m(config, self, v1::RingState());
  core::FailureDetector fd(config.phi_threshold, config.gossip_interval_ms);
  core::Random rng(fuzz::kNodeSeed);
  FUZZ_CHECK(m.MaybeClaim(now_ms, fd, rng), "the node did not found its ring");
  const uint64_t founded_version = m.ring_state().version();

  now_ms += config.gossip_interval_ms;
  core::Membership::MergeResult first = m.Merge(gossip, now_ms, fd);
  (void)first;
  // A peer that took whatever the gossip says of this node, then hears the
  // node itself, must end up with the node's own state: the jump past a
  // newer state of itself is what lets a restarted node be heard again.
  core::NodeConfig peer_config = config;
  peer_config.node_id = "peer";
  peer_config.address = "127.0.0.1:7099";
  v1::MemberState peer_self;
  peer_self.set_node_id(peer_config.node_id);
  peer_self.set_address(peer_config.address);
  peer_self.set_generation(1);
  core::Membership peer(peer_config, peer_self, v1::RingState());
  core::FailureDetector peer_fd(config.phi_threshold, config.gossip_interval_ms);
  peer.Merge(gossip, now_ms, peer_fd);
  peer.Merge(m.MakeGossip(/*with_ring=*/true), now_ms, peer_fd);
  if (const v1::MemberState* seen = peer.Find(fuzz::kNodeId); seen != nullptr) {
    FUZZ_CHECK(seen->generation() == m.self().generation() && seen->version() == m.self().version(),
               "after hearing the node, a peer still holds another state of it: generation "
               "%llu version %llu, the node's own is generation %llu version %llu",
               static_cast<unsigned long long>(seen->generation()),
               static_cast<unsigned long long>(seen->version()),
               static_cast<unsigned long long>(m.self().generation()),
               static_cast<unsigned long long>(m.self().version()));
  }
  fuzz::CheckState(m, founded_version);

  core::Membership::MergeResult again = m.Merge(gossip, now_ms, fd);
  FUZZ_CHECK(!again.ring_changed && !again.self_changed,
             "merging the same gossip twice changed "
             "the ring (%d) or the node's own state (%d)",
             again.ring_changed, again.self_changed);

  now_ms += config.ring_change_interval_ms;
  const uint64_t before_claim = m.ring_state().version();
  m.MaybeClaim(now_ms, fd, rng);
  fuzz::CheckState(m, before_claim);

  const v1::Gossip made = m.MakeGossip(/*with_ring=*/true);
  std::string bytes;
  FUZZ_CHECK(made.SerializeToString(&bytes), "the node's gossip does not serialize");
  v1::Gossip parsed;
  FUZZ_CHECK(parsed.ParseFromString(bytes), "the node's gossip does not parse back");
  FUZZ_CHECK(parsed.SerializeAsString() == bytes, "the node's gossip changed in a round trip");

  core::Membership::MergeResult own = m.Merge(parsed, now_ms, fd);
  FUZZ_CHECK(!own.ring_changed && !own.self_changed,
             "merging the node's own gossip changed the ring (%d) or its own state (%d)",
             own.ring_changed, own.self_changed);
  return 0;
}
