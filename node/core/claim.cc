#include "dynamo/core/claim.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <string_view>
#include <tuple>
#include <unordered_set>
#include <utility>

#include "absl/strings/str_format.h"
#include "dynamo/core/hash.h"

namespace dynamo::core {

namespace {

constexpr uint32_t kNoMember = std::numeric_limits<uint32_t>::max();
// A fresh 64-bit token collides with probability < 2^-48; a handful of redraws is plenty.
constexpr int kRedrawsMax = 64;
// Bounds on the swap repair of strategy 3, so a pathological ring cannot stall the claimant:
// rounds over the ring, and candidate swaps looked at in all (some 20 ms of work).
constexpr int kRepairRoundsMax = 4;
constexpr uint64_t kRepairEvaluationsMax = 1ull << 22;

std::optional<uint32_t> MemberIndex(const std::vector<ClaimMember>& sorted_members,
                                    std::string_view id) {
  auto it =
      std::lower_bound(sorted_members.begin(), sorted_members.end(), id,
                       [](const ClaimMember& member, std::string_view v) { return member.id < v; });
  if (it == sorted_members.end() || it->id != id) return std::nullopt;
  return static_cast<uint32_t>(it - sorted_members.begin());
}

// Validates the members and returns them sorted by id, so that the result does not depend on
// the order they were listed in.
absl::StatusOr<std::vector<ClaimMember>> SortedMembers(const std::vector<ClaimMember>& members) {
  if (members.size() > kRingNodesMax) {
    return absl::InvalidArgumentError(
        absl::StrFormat("claim for %d members; at most %d allowed", members.size(), kRingNodesMax));
  }
  std::vector<ClaimMember> sorted = members;
  for (const ClaimMember& member : sorted) {
    if (member.id.empty()) return absl::InvalidArgumentError("claim member id must not be empty");
    if (member.id.size() > kRingNodeIdBytesMax || member.zone.size() > kRingNodeIdBytesMax) {
      return absl::InvalidArgumentError(
          absl::StrFormat("claim member \"%s\": id and zone are limited to %d bytes",
                          member.id.substr(0, 32), kRingNodeIdBytesMax));
    }
    if (member.vnodes > kRingTokensPerNodeMax) {
      return absl::InvalidArgumentError(
          absl::StrFormat("claim member \"%s\" asks for %d vnodes; at most %d allowed", member.id,
                          member.vnodes, kRingTokensPerNodeMax));
    }
  }
  std::sort(sorted.begin(), sorted.end(),
            [](const ClaimMember& a, const ClaimMember& b) { return a.id < b.id; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i].id == sorted[i - 1].id) {
      return absl::InvalidArgumentError(
          absl::StrFormat("claim member \"%s\" is listed twice", sorted[i].id));
    }
  }
  return sorted;
}

// Strategies 1 and 2.
absl::StatusOr<std::vector<RingToken>> ClaimRandomTokens(const std::vector<ClaimMember>& members,
                                                         const std::vector<RingToken>& current,
                                                         Random& rng) {
  uint64_t total = 0;
  for (const ClaimMember& member : members) total += member.vnodes;
  if (total > kRingTokensMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "claim asks for %d tokens in all; at most %d allowed", total, kRingTokensMax));
  }
  std::vector<std::vector<uint64_t>> kept(members.size());
  for (const RingToken& token : current) {
    const std::optional<uint32_t> m = MemberIndex(members, token.node);
    if (m && members[*m].vnodes > 0) kept[*m].push_back(token.position);
  }
  std::unordered_set<uint64_t> used;
  used.reserve(total);
  for (size_t m = 0; m < members.size(); ++m) {
    std::vector<uint64_t>& positions = kept[m];
    if (positions.size() > members[m].vnodes) {
      // Keep a pseudo-random subset rather than, say, the lowest positions, so the tokens a
      // node keeps stay spread over the whole ring.
      std::sort(positions.begin(), positions.end(), [](uint64_t a, uint64_t b) {
        return std::make_pair(Mix64(a), a) < std::make_pair(Mix64(b), b);
      });
      positions.resize(members[m].vnodes);
    }
    used.insert(positions.begin(), positions.end());
  }
  for (size_t m = 0; m < members.size(); ++m) {
    while (kept[m].size() < members[m].vnodes) {
      int draws = 0;
      uint64_t position = rng.Next();
      while (!used.insert(position).second) {
        if (++draws == kRedrawsMax) {
          return absl::InternalError("claim: could not draw a free token position");
        }
        position = rng.Next();
      }
      kept[m].push_back(position);
    }
  }
  std::vector<RingToken> tokens;
  tokens.reserve(total);
  for (size_t m = 0; m < members.size(); ++m) {
    for (uint64_t position : kept[m]) tokens.push_back({position, members[m].id});
  }
  std::sort(tokens.begin(), tokens.end(),
            [](const RingToken& a, const RingToken& b) { return a.position < b.position; });
  return tokens;
}

// Working state of one strategy-3 claim: the owner of each partition as a member index.
// Lives for one Claim call; not thread-safe.
//
// Spacing is measured by Score(m, p): for every partition within `window_` (replicas - 1) of
// p owned by m, (window_ + 1 - distance)^2. 0 means m can own p without owning a nearby
// partition, so that any N consecutive partitions have distinct owners and each node's
// replica load matches its primary load. Closer repeats cost more: an adjacent repeat is
// worse than two at distance 2, which keeps neighbours distinct when spacing cannot be had.
//
// The window is replicas - 1 even with fewer than N owners (when every node holds every key
// and spacing cannot be had): the layout then is one from which later joins reach a
// well-spaced ring while moving only what they must; a window shrunk to the owner count
// gives tidier small rings but ones that need many extra moves to space out later.
class PartitionClaim {
 public:
  PartitionClaim(uint32_t partitions, uint32_t replicas, bool zone_aware,
                 const std::vector<ClaimMember>& members, std::vector<uint32_t> owner)
      : q_(partitions),
        window_(std::min(replicas - 1, partitions - 1)),
        members_(members),
        original_(owner),
        owner_(std::move(owner)),
        count_(members.size(), 0),
        target_(members.size(), 0) {
    for (uint32_t m : owner_) {
      if (m != kNoMember) ++count_[m];
    }
    std::vector<std::string_view> zones;
    for (const ClaimMember& member : members_) zones.push_back(member.zone);
    std::sort(zones.begin(), zones.end());
    zones.erase(std::unique(zones.begin(), zones.end()), zones.end());
    for (const ClaimMember& member : members_) {
      zone_.push_back(static_cast<uint32_t>(
          std::lower_bound(zones.begin(), zones.end(), member.zone) - zones.begin()));
    }
    // With a single zone every neighbour shares it; there is nothing to spread.
    zone_aware_ = zone_aware && zones.size() > 1;
  }

  // Owner of each partition afterwards; every partition is owned and count == target.
  std::vector<uint32_t> Run() {
    ComputeTargets();
    Release();
    ScheduledPass();
    // What the schedule could not place: first anywhere clean, then with the least crowding.
    uint32_t score_max = 0;
    for (uint32_t k = 1; k <= window_; ++k) score_max += 2 * (window_ + 1 - k) * (window_ + 1 - k);
    for (uint32_t limit = 0; Deficit() > 0; limit = std::min(score_max, std::max(1u, 2 * limit))) {
      GreedyPass(/*free_only=*/true, limit);
      GreedyPass(/*free_only=*/false, limit);
      if (limit == score_max) break;
    }
    RepairBySwaps();
    return owner_;
  }

 private:
  uint32_t Next(uint32_t p) const { return p + 1 == q_ ? 0 : p + 1; }
  uint32_t Prev(uint32_t p) const { return p == 0 ? q_ - 1 : p - 1; }

  uint32_t Score(uint32_t m, uint32_t p) const {
    uint32_t score = 0;
    uint32_t after = p;
    uint32_t before = p;
    for (uint32_t k = 1; k <= window_; ++k) {
      after = Next(after);
      before = Prev(before);
      const uint32_t weight = (window_ + 1 - k) * (window_ + 1 - k);
      if (owner_[after] == m) score += weight;
      if (owner_[before] == m) score += weight;
    }
    return score;
  }

  // Neighbours within the window that belong to other members of m's zone.
  uint32_t ZoneScore(uint32_t m, uint32_t p) const {
    if (!zone_aware_) return 0;
    uint32_t score = 0;
    uint32_t after = p;
    uint32_t before = p;
    for (uint32_t k = 1; k <= window_; ++k) {
      after = Next(after);
      before = Prev(before);
      for (uint32_t o : {owner_[after], owner_[before]}) {
        if (o != kNoMember && o != m && zone_[o] == zone_[m]) ++score;
      }
    }
    return score;
  }

  // A partition may be given away if it is orphaned or its owner holds more than its count.
  bool Available(uint32_t p) const {
    const uint32_t o = owner_[p];
    return o == kNoMember || count_[o] > target_[o];
  }

  void Assign(uint32_t p, uint32_t m) {
    if (owner_[p] != kNoMember) --count_[owner_[p]];
    owner_[p] = m;
    if (m != kNoMember) ++count_[m];
  }

  uint64_t Deficit() const {
    uint64_t deficit = 0;
    for (size_t m = 0; m < members_.size(); ++m) {
      if (count_[m] < target_[m]) deficit += target_[m] - count_[m];
    }
    return deficit;
  }

  // Largest-remainder shares of Q by weight.
  void ComputeTargets() {
    uint64_t total_weight = 0;
    for (const ClaimMember& member : members_) total_weight += member.vnodes;
    std::vector<uint64_t> remainder(members_.size());
    uint64_t given = 0;
    for (size_t m = 0; m < members_.size(); ++m) {
      const uint64_t share = uint64_t{q_} * members_[m].vnodes;
      target_[m] = static_cast<uint32_t>(share / total_weight);
      remainder[m] = share % total_weight;
      given += target_[m];
    }
    std::vector<uint32_t> order(members_.size());
    for (uint32_t m = 0; m < order.size(); ++m) order[m] = m;
    // Equal remainders go to members holding more now (fewer moves), then by id.
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      if (remainder[a] != remainder[b]) return remainder[a] > remainder[b];
      if (count_[a] != count_[b]) return count_[a] > count_[b];
      return a < b;
    });
    for (uint64_t i = 0; given + i < q_; ++i) ++target_[order[i]];
  }

  // Orphans the partitions of members that should own none, and, while a member has a
  // surplus, those of its partitions that follow closely on one it keeps: they would have to
  // move for spacing anyway.
  void Release() {
    for (uint32_t p = 0; p < q_; ++p) {
      const uint32_t o = owner_[p];
      if (o != kNoMember && target_[o] == 0) Assign(p, kNoMember);
    }
    for (uint32_t p = 0; p < q_; ++p) {
      const uint32_t o = owner_[p];
      if (o == kNoMember || count_[o] <= target_[o]) continue;
      uint32_t before = p;
      for (uint32_t k = 1; k <= window_; ++k) {
        before = Prev(before);
        if (owner_[before] == o) {
          Assign(p, kNoMember);
          break;
        }
      }
    }
  }

  // One walk round the ring in which every member short of its count takes partitions on a
  // schedule (Bresenham's: it is due at p while it has taken fewer than (p+1)/Q of its
  // deficit), only where it crowds none of its own. A member that joins S equal ones thus
  // takes about every (S+1)-th partition, from each old member in turn.
  void ScheduledPass() {
    std::vector<uint32_t> takers;
    std::vector<int64_t> deficit(members_.size(), 0);
    std::vector<int64_t> taken(members_.size(), 0);
    for (uint32_t m = 0; m < members_.size(); ++m) {
      if (count_[m] < target_[m]) {
        deficit[m] = target_[m] - count_[m];
        takers.push_back(m);
      }
    }
    const int64_t q = q_;
    for (uint32_t p = 0; p < q_ && !takers.empty(); ++p) {
      if (!Available(p)) continue;
      uint32_t best = kNoMember;
      int64_t best_lag = 0;
      uint32_t best_zone = 0;
      for (uint32_t m : takers) {
        if (count_[m] >= target_[m]) continue;
        const int64_t lag = (int64_t{p} + 1) * deficit[m] - taken[m] * q;  // in units of 1/Q
        if (lag <= 0 || Score(m, p) > 0) continue;
        const uint32_t zone = ZoneScore(m, p);
        // With zones, a member may fall up to one partition behind its schedule to find a
        // partition whose neighbours are in other zones.
        if (zone > 0 && lag < q) continue;
        if (best == kNoMember || zone < best_zone || (zone == best_zone && lag > best_lag)) {
          best = m;
          best_lag = lag;
          best_zone = zone;
        }
      }
      if (best == kNoMember) continue;
      Assign(p, best);
      ++taken[best];
    }
  }

  // Gives available partitions (orphaned ones only, if free_only) to members short of their
  // count whose Score there is at most score_limit: least crowded first, then least zone
  // crowding, then the member furthest from its count.
  void GreedyPass(bool free_only, uint32_t score_limit) {
    std::vector<uint32_t> takers;
    for (uint32_t m = 0; m < members_.size(); ++m) {
      if (count_[m] < target_[m]) takers.push_back(m);
    }
    for (uint32_t p = 0; p < q_ && !takers.empty(); ++p) {
      if (!Available(p) || (free_only && owner_[p] != kNoMember)) continue;
      uint32_t best = kNoMember;
      std::tuple<uint32_t, uint32_t, int64_t> best_key;
      for (uint32_t m : takers) {
        if (count_[m] >= target_[m]) continue;
        const uint32_t score = Score(m, p);
        if (score > score_limit) continue;
        const std::tuple<uint32_t, uint32_t, int64_t> key(score, ZoneScore(m, p),
                                                          -int64_t{target_[m] - count_[m]});
        if (best == kNoMember || key < best_key) {
          best = m;
          best_key = key;
        }
      }
      if (best != kNoMember) Assign(p, best);
    }
  }

  // Swaps the owners of two partitions where that lowers the total Score without moving
  // more partitions than before. Such a swap involves a partition that moves anyway: either
  // both move, or one moves and the swap hands the other back to its original owner. So the
  // candidates for p are the moving partitions and, if p moves, the partitions its original
  // owner keeps.
  void RepairBySwaps() {
    auto moved = [&](uint32_t p, uint32_t m) { return m != original_[p] ? 1 : 0; };
    uint64_t evaluations = 0;
    std::vector<uint32_t> moving;
    std::vector<std::vector<uint32_t>> kept(members_.size());
    for (int round = 0; round < kRepairRoundsMax; ++round) {
      // Rebuilt each round; within a round every candidate is judged on the live owners.
      moving.clear();
      for (std::vector<uint32_t>& partitions : kept) partitions.clear();
      for (uint32_t p = 0; p < q_; ++p) {
        if (owner_[p] != original_[p]) {
          moving.push_back(p);
        } else {
          kept[owner_[p]].push_back(p);
        }
      }
      bool improved = false;
      for (uint32_t p = 0; p < q_; ++p) {
        const uint32_t m = owner_[p];
        const uint32_t score_p = Score(m, p);
        if (score_p == 0) continue;
        uint32_t best_q = kNoMember;
        int64_t best_gain = 0;
        auto consider = [&](uint32_t q) {
          const uint32_t m2 = owner_[q];
          if (m2 == m || moved(p, m2) + moved(q, m) > moved(p, m) + moved(q, m2)) return;
          const int64_t before = int64_t{score_p} + Score(m2, q);
          owner_[p] = m2;
          owner_[q] = m;
          const int64_t after = int64_t{Score(m2, p)} + Score(m, q);
          owner_[p] = m;
          owner_[q] = m2;
          if (before - after > best_gain) {
            best_gain = before - after;
            best_q = q;
          }
        };
        const uint32_t origin = original_[p];
        const size_t count =
            moving.size() + (m != origin && origin != kNoMember ? kept[origin].size() : 0);
        if ((evaluations += count) > kRepairEvaluationsMax) return;
        for (uint32_t q : moving) consider(q);
        if (m != origin && origin != kNoMember) {
          for (uint32_t q : kept[origin]) consider(q);
        }
        if (best_q != kNoMember) {
          std::swap(owner_[p], owner_[best_q]);
          improved = true;
        }
      }
      if (!improved) return;
    }
  }

  const uint32_t q_;
  const uint32_t window_;
  bool zone_aware_ = false;
  const std::vector<ClaimMember>& members_;
  const std::vector<uint32_t> original_;
  std::vector<uint32_t> owner_;
  std::vector<uint32_t> count_;
  std::vector<uint32_t> target_;
  std::vector<uint32_t> zone_;  // zone index of each member
};

// Strategy 3.
absl::StatusOr<std::vector<RingToken>> ClaimEqualPartitions(const RingSpec& spec, uint32_t replicas,
                                            const std::vector<ClaimMember>& members,
                                            const std::vector<RingToken>& current) {
  uint64_t total_weight = 0;
  for (const ClaimMember& member : members) total_weight += member.vnodes;
  if (total_weight == 0) return std::vector<RingToken>{};
  const uint32_t q = spec.partitions;
  // A partition's current owner is whoever owns the token covering its start.
  std::vector<uint32_t> owner(q, kNoMember);
  if (!current.empty()) {
    for (uint32_t i = 0; i < q; ++i) {
      const uint64_t start = PartitionStart(q, i);
      auto it = std::upper_bound(
          current.begin(), current.end(), start,
          [](uint64_t position, const RingToken& token) { return position < token.position; });
      const RingToken& covering = it == current.begin() ? current.back() : *(it - 1);
      owner[i] = MemberIndex(members, covering.node).value_or(kNoMember);
    }
  }
  PartitionClaim claim(q, replicas, spec.zone_aware, members, std::move(owner));
  const std::vector<uint32_t> result = claim.Run();
  std::vector<RingToken> tokens;
  tokens.reserve(q);
  for (uint32_t i = 0; i < q; ++i) {
    // Unreachable: the last pass of Run accepts any taker for any available partition.
    if (result[i] == kNoMember) {
      return absl::InternalError(absl::StrFormat("claim left partition %d without an owner", i));
    }
    tokens.push_back({PartitionStart(q, i), members[result[i]].id});
  }
  return tokens;
}

}  // namespace

absl::StatusOr<std::vector<RingToken>> Claim(const RingSpec& spec, uint32_t replicas,
                                             const std::vector<RingToken>& current,
                                             const std::vector<ClaimMember>& members, Random& rng) {
  if (absl::Status status = ValidateRingSpec(spec); !status.ok()) return status;
  if (replicas == 0 || replicas > kClaimReplicasMax) {
    return absl::InvalidArgumentError(
        absl::StrFormat("claim: replicas must be in [1, %d], got %d", kClaimReplicasMax, replicas));
  }
  absl::StatusOr<std::vector<ClaimMember>> sorted = SortedMembers(members);
  if (!sorted.ok()) return sorted.status();
  if (current.size() > kRingTokensMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "claim: current ring has %d tokens; at most %d allowed", current.size(), kRingTokensMax));
  }
  std::vector<RingToken> sorted_current = current;
  std::sort(sorted_current.begin(), sorted_current.end(),
            [](const RingToken& a, const RingToken& b) { return a.position < b.position; });
  for (size_t i = 1; i < sorted_current.size(); ++i) {
    if (sorted_current[i].position == sorted_current[i - 1].position) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "claim: current ring has two tokens at position 0x%016x", sorted_current[i].position));
    }
  }
  // Refuse what Ring::Create would refuse, before doing the work: the preference orders of
  // (ranges) x (owning nodes) entries must fit kRingPreferenceEntriesMax.
  uint64_t owners = 0;
  uint64_t tokens = 0;
  for (const ClaimMember& member : *sorted) {
    owners += member.vnodes > 0 ? 1 : 0;
    tokens += member.vnodes;
  }
  const uint64_t q = spec.partitions;
  const uint64_t ranges = spec.strategy == PartitionStrategy::kRandomTokens ? tokens
                          : spec.strategy == PartitionStrategy::kEqualPartitions
                              ? q
                              : std::min(q, tokens);
  if (spec.strategy == PartitionStrategy::kEqualPartitions) owners = std::min(owners, q);
  if (ranges * owners > kRingPreferenceEntriesMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "claim: a ring of %d ranges over %d nodes would exceed %d preference entries; use fewer "
        "partitions or tokens",
        ranges, owners, kRingPreferenceEntriesMax));
  }
  if (spec.strategy == PartitionStrategy::kEqualPartitions) {
    return ClaimEqualPartitions(spec, replicas, *sorted, sorted_current);
  }
  return ClaimRandomTokens(*sorted, sorted_current, rng);
}

}  // namespace dynamo::core
