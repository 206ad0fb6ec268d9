// The paper's comparison of partitioning strategies (Dynamo, section 6.2, figure 8): how
// evenly each spreads keys over the nodes, for clusters of 3 to 64 nodes.
//
// Setup, chosen so the strategies hold comparable amounts of membership state:
//   strategy 1: T = 64 random tokens per node; ranges are the token intervals.
//   strategy 2: T = 64 random tokens per node; Q = 1024 equal partitions.
//   strategy 3: Q = 1024 equal partitions, equal weights.
// Each cluster grows one node at a time, each step a Claim from the previous ring (N = 3),
// as a real cluster grows. Load is the expected number of keys a node is first in the
// preference list for (its primary share of the hash space), reported as max / mean over the
// nodes (1.0 is perfect); the same from 100,000 sampled keys; and the share of keys a node
// stores with N = 3 replicas.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "dynamo/core/claim.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/random.h"
#include "dynamo/core/ring.h"
#include "gtest/gtest.h"

namespace dynamo::core {
namespace {

constexpr uint32_t kTokensPerNode = 64;
constexpr uint32_t kPartitions = 1024;
constexpr uint32_t kReplicas = 3;
constexpr int kSampleKeys = 100000;
constexpr int kNodesMin = 3;
constexpr int kNodesMax = 64;
constexpr int kStrategies = 3;

struct Imbalance {
  double exact = 0;    // max / mean of primary shares of the hash space
  double sampled = 0;  // max / mean of primary keys among the sample
  double replica = 0;  // max / mean of shares stored with N = kReplicas
};

double MaxOverMean(const std::vector<double>& loads) {
  const double sum = std::accumulate(loads.begin(), loads.end(), 0.0);
  return *std::max_element(loads.begin(), loads.end()) / (sum / static_cast<double>(loads.size()));
}

Imbalance Measure(const Ring& ring, const std::vector<uint64_t>& keys) {
  Imbalance imbalance;
  imbalance.exact = MaxOverMean(ring.ReplicaShares(1));
  imbalance.replica = MaxOverMean(ring.ReplicaShares(kReplicas));
  std::vector<double> sampled(ring.nodes().size(), 0);
  for (uint64_t position : keys) ++sampled[ring.PreferenceOrder(ring.RangeIndex(position))[0]];
  imbalance.sampled = MaxOverMean(sampled);
  return imbalance;
}

TEST(RingBalanceTest, EqualPartitionsAreTheMostEven) {
  std::vector<uint64_t> keys;
  keys.reserve(kSampleKeys);
  for (int i = 0; i < kSampleKeys; ++i) keys.push_back(KeyPosition("user:" + std::to_string(i)));

  const PartitionStrategy strategies[kStrategies] = {
      PartitionStrategy::kRandomTokens, PartitionStrategy::kRandomTokensEqualPartitions,
      PartitionStrategy::kEqualPartitions};
  // results[strategy][nodes]
  std::vector<std::vector<Imbalance>> results(kStrategies, std::vector<Imbalance>(kNodesMax + 1));
  for (int k = 0; k < kStrategies; ++k) {
    RingSpec spec;
    spec.strategy = strategies[k];
    spec.partitions = kPartitions;
    const uint32_t vnodes =
        strategies[k] == PartitionStrategy::kEqualPartitions ? 1 : kTokensPerNode;
    Random rng(0x42414c + static_cast<uint64_t>(k));
    std::vector<ClaimMember> members;
    std::vector<RingNode> nodes;
    std::vector<RingToken> tokens;
    for (int s = 1; s <= kNodesMax; ++s) {
      const std::string id = "node-" + std::to_string(s);
      members.push_back({id, "", vnodes});
      nodes.push_back({id, ""});
      absl::StatusOr<std::vector<RingToken>> next = Claim(spec, kReplicas, tokens, members, rng);
      ASSERT_TRUE(next.ok()) << next.status();
      tokens = *std::move(next);
      if (s < kNodesMin) continue;
      absl::StatusOr<Ring> ring = Ring::Create(spec, tokens, nodes);
      ASSERT_TRUE(ring.ok()) << ring.status();
      results[k][s] = Measure(*ring, keys);
    }
  }

  std::printf(
      "\nLoad per node, max/mean (1.000 = perfect). S1: T=%u random tokens/node; S2: T=%u, "
      "Q=%u; S3: Q=%u equal partitions.\n"
      "primary = share of the hash space a node coordinates (exact), and of %d sampled keys;\n"
      "stored = share of keys a node stores with N=%u replicas (exact).\n",
      kTokensPerNode, kTokensPerNode, kPartitions, kPartitions, kSampleKeys, kReplicas);
  std::printf("%4s | %-17s | %-17s | %-17s | %-23s\n", "", "S1 primary", "S2 primary", "S3 primary",
              "stored, N=3");
  std::printf("%4s | %8s %8s | %8s %8s | %8s %8s | %7s %7s %7s\n", "S", "exact", "sampled", "exact",
              "sampled", "exact", "sampled", "S1", "S2", "S3");
  double sums[kStrategies] = {0, 0, 0};
  for (int s = kNodesMin; s <= kNodesMax; ++s) {
    const Imbalance& a = results[0][s];
    const Imbalance& b = results[1][s];
    const Imbalance& c = results[2][s];
    std::printf("%4d | %8.3f %8.3f | %8.3f %8.3f | %8.3f %8.3f | %7.3f %7.3f %7.3f\n", s, a.exact,
                a.sampled, b.exact, b.sampled, c.exact, c.sampled, a.replica, b.replica, c.replica);
    for (int k = 0; k < kStrategies; ++k) sums[k] += results[k][s].exact;

    EXPECT_LT(c.exact, a.exact) << "S = " << s;
    EXPECT_LT(c.exact, b.exact) << "S = " << s;
    // Strategy 3 is as even as whole partitions allow: ceil(Q/S) / (Q/S).
    const double best = static_cast<double>((kPartitions + s - 1) / s) * s / kPartitions;
    EXPECT_NEAR(c.exact, best, 1e-9) << "S = " << s;
    // With claim spacing, storing N = 3 replicas is about as even as coordinating (a couple
    // of crowded windows remain for a few joins after S = N). Up to S = N every node stores
    // every key under any strategy.
    EXPECT_LE(c.replica, c.exact + 0.005) << "S = " << s;
    if (s > static_cast<int>(kReplicas)) {
      EXPECT_LT(c.replica, a.replica) << "S = " << s;
      EXPECT_LT(c.replica, b.replica) << "S = " << s;
    }
  }
  const double count = kNodesMax - kNodesMin + 1;
  std::printf("mean | %8.3f %8s | %8.3f %8s | %8.3f\n", sums[0] / count, "", sums[1] / count, "",
              sums[2] / count);
}

}  // namespace
}  // namespace dynamo::core
