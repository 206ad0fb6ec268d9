// ring_moves: how much data moves when one node joins a cluster of S nodes,
// from core::Claim (the token assignment the claimant gossips), for S up to
// 64. The ideal is 1/(S+1) of the keys; the target is at most 1.1/(S+1).
//
// Two measures per step S -> S+1, both as fractions of the key space:
//   primary  the part of the ring whose first owner changes;
//   replicas the replica copies (N per key) that must be sent to a node that
//            did not hold them, over all N copies: the data a join transfers.
// Keys are spread uniformly over the ring (hashing), so a fraction of ring
// width is a fraction of keys.
//
// usage: ring_moves [--partitions=256] [--replicas=3] [--max-nodes=64] [--strategy=3]
//                   [--vnodes=64] [--seed=1]

#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "dynamo/core/claim.h"
#include "dynamo/core/random.h"
#include "dynamo/core/ring.h"
#include "flags.h"

namespace {

using dynamo::core::ClaimMember;
using dynamo::core::Ring;
using dynamo::core::RingNode;
using dynamo::core::RingSpec;
using dynamo::core::RingToken;
using dynamo::bench::Flag;

std::string Id(int i) {
  char id[16];
  std::snprintf(id, sizeof id, "node-%03d", i);
  return id;
}

Ring MakeRing(const RingSpec& spec, const std::vector<RingToken>& tokens, int nodes) {
  std::vector<RingNode> ring_nodes;
  for (int i = 0; i < nodes; ++i) ring_nodes.push_back({Id(i), ""});
  absl::StatusOr<Ring> ring = Ring::Create(spec, tokens, ring_nodes);
  if (!ring.ok()) {
    std::fprintf(stderr, "ring: %s\n", std::string(ring.status().message()).c_str());
    std::exit(1);
  }
  return *ring;
}

// For every position where either ring changes range, the first-n lists.
struct Moves {
  double primary = 0;   // fraction of the ring whose first owner changed
  double replicas = 0;  // fraction of the N copies landing on a node that lacked them
};

Moves Compare(const Ring& before, const Ring& after, size_t n) {
  // Walk the union of range boundaries of both rings.
  std::vector<uint64_t> cuts;
  for (const auto& r : before.ranges()) cuts.push_back(r.start);
  for (const auto& r : after.ranges()) cuts.push_back(r.start);
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  Moves m;
  const double full = 18446744073709551616.0;
  for (size_t i = 0; i < cuts.size(); ++i) {
    const uint64_t start = cuts[i];
    const uint64_t end = cuts[(i + 1) % cuts.size()];
    // Unsigned subtraction wraps past 2^64: the last range's width comes out right.
    const double width = cuts.size() == 1 ? full : static_cast<double>(end - start);
    const std::vector<std::string> a = before.PreferenceList(start, n);
    const std::vector<std::string> b = after.PreferenceList(start, n);
    if (a.empty() || b.empty() || a[0] != b[0]) m.primary += width / full;
    const std::set<std::string> had(a.begin(), a.end());
    size_t fresh = 0;
    for (const std::string& node : b) fresh += had.contains(node) ? 0 : 1;
    m.replicas += width / full * static_cast<double>(fresh) / static_cast<double>(b.size());
  }
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  RingSpec spec;
  spec.strategy = static_cast<dynamo::core::PartitionStrategy>(Flag(argc, argv, "strategy", 3));
  spec.partitions = static_cast<uint32_t>(Flag(argc, argv, "partitions", 256));
  const uint32_t replicas = static_cast<uint32_t>(Flag(argc, argv, "replicas", 3));
  const int max_nodes = static_cast<int>(Flag(argc, argv, "max-nodes", 64));
  const uint32_t vnodes = static_cast<uint32_t>(
      Flag(argc, argv, "vnodes", spec.strategy == dynamo::core::PartitionStrategy::kEqualPartitions
                                     ? 1
                                     : 64));
  dynamo::core::Random rng(static_cast<uint64_t>(Flag(argc, argv, "seed", 1)));

  std::printf("ring_moves: strategy %u, Q=%u partitions, N=%u, vnodes %u; one node joins S nodes\n",
              static_cast<unsigned>(spec.strategy), spec.partitions, replicas, vnodes);
  std::printf("%5s %10s %10s %10s %10s %10s  %s\n", "S", "ideal", "bound", "primary",
              "replicas", "ratio", "verdict");
  std::vector<RingToken> tokens;
  std::vector<ClaimMember> members;
  members.push_back({Id(0), "", vnodes});
  absl::StatusOr<std::vector<RingToken>> first =
      dynamo::core::Claim(spec, replicas, tokens, members, rng);
  if (!first.ok()) {
    std::fprintf(stderr, "claim: %s\n", std::string(first.status().message()).c_str());
    return 1;
  }
  tokens = *first;
  int over = 0;
  double worst = 0;
  for (int s = 1; s < max_nodes; ++s) {
    const Ring before = MakeRing(spec, tokens, s);
    members.push_back({Id(s), "", vnodes});
    absl::StatusOr<std::vector<RingToken>> next =
        dynamo::core::Claim(spec, replicas, tokens, members, rng);
    if (!next.ok()) {
      std::fprintf(stderr, "claim: %s\n", std::string(next.status().message()).c_str());
      return 1;
    }
    const Ring after = MakeRing(spec, *next, s + 1);
    const Moves m = Compare(before, after, replicas);
    const double ideal = 1.0 / (s + 1);
    const double moved = std::max(m.primary, m.replicas);
    const double ratio = moved / ideal;
    worst = std::max(worst, ratio);
    const bool ok = moved <= 1.1 * ideal + 1e-12;
    if (!ok) ++over;
    std::printf("%5d %10.4f %10.4f %10.4f %10.4f %10.3f  %s\n", s, ideal, 1.1 * ideal, m.primary,
                m.replicas, ratio, ok ? "ok" : "OVER");
    tokens = *std::move(next);
  }
  std::printf("steps over 1.1/(S+1): %d of %d; worst moved/ideal %.3f\n", over, max_nodes - 1,
              worst);
  return 0;
}
