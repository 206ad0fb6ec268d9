#include "dynamo/core/local_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "dynamo/core/claim.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/random.h"
#include "dynamo/core/storage_keys.h"
#include "dynamo/storage/memory_engine.h"

namespace dynamo::core {
namespace {

using storage::MemoryEngine;
using storage::Space;

constexpr MerkleShape kShape{4, 2};

Ring MakeRing(uint32_t partitions, const std::vector<std::string>& ids, uint64_t seed = 1) {
  RingSpec spec;
  spec.strategy = PartitionStrategy::kEqualPartitions;
  spec.partitions = partitions;
  std::vector<ClaimMember> members;
  std::vector<RingNode> nodes;
  for (const std::string& id : ids) {
    members.push_back({id, "", 1});
    nodes.push_back({id, ""});
  }
  Random rng(seed);
  absl::StatusOr<std::vector<RingToken>> tokens = Claim(spec, 3, {}, members, rng);
  EXPECT_TRUE(tokens.ok()) << tokens.status();
  absl::StatusOr<Ring> ring = Ring::Create(spec, *tokens, nodes);
  EXPECT_TRUE(ring.ok()) << ring.status();
  return *ring;
}

// A one-sibling object written by `actor` at `counter` on top of `context`.
VersionedObject Obj(const std::string& value, const std::string& actor = "w#1",
                    uint64_t counter = 1, const VersionVector& context = {}) {
  VersionedObject o;
  o.Write(context, Dot{actor, counter}, value, false, 1000 + static_cast<int64_t>(counter));
  return o;
}

template <typename T>
T Must(absl::StatusOr<T> v) {
  EXPECT_TRUE(v.ok()) << v.status();
  return *std::move(v);
}

std::map<std::string, std::string> Dump(MemoryEngine& engine, Space space) {
  std::map<std::string, std::string> out;
  EXPECT_TRUE(engine
                  .Scan(space, "", "",
                        [&](std::string_view k, std::string_view v) {
                          out.emplace(std::string(k), std::string(v));
                          return true;
                        })
                  .ok());
  return out;
}

// The trees, counts and hint counts of `store` must equal those of a store
// rebuilt from the same storage, and the key counts must equal what storage holds.
void ExpectMatchesStorage(LocalStore& store, MemoryEngine& engine, const Ring& ring,
                          const std::string& where) {
  LocalStore fresh(&engine, kShape);
  ASSERT_TRUE(fresh.Rebuild(ring).ok());
  ASSERT_EQ(store.range_count(), fresh.range_count()) << where;
  const std::map<std::string, std::string> data = Dump(engine, Space::kData);
  for (size_t i = 0; i < store.range_count(); ++i) {
    ASSERT_EQ(store.range(i), fresh.range(i)) << where;
    ASSERT_EQ(store.tree(i).Root(), fresh.tree(i).Root()) << where << " range " << i;
    ASSERT_EQ(store.key_count(i), fresh.key_count(i)) << where << " range " << i;
    for (uint32_t leaf = 0; leaf < store.tree(i).leaf_count(); ++leaf) {
      ASSERT_EQ(store.tree(i).leaf_key_count(leaf), fresh.tree(i).leaf_key_count(leaf)) << where;
    }
    uint64_t stored_in_range = 0;
    for (const auto& [k, v] : data) {
      if (store.range(i).Contains(ParseDataKey(k)->position)) ++stored_in_range;
    }
    ASSERT_EQ(store.key_count(i), stored_in_range) << where << " range " << i;
  }
  ASSERT_EQ(store.total_keys(), data.size()) << where;
  // Every object has its item hash stored beside it, and nothing else has one.
  std::map<std::string, std::string> expected_hashes;
  for (const auto& [k, v] : data) {
    expected_hashes[k] = EncodeBigEndian64(ItemHash(ParseDataKey(k)->key, v));
  }
  std::map<std::string, std::string> stored_hashes;  // the hash, before the clock
  for (const auto& [k, v] : Dump(engine, Space::kItemHashes)) stored_hashes[k] = v.substr(0, 8);
  ASSERT_EQ(stored_hashes, expected_hashes) << where;
  const absl::Status verified = store.VerifyTrees();  // also the stored clocks
  ASSERT_TRUE(verified.ok()) << verified << " " << where;
  ASSERT_EQ(store.hint_counts(), fresh.hint_counts()) << where;
  std::map<std::string, uint64_t, std::less<>> hints;
  for (const auto& [k, v] : Dump(engine, Space::kHints))
    ++hints[std::string(ParseHintKey(k)->owner)];
  ASSERT_EQ(store.hint_counts(), hints) << where;
}

// Random versions of a handful of keys, as replicas would receive them.
struct KeyHistories {
  std::map<std::string, std::vector<VersionedObject>> versions;  // per key, every state made
  std::map<std::string, uint64_t> counters;

  VersionedObject Next(Random& rng, const std::string& key) {
    std::vector<VersionedObject>& v = versions[key];
    VersionedObject base =
        v.empty() || rng.Chance(0.3) ? VersionedObject() : v[rng.Uniform(v.size())];
    if (!v.empty() && rng.Chance(0.3)) base.Merge(v[rng.Uniform(v.size())]);
    const std::string actor = "n" + std::to_string(rng.Uniform(3)) + "#1";
    const uint64_t c = ++counters[actor];
    const VersionVector context = rng.Chance(0.5) ? base.clock() : VersionVector();
    base.Write(context, Dot{actor, c}, "v" + std::to_string(c), rng.Chance(0.15),
               static_cast<int64_t>(c));
    v.push_back(base);
    return base;
  }
  VersionedObject Old(Random& rng, const std::string& key) {
    std::vector<VersionedObject>& v = versions[key];
    return v.empty() ? VersionedObject() : v[rng.Uniform(v.size())];
  }
};

void RunRandomOperations(const Ring& ring, uint64_t seed, int steps) {
  MemoryEngine engine;
  LocalStore store(&engine, kShape);
  ASSERT_TRUE(store.Rebuild(ring).ok());
  Random rng(seed);
  KeyHistories h;
  const std::vector<std::string> owners = {"o1", "o2", "o3"};
  for (int step = 0; step < steps; ++step) {
    const std::string key = "key" + std::to_string(rng.Uniform(30));
    const uint64_t pos = KeyPosition(key);
    const std::string where = "seed " + std::to_string(seed) + " step " + std::to_string(step);
    switch (rng.Uniform(8)) {
      case 0:
      case 1: {  // a new version arrives
        bool changed = false;
        StoredObject before = Must(store.Get(key, pos)).value_or(StoredObject{});
        StoredObject after = Must(store.Merge(key, pos, h.Next(rng, key), &changed));
        EXPECT_EQ(changed, before.encoded != after.encoded) << where;
        break;
      }
      case 2: {  // an old one arrives again
        bool changed = false;
        (void)Must(store.Merge(key, pos, h.Old(rng, key), &changed));
        break;
      }
      case 3: {  // the coordinator path: read, then replace
        std::optional<StoredObject> current = Must(store.Get(key, pos));
        VersionedObject next = current ? current->object : VersionedObject();
        next.Merge(h.Next(rng, key));
        (void)Must(store.Replace(key, pos, current, next));
        break;
      }
      case 4: {  // handoff or reaping of what was read
        std::optional<StoredObject> current = Must(store.Get(key, pos));
        if (!current) break;
        const bool deleted = Must(store.DeleteIfUnchanged(key, pos, current->encoded));
        EXPECT_TRUE(deleted) << where;
        EXPECT_FALSE(Must(store.Get(key, pos)).has_value()) << where;
        break;
      }
      case 5: {  // a delete based on an outdated read is refused
        std::optional<StoredObject> current = Must(store.Get(key, pos));
        const VersionedObject other = h.Old(rng, key);
        const std::string stale = other.Encode();
        const bool deleted = Must(store.DeleteIfUnchanged(key, pos, stale));
        EXPECT_EQ(deleted, current.has_value() && current->encoded == stale) << where;
        break;
      }
      case 6: {  // hints
        const std::string& owner = owners[rng.Uniform(owners.size())];
        (void)Must(store.MergeHint(owner, key, pos, h.Next(rng, key)));
        break;
      }
      case 7: {
        const std::string& owner = owners[rng.Uniform(owners.size())];
        std::optional<StoredObject> hint = Must(store.GetHint(owner, key, pos));
        if (hint) {
          EXPECT_TRUE(Must(store.DeleteHintIfUnchanged(owner, key, pos, hint->encoded)));
        }
        break;
      }
    }
    if (step % 7 == 0 || step == steps - 1) ExpectMatchesStorage(store, engine, ring, where);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

TEST(LocalStoreTest, TreesMatchARebuildAfterRandomOperations) {
  const Ring ring = MakeRing(8, {"a", "b", "c"});
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    RunRandomOperations(ring, seed, 250);
    if (HasFatalFailure()) return;
  }
}

TEST(LocalStoreTest, TreesMatchARebuildOnTheWholeRing) {
  RunRandomOperations(Ring(), 77, 300);  // an empty ring: one whole-ring tree
}

TEST(LocalStoreTest, MergeReportsChangesAndKeepsTheJoin) {
  MemoryEngine engine;
  LocalStore store(&engine, kShape);
  ASSERT_TRUE(store.Rebuild(Ring()).ok());
  const uint64_t pos = KeyPosition("k");
  bool changed = false;
  const VersionedObject v1 = Obj("one", "a#1", 1);
  Must(store.Merge("k", pos, v1, &changed));
  EXPECT_TRUE(changed);
  Must(store.Merge("k", pos, v1, &changed));
  EXPECT_FALSE(changed);
  const VersionedObject v2 = Obj("two", "a#1", 2, v1.clock());
  Must(store.Merge("k", pos, v2, &changed));
  EXPECT_TRUE(changed);
  Must(store.Merge("k", pos, v1, &changed));  // older: nothing to learn
  EXPECT_FALSE(changed);
  const VersionedObject other = Obj("other", "b#1", 1);
  StoredObject merged = Must(store.Merge("k", pos, other, &changed));
  EXPECT_TRUE(changed);
  VersionedObject expected = v2;
  expected.Merge(other);
  EXPECT_EQ(merged.object, expected);
  EXPECT_EQ(merged.encoded, expected.Encode());
  EXPECT_EQ(Must(store.Get("k", pos))->encoded, expected.Encode());
  EXPECT_EQ(store.total_keys(), 1u);
}

TEST(LocalStoreTest, AnEmptyObjectStoresNothing) {
  MemoryEngine engine;
  LocalStore store(&engine, kShape);
  ASSERT_TRUE(store.Rebuild(Ring()).ok());
  bool changed = true;
  (void)Must(store.Merge("k", KeyPosition("k"), VersionedObject(), &changed));
  EXPECT_FALSE(changed);
  EXPECT_FALSE(Must(store.Get("k", KeyPosition("k"))).has_value());
  (void)Must(store.MergeHint("o", "k", KeyPosition("k"), VersionedObject()));
  EXPECT_FALSE(Must(store.GetHint("o", "k", KeyPosition("k"))).has_value());
  EXPECT_EQ(store.total_hints(), 0u);
  EXPECT_TRUE(Dump(engine, Space::kData).empty());
  EXPECT_TRUE(Dump(engine, Space::kHints).empty());
}

TEST(LocalStoreTest, CorruptStoredObjectsAreReportedNotOverwritten) {
  MemoryEngine engine;
  LocalStore store(&engine, kShape);
  ASSERT_TRUE(store.Rebuild(Ring()).ok());
  const uint64_t pos = KeyPosition("k");
  ASSERT_TRUE(engine.Put(Space::kData, DataKey(pos, "k"), "\xff\xff not a record").ok());
  EXPECT_EQ(store.Get("k", pos).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store.Merge("k", pos, Obj("x"), nullptr).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Dump(engine, Space::kData).begin()->second, "\xff\xff not a record");
}

// ------------------------------------------------------------- range scans

struct Item {
  uint64_t position;
  std::string key;
  friend auto operator<=>(const Item&, const Item&) = default;
};

// Ring order from range.start: positions at or after the start first.
std::vector<Item> NaiveScan(const std::vector<Item>& all, const KeyRange& range) {
  std::vector<Item> in;
  for (const Item& it : all) {
    if (range.Contains(it.position)) in.push_back(it);
  }
  std::sort(in.begin(), in.end(), [&](const Item& a, const Item& b) {
    return std::make_tuple(a.position - range.start, a.key) <
           std::make_tuple(b.position - range.start, b.key);
  });
  return in;
}

std::vector<Item> Scan(LocalStore& store, const KeyRange& range, const std::string& after,
                       size_t limit = ~size_t{0}) {
  std::vector<Item> out;
  absl::Status s = store.ScanRange(
      range, after, [&](std::string_view key, uint64_t position, std::string_view encoded) {
        out.push_back({position, std::string(key)});
        EXPECT_FALSE(encoded.empty());
        return out.size() < limit;
      });
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

TEST(LocalStoreTest, ScanRangeReturnsExactlyTheRangeInRingOrder) {
  MemoryEngine engine;
  LocalStore store(&engine, kShape);
  ASSERT_TRUE(store.Rebuild(Ring()).ok());
  Random rng(11);
  std::vector<Item> all;
  const std::vector<uint64_t> edges = {0, 1, 2, ~0ULL, ~0ULL - 1, 1ULL << 63, (1ULL << 63) - 1};
  for (int i = 0; i < 200; ++i) {
    uint64_t pos = rng.Chance(0.3) ? edges[rng.Uniform(edges.size())] : rng.Next();
    if (!all.empty() && rng.Chance(0.1)) pos = all[rng.Uniform(all.size())].position;  // collision
    const std::string key = "k" + std::to_string(i);
    Must(store.Merge(key, pos, Obj(key), nullptr));
    all.push_back({pos, key});
  }
  std::vector<KeyRange> ranges = {
      {0, 0},                    // whole ring
      {1ULL << 63, 1ULL << 63},  // whole ring, starting half-way
      {~0ULL, ~0ULL},            // whole ring from the last position
      {0, 1ULL << 63},           // first half
      {1ULL << 63, 0},           // second half, ending at the wrap
      {~0ULL - 1, 2},            // wrapping, narrow
      {1, 2},                    // one position
      {~0ULL, 0},                // the last position alone
  };
  for (int i = 0; i < 40; ++i) {
    const uint64_t a = rng.Chance(0.3) ? edges[rng.Uniform(edges.size())] : rng.Next();
    const uint64_t b = rng.Chance(0.3) ? edges[rng.Uniform(edges.size())] : rng.Next();
    ranges.push_back({a, b});
  }
  for (const KeyRange& range : ranges) {
    const std::vector<Item> expected = NaiveScan(all, range);
    ASSERT_EQ(Scan(store, range, ""), expected) << range.ToString();
    // Resuming after any visited key gives exactly the rest.
    for (size_t j = 0; j < expected.size(); j += 1 + expected.size() / 8) {
      const std::string after = DataKey(expected[j].position, expected[j].key);
      const std::vector<Item> rest(expected.begin() + static_cast<long>(j) + 1, expected.end());
      ASSERT_EQ(Scan(store, range, after), rest) << range.ToString() << " after " << j;
    }
    // Stopping early stops.
    if (expected.size() >= 3) {
      ASSERT_EQ(Scan(store, range, "", 3),
                std::vector<Item>(expected.begin(), expected.begin() + 3));
    }
    // The item hashes of the same keys, in the same order, equal the objects'.
    std::vector<Item> hashed;
    ASSERT_TRUE(store
                    .ScanItemHashes(range,
                                    [&](std::string_view key, uint64_t position, uint64_t hash) {
                                      hashed.push_back({position, std::string(key)});
                                      EXPECT_EQ(hash, ItemHash(key, Obj(std::string(key)).Encode()));
                                      return true;
                                    })
                    .ok());
    ASSERT_EQ(hashed, expected) << range.ToString();
  }
}

// Builds the store's trees for `ring`, then stores keys k0 .. k<n-1>, each
// with a one-sibling object of its own name.
void RebuildAndStoreKeys(LocalStore& store, const Ring& ring, int n) {
  ASSERT_TRUE(store.Rebuild(ring).ok());
  for (int i = 0; i < n; ++i) {
    const std::string key = "k" + std::to_string(i);
    Must(store.Merge(key, KeyPosition(key), Obj(key), nullptr));
  }
}

// Forwards to a MemoryEngine and counts the scans of each space.
class ScanCountingEngine final : public storage::StorageEngine {
 public:
  absl::StatusOr<std::string> Get(Space space, std::string_view key) override {
    return inner.Get(space, key);
  }
  absl::Status Put(Space space, std::string_view key, std::string_view value) override {
    return inner.Put(space, key, value);
  }
  absl::Status Delete(Space space, std::string_view key) override { return inner.Delete(space, key); }
  absl::Status Write(const std::vector<storage::WriteOp>& ops) override { return inner.Write(ops); }
  absl::Status Scan(Space space, std::string_view begin, std::string_view end,
                    const storage::ScanVisitor& visit) override {
    ++scans[static_cast<int>(space)];
    return inner.Scan(space, begin, end, visit);
  }
  absl::Status Sync() override { return inner.Sync(); }
  std::string Describe() const override { return "counting"; }

  MemoryEngine inner;
  std::map<int, int> scans;
};

std::vector<uint64_t> Roots(const LocalStore& store) {
  std::vector<uint64_t> roots;
  for (size_t i = 0; i < store.range_count(); ++i) roots.push_back(store.tree(i).Root());
  return roots;
}

// Trees of `ring` rebuilt from the objects alone, as a reference.
std::vector<uint64_t> RootsFromObjects(MemoryEngine& engine, const Ring& ring) {
  MemoryEngine copy;
  for (const auto& [k, v] : Dump(engine, Space::kData)) EXPECT_TRUE(copy.Put(Space::kData, k, v).ok());
  LocalStore fresh(&copy, kShape);
  EXPECT_TRUE(fresh.Rebuild(ring).ok());
  return Roots(fresh);
}

TEST(LocalStoreTest, RebuildReadsNoObjectOnceItemHashesAreStored) {
  const Ring ring = MakeRing(8, {"a", "b", "c"});
  ScanCountingEngine engine;
  {
    LocalStore store(&engine, kShape);
    RebuildAndStoreKeys(store, ring, 100);
  }
  engine.scans.clear();
  LocalStore restarted(&engine, kShape);
  ASSERT_TRUE(restarted.Rebuild(ring).ok());
  EXPECT_EQ(restarted.total_keys(), 100u);
  EXPECT_EQ(engine.scans[static_cast<int>(Space::kData)], 0);
  EXPECT_EQ(engine.scans[static_cast<int>(Space::kItemHashes)], 1);
  EXPECT_EQ(Roots(restarted), RootsFromObjects(engine.inner, ring));
  // A ring change reads the hashes again, not the objects.
  ASSERT_TRUE(restarted.OnRingChange(MakeRing(16, {"a", "b", "c"})).ok());
  EXPECT_EQ(engine.scans[static_cast<int>(Space::kData)], 0);
  EXPECT_EQ(Roots(restarted), RootsFromObjects(engine.inner, MakeRing(16, {"a", "b", "c"})));
}

TEST(LocalStoreTest, AStoreWrittenBeforeItemHashesGetsThemAtItsFirstRebuild) {
  const Ring ring = MakeRing(8, {"a", "b", "c"});
  MemoryEngine engine;
  // Objects as an earlier version stored them: no item hashes, no marker.
  for (int i = 0; i < 3000; ++i) {  // more than one batch of hashes
    const std::string key = "k" + std::to_string(i);
    ASSERT_TRUE(engine.Put(Space::kData, DataKey(KeyPosition(key), key), Obj(key).Encode()).ok());
  }
  LocalStore store(&engine, kShape);
  ASSERT_TRUE(store.Rebuild(ring).ok());
  EXPECT_EQ(store.total_keys(), 3000u);
  EXPECT_TRUE(Must(store.GetMeta(meta::kItemHashesComplete)).has_value());
  ExpectMatchesStorage(store, engine, ring, "after conversion");
}

TEST(LocalStoreTest, ItemHashesAreRecomputedIfAnotherVersionStartedInBetween) {
  const Ring ring = MakeRing(8, {"a", "b", "c"});
  ScanCountingEngine engine;
  auto start = [&](std::optional<uint64_t> previous, uint64_t current) {
    auto store = std::make_unique<LocalStore>(&engine, kShape);
    EXPECT_TRUE(store->BeginGeneration(previous, current).ok());
    engine.scans.clear();
    EXPECT_TRUE(store->Rebuild(ring).ok());
    return store;
  };
  std::unique_ptr<LocalStore> store = start(std::nullopt, 10);
  RebuildAndStoreKeys(*store, ring, 20);
  // The next start of a version that keeps item hashes trusts them...
  store = start(10, 11);
  EXPECT_EQ(engine.scans[static_cast<int>(Space::kData)], 0);
  // ...and so does the one after it.
  store = start(11, 12);
  EXPECT_EQ(engine.scans[static_cast<int>(Space::kData)], 0);
  // An earlier version ran at generation 13 and wrote an object without its hash.
  const uint64_t pos = KeyPosition("unhashed");
  ASSERT_TRUE(engine.Put(Space::kData, DataKey(pos, "unhashed"), Obj("u").Encode()).ok());
  store = start(13, 14);
  EXPECT_EQ(engine.scans[static_cast<int>(Space::kData)], 1);
  EXPECT_EQ(store->total_keys(), 21u);
  EXPECT_EQ(Roots(*store), RootsFromObjects(engine.inner, ring));
  // Filled again, they are trusted again.
  store = start(14, 15);
  EXPECT_EQ(engine.scans[static_cast<int>(Space::kData)], 0);
  EXPECT_EQ(store->total_keys(), 21u);
}

TEST(LocalStoreTest, MalformedItemHashesAreRecomputedFromTheObjects) {
  const Ring ring = MakeRing(8, {"a", "b", "c"});
  MemoryEngine engine;
  LocalStore store(&engine, kShape);
  RebuildAndStoreKeys(store, ring, 50);
  const std::string victim = DataKey(KeyPosition("k7"), "k7");
  ASSERT_TRUE(engine.Put(Space::kItemHashes, victim, "short").ok());
  // A hash with no object behind it must go too.
  ASSERT_TRUE(engine.Put(Space::kItemHashes, DataKey(5, "ghost"), EncodeBigEndian64(42)).ok());
  EXPECT_EQ(store.ScanItemHashes({0, 0}, [](auto, auto, auto) { return true; }).code(),
            absl::StatusCode::kDataLoss);
  LocalStore restarted(&engine, kShape);
  ASSERT_TRUE(restarted.Rebuild(ring).ok());
  EXPECT_EQ(restarted.total_keys(), 50u);
  ExpectMatchesStorage(restarted, engine, ring, "after recomputing");
}

TEST(LocalStoreTest, ScanRangeRefusesAMalformedResumeKey) {
  MemoryEngine engine;
  LocalStore store(&engine, kShape);
  ASSERT_TRUE(store.Rebuild(Ring()).ok());
  EXPECT_EQ(store.ScanRange({0, 0}, "short", [](auto, auto, auto) { return true; }).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LocalStoreTest, ScanRangeWithAResumeKeyOutsideTheRangeVisitsNothingWrong) {
  // A cursor kept for a range that has since changed must not crash the scan
  // nor visit keys outside the range.
  MemoryEngine engine;
  LocalStore store(&engine, kShape);
  ASSERT_TRUE(store.Rebuild(Ring()).ok());
  std::vector<Item> all;
  for (uint64_t pos : {5ULL, 100ULL, 1ULL << 62, 3ULL << 62, ~0ULL}) {
    const std::string key = "k" + std::to_string(pos);
    Must(store.Merge(key, pos, Obj(key), nullptr));
    all.push_back({pos, key});
  }
  const std::vector<KeyRange> ranges = {{3ULL << 61, 0}, {3ULL << 61, 10}, {10, 1ULL << 63}};
  for (const KeyRange& range : ranges) {
    for (uint64_t after_pos : {0ULL, 7ULL, 1ULL << 61, ~0ULL}) {
      const std::string after = DataKey(after_pos, "zzz");
      std::vector<Item> got = Scan(store, range, after);
      for (const Item& it : got) {
        EXPECT_TRUE(range.Contains(it.position)) << range.ToString() << " " << it.position;
      }
    }
  }
}

// ------------------------------------------------------------- hints

TEST(LocalStoreTest, HintsAreCountedPerOwnerAndDeletedOnlyIfUnchanged) {
  MemoryEngine engine;
  LocalStore store(&engine, kShape);
  ASSERT_TRUE(store.Rebuild(Ring()).ok());
  auto pos = [](const std::string& k) { return KeyPosition(k); };
  Must(store.MergeHint("o1", "a", pos("a"), Obj("a1")));
  Must(store.MergeHint("o1", "b", pos("b"), Obj("b1")));
  Must(store.MergeHint("o2", "a", pos("a"), Obj("a1")));
  Must(store.MergeHint("o1", "a", pos("a"), Obj("a1")));  // the same again: no new hint
  EXPECT_EQ(store.hint_counts(),
            (std::map<std::string, uint64_t, std::less<>>{{"o1", 2}, {"o2", 1}}));
  EXPECT_EQ(store.total_hints(), 3u);
  EXPECT_EQ(store.total_keys(), 0u) << "hints are not replicas";

  // A hint that changed since it was read is kept.
  const std::string read = Must(store.GetHint("o1", "a", pos("a")))->encoded;
  Must(store.MergeHint("o1", "a", pos("a"), Obj("a-concurrent", "x#1", 1)));
  EXPECT_FALSE(Must(store.DeleteHintIfUnchanged("o1", "a", pos("a"), read)));
  EXPECT_EQ(store.hint_counts().at("o1"), 2u);
  EXPECT_EQ(Must(store.GetHint("o1", "a", pos("a")))->object.siblings().size(), 2u);

  const std::string now = Must(store.GetHint("o1", "a", pos("a")))->encoded;
  EXPECT_TRUE(Must(store.DeleteHintIfUnchanged("o1", "a", pos("a"), now)));
  EXPECT_FALSE(Must(store.DeleteHintIfUnchanged("o1", "a", pos("a"), now))) << "already gone";
  EXPECT_EQ(store.hint_counts().at("o1"), 1u);
  const std::string b = Must(store.GetHint("o1", "b", pos("b")))->encoded;
  EXPECT_TRUE(Must(store.DeleteHintIfUnchanged("o1", "b", pos("b"), b)));
  EXPECT_FALSE(store.hint_counts().contains("o1")) << "an owner without hints is dropped";
  EXPECT_EQ(store.total_hints(), 1u);

  LocalStore fresh(&engine, kShape);
  ASSERT_TRUE(fresh.Rebuild(Ring()).ok());
  EXPECT_EQ(fresh.hint_counts(), store.hint_counts());
}

TEST(LocalStoreTest, ScanHintsListsOneOwnersHintsInPositionOrder) {
  MemoryEngine engine;
  LocalStore store(&engine, kShape);
  ASSERT_TRUE(store.Rebuild(Ring()).ok());
  std::vector<uint64_t> positions;
  for (int i = 0; i < 20; ++i) {
    const std::string key = "k" + std::to_string(i);
    Must(store.MergeHint("owner", key, KeyPosition(key), Obj(key)));
    Must(store.MergeHint("owner2", key, KeyPosition(key), Obj(key)));  // a longer id, a prefix
    Must(store.MergeHint("own", key, KeyPosition(key), Obj(key)));     // a shorter one
    positions.push_back(KeyPosition(key));
  }
  std::sort(positions.begin(), positions.end());
  std::vector<LocalStore::Hint> hints = Must(store.ScanHints("owner", 100));
  ASSERT_EQ(hints.size(), 20u);
  for (size_t i = 0; i < hints.size(); ++i) {
    EXPECT_EQ(hints[i].position, positions[i]);
    EXPECT_EQ(KeyPosition(hints[i].key), hints[i].position);
    EXPECT_EQ(Must(VersionedObject::Decode(hints[i].encoded)), Obj(hints[i].key));
  }
  EXPECT_EQ(Must(store.ScanHints("owner", 7)).size(), 7u);
  EXPECT_TRUE(Must(store.ScanHints("nobody", 7)).empty());
}

// ------------------------------------------------------------- ring changes

TEST(LocalStoreTest, OnRingChangeKeepsTreesWhenRangesAreUnchanged) {
  MemoryEngine engine;
  LocalStore store(&engine, kShape);
  const Ring ring = MakeRing(8, {"a", "b", "c"});
  RebuildAndStoreKeys(store, ring, 50);
  std::vector<uint64_t> roots;
  for (size_t i = 0; i < store.range_count(); ++i) roots.push_back(store.tree(i).Root());

  // A record written behind the store's back tells a kept tree from a rebuilt one.
  const uint64_t pos = KeyPosition("sneaky");
  ASSERT_TRUE(engine.Put(Space::kData, DataKey(pos, "sneaky"), Obj("s").Encode()).ok());
  ASSERT_TRUE(engine
                  .Put(Space::kItemHashes, DataKey(pos, "sneaky"),
                       EncodeBigEndian64(ItemHash("sneaky", Obj("s").Encode())))
                  .ok());

  // Other owners, same Q: the same ranges, trees kept.
  const Ring reowned = MakeRing(8, {"a", "b", "c", "d"}, 2);
  ASSERT_TRUE(store.OnRingChange(reowned).ok());
  ASSERT_EQ(store.range_count(), 8u);
  for (size_t i = 0; i < store.range_count(); ++i) EXPECT_EQ(store.tree(i).Root(), roots[i]);
  EXPECT_EQ(store.total_keys(), 50u);

  // Other ranges: rebuilt from storage.
  const Ring finer = MakeRing(16, {"a", "b", "c"});
  ASSERT_TRUE(store.OnRingChange(finer).ok());
  EXPECT_EQ(store.range_count(), 16u);
  EXPECT_EQ(store.total_keys(), 51u);
  for (size_t i = 0; i < store.range_count(); ++i) {
    EXPECT_EQ(store.range(i), finer.ranges()[i]);
    EXPECT_EQ(store.FindRange(finer.ranges()[i]), std::optional<size_t>(i));
  }
  EXPECT_FALSE(store.FindRange({1, 2}).has_value());

  // No ring: one whole-ring tree.
  ASSERT_TRUE(store.OnRingChange(Ring()).ok());
  ASSERT_EQ(store.range_count(), 1u);
  EXPECT_TRUE(store.range(0).IsWholeRing());
  EXPECT_EQ(store.key_count(0), 51u);
}

TEST(LocalStoreTest, MetadataRoundTrips) {
  MemoryEngine engine;
  LocalStore store(&engine, kShape);
  EXPECT_FALSE(Must(store.GetMeta("x")).has_value());
  ASSERT_TRUE(store.PutMeta("x", std::string("\0\1", 2)).ok());
  EXPECT_EQ(Must(store.GetMeta("x")), std::optional<std::string>(std::string("\0\1", 2)));
}

}  // namespace
}  // namespace dynamo::core
