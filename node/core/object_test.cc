#include "dynamo/core/object.h"

#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <map>
#include <set>

#include "dynamo/core/context.h"
#include "dynamo/core/random.h"

namespace dynamo::core {
namespace {

std::vector<std::string> Values(const VersionedObject& o) {
  std::vector<std::string> v;
  for (const Sibling& s : o.siblings()) {
    if (!s.tombstone) v.push_back(s.value);
  }
  std::sort(v.begin(), v.end());
  return v;
}

// Replicas of one key driven by random writes (each through a coordinator
// with its own actor and counter) and random merges: the states a real
// cluster can reach.
struct Cluster {
  std::vector<VersionedObject> replicas;
  std::map<std::string, uint64_t> counters;
  int64_t now = 1;
  int next_value = 0;

  explicit Cluster(size_t n) : replicas(n) {}

  // A client read `from`, then wrote through coordinator `at` with that context.
  std::string Write(size_t at, const VersionVector& context, bool tombstone = false) {
    const std::string actor = "n" + std::to_string(at) + "#1";
    uint64_t& c = counters[actor];
    c = std::max({c, replicas[at].clock().Counter(actor), context.Counter(actor)}) + 1;
    const std::string value = "v" + std::to_string(next_value++);
    replicas[at].Write(context, Dot{actor, c}, value, tombstone, now++);
    return value;
  }
};

// k states of one key from one random history (dots are unique cluster-wide,
// so states from different histories could not meet in a real cluster).
std::vector<VersionedObject> RandomObjects(Random& rng, size_t k) {
  Cluster c(3);
  std::vector<VersionedObject> snapshots;
  while (snapshots.size() < k) {
    const size_t a = rng.Uniform(3), b = rng.Uniform(3);
    if (rng.Chance(0.6)) {
      VersionVector ctx = rng.Chance(0.5) ? c.replicas[b].clock() : VersionVector();
      c.Write(a, ctx, rng.Chance(0.1));
    } else {
      c.replicas[a].Merge(c.replicas[b]);
    }
    if (rng.Chance(0.15)) snapshots.push_back(c.replicas[rng.Uniform(3)]);
  }
  return snapshots;
}

VersionedObject RandomObject(Random& rng) { return RandomObjects(rng, 1)[0]; }

TEST(VersionedObjectTest, BlindWritesAreSiblings) {
  Cluster c(1);
  c.Write(0, {});
  c.Write(0, {});
  EXPECT_EQ(Values(c.replicas[0]), (std::vector<std::string>{"v0", "v1"}));
}

TEST(VersionedObjectTest, WriteWithContextReplacesWhatItSaw) {
  Cluster c(1);
  c.Write(0, {});
  c.Write(0, {});
  const VersionVector ctx = c.replicas[0].clock();
  c.Write(0, ctx);
  EXPECT_EQ(Values(c.replicas[0]), (std::vector<std::string>{"v2"}));
}

TEST(VersionedObjectTest, ConcurrentWritesOnTwoReplicasBecomeSiblingsAfterMerge) {
  Cluster c(2);
  c.Write(0, {});
  c.replicas[1].Merge(c.replicas[0]);
  const VersionVector seen = c.replicas[0].clock();
  c.Write(0, seen);  // v1 and v2 both replace v0 but do not know each other
  c.Write(1, seen);
  c.replicas[0].Merge(c.replicas[1]);
  EXPECT_EQ(Values(c.replicas[0]), (std::vector<std::string>{"v1", "v2"}));
  // A write with the merged context resolves them.
  c.Write(0, c.replicas[0].clock());
  c.replicas[1].Merge(c.replicas[0]);
  EXPECT_EQ(Values(c.replicas[1]), (std::vector<std::string>{"v3"}));
}

// Riak's sibling explosion: one client writing again and again with the same
// stale context must not pile up siblings beyond the truly concurrent ones.
TEST(VersionedObjectTest, StaleContextFromOneClientKeepsOnlyTrulyConcurrentValues) {
  Cluster c(1);
  c.Write(0, {});
  const VersionVector stale = c.replicas[0].clock();
  for (int i = 0; i < 50; ++i) c.Write(0, stale);
  // Each write replaced v0 only; the 50 writes are concurrent with each
  // other from the store's point of view, as the client never read them...
  EXPECT_EQ(c.replicas[0].live_sibling_count(), 50u);
  // ...but a client that writes with the context its previous put returned
  // keeps exactly one value.
  Cluster d(1);
  VersionVector ctx;
  for (int i = 0; i < 50; ++i) {
    d.Write(0, ctx);
    ctx = d.replicas[0].clock();
  }
  EXPECT_EQ(d.replicas[0].live_sibling_count(), 1u);
}

TEST(VersionedObjectTest, MergeDropsValuesTheOtherSideOverwrote) {
  Cluster c(2);
  c.Write(0, {});
  c.replicas[1].Merge(c.replicas[0]);
  c.Write(1, c.replicas[1].clock());  // v1 overwrites v0 on replica 1
  c.replicas[0].Merge(c.replicas[1]);
  EXPECT_EQ(Values(c.replicas[0]), (std::vector<std::string>{"v1"}));
}

TEST(VersionedObjectTest, TombstoneHidesValueButKeepsContext) {
  Cluster c(1);
  c.Write(0, {});
  c.Write(0, c.replicas[0].clock(), /*tombstone=*/true);
  EXPECT_TRUE(c.replicas[0].IsDeleted());
  EXPECT_EQ(c.replicas[0].siblings().size(), 1u);
  c.Write(0, c.replicas[0].clock());
  EXPECT_FALSE(c.replicas[0].IsDeleted());
  EXPECT_EQ(c.replicas[0].siblings().size(), 1u);
}

TEST(VersionedObjectTest, EncodeDecodeRoundTripsAndIsCanonical) {
  Random rng(7);
  for (int i = 0; i < 500; ++i) {
    VersionedObject o = RandomObject(rng);
    absl::StatusOr<VersionedObject> back = VersionedObject::Decode(o.Encode());
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, o);
    EXPECT_EQ(back->Encode(), o.Encode());
  }
}

TEST(VersionedObjectTest, DecodeRefusesMalformedObjects) {
  EXPECT_FALSE(VersionedObject::Decode("\xff\xff\xff garbage").ok());
  v1::ObjectRecord r;
  auto* s = r.add_siblings();
  s->mutable_dot()->set_actor("a");
  s->mutable_dot()->set_counter(3);
  EXPECT_FALSE(VersionedObject::FromProto(r).ok()) << "sibling not covered by the clock";
  auto* e = r.add_clock();
  e->set_actor("a");
  e->set_counter(3);
  EXPECT_TRUE(VersionedObject::FromProto(r).ok());
  *r.add_siblings() = *s;
  EXPECT_FALSE(VersionedObject::FromProto(r).ok()) << "duplicate dot";
  r.mutable_siblings()->RemoveLast();
  *r.add_clock() = *e;
  EXPECT_FALSE(VersionedObject::FromProto(r).ok()) << "duplicate actor";
  v1::ObjectRecord zero;
  auto* z = zero.add_clock();
  z->set_actor("a");
  z->set_counter(0);
  EXPECT_FALSE(VersionedObject::FromProto(zero).ok()) << "zero counter";
}

TEST(VersionedObjectTest, PruneKeepsSiblingActorsAndDropsOldest) {
  VersionedObject o;
  VersionVector ctx;
  for (int i = 0; i < 15; ++i) ctx.Advance("old" + std::to_string(i), 1, /*timestamp_ms=*/i);
  o.Write(ctx, Dot{"writer", 1}, "x", false, 100);
  EXPECT_EQ(o.clock().size(), 16u);
  EXPECT_EQ(o.PruneClock(10), 6u);
  EXPECT_EQ(o.clock().size(), 10u);
  EXPECT_EQ(o.clock().Counter("writer"), 1u);
  EXPECT_EQ(o.clock().Counter("old0"), 0u) << "oldest entries go first";
  EXPECT_EQ(o.clock().Counter("old14"), 1u);
}

TEST(ContextTest, RoundTripsAndRefusesOtherKeysAndGarbage) {
  VersionVector vv;
  vv.Advance("a#1", 4, 10);
  const std::string bytes = EncodeContext(42, vv);
  absl::StatusOr<VersionVector> back = DecodeContext(bytes, 42);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->Counter("a#1"), 4u);
  EXPECT_FALSE(DecodeContext(bytes, 43).ok());
  EXPECT_FALSE(DecodeContext("not a context", 42).ok());
  EXPECT_TRUE(DecodeContext("", 42)->empty());
}

// The lattice laws of merge, over states reachable by real operations.
RC_GTEST_PROP(VersionedObjectLattice, MergeIsCommutative, (uint64_t seed)) {
  Random rng(seed);
  std::vector<VersionedObject> s = RandomObjects(rng, 2);
  const VersionedObject& a = s[0];
  const VersionedObject& b = s[1];
  VersionedObject ab = a, ba = b;
  ab.Merge(b);
  ba.Merge(a);
  RC_ASSERT(ab == ba);
}

RC_GTEST_PROP(VersionedObjectLattice, MergeIsAssociative, (uint64_t seed)) {
  Random rng(seed);
  std::vector<VersionedObject> s = RandomObjects(rng, 3);
  const VersionedObject& a = s[0];
  const VersionedObject& b = s[1];
  const VersionedObject& c = s[2];
  VersionedObject left = a;
  left.Merge(b);
  left.Merge(c);
  VersionedObject bc = b;
  bc.Merge(c);
  VersionedObject right = a;
  right.Merge(bc);
  RC_ASSERT(left == right);
}

RC_GTEST_PROP(VersionedObjectLattice, MergeIsIdempotent, (uint64_t seed)) {
  Random rng(seed);
  VersionedObject a = RandomObject(rng);
  VersionedObject aa = a;
  RC_ASSERT(!aa.Merge(a));
  RC_ASSERT(aa == a);
}

// What lets a replica store a write without reading its own object: when
// ReplacesAnyWithClock holds, the merge gives the incoming object itself.
RC_GTEST_PROP(VersionedObjectLattice, ReplacesAnyWithClockOnlyWhenTheMergeGivesTheIncoming,
              (uint64_t seed)) {
  Random rng(seed);
  std::vector<VersionedObject> s = RandomObjects(rng, 2);
  VersionedObject stored = s[0];
  VersionedObject incoming = s[1];
  if (rng.Chance(0.5)) {
    // The common case: a coordinator's write built on a copy of `stored`,
    // with a context that saw part or all of it.
    incoming = stored;
    const VersionVector context = rng.Chance(0.7) ? stored.clock() : VersionVector();
    incoming.Write(context, Dot{"w#1", stored.clock().Counter("w#1") + 1}, "new", false,
                   static_cast<int64_t>(rng.Uniform(1000)));
  }
  const bool replaces = incoming.ReplacesAnyWithClock(stored.clock());
  RC_TAG(replaces);
  VersionedObject merged = stored;
  const bool changed = merged.Merge(incoming);
  if (replaces) {
    RC_ASSERT(merged == incoming);
    RC_ASSERT(changed);
  }
}

TEST(VersionedObjectTest, ReplacesAnyWithClockNeedsTheWholeClockAndOnlyNewSiblings) {
  VersionVector stored;
  stored.Advance("a", 2, 50);
  VersionedObject incoming;
  incoming.Write(stored, Dot{"w", 1}, "x", false, 60);
  EXPECT_TRUE(incoming.ReplacesAnyWithClock(stored));
  VersionVector later = stored;
  later.Advance("a", 2, 55);  // same counter, a later time: the merge keeps it
  EXPECT_FALSE(incoming.ReplacesAnyWithClock(later));
  later = stored;
  later.Advance("b", 1, 1);
  EXPECT_FALSE(incoming.ReplacesAnyWithClock(later)) << "an entry it lacks";
  later = stored;
  later.Advance("w", 1, 60);
  EXPECT_FALSE(incoming.ReplacesAnyWithClock(later)) << "its sibling may have been dropped";
  EXPECT_FALSE(VersionedObject::OfClock(stored).ReplacesAnyWithClock(stored)) << "no sibling";
}

// A coordinator whose write's context covers the stored clock builds on the
// clock alone (OfClock) and gets what building on the whole object gives.
RC_GTEST_PROP(VersionedObjectLattice, AWriteCoveringTheClockNeedsOnlyTheClock, (uint64_t seed)) {
  Random rng(seed);
  VersionedObject stored = RandomObject(rng);
  VersionVector context = stored.clock();
  if (rng.Chance(0.5)) context.Advance("other#1", 1 + rng.Uniform(3), 5);
  const Dot dot{"w#1", stored.clock().Counter("w#1") + 1};
  const bool tombstone = rng.Chance(0.2);
  VersionedObject whole = stored;
  whole.Write(context, dot, "new", tombstone, 77);
  VersionedObject from_clock = VersionedObject::OfClock(stored.clock());
  from_clock.Write(context, dot, "new", tombstone, 77);
  RC_ASSERT(from_clock == whole);
  RC_ASSERT(whole.ReplacesAnyWithClock(stored.clock()));
}

RC_GTEST_PROP(VersionVectorLattice, MergeLaws, (uint64_t seed)) {
  Random rng(seed);
  auto random_vv = [&] {
    VersionVector v;
    for (int i = 0, n = static_cast<int>(rng.Uniform(6)); i < n; ++i) {
      v.Advance("a" + std::to_string(rng.Uniform(5)), 1 + rng.Uniform(9),
                static_cast<int64_t>(rng.Uniform(100)));
    }
    return v;
  };
  VersionVector a = random_vv(), b = random_vv(), c = random_vv();
  VersionVector ab = a, ba = b;
  ab.Merge(b);
  ba.Merge(a);
  RC_ASSERT(ab == ba);
  VersionVector abc = ab, bc = b;
  abc.Merge(c);
  bc.Merge(c);
  VersionVector a_bc = a;
  a_bc.Merge(bc);
  RC_ASSERT(abc == a_bc);
  VersionVector aa = a;
  aa.Merge(a);
  RC_ASSERT(aa == a);
  RC_ASSERT(ab.Descends(a) && ab.Descends(b));
}

// A merged replica never loses a value that some replica still holds and
// that no write has overwritten (checked against a naive model of causality).
TEST(VersionedObjectTest, MergeKeepsExactlyTheValuesNoWriteOverwrote) {
  for (uint64_t seed = 1; seed <= 300; ++seed) {
    Random rng(seed);
    Cluster c(3);
    std::set<std::string> written, overwritten;
    std::vector<std::set<std::string>> seen(3);  // values each replica's clock has seen
    for (int step = 0; step < 30; ++step) {
      const size_t a = rng.Uniform(3), b = rng.Uniform(3);
      if (rng.Chance(0.5)) {
        const bool with_ctx = rng.Chance(0.7);
        VersionVector ctx = with_ctx ? c.replicas[b].clock() : VersionVector();
        std::set<std::string> ctx_seen = with_ctx ? seen[b] : std::set<std::string>();
        const std::string v = c.Write(a, ctx);
        written.insert(v);
        overwritten.insert(ctx_seen.begin(), ctx_seen.end());
        seen[a].insert(ctx_seen.begin(), ctx_seen.end());
        seen[a].insert(v);
      } else {
        c.replicas[a].Merge(c.replicas[b]);
        seen[a].insert(seen[b].begin(), seen[b].end());
      }
    }
    VersionedObject all;
    for (const auto& r : c.replicas) all.Merge(r);
    std::set<std::string> expected;
    for (const std::string& v : written) {
      if (!overwritten.contains(v)) expected.insert(v);
    }
    std::vector<std::string> got = Values(all);
    EXPECT_EQ(std::set<std::string>(got.begin(), got.end()), expected) << "seed " << seed;
  }
}

}  // namespace
}  // namespace dynamo::core
