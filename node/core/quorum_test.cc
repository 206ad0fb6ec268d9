#include "dynamo/core/quorum.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "dynamo/core/claim.h"
#include "dynamo/core/random.h"
#include "dynamo/core/ring.h"

namespace dynamo::core {
namespace {

// --------------------------------------------------------------- placement

// Strategy 1 ring with tokens 10, 20, ... for a, b, c, ...: the range [10, 20)
// has the preference order a, b, c, d, e.
Ring LineRing(const std::vector<std::string>& ids) {
  RingSpec spec;
  spec.strategy = PartitionStrategy::kRandomTokens;
  std::vector<RingToken> tokens;
  std::vector<RingNode> nodes;
  for (size_t i = 0; i < ids.size(); ++i) {
    tokens.push_back({10 * (i + 1), ids[i]});
    nodes.push_back({ids[i], ""});
  }
  absl::StatusOr<Ring> ring = Ring::Create(spec, tokens, nodes);
  EXPECT_TRUE(ring.ok()) << ring.status();
  return ring.ok() ? *ring : Ring();
}

std::function<bool(const std::string&)> AllBut(std::set<std::string> down) {
  return [down = std::move(down)](const std::string& n) { return !down.contains(n); };
}

TEST(PlaceKeyTest, AllHealthy) {
  const Ring ring = LineRing({"a", "b", "c", "d", "e"});
  const Placement p = PlaceKey(ring, 15, 3, AllBut({}));
  EXPECT_EQ(p.range_index, ring.RangeIndex(15));
  EXPECT_EQ(p.owners, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(p.targets, (std::vector<Target>{{"a", ""}, {"b", ""}, {"c", ""}}));
}

TEST(PlaceKeyTest, FallbacksStandInForDownOwnersInOrder) {
  const Ring ring = LineRing({"a", "b", "c", "d", "e", "f"});
  const Placement p = PlaceKey(ring, 15, 3, AllBut({"a", "c"}));
  EXPECT_EQ(p.owners, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(p.targets, (std::vector<Target>{{"b", ""}, {"d", "a"}, {"e", "c"}}));
  EXPECT_TRUE(p.unplaced_owners.empty());
}

TEST(PlaceKeyTest, DownFallbacksAreSkipped) {
  const Ring ring = LineRing({"a", "b", "c", "d", "e", "f"});
  const Placement p = PlaceKey(ring, 15, 3, AllBut({"b", "d"}));
  EXPECT_EQ(p.targets, (std::vector<Target>{{"a", ""}, {"c", ""}, {"e", "b"}}));
}

TEST(PlaceKeyTest, FewerHealthyNodesThanN) {
  const Ring ring = LineRing({"a", "b", "c", "d"});
  const Placement p = PlaceKey(ring, 15, 3, AllBut({"a", "b", "d"}));
  EXPECT_EQ(p.owners, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(p.targets, (std::vector<Target>{{"c", ""}}));
  EXPECT_EQ(p.unplaced_owners, (std::vector<std::string>{"a", "b"})) << "no fallback for them";
  EXPECT_TRUE(PlaceKey(ring, 15, 3, AllBut({"a", "b", "c", "d"})).targets.empty());
}

TEST(PlaceKeyTest, NLargerThanTheRing) {
  const Ring ring = LineRing({"a", "b"});
  const Placement p = PlaceKey(ring, 15, 3, AllBut({}));
  EXPECT_EQ(p.owners, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(p.targets.size(), 2u);
}

TEST(PlaceKeyTest, EmptyRingPlacesNothing) {
  const Placement p = PlaceKey(Ring(), 15, 3, AllBut({}));
  EXPECT_TRUE(p.owners.empty());
  EXPECT_TRUE(p.targets.empty());
}

// The definition, written the slow and obvious way.
Placement NaivePlaceKey(const Ring& ring, uint64_t position, size_t n,
                        const std::function<bool(const std::string&)>& healthy) {
  Placement p;
  if (ring.empty()) return p;
  p.range_index = ring.RangeIndex(position);
  const std::vector<std::string> order = ring.PreferenceList(position, ring.nodes().size());
  for (size_t i = 0; i < order.size() && i < n; ++i) p.owners.push_back(order[i]);
  std::vector<std::string> down;
  for (const std::string& o : p.owners) {
    if (!healthy(o)) down.push_back(o);
  }
  size_t next_down = 0;
  for (const std::string& node : order) {
    if (p.targets.size() == n) break;
    if (!healthy(node)) continue;
    const bool owner = std::find(p.owners.begin(), p.owners.end(), node) != p.owners.end();
    std::string hint_for;
    if (!owner && next_down < down.size()) hint_for = down[next_down++];
    p.targets.push_back({node, hint_for});
  }
  p.unplaced_owners.assign(down.begin() + static_cast<long>(next_down), down.end());
  return p;
}

Ring RandomRing(Random& rng) {
  RingSpec spec;
  spec.strategy = static_cast<PartitionStrategy>(1 + rng.Uniform(3));
  spec.partitions = 1u << rng.Uniform(7);
  spec.zone_aware = rng.Chance(0.5);
  const size_t count = 1 + rng.Uniform(8);
  std::vector<ClaimMember> members;
  std::vector<RingNode> nodes;
  for (size_t i = 0; i < count; ++i) {
    const std::string id = "node" + std::to_string(i);
    const std::string zone = "z" + std::to_string(rng.Uniform(3));
    members.push_back({id, zone, static_cast<uint32_t>(1 + rng.Uniform(4))});
    nodes.push_back({id, zone});
  }
  absl::StatusOr<std::vector<RingToken>> tokens = Claim(spec, 3, {}, members, rng);
  EXPECT_TRUE(tokens.ok()) << tokens.status();
  absl::StatusOr<Ring> ring =
      Ring::Create(spec, tokens.ok() ? *tokens : std::vector<RingToken>{}, nodes);
  EXPECT_TRUE(ring.ok()) << ring.status();
  return ring.ok() ? *ring : Ring();
}

TEST(PlaceKeyTest, MatchesTheNaiveDefinitionOnRandomRings) {
  Random rng(20240601);
  for (int round = 0; round < 300; ++round) {
    const Ring ring = RandomRing(rng);
    ASSERT_FALSE(ring.empty());
    for (int k = 0; k < 40; ++k) {
      const uint64_t position = rng.Next();
      const size_t n = 1 + rng.Uniform(5);
      std::set<std::string> down;
      const double p_down = rng.Unit();
      for (const RingNode& node : ring.nodes()) {
        if (rng.Chance(p_down)) down.insert(node.id);
      }
      const auto healthy = AllBut(down);
      const Placement fast = PlaceKey(ring, position, n, healthy);
      const Placement naive = NaivePlaceKey(ring, position, n, healthy);
      ASSERT_EQ(fast.range_index, naive.range_index);
      ASSERT_TRUE(ring.ranges()[fast.range_index].Contains(position));
      ASSERT_EQ(fast.owners, naive.owners) << "round " << round;
      ASSERT_EQ(fast.targets, naive.targets) << "round " << round << " n=" << n;
      ASSERT_EQ(fast.unplaced_owners, naive.unplaced_owners) << "round " << round;
      // Invariants users rely on, stated directly.
      std::set<std::string> hinted, nodes;
      for (const Target& t : fast.targets) {
        EXPECT_TRUE(healthy(t.node));
        EXPECT_TRUE(nodes.insert(t.node).second) << "node twice: " << t.node;
        if (t.hint_for.empty()) continue;
        EXPECT_FALSE(healthy(t.hint_for));
        EXPECT_NE(std::find(fast.owners.begin(), fast.owners.end(), t.hint_for), fast.owners.end());
        EXPECT_TRUE(hinted.insert(t.hint_for).second) << "owner hinted twice: " << t.hint_for;
      }
    }
  }
}

// --------------------------------------------------------------- write quorum

std::vector<Target> Targets(size_t k) {
  std::vector<Target> t;
  for (size_t i = 0; i < k; ++i) t.push_back({"n" + std::to_string(i), ""});
  return t;
}

TEST(WriteQuorumTest, NeverSucceedsBeforeWAcks) {
  WriteQuorum q(Targets(3), 2);
  EXPECT_FALSE(q.Succeeded());
  q.OnAck("n0", false);
  EXPECT_FALSE(q.Succeeded());
  q.OnAck("n0", false);  // the same node again
  EXPECT_FALSE(q.Succeeded());
  EXPECT_EQ(q.acks(), 1u);
  q.OnAck("n1", false);
  EXPECT_TRUE(q.Succeeded());
  EXPECT_FALSE(q.Complete());
  q.OnFailure("n2", "down");
  EXPECT_TRUE(q.Complete());
  EXPECT_FALSE(q.Failed());
}

TEST(WriteQuorumTest, FailsWhenWAcksAreNoLongerPossible) {
  WriteQuorum q(Targets(3), 2);
  q.OnFailure("n0", "down");
  EXPECT_FALSE(q.Failed());
  q.OnFailure("n0", "again");  // duplicate: still one failure, its first reason
  EXPECT_FALSE(q.Failed());
  q.OnAck("n0", false);  // too late: the first answer counts
  EXPECT_EQ(q.acks(), 0u);
  q.OnFailure("n1", "storage could not sync");
  EXPECT_TRUE(q.Failed());
  EXPECT_EQ(q.failed().Summary(), "n0 (down), n1 (storage could not sync)");
  EXPECT_FALSE(q.Succeeded());
  EXPECT_FALSE(q.Complete());
  q.OnAck("n2", false);
  EXPECT_TRUE(q.Complete());
  EXPECT_FALSE(q.Succeeded());
}

TEST(WriteQuorumTest, RandomAnswerSequencesFollowTheArithmetic) {
  Random rng(7);
  for (int round = 0; round < 2000; ++round) {
    const size_t k = 1 + rng.Uniform(6);
    const size_t w = 1 + rng.Uniform(k);
    WriteQuorum q(Targets(k), w);
    std::map<std::string, bool> first;  // node -> acked
    bool succeeded_before = false;
    for (int e = 0; e < 12; ++e) {
      const std::string node = "n" + std::to_string(rng.Uniform(k));
      const bool ack = rng.Chance(0.6);
      if (ack) {
        q.OnAck(node, rng.Chance(0.5));
      } else {
        q.OnFailure(node, "down");
      }
      first.try_emplace(node, ack);
      size_t acks = 0, failures = 0;
      for (const auto& [n, a] : first) (a ? acks : failures) += 1;
      ASSERT_EQ(q.acks(), acks);
      ASSERT_EQ(q.Succeeded(), acks >= w);
      ASSERT_EQ(q.Failed(), k - failures < w);
      ASSERT_EQ(q.Complete(), first.size() == k);
      ASSERT_FALSE(q.Succeeded() && q.Failed());
      ASSERT_TRUE(q.Answered(node));
      if (succeeded_before) {
        ASSERT_TRUE(q.Succeeded()) << "success is final";
      }
      succeeded_before = q.Succeeded();
    }
  }
}

TEST(WriteQuorumTest, AllOwnersHoldTombstone) {
  std::vector<Target> targets = {{"a", ""}, {"b", ""}, {"d", "c"}};
  const std::vector<std::string> owners = {"a", "b", "c"};
  {
    WriteQuorum q(targets, 2);
    q.OnAck("a", true);
    q.OnAck("b", true);
    q.OnAck("d", true);  // a fallback holding c's tombstone is not c
    EXPECT_FALSE(q.AllOwnersHoldTombstone(owners));
    EXPECT_TRUE(q.AllOwnersHoldTombstone({"a", "b"}));
  }
  {
    WriteQuorum q(Targets(3), 2);
    q.OnAck("n0", true);
    q.OnAck("n1", false);  // holds a live sibling too
    q.OnAck("n2", true);
    EXPECT_FALSE(q.AllOwnersHoldTombstone({"n0", "n1", "n2"}));
  }
  {
    WriteQuorum q(Targets(3), 2);
    q.OnAck("n0", true);
    q.OnAck("n1", true);
    q.OnFailure("n2", "down");
    EXPECT_FALSE(q.AllOwnersHoldTombstone({"n0", "n1", "n2"}));
    q.OnAck("n2", true);  // after its failure: ignored
    EXPECT_FALSE(q.AllOwnersHoldTombstone({"n0", "n1", "n2"}));
  }
  {
    WriteQuorum q(Targets(3), 2);
    q.OnAck("n0", true);
    q.OnAck("n1", true);
    EXPECT_FALSE(q.AllOwnersHoldTombstone({"n0", "n1", "n2"}));  // n2 has not answered
    q.OnAck("n2", true);
    EXPECT_TRUE(q.AllOwnersHoldTombstone({"n0", "n1", "n2"}));
    EXPECT_FALSE(q.AllOwnersHoldTombstone({}));
  }
}

// --------------------------------------------------------------- read quorum

// Replicas of one key written through coordinators with distinct actors.
struct History {
  std::vector<VersionedObject> replicas;
  std::map<std::string, uint64_t> counters;
  int64_t now = 1;
  explicit History(size_t n) : replicas(n) {}
  void Write(size_t at, const VersionVector& context, const std::string& value) {
    const std::string actor = "c" + std::to_string(at) + "#1";
    uint64_t& c = counters[actor];
    c = std::max({c, replicas[at].clock().Counter(actor), context.Counter(actor)}) + 1;
    replicas[at].Write(context, Dot{actor, c}, value, false, now++);
  }
};

std::vector<std::string> StaleNodes(const ReadQuorum& q) {
  std::vector<std::string> out;
  for (const Target& t : q.StaleResponders()) out.push_back(t.node);
  return out;
}

TEST(ReadQuorumTest, CountsResponsesAndFailures) {
  ReadQuorum q(Targets(3), 2);
  q.OnResponse("n0", std::nullopt);
  EXPECT_FALSE(q.Succeeded());
  q.OnResponse("n0", std::nullopt);
  EXPECT_EQ(q.responses(), 1u);
  q.OnFailure("n0", "down");  // answered already: ignored
  EXPECT_FALSE(q.Failed());
  EXPECT_EQ(q.failed().Summary(), "");
  q.OnFailure("n1", "did not answer");
  EXPECT_FALSE(q.Failed());
  q.OnResponse("n1", std::nullopt);  // after its failure: ignored
  EXPECT_EQ(q.responses(), 1u);
  EXPECT_FALSE(q.Complete());
  q.OnFailure("n2", "down");
  EXPECT_TRUE(q.Failed());
  EXPECT_FALSE(q.Succeeded());
  EXPECT_TRUE(q.Complete());
  EXPECT_EQ(q.failed().Summary(), "n1 (did not answer), n2 (down)");
}

TEST(ReadQuorumTest, MergesAnswersAndNamesTheStaleOnes) {
  History h(2);
  h.Write(0, {}, "v1");
  VersionedObject old_version = h.replicas[0];
  h.Write(0, h.replicas[0].clock(), "v2");  // replaces v1
  VersionedObject newest = h.replicas[0];

  std::vector<Target> targets = {{"a", ""}, {"b", ""}, {"c", ""}, {"d", "x"}, {"e", ""}};
  ReadQuorum q(targets, 2);
  q.OnResponse("a", old_version);   // older version: stale
  q.OnResponse("b", newest);        // has the merged version: not stale
  q.OnResponse("c", std::nullopt);  // lacked the key: stale
  q.OnResponse("d", std::nullopt);  // a fallback, stale: repaired as a hint for x
  q.OnFailure("e", "down");                 // did not answer: not a responder
  EXPECT_TRUE(q.Succeeded());
  EXPECT_TRUE(q.Complete());
  EXPECT_EQ(q.merged(), newest);
  const std::vector<Target> stale = q.StaleResponders();
  EXPECT_EQ(stale, (std::vector<Target>{{"a", ""}, {"c", ""}, {"d", "x"}}));
}

TEST(ReadQuorumTest, ConcurrentSiblingsMakeEveryPartialHolderStale) {
  History h(2);
  h.Write(0, {}, "left");
  h.Write(1, {}, "right");
  ReadQuorum q(Targets(3), 2);
  q.OnResponse("n0", h.replicas[0]);
  q.OnResponse("n1", h.replicas[1]);
  VersionedObject both = h.replicas[0];
  both.Merge(h.replicas[1]);
  q.OnResponse("n2", both);
  EXPECT_EQ(q.merged(), both);
  EXPECT_EQ(q.merged().siblings().size(), 2u);
  EXPECT_EQ(StaleNodes(q), (std::vector<std::string>{"n0", "n1"}));
}

TEST(ReadQuorumTest, NobodyIsStaleWhenNobodyHasTheKey) {
  ReadQuorum q(Targets(3), 2);
  q.OnResponse("n0", std::nullopt);
  q.OnResponse("n1", std::nullopt);
  q.OnResponse("n2", std::nullopt);
  EXPECT_TRUE(q.merged().empty());
  EXPECT_TRUE(q.StaleResponders().empty());
}

// Three replicas after eight random writes (with or without a context) and
// merges between them.
History RandomHistory(Random& rng) {
  History h(3);
  for (int step = 0; step < 8; ++step) {
    const size_t a = rng.Uniform(3), b = rng.Uniform(3);
    if (rng.Chance(0.5)) {
      h.Write(a, rng.Chance(0.5) ? h.replicas[b].clock() : VersionVector(),
              "v" + std::to_string(step));
    } else {
      h.replicas[a].Merge(h.replicas[b]);
    }
  }
  return h;
}

TEST(ReadQuorumTest, StaleRespondersMatchTheDefinitionOnRandomHistories) {
  Random rng(99);
  for (int round = 0; round < 500; ++round) {
    const History h = RandomHistory(rng);
    const size_t k = 1 + rng.Uniform(5);
    ReadQuorum q(Targets(k), 1);
    std::map<std::string, std::optional<VersionedObject>> answers;
    VersionedObject expected_merge;
    for (size_t i = 0; i < k; ++i) {
      const std::string node = "n" + std::to_string(i);
      const uint64_t pick = rng.Uniform(5);
      if (pick == 4) {
        q.OnFailure(node, "down");
        continue;
      }
      std::optional<VersionedObject> obj;
      if (pick < 3 && !h.replicas[pick].empty()) obj = h.replicas[pick];
      q.OnResponse(node, obj);
      answers[node] = obj;
      if (obj) expected_merge.Merge(*obj);
    }
    ASSERT_EQ(q.merged(), expected_merge);
    std::vector<std::string> expected_stale;
    for (const auto& [node, obj] : answers) {  // std::map: n0, n1, ... as in targets
      if (expected_merge.empty()) continue;
      if (!obj || !(*obj == expected_merge)) expected_stale.push_back(node);
    }
    ASSERT_EQ(StaleNodes(q), expected_stale) << "round " << round;
  }
}


// --------------------------------------------------------------- digest reads

TEST(ReadQuorumTest, AgreeingDigestsCountWithoutMovingObjects) {
  History h(1);
  h.Write(0, {}, "v1");
  const VersionedObject held = h.replicas[0];
  ReadQuorum q(Targets(3), 2, "key");
  q.ExpectFull("n0");
  q.OnDigest("n1", ReadDigest("key", held));  // before the full answer: not yet counted
  EXPECT_EQ(q.responses(), 0u);
  EXPECT_TRUE(q.TakeFullReadsNeeded().empty());  // it may still agree
  q.OnResponse("n0", held);
  EXPECT_TRUE(q.Succeeded());
  EXPECT_FALSE(q.Complete());
  q.OnDigest("n2", ReadDigest("key", held));
  EXPECT_TRUE(q.TakeFullReadsNeeded().empty());
  EXPECT_TRUE(q.Complete());
  EXPECT_EQ(q.merged(), held);
  EXPECT_TRUE(StaleNodes(q).empty());
}

TEST(ReadQuorumTest, ADifferingDigestIsReadInFullOnceAndRepaired) {
  History h(2);
  h.Write(0, {}, "v1");
  const VersionedObject old_version = h.replicas[0];
  h.Write(0, h.replicas[0].clock(), "v2");
  const VersionedObject newest = h.replicas[0];
  ReadQuorum q(Targets(3), 2, "key");
  q.ExpectFull("n0");
  q.OnResponse("n0", old_version);
  q.OnDigest("n1", ReadDigest("key", newest));  // differs: not counted, read in full
  EXPECT_EQ(q.responses(), 1u);
  EXPECT_EQ(q.TakeFullReadsNeeded(), std::vector<std::string>{"n1"});
  EXPECT_TRUE(q.TakeFullReadsNeeded().empty());  // asked once
  q.OnDigest("n2", ReadDigest("key", old_version));  // agrees with n0
  EXPECT_EQ(q.responses(), 2u);
  EXPECT_FALSE(q.Complete());  // n1's object is still due
  q.OnResponse("n1", newest);
  EXPECT_TRUE(q.Complete());
  EXPECT_EQ(q.merged(), newest);
  // n2 holds what n0 answered: both are repaired.
  EXPECT_EQ(StaleNodes(q), (std::vector<std::string>{"n0", "n2"}));
}

TEST(ReadQuorumTest, DigestsAreReadInFullWhenTheFullTargetFails) {
  History h(1);
  h.Write(0, {}, "v1");
  ReadQuorum q(Targets(3), 2, "key");
  q.ExpectFull("n0");
  q.OnDigest("n1", ReadDigest("key", h.replicas[0]));
  q.OnFailure("n0", "down");
  EXPECT_EQ(q.TakeFullReadsNeeded(), std::vector<std::string>{"n1"});
  q.OnDigest("n2", std::nullopt);  // nothing for the key: a full answer
  EXPECT_TRUE(q.TakeFullReadsNeeded().empty());
  EXPECT_EQ(q.responses(), 1u);
  q.OnResponse("n1", h.replicas[0]);
  EXPECT_TRUE(q.Succeeded());
  EXPECT_TRUE(q.Complete());
  EXPECT_EQ(StaleNodes(q), std::vector<std::string>{"n2"});
}

// Whatever the order of answers, failures and full re-reads, a digest read
// ends as a read of every answering node's object would: the same merge, the
// same stale nodes, the same success; and it is complete exactly when no
// request is outstanding.
TEST(ReadQuorumTest, DigestReadsEndAsFullReadsWouldOnRandomHistories) {
  Random rng(7);
  for (int round = 0; round < 1000; ++round) {
    const History h = RandomHistory(rng);
    const size_t k = 1 + rng.Uniform(5);
    const size_t r = 1 + rng.Uniform(k);
    enum class Fails { kNever, kAlways, kOnFullRead };
    std::map<std::string, std::optional<VersionedObject>> holds;
    std::map<std::string, Fails> fails;
    for (size_t i = 0; i < k; ++i) {
      const std::string node = "n" + std::to_string(i);
      const uint64_t pick = rng.Uniform(4);
      if (pick < 3 && !h.replicas[pick].empty()) holds[node] = h.replicas[pick];
      else holds[node] = std::nullopt;
      const uint64_t f = rng.Uniform(10);
      fails[node] = f == 0 ? Fails::kAlways : f == 1 ? Fails::kOnFullRead : Fails::kNever;
    }
    const std::string full = "n" + std::to_string(rng.Uniform(k));
    ReadQuorum q(Targets(k), r, "key");
    q.ExpectFull(full);
    std::vector<std::pair<std::string, bool>> pending;  // node, full read
    for (const auto& [node, obj] : holds) pending.push_back({node, node == full});
    std::set<std::string> failed;
    while (!pending.empty()) {
      ASSERT_FALSE(q.Complete()) << "round " << round;
      const size_t i = rng.Uniform(pending.size());
      const auto [node, full_read] = pending[i];
      pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
      if (fails[node] == Fails::kAlways || (full_read && fails[node] == Fails::kOnFullRead)) {
        q.OnFailure(node, "down");
        failed.insert(node);
      } else if (full_read) {
        q.OnResponse(node, holds[node]);
      } else {
        q.OnDigest(node, ReadDigest("key", holds[node]));
      }
      for (const std::string& n : q.TakeFullReadsNeeded()) pending.push_back({n, true});
    }
    ASSERT_TRUE(q.Complete()) << "round " << round;
    VersionedObject expected_merge;
    for (const auto& [node, obj] : holds) {
      if (!failed.contains(node) && obj) expected_merge.Merge(*obj);
    }
    std::vector<std::string> expected_stale;
    for (const auto& [node, obj] : holds) {  // std::map: n0, n1, ... as in targets
      if (failed.contains(node) || expected_merge.empty()) continue;
      if (!obj || !(*obj == expected_merge)) expected_stale.push_back(node);
    }
    ASSERT_EQ(q.merged(), expected_merge) << "round " << round;
    ASSERT_EQ(StaleNodes(q), expected_stale) << "round " << round;
    ASSERT_EQ(q.responses(), k - failed.size()) << "round " << round;
    ASSERT_EQ(q.Succeeded(), k - failed.size() >= r) << "round " << round;
  }
}

}  // namespace
}  // namespace dynamo::core
