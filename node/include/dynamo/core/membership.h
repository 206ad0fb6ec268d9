#pragma once

// Cluster membership by gossip (the paper's section 4.8). Each node owns its
// MemberState and is the only one to change it; states spread epidemically
// and merge by (generation, version, heartbeat). The ring is a versioned
// value made by one node at a time, the claimant (the lowest-id live ring
// member), from the members' intents: join and leave are explicit
// administrator actions recorded in the leaving or joining node's own state,
// so a ring change lost in a race is simply made again by the next claimant.
// The one state a node does not make itself is its removal: an administrator
// removes a node gone for good through another node, whose removal of it
// holds against every storage of it born before (see Supersedes).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dynamo/core/config.h"
#include "dynamo/core/failure_detector.h"
#include "dynamo/core/random.h"
#include "dynamo/core/ring.h"
#include "dynamo/v1/admin.pb.h"
#include "dynamo/v1/replica.pb.h"

namespace dynamo::core {

// Builds the routing ring of a ring state (an empty state gives an empty ring).
absl::StatusOr<Ring> RingFromState(const v1::RingState& state);

inline bool IsRemoval(const v1::MemberState& s) { return !s.removed_by().empty(); }

// Not thread-safe.
class Membership {
 public:
  static constexpr size_t kMembersMax = 4096;

  // `self` carries the node's persisted intent and vnodes; its generation must
  // exceed every earlier generation of this node. `ring` is the persisted ring
  // (empty for a new node).
  Membership(const NodeConfig& config, v1::MemberState self, v1::RingState ring);

  const v1::MemberState& self() const { return members_.at(self_id_); }
  const std::string& self_id() const { return self_id_; }
  void SetIntent(v1::MemberIntent intent);
  void SetVnodes(uint32_t vnodes);
  // A zone change of a ring member is claimed as a vnodes change is: a new
  // ring, and its ranges move by handoff.
  void SetZone(const std::string& zone);
  void SetDrained(bool drained);
  void SetHandingOff(bool handing_off);
  // Whether a gossiped state of every known member has arrived since this
  // node started: peers restored from the saved ring carry no state yet
  // (generation 0), so whether they hand data off is not known.
  bool KnowsEveryMember() const;
  // Whether any member reports handing_off.
  bool AnyHandingOff() const;
  void BeatHeart();
  // Records an administrator's removal of `node`, a peer gone for good: its
  // state becomes the removal (intent LEAVE, drained), so the claimant drops
  // it from the ring, no reap waits for it and its hints go to the new
  // owners. Refused for this node, a node not known, and the ring's only
  // member. Removing a node already removed changes nothing.
  absl::Status Remove(const std::string& node, int64_t now_ms);
  // The latest removal of each node ever removed (to persist), and their
  // restoration at start. A removal is kept after a wiped node of the same
  // name replaced it as a member: the old storage stays out for good.
  v1::RemovedMembers Removals() const;
  // Returns this node's own removal if one covers its storage.
  std::optional<v1::MemberState> RestoreRemovals(const v1::RemovedMembers& removals);
  // Whether the member state known for `node` is its removal.
  bool IsRemoved(const std::string& node) const;
  // This node's storage holds nothing, but a removal covers it (a wiped node
  // back soon after its removal, which is dated ahead): it is born anew at
  // `generation`, after the removal.
  void Reborn(uint64_t generation);
  void SetSeeds(std::vector<std::string> seeds) { config_.seeds = std::move(seeds); }

  // Every member's state, and the ring or only its identity (version and
  // claimant).
  v1::Gossip MakeGossip(bool with_ring) const;
  // Whether our ring is newer than the one a peer's gossip holds or names:
  // then the peer should get it.
  bool RingNewerThan(const v1::Gossip& peer) const;
  struct MergeResult {
    bool ring_changed = false;
    bool self_changed = false;  // someone held a newer state of ours: we jumped past it
    bool removals_changed = false;  // a removal was learned (or a removed node came back anew)
    // A removal of this node's storage: the node must stop (see Node).
    std::optional<v1::MemberState> self_removed;
  };
  // Merges a peer's view. Peers whose heartbeat advanced are reported to the
  // failure detector; new peers start being tracked.
  MergeResult Merge(const v1::Gossip& gossip, int64_t now_ms, FailureDetector& fd);

  // Who to gossip with this round (a live peer, sometimes an unreachable one
  // or a seed; the seeds when no peer is known). A seed's node id is empty.
  struct Peer {
    std::string node_id;
    std::string address;
    friend auto operator<=>(const Peer&, const Peer&) = default;
  };
  std::vector<Peer> GossipTargets(int64_t now_ms, const FailureDetector& fd,
                                  Random& rng) const;
  // The peers gossip may reach (known address, not LEFT or removed), live and
  // unreachable.
  struct Peers {
    std::vector<Peer> live, unreachable;
  };
  Peers KnownPeers(int64_t now_ms, const FailureDetector& fd) const;
  // Whether any member but this node may still gossip (has not left, was not
  // removed).
  bool HasPeers() const;

  // The claimant's step: if this node is the claimant and the intents call for
  // a different ring, makes the next ring version. A node that asks to join,
  // finds no ring and is its own only seed founds the cluster.
  bool MaybeClaim(int64_t now_ms, const FailureDetector& fd, Random& rng);
  // Adopts a ring state if it is newer than ours (used at start and by tests).
  bool AdoptRing(const v1::RingState& ring);

  const v1::RingState& ring_state() const { return ring_state_; }
  const Ring& ring() const { return ring_; }
  bool InRing(const std::string& node) const;

  const v1::MemberState* Find(const std::string& node) const;
  // Address of a node from its gossiped state, else from the ring.
  std::string AddressOf(const std::string& node) const;
  const std::map<std::string, v1::MemberState, std::less<>>& members() const { return members_; }
  v1::NodeState StateOf(const std::string& node) const;

 private:
  bool ClaimantIsSelf(int64_t now_ms, const FailureDetector& fd) const;
  // Whether a state of this storage of its node is covered by a removal.
  bool Covered(const v1::MemberState& live) const;
  // Learns a removal (if newer than the one known of its node) and applies it
  // to the member state it covers; this node's own is reported in `result`.
  void NoteRemoval(const v1::MemberState& removal, MergeResult& result);
  bool MayGossip(const std::string& id) const;
  void SetRing(v1::RingState state);

  NodeConfig config_;
  std::string self_id_;
  std::map<std::string, v1::MemberState, std::less<>> members_;
  std::map<std::string, v1::MemberState, std::less<>> removals_;  // see Removals
  v1::RingState ring_state_;
  Ring ring_;
  int64_t last_claim_ms_ = -1;
};

}  // namespace dynamo::core
