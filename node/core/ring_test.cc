#include "dynamo/core/ring.h"

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "dynamo/core/random.h"
#include "gtest/gtest.h"

namespace dynamo::core {
namespace {

constexpr PartitionStrategy kS1 = PartitionStrategy::kRandomTokens;
constexpr PartitionStrategy kS2 = PartitionStrategy::kRandomTokensEqualPartitions;
constexpr PartitionStrategy kS3 = PartitionStrategy::kEqualPartitions;

RingSpec Spec(PartitionStrategy strategy, uint32_t partitions = 8, bool zone_aware = false) {
  RingSpec spec;
  spec.strategy = strategy;
  spec.partitions = partitions;
  spec.zone_aware = zone_aware;
  return spec;
}

// Strategy-3 tokens: partition i owned by owners[i % owners.size()].
std::vector<RingToken> PartitionTokens(uint32_t partitions,
                                       const std::vector<std::string>& owners) {
  std::vector<RingToken> tokens;
  for (uint32_t i = 0; i < partitions; ++i) {
    tokens.push_back({PartitionStart(partitions, i), owners[i % owners.size()]});
  }
  return tokens;
}

void ExpectInvalid(const absl::Status& status, const std::string& fragment) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_NE(status.message().find(fragment), std::string::npos)
      << "message \"" << status.message() << "\" lacks \"" << fragment << "\"";
}

TEST(PartitionStartTest, SplitsTheRingEvenly) {
  EXPECT_EQ(PartitionStart(1, 0), 0u);
  EXPECT_EQ(PartitionStart(2, 1), uint64_t{1} << 63);
  EXPECT_EQ(PartitionStart(4, 3), uint64_t{3} << 62);
  EXPECT_EQ(PartitionStart(kRingPartitionsMax, 1), uint64_t{1} << 48);
}

TEST(RingTest, DefaultRingIsEmpty) {
  const Ring ring;
  EXPECT_TRUE(ring.empty());
  EXPECT_TRUE(ring.ranges().empty());
  EXPECT_TRUE(ring.tokens().empty());
  EXPECT_TRUE(ring.nodes().empty());
  EXPECT_EQ(ring.RangeIndex(12345), 0u);
  EXPECT_TRUE(ring.PreferenceOrder(0).empty());
  EXPECT_TRUE(ring.PreferenceList(12345, 3).empty());
  EXPECT_TRUE(ring.RangesReplicatedBy("a", 3).empty());
  EXPECT_EQ(ring.PrimaryShare("a"), 0.0);
  EXPECT_TRUE(ring.ReplicaShares(3).empty());
  EXPECT_EQ(ring.FindNode("a"), nullptr);
}

TEST(RingTest, NodesWithoutTokensGiveAnEmptyRingThatKnowsThem) {
  absl::StatusOr<Ring> ring = Ring::Create(Spec(kS3), {}, {{"b", "z2"}, {"a", "z1"}});
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_TRUE(ring->empty());
  EXPECT_TRUE(ring->ranges().empty());
  ASSERT_EQ(ring->nodes().size(), 2u);
  EXPECT_EQ(ring->nodes()[0].id, "a");  // sorted by id
  ASSERT_NE(ring->FindNode("b"), nullptr);
  EXPECT_EQ(ring->FindNode("b")->zone, "z2");
  EXPECT_TRUE(ring->PreferenceList(0, 3).empty());
}

TEST(RingTest, CreateRejectsBadSpecs) {
  const std::vector<RingNode> nodes = {{"a", ""}};
  ExpectInvalid(Ring::Create(Spec(static_cast<PartitionStrategy>(7)), {}, nodes).status(),
                "unknown partition strategy 7");
  for (uint32_t partitions : {0u, 3u, 12u, kRingPartitionsMax * 2}) {
    ExpectInvalid(Ring::Create(Spec(kS3, partitions), {}, nodes).status(), "power of two");
    ExpectInvalid(Ring::Create(Spec(kS2, partitions), {}, nodes).status(), "power of two");
  }
  // Strategy 1 has no partitions, so their count does not matter.
  EXPECT_TRUE(Ring::Create(Spec(kS1, 3), {{7, "a"}}, nodes).ok());
}

TEST(RingTest, CreateRejectsBadNodes) {
  ExpectInvalid(Ring::Create(Spec(kS1), {}, {{"", "z"}}).status(), "must not be empty");
  ExpectInvalid(Ring::Create(Spec(kS1), {}, {{"a", ""}, {"b", ""}, {"a", "z"}}).status(),
                "ring node \"a\" is listed twice");
  ExpectInvalid(
      Ring::Create(Spec(kS1), {}, {{std::string(kRingNodeIdBytesMax + 1, 'x'), ""}}).status(),
      "limited to 256 bytes");
  ExpectInvalid(
      Ring::Create(Spec(kS1), {}, {{"a", std::string(kRingNodeIdBytesMax + 1, 'z')}}).status(),
      "limited to 256 bytes");
  std::vector<RingNode> many;
  for (uint32_t i = 0; i <= kRingNodesMax; ++i) many.push_back({"n" + std::to_string(i), ""});
  ExpectInvalid(Ring::Create(Spec(kS1), {}, many).status(), "4097 nodes; at most 4096");
}

TEST(RingTest, CreateRejectsBadTokens) {
  const std::vector<RingNode> nodes = {{"a", ""}, {"b", ""}};
  ExpectInvalid(Ring::Create(Spec(kS1), {{5, "a"}, {9, "b"}, {5, "b"}}, nodes).status(),
                "two tokens at position 0x0000000000000005");
  ExpectInvalid(Ring::Create(Spec(kS2), {{5, "a"}, {9, "c"}}, nodes).status(),
                "names node \"c\", which is not among the ring's nodes");

  // Strategy 3: exactly one token at each partition start.
  ExpectInvalid(Ring::Create(Spec(kS3, 8), PartitionTokens(4, {"a", "b"}), nodes).status(),
                "strategy 3 with 8 partitions needs exactly one token per partition, got 4");
  std::vector<RingToken> shifted = PartitionTokens(8, {"a", "b"});
  shifted[5].position += 1;
  ExpectInvalid(Ring::Create(Spec(kS3, 8), shifted, nodes).status(),
                "strategy 3 token 5 (node \"b\") is at 0xa000000000000001, not at its partition "
                "start 0xa000000000000000");
  EXPECT_TRUE(Ring::Create(Spec(kS3, 8), PartitionTokens(8, {"a", "b"}), nodes).ok());

  // Bounds on tokens.
  std::vector<RingToken> too_many_per_node;
  for (uint64_t i = 0; i <= kRingTokensPerNodeMax; ++i) too_many_per_node.push_back({i, "a"});
  ExpectInvalid(Ring::Create(Spec(kS1), too_many_per_node, nodes).status(),
                "ring node \"a\" has 4097 tokens; at most 4096");
  std::vector<RingToken> too_many;
  std::vector<RingNode> many_nodes;
  for (uint64_t i = 0; i <= kRingTokensMax; ++i) {
    too_many.push_back({i, "n" + std::to_string(i % 20)});
  }
  for (int i = 0; i < 20; ++i) many_nodes.push_back({"n" + std::to_string(i), ""});
  ExpectInvalid(Ring::Create(Spec(kS1), too_many, many_nodes).status(),
                "65537 tokens; at most 65536");
}

TEST(RingTest, CreateRejectsRingsWhosePreferenceOrdersWouldNotFit) {
  // 65536 partitions over 257 owning nodes: more than 2^24 preference entries.
  std::vector<std::string> owners;
  std::vector<RingNode> nodes;
  for (int i = 0; i < 257; ++i) {
    owners.push_back("n" + std::to_string(i));
    nodes.push_back({owners.back(), ""});
  }
  ExpectInvalid(Ring::Create(Spec(kS3, kRingPartitionsMax),
                             PartitionTokens(kRingPartitionsMax, owners), nodes)
                    .status(),
                "ring too large");
  owners.pop_back();  // 256 nodes fit exactly
  EXPECT_TRUE(Ring::Create(Spec(kS3, kRingPartitionsMax),
                           PartitionTokens(kRingPartitionsMax, owners), nodes)
                  .ok());
}

TEST(RingTest, TokenIntervalsFollowTheTokens) {
  // Strategy 1: a owns [100, 200) and [300, 400); b [200, 300); c [400, 100), which wraps.
  absl::StatusOr<Ring> ring =
      Ring::Create(Spec(kS1), {{300, "a"}, {100, "a"}, {400, "c"}, {200, "b"}},
                   {{"c", ""}, {"b", ""}, {"a", ""}});
  ASSERT_TRUE(ring.ok()) << ring.status();
  const std::vector<KeyRange> expected = {{100, 200}, {200, 300}, {300, 400}, {400, 100}};
  EXPECT_EQ(ring->ranges(), expected);
  EXPECT_EQ(ring->RangeIndex(100), 0u);
  EXPECT_EQ(ring->RangeIndex(199), 0u);
  EXPECT_EQ(ring->RangeIndex(399), 2u);
  EXPECT_EQ(ring->RangeIndex(400), 3u);
  EXPECT_EQ(ring->RangeIndex(~uint64_t{0}), 3u);
  EXPECT_EQ(ring->RangeIndex(0), 3u);
  EXPECT_EQ(ring->RangeIndex(99), 3u);

  EXPECT_EQ(ring->PreferenceList(150, 3), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ring->PreferenceList(250, 2), (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(ring->PreferenceList(50, 3), (std::vector<std::string>{"c", "a", "b"}));
  EXPECT_EQ(ring->PreferenceList(50, 10), (std::vector<std::string>{"c", "a", "b"}));
  EXPECT_EQ(ring->PreferenceList(50, 0), std::vector<std::string>{});
  EXPECT_EQ(ring->RangesReplicatedBy("b", 1), std::vector<size_t>{1});
  EXPECT_EQ(ring->RangesReplicatedBy("b", 2), (std::vector<size_t>{0, 1}));
  EXPECT_EQ(ring->RangesReplicatedBy("z", 2), std::vector<size_t>{});
  EXPECT_DOUBLE_EQ(ring->PrimaryShare("b"), 100 * 0x1p-64);
  EXPECT_DOUBLE_EQ(ring->PrimaryShare("a"), 200 * 0x1p-64);
  EXPECT_DOUBLE_EQ(ring->PrimaryShare("c"), 1 - 300 * 0x1p-64);
}

TEST(RingTest, OneTokenOwnsTheWholeRing) {
  absl::StatusOr<Ring> ring = Ring::Create(Spec(kS1), {{42, "a"}}, {{"a", ""}, {"b", ""}});
  ASSERT_TRUE(ring.ok()) << ring.status();
  ASSERT_EQ(ring->ranges().size(), 1u);
  EXPECT_TRUE(ring->ranges()[0].IsWholeRing());
  EXPECT_EQ(ring->RangeIndex(0), 0u);
  EXPECT_EQ(ring->PreferenceList(7, 3), std::vector<std::string>{"a"});  // b owns no token
  EXPECT_EQ(ring->PrimaryShare("a"), 1.0);
  EXPECT_EQ(ring->PrimaryShare("b"), 0.0);

  absl::StatusOr<Ring> one_partition = Ring::Create(Spec(kS3, 1), {{0, "b"}}, {{"b", ""}});
  ASSERT_TRUE(one_partition.ok()) << one_partition.status();
  EXPECT_EQ(one_partition->ranges(), (std::vector<KeyRange>{KeyRange{0, 0}}));
  EXPECT_EQ(one_partition->RangeIndex(~uint64_t{0}), 0u);
  EXPECT_EQ(one_partition->PrimaryShare("b"), 1.0);
}

TEST(RingTest, PartitionsTakeTheOrderOfTheTokenOwningTheirStart) {
  // Strategy 2, Q = 4. Partition starts: 0, 2^62, 2^63, 3*2^62.
  const uint64_t quarter = uint64_t{1} << 62;
  absl::StatusOr<Ring> ring =
      Ring::Create(Spec(kS2, 4), {{quarter, "b"}, {quarter + 10, "c"}, {3 * quarter - 1, "a"}},
                   {{"a", ""}, {"b", ""}, {"c", ""}});
  ASSERT_TRUE(ring.ok()) << ring.status();
  ASSERT_EQ(ring->ranges().size(), 4u);
  EXPECT_EQ(ring->ranges()[3], (KeyRange{3 * quarter, 0}));
  // Partition 0 starts before every token: the last token (a) owns it.
  EXPECT_EQ(ring->PreferenceList(0, 3), (std::vector<std::string>{"a", "b", "c"}));
  // Partition 1 starts exactly at b's token.
  EXPECT_EQ(ring->PreferenceList(quarter + 5, 3), (std::vector<std::string>{"b", "c", "a"}));
  // Partition 2 starts after c's token and before a's: c owns it.
  EXPECT_EQ(ring->PreferenceList(2 * quarter, 3), (std::vector<std::string>{"c", "a", "b"}));
  EXPECT_EQ(ring->PreferenceList(~uint64_t{0}, 1), std::vector<std::string>{"a"});
  // Whole partitions, so shares are multiples of a quarter.
  EXPECT_EQ(ring->PrimaryShare("a"), 0.5);
  EXPECT_EQ(ring->PrimaryShare("b"), 0.25);
  EXPECT_EQ(ring->PrimaryShare("c"), 0.25);
}

TEST(RingTest, ZoneAwareOrderTakesOneNodePerZoneEachRound) {
  // Walk from partition 0: a(z1) b(z1) c(z1) d(z2) e(z3) f(z2).
  const std::vector<RingNode> nodes = {{"a", "z1"}, {"b", "z1"}, {"c", "z1"},
                                       {"d", "z2"}, {"e", "z3"}, {"f", "z2"}};
  const std::vector<std::string> owners = {"a", "b", "c", "d", "e", "f"};
  absl::StatusOr<Ring> plain = Ring::Create(Spec(kS3, 8), PartitionTokens(8, owners), nodes);
  absl::StatusOr<Ring> zoned =
      Ring::Create(Spec(kS3, 8, /*zone_aware=*/true), PartitionTokens(8, owners), nodes);
  ASSERT_TRUE(plain.ok() && zoned.ok());
  EXPECT_EQ(plain->PreferenceList(0, 6), (std::vector<std::string>{"a", "b", "c", "d", "e", "f"}));
  EXPECT_EQ(zoned->PreferenceList(0, 6), (std::vector<std::string>{"a", "d", "e", "b", "f", "c"}));
}

TEST(RingTest, CopiesShareTheComputedState) {
  absl::StatusOr<Ring> ring = Ring::Create(Spec(kS3, 16), PartitionTokens(16, {"a", "b", "c"}),
                                           {{"a", ""}, {"b", ""}, {"c", ""}});
  ASSERT_TRUE(ring.ok());
  const Ring copy = *ring;
  EXPECT_EQ(&copy.ranges(), &ring->ranges());
  EXPECT_EQ(copy.PreferenceList(99, 3), ring->PreferenceList(99, 3));
}

// ---- The precomputed orders against a direct walk, on random rings ----

struct RingCase {
  RingSpec spec;
  std::vector<RingToken> tokens;
  std::vector<RingNode> nodes;
};

// Small random rings with few nodes and zones, so repeats, wraps and ties are common.
RingCase RandomCase(Random& rng) {
  RingCase c;
  c.spec.strategy = static_cast<PartitionStrategy>(1 + rng.Uniform(3));
  c.spec.partitions = uint32_t{1} << rng.Uniform(7);
  c.spec.zone_aware = rng.Chance(0.5);
  const int node_count = static_cast<int>(rng.Between(1, 10));
  const int zone_count = static_cast<int>(rng.Between(1, 4));
  for (int i = 0; i < node_count; ++i) {
    c.nodes.push_back({"n" + std::to_string(i), "z" + std::to_string(rng.Uniform(zone_count))});
  }
  // Some nodes own nothing.
  const int owners = static_cast<int>(rng.Between(1, node_count));
  if (c.spec.strategy == PartitionStrategy::kEqualPartitions) {
    for (uint32_t i = 0; i < c.spec.partitions; ++i) {
      c.tokens.push_back({PartitionStart(c.spec.partitions, i), c.nodes[rng.Uniform(owners)].id});
    }
  } else {
    std::set<uint64_t> used;
    const int token_count = static_cast<int>(rng.Between(1, 40));
    for (int i = 0; i < token_count; ++i) {
      // Tokens at, or next to, partition starts exercise the "owning token" boundary.
      uint64_t position = rng.Next();
      if (rng.Chance(0.4)) {
        position = PartitionStart(c.spec.partitions,
                                  static_cast<uint32_t>(rng.Uniform(c.spec.partitions))) +
                   static_cast<uint64_t>(rng.Between(-1, 1));
      }
      if (used.insert(position).second) {
        c.tokens.push_back({position, c.nodes[rng.Uniform(owners)].id});
      }
    }
  }
  return c;
}

// The preference order exactly as specified: walk the tokens clockwise from the range's
// start token keeping first occurrences, then (zone-aware) rounds that take the earliest
// remaining node whose zone is unused in the round.
std::vector<uint32_t> NaiveOrder(const Ring& ring, size_t range_index) {
  const std::vector<RingToken>& tokens = ring.tokens();
  const KeyRange& range = ring.ranges()[range_index];
  const size_t n = tokens.size();
  size_t start = n - 1;
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i].position <= range.start) start = i;
  }
  std::vector<uint32_t> walk;
  for (size_t k = 0; k < n; ++k) {
    const std::string& id = tokens[(start + k) % n].node;
    uint32_t index = 0;
    while (ring.nodes()[index].id != id) ++index;
    if (std::find(walk.begin(), walk.end(), index) == walk.end()) walk.push_back(index);
  }
  if (!ring.spec().zone_aware) return walk;
  std::vector<uint32_t> result;
  std::set<std::string> used;
  while (!walk.empty()) {
    auto it = std::find_if(walk.begin(), walk.end(),
                           [&](uint32_t v) { return used.count(ring.nodes()[v].zone) == 0; });
    if (it == walk.end()) {
      used.clear();  // every zone left has had its turn: a new round
      continue;
    }
    used.insert(ring.nodes()[*it].zone);
    result.push_back(*it);
    walk.erase(it);
  }
  return result;
}

TEST(RingTest, RangesCoverTheRingExactlyOnce) {
  Random rng(0x52494e47);
  for (int iteration = 0; iteration < 300; ++iteration) {
    const RingCase c = RandomCase(rng);
    absl::StatusOr<Ring> ring = Ring::Create(c.spec, c.tokens, c.nodes);
    ASSERT_TRUE(ring.ok()) << ring.status();
    const std::vector<KeyRange>& ranges = ring->ranges();
    ASSERT_FALSE(ranges.empty());
    for (size_t i = 0; i < ranges.size(); ++i) {
      EXPECT_EQ(ranges[i].end, ranges[(i + 1) % ranges.size()].start);  // contiguous, wrapping
      if (i > 0) {
        EXPECT_LT(ranges[i - 1].start, ranges[i].start);
      }
      EXPECT_EQ(ring->RangeIndex(ranges[i].start), i);
      EXPECT_EQ(ring->RangeIndex(ranges[i].end - 1), i);
    }
    std::vector<uint64_t> probes = {0, ~uint64_t{0}};
    for (int k = 0; k < 50; ++k) probes.push_back(rng.Next());
    for (const KeyRange& r : ranges) {
      probes.push_back(r.start - 1);
      probes.push_back(r.start + 1);
    }
    for (uint64_t position : probes) {
      const size_t index = ring->RangeIndex(position);
      ASSERT_LT(index, ranges.size());
      EXPECT_TRUE(ranges[index].Contains(position));
      EXPECT_EQ(std::count_if(ranges.begin(), ranges.end(),
                              [&](const KeyRange& r) { return r.Contains(position); }),
                1);
    }
  }
}

TEST(RingTest, PreferenceOrderMatchesANaiveWalk) {
  Random rng(0x4e41495645);
  for (int iteration = 0; iteration < 5000; ++iteration) {
    const RingCase c = RandomCase(rng);
    absl::StatusOr<Ring> ring = Ring::Create(c.spec, c.tokens, c.nodes);
    ASSERT_TRUE(ring.ok()) << ring.status();
    std::set<std::string> owning;
    for (const RingToken& t : c.tokens) owning.insert(t.node);

    std::vector<std::vector<uint32_t>> naive;
    for (size_t r = 0; r < ring->ranges().size(); ++r) {
      naive.push_back(NaiveOrder(*ring, r));
      ASSERT_EQ(ring->PreferenceOrder(r), naive.back())
          << "iteration " << iteration << " strategy " << static_cast<int>(c.spec.strategy)
          << " range " << r;
      EXPECT_EQ(naive.back().size(), owning.size());
    }
    EXPECT_TRUE(ring->PreferenceOrder(ring->ranges().size()).empty());

    for (int k = 0; k < 20; ++k) {
      const uint64_t position = rng.Next();
      const size_t n = rng.Uniform(12);
      size_t r = 0;
      while (!ring->ranges()[r].Contains(position)) ++r;
      std::vector<std::string> expected;
      for (size_t i = 0; i < std::min(n, naive[r].size()); ++i) {
        expected.push_back(ring->nodes()[naive[r][i]].id);
      }
      EXPECT_EQ(ring->PreferenceList(position, n), expected);
    }

    const size_t n = 1 + rng.Uniform(4);
    const std::vector<double> shares = ring->ReplicaShares(n);
    const std::vector<double> primary = ring->ReplicaShares(1);
    for (uint32_t v = 0; v < ring->nodes().size(); ++v) {
      std::vector<size_t> expected;
      long double share = 0;
      long double primary_share = 0;
      for (size_t r = 0; r < naive.size(); ++r) {
        const auto end =
            naive[r].begin() + static_cast<std::ptrdiff_t>(std::min(n, naive[r].size()));
        const long double width = ring->ranges().size() == 1
                                      ? 0x1p64L
                                      : static_cast<long double>(ring->ranges()[r].Width());
        if (std::find(naive[r].begin(), end, v) != end) {
          expected.push_back(r);
          share += width;
        }
        if (naive[r][0] == v) primary_share += width;
      }
      const std::string& id = ring->nodes()[v].id;
      EXPECT_EQ(ring->RangesReplicatedBy(id, n), expected);
      EXPECT_NEAR(shares[v], static_cast<double>(share * 0x1p-64L), 1e-12);
      EXPECT_NEAR(ring->PrimaryShare(id), static_cast<double>(primary_share * 0x1p-64L), 1e-12);
      EXPECT_EQ(primary[v], ring->PrimaryShare(id));
    }
  }
}

TEST(RingTest, PreferenceListsAreDistinctNodes) {
  Random rng(0x44495354);
  for (int iteration = 0; iteration < 200; ++iteration) {
    const RingCase c = RandomCase(rng);
    absl::StatusOr<Ring> ring = Ring::Create(c.spec, c.tokens, c.nodes);
    ASSERT_TRUE(ring.ok()) << ring.status();
    std::set<std::string> owning;
    for (const RingToken& t : c.tokens) owning.insert(t.node);
    for (int k = 0; k < 20; ++k) {
      const size_t n = rng.Uniform(12);
      const std::vector<std::string> list = ring->PreferenceList(rng.Next(), n);
      EXPECT_EQ(list.size(), std::min(n, owning.size()));
      EXPECT_EQ(std::set<std::string>(list.begin(), list.end()).size(), list.size());
      for (const std::string& id : list) EXPECT_EQ(owning.count(id), 1u);
    }
  }
}

TEST(RingTest, ZoneAwareListsSpanZones) {
  Random rng(0x5a4f4e45);
  for (int iteration = 0; iteration < 200; ++iteration) {
    RingCase c = RandomCase(rng);
    c.spec.zone_aware = true;
    absl::StatusOr<Ring> ring = Ring::Create(c.spec, c.tokens, c.nodes);
    ASSERT_TRUE(ring.ok()) << ring.status();
    std::set<std::string> zones;
    for (const RingToken& t : c.tokens) zones.insert(ring->FindNode(t.node)->zone);
    for (size_t r = 0; r < ring->ranges().size(); ++r) {
      const std::vector<uint32_t>& order = ring->PreferenceOrder(r);
      std::set<std::string> seen;
      for (size_t k = 0; k < order.size(); ++k) {
        seen.insert(ring->nodes()[order[k]].zone);
        ASSERT_EQ(seen.size(), std::min(k + 1, zones.size()))
            << "range " << r << ": the first " << k + 1 << " nodes do not span the zones";
      }
    }
  }
}

}  // namespace
}  // namespace dynamo::core
