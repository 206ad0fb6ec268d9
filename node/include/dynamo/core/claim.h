#pragma once

// Token assignment ("claim"): the tokens a membership should own, moved as little as possible
// from the current ones. The claimant runs it when members join, leave or change weight, and
// gossips the result as the next ring.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dynamo/core/random.h"
#include "dynamo/core/ring.h"

namespace dynamo::core {

inline constexpr uint32_t kClaimReplicasMax = 64;

struct ClaimMember {
  std::string id;
  std::string zone;
  // Strategies 1 and 2: tokens to own. Strategy 3: weight; partitions are shared out in
  // proportion. 0 owns nothing. At most kRingTokensPerNodeMax.
  uint32_t vnodes = 0;
};

// Returns the tokens (sorted by position) for `members`, starting from `current` and moving
// as little as possible. Members not listed, and members with vnodes 0, lose all their
// tokens; no member with vnodes > 0 gives an empty ring. Deterministic for the same inputs
// and rng state; the order of `members` does not matter. A pure function: thread-compatible.
//
// Strategy 3: one token at each of the Q partition starts. Each member's partition count is
// its largest-remainder share of Q by weight (remainder ties go to the member holding more
// partitions now, then to the smaller id), so counts are within one of the exact share. A
// partition stays with its owner while the owner is within its count; only orphaned and
// surplus partitions move, so exactly Q - sum(min(held, count)) partitions change owner. The
// movers are chosen so that no node owns two partitions within `replicas` - 1 of each other
// where that can be had (the Riak claim spacing), spread evenly round the ring, and, with
// spec.zone_aware, so that neighbouring partitions belong to different zones where possible.
// Spacing never costs extra moves: when a leaver's partitions sit where every member short
// of its count is a near neighbour (leaving a round-robin ring, say), some windows stay
// crowded until later joins space them out. The current owner of a partition is the owner
// of the token covering its start, so a change of Q or of strategy is claimed like any
// other change.
//
// Strategies 1 and 2: each member ends with exactly vnodes tokens. Members keep their current
// tokens (when they have too many, the ones kept are chosen by a hash of the position) and new
// tokens are drawn from rng, redrawn on a collision.
absl::StatusOr<std::vector<RingToken>> Claim(const RingSpec& spec, uint32_t replicas,
                                             const std::vector<RingToken>& current,
                                             const std::vector<ClaimMember>& members, Random& rng);

}  // namespace dynamo::core
