#include "dynamo/core/merkle.h"

#include <algorithm>
#include <cstddef>
#include <string_view>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "dynamo/core/hash.h"

namespace dynamo::core {
namespace {

// A range can hold 2^64 positions, one more than uint64_t counts, and slicing it needs
// position x leaf products up to 2^84.
__extension__ typedef unsigned __int128 Uint128;

// Seeds that keep item hashes apart from ring positions (KeyPosition) of the same key.
constexpr uint64_t kItemKeySeed = 0x6974656d2d6b6579ULL;    // "item-key"
constexpr uint64_t kItemValueSeed = 0x6974656d2d76616cULL;  // "item-val"

// Exact number of positions in the range: KeyRange::Width() reports 2^64 - 1 for the whole ring.
Uint128 PositionCount(const KeyRange& range) {
  if (range.IsWholeRing()) return Uint128{1} << 64;
  return range.end - range.start;  // Modulo 2^64, which is right for wrapping ranges too.
}

// An inner node's hash. A subtree without keys hashes to 0, so the empty tree is all zeros and
// an empty range is recognisable from its root alone.
uint64_t CombineChildren(const uint64_t* children, uint32_t count) {
  uint64_t acc = 0;
  bool any = false;
  for (uint32_t i = 0; i < count; ++i) {
    any = any || children[i] != 0;
    acc = HashCombine(acc, children[i]);
  }
  return any ? acc : 0;
}

}  // namespace

absl::Status ValidateMerkleShape(const MerkleShape& shape) {
  if (shape.branching < kMerkleBranchingMin || shape.branching > kMerkleBranchingMax) {
    return absl::InvalidArgumentError(absl::StrCat("Merkle branching ", shape.branching,
                                                   " is outside [", kMerkleBranchingMin, ", ",
                                                   kMerkleBranchingMax, "]"));
  }
  if (shape.depth < 1) {
    return absl::InvalidArgumentError("Merkle depth must be at least 1");
  }
  // Stops as soon as the bound is passed, so a huge depth costs no more than a small one.
  uint64_t leaves = 1;
  for (uint32_t level = 0; level < shape.depth; ++level) {
    leaves *= shape.branching;
    if (leaves > kMerkleLeavesMax) {
      return absl::InvalidArgumentError(absl::StrCat("Merkle shape ", shape.branching, "^",
                                                     shape.depth, " has more than ",
                                                     kMerkleLeavesMax, " leaves"));
    }
  }
  return absl::OkStatus();
}

uint64_t ItemHash(std::string_view key, std::string_view object_bytes) {
  // Hash64 folds in the length, so ("ab", "c") and ("a", "bc") hash apart.
  const uint64_t h = HashCombine(Hash64(key, kItemKeySeed), Hash64(object_bytes, kItemValueSeed));
  return h == 0 ? 1 : h;  // 0 means "absent" to MerkleTree::Update.
}

// --- MerkleTree ---

absl::StatusOr<MerkleTree> MerkleTree::Create(KeyRange range, MerkleShape shape) {
  if (absl::Status status = ValidateMerkleShape(shape); !status.ok()) return status;
  uint32_t leaves = 1;
  for (uint32_t level = 0; level < shape.depth; ++level) leaves *= shape.branching;
  return MerkleTree(range, shape, leaves);
}

MerkleTree::MerkleTree(KeyRange range, MerkleShape shape, uint32_t leaf_count)
    : range_(range), shape_(shape), leaf_count_(leaf_count) {
  level_offset_.reserve(shape.depth + 1);
  uint32_t offset = 0;
  uint32_t level_size = 1;
  for (uint32_t level = 0; level <= shape.depth; ++level) {
    level_offset_.push_back(offset);
    offset += level_size;
    level_size *= shape.branching;  // Past the leaves this overflows harmlessly: never read.
  }
  nodes_.assign(offset, 0);
  dirty_.assign(level_offset_[shape.depth], 0);
  leaf_key_counts_.assign(leaf_count, 0);
}

uint32_t MerkleTree::LeafOfOffset(uint64_t offset) const {
  // floor(offset * leaves / positions): equal slices, sizes differing by at most one position.
  return static_cast<uint32_t>(Uint128{offset} * leaf_count_ / PositionCount(range_));
}

absl::StatusOr<uint32_t> MerkleTree::LeafOf(uint64_t key_position) const {
  if (!range_.Contains(key_position)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "position ", key_position, " is outside the tree's range ", range_.ToString()));
  }
  return LeafOfOffset(range_.Offset(key_position));
}

absl::StatusOr<KeyRange> MerkleTree::LeafRange(uint32_t leaf) const {
  if (leaf >= leaf_count_) {
    return absl::InvalidArgumentError(
        absl::StrCat("leaf ", leaf, " is outside a tree of ", leaf_count_, " leaves"));
  }
  // The offsets o with floor(o * L / W) == leaf are [ceil(leaf * W / L), ceil((leaf+1) * W / L)).
  const Uint128 positions = PositionCount(range_);
  const auto ceil_slice = [&](uint64_t i) {
    return (Uint128{i} * positions + leaf_count_ - 1) / leaf_count_;
  };
  const Uint128 first = ceil_slice(leaf);
  const Uint128 end = ceil_slice(uint64_t{leaf} + 1);
  if (first == end) {
    // An empty KeyRange cannot be written ({p, p} is the whole ring), hence an error.
    return absl::NotFoundError(
        absl::StrCat("leaf ", leaf, " of range ", range_.ToString(), " holds no positions"));
  }
  // end - first < 2^64 since there are at least two leaves, so start != end below: the truncated
  // sums are the leaf's bounds on the ring, wrapping where the range wraps.
  return KeyRange{range_.start + static_cast<uint64_t>(first),
                  range_.start + static_cast<uint64_t>(end)};
}

absl::Status MerkleTree::Update(uint64_t key_position, uint64_t old_item_hash,
                                uint64_t new_item_hash) {
  absl::StatusOr<uint32_t> leaf = LeafOf(key_position);
  if (!leaf.ok()) return leaf.status();
  const bool added = old_item_hash == 0 && new_item_hash != 0;
  const bool removed = old_item_hash != 0 && new_item_hash == 0;
  if (removed && leaf_key_counts_[*leaf] == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("removing a key from leaf ", *leaf, " of range ", range_.ToString(),
                     ", which holds no keys: the caller's old item hash is wrong"));
  }
  if (added) {
    ++leaf_key_counts_[*leaf];
    ++key_count_;
  } else if (removed) {
    --leaf_key_counts_[*leaf];
    --key_count_;
  }
  if (old_item_hash != new_item_hash) {
    nodes_[level_offset_[shape_.depth] + *leaf] ^= old_item_hash ^ new_item_hash;
    MarkAncestorsDirty(*leaf);
  }
  return absl::OkStatus();
}

void MerkleTree::MarkAncestorsDirty(uint32_t leaf) {
  uint32_t index = leaf;
  for (uint32_t level = shape_.depth; level-- > 0;) {
    index /= shape_.branching;
    uint8_t& dirty = dirty_[level_offset_[level] + index];
    if (dirty) return;  // By the invariant, every ancestor above is dirty already.
    dirty = 1;
  }
}

uint64_t MerkleTree::NodeHash(uint32_t level, uint32_t index) const {
  const uint32_t at = level_offset_[level] + index;
  if (level == shape_.depth || !dirty_[at]) return nodes_[at];
  const uint32_t first_child = index * shape_.branching;
  if (level + 1 < shape_.depth) {
    // Recursion depth is bounded by the tree depth (at most 20); only dirty paths are walked.
    for (uint32_t c = 0; c < shape_.branching; ++c) NodeHash(level + 1, first_child + c);
  }
  nodes_[at] = CombineChildren(&nodes_[level_offset_[level + 1] + first_child], shape_.branching);
  dirty_[at] = 0;
  return nodes_[at];
}

uint64_t MerkleTree::Root() const { return NodeHash(0, 0); }

absl::StatusOr<std::vector<uint64_t>> MerkleTree::Children(
    uint32_t level, const std::vector<uint32_t>& indices) const {
  if (level >= shape_.depth) {
    return absl::InvalidArgumentError(
        absl::StrCat("Merkle level ", level, " has no children: the tree has depth ", shape_.depth,
                     " (levels 0 to ", shape_.depth - 1, " have children)"));
  }
  if (indices.size() > kMerkleIndicesPerRequestMax) {
    return absl::InvalidArgumentError(absl::StrCat("Merkle request of ", indices.size(),
                                                   " indices exceeds the limit of ",
                                                   kMerkleIndicesPerRequestMax));
  }
  const uint32_t level_size = level_offset_[level + 1] - level_offset_[level];
  for (uint32_t index : indices) {
    if (index >= level_size) {
      return absl::InvalidArgumentError(absl::StrCat("Merkle index ", index, " is outside level ",
                                                     level, ", which has ", level_size, " nodes"));
    }
  }
  std::vector<uint64_t> hashes;
  hashes.reserve(indices.size() * shape_.branching);
  for (uint32_t index : indices) {
    for (uint32_t c = 0; c < shape_.branching; ++c) {
      hashes.push_back(NodeHash(level + 1, index * shape_.branching + c));
    }
  }
  return hashes;
}

uint64_t MerkleTree::leaf_key_count(uint32_t leaf) const {
  return leaf < leaf_count_ ? leaf_key_counts_[leaf] : 0;
}

void MerkleTree::Clear() {
  std::fill(nodes_.begin(), nodes_.end(), 0);
  std::fill(dirty_.begin(), dirty_.end(), 0);
  std::fill(leaf_key_counts_.begin(), leaf_key_counts_.end(), 0);
  key_count_ = 0;
}

// --- MerkleComparison ---

MerkleComparison::MerkleComparison(const MerkleTree& local, uint32_t max_indices_per_request)
    : local_(&local),
      max_indices_per_request_(
          std::clamp<uint32_t>(max_indices_per_request, 1, kMerkleIndicesPerRequestMax)),
      frontier_{0} {}

std::optional<MerkleComparison::Request> MerkleComparison::NextRequest() {
  if (state_ != State::kRunning) return std::nullopt;
  if (!pending_) {
    // While running, some frontier entry is always left unrequested when nothing is pending:
    // OnReply moves to the next level or ends as soon as a level is exhausted.
    const size_t count =
        std::min<size_t>(max_indices_per_request_, frontier_.size() - frontier_next_);
    Request request{level_, {}};
    request.indices.assign(frontier_.begin() + frontier_next_,
                           frontier_.begin() + frontier_next_ + count);
    frontier_next_ += count;
    pending_ = std::move(request);
  }
  return pending_;
}

absl::Status MerkleComparison::OnReply(const std::vector<uint64_t>& child_hashes) {
  if (state_ != State::kRunning) {
    return absl::FailedPreconditionError("Merkle comparison has ended; reply ignored");
  }
  if (!pending_) {
    return absl::FailedPreconditionError("Merkle reply with no request pending; reply ignored");
  }
  const uint32_t branching = local_->shape().branching;
  const size_t expected = pending_->indices.size() * branching;
  if (child_hashes.size() != expected) {
    return Fail(absl::InvalidArgumentError(
        absl::StrCat("Merkle reply for level ", pending_->level, " has ", child_hashes.size(),
                     " hashes; expected ", expected, " (", pending_->indices.size(),
                     " nodes x branching ", branching, ")")));
  }
  absl::StatusOr<std::vector<uint64_t>> mine = local_->Children(level_, pending_->indices);
  if (!mine.ok()) return Fail(mine.status());  // Only if the tree was swapped for another shape.
  ++replies_received_;
  for (size_t i = 0; i < pending_->indices.size(); ++i) {
    for (uint32_t c = 0; c < branching; ++c) {
      const size_t at = i * branching + c;
      if (child_hashes[at] != (*mine)[at]) {
        next_frontier_.push_back(pending_->indices[i] * branching + c);
      }
    }
  }
  pending_.reset();
  if (frontier_next_ < frontier_.size()) return absl::OkStatus();  // More of this level to ask.

  // Level exhausted. Indices were asked in ascending order, so next_frontier_ is sorted.
  if (level_ + 1 == local_->shape().depth) {
    differing_leaves_ = std::move(next_frontier_);
    next_frontier_.clear();
    state_ = State::kDone;
  } else if (next_frontier_.empty()) {
    state_ = State::kDone;
  } else {
    frontier_ = std::move(next_frontier_);
    next_frontier_.clear();
    frontier_next_ = 0;
    ++level_;
  }
  return absl::OkStatus();
}

absl::Status MerkleComparison::Fail(absl::Status status) {
  state_ = State::kFailed;
  status_ = status;
  pending_.reset();
  frontier_.clear();
  next_frontier_.clear();
  return status;
}

// --- DifferingKeys ---

std::vector<std::string> DifferingKeys(std::vector<KeyItemHash> mine,
                                       std::vector<KeyItemHash> theirs) {
  const auto less = [](const KeyItemHash& a, const KeyItemHash& b) {
    return std::tie(a.key, a.item_hash) < std::tie(b.key, b.item_hash);
  };
  const auto same = [](const KeyItemHash& a, const KeyItemHash& b) {
    return a.item_hash == b.item_hash && a.key == b.key;
  };
  for (std::vector<KeyItemHash>* side : {&mine, &theirs}) {
    std::sort(side->begin(), side->end(), less);
    side->erase(std::unique(side->begin(), side->end(), same), side->end());
  }

  // Walks both sorted lists one key at a time; a key's run holds its distinct item hashes.
  std::vector<std::string> differing;
  size_t i = 0;
  size_t j = 0;
  const auto run_end = [](const std::vector<KeyItemHash>& side, size_t from, std::string_view key) {
    while (from < side.size() && side[from].key == key) ++from;
    return from;
  };
  while (i < mine.size() || j < theirs.size()) {
    std::string_view key;
    if (j == theirs.size() || (i < mine.size() && mine[i].key <= theirs[j].key)) {
      key = mine[i].key;
    } else {
      key = theirs[j].key;
    }
    const size_t i_end = run_end(mine, i, key);
    const size_t j_end = run_end(theirs, j, key);
    const bool equal = std::equal(
        mine.begin() + i, mine.begin() + i_end, theirs.begin() + j, theirs.begin() + j_end,
        [](const KeyItemHash& a, const KeyItemHash& b) { return a.item_hash == b.item_hash; });
    if (!equal) differing.emplace_back(key);
    i = i_end;
    j = j_end;
  }
  return differing;
}

}  // namespace dynamo::core
