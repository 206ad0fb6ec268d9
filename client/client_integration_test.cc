// The client library against a real 3-node cluster on loopback: both routing
// modes, client-driven placement seen in the nodes' metrics (on N = 2), siblings and
// their resolution, and failover after kill -9.

#include <algorithm>
#include <map>
#include <thread>
#include <tuple>

#include "ctl/admin_rpc.h"
#include "ctl/process.h"
#include "dynamo/base/strings.h"
#include "dynamo/client/client.h"
#include "gtest/gtest.h"
#include "testing/local_cluster.h"

namespace dynamo::client {
namespace {

using testing::LocalCluster;
using testing::LocalClusterOptions;

// How a test's client sends: its routing, and pipes or unary calls.
using Mode = std::tuple<Routing, bool>;

std::string ModeName(const ::testing::TestParamInfo<Mode>& info) {
  return Cat(std::get<0>(info.param) == Routing::kClientDriven ? "ClientDriven" : "ServerDriven",
             std::get<1>(info.param) ? "" : "OnCalls");
}

std::vector<std::string> Values(const GetResult& r) {
  std::vector<std::string> v;
  for (const Sibling& s : r.siblings) v.push_back(s.value);
  std::sort(v.begin(), v.end());
  return v;
}

// Joins the sorted sibling values with '+': a deterministic merge.
std::string JoinSorted(const std::vector<Sibling>& siblings) {
  std::vector<std::string> v;
  for (const Sibling& s : siblings) v.push_back(s.value);
  std::sort(v.begin(), v.end());
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : "+") + s;
  return out;
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<LocalCluster>> c = LocalCluster::Start(LocalClusterOptions{});
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = *std::move(c);
  }

  void TearDown() override {
    if (HasFailure() && cluster_) std::cerr << cluster_->LogTails(30);
  }

  // A client seeded with one node only: the others are learned from it.
  std::unique_ptr<Client> MakeClient(Routing routing, int seed = 0,
                                     int64_t ring_refresh_interval_ms = 30000, bool pipes = true) {
    ClientOptions options;
    options.seeds = {cluster_->address(seed)};
    options.routing = routing;
    options.pipes = pipes;
    options.ring_refresh_interval_ms = ring_refresh_interval_ms;
    absl::StatusOr<std::unique_ptr<Client>> c = Client::Create(options);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? *std::move(c) : nullptr;
  }

  // Per node: the sum of a metric's samples whose labels contain every one of `labels`.
  std::vector<double> MetricPerNode(const std::string& name, const std::vector<std::string>& labels) {
    std::vector<double> out;
    for (int i = 0; i < cluster_->size(); ++i) {
      absl::StatusOr<std::string> m = testing::HttpGet(cluster_->http(i), "/metrics", 5000);
      EXPECT_TRUE(m.ok()) << m.status();
      out.push_back(m.ok() ? testing::MetricSum(*m, name, labels) : -1);
    }
    return out;
  }

  // Per node: the sum of dynamo_requests_total for `op` with code OK.
  std::vector<double> RequestsOk(const std::string& op) {
    return MetricPerNode("dynamo_requests_total", {Cat("op=\"", op, "\""), "code=\"OK\""});
  }

  std::unique_ptr<LocalCluster> cluster_;
};

// The client's semantics, in each routing mode, on unary calls and on pipes.
class ClientClusterTest : public ClusterTest, public ::testing::WithParamInterface<Mode> {
 protected:
  std::unique_ptr<Client> MakeClient(int seed = 0) {
    return ClusterTest::MakeClient(std::get<0>(GetParam()), seed, 30000, std::get<1>(GetParam()));
  }
};

TEST_P(ClientClusterTest, PutGetDeleteWithContexts) {
  std::unique_ptr<Client> client = MakeClient();
  ASSERT_NE(client, nullptr);

  absl::StatusOr<GetResult> missing = client->Get("never-written");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->found);
  EXPECT_TRUE(missing->siblings.empty());
  EXPECT_FALSE(missing->context.empty());  // a context even for a missing key

  for (int i = 0; i < 10; ++i) {
    const std::string key = Cat("key-", i);
    absl::StatusOr<WriteResult> put = client->Put(key, Cat("v1-", i));
    ASSERT_TRUE(put.ok()) << key << ": " << put.status();
    EXPECT_FALSE(put->context.empty());

    absl::StatusOr<GetResult> got = client->Get(key);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(got->found);
    EXPECT_EQ(Values(*got), std::vector<std::string>{Cat("v1-", i)});
    EXPECT_GT(got->siblings[0].timestamp_ms, 0);

    // A write with the read's context replaces the value: still one sibling.
    ASSERT_TRUE(client->Put(key, Cat("v2-", i), got->context).ok());
    got = client->Get(key);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(Values(*got), std::vector<std::string>{Cat("v2-", i)});

    absl::StatusOr<WriteResult> del = client->Delete(key, got->context);
    ASSERT_TRUE(del.ok()) << del.status();
    got = client->Get(key);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_FALSE(got->found) << key;
  }

  // Per-request quorum within the cluster's N.
  WriteOptions w1;
  w1.quorum = {3, 0, 3};
  EXPECT_TRUE(client->Put("quorum-key", "x", "", w1).ok());
  GetOptions r3;
  r3.quorum = {3, 3, 0};
  absl::StatusOr<GetResult> all = client->Get("quorum-key", r3);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(Values(*all), std::vector<std::string>{"x"});
}

TEST_P(ClientClusterTest, InvalidArgumentIsNeverRetried) {
  std::unique_ptr<Client> client = MakeClient();
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Put("warm-up", "x").ok());  // the topology is learned by now
  const ClientStats before = client->stats();

  absl::StatusOr<WriteResult> empty_key = client->Put("", "v");
  ASSERT_FALSE(empty_key.ok());
  EXPECT_EQ(empty_key.status().code(), absl::StatusCode::kInvalidArgument) << empty_key.status();
  absl::StatusOr<WriteResult> garbage = client->Put("k", "v", "not a context");
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.status().code(), absl::StatusCode::kInvalidArgument) << garbage.status();
  GetOptions too_many;
  too_many.quorum = {7, 1, 0};  // N above the cluster's 3
  absl::StatusOr<GetResult> bad_n = client->Get("k", too_many);
  ASSERT_FALSE(bad_n.ok());
  EXPECT_EQ(bad_n.status().code(), absl::StatusCode::kInvalidArgument) << bad_n.status();

  const ClientStats after = client->stats();
  EXPECT_EQ(after.attempts - before.attempts, 3u);
  EXPECT_EQ(after.retries, before.retries);
}

TEST_P(ClientClusterTest, ConcurrentBlindPutsMakeSiblingsThatUpdateMerges) {
  std::unique_ptr<Client> a = MakeClient(0);
  std::unique_ptr<Client> b = MakeClient(1);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  for (const std::string key : {"cart", "profile"}) {
    // Two writers, neither having read the other: both values survive.
    absl::Status sa, sb;
    std::thread ta([&] { sa = a->Put(key, "apple").status(); });
    std::thread tb([&] { sb = b->Put(key, "banana").status(); });
    ta.join();
    tb.join();
    ASSERT_TRUE(sa.ok()) << sa;
    ASSERT_TRUE(sb.ok()) << sb;
    absl::StatusOr<GetResult> got = a->Get(key);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(Values(*got), (std::vector<std::string>{"apple", "banana"}));
  }

  // Update reads both, merges them and writes the merge with the read's context.
  absl::StatusOr<WriteResult> merged = b->Update("cart", JoinSorted);
  ASSERT_TRUE(merged.ok()) << merged.status();
  absl::StatusOr<GetResult> got = a->Get("cart");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Values(*got), std::vector<std::string>{"apple+banana"});

  // Get with resolve does the same in passing.
  GetOptions resolve;
  resolve.resolve = true;
  resolve.resolver = JoinSorted;
  absl::StatusOr<GetResult> resolved = a->Get("profile", resolve);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_TRUE(resolved->resolved);
  EXPECT_EQ(Values(*resolved), std::vector<std::string>{"apple+banana"});
  got = b->Get("profile");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Values(*got), std::vector<std::string>{"apple+banana"});

  // Update of a missing key sees no siblings.
  absl::StatusOr<WriteResult> fresh =
      a->Update("counter", [](const std::vector<Sibling>& s) { return Cat(s.size()); });
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  got = a->Get("counter");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Values(*got), std::vector<std::string>{"0"});
}

TEST_P(ClientClusterTest, SurvivesKillNineOfANode) {
  std::unique_ptr<Client> client = MakeClient(0);
  ASSERT_NE(client, nullptr);
  constexpr int kKeys = 30;
  for (int i = 0; i < kKeys; ++i) ASSERT_TRUE(client->Put(Cat("k", i), "before").ok());

  // Node 2 coordinates some requests in either mode: round robin passes by
  // it, and it is first in a third of the preference lists.
  cluster_->Kill(1);
  for (int i = 0; i < kKeys; ++i) {
    const std::string key = Cat("k", i);
    absl::StatusOr<GetResult> got = client->Get(key);
    ASSERT_TRUE(got.ok()) << key << ": " << got.status();
    EXPECT_EQ(Values(*got), std::vector<std::string>{"before"}) << key;
    absl::StatusOr<WriteResult> put = client->Put(key, "after", got->context);
    ASSERT_TRUE(put.ok()) << key << ": " << put.status();
  }
  for (int i = 0; i < kKeys; ++i) {
    absl::StatusOr<GetResult> got = client->Get(Cat("k", i));
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(Values(*got), std::vector<std::string>{"after"});
  }
  EXPECT_GT(client->stats().retries, 0u) << "no request went to the killed node";
}

INSTANTIATE_TEST_SUITE_P(Modes, ClientClusterTest,
                         ::testing::Combine(::testing::Values(Routing::kServerDriven,
                                                              Routing::kClientDriven),
                                            ::testing::Bool()),
                         ModeName);

// The paper's client-driven coordination, on 3 nodes with N = 2 (so that
// some node is not a replica of a key): each request goes straight to one of
// its key's replicas, which coordinates it (nothing is forwarded), and
// successive requests for one key take its replicas in turn (a hot key is
// not all on one coordinator). Seen from outside, in each node's counts of
// coordinated requests.
class TwoReplicaClusterTest : public ClusterTest {
 protected:
  void SetUp() override {
    LocalClusterOptions options;
    options.replicas = 2;
    absl::StatusOr<std::unique_ptr<LocalCluster>> c = LocalCluster::Start(options);
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = *std::move(c);
  }

  std::vector<double> Forwarded() { return MetricPerNode("dynamo_forwarded_total", {}); }
};

TEST_F(TwoReplicaClusterTest, ClientDrivenRequestsGoToTheKeysReplicasInTurn) {
  std::unique_ptr<Client> client = MakeClient(Routing::kClientDriven);
  ASSERT_NE(client, nullptr);
  absl::StatusOr<std::shared_ptr<const Topology>> topology = client->RefreshTopology();
  ASSERT_TRUE(topology.ok()) << topology.status();
  ASSERT_EQ((*topology)->nodes.size(), 3u);
  ASSERT_EQ((*topology)->replicas, 2u);
  auto replicas_of = [&](const std::string& key) {
    std::vector<const Topology::Node*> order = (*topology)->PreferenceOrder(key);
    return std::vector<std::string>{order[0]->address, order[1]->address};
  };

  // Many keys, one put and one get each: a node coordinates only requests
  // for keys it replicates, and all of them are coordinated somewhere.
  constexpr int kKeys = 30;
  std::map<std::string, int> replicated;  // address -> requests for keys it replicates
  const std::vector<double> forwarded_before = Forwarded();
  const std::vector<double> puts_before = RequestsOk("put");
  const std::vector<double> gets_before = RequestsOk("get");
  const ClientStats stats_before = client->stats();
  for (int i = 0; i < kKeys; ++i) {
    const std::string key = Cat("routed-", i);
    ASSERT_TRUE(client->Put(key, "v").ok()) << key;
    ASSERT_TRUE(client->Get(key).ok()) << key;
    for (const std::string& a : replicas_of(key)) replicated[a] += 2;
  }
  ASSERT_EQ(client->stats().retries, stats_before.retries)
      << "a request was retried elsewhere: the counts below would not be exact";
  const std::vector<double> puts_after = RequestsOk("put");
  const std::vector<double> gets_after = RequestsOk("get");
  double coordinated = 0;
  for (int i = 0; i < cluster_->size(); ++i) {
    const double mine = puts_after[i] - puts_before[i] + gets_after[i] - gets_before[i];
    EXPECT_LE(mine, replicated[cluster_->address(i)]) << cluster_->node_id(i);
    coordinated += mine;
  }
  EXPECT_EQ(coordinated, 2 * kKeys);
  EXPECT_EQ(Forwarded(), forwarded_before) << "a request went to a node outside its key's replicas";

  // One hot key: both its replicas coordinate its puts, the third node none.
  const std::string hot = "routed-hot";
  const std::vector<std::string> hot_replicas = replicas_of(hot);
  const std::vector<double> hot_before = RequestsOk("put");
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(client->Put(hot, Cat("v", i)).ok());
  const std::vector<double> hot_after = RequestsOk("put");
  for (int i = 0; i < cluster_->size(); ++i) {
    const double mine = hot_after[i] - hot_before[i];
    const bool replica =
        std::count(hot_replicas.begin(), hot_replicas.end(), cluster_->address(i)) > 0;
    if (replica) {
      EXPECT_GE(mine, 5) << cluster_->node_id(i) << " replicates the hot key";
    } else {
      EXPECT_EQ(mine, 0) << cluster_->node_id(i) << " does not replicate the hot key";
    }
  }
}

// A node that comes back is used again: after its failure mark expires the
// client sends it again the requests of keys it replicates, over a connection
// made at once (not after gRPC's reconnect wait).
TEST_F(ClusterTest, ClientDrivenReturnsToARestartedNode) {
  ClientOptions options;
  options.seeds = {cluster_->address(0)};
  options.routing = Routing::kClientDriven;
  options.node_down_ms = 500;
  std::unique_ptr<Client> client = *Client::Create(options);
  absl::StatusOr<std::shared_ptr<const Topology>> topology = client->RefreshTopology();
  ASSERT_TRUE(topology.ok()) << topology.status();
  std::vector<std::string> keys;  // keys whose preference list starts with n2
  for (int i = 0; keys.size() < 10; ++i) {
    const std::string key = Cat("back-", i);
    if ((*topology)->PreferenceOrder(key)[0]->id == "n2") keys.push_back(key);
  }
  cluster_->Kill(1);
  for (const std::string& key : keys) ASSERT_TRUE(client->Put(key, "while down").ok()) << key;
  ASSERT_TRUE(cluster_->Restart(1).ok());

  const int64_t deadline = ctl::MonotonicMs() + 15000;
  const double coordinated_before = RequestsOk("put")[1];
  for (size_t i = 0;; ++i) {
    ASSERT_TRUE(client->Put(keys[i % keys.size()], "after").ok());
    if (RequestsOk("put")[1] > coordinated_before) break;
    ASSERT_LT(ctl::MonotonicMs(), deadline) << "the restarted n2 never coordinated again";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// The ring a client routes by follows the cluster's: after a node leaves, a
// periodic refresh drops it, and no key is lost on the way.
TEST_F(ClusterTest, ClientDrivenRoutingFollowsRingChanges) {
  std::unique_ptr<Client> client = MakeClient(Routing::kClientDriven, 0, 300);
  ASSERT_NE(client, nullptr);
  constexpr int kKeys = 20;
  for (int i = 0; i < kKeys; ++i) ASSERT_TRUE(client->Put(Cat("k", i), Cat("v", i)).ok());
  ASSERT_NE(client->topology(), nullptr);
  const uint64_t version_before = client->topology()->ring_version;
  ASSERT_NE(client->topology()->ring.FindNode("n3"), nullptr);

  // n3 leaves (leave is re-asked until it shows: the answer may come before
  // the change is gossiped).
  const int64_t leave_deadline = ctl::MonotonicMs() + 40000;
  while (true) {
    absl::StatusOr<v1::NodeStatus> s = ctl::NodeStatus(cluster_->address(2), 2000);
    if (s.ok() && s->state() == v1::NODE_STATE_LEFT) break;
    ASSERT_LT(ctl::MonotonicMs(), leave_deadline) << "n3 did not leave";
    (void)ctl::Leave(cluster_->address(2), 2000);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }

  const int64_t refresh_deadline = ctl::MonotonicMs() + 10000;
  while (client->topology()->ring.FindNode("n3") != nullptr) {
    ASSERT_LT(ctl::MonotonicMs(), refresh_deadline) << "the client kept routing by the old ring";
    ASSERT_TRUE(client->Put("probe", "x").ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_GT(client->topology()->ring_version, version_before);
  EXPECT_EQ(client->topology()->ring.nodes().size(), 2u);
  for (int i = 0; i < kKeys; ++i) {
    absl::StatusOr<GetResult> got = client->Get(Cat("k", i));
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(Values(*got), std::vector<std::string>{Cat("v", i)});
  }
}

// One client shared by many threads (the contract the class comment makes).
TEST_F(ClusterTest, OneClientServesManyThreads) {
  std::unique_ptr<Client> client = MakeClient(Routing::kClientDriven);
  ASSERT_NE(client, nullptr);
  constexpr int kThreads = 8;
  constexpr int kOps = 25;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) {
        const std::string key = Cat("t", t, "-", i % 5);
        absl::StatusOr<WriteResult> w =
            client->Update(key, [&](const std::vector<Sibling>&) { return Cat(t, ":", i); });
        absl::StatusOr<GetResult> r = client->Get(key);
        if (!w.ok() || !r.ok() || !r->found) ++failures[t];
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
  EXPECT_GE(client->stats().calls, static_cast<uint64_t>(kThreads * kOps * 3));
}

}  // namespace
}  // namespace dynamo::client
