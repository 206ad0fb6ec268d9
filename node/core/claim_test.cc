#include "dynamo/core/claim.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "dynamo/core/random.h"
#include "dynamo/core/ring.h"
#include "gtest/gtest.h"

namespace dynamo::core {
namespace {

constexpr PartitionStrategy kS1 = PartitionStrategy::kRandomTokens;
constexpr PartitionStrategy kS2 = PartitionStrategy::kRandomTokensEqualPartitions;
constexpr PartitionStrategy kS3 = PartitionStrategy::kEqualPartitions;

RingSpec Spec(PartitionStrategy strategy, uint32_t partitions, bool zone_aware = false) {
  RingSpec spec;
  spec.strategy = strategy;
  spec.partitions = partitions;
  spec.zone_aware = zone_aware;
  return spec;
}

std::string Id(int i) {
  char id[16];
  std::snprintf(id, sizeof id, "node-%03d", i);
  return id;
}

std::vector<ClaimMember> Members(int count, uint32_t vnodes = 1) {
  std::vector<ClaimMember> members;
  for (int i = 0; i < count; ++i) members.push_back({Id(i), "", vnodes});
  return members;
}

std::vector<RingToken> MustClaim(const RingSpec& spec, uint32_t replicas,
                                 const std::vector<RingToken>& current,
                                 const std::vector<ClaimMember>& members, Random& rng) {
  absl::StatusOr<std::vector<RingToken>> tokens = Claim(spec, replicas, current, members, rng);
  EXPECT_TRUE(tokens.ok()) << tokens.status();
  return tokens.ok() ? *tokens : std::vector<RingToken>{};
}

std::map<std::string, uint32_t> Counts(const std::vector<RingToken>& tokens) {
  std::map<std::string, uint32_t> counts;
  for (const RingToken& t : tokens) ++counts[t.node];
  return counts;
}

// Partitions whose owner changed (strategy 3 rings of the same Q).
int Moves(const std::vector<RingToken>& before, const std::vector<RingToken>& after) {
  int moves = 0;
  for (size_t i = 0; i < after.size(); ++i) {
    moves += before.empty() || before[i].node != after[i].node ? 1 : 0;
  }
  return moves;
}

// Pairs of partitions less than `replicas` apart with the same owner: each is a window of
// `replicas` consecutive partitions without distinct owners. adjacent counts distance 1.
int Crowding(const std::vector<RingToken>& tokens, uint32_t replicas, int* adjacent = nullptr) {
  int crowded = 0;
  if (adjacent != nullptr) *adjacent = 0;
  const size_t q = tokens.size();
  for (size_t p = 0; p < q; ++p) {
    for (size_t k = 1; k < replicas && k < q; ++k) {
      if (tokens[p].node != tokens[(p + k) % q].node) continue;
      ++crowded;
      if (k == 1 && adjacent != nullptr) ++*adjacent;
    }
  }
  return crowded;
}

void ExpectValidRing(const RingSpec& spec, const std::vector<RingToken>& tokens,
                     const std::vector<ClaimMember>& members) {
  std::vector<RingNode> nodes;
  for (const ClaimMember& m : members) nodes.push_back({m.id, m.zone});
  absl::StatusOr<Ring> ring = Ring::Create(spec, tokens, nodes);
  EXPECT_TRUE(ring.ok()) << ring.status();
  EXPECT_TRUE(std::is_sorted(
      tokens.begin(), tokens.end(),
      [](const RingToken& a, const RingToken& b) { return a.position < b.position; }));
}

// Each member's count is within one of its exact share q * w / W.
void ExpectProportional(const std::vector<RingToken>& tokens,
                        const std::vector<ClaimMember>& members, uint32_t q) {
  uint64_t total_weight = 0;
  for (const ClaimMember& m : members) total_weight += m.vnodes;
  const std::map<std::string, uint32_t> counts = Counts(tokens);
  uint64_t sum = 0;
  for (const ClaimMember& m : members) {
    const auto it = counts.find(m.id);
    const uint64_t count = it == counts.end() ? 0 : it->second;
    const uint64_t floor = uint64_t{q} * m.vnodes / total_weight;
    const bool exact = uint64_t{q} * m.vnodes % total_weight == 0;
    EXPECT_GE(count, floor) << m.id;
    EXPECT_LE(count, exact ? floor : floor + 1) << m.id;
    sum += count;
  }
  EXPECT_EQ(sum, q);
}

void ExpectInvalid(const absl::Status& status, const std::string& fragment) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find(fragment), std::string::npos)
      << "message \"" << status.message() << "\" lacks \"" << fragment << "\"";
}

TEST(ClaimTest, RejectsBadInput) {
  Random rng(1);
  const std::vector<ClaimMember> three = Members(3);
  ExpectInvalid(Claim(Spec(kS3, 12), 3, {}, three, rng).status(), "power of two");
  ExpectInvalid(Claim(Spec(static_cast<PartitionStrategy>(0), 8), 3, {}, three, rng).status(),
                "unknown partition strategy");
  ExpectInvalid(Claim(Spec(kS3, 8), 0, {}, three, rng).status(), "replicas must be in [1, 64]");
  ExpectInvalid(Claim(Spec(kS3, 8), kClaimReplicasMax + 1, {}, three, rng).status(),
                "replicas must be in [1, 64]");
  ExpectInvalid(
      Claim(Spec(kS3, 8), 3, {}, {{"a", "", 1}, {"b", "", 1}, {"a", "", 2}}, rng).status(),
      "claim member \"a\" is listed twice");
  ExpectInvalid(Claim(Spec(kS3, 8), 3, {}, {{"", "", 1}}, rng).status(), "must not be empty");
  ExpectInvalid(Claim(Spec(kS3, 8), 3, {}, {{std::string(300, 'x'), "", 1}}, rng).status(),
                "limited to 256 bytes");
  ExpectInvalid(Claim(Spec(kS1, 8), 3, {}, {{"a", "", kRingTokensPerNodeMax + 1}}, rng).status(),
                "asks for 4097 vnodes; at most 4096");
  ExpectInvalid(Claim(Spec(kS3, 8), 3, {}, Members(kRingNodesMax + 1), rng).status(),
                "4097 members; at most 4096");
  ExpectInvalid(Claim(Spec(kS3, 8), 3, {{5, "a"}, {5, "b"}}, three, rng).status(),
                "two tokens at position 0x0000000000000005");
  ExpectInvalid(Claim(Spec(kS1, 8), 3, {}, Members(17, kRingTokensPerNodeMax), rng).status(),
                "69632 tokens in all; at most 65536");
  // What Ring::Create would refuse: 65536 partitions over 300 owners.
  ExpectInvalid(Claim(Spec(kS3, kRingPartitionsMax), 3, {}, Members(300), rng).status(),
                "would exceed 16777216 preference entries");
}

TEST(ClaimTest, NoWeightGivesAnEmptyRing) {
  Random rng(1);
  EXPECT_TRUE(MustClaim(Spec(kS3, 64), 3, {}, {}, rng).empty());
  EXPECT_TRUE(MustClaim(Spec(kS3, 64), 3, {}, Members(3, 0), rng).empty());
  EXPECT_TRUE(MustClaim(Spec(kS1, 64), 3, {}, Members(3, 0), rng).empty());
  const std::vector<RingToken> ring = MustClaim(Spec(kS3, 64), 3, {}, Members(3), rng);
  EXPECT_TRUE(MustClaim(Spec(kS3, 64), 3, ring, {}, rng).empty());
}

TEST(ClaimTest, IsDeterministicAndIgnoresMemberOrder) {
  for (PartitionStrategy strategy : {kS1, kS2, kS3}) {
    const RingSpec spec = Spec(strategy, 256);
    std::vector<ClaimMember> members = Members(7, 16);
    members[2].vnodes = 5;
    Random a(42);
    Random b(42);
    const std::vector<RingToken> first = MustClaim(spec, 3, {}, members, a);
    EXPECT_EQ(MustClaim(spec, 3, {}, members, b), first);
    std::reverse(members.begin(), members.end());
    Random c(42);
    EXPECT_EQ(MustClaim(spec, 3, {}, members, c), first);
    // Joins from the same ring agree as well.
    members.push_back({"late", "", 16});
    EXPECT_EQ(MustClaim(spec, 3, first, members, a), MustClaim(spec, 3, first, members, c));
  }
  // Random tokens come from the generator passed in.
  Random a(1);
  Random b(2);
  EXPECT_NE(MustClaim(Spec(kS1, 8), 3, {}, Members(3, 8), a),
            MustClaim(Spec(kS1, 8), 3, {}, Members(3, 8), b));
}

TEST(ClaimTest, EqualPartitionsAreBalancedWithinOne) {
  Random rng(1);
  for (uint32_t q : {1u, 2u, 16u, 64u, 256u, 1024u}) {
    for (int s : {1, 2, 3, 5, 7, 10, 17, 33, 64, 100}) {
      const std::vector<ClaimMember> members = Members(s);
      const std::vector<RingToken> tokens = MustClaim(Spec(kS3, q), 3, {}, members, rng);
      ASSERT_EQ(tokens.size(), q);
      for (uint32_t i = 0; i < q; ++i) EXPECT_EQ(tokens[i].position, PartitionStart(q, i));
      ExpectProportional(tokens, members, q);
      ExpectValidRing(Spec(kS3, q), tokens, members);
    }
  }
}

TEST(ClaimTest, WeightsAreRespected) {
  Random rng(1);
  const std::vector<ClaimMember> members = {{"a", "", 1}, {"b", "", 2}, {"c", "", 3},
                                            {"d", "", 4}, {"e", "", 0}, {"f", "", 7}};
  for (uint32_t q : {64u, 1024u}) {
    const std::vector<RingToken> tokens = MustClaim(Spec(kS3, q), 3, {}, members, rng);
    ExpectProportional(tokens, members, q);
    EXPECT_EQ(Counts(tokens).count("e"), 0u);
    // Doubling a weight moves only what the new shares require.
    std::vector<ClaimMember> heavier = members;
    heavier[0].vnodes = 2;
    const std::vector<RingToken> next = MustClaim(Spec(kS3, q), 3, tokens, heavier, rng);
    ExpectProportional(next, heavier, q);
    const std::map<std::string, uint32_t> before = Counts(tokens);
    const std::map<std::string, uint32_t> after = Counts(next);
    int must_move = static_cast<int>(q);
    for (const auto& [id, count] : before) {
      must_move -= std::min(count, after.count(id) ? after.at(id) : 0);
    }
    EXPECT_EQ(Moves(tokens, next), must_move);
  }
}

TEST(ClaimTest, MembersNotListedLoseEverything) {
  Random rng(1);
  const std::vector<RingToken> tokens = MustClaim(Spec(kS3, 256), 3, {}, Members(4), rng);
  std::vector<ClaimMember> three = Members(4);
  three.erase(three.begin() + 1);
  const std::vector<RingToken> next = MustClaim(Spec(kS3, 256), 3, tokens, three, rng);
  EXPECT_EQ(Counts(next).count(Id(1)), 0u);
  ExpectProportional(next, three, 256);
}

// A node joining S equal ones takes its share and nothing else moves.
TEST(ClaimTest, JoinMovesOnlyTheJoinersShare) {
  for (uint32_t q : {16u, 64u, 256u, 1024u}) {
    for (uint32_t replicas : {1u, 2u, 3u, 4u}) {
      Random rng(7);
      std::vector<ClaimMember> members;
      std::vector<RingToken> ring;
      for (int s = 1; s <= 40; ++s) {
        members.push_back({Id(s), "", 1});
        const std::vector<RingToken> next = MustClaim(Spec(kS3, q), replicas, ring, members, rng);
        ExpectProportional(next, members, q);
        if (!ring.empty()) {
          const int bound = static_cast<int>((q + s - 1) / s);  // ceil(Q / (S + 1)), S = s - 1
          EXPECT_LE(Moves(ring, next), bound) << "q " << q << " joining member " << s;
          const std::map<std::string, uint32_t> counts = Counts(next);
          EXPECT_EQ(Moves(ring, next), counts.count(Id(s)) ? counts.at(Id(s)) : 0);
          for (size_t i = 0; i < q; ++i) {
            if (next[i].node != ring[i].node) {
              EXPECT_EQ(next[i].node, Id(s));
            }
          }
        }
        ring = next;
      }
    }
  }
}

// A node leaving S equal ones hands over exactly its partitions: no other partition moves,
// spacing or not. Measured over every leaver of rings made at once and made by joins.
TEST(ClaimTest, LeaveMovesOnlyTheLeaversPartitions) {
  for (uint32_t q : {64u, 256u, 1024u}) {
    for (int s : {4, 5, 8, 13, 24}) {
      Random rng(3);
      const std::vector<ClaimMember> members = Members(s);
      std::vector<RingToken> by_joins;
      for (int i = 1; i <= s; ++i) {
        by_joins = MustClaim(Spec(kS3, q), 3, by_joins,
                             std::vector<ClaimMember>(members.begin(), members.begin() + i), rng);
      }
      for (const std::vector<RingToken>& ring :
           {MustClaim(Spec(kS3, q), 3, {}, members, rng), by_joins}) {
        for (int leaver = 0; leaver < s; ++leaver) {
          std::vector<ClaimMember> rest = members;
          rest.erase(rest.begin() + leaver);
          const std::vector<RingToken> next = MustClaim(Spec(kS3, q), 3, ring, rest, rng);
          ExpectProportional(next, rest, q);
          for (size_t i = 0; i < q; ++i) {
            if (ring[i].node != Id(leaver)) {
              EXPECT_EQ(next[i].node, ring[i].node);
            }
          }
        }
      }
    }
  }
}

// The strongest form of "moving as little as possible": after any change of membership or
// weights, exactly Q - sum(min(held before, held after)) partitions change owner, which is
// the least any assignment with the same counts could move.
TEST(ClaimTest, RandomChangesMoveTheMinimum) {
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    Random rng(seed);
    const uint32_t q = uint32_t{16} << rng.Uniform(6);
    const uint32_t replicas = static_cast<uint32_t>(rng.Between(1, 5));
    std::vector<ClaimMember> members;
    std::vector<RingToken> ring;
    int next_id = 0;
    for (int step = 0; step < 60; ++step) {
      const uint64_t op = rng.Uniform(4);
      if (members.empty() || op == 0 || (op == 1 && members.size() < 3)) {
        members.push_back({Id(next_id++), "", static_cast<uint32_t>(rng.Between(1, 4))});
      } else if (op == 1) {
        members.erase(members.begin() + static_cast<std::ptrdiff_t>(rng.Uniform(members.size())));
      } else if (op == 2) {
        members[rng.Uniform(members.size())].vnodes = static_cast<uint32_t>(rng.Between(0, 4));
      } else {
        members.push_back({Id(next_id++), "", static_cast<uint32_t>(rng.Between(1, 4))});
        members.erase(members.begin() + static_cast<std::ptrdiff_t>(rng.Uniform(members.size())));
      }
      const std::vector<RingToken> next = MustClaim(Spec(kS3, q), replicas, ring, members, rng);
      uint64_t weight = 0;
      for (const ClaimMember& m : members) weight += m.vnodes;
      if (weight == 0) {
        EXPECT_TRUE(next.empty());
        ring = next;
        continue;
      }
      ExpectProportional(next, members, q);
      if (!ring.empty()) {
        const std::map<std::string, uint32_t> before = Counts(ring);
        const std::map<std::string, uint32_t> after = Counts(next);
        int must_move = static_cast<int>(q);
        for (const auto& [id, count] : before) {
          must_move -= std::min(count, after.count(id) ? after.at(id) : 0);
        }
        EXPECT_EQ(Moves(ring, next), must_move) << "seed " << seed << " step " << step;
      }
      ring = next;
    }
  }
}

// Once there are more nodes than replicas, any N consecutive partitions have distinct
// owners, so every node replicates as many ranges as it coordinates. At S == N (when every
// node stores everything anyway) neighbours still differ.
TEST(ClaimTest, ConsecutivePartitionsHaveDistinctOwners) {
  for (uint32_t q : {16u, 64u, 256u, 1024u}) {
    for (uint32_t replicas : {2u, 3u, 4u, 5u}) {
      Random rng(11);
      std::vector<ClaimMember> members;
      std::vector<RingToken> ring;
      for (int s = 1; s <= 40; ++s) {
        members.push_back({Id(s), "", 1});
        ring = MustClaim(Spec(kS3, q), replicas, ring, members, rng);
        const std::vector<RingToken> at_once = MustClaim(Spec(kS3, q), replicas, {}, members, rng);
        if (static_cast<uint32_t>(s) < replicas) continue;
        int adjacent = 0;
        Crowding(ring, replicas, &adjacent);
        EXPECT_EQ(adjacent, 0) << "grown by joins: q " << q << " N " << replicas << " S " << s;
        const int crowded_at_once = Crowding(at_once, replicas, &adjacent);
        EXPECT_EQ(adjacent, 0) << "made at once: q " << q << " N " << replicas << " S " << s;
        if (static_cast<uint32_t>(s) == replicas || s * replicas > q) continue;
        EXPECT_EQ(crowded_at_once, 0) << "made at once: q " << q << " N " << replicas << " S " << s;
        // Grown one join at a time and moving only the joiner's share, the ring keeps a few
        // crowded windows for a few joins after S = N (measured: at most 3 for N <= 4,
        // more for N = 5, gone by S = 2N).
        const int crowded = Crowding(ring, replicas);
        if (static_cast<uint32_t>(s) >= 2 * replicas) {
          EXPECT_EQ(crowded, 0) << "grown by joins: q " << q << " N " << replicas << " S " << s;
        } else if (replicas <= 4) {
          EXPECT_LE(crowded, 3) << "grown by joins: q " << q << " N " << replicas << " S " << s;
        }
      }
    }
  }
}

TEST(ClaimTest, ZoneAwareClaimSpreadsZones) {
  // 16 nodes in 4 zones, ids grouped by zone: a zone-blind claim made at once deals the
  // partitions round-robin by id and puts whole windows in one zone.
  std::vector<ClaimMember> members;
  for (int i = 0; i < 16; ++i) members.push_back({Id(i), "zone-" + std::to_string(i / 4), 1});
  auto spanning = [&](const std::vector<RingToken>& tokens) {
    std::map<std::string, std::string> zone;
    for (const ClaimMember& m : members) zone[m.id] = m.zone;
    int count = 0;
    for (size_t p = 0; p < tokens.size(); ++p) {
      const std::string& a = zone[tokens[p].node];
      const std::string& b = zone[tokens[(p + 1) % tokens.size()].node];
      const std::string& c = zone[tokens[(p + 2) % tokens.size()].node];
      count += a != b && b != c && a != c ? 1 : 0;
    }
    return count;
  };
  Random rng(5);
  const std::vector<RingToken> blind = MustClaim(Spec(kS3, 1024), 3, {}, members, rng);
  const std::vector<RingToken> aware =
      MustClaim(Spec(kS3, 1024, /*zone_aware=*/true), 3, {}, members, rng);
  EXPECT_EQ(spanning(blind), 0);
  // A single zone leaves nothing to spread: the claim is the zone-blind one.
  std::vector<ClaimMember> one_zone = Members(16);
  EXPECT_EQ(MustClaim(Spec(kS3, 1024, /*zone_aware=*/true), 3, {}, one_zone, rng),
            MustClaim(Spec(kS3, 1024), 3, {}, one_zone, rng));
  EXPECT_GE(spanning(aware), 1000);  // measured 1018 of 1024
  EXPECT_EQ(Crowding(aware, 3), 0);
  ExpectProportional(aware, members, 1024);
}

TEST(ClaimTest, ChangingPartitionCountKeepsOwnersOfCoveringTokens) {
  Random rng(1);
  const std::vector<ClaimMember> members = Members(5);
  const std::vector<RingToken> small = MustClaim(Spec(kS3, 256), 3, {}, members, rng);
  const std::vector<RingToken> large = MustClaim(Spec(kS3, 512), 3, small, members, rng);
  ExpectProportional(large, members, 512);
  // Each old partition splits in two; only the rounding of the new shares moves anything.
  int moved = 0;
  for (uint32_t i = 0; i < 512; ++i) moved += large[i].node != small[i / 2].node ? 1 : 0;
  EXPECT_LE(moved, 5);
}

TEST(ClaimTest, RandomTokensGiveEachMemberItsVnodes) {
  for (PartitionStrategy strategy : {kS1, kS2}) {
    const RingSpec spec = Spec(strategy, 64);
    Random rng(9);
    std::vector<ClaimMember> members = {{"a", "", 8}, {"b", "", 3}, {"c", "", 0}, {"d", "", 12}};
    const std::vector<RingToken> first = MustClaim(spec, 3, {}, members, rng);
    EXPECT_EQ(Counts(first), (std::map<std::string, uint32_t>{{"a", 8}, {"b", 3}, {"d", 12}}));
    ExpectValidRing(spec, first, members);

    // Growing a member and adding one keeps every existing token.
    members[1].vnodes = 6;
    members.push_back({"e", "", 4});
    const std::vector<RingToken> grown = MustClaim(spec, 3, first, members, rng);
    EXPECT_EQ(Counts(grown),
              (std::map<std::string, uint32_t>{{"a", 8}, {"b", 6}, {"d", 12}, {"e", 4}}));
    for (const RingToken& t : first) {
      EXPECT_NE(std::find(grown.begin(), grown.end(), t), grown.end());
    }
    ExpectValidRing(spec, grown, members);

    // Shrinking keeps a subset, the same one every time; dropping a member drops its tokens.
    members[3].vnodes = 5;
    members.erase(members.begin());  // a
    Random other(1234);
    const std::vector<RingToken> shrunk = MustClaim(spec, 3, grown, members, rng);
    EXPECT_EQ(MustClaim(spec, 3, grown, members, other), shrunk);  // no new draws needed
    EXPECT_EQ(Counts(shrunk), (std::map<std::string, uint32_t>{{"b", 6}, {"d", 5}, {"e", 4}}));
    for (const RingToken& t : shrunk) {
      EXPECT_NE(std::find(grown.begin(), grown.end(), t), grown.end());
    }
    ExpectValidRing(spec, shrunk, members);
  }
}

TEST(ClaimTest, SwitchingFromEqualPartitionsToRandomTokensKeepsTokens) {
  Random rng(1);
  const std::vector<ClaimMember> members = Members(4, 16);
  const std::vector<RingToken> partitions = MustClaim(Spec(kS3, 64), 3, {}, members, rng);
  const std::vector<RingToken> tokens = MustClaim(Spec(kS2, 64), 3, partitions, members, rng);
  EXPECT_EQ(tokens, partitions);  // 16 partitions each, 16 tokens each: nothing to change
  ExpectValidRing(Spec(kS2, 64), tokens, members);
}

// The largest strategy-3 ring the bounds admit is claimed and built quickly enough for a
// claimant to do it inline.
TEST(ClaimTest, LargestRingIsCheap) {
  Random rng(1);
  const std::vector<ClaimMember> members = Members(kRingNodesMax);
  const RingSpec spec = Spec(kS3, 4096);
  const std::vector<RingToken> tokens = MustClaim(spec, 3, {}, members, rng);
  ExpectProportional(tokens, members, 4096);
  ExpectValidRing(spec, tokens, members);
}

}  // namespace
}  // namespace dynamo::core
