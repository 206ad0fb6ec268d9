#include "dynamo/core/merkle.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dynamo/core/hash.h"

namespace dynamo::core {
namespace {

constexpr uint64_t kMaxU64 = ~0ULL;

// splitmix64: every random choice in these tests comes from one seeded generator per case, and
// failures print the seed (SCOPED_TRACE) so that they replay exactly.
class TestRng {
 public:
  explicit TestRng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    state_ += 0x9e3779b97f4a7c15ULL;
    return Mix64(state_);
  }
  uint64_t Uniform(uint64_t n) { return Next() % n; }
  bool Percent(uint64_t p) { return Uniform(100) < p; }

 private:
  uint64_t state_;
};

MerkleTree MakeTree(KeyRange range, MerkleShape shape) {
  absl::StatusOr<MerkleTree> tree = MerkleTree::Create(range, shape);
  if (!tree.ok()) {
    ADD_FAILURE() << tree.status();
    std::abort();
  }
  return *std::move(tree);
}

// A replica's contents as the tree sees them: key -> item hash.
using Contents = std::map<std::string, uint64_t>;

void Insert(MerkleTree& tree, const Contents& contents) {
  for (const auto& [key, hash] : contents) {
    ASSERT_TRUE(tree.Update(KeyPosition(key), 0, hash).ok()) << key;
  }
}

// Every hash of every level below the root, asked for as a peer would.
std::vector<std::vector<uint64_t>> AllLevels(const MerkleTree& tree) {
  std::vector<std::vector<uint64_t>> levels;
  uint32_t level_size = 1;
  for (uint32_t level = 0; level < tree.shape().depth; ++level) {
    std::vector<uint64_t> hashes;
    std::vector<uint32_t> indices;
    for (uint32_t i = 0; i < level_size; ++i) {
      indices.push_back(i);
      if (indices.size() == kMerkleIndicesPerRequestMax || i + 1 == level_size) {
        absl::StatusOr<std::vector<uint64_t>> children = tree.Children(level, indices);
        EXPECT_TRUE(children.ok()) << children.status();
        if (children.ok()) hashes.insert(hashes.end(), children->begin(), children->end());
        indices.clear();
      }
    }
    levels.push_back(std::move(hashes));
    level_size *= tree.shape().branching;
  }
  return levels;
}

void ExpectSameTree(const MerkleTree& a, const MerkleTree& b) {
  EXPECT_EQ(a.Root(), b.Root());
  EXPECT_EQ(a.key_count(), b.key_count());
  EXPECT_EQ(AllLevels(a), AllLevels(b));
  for (uint32_t leaf = 0; leaf < a.leaf_count(); ++leaf) {
    ASSERT_EQ(a.leaf_key_count(leaf), b.leaf_key_count(leaf)) << "leaf " << leaf;
  }
}

// Random keys whose ring positions fall inside `range`.
Contents RandomContents(TestRng& rng, const KeyRange& range, size_t count) {
  Contents contents;
  while (contents.size() < count) {
    std::string key = absl::StrCat("key-", rng.Next());
    if (range.Contains(KeyPosition(key))) contents[key] = ItemHash(key, absl::StrCat(rng.Next()));
  }
  return contents;
}

struct DriveResult {
  absl::Status status;
  std::vector<uint32_t> differing_leaves;
  int requests = 0;
  uint64_t bytes = 0;  // 8 bytes per level, index and hash.
};

// Runs a comparison of `local` against `peer`, the peer answering through Children().
DriveResult Drive(const MerkleTree& local, const MerkleTree& peer,
                  uint32_t max_indices = kMerkleIndicesPerRequestMax) {
  DriveResult result;
  MerkleComparison comparison(local, max_indices);
  while (std::optional<MerkleComparison::Request> request = comparison.NextRequest()) {
    ++result.requests;
    if (result.requests > 2'000'000) {
      result.status = absl::InternalError("comparison does not end");
      return result;
    }
    EXPECT_LE(request->indices.size(), std::max<uint32_t>(max_indices, 1));
    result.bytes += 8 * (1 + request->indices.size());
    absl::StatusOr<std::vector<uint64_t>> reply = peer.Children(request->level, request->indices);
    if (!reply.ok()) {
      result.status = reply.status();
      return result;
    }
    result.bytes += 8 * reply->size();
    if (absl::Status status = comparison.OnReply(*reply); !status.ok()) {
      result.status = status;
      return result;
    }
  }
  EXPECT_TRUE(comparison.done());
  result.differing_leaves = comparison.differing_leaves();
  return result;
}

// What a node sends for one leaf: its keys in the leaf's positions, found by a range scan.
std::vector<KeyItemHash> ListLeaf(const MerkleTree& tree, const Contents& contents, uint32_t leaf) {
  std::vector<KeyItemHash> listing;
  absl::StatusOr<KeyRange> leaf_range = tree.LeafRange(leaf);
  if (!leaf_range.ok()) return listing;
  for (const auto& [key, hash] : contents) {
    if (leaf_range->Contains(KeyPosition(key))) listing.push_back({key, hash});
  }
  return listing;
}

// --- shape and item hash ---

TEST(MerkleShapeTest, AcceptsBoundsAndRejectsTheRest) {
  EXPECT_TRUE(ValidateMerkleShape({}).ok());
  EXPECT_TRUE(ValidateMerkleShape({2, 1}).ok());
  EXPECT_TRUE(ValidateMerkleShape({2, 20}).ok());   // exactly 2^20 leaves
  EXPECT_TRUE(ValidateMerkleShape({256, 2}).ok());  // 65,536 leaves
  EXPECT_TRUE(ValidateMerkleShape({16, 5}).ok());   // 2^20 leaves

  for (MerkleShape bad : std::vector<MerkleShape>{{0, 3},
                                                  {1, 3},
                                                  {257, 1},
                                                  {0xffffffffu, 1},
                                                  {16, 0},
                                                  {2, 21},
                                                  {16, 6},
                                                  {256, 3},
                                                  {256, 0xffffffffu},
                                                  {2, 0xffffffffu}}) {
    SCOPED_TRACE(absl::StrCat(bad.branching, "^", bad.depth));
    EXPECT_EQ(ValidateMerkleShape(bad).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(MerkleTree::Create({}, bad).status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(ItemHashTest, IsStableAndSeparatesKeysFromValues) {
  EXPECT_EQ(ItemHash("k", "v"), ItemHash("k", "v"));
  EXPECT_NE(ItemHash("k", "v"), ItemHash("k", "w"));
  EXPECT_NE(ItemHash("k", "v"), ItemHash("j", "v"));
  EXPECT_NE(ItemHash("ab", "c"), ItemHash("a", "bc"));
  EXPECT_NE(ItemHash("", ""), 0u);
  TestRng rng(7);
  for (int i = 0; i < 10'000; ++i) {
    EXPECT_NE(ItemHash(absl::StrCat(rng.Next()), absl::StrCat(rng.Next())), 0u);
  }
}

// --- tree maintenance ---

TEST(MerkleTreeTest, EmptyTreeIsAllZeros) {
  MerkleTree tree = MakeTree({}, {4, 3});
  EXPECT_EQ(tree.leaf_count(), 64u);
  EXPECT_EQ(tree.Root(), 0u);
  EXPECT_EQ(tree.key_count(), 0u);
  for (const std::vector<uint64_t>& level : AllLevels(tree)) {
    EXPECT_TRUE(std::all_of(level.begin(), level.end(), [](uint64_t h) { return h == 0; }));
  }
}

TEST(MerkleTreeTest, IncrementalUpdatesInAnyOrderMatchABuildFromScratch) {
  const std::vector<MerkleShape> shapes = {{2, 1}, {2, 6}, {4, 3}, {16, 2}, {3, 4}};
  const std::vector<KeyRange> ranges = {{}, {kMaxU64 / 2, kMaxU64 / 8}, {1ULL << 62, 3ULL << 62}};
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    TestRng rng(seed);
    const MerkleShape shape = shapes[rng.Uniform(shapes.size())];
    const KeyRange range = ranges[rng.Uniform(ranges.size())];
    MerkleTree incremental = MakeTree(range, shape);

    // A history of inserts, overwrites and deletes, applied as it happens, reading the root
    // now and then so that lazy recomputation is interleaved with writes.
    Contents model;
    std::vector<std::string> known;
    for (int op = 0; op < 1500; ++op) {
      if (known.empty() || rng.Percent(40)) {
        std::string key = absl::StrCat("k", rng.Uniform(400));
        if (!range.Contains(KeyPosition(key))) continue;
        known.push_back(key);
      }
      const std::string& key = known[rng.Uniform(known.size())];
      const uint64_t old_hash = model.count(key) ? model[key] : 0;
      const uint64_t new_hash = rng.Percent(30) ? 0 : ItemHash(key, absl::StrCat(rng.Next()));
      ASSERT_TRUE(incremental.Update(KeyPosition(key), old_hash, new_hash).ok());
      if (new_hash == 0) {
        model.erase(key);
      } else {
        model[key] = new_hash;
      }
      if (rng.Percent(5)) incremental.Root();
    }

    MerkleTree scratch = MakeTree(range, shape);
    Insert(scratch, model);
    ExpectSameTree(incremental, scratch);
    EXPECT_EQ(incremental.key_count(), model.size());

    // Another order: reversed.
    MerkleTree reversed = MakeTree(range, shape);
    for (auto it = model.rbegin(); it != model.rend(); ++it) {
      ASSERT_TRUE(reversed.Update(KeyPosition(it->first), 0, it->second).ok());
    }
    ExpectSameTree(reversed, scratch);
  }
}

TEST(MerkleTreeTest, RemovingEveryKeyReturnsToTheEmptyRoot) {
  const MerkleTree empty = MakeTree({}, {16, 3});
  MerkleTree tree = MakeTree({}, {16, 3});
  TestRng rng(11);
  const Contents contents = RandomContents(rng, tree.range(), 5000);
  Insert(tree, contents);
  EXPECT_NE(tree.Root(), empty.Root());
  EXPECT_EQ(tree.key_count(), 5000u);
  for (const auto& [key, hash] : contents) {
    ASSERT_TRUE(tree.Update(KeyPosition(key), hash, 0).ok());
  }
  EXPECT_EQ(tree.Root(), empty.Root());
  EXPECT_EQ(tree.key_count(), 0u);
  ExpectSameTree(tree, empty);
}

// Items as (position, item hash): the root depends on the set, not the order of writes.
RC_GTEST_PROP(MerkleTreeProperty, RootIsOrderIndependent,
              (std::vector<std::pair<uint64_t, uint64_t>> items)) {
  std::vector<std::pair<uint64_t, uint64_t>> present;
  for (const auto& item : items) {
    if (item.second != 0) present.push_back(item);
  }
  std::vector<std::pair<uint64_t, uint64_t>> sorted = present;
  std::sort(sorted.begin(), sorted.end());
  const auto build = [](const std::vector<std::pair<uint64_t, uint64_t>>& in) {
    MerkleTree tree = MakeTree({}, {4, 3});
    for (const auto& [position, hash] : in) RC_ASSERT(tree.Update(position, 0, hash).ok());
    return tree;
  };
  const MerkleTree a = build(present);
  const MerkleTree b = build(sorted);
  RC_ASSERT(a.Root() == b.Root());
  RC_ASSERT(AllLevels(a) == AllLevels(b));
  RC_ASSERT(a.key_count() == present.size());
}

TEST(MerkleTreeTest, CountsKeysPerLeafAndInTotal) {
  MerkleTree tree = MakeTree({}, {2, 2});  // Leaves are quarters of the ring.
  const uint64_t quarter = 1ULL << 62;
  ASSERT_TRUE(tree.Update(5, 0, 100).ok());
  ASSERT_TRUE(tree.Update(6, 0, 200).ok());
  ASSERT_TRUE(tree.Update(3 * quarter, 0, 300).ok());
  EXPECT_EQ(tree.key_count(), 3u);
  EXPECT_EQ(tree.leaf_key_count(0), 2u);
  EXPECT_EQ(tree.leaf_key_count(3), 1u);
  EXPECT_EQ(tree.leaf_key_count(1), 0u);
  EXPECT_EQ(tree.leaf_key_count(4), 0u);       // Not a leaf.
  ASSERT_TRUE(tree.Update(5, 100, 101).ok());  // An overwrite keeps the count.
  EXPECT_EQ(tree.key_count(), 3u);
  ASSERT_TRUE(tree.Update(6, 200, 0).ok());
  EXPECT_EQ(tree.leaf_key_count(0), 1u);
  EXPECT_EQ(tree.key_count(), 2u);
  ASSERT_TRUE(tree.Update(7, 0, 0).ok());  // Absent before and after: nothing happens.
  EXPECT_EQ(tree.key_count(), 2u);

  tree.Clear();
  EXPECT_EQ(tree.key_count(), 0u);
  EXPECT_EQ(tree.leaf_key_count(0), 0u);
  EXPECT_EQ(tree.Root(), MakeTree({}, {2, 2}).Root());
}

TEST(MerkleTreeTest, UpdateRejectsBadInputAndLeavesTheTreeUnchanged) {
  MerkleTree tree = MakeTree({1000, 2000}, {4, 2});
  ASSERT_TRUE(tree.Update(1500, 0, 42).ok());
  const uint64_t root = tree.Root();
  EXPECT_EQ(tree.Update(999, 0, 7).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tree.Update(2000, 0, 7).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tree.Update(kMaxU64, 0, 7).code(), absl::StatusCode::kInvalidArgument);
  // Removing from an empty leaf: the caller's bookkeeping is wrong.
  EXPECT_EQ(tree.Update(1000, 9, 0).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(tree.Root(), root);
  EXPECT_EQ(tree.key_count(), 1u);
}

// --- leaf mapping ---

// Leaves tile the range in order: contiguous, non-overlapping, each mapping back to itself, and
// of equal widths (within one position). Only a range narrower than the leaf count has empty
// leaves.
void CheckLeafTiling(const KeyRange& range, const MerkleShape& shape) {
  SCOPED_TRACE(absl::StrCat(range.ToString(), " shape ", shape.branching, "^", shape.depth));
  const MerkleTree tree = MakeTree(range, shape);
  // Narrower than the leaf count: some leaves hold no position (never the whole ring).
  const bool narrow = !range.IsWholeRing() && range.end - range.start < tree.leaf_count();
  std::optional<KeyRange> previous;
  uint32_t previous_leaf = 0;
  uint64_t non_empty = 0;
  uint64_t width_min = kMaxU64;
  uint64_t width_max = 0;
  for (uint32_t leaf = 0; leaf < tree.leaf_count(); ++leaf) {
    absl::StatusOr<KeyRange> leaf_range = tree.LeafRange(leaf);
    if (!leaf_range.ok()) {
      ASSERT_EQ(leaf_range.status().code(), absl::StatusCode::kNotFound) << leaf;
      ASSERT_TRUE(narrow);
      continue;
    }
    ++non_empty;
    const KeyRange& r = *leaf_range;
    ASSERT_FALSE(r.IsWholeRing()) << leaf;
    const uint64_t width = r.end - r.start;
    width_min = std::min(width_min, width);
    width_max = std::max(width_max, width);
    ASSERT_EQ(previous ? previous->end : range.start, r.start) << leaf;
    ASSERT_TRUE(range.Contains(r.start) && range.Contains(r.end - 1)) << leaf;
    ASSERT_EQ(*tree.LeafOf(r.start), leaf);
    ASSERT_EQ(*tree.LeafOf(r.end - 1), leaf);
    ASSERT_EQ(*tree.LeafOf(r.start + width / 2), leaf);
    if (previous) {
      ASSERT_EQ(*tree.LeafOf(r.start - 1), previous_leaf);
    }
    previous = r;
    previous_leaf = leaf;
  }
  ASSERT_TRUE(previous.has_value());
  EXPECT_EQ(previous->end, range.end);
  EXPECT_EQ(non_empty, narrow ? range.end - range.start : tree.leaf_count());
  if (!narrow) {
    EXPECT_LE(width_max - width_min, 1u);
  }

  EXPECT_EQ(*tree.LeafOf(range.start), 0u);
  EXPECT_EQ(*tree.LeafOf(range.end - 1), narrow ? previous_leaf : tree.leaf_count() - 1);
  if (!range.IsWholeRing()) {
    EXPECT_EQ(tree.LeafOf(range.end).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(tree.LeafOf(range.start - 1).status().code(), absl::StatusCode::kInvalidArgument);
  }
  if (range.Contains(kMaxU64) && range.Contains(0) && range.start != 0) {
    // The wrap point inside the range: 2^64 - 1 and 0 are in one leaf, or in a leaf that ends at
    // the wrap and the next one that holds positions, which starts there.
    const uint32_t before = *tree.LeafOf(kMaxU64);
    const uint32_t after = *tree.LeafOf(0);
    EXPECT_TRUE(tree.LeafRange(before)->Contains(kMaxU64));
    EXPECT_TRUE(tree.LeafRange(after)->Contains(0));
    if (after != before) {
      EXPECT_GT(after, before);
      EXPECT_EQ(tree.LeafRange(before)->end, 0u);
      EXPECT_EQ(tree.LeafRange(after)->start, 0u);
    }
  }
  EXPECT_EQ(tree.LeafRange(tree.leaf_count()).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tree.LeafRange(0xffffffffu).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MerkleTreeTest, LeavesTileNormalRanges) {
  CheckLeafTiling({1000, 1000 + 10 * 64 + 7}, {4, 3});
  CheckLeafTiling({1ULL << 40, 1ULL << 63}, {16, 2});
  CheckLeafTiling({0, 64}, {4, 3});  // One position per leaf.
  CheckLeafTiling({0, 65}, {4, 3});
  CheckLeafTiling({5, kMaxU64}, {2, 20});
}

TEST(MerkleTreeTest, LeavesTileWrappingRanges) {
  CheckLeafTiling({kMaxU64 - 4999, 7000}, {16, 2});
  CheckLeafTiling({3ULL << 62, 1ULL << 62}, {4, 3});
  CheckLeafTiling({kMaxU64, 3}, {2, 2});        // Four positions, one per leaf, wrapping after one.
  CheckLeafTiling({kMaxU64 - 100, 0}, {3, 3});  // Ends exactly at the wrap point.
}

TEST(MerkleTreeTest, LeavesTileTheWholeRing) {
  CheckLeafTiling({0, 0}, {4, 3});
  CheckLeafTiling({12345, 12345}, {16, 2});
  CheckLeafTiling({kMaxU64, kMaxU64}, {2, 1});
  CheckLeafTiling({7, 7}, {2, 20});
  const MerkleTree tree = MakeTree({}, {16, 2});
  EXPECT_EQ(*tree.LeafOf(1ULL << 63), 128u);
  EXPECT_EQ(*tree.LeafOf((1ULL << 63) - 1), 127u);
  EXPECT_EQ(*tree.LeafRange(255), (KeyRange{0xffULL << 56, 0}));
}

TEST(MerkleTreeTest, RangesNarrowerThanTheLeafCountHaveEmptyLeaves) {
  CheckLeafTiling({100, 110}, {16, 2});
  CheckLeafTiling({kMaxU64, 0}, {4, 3});  // A single position.
  CheckLeafTiling({kMaxU64 - 2, 5}, {2, 4});

  // Keys still land, and comparisons still work.
  MerkleTree a = MakeTree({100, 110}, {16, 2});
  MerkleTree b = MakeTree({100, 110}, {16, 2});
  for (uint64_t p = 100; p < 110; ++p) ASSERT_TRUE(a.Update(p, 0, p * 31 + 1).ok());
  ASSERT_TRUE(b.Update(104, 0, 7).ok());
  DriveResult result = Drive(a, b);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(result.differing_leaves.size(), 10u);
  for (uint32_t leaf : result.differing_leaves) EXPECT_TRUE(a.LeafRange(leaf).ok());
}

// --- comparison ---

TEST(MerkleComparisonTest, IdenticalTreesEndAfterOneRequest) {
  for (MerkleShape shape : std::vector<MerkleShape>{{2, 1}, {16, 3}, {256, 2}}) {
    MerkleTree a = MakeTree({}, shape);
    MerkleTree b = MakeTree({}, shape);
    DriveResult empty = Drive(a, b);
    EXPECT_TRUE(empty.status.ok());
    EXPECT_EQ(empty.requests, 1);
    EXPECT_TRUE(empty.differing_leaves.empty());

    TestRng rng(shape.branching);
    const Contents contents = RandomContents(rng, a.range(), 2000);
    Insert(a, contents);
    // The peer saw the same writes in another order.
    for (auto it = contents.rbegin(); it != contents.rend(); ++it) {
      ASSERT_TRUE(b.Update(KeyPosition(it->first), 0, it->second).ok());
    }
    DriveResult same = Drive(a, b);
    EXPECT_TRUE(same.status.ok());
    EXPECT_EQ(same.requests, 1);
    EXPECT_TRUE(same.differing_leaves.empty());
    EXPECT_EQ(same.bytes, 8u * (2 + shape.branching));
  }
}

// The heart of anti-entropy, checked against brute force: the comparison finds exactly the
// leaves whose contents differ, and the key lists of those leaves give exactly the keys that
// differ between the two replicas.
TEST(MerkleComparisonTest, FindsExactlyTheDifferencesOnRandomReplicas) {
  const std::vector<MerkleShape> shapes = {{2, 1}, {2, 8}, {4, 3}, {16, 2}, {3, 5}, {256, 1}};
  const std::vector<KeyRange> ranges = {
      {}, {kMaxU64 / 3, kMaxU64 / 4}, {1ULL << 62, 3ULL << 62}, {42, 42}};
  const std::vector<uint32_t> max_indices = {1, 2, 3, 7, kMerkleIndicesPerRequestMax};
  int with_differences = 0;
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    TestRng rng(seed);
    const MerkleShape shape = shapes[rng.Uniform(shapes.size())];
    const KeyRange range = ranges[rng.Uniform(ranges.size())];
    const uint32_t max_per_request = max_indices[rng.Uniform(max_indices.size())];

    const Contents base = RandomContents(rng, range, rng.Uniform(1500));
    Contents mine = base;
    Contents theirs = base;
    // From no difference at all to replicas that share little.
    const uint64_t change_percent = std::vector<uint64_t>{0, 0, 1, 5, 50}[rng.Uniform(5)];
    for (const auto& [key, hash] : base) {
      if (!rng.Percent(change_percent)) continue;
      Contents& side = rng.Percent(50) ? mine : theirs;
      if (rng.Percent(50)) {
        side.erase(key);
      } else {
        side[key] = ItemHash(key, absl::StrCat("changed ", rng.Next()));
      }
    }
    const size_t additions = change_percent == 0 ? 0 : rng.Uniform(20);
    for (const auto& [key, hash] : RandomContents(rng, range, additions)) {
      (rng.Percent(50) ? mine : theirs)[key] = hash;
    }

    MerkleTree local = MakeTree(range, shape);
    MerkleTree peer = MakeTree(range, shape);
    Insert(local, mine);
    Insert(peer, theirs);

    // Brute force: per-leaf XOR of item hashes, and the set difference of the contents.
    std::map<uint32_t, uint64_t> xor_mine;
    std::map<uint32_t, uint64_t> xor_theirs;
    for (const auto& [key, hash] : mine) xor_mine[*local.LeafOf(KeyPosition(key))] ^= hash;
    for (const auto& [key, hash] : theirs) xor_theirs[*local.LeafOf(KeyPosition(key))] ^= hash;
    std::vector<uint32_t> expected_leaves;
    for (uint32_t leaf = 0; leaf < local.leaf_count(); ++leaf) {
      if (xor_mine[leaf] != xor_theirs[leaf]) expected_leaves.push_back(leaf);
    }
    std::set<std::string> expected_keys;
    for (const auto& [key, hash] : mine) {
      auto it = theirs.find(key);
      if (it == theirs.end() || it->second != hash) expected_keys.insert(key);
    }
    for (const auto& [key, hash] : theirs) {
      if (!mine.count(key)) expected_keys.insert(key);
    }

    const DriveResult result = Drive(local, peer, max_per_request);
    ASSERT_TRUE(result.status.ok()) << result.status;
    ASSERT_EQ(result.differing_leaves, expected_leaves);
    if (expected_leaves.empty()) {
      EXPECT_EQ(result.requests, 1);
    }

    std::set<std::string> found;
    for (uint32_t leaf : result.differing_leaves) {
      // Listings arrive in storage order; reverse ours to show the order does not matter.
      std::vector<KeyItemHash> my_listing = ListLeaf(local, mine, leaf);
      std::reverse(my_listing.begin(), my_listing.end());
      for (std::string& key : DifferingKeys(std::move(my_listing), ListLeaf(peer, theirs, leaf))) {
        ASSERT_TRUE(found.insert(key).second) << "key in two leaves: " << key;
      }
    }
    ASSERT_EQ(found, expected_keys);
    if (!expected_keys.empty()) ++with_differences;
  }
  EXPECT_GT(with_differences, 100);  // The seeds do exercise differences.
}

TEST(MerkleComparisonTest, SplitsWideFrontiersIntoBoundedRequests) {
  MerkleTree a = MakeTree({}, {4, 3});
  MerkleTree b = MakeTree({}, {4, 3});
  // One key in every leaf of a only: every node differs.
  for (uint32_t leaf = 0; leaf < a.leaf_count(); ++leaf) {
    ASSERT_TRUE(a.Update(a.LeafRange(leaf)->start, 0, leaf + 1).ok());
  }
  MerkleComparison comparison(a, 3);
  std::vector<MerkleComparison::Request> requests;
  while (std::optional<MerkleComparison::Request> request = comparison.NextRequest()) {
    requests.push_back(*request);
    ASSERT_TRUE(comparison.OnReply(*b.Children(request->level, request->indices)).ok());
  }
  ASSERT_TRUE(comparison.done());
  EXPECT_EQ(comparison.differing_leaves().size(), 64u);
  // Level 0: {0}; level 1: 4 nodes in 3 + 1; level 2: 16 nodes in 3 x 5 + 1.
  ASSERT_EQ(requests.size(), 1u + 2u + 6u);
  EXPECT_EQ(requests[1], (MerkleComparison::Request{1, {0, 1, 2}}));
  EXPECT_EQ(requests[2], (MerkleComparison::Request{1, {3}}));
  EXPECT_EQ(requests[8], (MerkleComparison::Request{2, {15}}));
  EXPECT_EQ(comparison.replies_received(), 9u);
}

TEST(MerkleComparisonTest, TheLocalTreeMayChangeBetweenSteps) {
  TestRng rng(5);
  MerkleTree local = MakeTree({}, {4, 4});
  MerkleTree peer = MakeTree({}, {4, 4});
  const Contents contents = RandomContents(rng, local.range(), 500);
  Insert(local, contents);
  Insert(peer, contents);
  ASSERT_TRUE(peer.Update(12345, 0, 99).ok());

  MerkleComparison comparison(local);
  int steps = 0;
  while (std::optional<MerkleComparison::Request> request = comparison.NextRequest()) {
    ASSERT_LT(++steps, 100);
    ASSERT_TRUE(comparison.OnReply(*peer.Children(request->level, request->indices)).ok());
    // Writes keep landing on the local side.
    ASSERT_TRUE(local.Update(rng.Next(), 0, rng.Next() | 1).ok());
  }
  EXPECT_TRUE(comparison.done());
  // A later exchange sees the tree as it is now.
  const DriveResult again = Drive(local, peer);
  ASSERT_TRUE(again.status.ok());
  EXPECT_FALSE(again.differing_leaves.empty());
}

// --- malformed input from the network ---

TEST(MerkleTreeTest, ChildrenRejectsMalformedRequests) {
  const MerkleTree tree = MakeTree({}, {4, 3});
  EXPECT_EQ(tree.Children(3, {0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tree.Children(0xffffffffu, {0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tree.Children(0, {1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tree.Children(2, {15, 16}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(tree.Children(2, {0xffffffffu}).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<uint32_t> too_many(kMerkleIndicesPerRequestMax + 1, 0);
  EXPECT_EQ(tree.Children(0, too_many).status().code(), absl::StatusCode::kInvalidArgument);
  too_many.pop_back();
  EXPECT_EQ(tree.Children(0, too_many)->size(), 4u * kMerkleIndicesPerRequestMax);
  EXPECT_TRUE(tree.Children(1, {})->empty());
  EXPECT_EQ(tree.Children(2, {15})->size(), 4u);
}

TEST(MerkleComparisonTest, AReplyOfTheWrongSizeFailsTheComparison) {
  MerkleTree tree = MakeTree({}, {4, 3});
  for (size_t size : {0, 3, 5, 1000}) {
    MerkleComparison comparison(tree);
    ASSERT_TRUE(comparison.NextRequest().has_value());
    const absl::Status status = comparison.OnReply(std::vector<uint64_t>(size, 1));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << size;
    EXPECT_TRUE(comparison.failed());
    EXPECT_FALSE(comparison.done());
    EXPECT_EQ(comparison.status(), status);
    EXPECT_FALSE(comparison.NextRequest().has_value());
    EXPECT_EQ(comparison.OnReply(std::vector<uint64_t>(4, 0)).code(),
              absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(comparison.differing_leaves().empty());
  }
}

TEST(MerkleComparisonTest, RepliesOutOfTurnAreRefusedWithoutHarm) {
  MerkleTree tree = MakeTree({}, {4, 3});
  MerkleComparison comparison(tree);
  // Before any request.
  EXPECT_EQ(comparison.OnReply({0, 0, 0, 0}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(comparison.failed());
  // The pending request is repeated until answered (resend after a lost message).
  const std::optional<MerkleComparison::Request> first = comparison.NextRequest();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, (MerkleComparison::Request{0, {0}}));
  EXPECT_EQ(comparison.NextRequest(), first);
  ASSERT_TRUE(comparison.OnReply({0, 0, 0, 0}).ok());
  EXPECT_TRUE(comparison.done());
  EXPECT_TRUE(comparison.status().ok());
  // A duplicate after the end.
  EXPECT_EQ(comparison.OnReply({0, 0, 0, 0}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(comparison.done());
}

TEST(MerkleComparisonTest, ALyingPeerCannotMakeItMisbehave) {
  // Random hashes in every reply: the comparison still ends, with valid leaves only. The range
  // is narrower than the leaf count, so the peer can also name leaves that hold no positions.
  const MerkleTree tree = MakeTree({100, 300}, {16, 2});
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    TestRng rng(seed);
    MerkleComparison comparison(tree);
    int steps = 0;
    while (std::optional<MerkleComparison::Request> request = comparison.NextRequest()) {
      ASSERT_LT(++steps, 1000);
      std::vector<uint64_t> reply(request->indices.size() * 16);
      for (uint64_t& h : reply) h = rng.Percent(50) ? 0 : rng.Next();
      ASSERT_TRUE(comparison.OnReply(reply).ok());
    }
    ASSERT_TRUE(comparison.done());
    for (uint32_t leaf : comparison.differing_leaves()) {
      ASSERT_LT(leaf, tree.leaf_count());
      const absl::StatusCode code = tree.LeafRange(leaf).status().code();
      ASSERT_TRUE(code == absl::StatusCode::kOk || code == absl::StatusCode::kNotFound) << leaf;
    }
  }
}

TEST(DifferingKeysTest, ComparesListingsInAnyOrder) {
  std::vector<KeyItemHash> mine = {{"d", 4}, {"a", 1}, {"b", 2}, {"c", 3}};
  std::vector<KeyItemHash> theirs = {{"e", 5}, {"c", 3}, {"b", 20}, {"a", 1}};
  EXPECT_EQ(DifferingKeys(mine, theirs), (std::vector<std::string>{"b", "d", "e"}));
  EXPECT_EQ(DifferingKeys(theirs, mine), (std::vector<std::string>{"b", "d", "e"}));
  EXPECT_TRUE(DifferingKeys(mine, mine).empty());
  EXPECT_TRUE(DifferingKeys({}, {}).empty());
  EXPECT_EQ(DifferingKeys({}, mine), (std::vector<std::string>{"a", "b", "c", "d"}));
}

TEST(DifferingKeysTest, MalformedListingsAreHandled) {
  // Repeats of the same entry are harmless; a key listed with two hashes differs unless the other
  // side lists the same two.
  EXPECT_TRUE(DifferingKeys({{"a", 1}, {"a", 1}}, {{"a", 1}}).empty());
  EXPECT_EQ(DifferingKeys({{"a", 1}, {"a", 2}}, {{"a", 1}}), (std::vector<std::string>{"a"}));
  EXPECT_TRUE(DifferingKeys({{"a", 2}, {"a", 1}}, {{"a", 1}, {"a", 2}}).empty());
  EXPECT_EQ(DifferingKeys({{"", 0}}, {{"", 1}}), (std::vector<std::string>{""}));
}

// --- cost ---

// One differing key among 1,000,000 in one range: the whole exchange, tree walk plus both
// sides' key lists for the differing leaf, stays small.
TEST(MerkleComparisonTest, OneDifferenceAmongAMillionKeysCostsLittle) {
  constexpr int kKeys = 1'000'000;
  constexpr int kChanged = 123'457;
  const MerkleShape shape{16, 4};
  MerkleTree mine = MakeTree({}, shape);
  std::vector<std::string> keys;
  std::vector<uint64_t> positions;
  keys.reserve(kKeys);
  positions.reserve(kKeys);
  for (int i = 0; i < kKeys; ++i) {
    char key[24];
    std::snprintf(key, sizeof key, "user%012d", i);  // 16 bytes
    keys.emplace_back(key);
    positions.push_back(KeyPosition(keys.back()));
    ASSERT_TRUE(mine.Update(positions.back(), 0, ItemHash(keys.back(), "v1")).ok());
  }
  MerkleTree theirs = mine;  // A replica that missed one overwrite.
  ASSERT_TRUE(theirs
                  .Update(positions[kChanged], ItemHash(keys[kChanged], "v1"),
                          ItemHash(keys[kChanged], "v2"))
                  .ok());

  const DriveResult walk = Drive(mine, theirs);
  ASSERT_TRUE(walk.status.ok()) << walk.status;
  ASSERT_EQ(walk.differing_leaves.size(), 1u);
  EXPECT_EQ(walk.requests, 4);
  const uint32_t leaf = walk.differing_leaves[0];
  const KeyRange leaf_range = *mine.LeafRange(leaf);

  std::vector<KeyItemHash> my_list;
  std::vector<KeyItemHash> their_list;
  uint64_t list_bytes = 0;
  for (int i = 0; i < kKeys; ++i) {
    if (!leaf_range.Contains(positions[i])) continue;
    my_list.push_back({keys[i], ItemHash(keys[i], "v1")});
    their_list.push_back({keys[i], ItemHash(keys[i], i == kChanged ? "v2" : "v1")});
    list_bytes += 2 * (keys[i].size() + 8);
  }
  EXPECT_EQ(my_list.size(), mine.leaf_key_count(leaf));
  EXPECT_EQ(DifferingKeys(my_list, their_list), (std::vector<std::string>{keys[kChanged]}));

  const uint64_t total_bytes = walk.bytes + list_bytes;
  std::printf(
      "Merkle exchange, 1 differing key of %d, shape %u^%u: %d requests, %llu bytes of tree "
      "walk + %llu bytes of key lists (%zu keys per side) = %llu bytes\n",
      kKeys, shape.branching, shape.depth, walk.requests,
      static_cast<unsigned long long>(walk.bytes), static_cast<unsigned long long>(list_bytes),
      my_list.size(), static_cast<unsigned long long>(total_bytes));
  EXPECT_LT(total_bytes, 64u * 1024);
}

}  // namespace
}  // namespace dynamo::core
