#include "dynamo/client/topology.h"

#include "dynamo/base/strings.h"
#include "dynamo/core/claim.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/random.h"
#include "gtest/gtest.h"

namespace dynamo::client {
namespace {

// A topology answer as a node gives it, for a ring claimed by the nodes' own
// claim function. Returns the ring built directly, for comparison.
core::Ring MakeTopology(const core::RingSpec& spec, int nodes, uint32_t replicas, uint64_t seed,
                        v1::TopologyResponse* out) {
  std::vector<core::ClaimMember> members;
  std::vector<core::RingNode> ring_nodes;
  for (int i = 1; i <= nodes; ++i) {
    const std::string id = Cat("n", i);
    const std::string zone = Cat("z", i % 3);
    members.push_back({id, zone, 8});
    ring_nodes.push_back({id, zone});
  }
  core::Random rng(seed);
  absl::StatusOr<std::vector<core::RingToken>> tokens =
      core::Claim(spec, replicas, {}, members, rng);
  EXPECT_TRUE(tokens.ok()) << tokens.status();
  absl::StatusOr<core::Ring> ring = core::Ring::Create(spec, *tokens, ring_nodes);
  EXPECT_TRUE(ring.ok()) << ring.status();

  out->set_ring_version(7);
  out->set_strategy(static_cast<uint32_t>(spec.strategy));
  out->set_partitions(spec.partitions);
  out->set_replicas(replicas);
  out->set_zone_aware(spec.zone_aware);
  // The answer lists tokens and nodes in whatever order: reverse them.
  for (auto it = tokens->rbegin(); it != tokens->rend(); ++it) {
    v1::RingToken* t = out->add_tokens();
    t->set_token(it->position);
    t->set_node_id(it->node);
  }
  for (int i = nodes; i >= 1; --i) {
    v1::NodeAddress* a = out->add_nodes();
    a->set_node_id(Cat("n", i));
    a->set_address(Cat("127.0.0.1:", 7000 + i));
    a->set_zone(Cat("z", i % 3));
    a->set_alive(i != 2);
  }
  return *ring;
}

void ExpectSamePlacement(const core::Ring& expected, const core::Ring& got, uint32_t n) {
  ASSERT_EQ(expected.tokens(), got.tokens());
  ASSERT_EQ(expected.nodes(), got.nodes());
  core::Random rng(99);
  for (int i = 0; i < 2000; ++i) {
    const std::string key = Cat("key-", rng.Next());
    const uint64_t pos = core::KeyPosition(key);
    ASSERT_EQ(expected.PreferenceList(pos, n + 2), got.PreferenceList(pos, n + 2)) << key;
  }
}

TEST(TopologyTest, RingMatchesTheNodesRingForEveryStrategy) {
  for (auto strategy : {core::PartitionStrategy::kEqualPartitions,
                        core::PartitionStrategy::kRandomTokensEqualPartitions,
                        core::PartitionStrategy::kRandomTokens}) {
    for (bool zone_aware : {false, true}) {
      core::RingSpec spec{strategy, 64, zone_aware};
      v1::TopologyResponse response;
      const core::Ring expected = MakeTopology(spec, 5, 3, 17, &response);
      absl::StatusOr<core::Ring> ring = RingFromTopology(response);
      ASSERT_TRUE(ring.ok()) << ring.status();
      EXPECT_EQ(ring->spec(), spec);
      ExpectSamePlacement(expected, *ring, 3);
    }
  }
}

TEST(TopologyTest, TopologyKeepsAddressesLivenessAndPreferenceOrder) {
  v1::TopologyResponse response;
  const core::Ring expected =
      MakeTopology({core::PartitionStrategy::kEqualPartitions, 16, false}, 4, 3, 5, &response);
  absl::StatusOr<Topology> t = TopologyFromResponse(response);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->ring_version, 7u);
  EXPECT_EQ(t->replicas, 3u);
  ASSERT_EQ(t->nodes.size(), 4u);
  EXPECT_EQ(t->nodes[0].id, "n1");  // sorted
  ASSERT_NE(t->FindNode("n2"), nullptr);
  EXPECT_EQ(t->FindNode("n2")->address, "127.0.0.1:7002");
  EXPECT_FALSE(t->FindNode("n2")->alive);
  EXPECT_TRUE(t->FindNode("n3")->alive);
  EXPECT_EQ(t->FindNode("n9"), nullptr);
  for (const char* key : {"a", "b", "user:42", "cart/17"}) {
    std::vector<std::string> ids;
    for (const Topology::Node* n : t->PreferenceOrder(key)) ids.push_back(n->id);
    EXPECT_EQ(ids, expected.PreferenceList(core::KeyPosition(key), 99)) << key;
  }
}

TEST(TopologyTest, NoTokensIsAnEmptyRing) {
  v1::TopologyResponse response;
  response.set_strategy(3);
  response.set_partitions(256);
  response.set_replicas(3);
  absl::StatusOr<Topology> t = TopologyFromResponse(response);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_TRUE(t->ring.empty());
  EXPECT_TRUE(t->PreferenceOrder("k").empty());
}

TEST(TopologyTest, MalformedTopologiesAreRefused) {
  v1::TopologyResponse good;
  MakeTopology({core::PartitionStrategy::kEqualPartitions, 16, false}, 3, 3, 1, &good);

  v1::TopologyResponse unknown_node = good;
  unknown_node.mutable_tokens(0)->set_node_id("ghost");
  v1::TopologyResponse duplicate_node = good;
  *duplicate_node.add_nodes() = good.nodes(0);
  v1::TopologyResponse bad_strategy = good;
  bad_strategy.set_strategy(9);
  v1::TopologyResponse misplaced_token = good;
  misplaced_token.mutable_tokens(0)->set_token(good.tokens(0).token() + 1);
  v1::TopologyResponse no_replicas = good;
  no_replicas.set_replicas(0);
  for (const v1::TopologyResponse* bad :
       {&unknown_node, &duplicate_node, &bad_strategy, &misplaced_token, &no_replicas}) {
    absl::StatusOr<Topology> t = TopologyFromResponse(*bad);
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
  }
}

}  // namespace
}  // namespace dynamo::client
