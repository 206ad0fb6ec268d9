#include "dynamo/core/membership.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "dynamo/core/claim.h"

namespace dynamo::core {
namespace {

constexpr uint32_t kPartitions = 16;

std::string Addr(const std::string& id) { return id + ":7000"; }

NodeConfig Config(const std::string& id, std::vector<std::string> seeds = {}) {
  NodeConfig c;
  c.node_id = id;
  c.address = Addr(id);
  c.seeds = std::move(seeds);
  c.ring.strategy = PartitionStrategy::kEqualPartitions;
  c.ring.partitions = kPartitions;
  c.replicas_n = 3;
  c.vnodes = 4;
  c.ring_change_interval_ms = 1000;
  return c;
}

v1::MemberState State(const std::string& id, uint64_t generation, uint64_t version = 1,
                      uint64_t heartbeat = 0, v1::MemberIntent intent = v1::MEMBER_INTENT_JOIN,
                      uint32_t vnodes = 4) {
  v1::MemberState s;
  s.set_node_id(id);
  s.set_address(Addr(id));
  s.set_zone("z-" + id);
  s.set_generation(generation);
  s.set_version(version);
  s.set_heartbeat(heartbeat);
  s.set_intent(intent);
  s.set_vnodes(vnodes);
  s.set_storage_born(1);  // a version with removals (0: one before)
  return s;
}

// A strategy-3 ring state over `members` (id, vnodes) made by Claim.
v1::RingState MakeRing(uint64_t version, const std::string& claimant,
                       const std::vector<std::pair<std::string, uint32_t>>& members) {
  RingSpec spec;
  spec.strategy = PartitionStrategy::kEqualPartitions;
  spec.partitions = kPartitions;
  std::vector<ClaimMember> claim;
  for (const auto& [id, vnodes] : members) claim.push_back({id, "z-" + id, vnodes});
  Random rng(version);
  absl::StatusOr<std::vector<RingToken>> tokens = Claim(spec, 3, {}, claim, rng);
  EXPECT_TRUE(tokens.ok()) << tokens.status();
  v1::RingState ring;
  ring.set_version(version);
  ring.set_claimant(claimant);
  ring.set_strategy(static_cast<uint32_t>(spec.strategy));
  ring.set_partitions(spec.partitions);
  for (const RingToken& t : tokens.ok() ? *tokens : std::vector<RingToken>{}) {
    v1::RingToken* out = ring.add_tokens();
    out->set_token(t.position);
    out->set_node_id(t.node);
  }
  for (const auto& [id, vnodes] : members) {
    v1::RingMember* m = ring.add_members();
    m->set_node_id(id);
    m->set_address(Addr(id));
    m->set_zone("z-" + id);
    m->set_vnodes(vnodes);
  }
  return ring;
}

v1::Gossip GossipOf(std::vector<v1::MemberState> states) {
  v1::Gossip g;
  for (v1::MemberState& s : states) *g.add_members() = std::move(s);
  return g;
}

std::set<std::string> RingMembers(const Membership& m) {
  std::set<std::string> ids;
  for (const v1::RingMember& r : m.ring_state().members()) ids.insert(r.node_id());
  return ids;
}

std::map<std::string, int> TokenCounts(const Membership& m) {
  std::map<std::string, int> counts;
  for (const v1::RingToken& t : m.ring_state().tokens()) ++counts[t.node_id()];
  return counts;
}

// ------------------------------------------------------------- gossip merge

TEST(MembershipMergeTest, NewerStateWinsByGenerationVersionHeartbeat) {
  Membership m(Config("a"), State("a", 100), {});
  FailureDetector fd(8, 1000);
  Random rng(1);
  std::tuple<uint64_t, uint64_t, uint64_t> best{0, 0, 0};
  uint32_t best_vnodes = 0;
  for (int i = 0; i < 500; ++i) {
    const uint64_t g = 1 + rng.Uniform(4), v = rng.Uniform(4), h = rng.Uniform(4);
    const uint32_t vnodes = static_cast<uint32_t>(1 + rng.Uniform(100));  // tells states apart
    m.Merge(GossipOf({State("p", g, v, h, v1::MEMBER_INTENT_JOIN, vnodes)}), i, fd);
    if (std::make_tuple(g, v, h) > best) {
      best = {g, v, h};
      best_vnodes = vnodes;
    }
    const v1::MemberState* p = m.Find("p");
    ASSERT_NE(p, nullptr);
    ASSERT_EQ(std::make_tuple(p->generation(), p->version(), p->heartbeat()), best) << i;
    ASSERT_EQ(p->vnodes(), best_vnodes) << i;
  }
}

TEST(MembershipMergeTest, MalformedStatesAreIgnored) {
  Membership m(Config("a"), State("a", 100), {});
  FailureDetector fd(8, 1000);
  v1::MemberState no_id = State("", 5);
  v1::MemberState no_address = State("p", 5);
  no_address.clear_address();
  v1::MemberState long_zone = State("q", 5);
  long_zone.set_zone(std::string(200, 'z'));
  m.Merge(GossipOf({no_id, no_address, long_zone}), 0, fd);
  EXPECT_EQ(m.members().size(), 1u);
  EXPECT_FALSE(fd.Knows("p"));
}

TEST(MembershipMergeTest, NewPeersAreTrackedAndHeartbeatsReported) {
  Membership m(Config("a"), State("a", 100), {});
  FailureDetector fd(8, 1000);
  m.Merge(GossipOf({State("p", 7, 1, 10)}), 1000, fd);
  ASSERT_TRUE(fd.Knows("p"));
  EXPECT_EQ(fd.Phi("p", 1000), 0.0);

  // The same state again is no evidence of life: silence keeps growing.
  m.Merge(GossipOf({State("p", 7, 1, 10)}), 6000, fd);
  EXPECT_GT(fd.Phi("p", 6000), 0.0);
  // Neither is an older one.
  m.Merge(GossipOf({State("p", 7, 1, 9)}), 6000, fd);
  EXPECT_GT(fd.Phi("p", 6000), 0.0);

  // A heartbeat that advanced is.
  m.Merge(GossipOf({State("p", 7, 1, 11)}), 6000, fd);
  EXPECT_EQ(fd.Phi("p", 6000), 0.0);

  // So is a new generation (the peer restarted), and it clears suspicion.
  fd.Suspect("p");
  EXPECT_FALSE(fd.Alive("p", 9000));
  m.Merge(GossipOf({State("p", 8, 1, 0)}), 9000, fd);
  EXPECT_TRUE(fd.Alive("p", 9000));
  EXPECT_EQ(fd.Phi("p", 9000), 0.0);
}

TEST(MembershipMergeTest, APeerHoldingANewerStateOfOursMakesUsJump) {
  Membership m(Config("a"), State("a", 100, 3), {});
  FailureDetector fd(8, 1000);

  // Older or equal states of ourselves change nothing.
  EXPECT_FALSE(m.Merge(GossipOf({State("a", 100, 3, 50)}), 0, fd).self_changed);
  EXPECT_FALSE(m.Merge(GossipOf({State("a", 99, 9)}), 0, fd).self_changed);
  EXPECT_EQ(m.self().generation(), 100u);
  EXPECT_EQ(m.self().version(), 3u);

  // A newer one (our clock went backwards at restart): jump past it.
  Membership::MergeResult r = m.Merge(GossipOf({State("a", 100, 7)}), 0, fd);
  EXPECT_TRUE(r.self_changed);
  EXPECT_EQ(m.self().generation(), 101u);
  r = m.Merge(GossipOf({State("a", 250, 1)}), 0, fd);
  EXPECT_TRUE(r.self_changed);
  EXPECT_EQ(m.self().generation(), 251u);
  // Our own state is never replaced by the peer's copy.
  EXPECT_EQ(m.self().address(), Addr("a"));

  // Whoever held the newer copy now takes ours as newest.
  Membership peer(Config("b"), State("b", 100), {});
  FailureDetector peer_fd(8, 1000);
  peer.Merge(GossipOf({State("a", 250, 1)}), 0, peer_fd);
  peer.Merge(m.MakeGossip(/*with_ring=*/true), 0, peer_fd);
  ASSERT_NE(peer.Find("a"), nullptr);
  EXPECT_EQ(peer.Find("a")->generation(), 251u);
}

TEST(MembershipMergeTest, MembersAreBounded) {
  Membership m(Config("a"), State("a", 100), {});
  FailureDetector fd(8, 1000);
  v1::Gossip g;
  for (size_t i = 0; i < Membership::kMembersMax + 100; ++i) {
    *g.add_members() = State("p" + std::to_string(i), 1);
  }
  m.Merge(g, 0, fd);
  EXPECT_EQ(m.members().size(), Membership::kMembersMax);
}

TEST(MembershipTest, OwnChangesBumpTheVersion) {
  Membership m(Config("a"), State("a", 100, 1), {});
  m.SetIntent(v1::MEMBER_INTENT_LEAVE);
  EXPECT_EQ(m.self().version(), 2u);
  m.SetIntent(v1::MEMBER_INTENT_LEAVE);  // no change, no bump
  EXPECT_EQ(m.self().version(), 2u);
  m.SetDrained(true);
  EXPECT_EQ(m.self().version(), 3u);
  m.SetIntent(v1::MEMBER_INTENT_JOIN);  // rejoining is not drained
  EXPECT_FALSE(m.self().drained());
  EXPECT_EQ(m.self().version(), 4u);
  m.SetVnodes(9);
  EXPECT_EQ(m.self().version(), 5u);
  EXPECT_EQ(m.self().vnodes(), 9u);
  m.SetZone("eu-1b");
  EXPECT_EQ(m.self().version(), 6u);
  EXPECT_EQ(m.self().zone(), "eu-1b");
  m.SetZone("eu-1b");
  EXPECT_EQ(m.self().version(), 6u);
  m.BeatHeart();
  EXPECT_EQ(m.self().heartbeat(), 1u);
  EXPECT_EQ(m.self().version(), 6u);
}

TEST(MembershipTest, GossipCarriesKnownStatesNotRingOnlyOnes) {
  Membership m(Config("a"), State("a", 100), MakeRing(1, "a", {{"a", 4}, {"b", 4}}));
  // b is known from the persisted ring only: a placeholder, not gossiped.
  ASSERT_NE(m.Find("b"), nullptr);
  EXPECT_EQ(m.AddressOf("b"), Addr("b"));
  v1::Gossip g = m.MakeGossip(/*with_ring=*/true);
  ASSERT_EQ(g.members_size(), 1);
  EXPECT_EQ(g.members(0).node_id(), "a");
  EXPECT_EQ(g.ring().version(), 1u);
}

TEST(MembershipTest, GossipNamesTheRingOrCarriesIt) {
  Membership m(Config("a"), State("a", 100), MakeRing(3, "b", {{"a", 4}, {"b", 4}}));
  const v1::Gossip named = m.MakeGossip(/*with_ring=*/false);
  EXPECT_FALSE(named.has_ring());
  EXPECT_EQ(named.ring_version(), 3u);
  EXPECT_EQ(named.ring_claimant(), "b");
  EXPECT_EQ(m.MakeGossip(/*with_ring=*/true).ring().version(), 3u);

  auto named_as = [](uint64_t version, const std::string& claimant) {
    v1::Gossip g;
    g.set_ring_version(version);
    g.set_ring_claimant(claimant);
    return g;
  };
  EXPECT_TRUE(m.RingNewerThan(v1::Gossip()));
  EXPECT_TRUE(m.RingNewerThan(named_as(2, "z")));
  EXPECT_TRUE(m.RingNewerThan(named_as(3, "a")));  // same version, lower claimant
  EXPECT_FALSE(m.RingNewerThan(named_as(3, "b")));
  EXPECT_FALSE(m.RingNewerThan(named_as(3, "c")));
  EXPECT_FALSE(m.RingNewerThan(named_as(4, "a")));
  // A whole ring is compared by its own identity, whatever the fields say.
  v1::Gossip whole = named_as(9, "z");
  *whole.mutable_ring() = MakeRing(2, "b", {{"a", 4}, {"b", 4}});
  EXPECT_TRUE(m.RingNewerThan(whole));
}

// ------------------------------------------------------------- ring adoption

TEST(MembershipRingTest, AdoptsByVersionThenClaimant) {
  Membership m(Config("a"), State("a", 100), {});
  const auto members = std::vector<std::pair<std::string, uint32_t>>{{"a", 4}, {"b", 4}};
  EXPECT_TRUE(m.AdoptRing(MakeRing(2, "b", members)));
  EXPECT_FALSE(m.AdoptRing(MakeRing(2, "b", members)));  // the same
  EXPECT_FALSE(m.AdoptRing(MakeRing(2, "a", members)));  // same version, lower claimant
  EXPECT_FALSE(m.AdoptRing(MakeRing(1, "z", members)));  // older
  EXPECT_TRUE(m.AdoptRing(MakeRing(2, "c", members)));   // same version, higher claimant
  EXPECT_EQ(m.ring_state().claimant(), "c");
  EXPECT_TRUE(m.AdoptRing(MakeRing(3, "a", members)));
  EXPECT_EQ(m.ring_state().version(), 3u);
  EXPECT_TRUE(m.InRing("b"));
  EXPECT_FALSE(m.ring().empty());

  FailureDetector fd(8, 1000);
  v1::Gossip g;
  *g.mutable_ring() = MakeRing(4, "b", {{"a", 4}, {"b", 4}, {"c", 4}});
  EXPECT_TRUE(m.Merge(g, 0, fd).ring_changed);
  EXPECT_TRUE(m.InRing("c"));
  EXPECT_FALSE(m.Merge(g, 0, fd).ring_changed);
}

TEST(MembershipRingTest, AMalformedRingNeverReplacesAGoodOne) {
  Membership m(Config("a"), State("a", 100), {});
  const v1::RingState good = MakeRing(2, "a", {{"a", 4}, {"b", 4}});
  ASSERT_TRUE(m.AdoptRing(good));

  std::vector<std::pair<std::string, v1::RingState>> bad;
  {
    v1::RingState r = MakeRing(9, "z", {{"a", 4}, {"b", 4}});
    r.mutable_tokens()->RemoveLast();  // strategy 3 needs every partition
    bad.emplace_back("missing token", r);
  }
  {
    v1::RingState r = MakeRing(9, "z", {{"a", 4}, {"b", 4}});
    r.mutable_members()->RemoveLast();  // a token names a node the ring lacks
    bad.emplace_back("token of an unknown node", r);
  }
  {
    v1::RingState r = MakeRing(9, "z", {{"a", 4}, {"b", 4}});
    r.set_strategy(0);
    bad.emplace_back("unknown strategy", r);
  }
  {
    v1::RingState r = MakeRing(9, "z", {{"a", 4}, {"b", 4}});
    r.set_partitions(12);
    bad.emplace_back("partitions not a power of two", r);
  }
  {
    // No tokens at all: no claimant ever makes such a ring (the last node
    // cannot leave), and adopting it would leave the cluster without a ring,
    // which nothing could ever found again.
    v1::RingState r;
    r.set_version(9);
    r.set_claimant("z");
    r.set_strategy(3);
    r.set_partitions(kPartitions);
    bad.emplace_back("empty ring", r);
  }
  FailureDetector fd(8, 1000);
  for (const auto& [why, ring] : bad) {
    EXPECT_FALSE(m.AdoptRing(ring)) << why;
    v1::Gossip g;
    *g.mutable_ring() = ring;
    EXPECT_FALSE(m.Merge(g, 0, fd).ring_changed) << why;
    EXPECT_EQ(m.ring_state().version(), 2u) << why;
    EXPECT_FALSE(m.ring().empty()) << why;
  }
}

TEST(MembershipRingTest, AMalformedPersistedRingStartsEmpty) {
  v1::RingState r = MakeRing(3, "a", {{"a", 4}});
  r.mutable_tokens()->RemoveLast();
  Membership m(Config("a"), State("a", 100), r);
  EXPECT_TRUE(m.ring().empty());
  EXPECT_FALSE(m.InRing("a"));
}

// ------------------------------------------------------------- claiming

TEST(MembershipClaimTest, FoundsOnlyAsItsOwnOnlySeedWithIntentToJoin) {
  struct Case {
    std::string why;
    std::vector<std::string> seeds;
    v1::MemberIntent intent;
    bool founds;
  };
  const std::vector<Case> cases = {
      {"own only seed, joining", {Addr("a")}, v1::MEMBER_INTENT_JOIN, true},
      {"own seed listed twice", {Addr("a"), Addr("a")}, v1::MEMBER_INTENT_JOIN, true},
      {"another seed", {Addr("b")}, v1::MEMBER_INTENT_JOIN, false},
      {"own and another seed", {Addr("a"), Addr("b")}, v1::MEMBER_INTENT_JOIN, false},
      {"no seeds", {}, v1::MEMBER_INTENT_JOIN, false},
      {"not joining", {Addr("a")}, v1::MEMBER_INTENT_NONE, false},
      {"leaving", {Addr("a")}, v1::MEMBER_INTENT_LEAVE, false},
  };
  for (const Case& c : cases) {
    Membership m(Config("a", c.seeds), State("a", 100, 1, 0, c.intent, 6), {});
    FailureDetector fd(8, 1000);
    Random rng(5);
    EXPECT_EQ(m.MaybeClaim(0, fd, rng), c.founds) << c.why;
    if (!c.founds) {
      EXPECT_TRUE(m.ring().empty()) << c.why;
      continue;
    }
    EXPECT_EQ(m.ring_state().version(), 1u);
    EXPECT_EQ(m.ring_state().claimant(), "a");
    EXPECT_EQ(RingMembers(m), (std::set<std::string>{"a"}));
    EXPECT_EQ(m.ring_state().members(0).vnodes(), 6u);
    EXPECT_EQ(m.ring_state().members(0).address(), Addr("a"));
    EXPECT_EQ(m.ring().ranges().size(), kPartitions);
    EXPECT_EQ(m.StateOf("a"), v1::NODE_STATE_NORMAL);
    EXPECT_FALSE(m.MaybeClaim(5000, fd, rng)) << "nothing more to change";
  }
}

// A cluster {a, b, c} with every state known, seen from `self`.
Membership ThreeNodeView(const std::string& self, FailureDetector& fd) {
  Membership m(Config(self), State(self, 100), MakeRing(1, "a", {{"a", 4}, {"b", 4}, {"c", 4}}));
  std::vector<v1::MemberState> others;
  for (const std::string id : {"a", "b", "c"}) {
    if (id != self) others.push_back(State(id, 100));
  }
  m.Merge(GossipOf(others), 0, fd);
  return m;
}

TEST(MembershipClaimTest, OnlyTheLowestLiveRingMemberClaims) {
  FailureDetector fd(8, 1000);
  Membership b = ThreeNodeView("b", fd);
  b.Merge(GossipOf({State("d", 100)}), 0, fd);  // a joiner
  Random rng(1);
  EXPECT_FALSE(b.MaybeClaim(100, fd, rng)) << "a is alive: a is the claimant";
  EXPECT_EQ(b.ring_state().version(), 1u);
  fd.Suspect("a");
  EXPECT_TRUE(b.MaybeClaim(100, fd, rng)) << "a is down: b is the claimant";
  EXPECT_EQ(b.ring_state().version(), 2u);
  EXPECT_EQ(b.ring_state().claimant(), "b");
  EXPECT_TRUE(b.InRing("d"));

  FailureDetector fd_c(8, 1000);
  Membership c = ThreeNodeView("c", fd_c);
  c.Merge(GossipOf({State("d", 100)}), 0, fd_c);
  fd_c.Suspect("a");
  EXPECT_FALSE(c.MaybeClaim(100, fd_c, rng)) << "b is alive and lower";
  fd_c.Suspect("b");
  EXPECT_TRUE(c.MaybeClaim(100, fd_c, rng));

  // A node outside the ring never claims, whoever is down.
  FailureDetector fd_d(8, 1000);
  Membership d(Config("d"), State("d", 100), MakeRing(1, "a", {{"a", 4}, {"b", 4}, {"c", 4}}));
  d.Merge(GossipOf({State("a", 100), State("b", 100), State("c", 100)}), 0, fd_d);
  for (const std::string id : {"a", "b", "c"}) fd_d.Suspect(id);
  EXPECT_FALSE(d.MaybeClaim(100, fd_d, rng));
  EXPECT_EQ(d.ring_state().version(), 1u);
}

TEST(MembershipClaimTest, JoinIntentAddsTheJoiner) {
  FailureDetector fd(8, 1000);
  Membership a = ThreeNodeView("a", fd);
  Random rng(2);
  EXPECT_FALSE(a.MaybeClaim(100, fd, rng)) << "the ring already matches the intents";
  v1::MemberState standby = State("e", 100, 1, 0, v1::MEMBER_INTENT_NONE);
  a.Merge(GossipOf({State("d", 100, 1, 0, v1::MEMBER_INTENT_JOIN, 8), standby}), 0, fd);
  ASSERT_TRUE(a.MaybeClaim(100, fd, rng));
  EXPECT_EQ(RingMembers(a), (std::set<std::string>{"a", "b", "c", "d"}));
  std::map<std::string, int> counts = TokenCounts(a);
  EXPECT_EQ(a.ring_state().tokens_size(), static_cast<int>(kPartitions));
  EXPECT_GT(counts["d"], counts["a"]) << "d asked for twice the weight";
  for (const v1::RingMember& m : a.ring_state().members()) {
    EXPECT_EQ(m.address(), Addr(m.node_id()));
    EXPECT_EQ(m.zone(), "z-" + m.node_id());
    EXPECT_EQ(m.vnodes(), m.node_id() == "d" ? 8u : 4u);
  }
  EXPECT_EQ(a.StateOf("d"), v1::NODE_STATE_NORMAL);
  EXPECT_EQ(a.StateOf("e"), v1::NODE_STATE_STANDBY);
}

TEST(MembershipClaimTest, LeaveIntentRemovesTheLeaver) {
  FailureDetector fd(8, 1000);
  Membership a = ThreeNodeView("a", fd);
  Random rng(3);
  a.Merge(GossipOf({State("c", 100, 2, 0, v1::MEMBER_INTENT_LEAVE)}), 0, fd);
  EXPECT_EQ(a.StateOf("c"), v1::NODE_STATE_LEAVING);
  ASSERT_TRUE(a.MaybeClaim(100, fd, rng));
  EXPECT_EQ(RingMembers(a), (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(TokenCounts(a).count("c"), 0u);
  EXPECT_EQ(a.StateOf("c"), v1::NODE_STATE_LEAVING) << "still holds data until drained";
  a.Merge(GossipOf({[] {
            v1::MemberState s = State("c", 100, 3, 0, v1::MEMBER_INTENT_LEAVE);
            s.set_drained(true);
            return s;
          }()}),
          0, fd);
  EXPECT_EQ(a.StateOf("c"), v1::NODE_STATE_LEFT);
}

TEST(MembershipClaimTest, VnodeChangeIsClaimed) {
  FailureDetector fd(8, 1000);
  Membership a = ThreeNodeView("a", fd);
  Random rng(4);
  a.Merge(GossipOf({State("b", 100, 2, 0, v1::MEMBER_INTENT_JOIN, 12)}), 0, fd);
  ASSERT_TRUE(a.MaybeClaim(100, fd, rng));
  std::map<std::string, int> counts = TokenCounts(a);
  EXPECT_GT(counts["b"], counts["a"]);
  EXPECT_GT(counts["b"], counts["c"]);
}

// Zone-aware preference lists follow the ring's zones, so a member's new zone
// needs a new ring, though no token moves and the member stays in it.
TEST(MembershipClaimTest, ZoneChangeIsClaimed) {
  FailureDetector fd(8, 1000);
  Membership a = ThreeNodeView("a", fd);
  Random rng(6);
  v1::MemberState moved = State("b", 100, 2);
  moved.set_zone("z-elsewhere");
  a.Merge(GossipOf({moved}), 0, fd);
  ASSERT_TRUE(a.MaybeClaim(100, fd, rng));
  EXPECT_EQ(a.ring_state().version(), 2u);
  EXPECT_EQ(RingMembers(a), (std::set<std::string>{"a", "b", "c"}));
  EXPECT_EQ(a.ring().FindNode("b")->zone, "z-elsewhere");
  EXPECT_EQ(a.StateOf("b"), v1::NODE_STATE_NORMAL);
  EXPECT_FALSE(a.MaybeClaim(5000, fd, rng)) << "nothing more to change";
}

TEST(MembershipClaimTest, TheLastNodeCannotLeave) {
  Membership a(Config("a", {Addr("a")}), State("a", 100), {});
  FailureDetector fd(8, 1000);
  Random rng(5);
  ASSERT_TRUE(a.MaybeClaim(0, fd, rng));
  a.SetIntent(v1::MEMBER_INTENT_LEAVE);
  EXPECT_FALSE(a.MaybeClaim(5000, fd, rng));
  EXPECT_TRUE(a.InRing("a"));
}

TEST(MembershipClaimTest, WaitsUntilEveryRingMembersStateIsKnown) {
  // Restarted with a persisted ring: b and c are known from it only.
  Membership a(Config("a"), State("a", 100), MakeRing(1, "a", {{"a", 4}, {"b", 4}, {"c", 4}}));
  FailureDetector fd(8, 1000);
  Random rng(6);
  a.Merge(GossipOf({State("d", 100)}), 0, fd);
  EXPECT_FALSE(a.MaybeClaim(100, fd, rng)) << "b's and c's intents are unknown";
  a.Merge(GossipOf({State("b", 100)}), 0, fd);
  EXPECT_FALSE(a.MaybeClaim(100, fd, rng)) << "c's intent is unknown";
  a.Merge(GossipOf({State("c", 100)}), 0, fd);
  EXPECT_TRUE(a.MaybeClaim(100, fd, rng));
  EXPECT_EQ(RingMembers(a), (std::set<std::string>{"a", "b", "c", "d"}));
}

TEST(MembershipClaimTest, AtMostOneChangePerInterval) {
  FailureDetector fd(8, 1000);
  Membership a = ThreeNodeView("a", fd);
  Random rng(7);
  a.Merge(GossipOf({State("d", 100)}), 0, fd);
  ASSERT_TRUE(a.MaybeClaim(10'000, fd, rng));
  a.Merge(GossipOf({State("e", 100)}), 0, fd);
  EXPECT_FALSE(a.MaybeClaim(10'999, fd, rng));
  EXPECT_TRUE(a.MaybeClaim(11'000, fd, rng));
  EXPECT_TRUE(a.InRing("e"));
  EXPECT_EQ(a.ring_state().version(), 3u);
}

// ------------------------------------------------------------- gossip targets

std::set<std::string> Addresses(const std::vector<Membership::Peer>& peers) {
  std::set<std::string> out;
  for (const auto& p : peers) out.insert(p.address);
  return out;
}

// ------------------------------------------------------------- removal

v1::Gossip RemovalGossip(const v1::MemberState& removal) {
  v1::Gossip g;
  *g.add_removals() = removal;
  return g;
}

v1::MemberState Born(v1::MemberState s, uint64_t storage_born) {
  s.set_storage_born(storage_born);
  return s;
}

TEST(MembershipRemovalTest, ARemovedNodeLeavesTheRingAndNothingWaitsForIt) {
  FailureDetector fd(8, 1000);
  Membership a = ThreeNodeView("a", fd);
  fd.Suspect("c");
  ASSERT_TRUE(a.Remove("c", 5000).ok());
  const v1::MemberState* c = a.Find("c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->removed_by(), "a");
  EXPECT_GT(c->generation(), 100u) << "after every state of c this node knew";
  EXPECT_FALSE(c->handing_off());
  EXPECT_EQ(a.StateOf("c"), v1::NODE_STATE_LEAVING) << "until the claimant drops it";
  Membership::Peers peers = a.KnownPeers(5000, fd);
  EXPECT_TRUE(peers.unreachable.empty()) << "no handoff query waits for a removed node";
  ASSERT_EQ(peers.live.size(), 1u);
  EXPECT_EQ(peers.live[0].node_id, "b");

  Random rng(1);
  ASSERT_TRUE(a.MaybeClaim(5000, fd, rng));
  EXPECT_EQ(RingMembers(a), (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(a.StateOf("c"), v1::NODE_STATE_LEFT);
  EXPECT_EQ(a.Removals().members_size(), 1);

  // The removal spreads by gossip like any state.
  Membership b = ThreeNodeView("b", fd);
  b.Merge(a.MakeGossip(/*with_ring=*/true), 5000, fd);
  ASSERT_NE(b.Find("c"), nullptr);
  EXPECT_EQ(b.Find("c")->removed_by(), "a");
  EXPECT_EQ(b.StateOf("c"), v1::NODE_STATE_LEFT);
}

// A restarted node waits for gossip from a peer before it serves (Node):
// removed members and those that left send none.
TEST(MembershipRemovalTest, NodesRemovedOrLeftAreNoPeersToWaitFor) {
  FailureDetector fd(8, 1000);
  Membership a = ThreeNodeView("a", fd);
  EXPECT_TRUE(a.HasPeers());
  ASSERT_TRUE(a.Remove("c", 5000).ok());
  EXPECT_TRUE(a.HasPeers()) << "b";
  v1::MemberState b_left = State("b", 100, 2, 0, v1::MEMBER_INTENT_LEAVE);
  b_left.set_drained(true);
  a.Merge(GossipOf({b_left}), 5000, fd);
  Random rng(1);
  fd.Suspect("c");
  ASSERT_TRUE(a.MaybeClaim(5000, fd, rng));
  EXPECT_EQ(RingMembers(a), (std::set<std::string>{"a"}));
  EXPECT_FALSE(a.HasPeers());
  EXPECT_FALSE(Membership(Config("z"), State("z", 1), {}).HasPeers());
}

TEST(MembershipRemovalTest, RefusedForItselfAnUnknownNodeAndTheRingsOnlyMember) {
  FailureDetector fd(8, 1000);
  Membership a = ThreeNodeView("a", fd);
  EXPECT_EQ(a.Remove("a", 5000).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a.Remove("zz", 5000).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(a.Remove("c", 5000).ok());
  const uint64_t generation = a.Find("c")->generation();
  EXPECT_TRUE(a.Remove("c", 9000).ok()) << "again: nothing changes";
  EXPECT_EQ(a.Find("c")->generation(), generation);

  // A standby node whose ring holds only another node cannot remove it.
  Membership s(Config("s"), State("s", 100, 1, 0, v1::MEMBER_INTENT_NONE),
               MakeRing(1, "a", {{"a", 4}}));
  s.Merge(GossipOf({State("a", 100)}), 0, fd);
  EXPECT_EQ(s.Remove("a", 5000).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(s.InRing("a"));
}

TEST(MembershipRemovalTest, HoldsAgainstTheSameStorageRestartedButNotAWipedOne) {
  FailureDetector fd(8, 1000);
  Membership a = ThreeNodeView("a", fd);
  a.Merge(GossipOf({Born(State("c", 200, 1, 5), 50)}), 0, fd);
  ASSERT_TRUE(a.Remove("c", 1000).ok());
  const uint64_t removed_at = a.Find("c")->generation();
  EXPECT_GT(removed_at, 1000u + 3600 * 1000) << "dated ahead, past clocks ahead of this one";

  // c restarts on the same storage, later: still removed, and its state is no
  // evidence that it lives.
  fd.Suspect("c");
  Membership::MergeResult r =
      a.Merge(GossipOf({Born(State("c", removed_at + 5000, 1, 1), 50)}), 6000, fd);
  EXPECT_EQ(a.Find("c")->removed_by(), "a");
  EXPECT_FALSE(r.removals_changed);
  EXPECT_FALSE(fd.Alive("c", 6000));
  // A state of a version before removals (no storage_born) is not let in either.
  v1::MemberState old_version = State("c", removed_at + 7000, 1, 1);
  old_version.clear_storage_born();
  a.Merge(GossipOf({old_version}), 7000, fd);
  EXPECT_EQ(a.Find("c")->removed_by(), "a");

  // Wiped: a storage born after the removal is a new node of the same name.
  const uint64_t wiped = removed_at + 8000;
  a.Merge(GossipOf({Born(State("c", wiped, 1, 0), wiped)}), 8000, fd);
  EXPECT_TRUE(a.Find("c")->removed_by().empty());
  EXPECT_TRUE(fd.Alive("c", 8000));
  EXPECT_EQ(a.Removals().members_size(), 1) << "the removal is kept";

  // The old storage comes back after all, later still (a restored snapshot):
  // its state is newer than the wiped node's, and refused all the same.
  a.Merge(GossipOf({Born(State("c", wiped + 1000, 1, 0), 50)}), 9000, fd);
  EXPECT_EQ(a.Find("c")->storage_born(), wiped);
  // And a peer that only hears of c now learns both: the new c, the removal.
  Membership b(Config("b"), State("b", 100), {});
  b.Merge(a.MakeGossip(/*with_ring=*/false), 9000, fd);
  b.Merge(GossipOf({Born(State("c", wiped + 2000, 1, 0), 50)}), 9000, fd);
  ASSERT_NE(b.Find("c"), nullptr);
  EXPECT_EQ(b.Find("c")->storage_born(), wiped);
}

TEST(MembershipRemovalTest, ARemovalOfItsStorageTellsTheNodeOneOfAnOlderStorageDoesNot) {
  FailureDetector fd(8, 1000);
  Membership c(Config("c"), Born(State("c", 5000), 50), {});
  v1::MemberState removal = Born(State("c", 1000, 0, 0, v1::MEMBER_INTENT_LEAVE), 50);
  removal.set_removed_by("a");
  removal.set_drained(true);
  Membership::MergeResult r = c.Merge(RemovalGossip(removal), 6000, fd);
  ASSERT_TRUE(r.self_removed.has_value());
  EXPECT_EQ(r.self_removed->removed_by(), "a");
  EXPECT_FALSE(r.self_changed) << "it does not jump past its removal";
  EXPECT_EQ(c.self().generation(), 5000u);

  Membership fresh(Config("c"), Born(State("c", 5000), 5000), {});
  EXPECT_FALSE(fresh.Merge(RemovalGossip(removal), 6000, fd).self_removed.has_value());

  // A storage born before the removal by its own clock, which holds nothing,
  // is born anew past it (Node decides that it holds nothing).
  Membership skewed(Config("c"), Born(State("c", 900), 900), {});
  ASSERT_TRUE(skewed.Merge(RemovalGossip(removal), 6000, fd).self_removed.has_value());
  skewed.Reborn(removal.generation() + 1);
  EXPECT_FALSE(skewed.Merge(RemovalGossip(removal), 6000, fd).self_removed.has_value());
  Membership a(Config("a"), State("a", 100), {});
  a.Merge(RemovalGossip(removal), 6000, fd);
  a.Merge(skewed.MakeGossip(/*with_ring=*/false), 6000, fd);
  EXPECT_TRUE(a.Find("c")->removed_by().empty()) << "the peers let it in";
}

TEST(MembershipRemovalTest, RemovalsSurviveARestartOfTheNodesThatKnowThem) {
  FailureDetector fd(8, 1000);
  Membership a = ThreeNodeView("a", fd);
  a.Merge(GossipOf({Born(State("c", 200), 50)}), 0, fd);
  ASSERT_TRUE(a.Remove("c", 1000).ok());
  const v1::RemovedMembers saved = a.Removals();

  // Restarted with the ring that still names c (made before the claim).
  Membership restarted(Config("a"), State("a", 2000),
                       MakeRing(1, "a", {{"a", 4}, {"b", 4}, {"c", 4}}));
  restarted.RestoreRemovals(saved);
  ASSERT_NE(restarted.Find("c"), nullptr);
  EXPECT_EQ(restarted.Find("c")->removed_by(), "a");
  restarted.Merge(GossipOf({Born(State("c", 3000, 1, 1), 50)}), 3000, fd);
  EXPECT_EQ(restarted.Find("c")->removed_by(), "a") << "c's old storage stays out";
}

TEST(MembershipGossipTargetsTest, NobodyKnownMeansEverySeedOnceButNotOurselves) {
  Membership m(Config("a", {Addr("a"), Addr("s1"), Addr("s2"), Addr("s1")}), State("a", 100), {});
  FailureDetector fd(8, 1000);
  Random rng(1);
  const std::vector<Membership::Peer> targets = m.GossipTargets(0, fd, rng);
  EXPECT_EQ(targets, (std::vector<Membership::Peer>{{"", Addr("s1")}, {"", Addr("s2")}}));
}

TEST(MembershipGossipTargetsTest, OneMessagePerAddressKeepingTheKnownId) {
  Membership m(Config("a", {Addr("b"), Addr("b")}), State("a", 100), {});
  FailureDetector fd(8, 1000);
  m.Merge(GossipOf({State("b", 100)}), 0, fd);
  for (uint64_t seed = 0; seed < 300; ++seed) {
    Random rng(seed);
    const std::vector<Membership::Peer> targets = m.GossipTargets(0, fd, rng);
    ASSERT_EQ(targets.size(), 1u) << seed;
    EXPECT_EQ(targets[0], (Membership::Peer{"b", Addr("b")}));
  }
}

TEST(MembershipGossipTargetsTest, PicksALivePeerAndNeverSelfOrLeftNodes) {
  Membership m(Config("a", {Addr("s")}), State("a", 100), MakeRing(1, "a", {{"a", 4}, {"b", 4}}));
  FailureDetector fd(8, 1000);
  v1::MemberState gone = State("gone", 100, 5, 0, v1::MEMBER_INTENT_LEAVE);
  gone.set_drained(true);
  m.Merge(GossipOf({State("b", 100), State("c", 100), gone}), 0, fd);
  ASSERT_EQ(m.StateOf("gone"), v1::NODE_STATE_LEFT);
  std::set<std::string> seen;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    Random rng(seed);
    const std::vector<Membership::Peer> targets = m.GossipTargets(0, fd, rng);
    ASSERT_FALSE(targets.empty());
    EXPECT_EQ(Addresses(targets).size(), targets.size()) << "an address twice";
    for (const auto& p : targets) {
      EXPECT_NE(p.address, Addr("a"));
      EXPECT_NE(p.address, Addr("gone"));
      seen.insert(p.address);
    }
  }
  EXPECT_EQ(seen, (std::set<std::string>{Addr("b"), Addr("c"), Addr("s")}));
}

TEST(MembershipGossipTargetsTest, WithEveryPeerDownTheSeedsAreTried) {
  Membership m(Config("a", {Addr("s1"), Addr("s2")}), State("a", 100), {});
  FailureDetector fd(8, 1000);
  m.Merge(GossipOf({State("b", 100)}), 0, fd);
  fd.Suspect("b");
  for (uint64_t seed = 0; seed < 100; ++seed) {
    Random rng(seed);
    const std::set<std::string> targets = Addresses(m.GossipTargets(0, fd, rng));
    EXPECT_TRUE(targets.contains(Addr("s1")));
    EXPECT_TRUE(targets.contains(Addr("s2")));
  }
}

// ------------------------------------------------------------- node states

TEST(MembershipStateTest, EveryIntentAndRingCombination) {
  Membership m(Config("a"), State("a", 100), MakeRing(1, "a", {{"a", 4}, {"r", 4}}));
  FailureDetector fd(8, 1000);
  struct Case {
    v1::MemberIntent intent;
    bool drained;
    v1::NodeState in_ring, outside;
  };
  const std::vector<Case> cases = {
      {v1::MEMBER_INTENT_NONE, false, v1::NODE_STATE_NORMAL, v1::NODE_STATE_STANDBY},
      {v1::MEMBER_INTENT_JOIN, false, v1::NODE_STATE_NORMAL, v1::NODE_STATE_JOINING},
      {v1::MEMBER_INTENT_LEAVE, false, v1::NODE_STATE_LEAVING, v1::NODE_STATE_LEAVING},
      {v1::MEMBER_INTENT_LEAVE, true, v1::NODE_STATE_LEAVING, v1::NODE_STATE_LEFT},
  };
  uint64_t version = 1;
  for (const Case& c : cases) {
    ++version;
    v1::MemberState in = State("r", 100, version, 0, c.intent);
    v1::MemberState out = State("o", 100, version, 0, c.intent);
    in.set_drained(c.drained);
    out.set_drained(c.drained);
    m.Merge(GossipOf({in, out}), 0, fd);
    EXPECT_EQ(m.StateOf("r"), c.in_ring) << "intent " << c.intent << " drained " << c.drained;
    EXPECT_EQ(m.StateOf("o"), c.outside) << "intent " << c.intent << " drained " << c.drained;
  }
  // Our own state follows the same rules.
  EXPECT_EQ(m.StateOf("a"), v1::NODE_STATE_NORMAL);
  m.SetIntent(v1::MEMBER_INTENT_LEAVE);
  EXPECT_EQ(m.StateOf("a"), v1::NODE_STATE_LEAVING);
}

}  // namespace
}  // namespace dynamo::core
