#pragma once

// Anti-entropy Merkle trees (Dynamo paper, section 4.7): one tree per key range a node replicates,
// kept in memory and updated as every write lands, so that two replicas find the keys they
// disagree on by exchanging a few hashes instead of scanning or shipping the range.
//
// Choosing a shape. A tree has branching^depth leaves, each an equal slice of the range's ring
// positions. Costs, for a range holding K keys of about B bytes each:
//   - memory: 8 bytes per node (a hash), plus 8 bytes per leaf for its key count and one byte
//     per inner node for its dirty flag: 16 bytes per leaf and 9 per inner node (there are
//     leaves/(branching-1) of those). Multiply by the number of ranges the node replicates
//     (virtual nodes x N).
//   - bytes per exchange, for one differing key: depth round trips, each a request of one index
//     (8 bytes, plus 8 for the level) and a reply of branching hashes (8 * branching bytes), then
//     both sides' key lists for the differing leaf, 2 * (K / leaves) * (B + 8) bytes.
// More leaves cost memory but shrink the key lists; a wider branching shortens the round trips
// but makes each reply larger. Aim for a few to a few dozen keys per leaf:
//   16^3 =  4,096 leaves:  ~70 KiB per range; right up to ~100,000 keys per range.
//   16^4 = 65,536 leaves: ~1.1 MiB per range; right for ~1,000,000 keys per range (one
//                          differing key of 16-byte keys costs about 1 KB on the wire).
// When most leaves differ (a replica that was away for long, or a new one) the exchange costs
// more than streaming the range; the caller should compare differing_leaves().size() with
// leaf_count() and fall back to a range transfer.
//
// Both sides of a comparison must use the same range and shape: the exchange must carry them and
// the answering side must refuse a mismatch before calling Children().

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dynamo/core/key_range.h"

namespace dynamo::core {

inline constexpr uint32_t kMerkleBranchingMin = 2;
inline constexpr uint32_t kMerkleBranchingMax = 256;
inline constexpr uint32_t kMerkleLeavesMax = 1u << 20;
// Bounds one request, and so one reply: 1,024 indices x 256 children x 8 bytes = 2 MiB, under
// gRPC's default 4 MiB message limit.
inline constexpr uint32_t kMerkleIndicesPerRequestMax = 1024;

struct MerkleShape {
  uint32_t branching = 16;
  uint32_t depth = 3;  // Levels below the root; leaves are at level `depth`.

  friend bool operator==(const MerkleShape&, const MerkleShape&) = default;
};

// OK when branching is in [kMerkleBranchingMin, kMerkleBranchingMax], depth >= 1 and
// branching^depth <= kMerkleLeavesMax; InvalidArgument otherwise. Shapes can come from a
// configuration file or a peer, so they are checked, never trusted.
[[nodiscard]] absl::Status ValidateMerkleShape(const MerkleShape& shape);

// The hash of one stored key and its object (all siblings and their version clocks, in the
// canonical serialization every replica produces for equal objects). Never 0, which callers use
// for "absent". Fixed forever: replicas of different versions must agree on it.
uint64_t ItemHash(std::string_view key, std::string_view object_bytes);

// An incremental Merkle tree over one key range. A leaf's hash is the XOR of the item hashes of
// the keys whose ring position falls in its slice, so a write updates it in O(1) whatever the
// order of writes; inner nodes combine their children in order and are recomputed lazily, only
// along paths a write dirtied, when read. Equal key sets give equal trees; the tree of an empty
// range has every hash 0.
//
// Not thread-safe, even for const methods: reads recompute cached inner hashes. Owned by the
// node's loop like the rest of the core.
class MerkleTree {
 public:
  // InvalidArgument if the shape is invalid (see ValidateMerkleShape).
  static absl::StatusOr<MerkleTree> Create(KeyRange range, MerkleShape shape);

  const KeyRange& range() const { return range_; }
  const MerkleShape& shape() const { return shape_; }
  uint32_t leaf_count() const { return leaf_count_; }

  // One key's contribution changes: old_item_hash is 0 if the key was absent, new_item_hash is 0
  // if it is removed. InvalidArgument if the position is outside range(); FailedPrecondition if
  // a key is removed from a leaf that holds none (the caller's bookkeeping is wrong). On error
  // the tree is unchanged.
  [[nodiscard]] absl::Status Update(uint64_t key_position, uint64_t old_item_hash,
                                    uint64_t new_item_hash);

  // The leaf a ring position maps to; InvalidArgument if the position is outside range().
  absl::StatusOr<uint32_t> LeafOf(uint64_t key_position) const;

  // The contiguous positions that map to a leaf: a node scans this range of its storage to list a
  // leaf's keys. InvalidArgument if leaf >= leaf_count(). NotFound if the leaf holds no position,
  // which happens only when the range is narrower than leaf_count() positions: such a leaf never
  // holds a key, so the caller lists none.
  absl::StatusOr<KeyRange> LeafRange(uint32_t leaf) const;

  uint64_t Root() const;

  // Hashes of the children of the given nodes at `level` (0 is the root level, with one node;
  // the children of level depth-1 are the leaves), branching hashes per index, in the order
  // given. This answers a peer's request, so everything is checked: InvalidArgument for a level
  // >= depth, an index >= branching^level, or more than kMerkleIndicesPerRequestMax indices.
  absl::StatusOr<std::vector<uint64_t>> Children(uint32_t level,
                                                 const std::vector<uint32_t>& indices) const;

  uint64_t key_count() const { return key_count_; }
  // 0 for a leaf index outside the tree (no such leaf holds keys).
  uint64_t leaf_key_count(uint32_t leaf) const;

  // Back to the empty tree, e.g. when the range's data is dropped after a handoff.
  void Clear();

 private:
  MerkleTree(KeyRange range, MerkleShape shape, uint32_t leaf_count);

  uint32_t LeafOfOffset(uint64_t offset) const;
  void MarkAncestorsDirty(uint32_t leaf);
  // The hash of node `index` at `level`, recomputing it first if dirty.
  uint64_t NodeHash(uint32_t level, uint32_t index) const;

  KeyRange range_;
  MerkleShape shape_;
  uint32_t leaf_count_;
  // level_offset_[l] is where level l starts in nodes_; level_offset_[depth] is the first leaf.
  std::vector<uint32_t> level_offset_;
  // Every node, level by level: inner nodes are a cache of their children, hence mutable.
  mutable std::vector<uint64_t> nodes_;
  // One flag per inner node. Invariant: a dirty node's ancestors are all dirty, so marking can
  // stop at the first dirty ancestor and a write costs O(1) amortized.
  mutable std::vector<uint8_t> dirty_;
  std::vector<uint64_t> leaf_key_counts_;
  uint64_t key_count_ = 0;
};

// The asking side of one comparison of a local tree with a peer's tree of the same range and
// shape, as a state machine: it emits requests (a level and node indices), is fed the peer's
// answers (the children hashes, as MerkleTree::Children returns them), compares them with its
// own tree, descends only into differing subtrees, and ends with the differing leaves. The first
// request asks for the children of the root, so identical trees cost one round trip.
//
// Holds a pointer to the local tree, which must outlive it. The tree may change between steps
// (writes keep landing): each reply is compared with the tree as it is then, and what a change
// hides or reveals is caught by the next comparison. Replies must be matched to requests by the
// caller (a request id in the message): a stale reply of the right size cannot be told apart.
// Not thread-safe.
class MerkleComparison {
 public:
  struct Request {
    uint32_t level;
    std::vector<uint32_t> indices;

    friend bool operator==(const Request&, const Request&) = default;
  };

  // max_indices_per_request is clamped to [1, kMerkleIndicesPerRequestMax]; a frontier wider
  // than that is asked for in several requests.
  explicit MerkleComparison(const MerkleTree& local,
                            uint32_t max_indices_per_request = kMerkleIndicesPerRequestMax);

  // The request to send; the same one again until OnReply is called, so that a lost message can
  // be resent. nullopt once done or failed.
  std::optional<Request> NextRequest();

  // The peer's answer to the pending request. A reply of the wrong size fails the comparison
  // (InvalidArgument); a reply with no pending request, or after the end, is refused
  // (FailedPrecondition) and changes nothing.
  [[nodiscard]] absl::Status OnReply(const std::vector<uint64_t>& child_hashes);

  // True once the comparison ended successfully; differing_leaves() is then final.
  bool done() const { return state_ == State::kDone; }
  bool failed() const { return state_ == State::kFailed; }
  // Why the comparison failed; OK otherwise.
  const absl::Status& status() const { return status_; }
  // Sorted ascending. Empty until done().
  const std::vector<uint32_t>& differing_leaves() const { return differing_leaves_; }
  // Requests answered so far, for metrics.
  uint64_t replies_received() const { return replies_received_; }

 private:
  enum class State { kRunning, kDone, kFailed };

  absl::Status Fail(absl::Status status);

  const MerkleTree* local_;
  uint32_t max_indices_per_request_;
  State state_ = State::kRunning;
  absl::Status status_;
  // The nodes at level_ known to differ, whose children are being asked for.
  uint32_t level_ = 0;
  std::vector<uint32_t> frontier_;
  size_t frontier_next_ = 0;  // First frontier entry not yet put in a request.
  std::optional<Request> pending_;
  // The differing children found so far at level_ + 1.
  std::vector<uint32_t> next_frontier_;
  std::vector<uint32_t> differing_leaves_;
  uint64_t replies_received_ = 0;
};

struct KeyItemHash {
  std::string key;
  uint64_t item_hash;
};

// The keys to repair in one leaf, from both sides' listings (in any order): keys listed on one
// side only, or with different item hashes. Sorted, each once. A key listed more than once on a
// side (malformed input) differs unless the other side lists the same item hashes for it.
std::vector<std::string> DifferingKeys(std::vector<KeyItemHash> mine,
                                       std::vector<KeyItemHash> theirs);

}  // namespace dynamo::core
