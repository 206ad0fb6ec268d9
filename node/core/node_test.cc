#include "dynamo/core/node.h"

#include <gtest/gtest.h>

#include <array>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "dynamo/core/context.h"
#include "dynamo/core/hash.h"
#include "dynamo/core/storage_keys.h"
#include "dynamo/core/sync_gate.h"
#include "dynamo/storage/memory_engine.h"

namespace dynamo::core {
namespace {

using storage::MemoryEngine;
using storage::Space;

std::string Addr(const std::string& id) { return id + ":7000"; }

NodeConfig Config(const std::string& id, const std::string& seed_id, uint32_t n) {
  NodeConfig c;
  c.node_id = id;
  c.address = Addr(id);
  c.seeds = {Addr(seed_id)};
  c.auto_join = true;
  c.vnodes = 4;
  c.ring.partitions = 16;
  c.merkle = {4, 2};
  c.replicas_n = n;
  c.read_quorum_r = n == 1 ? 1 : 2;
  c.write_quorum_w = n == 1 ? 1 : 2;
  c.gossip_interval_ms = 100;
  c.ring_change_interval_ms = 200;
  c.request_timeout_ms = 500;
  return c;
}

// Every record of every space: what "changes no state" is checked against.
using Snapshot = std::array<std::map<std::string, std::string>, storage::kSpaceCount>;

Snapshot Snap(MemoryEngine& engine) {
  Snapshot s;
  for (int i = 0; i < storage::kSpaceCount; ++i) {
    EXPECT_TRUE(engine
                    .Scan(static_cast<Space>(i), "", "",
                          [&](std::string_view k, std::string_view v) {
                            s[i].emplace(std::string(k), std::string(v));
                            return true;
                          })
                    .ok());
  }
  return s;
}

// What differs between two snapshots, briefly (the values can be large).
std::string Diff(const Snapshot& before, const Snapshot& after) {
  std::string out;
  for (int i = 0; i < storage::kSpaceCount; ++i) {
    for (const auto& [k, v] : after[i]) {
      auto it = before[i].find(k);
      if (it == before[i].end()) {
        out += " space " + std::to_string(i) + " added " + absl::CEscape(k) + ";";
      } else if (it->second != v) {
        out += " space " + std::to_string(i) + " changed " + absl::CEscape(k) + ";";
      }
    }
    for (const auto& [k, v] : before[i]) {
      if (!after[i].contains(k)) {
        out += " space " + std::to_string(i) + " removed " + absl::CEscape(k) + ";";
      }
    }
  }
  return out;
}

::testing::AssertionResult Unchanged(const Snapshot& before, MemoryEngine& engine) {
  const Snapshot after = Snap(engine);
  if (after == before) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "storage changed:" << Diff(before, after);
}

v1::Quorum Q(uint32_t n, uint32_t r, uint32_t w) {
  v1::Quorum q;
  q.set_n(n);
  q.set_r(r);
  q.set_w(w);
  return q;
}

ClientRequest Get(const std::string& key, v1::Quorum q = {}) {
  v1::GetRequest g;
  g.set_key(key);
  *g.mutable_quorum() = q;
  return ClientRequest{g, 0};
}

ClientRequest Put(const std::string& key, const std::string& value, const std::string& context = "",
                  v1::Quorum q = {}) {
  v1::PutRequest p;
  p.set_key(key);
  p.set_value(value);
  p.set_context(context);
  *p.mutable_quorum() = q;
  return ClientRequest{p, 0};
}

ClientRequest Delete(const std::string& key, const std::string& context, v1::Quorum q = {}) {
  v1::DeleteRequest d;
  d.set_key(key);
  d.set_context(context);
  *d.mutable_quorum() = q;
  return ClientRequest{d, 0};
}

std::vector<std::string> Values(const v1::GetResponse& r) {
  std::vector<std::string> v;
  for (const v1::Sibling& s : r.siblings()) v.push_back(s.value());
  std::sort(v.begin(), v.end());
  return v;
}

// Nodes over memory engines, joined by an in-test network that delivers every
// message at once, in order. A node listed in `down` receives nothing: its
// senders are told the send failed.
class Cluster {
 public:
  Cluster(size_t size, uint32_t n, std::function<void(NodeConfig&)> tweak = nullptr) {
    for (size_t i = 0; i < size; ++i) {
      Member m;
      m.id = "n" + std::to_string(i + 1);
      m.config = Config(m.id, "n1", n);
      if (tweak) tweak(m.config);
      m.engine = std::make_unique<MemoryEngine>();
      members_.push_back(std::move(m));
    }
    for (size_t i = 0; i < size; ++i) Start(i);
  }

  // Opens node i on its storage: after Close a clean restart, else a crash.
  // A crash takes a new epoch from `seed` (by default the node's first).
  void Start(size_t i, uint64_t seed = 0) {
    Member& m = members_[i];
    absl::StatusOr<std::unique_ptr<Node>> node =
        Node::Open(m.config, m.engine.get(), seed != 0 ? seed : 1000 + i, now_);
    ASSERT_TRUE(node.ok()) << node.status();
    m.node = *std::move(node);
    m.gate = SyncGate();
  }

  // Node i's storage is lost: its next Start is on an empty one.
  void Wipe(size_t i) { ReplaceStorage(i, std::make_unique<MemoryEngine>()); }
  void ReplaceStorage(size_t i, std::unique_ptr<MemoryEngine> engine) {
    members_[i].engine = std::move(engine);
  }
  // A copy of node i's storage as it is now: a snapshot of its disk.
  std::unique_ptr<MemoryEngine> CopyStorage(size_t i) {
    auto copy = std::make_unique<MemoryEngine>();
    for (int space = 0; space < storage::kSpaceCount; ++space) {
      EXPECT_TRUE(engine(i)
                      .Scan(static_cast<Space>(space), "", "",
                            [&](std::string_view k, std::string_view v) {
                              EXPECT_TRUE(copy->Put(static_cast<Space>(space), k, v).ok());
                              return true;
                            })
                      .ok());
    }
    return copy;
  }

  Node& node(size_t i) { return *members_[i].node; }
  // Node i's config for its next Start.
  NodeConfig& config(size_t i) { return members_[i].config; }
  MemoryEngine& engine(size_t i) { return *members_[i].engine; }
  size_t size() const { return members_.size(); }
  int64_t now() const { return now_; }
  std::set<size_t> down;
  // Nodes that receive nothing while their senders are told nothing: requests
  // to them time out.
  std::set<size_t> silent;
  // Requests of these bodies (v1::Envelope::BodyCase) to node i vanish: they
  // time out.
  std::map<size_t, std::set<int>> lost_requests;
  // Requests delivered, by body (v1::Envelope::BodyCase).
  std::map<int, size_t> requests_by_body;
  // The largest message delivered (request or reply), in bytes; larger ones
  // than message_bytes_max fail as gRPC fails them (the sender is told of a
  // request's; a reply is lost).
  size_t max_message_bytes = 0;
  size_t message_bytes_max = std::numeric_limits<size_t>::max();
  // Replica read answers delivered for keys found: objects, and digests only.
  size_t object_answers = 0;
  size_t digest_answers = 0;
  // Request bodies node i answers as a node of an older version does: with
  // an error for an unknown body.
  std::map<size_t, std::set<int>> unknown_bodies;
  // Nodes whose storage syncs fail: what waits for a sync leaves as
  // FailUnsynced makes it.
  std::set<size_t> failing_sync;

  // Advances time tick by tick until every node is a ring member of one ring.
  bool Form(int64_t max_ms = 20000) {
    for (int64_t t = 0; t < max_ms; t += kTickMs) {
      Step();
      bool formed = true;
      for (size_t i = 0; i < size() && formed; ++i) {
        const Membership& m = node(i).membership();
        formed = m.ring_state().members_size() == static_cast<int>(size()) &&
                 m.ring_state().version() == node(0).membership().ring_state().version();
      }
      if (formed) return true;
    }
    return false;
  }

  void Step() {
    now_ += kTickMs;
    for (size_t i = 0; i < size(); ++i) {
      if (down.contains(i)) continue;
      Outputs out;
      node(i).Tick(now_, &out);
      Process(i, std::move(out));
    }
    Pump();
  }

  // Sends a client request to node i; runs until it is answered.
  ClientReply Call(size_t i, ClientRequest request) {
    const uint64_t id = next_client_id_++;
    Outputs out;
    node(i).HandleClient(id, std::move(request), now_, &out);
    Process(i, std::move(out));
    Pump();
    for (int k = 0; k < 1000 && !replies_.contains(id); ++k) Step();
    EXPECT_TRUE(replies_.contains(id)) << "no reply";
    ClientReply r = replies_[id];
    replies_.erase(id);
    return r;
  }

  // Runs `step` on node i (an admin call, a farewell) and delivers what it sends.
  void Do(size_t i, const std::function<void(Node&, int64_t, Outputs*)>& step, bool deliver = true) {
    Outputs out;
    step(node(i), now_, &out);
    Process(i, std::move(out));
    if (deliver) Pump();
  }

  v1::GetResponse MustGet(size_t i, const std::string& key) {
    ClientReply r = Call(i, Get(key));
    EXPECT_TRUE(r.status.ok()) << r.status;
    auto* g = std::get_if<v1::GetResponse>(&r.response);
    EXPECT_NE(g, nullptr);
    return g ? *g : v1::GetResponse();
  }
  // Deletes `key` through node i with the context of a read.
  void MustDelete(size_t i, const std::string& key) {
    ClientReply r = Call(i, Delete(key, MustGet(i, key).context()));
    EXPECT_TRUE(r.status.ok()) << r.status;
  }
  std::string MustPut(size_t i, const std::string& key, const std::string& value,
                      const std::string& context = "") {
    ClientReply r = Call(i, Put(key, value, context));
    EXPECT_TRUE(r.status.ok()) << r.status;
    auto* p = std::get_if<v1::PutResponse>(&r.response);
    EXPECT_NE(p, nullptr);
    return p ? p->context() : "";
  }

 private:
  static constexpr int64_t kTickMs = 10;
  struct Member {
    std::string id;
    NodeConfig config;
    std::unique_ptr<MemoryEngine> engine;
    std::unique_ptr<Node> node;
    SyncGate gate;
  };
  struct InFlight {
    size_t from;
    OutMessage message;
  };

  // The contract: storage is synced before anything of `out` leaves, the
  // requests that may leave first apart; here every sync is at once.
  void Process(size_t from, Outputs out) {
    for (Outputs& o : members_[from].gate.TakeSyncingInLine(std::move(out), [&] {
           return failing_sync.contains(from) ? absl::DataLossError("fsync: Input/output error")
                                              : engine(from).Sync();
         })) {
      Leave(from, std::move(o));
    }
  }
  void Leave(size_t from, Outputs out) {
    for (OutMessage& m : out.messages) queue_.push_back({from, std::move(m)});
    for (ClientReply& r : out.replies) replies_[r.client_id] = std::move(r);
  }

  void Pump() {
    for (int guard = 0; !queue_.empty() && guard < 100000; ++guard) {
      InFlight f = std::move(queue_.front());
      queue_.pop_front();
      std::optional<size_t> to;
      for (size_t i = 0; i < size(); ++i) {
        if (members_[i].config.address == f.message.to_address) to = i;
      }
      const v1::Envelope& env = f.message.envelope;
      if (to && silent.contains(*to)) continue;
      if (to && !env.is_reply() && lost_requests[*to].contains(env.body_case())) continue;
      const bool too_large = env.ByteSizeLong() > message_bytes_max;
      if (!to || down.contains(*to) || too_large) {
        if (!env.is_reply() && env.request_id() != 0 && !down.contains(f.from)) {
          Outputs out;
          node(f.from).HandleSendFailure(f.message.to_node, env.request_id(), now_, &out);
          Process(f.from, std::move(out));
        }
        continue;
      }
      if (!env.is_reply()) ++requests_by_body[env.body_case()];
      max_message_bytes = std::max(max_message_bytes, env.ByteSizeLong());
      for (const v1::ReadItem& item : env.read_reply().items()) {
        if (item.found()) ++(item.has_object() ? object_answers : digest_answers);
      }
      if (!env.is_reply() && unknown_bodies[*to].contains(env.body_case())) {
        v1::Envelope reply;
        reply.set_from_node(members_[*to].id);
        reply.set_from_address(members_[*to].config.address);
        reply.set_request_id(env.request_id());
        reply.set_is_reply(true);
        reply.mutable_error()->set_code(static_cast<int>(absl::StatusCode::kInvalidArgument));
        reply.mutable_error()->set_message(
            absl::StrCat("unexpected request body ", static_cast<int>(env.body_case())));
        queue_.push_back({*to, OutMessage{env.from_node(), env.from_address(), std::move(reply)}});
        continue;
      }
      Outputs out;
      node(*to).HandleMessage(env, now_, &out);
      Process(*to, std::move(out));
    }
  }

  std::vector<Member> members_;
  std::deque<InFlight> queue_;
  std::map<uint64_t, ClientReply> replies_;
  int64_t now_ = 1'000'000;
  uint64_t next_client_id_ = 1;
};

// Tombstones are reaped half a second after every owner holds them, and
// anti-entropy never runs: only the reap acts on them.
void OnlyReapsAct(NodeConfig& config) {
  config.tombstone_grace_ms = 500;
  config.antientropy_interval_ms = 1'000'000'000;
}

// Whether node i stores anything (a value or a tombstone) under `key`.
bool Stores(Cluster& c, size_t i, const std::string& key) {
  return c.engine(i).Get(storage::Space::kData, DataKey(KeyPosition(key), key)).ok();
}

// ------------------------------------------------------------- one node

TEST(NodeTest, ASingleNodeThatIsItsOwnSeedFoundsARing) {
  Cluster c(1, 1);
  std::string why;
  EXPECT_FALSE(c.node(0).Ready(&why));
  EXPECT_NE(why.find("ring"), std::string::npos);
  // Before it has a ring it refuses clients, clearly.
  ClientReply early = c.Call(0, Get("k"));
  EXPECT_EQ(early.status.code(), absl::StatusCode::kUnavailable);
  c.Step();
  EXPECT_TRUE(c.node(0).Ready(nullptr));
  EXPECT_TRUE(c.node(0).membership().InRing("n1"));
  EXPECT_EQ(c.node(0).Status(c.now()).state(), v1::NODE_STATE_NORMAL);
}

TEST(NodeTest, PutGetDeleteRoundTrip) {
  Cluster c(1, 1);
  c.Step();
  const v1::GetResponse missing = c.MustGet(0, "k");
  EXPECT_FALSE(missing.found());
  EXPECT_EQ(missing.siblings_size(), 0);
  EXPECT_FALSE(missing.context().empty()) << "a context even when not found";
  EXPECT_TRUE(DecodeContext(missing.context(), KeyPosition("k")).ok());

  c.MustPut(0, "k", "v1", missing.context());
  v1::GetResponse got = c.MustGet(0, "k");
  EXPECT_TRUE(got.found());
  EXPECT_EQ(Values(got), (std::vector<std::string>{"v1"}));

  ClientReply del = c.Call(0, Delete("k", got.context()));
  ASSERT_TRUE(del.status.ok()) << del.status;
  ASSERT_NE(std::get_if<v1::DeleteResponse>(&del.response), nullptr);
  const v1::GetResponse gone = c.MustGet(0, "k");
  EXPECT_FALSE(gone.found());
  EXPECT_EQ(gone.siblings_size(), 0);
  EXPECT_FALSE(gone.context().empty());

  // Written again after the delete, with the delete's context: one value.
  c.MustPut(0, "k", "v2", gone.context());
  EXPECT_EQ(Values(c.MustGet(0, "k")), (std::vector<std::string>{"v2"}));
}

// A tombstone is reaped once every owner holds it. A delete with n=1 reaches
// one owner; the other two still hold the value until anti-entropy or a read
// brings them the tombstone. Reaping the one copy then would undo the delete.
TEST(NodeTest, ADeleteWithASmallerNIsNotReapedWhileOtherOwnersHoldTheValue) {
  Cluster c(3, 3, OnlyReapsAct);
  ASSERT_TRUE(c.Form());
  c.MustPut(0, "k", "v");
  for (int i = 0; i < 20; ++i) c.Step();
  ClientReply del = c.Call(0, Delete("k", c.MustGet(0, "k").context(), Q(1, 1, 1)));
  ASSERT_TRUE(del.status.ok()) << del.status;
  for (int i = 0; i < 200; ++i) c.Step();  // past the grace period; no read in between
  // A read of all three owners: the one tombstone covers the value, unless
  // it was reaped.
  ClientReply read = c.Call(0, Get("k", Q(3, 3, 1)));
  ASSERT_TRUE(read.status.ok()) << read.status;
  EXPECT_FALSE(std::get<v1::GetResponse>(read.response).found()) << "the delete was undone";

  // With every owner holding it, the tombstone goes.
  c.MustPut(0, "j", "v");
  c.MustDelete(0, "j");
  for (int i = 0; i < 200; ++i) c.Step();
  uint64_t reaped = 0;
  for (size_t i = 0; i < c.size(); ++i) reaped += c.node(i).counters().tombstones_reaped;
  EXPECT_EQ(reaped, 3u);
  EXPECT_FALSE(c.MustGet(0, "j").found());
}

// A fully replicated delete waits out its grace in its coordinator's queue: a
// restart of the coordinator meanwhile must not forget it, or the tombstone
// stays for good on every owner.
TEST(NodeTest, AReapStillWaitingSurvivesTheCoordinatorsRestart) {
  Cluster c(3, 3, OnlyReapsAct);
  ASSERT_TRUE(c.Form());
  c.MustPut(0, "j", "v");
  c.MustDelete(0, "j");
  for (int i = 0; i < 5; ++i) c.Step();  // every owner acknowledges; the grace runs on
  const auto reaped = [&] {
    uint64_t n = 0;
    for (size_t i = 0; i < c.size(); ++i) n += c.node(i).counters().tombstones_reaped;
    return n;
  };
  ASSERT_EQ(reaped(), 0u);
  EXPECT_EQ(c.node(0).Status(c.now()).reaps_owed(), 1u);
  ASSERT_TRUE(c.node(0).Close().ok());
  c.Start(0);
  EXPECT_EQ(c.node(0).Status(c.now()).reaps_owed(), 1u);
  for (int i = 0; i < 200; ++i) c.Step();
  EXPECT_EQ(reaped(), 3u);
  EXPECT_EQ(c.node(0).Status(c.now()).reaps_owed(), 0u);
  for (size_t i = 0; i < c.size(); ++i) EXPECT_FALSE(Stores(c, i, "j")) << "n" << i + 1;
}

// An owner that misses the reap (unreachable when it is sent) would keep the
// tombstone for good: the coordinator sends the reap again, to every owner,
// until each acknowledges it.
TEST(NodeTest, AReapAnOwnerMissedIsSentAgainUntilEveryOwnerHasIt) {
  Cluster c(3, 3, OnlyReapsAct);
  ASSERT_TRUE(c.Form());
  c.MustPut(0, "j", "v");
  c.MustDelete(0, "j");
  c.lost_requests[2] = {v1::Envelope::kReap};  // n3 holds the tombstone; the reap to it is lost
  for (int i = 0; i < 100 && Stores(c, 0, "j"); ++i) c.Step();
  ASSERT_FALSE(Stores(c, 0, "j"));
  ASSERT_TRUE(Stores(c, 2, "j"));
  EXPECT_EQ(c.node(0).Status(c.now()).reaps_owed(), 1u) << "owed until n3 acknowledges";
  for (int i = 0; i < 300; ++i) c.Step();  // the reap times out at n3
  EXPECT_GE(c.node(0).Status(c.now()).reaps_retried(), 1u);
  c.lost_requests.clear();
  for (int i = 0; i < 300; ++i) c.Step();
  for (size_t i = 0; i < c.size(); ++i) EXPECT_FALSE(Stores(c, i, "j")) << "n" << i + 1;
  EXPECT_EQ(c.node(0).Status(c.now()).reaps_owed(), 0u);
  EXPECT_FALSE(c.MustGet(0, "j").found());
}

void OnlyReapsActGossipingSlowly(NodeConfig& config) {
  OnlyReapsAct(config);
  config.gossip_interval_ms = 1000;
}

// In a 4-node cluster, takes n3 down and writes, through n1, a key owned by
// n1, n2, n3: n4 holds its hint for n3. Returns the key (empty if none).
std::string WriteWhileN3IsDown(Cluster& c) {
  const Ring& ring = c.node(0).membership().ring();
  std::string key;
  for (int i = 0; i < 10000 && key.empty(); ++i) {
    const std::string k = "j" + std::to_string(i);
    const std::vector<uint32_t>& order = ring.PreferenceOrder(ring.RangeIndex(KeyPosition(k)));
    if (order.size() == 4 && ring.nodes()[order[0]].id == "n1" &&
        ring.nodes()[order[1]].id == "n2" && ring.nodes()[order[2]].id == "n3") {
      key = k;
    }
  }
  if (key.empty()) return key;
  c.down = {2};
  for (int i = 0; i < 400; ++i) c.Step();
  c.MustPut(0, key, "v");
  return key;
}

// WriteWhileN3IsDown, then n3 is back and n4, holding the hint, goes down.
// Returns the key (empty if none).
std::string HintOnN4ThenN4Down(Cluster& c) {
  const std::string key = WriteWhileN3IsDown(c);  // n1, n2, and n4 with a hint for n3
  if (key.empty()) return key;
  EXPECT_EQ(c.node(3).hint_backlog(), 1u);
  c.down = {3};
  return key;
}

// Gossip can be old: a fallback that took a hint and was cut off before its
// gossip said so leaves the others believing it holds nothing. Reaped then,
// the tombstone could not cover the value when the hint arrives. The
// coordinator asks every peer before it reaps, and waits for an answer.
TEST(NodeTest, AReapWaitsForAPeerCutOffBeforeItSaidItHoldsAHint) {
  Cluster c(4, 3, OnlyReapsActGossipingSlowly);
  ASSERT_TRUE(c.Form(60000));
  const std::string key = HintOnN4ThenN4Down(c);  // n4 is cut off at once
  ASSERT_FALSE(key.empty());
  ASSERT_FALSE(c.node(0).membership().AnyHandingOff());
  for (int i = 0; i < 600; ++i) c.Step();
  c.MustDelete(0, key);  // every owner holds the tombstone
  for (int i = 0; i < 300; ++i) c.Step();  // far past the grace
  const v1::NodeStatus held = c.node(0).Status(c.now());
  EXPECT_EQ(held.reaps_owed(), 1u) << "reaped while n4 could not answer";
  EXPECT_EQ(std::vector<std::string>(held.reaps_held_by().begin(), held.reaps_held_by().end()),
            std::vector<std::string>{"n4"});
  c.down = {};  // n4 is back and delivers its hint
  for (int i = 0; i < 600; ++i) c.Step();
  ClientReply read = c.Call(1, Get(key, Q(3, 3, 2)));
  ASSERT_TRUE(read.status.ok()) << read.status;
  EXPECT_TRUE(Values(std::get<v1::GetResponse>(read.response)).empty()) << "the delete was undone";
  EXPECT_EQ(c.node(3).hint_backlog(), 0u);
  EXPECT_EQ(c.node(0).Status(c.now()).reaps_owed(), 0u) << "then reaped";
  EXPECT_EQ(c.node(0).Status(c.now()).reaps_held_by_size(), 0);
  for (size_t i = 0; i < c.size(); ++i) EXPECT_FALSE(Stores(c, i, key)) << "n" << i + 1;
}

// During a rolling upgrade a node of an older version answers the handoff
// query with an error: it may hold hints, so the reaps wait for it, and go
// once it runs the new version.
TEST(NodeTest, ReapsWaitForANodeThatDoesNotKnowTheHandoffQuery) {
  Cluster c(3, 3, OnlyReapsAct);
  ASSERT_TRUE(c.Form());
  c.unknown_bodies[2] = {v1::Envelope::kHandoffQuery};
  c.MustPut(0, "j", "v");
  c.MustDelete(0, "j");
  for (int i = 0; i < 300; ++i) c.Step();  // far past the grace
  const v1::NodeStatus held = c.node(0).Status(c.now());
  EXPECT_EQ(held.reaps_owed(), 1u);
  ASSERT_EQ(held.reaps_held_by_size(), 1);
  EXPECT_EQ(held.reaps_held_by(0), "n3");
  EXPECT_TRUE(Stores(c, 0, "j"));
  c.unknown_bodies.clear();  // upgraded
  for (int i = 0; i < 300; ++i) c.Step();
  EXPECT_EQ(c.node(0).Status(c.now()).reaps_owed(), 0u);
  for (size_t i = 0; i < c.size(); ++i) EXPECT_FALSE(Stores(c, i, "j")) << "n" << i + 1;
}

// A restarted coordinator knows nothing of its peers until gossip arrives: it
// must not take their restored (blank) states as "no one hands data off" and
// send a reap owed from before its restart while a down node still holds a
// hint of the deleted value, which would then come back. Two checks hold the
// reap here, each enough alone: gossip has not brought every member's state,
// and the down node cannot answer the handoff query.
TEST(NodeTest, ARestartedCoordinatorWaitsForGossipBeforeItsOwedReaps) {
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    SCOPED_TRACE(seed);
    Cluster c(4, 3, OnlyReapsActGossipingSlowly);
    ASSERT_TRUE(c.Form(60000));
    const std::string key = WriteWhileN3IsDown(c);
    ASSERT_FALSE(key.empty());
    for (int i = 0; i < 300; ++i) c.Step();  // n4 gossips that it holds a hint
    c.down = {3};                            // n4 goes down with it; n3 is back
    for (int i = 0; i < 600; ++i) c.Step();
    c.MustDelete(0, key);
    for (int i = 0; i < 5; ++i) c.Step();  // every owner holds the tombstone
    c.down = {0, 3};  // the coordinator crashes and stays down past the grace
    for (int i = 0; i < 100; ++i) c.Step();
    c.Start(0, seed);
    c.down = {3};
    for (int i = 0; i < 30; ++i) c.Step();
    c.down = {};  // n4 is back and delivers its hint
    for (int i = 0; i < 500; ++i) c.Step();
    ClientReply read = c.Call(1, Get(key, Q(3, 3, 2)));
    ASSERT_TRUE(read.status.ok()) << read.status;
    EXPECT_TRUE(Values(std::get<v1::GetResponse>(read.response)).empty()) << "the delete was undone";
  }
}

// Each crash restart is a new actor, and a key written through many keeps an
// entry for each in its stored clock (merges bring back what a coordinator
// prunes from the copy it sends). Its tombstone is still reaped, and the
// stored clock stays decodable however many actors wrote the key.
TEST(NodeTest, AKeyWrittenByManyActorsIsReapedAndStaysReadable) {
  Cluster c(1, 1, [](NodeConfig& config) { config.tombstone_grace_ms = 500; });
  c.Step();
  uint64_t seed = 7000;
  const auto write_then_crash = [&](const std::string& key, size_t times) {
    for (size_t i = 0; i < times; ++i) {
      c.MustPut(0, key, "v" + std::to_string(i), c.MustGet(0, key).context());
      c.Start(0, ++seed);
    }
  };
  const size_t actors = c.node(0).config().clock_entries_max + 5;
  write_then_crash("k", actors);
  // One value (each write replaced the last), under a context pruned for the
  // client that still covers it.
  const v1::GetResponse k = c.MustGet(0, "k");
  EXPECT_EQ(Values(k), (std::vector<std::string>{"v" + std::to_string(actors - 1)}));
  EXPECT_EQ(DecodeContext(k.context(), KeyPosition("k"))->size(),
            c.node(0).config().clock_entries_max);
  c.MustDelete(0, "k");
  for (int i = 0; i < 100; ++i) c.Step();
  EXPECT_EQ(c.node(0).counters().tombstones_reaped, 1u);
  EXPECT_EQ(c.engine(0).Get(storage::Space::kData, DataKey(KeyPosition("k"), "k")).status().code(),
            absl::StatusCode::kNotFound);

  write_then_crash("many", kStoredClockEntriesMax + 10);
  const v1::GetResponse got = c.MustGet(0, "many");
  EXPECT_EQ(Values(got),
            (std::vector<std::string>{"v" + std::to_string(kStoredClockEntriesMax + 9)}));
  absl::StatusOr<std::string> bytes =
      c.engine(0).Get(storage::Space::kData, DataKey(KeyPosition("many"), "many"));
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<VersionedObject> stored = VersionedObject::Decode(*bytes);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_LE(stored->clock().size(), kStoredClockEntriesMax);
}

TEST(NodeTest, BlindPutsMakeSiblingsAndAContextReplacesThem) {
  Cluster c(1, 1);
  c.Step();
  c.MustPut(0, "k", "a");
  c.MustPut(0, "k", "b");
  const v1::GetResponse both = c.MustGet(0, "k");
  EXPECT_EQ(Values(both), (std::vector<std::string>{"a", "b"}));
  const std::string ctx = c.MustPut(0, "k", "merged", both.context());
  EXPECT_EQ(Values(c.MustGet(0, "k")), (std::vector<std::string>{"merged"}));
  // The put's own context replaces what it wrote.
  c.MustPut(0, "k", "next", ctx);
  EXPECT_EQ(Values(c.MustGet(0, "k")), (std::vector<std::string>{"next"}));
  // A stale context keeps the newer value as a sibling.
  c.MustPut(0, "k", "stale", ctx);
  EXPECT_EQ(Values(c.MustGet(0, "k")), (std::vector<std::string>{"next", "stale"}));
}

// Timestamps are what clients' resolvers see of a write's time: they follow
// the wall clock the caller reports, steps included, while now_ms (timers)
// goes on evenly.
TEST(NodeTest, WritesAreStampedWithTheWallClockTheCallerReports) {
  Cluster c(1, 1);
  c.Step();
  c.MustPut(0, "k", "a");
  EXPECT_EQ(c.MustGet(0, "k").siblings(0).timestamp_ms(), c.now());

  c.node(0).SetWallClockOffset(-30'000);  // the wall clock stepped back 30 s
  const std::string ctx = c.MustPut(0, "j", "b");
  EXPECT_EQ(c.MustGet(0, "j").siblings(0).timestamp_ms(), c.now() - 30'000);

  c.node(0).SetWallClockOffset(5'000);
  c.MustPut(0, "j", "c", ctx);
  EXPECT_EQ(c.MustGet(0, "j").siblings(0).timestamp_ms(), c.now() + 5'000);
}

uint64_t ObjectReads(Cluster& c) {
  uint64_t reads = 0;
  for (size_t i = 0; i < c.size(); ++i) reads += c.engine(i).GetCount(storage::Space::kData);
  return reads;
}

// Reading a stored object is what a write costs most once the data outgrows
// memory. A write whose context saw the stored version needs only the stored
// clocks (item metas): no replica reads its object. A blind write keeps the
// stored values as siblings: every replica reads its object once to merge.
TEST(NodeTest, AWriteReadsNoStoredObjectWhenItsContextSawThem) {
  Cluster c(3, 3);
  ASSERT_TRUE(c.Form());
  const std::string ctx = c.MustPut(0, "k", "a");
  for (int i = 0; i < 10; ++i) c.Step();  // the third replica's write too
  uint64_t before = ObjectReads(c);
  c.MustPut(0, "k", "b", ctx);
  for (int i = 0; i < 10; ++i) c.Step();
  EXPECT_EQ(ObjectReads(c) - before, 0u);
  EXPECT_EQ(Values(c.MustGet(1, "k")), (std::vector<std::string>{"b"}));

  before = ObjectReads(c);
  c.MustPut(1, "k", "blind");
  for (int i = 0; i < 10; ++i) c.Step();
  EXPECT_EQ(ObjectReads(c) - before, 3u);
  EXPECT_EQ(Values(c.MustGet(2, "k")), (std::vector<std::string>{"b", "blind"}));
}

TEST(NodeTest, AValueOfExactlyTheLimitIsAccepted) {
  Cluster c(1, 1);
  c.Step();
  c.MustPut(0, "big", std::string(c.node(0).config().value_bytes_max, 'x'));
  EXPECT_EQ(c.MustGet(0, "big").siblings(0).value().size(), c.node(0).config().value_bytes_max);
}

// ------------------------------------------------------------- bad client input

struct BadRequest {
  std::string name;
  std::function<ClientRequest(Cluster&)> make;
  std::string fragment;  // the message names the problem
};

TEST(NodeBadInputTest, EveryBadRequestIsRefusedClearlyAndChangesNothing) {
  Cluster c(1, 3, [](NodeConfig& cfg) {
    cfg.read_quorum_r = 1;
    cfg.write_quorum_w = 1;
  });
  c.Step();
  ASSERT_TRUE(c.node(0).Ready(nullptr));
  c.MustPut(0, "a", "x");
  c.MustPut(0, "b", "y");

  auto context_with_clock = [](uint64_t position, const std::string& actor, uint64_t counter) {
    v1::CausalContext ctx;
    ctx.set_magic(kContextMagic);
    ctx.set_key_hash(position);
    v1::ClockEntry* e = ctx.add_clock();
    e->set_actor(actor);
    e->set_counter(counter);
    return ctx.SerializeAsString();
  };
  const std::string long_key(c.node(0).config().key_bytes_max + 1, 'k');
  const std::string long_value(c.node(0).config().value_bytes_max + 1, 'v');
  const std::vector<BadRequest> cases = {
      {"get, empty key", [](Cluster&) { return Get(""); }, "key must not be empty"},
      {"put, empty key", [](Cluster&) { return Put("", "v"); }, "key must not be empty"},
      {"delete, empty key", [](Cluster&) { return Delete("", ""); }, "key must not be empty"},
      {"get, long key", [&](Cluster&) { return Get(long_key); }, "key is"},
      {"put, long key", [&](Cluster&) { return Put(long_key, "v"); }, "key is"},
      {"delete, long key", [&](Cluster&) { return Delete(long_key, ""); }, "key is"},
      {"put, long value", [&](Cluster&) { return Put("a", long_value); }, "value is"},
      {"put, garbage context", [](Cluster&) { return Put("a", "v", "garbage"); },
       "context is malformed"},
      {"delete, garbage context", [](Cluster&) { return Delete("a", "\x01\x02\x03"); },
       "context is malformed"},
      {"put, context with a zero counter",
       [&](Cluster&) { return Put("a", "v", context_with_clock(KeyPosition("a"), "n1#1", 0)); },
       "context is malformed"},
      {"put, context with an empty actor",
       [&](Cluster&) { return Put("a", "v", context_with_clock(KeyPosition("a"), "", 3)); },
       "context is malformed"},
      {"put, context of another key",
       [](Cluster& cl) { return Put("b", "v", cl.MustGet(0, "a").context()); }, "another key"},
      {"delete, context of another key",
       [](Cluster& cl) { return Delete("b", cl.MustGet(0, "a").context()); }, "another key"},
      {"get, n above N", [](Cluster&) { return Get("a", Q(4, 0, 0)); }, "n=4"},
      {"put, n above N", [](Cluster&) { return Put("a", "v", "", Q(4, 0, 0)); }, "n=4"},
      {"delete, n above N", [](Cluster&) { return Delete("a", "", Q(5, 0, 0)); }, "n=5"},
      {"get, r above n", [](Cluster&) { return Get("a", Q(2, 3, 0)); }, "r=3"},
      {"get, r above N", [](Cluster&) { return Get("a", Q(0, 4, 0)); }, "r=4"},
      {"put, w above n", [](Cluster&) { return Put("a", "v", "", Q(1, 0, 2)); }, "w=2"},
      {"delete, w above n", [](Cluster&) { return Delete("a", "", Q(2, 0, 3)); }, "w=3"},
  };
  for (const BadRequest& bad : cases) {
    ClientRequest request = bad.make(c);  // may read, which changes nothing either
    const Snapshot before = Snap(c.engine(0));
    const uint64_t invalid_before = c.node(0).counters().invalid_requests;
    ClientReply r = c.Call(0, std::move(request));
    EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument) << bad.name << ": " << r.status;
    EXPECT_NE(r.status.message().find(bad.fragment), std::string::npos)
        << bad.name << ": \"" << r.status.message() << "\" lacks \"" << bad.fragment << "\"";
    EXPECT_TRUE(std::holds_alternative<std::monostate>(r.response)) << bad.name;
    EXPECT_TRUE(Unchanged(before, c.engine(0))) << bad.name;
    EXPECT_EQ(c.node(0).counters().invalid_requests, invalid_before + 1) << bad.name;
    EXPECT_EQ(c.node(0).operations_in_flight(), 0u) << bad.name;
  }
  // And the good data is still there, unchanged.
  EXPECT_EQ(Values(c.MustGet(0, "a")), (std::vector<std::string>{"x"}));
  EXPECT_EQ(Values(c.MustGet(0, "b")), (std::vector<std::string>{"y"}));
}

// Contexts are not authenticated: one that claims a version of this node's
// clock it never issued (2^62, the most a context may hold) must not move the
// node's counter, which every later write on every key would then carry past
// what clocks may hold, leaving those keys unreadable, even after a restart.
TEST(NodeBadInputTest, AContextClaimingVersionsThisNodeNeverIssuedIsRefused) {
  Cluster c(1, 1);
  c.Step();
  c.MustPut(0, "k", "v");
  VersionVector forged;
  forged.Advance(c.node(0).actor(), kMaxCounterDecoded, 0);
  ClientReply refused = c.Call(0, Put("k", "x", EncodeContext(KeyPosition("k"), forged)));
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kInvalidArgument) << refused.status;
  EXPECT_TRUE(absl::StrContains(refused.status.message(), "has not issued")) << refused.status;
  EXPECT_EQ(Values(c.MustGet(0, "k")), (std::vector<std::string>{"v"}));

  c.MustPut(0, "other", "x");
  EXPECT_EQ(Values(c.MustGet(0, "other")), (std::vector<std::string>{"x"}));
  c.Start(0);  // a clean restart keeps the actor and its counter
  c.MustPut(0, "other", "y", c.MustGet(0, "other").context());
  EXPECT_EQ(Values(c.MustGet(0, "other")), (std::vector<std::string>{"y"}));
}

TEST(NodeBadInputTest, SetVirtualNodesRefusesZero) {
  Cluster c(1, 1);
  c.Step();
  const Snapshot before = Snap(c.engine(0));
  const uint32_t vnodes = c.node(0).Status(c.now()).vnodes();
  for (uint32_t bad : {0u, 4097u}) {
    Outputs out;
    absl::StatusOr<v1::SetVirtualNodesResponse> r = c.node(0).SetVirtualNodes(bad, c.now(), &out);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("vnodes"), std::string::npos) << r.status();
    EXPECT_TRUE(out.messages.empty());
    EXPECT_TRUE(Unchanged(before, c.engine(0)));
    EXPECT_EQ(c.node(0).Status(c.now()).vnodes(), vnodes);
    EXPECT_EQ(c.node(0).membership().self().vnodes(), vnodes);
  }
  Outputs out;
  absl::StatusOr<v1::SetVirtualNodesResponse> ok = c.node(0).SetVirtualNodes(9, c.now(), &out);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(c.node(0).membership().self().vnodes(), 9u);
}

TEST(NodeBadInputTest, JoinRefusesABadZoneAndChangesNothing) {
  Cluster c(1, 1, [](NodeConfig& config) { config.zone = "za"; });
  c.Step();
  const Snapshot before = Snap(c.engine(0));
  const uint64_t version = c.node(0).membership().self().version();
  // Longer than peers accept in gossip; control characters.
  for (const std::string& bad :
       {std::string(kZoneBytesMax + 1, 'z'), std::string("eu\nwest"), std::string("a\0b", 3)}) {
    Outputs out;
    absl::StatusOr<v1::JoinResponse> r = c.node(0).Join("n9:7000", bad, c.now(), &out);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << absl::CEscape(bad);
    EXPECT_TRUE(absl::StrContains(r.status().message(), "zone")) << r.status();
    EXPECT_TRUE(out.messages.empty());
    EXPECT_FALSE(out.sync);
    EXPECT_TRUE(Unchanged(before, c.engine(0)));
    EXPECT_EQ(c.node(0).Status(c.now()).zone(), "za");
    EXPECT_EQ(c.node(0).membership().self().zone(), "za");
    EXPECT_EQ(c.node(0).membership().self().version(), version);
    EXPECT_EQ(c.node(0).config().seeds, std::vector<std::string>{Addr("n1")}) << "seed kept out";
  }
  Outputs out;
  const std::string longest(kZoneBytesMax, 'z');
  absl::StatusOr<v1::JoinResponse> ok = c.node(0).Join("", longest, c.now(), &out);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(c.node(0).Status(c.now()).zone(), longest);
}

TEST(NodeBadInputTest, OpenWithABadConfigWritesNothing) {
  MemoryEngine engine;
  NodeConfig cfg = Config("n1", "n1", 1);
  cfg.read_quorum_r = 2;
  absl::StatusOr<std::unique_ptr<Node>> node = Node::Open(cfg, &engine, 1, 1000);
  EXPECT_EQ(node.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Snap(engine), Snapshot());
}

// ------------------------------------------------------------- bad peer input

v1::Envelope Request() {
  v1::Envelope e;
  e.set_from_node("peer");
  e.set_from_address(Addr("peer"));
  e.set_request_id(4242);
  e.set_is_reply(false);
  return e;
}

v1::ObjectRecord Record(const std::string& actor, uint64_t clock_counter, uint64_t dot_counter,
                        const std::string& value = "v") {
  v1::ObjectRecord r;
  v1::ClockEntry* e = r.add_clock();
  e->set_actor(actor);
  e->set_counter(clock_counter);
  v1::SiblingRecord* s = r.add_siblings();
  s->mutable_dot()->set_actor(actor);
  s->mutable_dot()->set_counter(dot_counter);
  s->set_value(value);
  return r;
}

v1::Envelope WriteOf(std::vector<std::pair<std::string, v1::ObjectRecord>> items,
                     const std::string& hint_for = "") {
  v1::Envelope e = Request();
  for (auto& [key, record] : items) {
    v1::KeyedObject* item = e.mutable_write()->add_items();
    item->set_key(key);
    *item->mutable_object() = std::move(record);
  }
  e.mutable_write()->set_hint_for(hint_for);
  return e;
}

struct BadEnvelope {
  std::string name;
  v1::Envelope envelope;
  absl::StatusCode code;
};

std::vector<BadEnvelope> BadEnvelopes(Node& node) {
  std::vector<BadEnvelope> cases;
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  const KeyRange range = node.store().range(0);

  cases.push_back({"empty body", Request(), kInvalid});
  {
    // A body this version does not know (a field number from the future).
    std::string bytes = Request().SerializeAsString();
    bytes += std::string("\xf8\x06\x01", 3);  // field 111, varint 1
    v1::Envelope e;
    EXPECT_TRUE(e.ParseFromString(bytes));
    cases.push_back({"unknown body", e, kInvalid});
  }
  {
    v1::Envelope e = Request();
    e.mutable_write_ack()->add_tombstone_only(true);
    cases.push_back({"a reply body sent as a request", e, kInvalid});
  }
  {
    v1::Envelope e = Request();
    e.mutable_error()->set_code(3);
    cases.push_back({"an error sent as a request", e, kInvalid});
  }
  cases.push_back(
      {"sibling not covered by its clock", WriteOf({{"k", Record("x#1", 1, 2)}}), kInvalid});
  {
    v1::ObjectRecord r = Record("x#1", 5, 3);
    *r.add_siblings() = r.siblings(0);
    r.mutable_siblings(1)->set_value("other");
    cases.push_back({"duplicate dots", WriteOf({{"k", r}}), kInvalid});
  }
  cases.push_back({"zero clock counter", WriteOf({{"k", Record("x#1", 0, 0)}}), kInvalid});
  cases.push_back({"zero dot counter", WriteOf({{"k", Record("x#1", 3, 0)}}), kInvalid});
  {
    v1::ObjectRecord r = Record("x#1", 3, 1);
    *r.add_clock() = r.clock(0);
    cases.push_back({"clock names an actor twice", WriteOf({{"k", r}}), kInvalid});
  }
  cases.push_back({"empty actor", WriteOf({{"k", Record("", 3, 1)}}), kInvalid});
  cases.push_back(
      {"oversized actor", WriteOf({{"k", Record(std::string(300, 'x'), 3, 1)}}), kInvalid});
  cases.push_back({"empty key", WriteOf({{"", Record("x#1", 1, 1)}}), kInvalid});
  cases.push_back(
      {"oversized key",
       WriteOf({{std::string(node.config().key_bytes_max + 1, 'k'), Record("x#1", 1, 1)}}),
       kInvalid});
  // Stored, it would make every later read's context of that key refused as
  // forged (found by fuzz_envelope).
  cases.push_back({"an object claiming a version of this node it never issued",
                   WriteOf({{"k", Record(node.actor(), 1'000'000, 1'000'000)}}), kInvalid});
  cases.push_back({"a good item, then a bad one",
                   WriteOf({{"good", Record("x#1", 1, 1)}, {"bad", Record("x#1", 1, 2)}}),
                   kInvalid});
  {
    std::vector<std::pair<std::string, v1::ObjectRecord>> items;
    for (int i = 0; i < 4097; ++i) items.emplace_back("k" + std::to_string(i), Record("x#1", 1, 1));
    cases.push_back({"too many items", WriteOf(std::move(items)), kInvalid});
  }
  // A hint owner longer than a node id: its hint key could not be parsed back.
  cases.push_back({"oversized hint owner",
                   WriteOf({{"k", Record("x#1", 1, 1)}}, std::string(300, 'o')), kInvalid});
  {
    v1::Envelope e = Request();
    for (int i = 0; i < 4097; ++i) e.mutable_read()->add_keys("k" + std::to_string(i));
    cases.push_back({"too many read keys", e, kInvalid});
  }
  {
    v1::Envelope e = Request();
    e.mutable_forward()->set_timeout_ms(100);
    cases.push_back({"forward without an op", e, kInvalid});
  }
  auto merkle = [&](KeyRange r, uint32_t level, std::vector<uint32_t> indices) {
    v1::Envelope e = Request();
    e.mutable_merkle()->set_range_start(r.start);
    e.mutable_merkle()->set_range_end(r.end);
    e.mutable_merkle()->set_level(level);
    for (uint32_t i : indices) e.mutable_merkle()->add_indices(i);
    return e;
  };
  const uint32_t depth = node.config().merkle.depth;
  const uint32_t branching = node.config().merkle.branching;
  cases.push_back({"merkle level past the leaves", merkle(range, depth, {0}), kInvalid});
  cases.push_back({"merkle index out of range", merkle(range, 1, {branching}), kInvalid});
  cases.push_back({"merkle too many indices",
                   merkle(range, 1, std::vector<uint32_t>(kMerkleIndicesPerRequestMax + 1, 0)),
                   kInvalid});
  cases.push_back({"merkle unknown range", merkle({range.start + 1, range.end}, 0, {0}),
                   absl::StatusCode::kFailedPrecondition});
  auto leaf_keys = [&](KeyRange r, std::vector<uint32_t> leaves) {
    v1::Envelope e = Request();
    e.mutable_leaf_keys()->set_range_start(r.start);
    e.mutable_leaf_keys()->set_range_end(r.end);
    for (uint32_t l : leaves) e.mutable_leaf_keys()->add_leaves(l);
    return e;
  };
  const uint32_t leaves = node.store().tree(0).leaf_count();
  cases.push_back({"leaf out of range", leaf_keys(range, {0, leaves}), kInvalid});
  cases.push_back({"too many leaves", leaf_keys(range, std::vector<uint32_t>(4097, 0)), kInvalid});
  cases.push_back({"leaf keys of an unknown range", leaf_keys({range.start + 1, range.end}, {0}),
                   absl::StatusCode::kFailedPrecondition});
  auto digests = [&](uint32_t group, uint32_t ranges, size_t count) {
    v1::Envelope e = Request();
    e.mutable_range_digests()->set_group_ranges(group);
    e.mutable_range_digests()->set_ranges(ranges);
    for (size_t i = 0; i < count; ++i) e.mutable_range_digests()->add_digests(i);
    return e;
  };
  cases.push_back({"range digests in groups of 0", digests(0, 4, 1), kInvalid});
  cases.push_back({"range digests of the wrong count", digests(4, 8, 3), kInvalid});
  cases.push_back({"range digests of more ranges than there are",
                   digests(1, static_cast<uint32_t>(node.store().range_count() + 1),
                           node.store().range_count() + 1),
                   kInvalid});
  {
    v1::Envelope e = Request();
    e.mutable_reap()->set_key("a");
    v1::ClockEntry* c = e.mutable_reap()->add_clock();
    c->set_actor("x#1");
    c->set_counter(0);
    cases.push_back({"reap with a malformed clock", e, kInvalid});
  }
  {
    v1::Envelope e = Request();
    v1::ClockEntry* c = e.mutable_reap()->add_clock();
    c->set_actor("x#1");
    c->set_counter(1);
    cases.push_back({"reap without a key", e, kInvalid});
  }
  return cases;
}

TEST(NodeBadInputTest, MalformedPeerRequestsGetAnErrorReplyAndChangeNothing) {
  Cluster c(1, 1);
  c.Step();
  c.MustPut(0, "a", "x");
  c.MustPut(0, "k", "kept");
  Node& node = c.node(0);
  for (const BadEnvelope& bad : BadEnvelopes(node)) {
    const Snapshot before = Snap(c.engine(0));
    Outputs out;
    node.HandleMessage(bad.envelope, c.now(), &out);
    ASSERT_EQ(out.messages.size(), 1u) << bad.name;
    const OutMessage& m = out.messages[0];
    EXPECT_EQ(m.to_address, Addr("peer")) << bad.name;
    EXPECT_EQ(m.to_node, "peer") << bad.name;
    EXPECT_TRUE(m.envelope.is_reply()) << bad.name;
    EXPECT_EQ(m.envelope.request_id(), 4242u) << bad.name;
    EXPECT_EQ(m.envelope.from_node(), "n1") << bad.name;
    ASSERT_TRUE(m.envelope.has_error())
        << bad.name << ": " << m.envelope.ShortDebugString().substr(0, 200);
    EXPECT_EQ(m.envelope.error().code(), static_cast<int32_t>(bad.code))
        << bad.name << ": " << m.envelope.error().message();
    EXPECT_FALSE(m.envelope.error().message().empty()) << bad.name;
    EXPECT_TRUE(out.replies.empty()) << bad.name;
    EXPECT_TRUE(Unchanged(before, c.engine(0))) << bad.name;
  }
  EXPECT_EQ(Values(c.MustGet(0, "k")), (std::vector<std::string>{"kept"}));
}

TEST(NodeBadInputTest, WellFormedPeerRequestsAreServed) {
  // The same shapes as above, made valid, are answered without error: the
  // refusals above are about the defects, not the message kinds.
  Cluster c(1, 1);
  c.Step();
  Node& node = c.node(0);
  const KeyRange range = node.store().range(0);
  std::vector<v1::Envelope> good;
  good.push_back(WriteOf({{"k", Record("x#1", 2, 2)}}));
  good.push_back(WriteOf({{"h", Record("x#1", 1, 1)}}, "owner-node"));
  {
    v1::Envelope e = Request();
    e.mutable_merkle()->set_range_start(range.start);
    e.mutable_merkle()->set_range_end(range.end);
    e.mutable_merkle()->set_level(0);
    e.mutable_merkle()->add_indices(0);
    good.push_back(e);
  }
  {
    v1::Envelope e = Request();
    e.mutable_leaf_keys()->set_range_start(range.start);
    e.mutable_leaf_keys()->set_range_end(range.end);
    e.mutable_leaf_keys()->add_leaves(node.store().tree(0).leaf_count() - 1);
    good.push_back(e);
  }
  for (const v1::Envelope& e : good) {
    Outputs out;
    node.HandleMessage(e, c.now(), &out);
    ASSERT_EQ(out.messages.size(), 1u);
    EXPECT_TRUE(out.messages[0].envelope.is_reply());
    EXPECT_EQ(out.messages[0].envelope.request_id(), 4242u);
    EXPECT_FALSE(out.messages[0].envelope.has_error())
        << out.messages[0].envelope.error().message();
  }
  EXPECT_EQ(node.hint_backlog(), 1u);
}

TEST(NodeBadInputTest, AnEmptyObjectFromAPeerStoresNothing) {
  Cluster c(1, 1);
  c.Step();
  const Snapshot before = Snap(c.engine(0));
  v1::Envelope e = WriteOf({{"fresh", v1::ObjectRecord()}});
  Outputs out;
  c.node(0).HandleMessage(e, c.now(), &out);
  ASSERT_EQ(out.messages.size(), 1u);
  EXPECT_TRUE(Unchanged(before, c.engine(0)));
  v1::Envelope h = WriteOf({{"fresh", v1::ObjectRecord()}}, "owner");
  c.node(0).HandleMessage(h, c.now(), &out);
  EXPECT_TRUE(Unchanged(before, c.engine(0)));
  EXPECT_EQ(c.node(0).hint_backlog(), 0u);
}

TEST(NodeBadInputTest, GossipWithABadRingChangesNoStoredRing) {
  Cluster c(1, 1);
  c.Step();
  const Snapshot before = Snap(c.engine(0));
  const uint64_t version = c.node(0).membership().ring_state().version();
  std::vector<v1::RingState> bad;
  {
    v1::RingState r = c.node(0).membership().ring_state();
    r.set_version(version + 10);
    r.mutable_tokens()->RemoveLast();
    bad.push_back(r);
  }
  {
    v1::RingState r;
    r.set_version(version + 10);
    r.set_claimant("zz");
    bad.push_back(r);
  }
  for (const v1::RingState& r : bad) {
    v1::Envelope e = Request();
    *e.mutable_gossip()->mutable_ring() = r;
    Outputs out;
    c.node(0).HandleMessage(e, c.now(), &out);
    ASSERT_EQ(out.messages.size(), 1u);
    EXPECT_TRUE(out.messages[0].envelope.has_gossip_reply());
    EXPECT_TRUE(Unchanged(before, c.engine(0)));
    EXPECT_EQ(c.node(0).membership().ring_state().version(), version);
    EXPECT_TRUE(c.node(0).Ready(nullptr));
  }
}

// A gossip request names its ring; the reply carries the replier's ring only
// when it is newer than that (an unchanged ring does not travel every round).
TEST(NodeTest, GossipRepliesCarryTheRingOnlyToAPeerWithAnOlderOne) {
  Cluster c(1, 1);
  c.Step();
  const v1::RingState& ring = c.node(0).membership().ring_state();
  ASSERT_GT(ring.version(), 0u);
  auto reply_to = [&](const v1::Gossip& gossip) {
    v1::Envelope e = Request();
    *e.mutable_gossip() = gossip;
    Outputs out;
    c.node(0).HandleMessage(e, c.now(), &out);
    EXPECT_EQ(out.messages.size(), 1u);
    return out.messages.empty() ? v1::Gossip() : out.messages[0].envelope.gossip_reply();
  };
  v1::Gossip same;
  same.set_ring_version(ring.version());
  same.set_ring_claimant(ring.claimant());
  v1::Gossip reply = reply_to(same);
  EXPECT_FALSE(reply.has_ring());
  EXPECT_EQ(reply.ring_version(), ring.version());
  EXPECT_EQ(reply.ring_claimant(), ring.claimant());

  v1::Gossip older = same;
  older.set_ring_version(ring.version() - 1);
  EXPECT_EQ(reply_to(older).ring().version(), ring.version());
  // A peer without a ring, or of a version that names none (0).
  EXPECT_EQ(reply_to(v1::Gossip()).ring().version(), ring.version());
  // A version that sends the whole ring: compared by the ring it sent.
  v1::Gossip whole;
  *whole.mutable_ring() = ring;
  EXPECT_FALSE(reply_to(whole).has_ring());
  EXPECT_EQ(c.node(0).membership().ring_state().version(), ring.version());
}

// ------------------------------------------------------------- sibling limit

TEST(NodeTest, SiblingHardLimitRefusesConcurrentWritesButNotResolvingOnes) {
  Cluster c(1, 1, [](NodeConfig& cfg) {
    cfg.siblings_warn = 2;
    cfg.siblings_max = 3;
  });
  c.Step();
  c.MustPut(0, "k", "a");
  c.MustPut(0, "k", "b");
  c.MustPut(0, "k", "c");
  EXPECT_EQ(c.node(0).counters().sibling_warnings, 1u);
  const Snapshot before = Snap(c.engine(0));
  ClientReply refused = c.Call(0, Put("k", "d"));
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kResourceExhausted) << refused.status;
  EXPECT_NE(refused.status.message().find("siblings"), std::string::npos) << refused.status;
  EXPECT_NE(refused.status.message().find("limit is 3"), std::string::npos) << refused.status;
  EXPECT_NE(refused.status.message().find("context"), std::string::npos)
      << "tells the user how to resolve it";
  EXPECT_TRUE(Unchanged(before, c.engine(0)));
  EXPECT_EQ(c.node(0).counters().sibling_limit_refusals, 1u);

  const v1::GetResponse three = c.MustGet(0, "k");
  ASSERT_EQ(three.siblings_size(), 3);
  const std::string ctx = c.MustPut(0, "k", "resolved", three.context());
  EXPECT_EQ(Values(c.MustGet(0, "k")), (std::vector<std::string>{"resolved"}));
  c.MustPut(0, "k", "again", ctx);
}

TEST(NodeTest, SiblingBytesLimitKeepsEveryObjectWithinOneMessage) {
  Cluster c(1, 1, [](NodeConfig& cfg) {
    cfg.value_bytes_max = 400;
    cfg.object_bytes_max = 1000;
  });
  c.Step();
  c.MustPut(0, "k", std::string(400, 'a'));
  c.MustPut(0, "k", std::string(400, 'b'));
  const Snapshot before = Snap(c.engine(0));
  ClientReply refused = c.Call(0, Put("k", std::string(300, 'c')));
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kResourceExhausted) << refused.status;
  EXPECT_NE(refused.status.message().find("800 bytes"), std::string::npos) << refused.status;
  EXPECT_NE(refused.status.message().find("limit of 1000"), std::string::npos) << refused.status;
  EXPECT_NE(refused.status.message().find("context"), std::string::npos)
      << "tells the user how to resolve it";
  EXPECT_TRUE(Unchanged(before, c.engine(0)));
  EXPECT_EQ(c.node(0).counters().sibling_limit_refusals, 1u);

  // A smaller concurrent value still fits; a write with the read's context
  // replaces what it saw, whatever their size.
  c.MustPut(0, "k", std::string(200, 'd'));
  const v1::GetResponse three = c.MustGet(0, "k");
  ASSERT_EQ(three.siblings_size(), 3);
  c.MustPut(0, "k", std::string(400, 'r'), three.context());
  EXPECT_EQ(Values(c.MustGet(0, "k")), (std::vector<std::string>{std::string(400, 'r')}));
}

// ------------------------------------------------------------- sync contract

TEST(NodeTest, OnlyReplicaReadsWritesAndForwardsMayLeaveBeforeTheSync) {
  Outputs out;
  auto add = [&](const std::string& to, auto set_body, bool is_reply) {
    OutMessage m;
    m.to_node = to;
    m.envelope.set_is_reply(is_reply);
    set_body(m.envelope);
    out.messages.push_back(std::move(m));
  };
  add("gossip", [](v1::Envelope& e) { e.mutable_gossip(); }, false);
  add("write", [](v1::Envelope& e) { e.mutable_write(); }, false);
  add("ack", [](v1::Envelope& e) { e.mutable_write_ack(); }, true);
  add("read", [](v1::Envelope& e) { e.mutable_read(); }, false);
  add("read-reply", [](v1::Envelope& e) { e.mutable_read_reply(); }, true);
  add("forward", [](v1::Envelope& e) { e.mutable_forward(); }, false);
  add("merkle", [](v1::Envelope& e) { e.mutable_merkle(); }, false);
  out.sync = true;
  const Outputs early = TakeEarlyRequests(out);
  auto names = [](const Outputs& o) {
    std::vector<std::string> v;
    for (const OutMessage& m : o.messages) v.push_back(m.to_node);
    return v;
  };
  EXPECT_EQ(names(early), (std::vector<std::string>{"write", "read", "forward"}));
  EXPECT_EQ(names(out), (std::vector<std::string>{"gossip", "ack", "read-reply", "merkle"}));
  EXPECT_TRUE(out.sync);
}

TEST(NodeTest, AFailedSyncAnswersWithErrorsAndTheClientLearnsWhichReplicaFailedAndWhy) {
  Cluster c(3, 3);
  ASSERT_TRUE(c.Form());
  c.failing_sync = {2};
  // Its coordinator hears the failure at once and names it; without the error
  // reply it would wait for the timeout and could not say why.
  const ClientReply all = c.Call(0, Put("k", "v", "", Q(3, 2, 3)));
  EXPECT_EQ(all.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(all.status.message(),
                                "2 of W=3 replicas acknowledged (3 asked; failed: n3 (storage "
                                "could not sync: fsync: Input/output error))"))
      << all.status;
  c.MustPut(0, "k", "w");  // W=2: still writable
}

TEST(NodeTest, FailUnsyncedTurnsRepliesIntoErrorRepliesAndDropsRequests) {
  Outputs out;
  OutMessage ack{"n2", "a2", {}};
  ack.envelope.set_from_node("n1");
  ack.envelope.set_from_address("a1");
  ack.envelope.set_request_id(7);
  ack.envelope.set_is_reply(true);
  ack.envelope.mutable_write_ack();
  out.messages.push_back(ack);
  out.messages.push_back({"n3", "a3", {}});  // a request: dropped
  out.messages.back().envelope.mutable_gossip();
  out.replies.push_back({9, absl::OkStatus(), v1::PutResponse()});
  FailUnsynced(out, absl::InternalError("fsync failed"));
  ASSERT_EQ(out.messages.size(), 1u);
  const OutMessage& error = out.messages[0];
  EXPECT_EQ(error.to_node, "n2");
  EXPECT_EQ(error.to_address, "a2");
  EXPECT_EQ(error.envelope.from_node(), "n1");
  EXPECT_EQ(error.envelope.from_address(), "a1");
  EXPECT_EQ(error.envelope.request_id(), 7u);
  EXPECT_TRUE(error.envelope.is_reply());
  EXPECT_FALSE(error.envelope.has_write_ack());
  EXPECT_EQ(error.envelope.error().code(), static_cast<int>(absl::StatusCode::kInternal));
  EXPECT_EQ(error.envelope.error().message(), "storage could not sync: fsync failed");
  ASSERT_EQ(out.replies.size(), 1u);
  EXPECT_EQ(out.replies[0].status, absl::InternalError("storage could not sync: fsync failed"));
  EXPECT_TRUE(std::holds_alternative<std::monostate>(out.replies[0].response));
}

// ------------------------------------------------------------- zones

// In Kubernetes only the operator knows a pod's zone and tells it once by
// Join: the node must keep it across restarts. An explicit --zone still wins.
TEST(NodeTest, AZoneGivenByJoinSurvivesARestartUnlessTheConfigNamesOne) {
  Cluster c(1, 1);
  ASSERT_TRUE(c.Form());
  ASSERT_EQ(c.node(0).Status(c.now()).zone(), "");
  c.Do(0, [](Node& n, int64_t now, Outputs* out) {
    absl::StatusOr<v1::JoinResponse> r = n.Join("", "zc", now, out);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(out->sync) << "persisted";
  });
  const auto ring_zone = [&] { return c.node(0).membership().ring().FindNode("n1")->zone; };
  for (int t = 0; t < 100 && ring_zone() != "zc"; ++t) c.Step();
  ASSERT_EQ(ring_zone(), "zc");

  c.Start(0);  // a crash, then a start with no --zone
  EXPECT_EQ(c.node(0).Status(c.now()).zone(), "zc");
  EXPECT_EQ(c.node(0).membership().self().zone(), "zc");
  ASSERT_TRUE(c.node(0).Close().ok());
  c.Start(0);  // a clean restart
  EXPECT_EQ(c.node(0).Status(c.now()).zone(), "zc");
  const uint64_t ring_version = c.node(0).membership().ring_state().version();
  for (int t = 0; t < 100; ++t) c.Step();
  EXPECT_EQ(c.node(0).membership().ring_state().version(), ring_version) << "nothing changed";

  c.config(0).zone = "zd";
  c.Start(0);
  EXPECT_EQ(c.node(0).Status(c.now()).zone(), "zd");
  EXPECT_EQ(c.node(0).membership().self().zone(), "zd");
  for (int t = 0; t < 100 && ring_zone() != "zd"; ++t) c.Step();
  EXPECT_EQ(ring_zone(), "zd");
  c.config(0).zone = "";
  c.Start(0);
  EXPECT_EQ(c.node(0).Status(c.now()).zone(), "zd") << "the last zone given is kept";
}

// The fewest zones among the replicas (first n of the preference order) of
// any range.
size_t FewestReplicaZones(const Ring& ring, size_t n) {
  size_t fewest = n;
  for (size_t r = 0; r < ring.ranges().size(); ++r) {
    std::set<std::string> zones;
    const std::vector<uint32_t>& order = ring.PreferenceOrder(r);
    for (size_t i = 0; i < order.size() && i < n; ++i) zones.insert(ring.nodes()[order[i]].zone);
    fewest = std::min(fewest, zones.size());
  }
  return fewest;
}

// A zone given by Join to a ring member is gossiped, and the claimant makes a
// ring that places replicas by it; the member stays NORMAL while its ranges
// move by handoff.
TEST(NodeClusterTest, AZoneGivenByJoinIsGossipedAndPlacesReplicas) {
  Cluster c(4, 3, [](NodeConfig& config) {
    config.ring.zone_aware = true;
    config.zone = config.node_id <= "n2" ? "za" : "zb";
  });
  ASSERT_TRUE(c.Form());
  for (int i = 0; i < 40; ++i) c.MustPut(0, "k" + std::to_string(i), "v");
  ASSERT_EQ(FewestReplicaZones(c.node(0).membership().ring(), 3), 2u);
  const uint64_t ring_version = c.node(0).membership().ring_state().version();
  const auto handed_off = [&] {
    uint64_t keys = 0;
    for (size_t i = 0; i < c.size(); ++i) keys += c.node(i).counters().handoff_keys;
    return keys;
  };
  const uint64_t handed_off_before = handed_off();

  c.Do(3, [](Node& n, int64_t now, Outputs* out) {
    absl::StatusOr<v1::JoinResponse> r = n.Join("", "zc", now, out);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->state(), v1::NODE_STATE_NORMAL);
  });
  EXPECT_EQ(c.node(3).Status(c.now()).zone(), "zc");
  const auto everyone_sees_zc = [&] {
    for (size_t i = 0; i < c.size(); ++i) {
      const v1::MembersResponse members = c.node(i).Members(c.now());
      for (const v1::Member& m : members.members()) {
        if (m.node_id() == "n4" && m.zone() != "zc") return false;
      }
      if (c.node(i).membership().ring().FindNode("n4")->zone != "zc") return false;
    }
    return true;
  };
  for (int t = 0; t < 3000 && !everyone_sees_zc(); ++t) {
    c.Step();
    ASSERT_EQ(c.node(3).Status(c.now()).state(), v1::NODE_STATE_NORMAL);
  }
  ASSERT_TRUE(everyone_sees_zc());
  EXPECT_GT(c.node(0).membership().ring_state().version(), ring_version);
  EXPECT_EQ(FewestReplicaZones(c.node(0).membership().ring(), 3), 3u);

  const auto unowned = [&] {
    uint64_t keys = 0;
    for (size_t i = 0; i < c.size(); ++i) keys += c.node(i).Status(c.now()).unowned_keys();
    return keys;
  };
  for (int t = 0; t < 3000 && unowned() > 0; ++t) c.Step();
  EXPECT_EQ(unowned(), 0u);
  EXPECT_GT(handed_off(), handed_off_before) << "replicas moved to the new zone's placement";
  EXPECT_EQ(c.node(3).Status(c.now()).state(), v1::NODE_STATE_NORMAL);
  for (int i = 0; i < 40; ++i) {
    const std::string key = "k" + std::to_string(i);
    EXPECT_EQ(Values(c.MustGet(2, key)), std::vector<std::string>{"v"}) << key;
  }
}

// ------------------------------------------------------------- epochs

TEST(NodeTest, OpenKeepsTheEpochAfterACleanStopAndTakesANewOneAfterACrashOrOnEmptyStorage) {
  MemoryEngine engine;
  NodeConfig cfg = Config("n1", "n1", 1);
  std::string first;
  {
    absl::StatusOr<std::unique_ptr<Node>> node = Node::Open(cfg, &engine, 1, 1000);
    ASSERT_TRUE(node.ok()) << node.status();
    first = (*node)->actor();
    EXPECT_EQ(first.rfind("n1#", 0), 0u) << first;
    EXPECT_EQ((*node)->Status(1000).actor(), first);
    ASSERT_TRUE((*node)->Close().ok());
  }
  {
    // Restarted after a clean stop (another seed, later): the same incarnation.
    absl::StatusOr<std::unique_ptr<Node>> node = Node::Open(cfg, &engine, 2, 5000);
    ASSERT_TRUE(node.ok()) << node.status();
    EXPECT_EQ((*node)->actor(), first);
    // Not closed: a crash.
  }
  std::string after_crash;
  {
    // It may have lost writes whose values its replicas hold: a new actor.
    absl::StatusOr<std::unique_ptr<Node>> node = Node::Open(cfg, &engine, 3, 7000);
    ASSERT_TRUE(node.ok()) << node.status();
    after_crash = (*node)->actor();
    EXPECT_NE(after_crash, first);
    EXPECT_EQ(after_crash.rfind("n1#", 0), 0u);
    ASSERT_TRUE((*node)->Close().ok());
  }
  {
    absl::StatusOr<std::unique_ptr<Node>> node = Node::Open(cfg, &engine, 4, 8000);
    ASSERT_TRUE(node.ok()) << node.status();
    EXPECT_EQ((*node)->actor(), after_crash);
  }
  {
    // The disk was replaced: a new actor.
    engine.Clear();
    absl::StatusOr<std::unique_ptr<Node>> node = Node::Open(cfg, &engine, 3, 9000);
    ASSERT_TRUE(node.ok()) << node.status();
    EXPECT_NE((*node)->actor(), first);
    EXPECT_EQ((*node)->actor().rfind("n1#", 0), 0u);
  }
}

TEST(NodeTest, DotCountersNeverRepeatAcrossRestarts) {
  // A node restarted after a clean stop keeps its actor, so it must not reuse
  // a counter: a value written after the restart must not be mistaken for one
  // written before.
  Cluster c(1, 1);
  c.Step();
  c.MustPut(0, "k", "before");
  const std::string actor = c.node(0).actor();
  ASSERT_TRUE(c.node(0).Close().ok());
  c.Start(0);
  ASSERT_EQ(c.node(0).actor(), actor);
  c.Step();
  c.MustPut(0, "k", "after");  // blind: concurrent with "before"
  EXPECT_EQ(Values(c.MustGet(0, "k")), (std::vector<std::string>{"after", "before"}));
}

// ------------------------------------------------------------- three nodes

TEST(NodeClusterTest, ThreeNodesFormARingAndServeReadsAndWrites) {
  Cluster c(3, 3);
  ASSERT_TRUE(c.Form());
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(c.node(i).Ready(nullptr));
    EXPECT_EQ(c.node(i).Status(c.now()).state(), v1::NODE_STATE_NORMAL);
  }

  // Written through one node, read through another.
  c.MustPut(1, "k", "v1");
  v1::GetResponse got = c.MustGet(2, "k");
  EXPECT_TRUE(got.found());
  EXPECT_EQ(Values(got), (std::vector<std::string>{"v1"}));

  // Blind writes through two coordinators: siblings.
  c.MustPut(0, "s", "left");
  c.MustPut(2, "s", "right");
  const v1::GetResponse both = c.MustGet(1, "s");
  EXPECT_EQ(Values(both), (std::vector<std::string>{"left", "right"}));
  c.MustPut(0, "s", "merged", both.context());
  EXPECT_EQ(Values(c.MustGet(2, "s")), (std::vector<std::string>{"merged"}));

  // Missing and deleted keys read as not found, with a context.
  const v1::GetResponse missing = c.MustGet(0, "nothing");
  EXPECT_FALSE(missing.found());
  EXPECT_FALSE(missing.context().empty());
  ClientReply del = c.Call(1, Delete("k", got.context()));
  ASSERT_TRUE(del.status.ok()) << del.status;
  for (size_t i = 0; i < 3; ++i) EXPECT_FALSE(c.MustGet(i, "k").found()) << i;

  // Every replica holds the merged value after the reads settle.
  for (int i = 0; i < 10; ++i) c.Step();
  for (size_t i = 0; i < 3; ++i) {
    absl::StatusOr<std::string> stored =
        c.engine(i).Get(Space::kData, DataKey(KeyPosition("s"), "s"));
    ASSERT_TRUE(stored.ok()) << i << ": " << stored.status();
    absl::StatusOr<VersionedObject> obj = VersionedObject::Decode(*stored);
    ASSERT_TRUE(obj.ok());
    ASSERT_EQ(obj->live_sibling_count(), 1u) << i;
    EXPECT_EQ(obj->siblings()[0].value, "merged");
  }
}

// A read asks one replica for the object (the coordinator itself, when it is
// one) and the others for digests: in sync, no object crosses the network. A
// replica's digest that differs gets it read in full, and the stale replica
// is repaired.
TEST(NodeClusterTest, ReadsMoveDigestsAndReadAReplicaInFullOnlyWhenItDiffers) {
  Cluster c(3, 3);
  ASSERT_TRUE(c.Form());
  const std::string context = c.MustPut(0, "k", "v1");
  c.object_answers = c.digest_answers = 0;
  EXPECT_EQ(Values(c.MustGet(1, "k")), (std::vector<std::string>{"v1"}));
  EXPECT_EQ(c.object_answers, 0u);
  EXPECT_EQ(c.digest_answers, 2u);
  EXPECT_EQ(c.node(1).counters().read_digest_mismatches, 0u);

  c.down = {2};  // n3 misses v2
  c.MustPut(0, "k", "v2", context);
  c.down = {};
  c.object_answers = c.digest_answers = 0;
  const uint64_t repairs_before = c.node(2).counters().read_repairs;
  // n3 coordinates: its own v1 is the full answer, n1's and n2's digests
  // differ from it, so both are read in full.
  EXPECT_EQ(Values(c.MustGet(2, "k")), (std::vector<std::string>{"v2"}));
  EXPECT_EQ(c.digest_answers, 2u);
  EXPECT_EQ(c.object_answers, 2u);
  EXPECT_EQ(c.node(2).counters().read_digest_mismatches, 2u);
  EXPECT_EQ(c.node(2).counters().read_repairs, repairs_before + 1);
  absl::StatusOr<std::string> stored = c.engine(2).Get(Space::kData, DataKey(KeyPosition("k"), "k"));
  ASSERT_TRUE(stored.ok()) << stored.status();
  absl::StatusOr<VersionedObject> obj = VersionedObject::Decode(*stored);
  ASSERT_TRUE(obj.ok());
  ASSERT_EQ(obj->live_sibling_count(), 1u);
  EXPECT_EQ(obj->siblings()[0].value, "v2");
}

TEST(NodeClusterTest, AWriteReachesQuorumWithOneReplicaDown) {
  Cluster c(3, 3);
  ASSERT_TRUE(c.Form());
  c.down = {2};
  c.MustPut(0, "k", "v");
  EXPECT_EQ(Values(c.MustGet(1, "k")), (std::vector<std::string>{"v"}));
  c.down = {1, 2};
  ClientReply r = c.Call(0, Put("k", "w"));
  EXPECT_EQ(r.status.code(), absl::StatusCode::kUnavailable) << r.status;
  EXPECT_NE(r.status.message().find("quorum"), std::string::npos) << r.status;
}

// A client that allows less time than the request timeout is answered before
// a silent replica's request times out; that replica still gets its hint.
TEST(NodeClusterTest, AReplicaThatFailsAfterTheClientWasAnsweredGetsAHint) {
  Cluster c(3, 3);
  ASSERT_TRUE(c.Form());
  c.silent = {2};
  ClientRequest put = Put("k", "v");
  put.timeout_ms = 100;  // the nodes' request timeout is 500
  ClientReply r = c.Call(0, put);
  ASSERT_TRUE(r.status.ok()) << r.status;
  auto hints = [&] { return c.node(0).hint_backlog() + c.node(1).hint_backlog(); };
  EXPECT_EQ(hints(), 0u);  // the request to n3 has not failed yet
  for (int i = 0; i < 60; ++i) c.Step();  // 600 ms: now it has
  EXPECT_EQ(hints(), 1u);
  c.silent.clear();
  for (int i = 0; i < 300 && hints() > 0; ++i) c.Step();
  EXPECT_EQ(hints(), 0u);
  EXPECT_TRUE(c.engine(2).Get(Space::kData, DataKey(KeyPosition("k"), "k")).ok());
}

TEST(NodeClusterTest, WritesReachingANodeOutsideThePreferenceListAreForwarded) {
  Cluster c(3, 1);
  ASSERT_TRUE(c.Form());
  for (int k = 0; k < 20; ++k) {
    const std::string key = "key" + std::to_string(k);
    const std::vector<std::string> owners =
        c.node(0).membership().ring().PreferenceList(KeyPosition(key), 1);
    ASSERT_EQ(owners.size(), 1u);
    for (size_t i = 0; i < 3; ++i) {
      c.MustPut(i, key, "from-" + std::to_string(i));
    }
    EXPECT_EQ(c.MustGet(0, key).siblings_size(), 3) << key;
    // Only the owner stores it.
    for (size_t i = 0; i < 3; ++i) {
      const bool stored = c.engine(i).Get(Space::kData, DataKey(KeyPosition(key), key)).ok();
      EXPECT_EQ(stored, "n" + std::to_string(i + 1) == owners[0]) << key << " on n" << i + 1;
    }
  }
  EXPECT_GT(c.node(0).counters().forwarded + c.node(1).counters().forwarded +
                c.node(2).counters().forwarded,
            0u);
}

// A node that has left says so to every live peer before it stops: the
// cluster learns LEFT from it, not from gossip it may stop before sending.
TEST(NodeClusterTest, ALeftNodesFarewellTellsEveryLivePeerItLeft) {
  Cluster c(4, 3);
  ASSERT_TRUE(c.Form());
  c.MustPut(0, "k", "v");
  // A node not leaving has nothing to announce.
  c.Do(3, [](Node& n, int64_t now, Outputs* out) {
    n.Farewell(now, out);
    EXPECT_TRUE(out->messages.empty());
  });
  EXPECT_TRUE(c.node(3).FarewellAnswered());

  c.Do(3, [](Node& n, int64_t now, Outputs* out) { n.Leave(now, out); });
  for (int t = 0; t < 3000 && c.node(3).Status(c.now()).state() != v1::NODE_STATE_LEFT; ++t) {
    c.Step();
  }
  ASSERT_EQ(c.node(3).Status(c.now()).state(), v1::NODE_STATE_LEFT);
  const auto peers_see_left = [&] {
    for (size_t i = 0; i < 3; ++i) {
      if (c.node(i).membership().StateOf("n4") != v1::NODE_STATE_LEFT) return false;
    }
    return true;
  };
  ASSERT_FALSE(peers_see_left()) << "gossip told them already: the test shows nothing";

  c.down = {2};  // down, though n4 has not noticed: its farewell to n3 fails
  c.Do(3, [](Node& n, int64_t now, Outputs* out) {
    n.Farewell(now, out);
    EXPECT_EQ(out->messages.size(), 3u);
  }, /*deliver=*/false);
  EXPECT_FALSE(c.node(3).FarewellAnswered());
  c.Step();
  EXPECT_TRUE(c.node(3).FarewellAnswered());
  c.down = {2, 3};  // n4 stops; n3 comes back
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(c.node(i).membership().StateOf("n4"), v1::NODE_STATE_LEFT) << i;
  }
  EXPECT_EQ(c.node(2).membership().StateOf("n4"), v1::NODE_STATE_LEAVING);
  c.down = {3};
  for (int t = 0; t < 3000 && !peers_see_left(); ++t) c.Step();
  EXPECT_TRUE(peers_see_left());
  EXPECT_EQ(Values(c.MustGet(2, "k")), (std::vector<std::string>{"v"}));
}

// Hints, handoffs and anti-entropy move batches of keys: with large values a
// batch capped by count alone outgrew a message, failed every time, and the
// hints never left and a leave never ended. Each batch holds at most a
// message's worth (object_bytes_max), and at least one key.
TEST(NodeClusterTest, LargeValuesMoveInBatchesThatFitAMessage) {
  Cluster c(4, 3, [](NodeConfig& config) {
    config.value_bytes_max = 64 << 10;
    config.object_bytes_max = 200 << 10;  // three values to a message
  });
  c.message_bytes_max = (200 << 10) + c.node(0).config().key_bytes_max + kMessageReserveBytes;
  ASSERT_TRUE(c.Form());
  const std::string big(60 << 10, 'x');
  std::vector<std::string> keys;  // keys n2 replicates
  for (int i = 0; keys.size() < 12; ++i) {
    const std::string key = "k" + std::to_string(i);
    const auto list = c.node(0).membership().ring().PreferenceList(KeyPosition(key), 3);
    if (std::find(list.begin(), list.end(), "n2") != list.end()) keys.push_back(key);
  }
  c.down = {1};
  for (const std::string& key : keys) c.MustPut(0, key, big);
  uint64_t hints = 0;
  for (size_t i = 0; i < c.size(); ++i) hints += c.node(i).hint_backlog();
  ASSERT_GE(hints, keys.size()) << "n2's copies wait as hints";
  c.down = {};
  for (int t = 0; t < 3000 && hints > 0; ++t) {
    c.Step();
    hints = 0;
    for (size_t i = 0; i < c.size(); ++i) hints += c.node(i).hint_backlog();
  }
  EXPECT_EQ(hints, 0u) << "every hint delivered";
  for (const std::string& key : keys) {
    EXPECT_TRUE(c.engine(1).Get(Space::kData, DataKey(KeyPosition(key), key)).ok()) << key;
  }

  c.Do(3, [](Node& n, int64_t now, Outputs* out) { n.Leave(now, out); });
  for (int t = 0; t < 5000 && c.node(3).Status(c.now()).state() != v1::NODE_STATE_LEFT; ++t) {
    c.Step();
  }
  EXPECT_EQ(c.node(3).Status(c.now()).state(), v1::NODE_STATE_LEFT) << "the leave ends";
  EXPECT_LE(c.max_message_bytes, c.message_bytes_max);
  for (const std::string& key : keys) {
    EXPECT_EQ(Values(c.MustGet(0, key)), std::vector<std::string>{big}) << key;
  }
}

// A node that left still pushes its old copies to the new owners, slowly. A
// key deleted meanwhile: its tombstone must outlive that copy, or the copy
// arrives where the tombstone was reaped and the value is back.
TEST(NodeClusterTest, AKeyDeletedDuringASlowHandoffStaysDeleted) {
  Cluster c(4, 3, [](NodeConfig& config) {
    config.tombstone_grace_ms = 100;
    if (config.node_id == "n4") {
      config.background_bytes_per_s = 200;  // one small key every few seconds
      config.handoff_batch_keys_max = 1;
    }
  });
  ASSERT_TRUE(c.Form());
  for (int i = 0; i < 40; ++i) c.MustPut(0, "k" + std::to_string(i), "v");
  c.Do(3, [](Node& n, int64_t now, Outputs* out) { n.Leave(now, out); });
  for (int t = 0; t < 3000 && c.node(3).membership().InRing("n4"); ++t) c.Step();
  ASSERT_FALSE(c.node(3).membership().InRing("n4"));
  for (int t = 0; t < 300; ++t) c.Step();  // gossip spreads what n4 holds
  std::string held;  // a key n4 has not handed off yet
  for (int i = 39; i >= 0 && held.empty(); --i) {
    const std::string key = "k" + std::to_string(i);
    if (c.engine(3).Get(Space::kData, DataKey(KeyPosition(key), key)).ok()) held = key;
  }
  ASSERT_FALSE(held.empty());
  c.MustDelete(0, held);
  for (int t = 0; t < 100; ++t) c.Step();  // past the grace period
  uint64_t reaped = 0;
  for (size_t i = 0; i < 3; ++i) reaped += c.node(i).counters().tombstones_reaped;
  EXPECT_EQ(reaped, 0u) << "reaped while n4 still holds a copy";
  // n4's handoff goes on to the end.
  for (int t = 0; t < 60000 && c.node(3).store().total_keys() > 0; ++t) c.Step();
  ASSERT_EQ(c.node(3).store().total_keys(), 0u);
  ClientReply read = c.Call(0, Get(held, Q(3, 3, 1)));
  ASSERT_TRUE(read.status.ok()) << read.status;
  EXPECT_FALSE(std::get<v1::GetResponse>(read.response).found()) << held << " came back";
  // Then the tombstone goes.
  for (int t = 0; t < 1000 && reaped == 0; ++t) {
    c.Step();
    for (size_t i = 0; i < 3; ++i) reaped += c.node(i).counters().tombstones_reaped;
  }
  EXPECT_GT(reaped, 0u);
}

// ------------------------------------------------------------- removal

// A node gone for good held every reap (it cannot answer the handoff query)
// and kept its hints waiting. Removed by an administrator, through another
// node: it leaves the ring, its hints go to the keys' new owners, the reaps
// go on. Its old storage may never come back (it holds the deleted value);
// a wiped one joins as a new node.
TEST(NodeClusterTest, ANodeGoneForGoodIsRemovedAndItsOldStorageNeverComesBack) {
  Cluster c(4, 3, OnlyReapsAct);
  ASSERT_TRUE(c.Form(60000));
  const auto remove = [&](size_t via, const std::string& node) {
    absl::StatusOr<v1::RemoveNodeResponse> r;
    c.Do(via, [&](Node& n, int64_t now, Outputs* out) { r = n.RemoveNode(node, now, out); });
    return r;
  };
  EXPECT_EQ(remove(0, "n4").status().code(), absl::StatusCode::kFailedPrecondition)
      << "n4 is alive: it should leave, handing its data off";
  EXPECT_EQ(remove(0, "n1").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(remove(0, "n9").status().code(), absl::StatusCode::kNotFound);

  // Two keys n4 holds (N=3 of 4 nodes: most keys). `gone` is deleted on
  // every owner, and its reap waits out the grace; then n4 is gone, and
  // `stale` is deleted while its old value stays on n4's storage.
  std::vector<std::string> on_n4;
  for (int i = 0; on_n4.size() < 2 && i < 100; ++i) {
    const std::string key = "k" + std::to_string(i);
    c.MustPut(0, key, "v");
    if (Stores(c, 3, key)) on_n4.push_back(key);
  }
  ASSERT_EQ(on_n4.size(), 2u);
  const std::string gone = on_n4[0], stale = on_n4[1];
  c.MustDelete(0, gone);
  c.down = {3};
  for (int i = 0; i < 400; ++i) c.Step();
  c.MustDelete(0, stale);
  for (int i = 0; i < 20; ++i) c.MustPut(0, "h" + std::to_string(i), "v");  // hints for n4
  uint64_t hints = 0;
  for (size_t i = 0; i < 3; ++i) hints += c.node(i).hint_backlog();
  ASSERT_GT(hints, 0u);
  for (int i = 0; i < 300; ++i) c.Step();  // far past the grace
  uint64_t owed = 0;
  for (size_t i = 0; i < 3; ++i) owed += c.node(i).Status(c.now()).reaps_owed();
  ASSERT_EQ(owed, 1u) << "held while n4 cannot answer";

  absl::StatusOr<v1::RemoveNodeResponse> removed = remove(1, "n4");
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(removed->state(), v1::NODE_STATE_LEAVING) << "until the claimant drops it";
  for (int i = 0; i < 600; ++i) c.Step();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_FALSE(c.node(i).membership().InRing("n4")) << "n" << i + 1;
    EXPECT_EQ(c.node(i).membership().StateOf("n4"), v1::NODE_STATE_LEFT) << "n" << i + 1;
    EXPECT_EQ(c.node(i).Members(c.now()).members(3).removed_by(), "n2") << "n" << i + 1;
    EXPECT_EQ(c.node(i).hint_backlog(), 0u) << "n" << i + 1 << ": hints go to the new owners";
    EXPECT_EQ(c.node(i).Status(c.now()).reaps_owed(), 0u) << "n" << i + 1;
    EXPECT_FALSE(Stores(c, i, gone)) << "n" << i + 1 << ": the tombstone is reaped";
  }
  for (int i = 0; i < 20; ++i) {
    const std::string key = "h" + std::to_string(i);
    ClientReply read = c.Call(0, Get(key, Q(3, 3, 2)));
    ASSERT_TRUE(read.status.ok()) << read.status;
    EXPECT_EQ(Values(std::get<v1::GetResponse>(read.response)), std::vector<std::string>{"v"})
        << key << " on every one of its three owners";
  }

  // n4 comes back on its old storage, which still holds the deleted value.
  ASSERT_TRUE(Stores(c, 3, stale));
  std::unique_ptr<MemoryEngine> snapshot = c.CopyStorage(3);
  c.Start(3, /*seed=*/77);
  c.down = {};
  for (int i = 0; i < 300 && !c.node(3).removal(); ++i) c.Step();
  ASSERT_TRUE(c.node(3).removal().has_value()) << "n4 learns it was removed";
  EXPECT_EQ(c.node(3).removal()->removed_by(), "n2");
  std::string why;
  EXPECT_FALSE(c.node(3).Ready(&why));
  EXPECT_NE(why.find("removed"), std::string::npos) << why;
  EXPECT_EQ(c.Call(3, Get("k0")).status.code(), absl::StatusCode::kUnavailable);
  for (int i = 0; i < 600; ++i) c.Step();
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_FALSE(c.node(i).membership().InRing("n4")) << "n" << i + 1;
    EXPECT_EQ(c.node(i).membership().StateOf("n4"), v1::NODE_STATE_LEFT) << "n" << i + 1;
  }
  for (const std::string& key : {gone, stale}) {
    ClientReply read = c.Call(0, Get(key, Q(3, 3, 2)));
    ASSERT_TRUE(read.status.ok()) << read.status;
    EXPECT_TRUE(Values(std::get<v1::GetResponse>(read.response)).empty()) << key << " came back";
  }
  // The storage refuses every later start, and says why.
  absl::StatusOr<std::unique_ptr<Node>> again =
      Node::Open(c.config(3), &c.engine(3), 78, c.now());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(again.status().message().find("Wipe the data directory"), std::string::npos)
      << again.status();

  // Wiped, n4 joins as a new node and takes its share of the data again.
  c.Wipe(3);
  c.Start(3, /*seed=*/79);
  ASSERT_TRUE(c.Form(60000)) << "the new n4 joins the ring";
  EXPECT_FALSE(c.node(3).removal().has_value());
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(c.node(i).Members(c.now()).members(3).removed_by().empty()) << "n" << i + 1;
  }
  EXPECT_GT(c.node(3).membership().self().storage_born(),
            c.node(0).membership().Removals().members(0).generation())
      << "born after the removal (dated ahead, so born anew past it)";
  EXPECT_EQ(Values(c.MustGet(3, "h0")), std::vector<std::string>{"v"});
  EXPECT_FALSE(c.MustGet(3, gone).found());
  EXPECT_FALSE(c.MustGet(3, stale).found());

  // The old disk again, from a snapshot taken before it learned of its
  // removal, once the new n4 has joined: the removal still holds.
  c.down = {3};
  c.ReplaceStorage(3, std::move(snapshot));
  c.Start(3, /*seed=*/80);
  c.down = {};
  for (int i = 0; i < 300 && !c.node(3).removal(); ++i) c.Step();
  ASSERT_TRUE(c.node(3).removal().has_value());
  for (int i = 0; i < 300; ++i) c.Step();
  for (const std::string& key : {gone, stale}) {  // n4 answers with an error now
    ClientReply read = c.Call(0, Get(key, Q(3, 2, 2)));
    ASSERT_TRUE(read.status.ok()) << read.status;
    EXPECT_TRUE(Values(std::get<v1::GetResponse>(read.response)).empty()) << key << " came back";
  }
}

// A storage that a version before removals ran (no record of its birth) may
// have jumped its generation past its own removal, which that version took
// for a newer state of itself: it is taken as born before every removal.
TEST(NodeClusterTest, AStorageOfAVersionBeforeRemovalsIsTakenAsBornBeforeEveryRemoval) {
  Cluster c(1, 1);
  c.Step();
  const v1::MemberState fresh = c.node(0).membership().self();
  EXPECT_EQ(fresh.storage_born(), fresh.generation()) << "born at its first start";
  ASSERT_TRUE(c.node(0).Close().ok());
  c.Start(0);
  EXPECT_EQ(c.node(0).membership().self().storage_born(), fresh.generation()) << "kept";
  ASSERT_TRUE(c.node(0).Close().ok());
  ASSERT_TRUE(c.engine(0).Delete(Space::kMeta, meta::kStorageBorn).ok());  // the old version's
  c.Start(0);
  EXPECT_EQ(c.node(0).membership().self().storage_born(), 1u);
}

// A removed node's old disk can hold a hint of a value deleted since, whose
// tombstone was reaped once the removal let the reaps go. Started again, the
// node must not deliver it, or anything else, before gossip tells it that it
// was removed: it waits for its first gossip before it pushes any data.
TEST(NodeClusterTest, ARemovedNodesOldDiskDeliversNoHintBeforeItLearnsItWasRemoved) {
  Cluster c(4, 3, OnlyReapsAct);
  ASSERT_TRUE(c.Form(60000));
  const std::string key = HintOnN4ThenN4Down(c);  // n4 is gone, with the hint
  ASSERT_FALSE(key.empty());
  for (int i = 0; i < 600; ++i) c.Step();
  c.MustDelete(0, key);  // n1, n2 and n3 hold the tombstone
  absl::StatusOr<v1::RemoveNodeResponse> removed;
  c.Do(0, [&](Node& n, int64_t now, Outputs* out) { removed = n.RemoveNode("n4", now, out); });
  ASSERT_TRUE(removed.ok()) << removed.status();
  for (int i = 0; i < 600; ++i) c.Step();
  for (size_t i = 0; i < 3; ++i) ASSERT_FALSE(Stores(c, i, key)) << "n" << i + 1 << " reaped";

  c.Start(3, /*seed=*/77);  // the old disk, with its hint
  c.down = {};
  // Its first gossip is lost: it goes on believing it is a member a while.
  for (size_t i = 0; i < 3; ++i) c.lost_requests[i] = {v1::Envelope::kGossip};
  for (int i = 0; i < 100; ++i) c.Step();
  std::string why;
  EXPECT_FALSE(c.node(3).Ready(&why));
  EXPECT_NE(why.find("first gossip"), std::string::npos) << why;
  EXPECT_EQ(c.Call(3, Get(key)).status.code(), absl::StatusCode::kUnavailable);
  c.lost_requests.clear();
  for (int i = 0; i < 300; ++i) c.Step();
  ASSERT_TRUE(c.node(3).removal().has_value());
  ClientReply read = c.Call(1, Get(key, Q(3, 3, 2)));
  ASSERT_TRUE(read.status.ok()) << read.status;
  EXPECT_TRUE(Values(std::get<v1::GetResponse>(read.response)).empty()) << "the delete was undone";
  EXPECT_EQ(c.node(3).counters().hints_delivered, 0u);
}

// ------------------------------------------------------------- anti-entropy

// Whether every node holds `key` in its own data (not as a hint).
bool EveryNodeStores(Cluster& c, const std::string& key) {
  for (size_t i = 0; i < c.size(); ++i) {
    if (!Stores(c, i, key)) return false;
  }
  return true;
}

void FastAntiEntropy(NodeConfig& config) { config.antientropy_interval_ms = 50; }

// In sync, an exchange is one call of group digests: no root is sent. A key
// one replica lacks differs in one group: the roots of that group only are
// compared, the trees walked, and the key copied.
TEST(NodeAntiEntropyTest, InSyncIsOneDigestCallAndADifferingKeyIsRepaired) {
  Cluster c(3, 3, FastAntiEntropy);
  ASSERT_TRUE(c.Form());
  for (int k = 0; k < 20; ++k) c.MustPut(0, "key" + std::to_string(k), "v");
  for (int i = 0; i < 100; ++i) c.Step();  // hints, repairs and handoffs settle

  c.requests_by_body.clear();
  for (int i = 0; i < 100; ++i) c.Step();  // 1 s: about 20 exchanges per node
  EXPECT_GE(c.requests_by_body[v1::Envelope::kRangeDigests], 30u);
  EXPECT_EQ(c.requests_by_body[v1::Envelope::kRangeRoots], 0u) << "roots sent while in sync";
  EXPECT_EQ(c.requests_by_body[v1::Envelope::kMerkle], 0u);

  // Written at its first owner only (n = 1): the others learn it through anti-entropy.
  ClientReply r = c.Call(0, Put("lonely", "v", "", Q(1, 1, 1)));
  ASSERT_TRUE(r.status.ok()) << r.status;
  ASSERT_FALSE(EveryNodeStores(c, "lonely"));
  c.requests_by_body.clear();
  for (int i = 0; i < 300 && !EveryNodeStores(c, "lonely"); ++i) c.Step();
  EXPECT_TRUE(EveryNodeStores(c, "lonely"));
  EXPECT_GT(c.requests_by_body[v1::Envelope::kRangeRoots], 0u);
  EXPECT_GT(c.requests_by_body[v1::Envelope::kLeafKeys], 0u);
}

// A peer of an older version answers digests with an error: the exchange
// falls back to comparing every root, and still repairs.
TEST(NodeAntiEntropyTest, APeerWithoutDigestsIsComparedRootByRoot) {
  Cluster c(2, 2, FastAntiEntropy);
  ASSERT_TRUE(c.Form());
  c.unknown_bodies = {{0, {v1::Envelope::kRangeDigests}}, {1, {v1::Envelope::kRangeDigests}}};
  ClientReply r = c.Call(0, Put("lonely", "v", "", Q(1, 1, 1)));
  ASSERT_TRUE(r.status.ok()) << r.status;
  c.requests_by_body.clear();
  for (int i = 0; i < 300 && !EveryNodeStores(c, "lonely"); ++i) c.Step();
  EXPECT_TRUE(EveryNodeStores(c, "lonely"));
  EXPECT_GT(c.requests_by_body[v1::Envelope::kRangeDigests], 0u);
  EXPECT_GT(c.requests_by_body[v1::Envelope::kRangeRoots], 0u);
}

}  // namespace
}  // namespace dynamo::core
