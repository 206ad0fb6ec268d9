#include "dynamo/core/membership.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "dynamo/core/claim.h"

namespace dynamo::core {
namespace {

auto Newness(const v1::MemberState& s) {
  return std::make_tuple(s.generation(), s.version(), s.heartbeat());
}

// Which of two rings is newer: the higher version, then the higher claimant.
std::tuple<uint64_t, std::string_view> RingId(const v1::RingState& ring) {
  return {ring.version(), ring.claimant()};
}

// Generations are wall-clock milliseconds at start (plus one per restart), far
// below this; a node could not jump past a larger state of itself (see Merge:
// generation + 1 would wrap to 0 and the peer's state would win for good).
constexpr uint64_t kGenerationMax = uint64_t{1} << 62;

bool ValidMemberState(const v1::MemberState& s) {
  return !s.node_id().empty() && s.node_id().size() <= 128 && !s.address().empty() &&
         s.address().size() <= 256 && s.zone().size() <= kZoneBytesMax &&
         s.generation() < kGenerationMax && s.removed_by().size() <= 128;
}

// How far in the future a removal is dated: past any storage of the node
// born before it by a clock ahead of the remover's (a clock behind is
// harmless: a storage born after the removal, which holds nothing, is born
// anew past it; see Node::OnSelfRemoved).
constexpr uint64_t kRemovalMarginMs = 24 * 3600 * 1000;

}  // namespace

absl::StatusOr<Ring> RingFromState(const v1::RingState& state) {
  if (state.tokens().empty()) return Ring();
  RingSpec spec;
  spec.strategy = static_cast<PartitionStrategy>(state.strategy());
  spec.partitions = state.partitions();
  spec.zone_aware = state.zone_aware();
  std::vector<RingToken> tokens;
  tokens.reserve(state.tokens_size());
  for (const v1::RingToken& t : state.tokens()) tokens.push_back({t.token(), t.node_id()});
  std::vector<RingNode> nodes;
  for (const v1::RingMember& m : state.members()) nodes.push_back({m.node_id(), m.zone()});
  return Ring::Create(spec, std::move(tokens), std::move(nodes));
}

Membership::Membership(const NodeConfig& config, v1::MemberState self, v1::RingState ring)
    : config_(config), self_id_(self.node_id()) {
  members_[self_id_] = std::move(self);
  SetRing(std::move(ring));
  // Ring members are known peers from the start, so a restarted node can
  // route before the first gossip round.
  for (const v1::RingMember& m : ring_state_.members()) {
    if (m.node_id() == self_id_ || members_.contains(m.node_id())) continue;
    v1::MemberState s;
    s.set_node_id(m.node_id());
    s.set_address(m.address());
    s.set_zone(m.zone());
    s.set_vnodes(m.vnodes());
    s.set_intent(v1::MEMBER_INTENT_JOIN);
    members_[m.node_id()] = std::move(s);  // generation 0: any gossiped state is newer
  }
}

void Membership::SetIntent(v1::MemberIntent intent) {
  v1::MemberState& s = members_.at(self_id_);
  if (s.intent() == intent) return;
  s.set_intent(intent);
  if (intent != v1::MEMBER_INTENT_LEAVE) s.set_drained(false);
  s.set_version(s.version() + 1);
}

void Membership::SetVnodes(uint32_t vnodes) {
  v1::MemberState& s = members_.at(self_id_);
  if (s.vnodes() == vnodes) return;
  s.set_vnodes(vnodes);
  s.set_version(s.version() + 1);
}

void Membership::SetZone(const std::string& zone) {
  v1::MemberState& s = members_.at(self_id_);
  if (s.zone() == zone) return;
  s.set_zone(zone);
  s.set_version(s.version() + 1);
}

void Membership::SetDrained(bool drained) {
  v1::MemberState& s = members_.at(self_id_);
  if (s.drained() == drained) return;
  s.set_drained(drained);
  s.set_version(s.version() + 1);
}

void Membership::SetHandingOff(bool handing_off) {
  v1::MemberState& s = members_.at(self_id_);
  if (s.handing_off() == handing_off) return;
  s.set_handing_off(handing_off);
  s.set_version(s.version() + 1);
}

bool Membership::KnowsEveryMember() const {
  return std::all_of(members_.begin(), members_.end(),
                     [](const auto& m) { return m.second.generation() > 0; });
}

bool Membership::AnyHandingOff() const {
  // A node that left cleared it as it drained: it holds nothing.
  return std::any_of(members_.begin(), members_.end(),
                     [](const auto& m) { return m.second.handing_off(); });
}

absl::Status Membership::Remove(const std::string& node, int64_t now_ms) {
  if (node == self_id_) {
    return absl::InvalidArgumentError(
        "a node cannot remove itself: a live node leaves (dynamoctl leave), which hands its "
        "data off; ask another node to remove one gone for good");
  }
  auto it = members_.find(node);
  if (it == members_.end()) {
    return absl::NotFoundError(absl::StrCat("no member ", node, " is known to this node"));
  }
  if (IsRemoval(it->second)) return absl::OkStatus();
  const bool others_in_ring = std::any_of(
      ring_.nodes().begin(), ring_.nodes().end(), [&](const RingNode& n) {
        const v1::MemberState* s = Find(n.id);
        return n.id != node && (s == nullptr || !IsRemoval(*s));
      });
  if (!others_in_ring) {
    return absl::FailedPreconditionError(absl::StrCat(
        node, " is the ring's last member not removed: removing it would leave no ring"));
  }
  // Peers of a version without removals would take the removed node back.
  for (const auto& [id, state] : members_) {
    if (id != node && id != self_id_ && state.generation() > 0 && !IsRemoval(state) &&
        state.storage_born() == 0 && StateOf(id) != v1::NODE_STATE_LEFT) {
      return absl::FailedPreconditionError(absl::StrCat(
          id, " runs a version without node removal: upgrade every node first"));
    }
  }
  v1::MemberState removal;
  removal.set_node_id(node);
  removal.set_address(AddressOf(node));
  removal.set_zone(it->second.zone());
  removal.set_vnodes(it->second.vnodes());
  removal.set_storage_born(it->second.storage_born());
  // After every generation of the node this one knows, and dated ahead (see
  // kRemovalMarginMs).
  removal.set_generation(std::max(it->second.generation() + 1,
                                  static_cast<uint64_t>(std::max<int64_t>(now_ms, 1)) +
                                      kRemovalMarginMs));
  removal.set_intent(v1::MEMBER_INTENT_LEAVE);
  removal.set_drained(true);
  removal.set_removed_by(self_id_);
  if (removal.address().empty()) {
    return absl::FailedPreconditionError(absl::StrCat("no address is known for ", node));
  }
  MergeResult ignored;
  NoteRemoval(removal, ignored);
  return absl::OkStatus();
}

bool Membership::Covered(const v1::MemberState& live) const {
  auto it = removals_.find(live.node_id());
  return it != removals_.end() && live.storage_born() <= it->second.generation();
}

void Membership::NoteRemoval(const v1::MemberState& removal, MergeResult& result) {
  const std::string& id = removal.node_id();
  auto known = removals_.find(id);
  if (known == removals_.end()) {
    if (removals_.size() >= kMembersMax) return;
    removals_[id] = removal;
    result.removals_changed = true;
  } else if (Newness(removal) > Newness(known->second)) {
    known->second = removal;
    result.removals_changed = true;
  } else {
    return;  // nothing new: what it covers is already done
  }
  const v1::MemberState& latest = removals_.at(id);
  if (id == self_id_) {
    if (Covered(members_.at(self_id_))) result.self_removed = latest;
    return;
  }
  auto member = members_.find(id);
  if (member == members_.end()) {
    if (members_.size() < kMembersMax) members_[id] = latest;
  } else if (IsRemoval(member->second) || Covered(member->second)) {
    member->second = latest;
  }
}

v1::RemovedMembers Membership::Removals() const {
  v1::RemovedMembers removals;
  for (const auto& [id, removal] : removals_) *removals.add_members() = removal;
  return removals;
}

std::optional<v1::MemberState> Membership::RestoreRemovals(const v1::RemovedMembers& removals) {
  MergeResult result;
  for (const v1::MemberState& removal : removals.members()) {
    if (IsRemoval(removal) && ValidMemberState(removal)) NoteRemoval(removal, result);
  }
  return result.self_removed;
}

bool Membership::IsRemoved(const std::string& node) const {
  if (removals_.empty()) return false;  // every message asks: no lookup in a cluster without any
  const v1::MemberState* s = Find(node);
  return s != nullptr && IsRemoval(*s);
}

void Membership::Reborn(uint64_t generation) {
  v1::MemberState& s = members_.at(self_id_);
  s.set_generation(std::max(s.generation(), generation));
  s.set_storage_born(generation);
  s.set_version(0);
}

void Membership::BeatHeart() {
  v1::MemberState& s = members_.at(self_id_);
  s.set_heartbeat(s.heartbeat() + 1);
}

v1::Gossip Membership::MakeGossip(bool with_ring) const {
  v1::Gossip g;
  for (const auto& [id, state] : members_) {
    if (state.generation() == 0 && id != self_id_) continue;  // only known from the ring
    if (IsRemoval(state)) continue;                             // in `removals`
    *g.add_members() = state;
  }
  for (const auto& [id, removal] : removals_) *g.add_removals() = removal;
  if (with_ring) {
    *g.mutable_ring() = ring_state_;
  } else {
    g.set_ring_version(ring_state_.version());
    g.set_ring_claimant(ring_state_.claimant());
  }
  return g;
}

bool Membership::RingNewerThan(const v1::Gossip& peer) const {
  const uint64_t version = peer.has_ring() ? peer.ring().version() : peer.ring_version();
  const std::string_view claimant = peer.has_ring() ? peer.ring().claimant() : peer.ring_claimant();
  return RingId(ring_state_) > std::make_tuple(version, claimant);
}

Membership::MergeResult Membership::Merge(const v1::Gossip& gossip, int64_t now_ms,
                                          FailureDetector& fd) {
  MergeResult result;
  // Removals first: a state of a removed storage in the same message is then
  // already refused.
  for (const v1::MemberState& removal : gossip.removals()) {
    if (IsRemoval(removal) && ValidMemberState(removal)) NoteRemoval(removal, result);
  }
  for (const v1::MemberState& incoming : gossip.members()) {
    // Removals travel in `removals` only.
    if (!ValidMemberState(incoming) || IsRemoval(incoming)) continue;
    if (incoming.node_id() == self_id_) {
      v1::MemberState& s = members_.at(self_id_);
      // A peer remembers a newer incarnation of us (our generation went
      // backwards, e.g. the clock did): jump past it so our state wins again.
      if (std::make_tuple(incoming.generation(), incoming.version()) >
          std::make_tuple(s.generation(), s.version())) {
        s.set_generation(incoming.generation() + 1);
        s.set_version(0);
        result.self_changed = true;
      }
      continue;
    }
    // A state of a removed storage, whatever its generation, is no member's
    // (and no evidence that one lives).
    if (Covered(incoming)) continue;
    auto it = members_.find(incoming.node_id());
    if (it == members_.end()) {
      if (members_.size() >= kMembersMax) continue;
      members_[incoming.node_id()] = incoming;
      fd.Track(incoming.node_id(), now_ms);
      continue;
    }
    // Not covered: a removal it meets is of an older storage (a wiped node
    // back under the same name).
    if (IsRemoval(it->second) || Newness(incoming) > Newness(it->second)) {
      const bool alive_evidence = IsRemoval(it->second) ||
                                  incoming.generation() > it->second.generation() ||
                                  incoming.heartbeat() > it->second.heartbeat();
      it->second = incoming;
      if (alive_evidence) fd.Heard(incoming.node_id(), now_ms);
    }
  }
  if (gossip.has_ring()) result.ring_changed = AdoptRing(gossip.ring());
  return result;
}

bool Membership::AdoptRing(const v1::RingState& ring) {
  if (RingId(ring) <= RingId(ring_state_)) {
    return false;
  }
  if (!RingFromState(ring).ok()) return false;  // a malformed ring never replaces a good one
  // Nor does a ring without tokens: no claimant makes one (the last node
  // cannot leave), and adopting it would leave the cluster without a ring.
  if (ring.tokens().empty()) return false;
  SetRing(ring);
  return true;
}

void Membership::SetRing(v1::RingState state) {
  absl::StatusOr<Ring> ring = RingFromState(state);
  if (!ring.ok()) return;
  ring_state_ = std::move(state);
  ring_ = *std::move(ring);
}

Membership::Peers Membership::KnownPeers(int64_t now_ms, const FailureDetector& fd) const {
  Peers peers;
  for (const auto& [id, state] : members_) {
    if (!MayGossip(id)) continue;
    const std::string address = AddressOf(id);
    if (address.empty()) continue;
    (fd.Alive(id, now_ms) ? peers.live : peers.unreachable).push_back({id, address});
  }
  return peers;
}

bool Membership::MayGossip(const std::string& id) const {
  return id != self_id_ && !IsRemoved(id) && StateOf(id) != v1::NODE_STATE_LEFT;
}

bool Membership::HasPeers() const {
  return std::any_of(members_.begin(), members_.end(),
                     [this](const auto& m) { return MayGossip(m.first); });
}

std::vector<Membership::Peer> Membership::GossipTargets(int64_t now_ms, const FailureDetector& fd,
                                                        Random& rng) const {
  const auto [live, unreachable] = KnownPeers(now_ms, fd);
  std::vector<Peer> seeds;
  for (const std::string& seed : config_.seeds) {
    if (seed != config_.address) seeds.push_back({"", seed});
  }
  std::vector<Peer> targets;
  if (live.empty()) {
    targets = seeds;  // nobody known alive: try every seed
  } else {
    targets.push_back(live[rng.Uniform(live.size())]);
    if (!seeds.empty() && rng.Chance(0.1)) targets.push_back(seeds[rng.Uniform(seeds.size())]);
  }
  // Now and then, an unreachable peer: how a recovered node is noticed even if
  // it does not gossip first.
  if (!unreachable.empty() &&
      rng.Chance(static_cast<double>(unreachable.size()) / (live.size() + 1.0))) {
    targets.push_back(unreachable[rng.Uniform(unreachable.size())]);
  }
  // One message per address; where a seed is also a known peer, keep the id.
  std::sort(targets.begin(), targets.end(), [](const Peer& a, const Peer& b) {
    return a.address != b.address ? a.address < b.address : a.node_id > b.node_id;
  });
  targets.erase(std::unique(targets.begin(), targets.end(),
                            [](const Peer& a, const Peer& b) { return a.address == b.address; }),
                targets.end());
  return targets;
}

bool Membership::InRing(const std::string& node) const { return ring_.FindNode(node) != nullptr; }

const v1::MemberState* Membership::Find(const std::string& node) const {
  auto it = members_.find(node);
  return it == members_.end() ? nullptr : &it->second;
}

std::string Membership::AddressOf(const std::string& node) const {
  if (const v1::MemberState* s = Find(node); s != nullptr && !s->address().empty()) {
    return s->address();
  }
  for (const v1::RingMember& m : ring_state_.members()) {
    if (m.node_id() == node) return m.address();
  }
  return "";
}

v1::NodeState Membership::StateOf(const std::string& node) const {
  const v1::MemberState* s = Find(node);
  const bool in_ring = InRing(node);
  const v1::MemberIntent intent = s ? s->intent() : v1::MEMBER_INTENT_JOIN;
  if (in_ring) {
    return intent == v1::MEMBER_INTENT_LEAVE ? v1::NODE_STATE_LEAVING : v1::NODE_STATE_NORMAL;
  }
  switch (intent) {
    case v1::MEMBER_INTENT_JOIN:
      return v1::NODE_STATE_JOINING;
    case v1::MEMBER_INTENT_LEAVE:
      return s->drained() ? v1::NODE_STATE_LEFT : v1::NODE_STATE_LEAVING;
    default:
      return v1::NODE_STATE_STANDBY;
  }
}

bool Membership::ClaimantIsSelf(int64_t now_ms, const FailureDetector& fd) const {
  for (const RingNode& node : ring_.nodes()) {
    if (node.id == self_id_) return true;  // nodes() is sorted: every lower id is down
    if (fd.Alive(node.id, now_ms)) return false;
  }
  return false;
}

bool Membership::MaybeClaim(int64_t now_ms, const FailureDetector& fd, Random& rng) {
  const v1::MemberState& me = self();
  std::vector<ClaimMember> desired;
  if (ring_.empty()) {
    const bool only_own_seed =
        !config_.seeds.empty() &&
        std::all_of(config_.seeds.begin(), config_.seeds.end(),
                    [&](const std::string& s) { return s == config_.address; });
    if (me.intent() != v1::MEMBER_INTENT_JOIN || !only_own_seed) return false;
    desired.push_back({self_id_, me.zone(), me.vnodes()});
  } else {
    if (last_claim_ms_ >= 0 && now_ms - last_claim_ms_ < config_.ring_change_interval_ms) {
      return false;
    }
    if (!ClaimantIsSelf(now_ms, fd)) return false;
    for (const v1::RingMember& m : ring_state_.members()) {
      const v1::MemberState* s = Find(m.node_id());
      if (s == nullptr || s->generation() == 0) return false;  // wait until every member is known
      if (s->intent() != v1::MEMBER_INTENT_LEAVE) desired.push_back({s->node_id(), s->zone(), s->vnodes()});
    }
    for (const auto& [id, s] : members_) {
      if (s.intent() == v1::MEMBER_INTENT_JOIN && s.generation() > 0 && !InRing(id)) {
        desired.push_back({id, s.zone(), s.vnodes()});
      }
    }
    if (desired.empty()) return false;  // the last node cannot leave
    std::sort(desired.begin(), desired.end(),
              [](const ClaimMember& a, const ClaimMember& b) { return a.id < b.id; });
    bool same = static_cast<int>(desired.size()) == ring_state_.members_size();
    for (size_t i = 0; same && i < desired.size(); ++i) {
      const v1::RingMember& m = ring_state_.members(static_cast<int>(i));
      same = m.node_id() == desired[i].id && m.vnodes() == desired[i].vnodes &&
             m.zone() == desired[i].zone;
    }
    if (same) return false;
  }
  std::vector<RingToken> current;
  for (const v1::RingToken& t : ring_state_.tokens()) current.push_back({t.token(), t.node_id()});
  absl::StatusOr<std::vector<RingToken>> tokens =
      Claim(config_.ring, config_.replicas_n, current, desired, rng);
  if (!tokens.ok()) return false;
  v1::RingState next;
  next.set_version(ring_state_.version() + 1);
  next.set_claimant(self_id_);
  next.set_strategy(static_cast<uint32_t>(config_.ring.strategy));
  next.set_partitions(config_.ring.partitions);
  next.set_zone_aware(config_.ring.zone_aware);
  for (const RingToken& t : *tokens) {
    v1::RingToken* out = next.add_tokens();
    out->set_token(t.position);
    out->set_node_id(t.node);
  }
  for (const ClaimMember& m : desired) {
    v1::RingMember* out = next.add_members();
    out->set_node_id(m.id);
    out->set_address(AddressOf(m.id));
    out->set_zone(m.zone);
    out->set_vnodes(m.vnodes);
  }
  SetRing(std::move(next));
  last_claim_ms_ = now_ms;
  return true;
}

}  // namespace dynamo::core
