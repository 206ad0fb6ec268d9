// End to end: the dynamo-operator binary against the Kubernetes API double,
// whose pods are real dynamo-node processes on loopback. A 3-node cluster is
// created, scaled to 5, scaled back to 3, and its virtual nodes changed, while
// a client keeps writing; at the end every acknowledged key must be readable,
// and the status conditions, sampled throughout, must have told the truth.
//
// Skipped (with a message) when the dynamo-node binary is not built.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "double_process.h"
#include "dynamo/base/strings.h"
#include "dynamo/k8s/client.h"
#include "dynamo/k8s/resources.h"
#include "dynamo/reconciler/reconciler.h"
#include "dynamo/v1/admin.grpc.pb.h"
#include "dynamo/v1/kv.grpc.pb.h"

#ifndef DYNAMO_OPERATOR_BINARY
#error "DYNAMO_OPERATOR_BINARY must name the dynamo-operator binary"
#endif
#ifndef DYNAMO_NODE_BINARY
#define DYNAMO_NODE_BINARY ""
#endif

namespace dynamo::op {
namespace {

using json::Value;
using testing::ChildProcess;
using testing::KubeDouble;

constexpr char kNs[] = "db";
constexpr char kName[] = "e2e";
constexpr int kPhaseTimeoutMs = 150000;

std::string NodeBinary() {
  if (const char* env = std::getenv("DYNAMO_NODE_BINARY"); env && *env) return env;
  return DYNAMO_NODE_BINARY;
}

template <typename Pred>
bool WaitFor(Pred pred, int timeout_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return pred();
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// One status as the sampler saw it.
struct Sample {
  double t = 0;
  std::string phase;
  Value status;
  int64_t generation = 0;
};

class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_binary_ = NodeBinary();
    if (node_binary_.empty() || access(node_binary_.c_str(), X_OK) != 0) {
      GTEST_SKIP() << "dynamo-node is not built (looked for \"" << node_binary_
                   << "\"; set DYNAMO_NODE_BINARY or build the dynamo-node target): the "
                      "end-to-end test needs real nodes";
    }
    // Pod IPs unique to this run, so that concurrent tests cannot collide:
    // 127.A.B.10+ordinal (all of 127/8 is loopback on Linux).
    const int pid = static_cast<int>(getpid());
    testing::DoubleOptions o;
    o.node_binary = node_binary_;
    o.pod_ip_prefix = Cat("127.", 100 + pid % 100, ".", (pid / 100) % 250, ".");
    auto d = KubeDouble::Start(o);
    ASSERT_TRUE(d.ok()) << d.status();
    double_ = *std::move(d);
    client_ = double_->NewClient();
    const std::string kubeconfig = testing::WriteKubeconfig(double_->work_dir(), double_->url());
    auto op =
        ChildProcess::Start({DYNAMO_OPERATOR_BINARY, "--kubeconfig=" + kubeconfig,
                             "--node-address=pod-ip", "--requeue-busy-s=1", "--requeue-idle-s=3",
                             "--admin-deadline-ms=1500", "--metrics-addr=off"},
                            double_->work_dir() + "/operator.log");
    ASSERT_TRUE(op.ok()) << op.status();
    operator_ = *std::move(op);
  }

  void TearDown() override {
    stop_ = true;
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
    if (HasFailure() && operator_) {
      std::cerr << "--- operator log tail:\n" << operator_->LogTail(6000) << "\n";
      std::cerr << "--- work dir (pod logs, double log): " << double_->work_dir() << "\n";
      double_->KeepWorkDir();
    }
    operator_.reset();
    double_.reset();
  }

  std::optional<Value> Cluster() {
    auto c = client_->Get(k8s::DynamoClusters(), kNs, kName);
    if (!c.ok()) return std::nullopt;
    return *c;
  }

  // A 3-node cluster of 16 virtual nodes each and 64 partitions, with `spec` on top.
  bool CreateCluster(const Value& spec) {
    const Value base = Value::Obj({{"replicas", 3}, {"virtualNodes", 16}, {"partitions", 64}});
    return client_
        ->Create(k8s::DynamoClusters(), kNs,
                 Value::Obj({{"apiVersion", "dynamo.dev/v1alpha1"},
                             {"kind", "DynamoCluster"},
                             {"metadata", Value::Obj({{"name", kName}})},
                             {"spec", json::MergePatch(base, spec)}}))
        .ok();
  }

  std::vector<std::string> PodAddresses() {
    std::vector<std::string> out;
    auto pods = client_->List(k8s::Pods(), kNs);
    if (!pods.ok()) return out;
    for (const Value& p : pods->items) {
      const std::string& ip = p.At({"status", "podIP"}).AsString();
      if (!ip.empty() && p.At({"metadata", "deletionTimestamp"}).is_null()) {
        out.push_back(Cat(ip, ":7000"));
      }
    }
    return out;
  }

  // The nodes' own word, asked directly (not through the operator).
  std::map<std::string, v1::NodeStatus> NodeStatuses() {
    std::map<std::string, v1::NodeStatus> out;
    for (const std::string& addr : PodAddresses()) {
      auto stub = v1::Admin::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      v1::NodeStatus s;
      if (stub->Status(&ctx, v1::StatusRequest(), &s).ok()) out[s.node_id()] = s;
    }
    return out;
  }

  std::string Cond(const Value& status, const char* type, const char* field = "status") {
    return reconciler::FindCondition(status, type)[field].AsString();
  }

  // The cluster settled: the status says so for the current generation, and
  // the nodes themselves agree.
  bool Settled(int replicas, uint32_t vnodes) {
    auto c = Cluster();
    if (!c) return false;
    const Value& st = (*c)["status"];
    if (st["observedGeneration"].AsInt() != (*c).At({"metadata", "generation"}).AsInt())
      return false;
    if (Cond(st, "Available") != "True" || Cond(st, "Progressing") != "False") return false;
    if (st["members"].size() != static_cast<size_t>(replicas)) return false;
    const auto nodes = NodeStatuses();
    if (nodes.size() != static_cast<size_t>(replicas)) return false;
    for (const auto& [id, s] : nodes) {
      if (s.state() != v1::NODE_STATE_NORMAL || !s.ready() || s.vnodes() != vnodes) return false;
    }
    return true;
  }

  void StartSampler() {
    threads_.emplace_back([this] {
      auto client = double_->NewClient();
      while (!stop_) {
        auto c = client->Get(k8s::DynamoClusters(), kNs, kName);
        if (c.ok() && !(*c)["status"].is_null()) {
          std::lock_guard<std::mutex> lock(mu_);
          samples_.push_back(
              {Now(), phase_, (*c)["status"], (*c).At({"metadata", "generation"}).AsInt()});
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
      }
    });
  }

  // Writes unique keys, one at a time, to any node that takes them; records
  // each acknowledged one.
  void StartWriter() {
    threads_.emplace_back([this] {
      std::mt19937 rng(1234);
      std::map<std::string, std::unique_ptr<v1::KV::Stub>> stubs;
      int n = 0;
      std::vector<std::string> addrs;
      double addrs_at = 0;
      while (!stop_) {
        if (Now() - addrs_at > 1.0) {
          addrs = PodAddresses();
          addrs_at = Now();
        }
        if (addrs.empty()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          continue;
        }
        const std::string& addr = addrs[rng() % addrs.size()];
        auto& stub = stubs[addr];
        if (!stub)
          stub = v1::KV::NewStub(grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()));
        const std::string key = Cat("key-", n);
        v1::PutRequest req;
        req.set_key(key);
        req.set_value(Cat("value-", n));
        v1::PutResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
        const grpc::Status s = stub->Put(&ctx, req, &resp);
        std::lock_guard<std::mutex> lock(mu_);
        if (s.ok()) {
          acked_.push_back(n);
          ++n;
        } else {
          ++write_errors_;
          last_write_error_ = Cat(addr, ": ", s.error_message());
        }
        // About 40 writes a second: enough data to hand off, not a load test.
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
      }
    });
  }

  void Phase(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    phase_ = name;
    phase_start_[name] = Now();
    std::cerr << "e2e: phase " << name << "\n";
  }

  std::string node_binary_;
  std::unique_ptr<KubeDouble> double_;
  std::unique_ptr<k8s::Client> client_;
  std::unique_ptr<ChildProcess> operator_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::string phase_;                          // guarded by mu_
  std::map<std::string, double> phase_start_;  // guarded by mu_
  std::vector<Sample> samples_;                // guarded by mu_
  std::vector<int> acked_;                     // guarded by mu_
  int write_errors_ = 0;                       // guarded by mu_
  std::string last_write_error_;               // guarded by mu_
};

TEST_F(E2eTest, ScaleUpDownAndVirtualNodesWhileWriting) {
  StartSampler();
  Phase("create");
  ASSERT_TRUE(CreateCluster(Value::Obj(
      {{"replication",
        Value::Obj({{"factor", 3}, {"readQuorum", 2}, {"writeQuorum", 2}})}})));
  ASSERT_TRUE(WaitFor([&] { return Settled(3, 16); }, kPhaseTimeoutMs))
      << "3 nodes did not settle: " << Cluster().value_or(Value()).Pretty();
  StartWriter();
  std::this_thread::sleep_for(std::chrono::seconds(3));

  Phase("scale-to-5");
  ASSERT_TRUE(client_
                  ->MergePatch(k8s::DynamoClusters(), kNs, kName,
                               Value::Obj({{"spec", Value::Obj({{"replicas", 5}})}}))
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return Settled(5, 16); }, kPhaseTimeoutMs))
      << "5 nodes did not settle: " << Cluster().value_or(Value()).Pretty();
  std::this_thread::sleep_for(std::chrono::seconds(3));

  Phase("scale-to-3");
  ASSERT_TRUE(client_
                  ->MergePatch(k8s::DynamoClusters(), kNs, kName,
                               Value::Obj({{"spec", Value::Obj({{"replicas", 3}})}}))
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return Settled(3, 16); }, 2 * kPhaseTimeoutMs))
      << "3 nodes did not settle after the scale-down: " << Cluster().value_or(Value()).Pretty();
  EXPECT_TRUE(WaitFor(
      [&] { return client_->List(k8s::PersistentVolumeClaims(), kNs)->items.size() == 3; }, 20000))
      << "the left nodes' claims were not deleted";

  Phase("vnodes-32");
  ASSERT_TRUE(client_
                  ->MergePatch(k8s::DynamoClusters(), kNs, kName,
                               Value::Obj({{"spec", Value::Obj({{"virtualNodes", 32}})}}))
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return Settled(3, 32); }, kPhaseTimeoutMs))
      << "virtual nodes did not settle: " << Cluster().value_or(Value()).Pretty();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  Phase("verify");
  stop_ = true;
  for (std::thread& t : threads_) t.join();
  threads_.clear();

  // Every acknowledged write is readable.
  std::vector<int> acked;
  {
    std::lock_guard<std::mutex> lock(mu_);
    acked = acked_;
    std::cerr << "e2e: " << acked.size() << " writes acknowledged, " << write_errors_
              << " refused (last: " << last_write_error_ << ")\n";
  }
  ASSERT_GT(acked.size(), 100u);
  const std::vector<std::string> addrs = PodAddresses();
  ASSERT_EQ(addrs.size(), 3u);
  std::vector<std::unique_ptr<v1::KV::Stub>> stubs;
  for (const std::string& a : addrs) {
    stubs.push_back(v1::KV::NewStub(grpc::CreateChannel(a, grpc::InsecureChannelCredentials())));
  }
  int missing = 0;
  std::string first_missing;
  for (size_t i = 0; i < acked.size(); ++i) {
    const int n = acked[i];
    bool found = false;
    for (int attempt = 0; attempt < 3 && !found; ++attempt) {
      v1::GetRequest req;
      req.set_key(Cat("key-", n));
      v1::GetResponse resp;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
      if (!stubs[(i + attempt) % stubs.size()]->Get(&ctx, req, &resp).ok()) continue;
      for (const v1::Sibling& s : resp.siblings()) found |= s.value() == Cat("value-", n);
    }
    if (!found) {
      if (missing == 0) first_missing = Cat("key-", n);
      ++missing;
    }
  }
  EXPECT_EQ(missing, 0) << missing << " acknowledged keys unreadable, first " << first_missing;

  // The conditions told the truth throughout.
  std::lock_guard<std::mutex> lock(mu_);
  ASSERT_GT(samples_.size(), 20u);
  std::map<std::string, std::set<std::string>> progressing_reasons;  // by phase
  std::map<std::string, std::string> last_state;                     // member -> state
  bool saw_handoff = false;
  for (const Sample& s : samples_) {
    const Value& st = s.status;
    const std::string at =
        Cat(" at t=", s.t - phase_start_["create"], "s in phase ", s.phase, ":\n", st.Pretty());
    // Available: every ring member answers NORMAL (or LEAVING) and ready. A
    // member in state unknown (or none: no pod yet) did not answer: it must
    // not have been in the ring.
    if (Cond(st, "Available") == "True") {
      int serving = 0;
      for (const Value& m : st["members"].AsArray()) {
        const std::string& name = m["name"].AsString();
        const std::string& state = m["state"].AsString();
        if (state == "normal" || state == "leaving") {
          EXPECT_TRUE(m["ready"].AsBool()) << "Available while " << name << " is not ready" << at;
          ++serving;
        }
        if (state.empty() || state == "unknown") {
          EXPECT_NE(last_state[name], "normal")
              << "Available while ring member " << name << " does not answer" << at;
        }
      }
      EXPECT_GE(serving, 3) << at;
    }
    for (const Value& m : st["members"].AsArray()) {
      last_state[m["name"].AsString()] = m["state"].AsString();
    }
    // Nothing failed in this run: never Degraded.
    EXPECT_EQ(Cond(st, "Degraded"), "False") << at;
    // Progressing is False only when nothing is moving.
    if (Cond(st, "Progressing") == "False") {
      for (const Value& m : st["members"].AsArray()) {
        EXPECT_EQ(m["state"].AsString(), "normal")
            << "Progressing=False while a member is " << m["state"].AsString() << at;
      }
      EXPECT_EQ(st["handoffs"].size(), 0u) << "Progressing=False during a handoff" << at;
    } else {
      progressing_reasons[s.phase].insert(Cond(st, "Progressing", "reason"));
    }
    if (st["handoffs"].size() > 0) saw_handoff = true;
    // At most one node leaves at a time.
    int leaving = 0;
    for (const Value& m : st["members"].AsArray()) leaving += m["state"].AsString() == "leaving";
    EXPECT_LE(leaving, 1) << at;
  }
  // Each change was reported as progress while it happened.
  EXPECT_FALSE(progressing_reasons["scale-to-5"].empty());
  EXPECT_FALSE(progressing_reasons["scale-to-3"].empty());
  EXPECT_TRUE(progressing_reasons["scale-to-3"].count("ScalingDown"))
      << "the scale-down never said ScalingDown";
  EXPECT_TRUE(saw_handoff) << "no handoff progress was ever reported";
  for (const auto& [phase, reasons] : progressing_reasons) {
    std::string all;
    for (const std::string& r : reasons) all += r + " ";
    std::cerr << "e2e: Progressing reasons in " << phase << ": " << all << "\n";
  }
  std::cerr << "e2e: " << samples_.size() << " status samples checked\n";
}

// Zone-aware placement in Kubernetes: each storage node is given the zone
// label of the Kubernetes node its pod runs on. A pod on a node without the
// label stays out of the ring (and the cluster says why) until it is labelled.
TEST_F(E2eTest, ZoneAwareNodesAreGivenTheirMachinesZones) {
  // The double's scheduler puts pod i on the i-th Node by name.
  const std::map<std::string, std::string> zones = {{"k0", "zone-a"}, {"k1", "zone-b"}};
  for (const char* machine : {"k0", "k1", "k2"}) {
    Value labels = Value::Obj({{"kubernetes.io/hostname", machine}});
    if (zones.count(machine)) labels["topology.kubernetes.io/zone"] = zones.at(machine);
    ASSERT_TRUE(client_
                    ->Create(k8s::Nodes(), "",
                             Value::Obj({{"apiVersion", "v1"},
                                         {"kind", "Node"},
                                         {"metadata", Value::Obj({{"name", machine},
                                                                  {"labels", labels}})}}))
                    .ok());
  }
  StartSampler();
  Phase("create");
  ASSERT_TRUE(CreateCluster(Value::Obj({{"zones", Value::Obj({{"zoneAware", true}})}})));
  // e2e-2 runs on k2, which has no zone: it must not join, and the cluster
  // must say so.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto c = Cluster();
        if (!c) return false;
        const Value& st = (*c)["status"];
        const auto nodes = NodeStatuses();
        return Cond(st, "Degraded", "reason") == "ZoneUnknown" &&
               Cond(st, "Degraded", "message").find("e2e-2 runs on Kubernetes node k2") !=
                   std::string::npos &&
               nodes.count("e2e-0") && nodes.at("e2e-0").state() == v1::NODE_STATE_NORMAL &&
               nodes.count("e2e-1") && nodes.at("e2e-1").state() == v1::NODE_STATE_NORMAL;
      },
      kPhaseTimeoutMs))
      << "the unlabelled node was not reported: " << Cluster().value_or(Value()).Pretty();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  auto nodes = NodeStatuses();
  ASSERT_EQ(nodes.count("e2e-2"), 1u);
  EXPECT_EQ(nodes.at("e2e-2").state(), v1::NODE_STATE_STANDBY) << "joined without a zone";

  Phase("label");
  ASSERT_TRUE(client_
                  ->MergePatch(k8s::Nodes(), "", "k2",
                               *json::Parse(R"({"metadata":{"labels":{
                                   "topology.kubernetes.io/zone":"zone-c"}}})"))
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return Settled(3, 16); }, kPhaseTimeoutMs))
      << "3 nodes did not settle: " << Cluster().value_or(Value()).Pretty();
  EXPECT_EQ(Cond((*Cluster())["status"], "Degraded"), "False");

  // Each node's own word, and the ring as one node gossips it.
  const std::map<std::string, std::string> want = {
      {"e2e-0", "zone-a"}, {"e2e-1", "zone-b"}, {"e2e-2", "zone-c"}};
  nodes = NodeStatuses();
  for (const auto& [id, zone] : want) {
    ASSERT_EQ(nodes.count(id), 1u) << id;
    EXPECT_EQ(nodes.at(id).zone(), zone) << id;
  }
  auto stub = v1::Admin::NewStub(
      grpc::CreateChannel(nodes.at("e2e-0").address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  v1::MembersResponse members;
  ASSERT_TRUE(stub->Members(&ctx, v1::MembersRequest(), &members).ok());
  std::map<std::string, std::string> seen;
  for (const v1::Member& m : members.members()) seen[m.node_id()] = m.zone();
  EXPECT_EQ(seen, want);
  std::map<std::string, std::string> reported;
  const Value cluster = Cluster().value_or(Value());
  for (const Value& m : cluster.At({"status", "members"}).AsArray()) {
    reported[m["name"].AsString()] = m["zone"].AsString();
  }
  EXPECT_EQ(reported, want);
}

}  // namespace
}  // namespace dynamo::op
