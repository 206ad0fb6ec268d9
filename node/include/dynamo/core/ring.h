#pragma once

// The consistent-hashing ring (Dynamo paper, sections 4.2, 4.3 and 6.2): which
// nodes store a key, in what order, and which fallbacks a sloppy quorum uses.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dynamo/core/key_range.h"

namespace dynamo::core {

// Bounds. A ring is built from gossiped state, so every size is checked.
inline constexpr uint32_t kRingPartitionsMax = 1u << 16;
inline constexpr uint32_t kRingNodesMax = 4096;
inline constexpr uint32_t kRingTokensPerNodeMax = 4096;  // strategies 1 and 2
inline constexpr uint32_t kRingTokensMax = 1u << 16;     // so ranges <= 2^16 for every strategy
inline constexpr size_t kRingNodeIdBytesMax = 256;       // node ids and zone names
// Preference orders are precomputed: (distinct orders) x (nodes owning tokens) entries, 4 bytes
// each. 2^24 admits 4096 partitions over 4096 nodes or 65536 partitions over 256 nodes.
inline constexpr uint64_t kRingPreferenceEntriesMax = 1ull << 24;

// The partitioning strategies of the paper's section 6.2.
enum class PartitionStrategy : uint32_t {
  kRandomTokens = 1,                 // T random tokens per node; ranges are token intervals
  kRandomTokensEqualPartitions = 2,  // T random tokens per node; Q equal partitions
  kEqualPartitions = 3,              // Q equal partitions, about Q/S per node (the default)
};

// A token: `node` owns [position, the next token's position).
struct RingToken {
  uint64_t position = 0;
  std::string node;

  friend bool operator==(const RingToken&, const RingToken&) = default;
};

struct RingNode {
  std::string id;
  std::string zone;  // failure domain (rack, availability zone); "" is a zone like any other

  friend bool operator==(const RingNode&, const RingNode&) = default;
};

struct RingSpec {
  PartitionStrategy strategy = PartitionStrategy::kEqualPartitions;
  uint32_t partitions = 256;  // Q for strategies 2 and 3: a power of two; unused by strategy 1
  bool zone_aware = false;

  friend bool operator==(const RingSpec&, const RingSpec&) = default;
};

// OK when the strategy is known and, for strategies 2 and 3, partitions is a power of two in
// [1, kRingPartitionsMax].
absl::Status ValidateRingSpec(const RingSpec& spec);

// Start of partition `index` of `partitions` (a power of two): index * 2^64 / partitions.
uint64_t PartitionStart(uint32_t partitions, uint32_t index);

// A ring: tokens, the nodes that may own them, and every range's preference order, computed
// once at Create. Immutable; copies share the computed state, so a Ring is cheap to copy and
// its const methods are safe to call from many threads at once.
class Ring {
 public:
  // An empty ring: no tokens, no ranges, empty preference lists.
  Ring();

  // Validates and builds a ring. Tokens and nodes may come in any order. Nodes without tokens
  // are allowed (they own nothing and appear in no preference order); no tokens at all gives an
  // empty ring. Strategy 3 needs exactly one token at each PartitionStart. InvalidArgument names
  // the first problem found.
  static absl::StatusOr<Ring> Create(RingSpec spec, std::vector<RingToken> tokens,
                                     std::vector<RingNode> nodes);

  const RingSpec& spec() const;
  const std::vector<RingToken>& tokens() const;  // sorted by position
  const std::vector<RingNode>& nodes() const;    // sorted by id
  bool empty() const;

  // Placement units, sorted by start, covering the ring exactly once: the Q partitions
  // [i*2^64/Q, (i+1)*2^64/Q) for strategies 2 and 3, the token intervals for strategy 1. The
  // last range wraps past 2^64 - 1; a ring of one range has [x, x), the whole ring. A
  // preference order is constant within a range. Empty for an empty ring.
  const std::vector<KeyRange>& ranges() const;

  // Index of the range containing `position`, O(log n). 0 for an empty ring (which has none).
  size_t RangeIndex(uint64_t position) const;

  // Every distinct node owning tokens, as indices into nodes(), in preference order for the
  // range: the tokens walked clockwise from the range's start (from the token that starts it
  // for strategy 1, the token owning the partition's start for strategies 2 and 3), keeping
  // each node's first occurrence. With zone_aware, reordered in rounds: each round takes the
  // remaining nodes that come first in their zone, in walk order, so the first k entries span
  // min(k, zones) zones. The first N entries are the replicas, the rest the sloppy-quorum
  // fallbacks in order. Empty for an index out of range.
  const std::vector<uint32_t>& PreferenceOrder(size_t range_index) const;

  // Ids of the first min(n, owning nodes) entries of the order at `position`.
  std::vector<std::string> PreferenceList(uint64_t position, size_t n) const;

  // Ranges (ascending indices) where `node` is among the first n of the preference order.
  std::vector<size_t> RangesReplicatedBy(std::string_view node, size_t n) const;

  // Fraction of the ring (0..1) for which `node` is first in the preference order.
  double PrimaryShare(std::string_view node) const;

  // For each node (indexed as nodes()), the fraction of the ring (0..1) for which it is among
  // the first n of the preference order: the share of keys it stores with N = n.
  std::vector<double> ReplicaShares(size_t n) const;

  const RingNode* FindNode(std::string_view id) const;
  std::optional<uint32_t> NodeIndex(std::string_view id) const;

 private:
  struct Rep;
  explicit Ring(std::shared_ptr<const Rep> rep);

  std::shared_ptr<const Rep> rep_;
};

}  // namespace dynamo::core
