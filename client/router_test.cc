#include "router.h"

#include "dynamo/base/strings.h"
#include "gtest/gtest.h"

namespace dynamo::client::internal {
namespace {

// Four equal partitions owned n1..n4 in order: a key in partition p has the
// preference order n(p+1), n(p+2), ... wrapping.
Topology FourNodes() {
  v1::TopologyResponse r;
  r.set_ring_version(3);
  r.set_strategy(3);
  r.set_partitions(4);
  r.set_replicas(3);
  for (uint32_t i = 0; i < 4; ++i) {
    v1::RingToken* t = r.add_tokens();
    t->set_token(core::PartitionStart(4, i));
    t->set_node_id(Cat("n", i + 1));
    v1::NodeAddress* a = r.add_nodes();
    a->set_node_id(Cat("n", i + 1));
    a->set_address(Cat("h", i + 1, ":7000"));
    a->set_alive(true);
  }
  absl::StatusOr<Topology> t = TopologyFromResponse(r);
  EXPECT_TRUE(t.ok()) << t.status();
  return *t;
}

// A key whose preference list starts with node `first` (1-based).
std::string KeyOwnedBy(const Topology& t, int first) {
  for (int i = 0;; ++i) {
    const std::string key = Cat("key", i);
    if (t.PreferenceOrder(key)[0]->id == Cat("n", first)) return key;
  }
}

TEST(RouterTest, ClientDrivenStartsAtTheFirstNodeOfThePreferenceList) {
  const Topology t = FourNodes();
  HealthTracker health(1000);
  for (int first = 1; first <= 4; ++first) {
    const std::string key = KeyOwnedBy(t, first);
    std::vector<std::string> want;
    for (int i = 0; i < 4; ++i) want.push_back(Cat("h", (first - 1 + i) % 4 + 1, ":7000"));
    EXPECT_EQ(PlanClientDriven(t, key, health, 0, 0), want) << key;
  }
}

TEST(RouterTest, ClientDrivenSkipsNodesThatFailedOrAreDown) {
  Topology t = FourNodes();
  const std::string key = KeyOwnedBy(t, 2);  // order n2 n3 n4 n1
  HealthTracker health(1000);
  health.MarkFailed("h2:7000", 100);
  EXPECT_EQ(PlanClientDriven(t, key, health, 500, 0),
            (std::vector<std::string>{"h3:7000", "h4:7000", "h1:7000", "h2:7000"}));
  // The topology says n3 is down too: the first healthy node is n4.
  for (Topology::Node& n : t.nodes) {
    if (n.id == "n3") n.alive = false;
  }
  EXPECT_EQ(PlanClientDriven(t, key, health, 500, 0),
            (std::vector<std::string>{"h4:7000", "h1:7000", "h2:7000", "h3:7000"}));
  // The failure mark expires: n2 is tried first again.
  EXPECT_EQ(PlanClientDriven(t, key, health, 1100, 0)[0], "h2:7000");
  health.MarkFailed("h2:7000", 1100);
  health.MarkSucceeded("h2:7000");
  EXPECT_EQ(PlanClientDriven(t, key, health, 1200, 0)[0], "h2:7000");
}

TEST(RouterTest, ClientDrivenRotatesAmongTheKeysHealthyReplicas) {
  Topology t = FourNodes();  // N = 3
  const std::string key = KeyOwnedBy(t, 2);  // order n2 n3 n4 n1: replicas n2 n3 n4
  HealthTracker health(1000);
  using Plan = std::vector<std::string>;
  EXPECT_EQ(PlanClientDriven(t, key, health, 0, 1), (Plan{"h3:7000", "h4:7000", "h2:7000", "h1:7000"}));
  EXPECT_EQ(PlanClientDriven(t, key, health, 0, 2), (Plan{"h4:7000", "h2:7000", "h3:7000", "h1:7000"}));
  EXPECT_EQ(PlanClientDriven(t, key, health, 0, 3), PlanClientDriven(t, key, health, 0, 0));
  // Every rotation starts at a replica: n1, not a replica of the key, is never first.
  for (uint64_t r = 0; r < 6; ++r) EXPECT_NE(PlanClientDriven(t, key, health, 0, r)[0], "h1:7000");
  // A failed replica is left out of the rotation and tried last.
  health.MarkFailed("h3:7000", 0);
  EXPECT_EQ(PlanClientDriven(t, key, health, 10, 1), (Plan{"h4:7000", "h2:7000", "h1:7000", "h3:7000"}));
  // With every replica down the healthy non-replica comes first.
  for (Topology::Node& n : t.nodes) {
    if (n.id == "n2" || n.id == "n4") n.alive = false;
  }
  EXPECT_EQ(PlanClientDriven(t, key, health, 10, 7), (Plan{"h1:7000", "h2:7000", "h3:7000", "h4:7000"}));
}

TEST(RouterTest, ClientDrivenWithEveryNodeDownStillTriesThemInRingOrder) {
  const Topology t = FourNodes();
  const std::string key = KeyOwnedBy(t, 4);
  HealthTracker health(1000);
  for (int i = 1; i <= 4; ++i) health.MarkFailed(Cat("h", i, ":7000"), 0);
  EXPECT_EQ(PlanClientDriven(t, key, health, 10, 0),
            (std::vector<std::string>{"h4:7000", "h1:7000", "h2:7000", "h3:7000"}));
}

TEST(RouterTest, RoundRobinRotatesAndPutsFailedNodesLast) {
  const std::vector<std::string> a = {"a", "b", "c"};
  HealthTracker health(1000);
  EXPECT_EQ(PlanRoundRobin(a, 0, health, 0), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(PlanRoundRobin(a, 1, health, 0), (std::vector<std::string>{"b", "c", "a"}));
  EXPECT_EQ(PlanRoundRobin(a, 5, health, 0), (std::vector<std::string>{"c", "a", "b"}));
  health.MarkFailed("b", 0);
  EXPECT_EQ(PlanRoundRobin(a, 1, health, 10), (std::vector<std::string>{"c", "a", "b"}));
  EXPECT_TRUE(PlanRoundRobin({}, 3, health, 0).empty());
}

TEST(RouterTest, KnownAddressesAreSeedsThenRingNodesWithoutDuplicates) {
  const Topology t = FourNodes();
  EXPECT_EQ(KnownAddresses({"h3:7000", "seed:1", ""}, &t),
            (std::vector<std::string>{"h3:7000", "seed:1", "h1:7000", "h2:7000", "h4:7000"}));
  EXPECT_EQ(KnownAddresses({"x", "x"}, nullptr), (std::vector<std::string>{"x"}));
}

TEST(RouterTest, HealthTrackerIsBounded) {
  HealthTracker health(1000);
  for (size_t i = 0; i < HealthTracker::kAddressesMax + 100; ++i) {
    health.MarkFailed(Cat("n", i), static_cast<int64_t>(i));
    ASSERT_LE(health.size(), HealthTracker::kAddressesMax);
  }
  // The newest marks are kept.
  EXPECT_FALSE(health.Healthy(Cat("n", HealthTracker::kAddressesMax + 99), 0));
}

}  // namespace
}  // namespace dynamo::client::internal
