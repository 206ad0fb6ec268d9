// Scenarios of the deterministic simulator, each over many seeds.
//   DYNAMO_SIM_SEEDS=n   runs n seeds per scenario (default: a CI-sized number)
//   DYNAMO_SIM_SEED=s    replays one seed exactly (a failure prints the command)

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "dynamo/core/context.h"
#include "dynamo/core/hash.h"
#include "faults.h"
#include "simulation.h"
#include "workload.h"

namespace dynamo::sim {
namespace {

std::vector<uint64_t> Seeds(uint64_t default_count) {
  if (const char* one = std::getenv("DYNAMO_SIM_SEED")) return {std::strtoull(one, nullptr, 10)};
  uint64_t count = default_count;
  if (const char* n = std::getenv("DYNAMO_SIM_SEEDS")) count = std::strtoull(n, nullptr, 10);
  std::vector<uint64_t> seeds;
  for (uint64_t s = 1; s <= count; ++s) seeds.push_back(s);
  return seeds;
}

std::string Replay(const Simulation& sim) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (const char* grep = std::getenv("DYNAMO_SIM_GREP")) {
    std::string lines;
    for (absl::string_view line : absl::StrSplit(sim.Trace(1000000), '\n')) {
      if (absl::StrContains(line, grep)) absl::StrAppend(&lines, line, "\n");
    }
    std::fprintf(stderr, "trace lines with '%s':\n%s", grep, lines.c_str());
  }
  return absl::StrCat("seed ", sim.seed(), " failed; replay with: DYNAMO_SIM_SEED=", sim.seed(),
                      " tests/sim/dynamo_sim_test --gtest_filter=", info->test_suite_name(), ".",
                      info->name(), "\nlast events:\n", sim.Trace(150));
}

// Acknowledgements come only after W replicas hold the write durably: at the
// moment a coordinator emits an OK put, at least W nodes have synced a version
// that includes it (a machine crash of all of them would keep it).
void CheckAcksAfterW(Simulation& sim, size_t w, std::string* violation) {
  sim.on_coordinator_reply = [&sim, w, violation](size_t, const core::ClientReply& reply) {
    if (!reply.status.ok() || !violation->empty()) return;
    const auto* put = std::get_if<v1::PutResponse>(&reply.response);
    if (put == nullptr) return;
    // The context names the key only by position; find the key by scanning.
    for (const std::string& key : sim.AllKeys()) {
      absl::StatusOr<core::VersionVector> ctx =
          core::DecodeContext(put->context(), core::KeyPosition(key));
      if (!ctx.ok()) continue;
      size_t holders = 0;
      for (size_t i = 0; i < sim.size(); ++i) {
        auto obj = sim.StoredDurably(i, key);
        if (obj && obj->clock().Descends(*ctx)) ++holders;
      }
      if (holders < w) {
        *violation = absl::StrCat("put to ", key, " acknowledged with ", holders, " durable copies");
      }
      return;
    }
  };
}

TEST(Simulation, SameSeedReplaysExactly) {
  auto run = [](uint64_t seed) {
    Simulation sim(DefaultSimOptions(seed, 5));
    EXPECT_TRUE(sim.FormCluster());
    History h;
    Workload w(sim, h, {});
    w.Start();
    InjectRandomFaults(sim, 5000, 2);
    return std::make_tuple(sim.Trace(4000), sim.messages_sent(), sim.messages_dropped(),
                           h.writes().size());
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(std::get<1>(run(42)), std::get<1>(run(43)));
}

TEST(Simulation, FaultFreeRunAnswersEveryRequest) {
  for (uint64_t seed : Seeds(5)) {
    Simulation sim(DefaultSimOptions(seed, 5));
    ASSERT_TRUE(sim.FormCluster()) << Replay(sim);
    int ok = 0, failed = 0;
    for (int i = 0; i < 200; ++i) {
      sim.Put(i % 5, absl::StrCat("key", i), absl::StrCat("v", i), "",
              [&](const core::ClientReply& r) { (r.status.ok() ? ok : failed)++; });
      sim.RunFor(5);
    }
    sim.RunFor(2000);
    EXPECT_EQ(failed, 0) << Replay(sim);
    EXPECT_EQ(ok, 200) << Replay(sim);
  }
}

TEST(Simulation, NoAcknowledgedWriteIsLostAndReplicasConverge) {
  for (uint64_t seed : Seeds(30)) {
    SimOptions options = DefaultSimOptions(seed, 5);
    // Every other seed's clients allow less than the request timeout (500 ms)
    // at times: coordinators answer them before their replicas all have.
    if (seed % 2 == 0) {
      options.client_deadline_min_ms = 50;
      options.client_deadline_max_ms = 1000;
    }
    if (std::getenv("DYNAMO_SIM_GREP")) options.trace_max = 1000000;
    Simulation sim(options);
    ASSERT_TRUE(sim.FormCluster()) << Replay(sim);
    std::string ack_violation;
    CheckAcksAfterW(sim, 2, &ack_violation);
    History history;
    Workload workload(sim, history, {});
    workload.Start();
    InjectRandomFaults(sim, 20000, 2);
    workload.Stop();
    HealEverything(sim);
    const int64_t healed_at = sim.now();
    std::string why;
    const bool converged = sim.RunUntil([&] { return Converged(sim, &why); }, 180000);
    ASSERT_TRUE(converged) << "not converged 180 s after healing: " << why << "\n" << Replay(sim);
    // Every operation ends, answered or not, within two request timeouts (a
    // write's replicas may answer after its client's deadline).
    sim.RunFor(2 * options.node.request_timeout_ms + 100);
    for (size_t i = 0; i < sim.size(); ++i) {
      if (sim.up(i)) {
        EXPECT_EQ(sim.node(i)->operations_in_flight(), 0u) << "node " << i << "\n" << Replay(sim);
      }
    }
    // What arrived late (a write's replicas, a repair) may have left replicas
    // apart again: the final state is taken once they agree again, so that
    // the merge FinalValues makes of every node hides no divergence.
    ASSERT_TRUE(sim.RunUntil([&] { return Converged(sim, &why); }, 60000))
        << "diverged after the last operations ended: " << why << "\n" << Replay(sim);
    CheckReport report = CheckHistory(history, sim);
    EXPECT_TRUE(report.ok()) << report.Summary() << "\n"
                             << (report.problems.empty() ? "" : report.problems[0]) << "\n"
                             << Replay(sim);
    EXPECT_TRUE(ack_violation.empty()) << ack_violation << "\n" << Replay(sim);
    EXPECT_GT(report.writes_acked, 20u) << Replay(sim);  // not vacuous, even on a bad seed
    RecordProperty(absl::StrCat("seed", seed, "_converge_ms"), sim.now() - healed_at);
  }
}

TEST(Simulation, SloppyQuorumAcceptsWritesAndHintsReachOwners) {
  for (uint64_t seed : Seeds(20)) {
    Simulation sim(DefaultSimOptions(seed, 5));
    ASSERT_TRUE(sim.FormCluster()) << Replay(sim);
    const std::string key = "sloppy";
    const auto owners =
        sim.node(0)->membership().ring().PreferenceList(core::KeyPosition(key), 3);
    // Two of the three owners go down: W=2 can only be met by a fallback.
    const size_t a = sim.IndexOf(owners[1]), b = sim.IndexOf(owners[2]);
    sim.Crash(a);
    sim.Crash(b);
    const size_t coordinator = sim.IndexOf(owners[0]);
    bool acked = false;
    std::string value;  // the first attempt may fail (the owners are not yet suspected)
    for (int attempt = 0; attempt < 20 && !acked; ++attempt) {
      value = absl::StrCat("while-owners-down-", attempt);
      sim.Put(coordinator, key, value, "", [&](const core::ClientReply& r) { acked = r.status.ok(); });
      sim.RunFor(1500);
    }
    ASSERT_TRUE(acked) << "write not accepted with 2 of 3 owners down\n" << Replay(sim);
    uint64_t hints = 0;
    for (size_t i = 0; i < sim.size(); ++i) {
      if (sim.up(i)) hints += sim.node(i)->hint_backlog();
    }
    EXPECT_GT(hints, 0u) << "a fallback should hold a hint for a down owner\n" << Replay(sim);
    sim.Restart(a);
    sim.Restart(b);
    const bool delivered = sim.RunUntil(
        [&] {
          for (size_t owner : {a, b}) {
            auto obj = sim.Stored(owner, key);
            if (!obj || std::none_of(obj->siblings().begin(), obj->siblings().end(),
                                     [&](const core::Sibling& s) { return s.value == value; })) {
              return false;
            }
          }
          for (size_t i = 0; i < sim.size(); ++i) {
            if (sim.node(i)->hint_backlog() != 0) return false;
          }
          return true;
        },
        60000);
    EXPECT_TRUE(delivered) << "hints did not reach the returning owners\n" << Replay(sim);
    uint64_t delivered_count = 0;
    for (size_t i = 0; i < sim.size(); ++i) delivered_count += sim.node(i)->counters().hints_delivered;
    EXPECT_GT(delivered_count, 0u) << Replay(sim);
  }
}

TEST(Simulation, ConcurrentWritersMakeSiblingsAndMergedContextResolvesThem) {
  for (uint64_t seed : Seeds(20)) {
    Simulation sim(DefaultSimOptions(seed, 5));
    ASSERT_TRUE(sim.FormCluster()) << Replay(sim);
    int acks = 0;
    // Two clients write the same key at the same time without a context.
    sim.Put(1, "doc", "from-alice", "", [&](const core::ClientReply& r) { acks += r.status.ok(); });
    sim.Put(3, "doc", "from-bob", "", [&](const core::ClientReply& r) { acks += r.status.ok(); });
    sim.RunFor(1000);
    ASSERT_EQ(acks, 2) << Replay(sim);
    v1::GetResponse got;
    sim.Get(2, "doc", [&](const core::ClientReply& r) {
      if (r.status.ok()) got = std::get<v1::GetResponse>(r.response);
    });
    sim.RunFor(1000);
    ASSERT_EQ(got.siblings_size(), 2) << Replay(sim);
    // The application resolves them and writes back with the read's context.
    bool resolved = false;
    sim.Put(4, "doc", "merged", got.context(), [&](const core::ClientReply& r) { resolved = r.status.ok(); });
    sim.RunFor(1000);
    ASSERT_TRUE(resolved) << Replay(sim);
    std::string why;
    ASSERT_TRUE(sim.RunUntil([&] { return Converged(sim, &why); }, 30000)) << why << Replay(sim);
    for (size_t i = 0; i < sim.size(); ++i) {
      v1::GetResponse after;
      sim.Get(i, "doc", [&](const core::ClientReply& r) {
        if (r.status.ok()) after = std::get<v1::GetResponse>(r.response);
      });
      sim.RunFor(500);
      ASSERT_EQ(after.siblings_size(), 1) << Replay(sim);
      EXPECT_EQ(after.siblings(0).value(), "merged") << Replay(sim);
    }
  }
}

// Riak's sibling explosion: two clients keep writing one key, each with the
// context its own previous write returned (never the other's). Only the two
// latest values are truly concurrent; plain vector clocks would pile up more.
TEST(Simulation, StaleContextsKeepOnlyTrulyConcurrentSiblings) {
  for (uint64_t seed : Seeds(10)) {
    Simulation sim(DefaultSimOptions(seed, 5));
    ASSERT_TRUE(sim.FormCluster()) << Replay(sim);
    std::string ctx[2];
    size_t most = 0;
    for (int round = 0; round < 30; ++round) {
      for (int c = 0; c < 2; ++c) {
        sim.Put(static_cast<size_t>(round + c) % 5, "cart", absl::StrCat("client", c, "-", round),
                ctx[c], [&, c](const core::ClientReply& r) {
                  if (r.status.ok()) ctx[c] = std::get<v1::PutResponse>(r.response).context();
                });
        sim.RunFor(300);
      }
      sim.Get(round % 5, "cart", [&](const core::ClientReply& r) {
        if (r.status.ok()) {
          most = std::max<size_t>(most, std::get<v1::GetResponse>(r.response).siblings_size());
        }
      });
      sim.RunFor(300);
    }
    EXPECT_LE(most, 2u) << "siblings piled up beyond the two concurrent writers\n" << Replay(sim);
    EXPECT_EQ(most, 2u) << Replay(sim);
  }
}

// A node whose disk is replaced must not reuse the clock counters of its
// earlier life: its new writes would look already seen and vanish.
TEST(Simulation, WipedNodeTakesNewEpochAndLosesNoWrite) {
  for (uint64_t seed : Seeds(10)) {
    Simulation sim(DefaultSimOptions(seed, 5));
    ASSERT_TRUE(sim.FormCluster()) << Replay(sim);
    const std::string key = "account";
    const auto owners = sim.node(0)->membership().ring().PreferenceList(core::KeyPosition(key), 3);
    const size_t x = sim.IndexOf(owners[0]);
    std::string ctx;
    for (int i = 0; i < 5; ++i) {  // x coordinates several writes: its counters advance
      sim.Put(x, key, absl::StrCat("old", i), ctx, [&](const core::ClientReply& r) {
        if (r.status.ok()) ctx = std::get<v1::PutResponse>(r.response).context();
      });
      sim.RunFor(300);
    }
    const std::string old_actor = sim.node(x)->actor();
    for (int i = 0; i < 20; ++i) {
      sim.Put(static_cast<size_t>(i) % 5, absl::StrCat("other", i), "x", "", [](const core::ClientReply&) {});
    }
    sim.RunFor(1000);
    sim.Wipe(x);
    sim.Restart(x);
    EXPECT_NE(sim.node(x)->actor(), old_actor) << Replay(sim);
    ASSERT_TRUE(sim.RunUntil([&] { return sim.node(x)->Ready(nullptr); }, 10000))
        << "the wiped node did not learn the ring again\n" << Replay(sim);
    bool acked = false;
    sim.Put(x, key, "after-wipe", "", [&](const core::ClientReply& r) { acked = r.status.ok(); });
    sim.RunFor(1000);
    ASSERT_TRUE(acked) << Replay(sim);
    std::string why;
    ASSERT_TRUE(sim.RunUntil([&] { return Converged(sim, &why); }, 60000)) << why << Replay(sim);
    auto values = FinalValues(sim)[key];
    EXPECT_NE(std::find(values.begin(), values.end(), "after-wipe"), values.end())
        << "the write made after the wipe was lost\n" << Replay(sim);
    // Anti-entropy gave the wiped node back every key it owns.
    for (int i = 0; i < 20; ++i) {
      const std::string k = absl::StrCat("other", i);
      const auto ko = sim.node(0)->membership().ring().PreferenceList(core::KeyPosition(k), 3);
      if (std::find(ko.begin(), ko.end(), sim.id(x)) != ko.end()) {
        EXPECT_TRUE(sim.Stored(x, k).has_value()) << k << "\n" << Replay(sim);
      }
    }
  }
}

// A coordinator's replica writes leave before its own write is durable (its
// sync overlaps the replicas'). If it then loses power, the replicas hold a
// value it no longer has: after the restart its clock must not claim to have
// seen that value, or its next write would silently replace it. So too soon
// after a clean restart: the power loss must not take the record that the node
// runs again, or it would keep its actor and reuse the lost write's dot.
void PowerLossAfterReplicaWritesLeft(bool restarted_cleanly_before) {
  for (uint64_t seed : Seeds(10)) {
    SimOptions options = DefaultSimOptions(seed, 5);
    options.sync_min_ms = options.sync_max_ms = 50;  // a slow disk: a wide window
    Simulation sim(options);
    ASSERT_TRUE(sim.FormCluster()) << Replay(sim);
    const std::string key = "ledger";
    const auto owners = sim.node(0)->membership().ring().PreferenceList(core::KeyPosition(key), 3);
    const size_t x = sim.IndexOf(owners[0]);
    if (restarted_cleanly_before) {
      sim.Stop(x);
      sim.Restart(x);
      // It serves once the first gossip from a peer arrives (Node::Ready).
      ASSERT_TRUE(sim.RunUntil([&] { return sim.node(x)->Ready(nullptr); }, 10000)) << Replay(sim);
    }
    bool first_acked = false;
    sim.Put(x, key, "before-power-loss", "",
            [&](const core::ClientReply& r) { first_acked = r.status.ok(); });
    sim.RunFor(20);  // the replicas have it; x's sync is still running
    size_t replicas_holding = 0;
    for (size_t i = 1; i < owners.size(); ++i) {
      replicas_holding += sim.Stored(sim.IndexOf(owners[i]), key).has_value();
    }
    ASSERT_EQ(replicas_holding, 2u) << Replay(sim);
    ASSERT_FALSE(first_acked) << "the power loss should come before x's sync\n" << Replay(sim);
    const std::string old_actor = sim.node(x)->actor();
    sim.PowerLoss(x);
    sim.Restart(x);
    EXPECT_NE(sim.node(x)->actor(), old_actor) << "a crash must change the clock actor\n"
                                               << Replay(sim);
    ASSERT_FALSE(sim.Stored(x, key).has_value()) << "the power loss should have taken it\n"
                                                 << Replay(sim);
    ASSERT_TRUE(sim.RunUntil([&] { return sim.node(x)->Ready(nullptr); }, 10000)) << Replay(sim);
    bool acked = false;
    sim.Put(x, key, "after-restart", "", [&](const core::ClientReply& r) { acked = r.status.ok(); });
    sim.RunFor(1000);
    ASSERT_TRUE(acked) << Replay(sim);
    std::string why;
    ASSERT_TRUE(sim.RunUntil([&] { return Converged(sim, &why); }, 60000)) << why << Replay(sim);
    auto values = FinalValues(sim)[key];
    std::sort(values.begin(), values.end());
    EXPECT_EQ(values, (std::vector<std::string>{"after-restart", "before-power-loss"}))
        << "a write that never saw the replicas' value replaced it\n"
        << Replay(sim);
  }
}

TEST(Simulation, PowerLossAfterReplicaWritesLeftLosesNoValueTheReplicasHold) {
  PowerLossAfterReplicaWritesLeft(/*restarted_cleanly_before=*/false);
}

TEST(Simulation, PowerLossSoonAfterACleanRestartLosesNoValueTheReplicasHold) {
  PowerLossAfterReplicaWritesLeft(/*restarted_cleanly_before=*/true);
}

// A node whose disk fails cannot make its stop and start records durable, so
// it does not run again until the disk works; a power loss meanwhile takes the
// stop record, and the node comes back with a new clock actor.
TEST(Simulation, ANodeWhoseDiskFailsStaysDownAndAPowerLossThenChangesItsActor) {
  for (uint64_t seed : Seeds(5)) {
    Simulation sim(DefaultSimOptions(seed, 3));
    ASSERT_TRUE(sim.FormCluster()) << Replay(sim);
    const std::string first = sim.node(1)->actor();
    sim.SetDiskFailing(1, true);
    sim.Stop(1);
    sim.Restart(1);
    EXPECT_EQ(sim.node(1), nullptr) << "started though its start record could not be synced\n"
                                    << Replay(sim);
    sim.PowerLoss(1);
    sim.SetDiskFailing(1, false);
    sim.Restart(1);
    ASSERT_NE(sim.node(1), nullptr) << Replay(sim);
    EXPECT_NE(sim.node(1)->actor(), first) << "its clean stop was never durable\n" << Replay(sim);
  }
}

// A clean stop keeps the node's clock actor; a crash does not. A node stopped
// in the middle of a sync serves again after its restart.
TEST(Simulation, CleanStopKeepsTheClockActorACrashChangesIt) {
  for (uint64_t seed : Seeds(5)) {
    SimOptions options = DefaultSimOptions(seed, 3);
    options.sync_min_ms = options.sync_max_ms = 50;
    Simulation sim(options);
    ASSERT_TRUE(sim.FormCluster()) << Replay(sim);
    const std::string first = sim.node(1)->actor();
    sim.Put(1, "k", "v", "", [](const core::ClientReply&) {});
    sim.RunFor(10);  // written, its sync running
    sim.Stop(1);
    sim.Restart(1);
    EXPECT_EQ(sim.node(1)->actor(), first) << Replay(sim);
    ASSERT_TRUE(sim.RunUntil([&] { return sim.node(1)->Ready(nullptr); }, 10000)) << Replay(sim);
    bool acked = false;
    sim.Put(1, "k", "again", "", [&](const core::ClientReply& r) { acked = r.status.ok(); });
    sim.RunFor(1000);
    EXPECT_TRUE(acked) << Replay(sim);
    sim.Crash(1);
    sim.Restart(1);
    EXPECT_NE(sim.node(1)->actor(), first) << Replay(sim);
  }
}

TEST(Simulation, DeletedKeysStayDeletedAndTombstonesAreReaped) {
  for (uint64_t seed : Seeds(10)) {
    Simulation sim(DefaultSimOptions(seed, 5));
    ASSERT_TRUE(sim.FormCluster()) << Replay(sim);
    std::vector<std::string> ctx(10);
    for (int i = 0; i < 10; ++i) {
      sim.Put(static_cast<size_t>(i) % 5, absl::StrCat("d", i), "v", "", [&ctx, i](const core::ClientReply& r) {
        if (r.status.ok()) ctx[i] = std::get<v1::PutResponse>(r.response).context();
      });
    }
    sim.RunFor(1000);
    // One owner misses some deletes (partitioned), then heals.
    sim.Partition({{0}, {1, 2, 3, 4}});
    int deleted = 0;
    for (int i = 0; i < 10; ++i) {
      sim.Delete(1 + static_cast<size_t>(i) % 4, absl::StrCat("d", i), ctx[i],
                 [&](const core::ClientReply& r) { deleted += r.status.ok(); });
    }
    sim.RunFor(2000);
    ASSERT_EQ(deleted, 10) << Replay(sim);
    sim.Heal();
    std::string why;
    ASSERT_TRUE(sim.RunUntil([&] { return Converged(sim, &why); }, 60000)) << why << Replay(sim);
    sim.RunFor(20000);  // past the tombstone grace period, with anti-entropy running
    for (int i = 0; i < 10; ++i) {
      const std::string key = absl::StrCat("d", i);
      auto values = FinalValues(sim)[key];
      EXPECT_TRUE(values.empty()) << key << " came back\n" << Replay(sim);
      bool found = true;
      sim.Get(static_cast<size_t>(i) % 5, key, [&](const core::ClientReply& r) {
        found = !r.status.ok() || std::get<v1::GetResponse>(r.response).found();
      });
      sim.RunFor(500);
      EXPECT_FALSE(found) << key << "\n" << Replay(sim);
    }
    uint64_t reaped = 0;
    for (size_t i = 0; i < sim.size(); ++i) reaped += sim.node(i)->counters().tombstones_reaped;
    EXPECT_GT(reaped, 0u) << "fully replicated tombstones should be reaped\n" << Replay(sim);
  }
}

// A value only the fallbacks took, on the far side of a partition, read
// there and deleted on the owners' side with that read's context. No gossip
// from the fallbacks reaches the owners' side, so it cannot tell them that
// the fallbacks hold the value: a reap there once the grace has passed would
// let the hints bring it back at the heal. Only asking the fallbacks can.
TEST(Simulation, AValueOnlyCutOffFallbacksHeldStaysDeletedAfterTheHeal) {
  for (uint64_t seed : Seeds(10)) {
    SimOptions options = DefaultSimOptions(seed, 5);
    Simulation sim(options);
    ASSERT_TRUE(sim.FormCluster()) << Replay(sim);
    const std::string key = "cut-off";
    const auto owners =
        sim.node(0)->membership().ring().PreferenceList(core::KeyPosition(key), 3);
    std::set<size_t> owner_side, fallback_side;
    for (size_t i = 0; i < sim.size(); ++i) {
      const bool owner = std::find(owners.begin(), owners.end(), sim.id(i)) != owners.end();
      (owner ? owner_side : fallback_side).insert(i);
    }
    sim.Partition({fallback_side, owner_side});
    sim.RunFor(6000);  // each side's failure detector notices the other
    const size_t fallback = *fallback_side.begin();
    sim.Put(fallback, key, "v", "", [](const core::ClientReply&) {});  // acknowledged or not
    sim.RunFor(1500);
    std::string context;
    sim.Get(fallback, key, [&](const core::ClientReply& r) {
      if (r.status.ok() && std::get<v1::GetResponse>(r.response).found()) {
        context = std::get<v1::GetResponse>(r.response).context();
      }
    });
    sim.RunFor(1500);
    ASSERT_FALSE(context.empty()) << "the fallbacks' side did not read the value\n" << Replay(sim);
    bool deleted = false;
    sim.Delete(sim.IndexOf(owners[0]), key, context,
               [&](const core::ClientReply& r) { deleted = r.status.ok(); });
    sim.RunFor(1500);
    ASSERT_TRUE(deleted) << Replay(sim);
    sim.RunFor(3 * options.node.tombstone_grace_ms);  // the partition outlasts the grace
    sim.Heal();
    std::string why;
    ASSERT_TRUE(sim.RunUntil([&] { return Converged(sim, &why); }, 60000)) << why << Replay(sim);
    EXPECT_TRUE(FinalValues(sim)[key].empty()) << "the delete was undone\n" << Replay(sim);
    sim.RunFor(3 * options.node.tombstone_grace_ms);  // every node answers now: reaped
    uint64_t reaped = 0;
    for (size_t i = 0; i < sim.size(); ++i) reaped += sim.node(i)->counters().tombstones_reaped;
    EXPECT_EQ(reaped, 3u) << Replay(sim);
    EXPECT_TRUE(FinalValues(sim)[key].empty()) << "the delete was undone\n" << Replay(sim);
  }
}

// A node gone for good (its disk lost, say) holds every reap and keeps one
// replica of its ranges missing. It is removed through another node while
// clients write and delete over a lossy network: nothing acknowledged is
// lost, nothing replaced comes back, the ring goes on without it and the
// reaps it held go on. Then its old disk comes back after all: it learns
// that it was removed and stops before any of its stale copies reach the
// others, and never starts on that disk again.
TEST(Simulation, ANodeGoneForGoodIsRemovedAndItsOldDiskStaysOut) {
  for (uint64_t seed : Seeds(10)) {
    SimOptions options = DefaultSimOptions(seed, 5);
    Simulation sim(options);
    ASSERT_TRUE(sim.FormCluster()) << Replay(sim);
    History history;
    WorkloadOptions load;
    load.delete_fraction = 0.3;
    Workload workload(sim, history, load);
    workload.Start();
    sim.SetNetwork({.drop_probability = 0.05, .delay_min_ms = 1, .delay_max_ms = 20});
    sim.RunFor(3000);
    const size_t gone = 1 + sim.rng().Uniform(sim.size() - 1);
    sim.Crash(gone);
    sim.RunFor(2 * options.node.tombstone_grace_ms);  // reaps come due, and wait for it
    sim.Retire(gone);
    bool removed = false;
    for (int attempt = 0; attempt < 100 && !removed; ++attempt) {
      size_t via = sim.rng().Uniform(sim.size());
      if (via == gone) continue;
      sim.Admin(via, [&](core::Node& node, int64_t now, core::Outputs* out) {
        absl::StatusOr<v1::RemoveNodeResponse> r = node.RemoveNode(sim.id(gone), now, out);
        removed = r.ok();
        if (!r.ok()) sim.Log(absl::StrCat("remove refused: ", r.status().ToString()));
      });
      sim.RunFor(500);
    }
    ASSERT_TRUE(removed) << Replay(sim);
    sim.RunFor(10000);
    // Its old disk comes back while clients still write over the lossy
    // network: its first gossip may be lost, and clients ask it at once.
    sim.Restart(gone);
    sim.RunFor(5000);
    EXPECT_FALSE(sim.up(gone)) << "its old disk should have stopped itself\n" << Replay(sim);
    workload.Stop();
    HealEverything(sim);  // starts it again: it never runs on that disk again
    std::string why;
    ASSERT_TRUE(sim.RunUntil([&] { return Converged(sim, &why); }, 120000))
        << "not converged: " << why << "\n" << Replay(sim);
    sim.RunFor(2 * options.node.request_timeout_ms + 3 * options.node.tombstone_grace_ms);
    EXPECT_FALSE(sim.up(gone)) << "its old disk should have stopped itself\n" << Replay(sim);
    ASSERT_TRUE(sim.RunUntil([&] { return Converged(sim, &why); }, 60000))
        << "diverged after the last operations ended: " << why << "\n" << Replay(sim);
    const auto reaps = [&](uint64_t* owed, uint64_t* reaped) {
      *owed = *reaped = 0;
      for (size_t i = 0; i < sim.size(); ++i) {
        if (i == gone) continue;
        *owed += sim.node(i)->Status(sim.now()).reaps_owed();
        *reaped += sim.node(i)->counters().tombstones_reaped;
      }
    };
    uint64_t owed = 0, reaped = 0;
    reaps(&owed, &reaped);
    EXPECT_EQ(owed, 0u) << "reaps still wait\n" << Replay(sim);
    for (size_t i = 0; i < sim.size(); ++i) {
      if (i == gone) continue;
      EXPECT_FALSE(sim.node(i)->membership().InRing(sim.id(gone))) << Replay(sim);
    }
    // A key deleted now on every owner is reaped: nothing waits for the
    // removed node (its many overwritten keys above may have left none).
    const size_t via = gone == 1 ? 2 : 1;
    std::string context;
    sim.Put(via, "after", "v", "", [&](const core::ClientReply& r) {
      if (r.status.ok()) context = std::get<v1::PutResponse>(r.response).context();
    });
    sim.RunFor(1000);
    ASSERT_FALSE(context.empty()) << Replay(sim);
    sim.Delete(via, "after", context, [](const core::ClientReply&) {});
    sim.RunFor(3 * options.node.tombstone_grace_ms);
    const uint64_t reaped_before = reaped;
    reaps(&owed, &reaped);
    EXPECT_EQ(reaped, reaped_before + 3) << "the last delete was not reaped\n" << Replay(sim);
    EXPECT_EQ(owed, 0u) << Replay(sim);
    CheckReport report = CheckHistory(history, sim);
    EXPECT_TRUE(report.ok()) << report.Summary() << "\n"
                             << (report.problems.empty() ? "" : report.problems[0]) << "\n"
                             << Replay(sim);
    EXPECT_GT(report.writes_acked, 20u) << Replay(sim);
  }
}

TEST(Simulation, QuorumErrorWhenReplicasAreUnreachable) {
  for (uint64_t seed : Seeds(5)) {
    Simulation sim(DefaultSimOptions(seed, 5));
    ASSERT_TRUE(sim.FormCluster()) << Replay(sim);
    sim.Partition({{0}, {1, 2, 3, 4}});
    sim.RunFor(6000);  // node 0's failure detector notices
    absl::Status put_status, get_status;
    sim.Put(0, "island", "v", "", [&](const core::ClientReply& r) { put_status = r.status; });
    sim.Get(0, "island", [&](const core::ClientReply& r) { get_status = r.status; });
    sim.RunFor(3000);
    EXPECT_TRUE(absl::IsUnavailable(put_status)) << put_status << "\n" << Replay(sim);
    EXPECT_TRUE(absl::IsUnavailable(get_status)) << get_status << "\n" << Replay(sim);
    // The majority side keeps serving.
    absl::Status other;
    sim.Put(2, "mainland", "v", "", [&](const core::ClientReply& r) { other = r.status; });
    sim.RunFor(3000);
    EXPECT_TRUE(other.ok()) << other << "\n" << Replay(sim);
  }
}

}  // namespace
}  // namespace dynamo::sim
