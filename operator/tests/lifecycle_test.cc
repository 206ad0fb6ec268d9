// The dynamo-operator binary against the Kubernetes API double with fake
// pods (no nodes run): the objects' lifecycle, finalizer and deletePolicy,
// spec changes, refusal to remove pods whose data was not handed off, watch
// expiry, status conflicts, leader election between two replicas, graceful
// shutdown.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "double_process.h"
#include "dynamo/base/strings.h"
#include "dynamo/k8s/client.h"
#include "dynamo/k8s/cpprest_http_client.h"
#include "dynamo/k8s/resources.h"
#include "dynamo/reconciler/reconciler.h"

#ifndef DYNAMO_OPERATOR_BINARY
#error "DYNAMO_OPERATOR_BINARY must name the dynamo-operator binary"
#endif

namespace dynamo::op {
namespace {

using json::Value;
using testing::ChildProcess;
using testing::KubeDouble;

constexpr char kNs[] = "db";

template <typename Pred>
bool WaitFor(Pred pred, int timeout_ms = 20000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

Value ClusterObject(const std::string& name, Value spec) {
  return Value::Obj({{"apiVersion", "dynamo.dev/v1alpha1"},
                     {"kind", "DynamoCluster"},
                     {"metadata", Value::Obj({{"name", name}})},
                     {"spec", std::move(spec)}});
}

class OperatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = KubeDouble::Start();
    ASSERT_TRUE(d.ok()) << d.status();
    double_ = *std::move(d);
    client_ = double_->NewClient();
    kubeconfig_ = testing::WriteKubeconfig(double_->work_dir(), double_->url());
  }
  void TearDown() override {
    if (HasFailure()) {
      double_->KeepWorkDir();
      for (auto& op : operators_) {
        std::cerr << "--- operator log tail (" << op->log_path() << "):\n" << op->LogTail() << "\n";
      }
    }
    operators_.clear();
    double_.reset();
  }

  ChildProcess* StartOperator(std::vector<std::string> extra = {}) {
    const int n = static_cast<int>(operators_.size());
    std::vector<std::string> argv = {DYNAMO_OPERATOR_BINARY,
                                     "--kubeconfig=" + kubeconfig_,
                                     "--node-address=pod-ip",
                                     "--requeue-busy-s=1",
                                     "--requeue-idle-s=2",
                                     "--admin-deadline-ms=300",
                                     "--identity=op-" + std::to_string(n)};
    for (std::string& e : extra) argv.push_back(std::move(e));
    if (std::none_of(argv.begin(), argv.end(),
                     [](const std::string& a) { return a.rfind("--metrics-addr", 0) == 0; })) {
      argv.push_back("--metrics-addr=off");
    }
    auto p = ChildProcess::Start(argv, Cat(double_->work_dir(), "/operator-", n, ".log"));
    EXPECT_TRUE(p.ok()) << p.status();
    operators_.push_back(*std::move(p));
    return operators_.back().get();
  }

  std::optional<Value> Get(const k8s::ResourceType& type, const std::string& name) {
    auto v = client_->Get(type, kNs, name);
    if (!v.ok()) return std::nullopt;
    return *v;
  }
  std::vector<Value> List(const k8s::ResourceType& type) {
    auto l = client_->List(type, kNs);
    return l.ok() ? l->items : std::vector<Value>{};
  }
  // The node container's args of a StatefulSet; empty while it does not exist.
  std::vector<std::string> NodeArgs(const std::string& stateful_set) {
    std::vector<std::string> out;
    auto sts = Get(k8s::StatefulSets(), stateful_set);
    if (!sts) return out;
    for (const Value& a :
         (*sts).At({"spec", "template", "spec", "containers"}).AsArray()[0]["args"].AsArray()) {
      out.push_back(a.AsString());
    }
    return out;
  }
  std::string Condition(const std::string& cluster, const std::string& type,
                        const std::string& field = "status") {
    auto c = Get(k8s::DynamoClusters(), cluster);
    if (!c) return "";
    return reconciler::FindCondition((*c)["status"], type)[field].AsString();
  }
  std::set<std::string> EventReasons() {
    std::set<std::string> out;
    for (const Value& e : List(k8s::Events())) out.insert(e["reason"].AsString());
    return out;
  }
  // How many times an event was recorded (repeats are counted on one Event).
  int64_t EventCount(const std::string& reason) {
    int64_t n = 0;
    for (const Value& e : List(k8s::Events())) {
      if (e["reason"].AsString() == reason) n += e["count"].AsInt(1);
    }
    return n;
  }
  int RequestsTo(const std::string& path_part) {
    auto requests = double_->Requests();
    int n = 0;
    if (!requests.ok()) return -1;
    for (const Value& r : *requests) n += r["path"].AsString().find(path_part) != std::string::npos;
    return n;
  }
  void RestartDouble(bool validate_crd) {
    testing::DoubleOptions options;
    options.validate_crd = validate_crd;
    double_.reset();
    auto d = KubeDouble::Start(options);
    ASSERT_TRUE(d.ok()) << d.status();
    double_ = *std::move(d);
    client_ = double_->NewClient();
    kubeconfig_ = testing::WriteKubeconfig(double_->work_dir(), double_->url());
  }

  std::unique_ptr<KubeDouble> double_;
  std::unique_ptr<k8s::Client> client_;
  std::string kubeconfig_;
  std::vector<std::unique_ptr<ChildProcess>> operators_;
};

bool OwnedBy(const Value& obj, const std::string& uid) {
  for (const Value& r : obj.At({"metadata", "ownerReferences"}).AsArray()) {
    if (r["uid"].AsString() == uid && r["kind"].AsString() == "DynamoCluster" &&
        r["controller"].AsBool()) {
      return true;
    }
  }
  return false;
}

void CheckCreatedAndDeleted(OperatorTest* t, KubeDouble* d, k8s::Client* client,
                            const std::string& policy) {
  ASSERT_TRUE(
      client
          ->Create(k8s::DynamoClusters(), kNs,
                   ClusterObject("dyn",
                                 Value::Obj({{"replicas", 3},
                                             {"storage", Value::Obj({{"deletePolicy", policy}})}})))
          .ok());
  std::string uid;
  ASSERT_TRUE(WaitFor([&] {
    auto c = client->Get(k8s::DynamoClusters(), kNs, "dyn");
    if (!c.ok()) return false;
    uid = (*c).At({"metadata", "uid"}).AsString();
    const Value& fins = (*c).At({"metadata", "finalizers"});
    return fins.size() == 1 && fins.AsArray()[0].AsString() == reconciler::kFinalizer;
  }));
  const struct {
    const k8s::ResourceType* type;
    const char* name;
  } owned[] = {{&k8s::StatefulSets(), "dyn"},
               {&k8s::Services(), "dyn"},
               {&k8s::Services(), "dyn-headless"},
               {&k8s::ConfigMaps(), "dyn-config"},
               {&k8s::PodDisruptionBudgets(), "dyn"}};
  for (const auto& o : owned) {
    ASSERT_TRUE(WaitFor([&] {
      auto v = client->Get(*o.type, kNs, o.name);
      return v.ok() && OwnedBy(*v, uid);
    })) << o.type->kind
        << " " << o.name;
  }
  // The double's StatefulSet controller makes 3 pods and claims.
  ASSERT_TRUE(WaitFor([&] { return client->List(k8s::Pods(), kNs)->items.size() == 3; }));
  ASSERT_TRUE(
      WaitFor([&] { return client->List(k8s::PersistentVolumeClaims(), kNs)->items.size() == 3; }));
  // Status: conditions with the generation; no node answers, so progress.
  ASSERT_TRUE(WaitFor([&] {
    auto c = client->Get(k8s::DynamoClusters(), kNs, "dyn");
    return c.ok() && (*c).At({"status", "observedGeneration"}).AsInt() == 1 &&
           reconciler::FindCondition((*c)["status"], "Progressing")["reason"].AsString() ==
               "WaitingForNodes";
  }));
  auto cluster = client->Get(k8s::DynamoClusters(), kNs, "dyn");
  for (const char* type : {"Available", "Progressing", "Degraded"}) {
    const Value& cond = reconciler::FindCondition((*cluster)["status"], type);
    EXPECT_FALSE(cond["lastTransitionTime"].AsString().empty()) << type;
    EXPECT_EQ(cond["observedGeneration"].AsInt(), 1) << type;
  }
  EXPECT_EQ(reconciler::FindCondition((*cluster)["status"], "Available")["status"].AsString(),
            "False");
  EXPECT_EQ((*cluster).At({"status", "members"}).size(), 3u);

  ASSERT_TRUE(client->Delete(k8s::DynamoClusters(), kNs, "dyn").ok());
  ASSERT_TRUE(WaitFor(
      [&] { return k8s::IsNotFound(client->Get(k8s::DynamoClusters(), kNs, "dyn").status()); }));
  for (const auto& o : owned) {
    EXPECT_TRUE(WaitFor([&] {
      return k8s::IsNotFound(client->Get(*o.type, kNs, o.name).status());
    })) << o.type->kind
        << " " << o.name << " survived its cluster";
  }
  EXPECT_TRUE(WaitFor([&] { return client->List(k8s::Pods(), kNs)->items.empty(); }));
  const size_t claims = policy == "Delete" ? 0 : 3;
  EXPECT_TRUE(WaitFor(
      [&] { return client->List(k8s::PersistentVolumeClaims(), kNs)->items.size() == claims; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(client->List(k8s::PersistentVolumeClaims(), kNs)->items.size(), claims);
  (void)t;
  (void)d;
}

TEST_F(OperatorTest, CreateThenDeleteKeepsClaimsByDefault) {
  StartOperator();
  CheckCreatedAndDeleted(this, double_.get(), client_.get(), "Retain");
  EXPECT_TRUE(EventReasons().count("VolumesRetained"));
  EXPECT_TRUE(EventReasons().count("Created"));
}

TEST_F(OperatorTest, CreateThenDeleteRemovesClaimsWithDeletePolicy) {
  StartOperator();
  CheckCreatedAndDeleted(this, double_.get(), client_.get(), "Delete");
  EXPECT_TRUE(EventReasons().count("VolumesDeleted"));
}

TEST_F(OperatorTest, SpecChangesReachTheStatefulSet) {
  StartOperator();
  ASSERT_TRUE(
      client_
          ->Create(k8s::DynamoClusters(), kNs, ClusterObject("dyn", Value::Obj({{"replicas", 3}})))
          .ok());
  ASSERT_TRUE(WaitFor([&] { return Get(k8s::StatefulSets(), "dyn").has_value(); }));
  ASSERT_TRUE(
      client_
          ->MergePatch(
              k8s::DynamoClusters(), kNs, "dyn",
              Value::Obj({{"spec", Value::Obj({{"image", "dynamo:0.2.0"}, {"virtualNodes", 32}})}}))
          .ok());
  EXPECT_TRUE(WaitFor([&] {
    auto sts = Get(k8s::StatefulSets(), "dyn");
    return sts &&
           (*sts).At({"spec", "template", "spec", "containers"}).AsArray()[0]["image"].AsString() ==
               "dynamo:0.2.0";
  }));
  EXPECT_TRUE(WaitFor([&] {
    auto cm = Get(k8s::ConfigMaps(), "dyn-config");
    return cm && (*cm).At({"data", "vnodes"}).AsString() == "32";
  }));
  EXPECT_TRUE(WaitFor([&] {
    auto c = Get(k8s::DynamoClusters(), "dyn");
    return c && (*c).At({"status", "observedGeneration"}).AsInt() == 2;
  }));
  // A storage setting that becomes a node flag.
  ASSERT_TRUE(
      client_
          ->MergePatch(k8s::DynamoClusters(), kNs, "dyn",
                       *json::Parse(R"({"spec":{"storage":{"syncDelayMicroseconds":2000}}})"))
          .ok());
  EXPECT_TRUE(WaitFor([&] {
    const std::vector<std::string> args = NodeArgs("dyn");
    return std::find(args.begin(), args.end(), "--sync-delay-us=2000") != args.end();
  }));
  // Scale up grows the StatefulSet at once (fake pods: nothing to join).
  ASSERT_TRUE(client_
                  ->MergePatch(k8s::DynamoClusters(), kNs, "dyn",
                               Value::Obj({{"spec", Value::Obj({{"replicas", 5}})}}))
                  .ok());
  EXPECT_TRUE(WaitFor([&] {
    auto sts = Get(k8s::StatefulSets(), "dyn");
    return sts && (*sts).At({"spec", "replicas"}).AsInt() == 5;
  }));
  EXPECT_TRUE(WaitFor([&] { return List(k8s::Pods()).size() == 5; }));
}

TEST_F(OperatorTest, NeverRemovesAPodWhoseNodeDidNotConfirmItsHandoff) {
  StartOperator();
  ASSERT_TRUE(
      client_
          ->Create(k8s::DynamoClusters(), kNs, ClusterObject("dyn", Value::Obj({{"replicas", 5}})))
          .ok());
  ASSERT_TRUE(WaitFor([&] { return List(k8s::Pods()).size() == 5; }));
  ASSERT_TRUE(client_
                  ->MergePatch(k8s::DynamoClusters(), kNs, "dyn",
                               Value::Obj({{"spec", Value::Obj({{"replicas", 3}})}}))
                  .ok());
  // The nodes do not answer (fake pods): nothing can be confirmed, nothing goes.
  ASSERT_TRUE(WaitFor([&] {
    return Condition("dyn", "Progressing", "message").find("waiting to reach dyn-4") !=
           std::string::npos;
  })) << Condition("dyn", "Progressing", "message");
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(Get(k8s::StatefulSets(), "dyn")->At({"spec", "replicas"}).AsInt(), 5);
  EXPECT_EQ(List(k8s::Pods()).size(), 5u);
  EXPECT_EQ(List(k8s::PersistentVolumeClaims()).size(), 5u);
}

TEST_F(OperatorTest, InvalidSpecIsReportedAndNothingIsCreated) {
  // The CRD refuses this spec; an operator must not rely on the installed
  // CRD being the current one, so the double runs without it here.
  RestartDouble(/*validate_crd=*/false);
  StartOperator();
  ASSERT_TRUE(client_
                  ->Create(k8s::DynamoClusters(), kNs,
                           ClusterObject("bad", Value::Obj({{"replicas", 3}, {"partitions", 100}})))
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return Condition("bad", "Degraded", "reason") == "InvalidSpec"; }));
  EXPECT_NE(Condition("bad", "Degraded", "message").find("power of two"), std::string::npos);
  EXPECT_FALSE(Get(k8s::StatefulSets(), "bad").has_value());
}

TEST_F(OperatorTest, TheCrdRefusesBadReplicationAndAFactorChange) {
  // The double validates DynamoClusters against charts/dynamo/crds (schema,
  // defaults, CEL rules) with PyYAML and python3-jsonschema, which
  // scripts/install-deps.sh installs.
  const auto create = [&](const std::string& name, Value spec) {
    return client_->Create(k8s::DynamoClusters(), kNs, ClusterObject(name, std::move(spec)))
        .status();
  };
  absl::Status s = create("toobig", *json::Parse(R"({"replicas":3,"replication":{"factor":4}})"));
  ASSERT_FALSE(s.ok()) << "the API double did not validate against the CRD: are python3-yaml and "
                          "python3-jsonschema installed (scripts/install-deps.sh)?";
  EXPECT_NE(s.message().find("spec.replication.factor must not exceed spec.replicas"),
            std::string::npos)
      << s;
  s = create("old", *json::Parse(R"({"replication":{"n":3,"r":2,"w":2}})"));
  EXPECT_FALSE(s.ok());
  s = create("quorum", *json::Parse(R"({"replication":{"factor":3,"writeQuorum":4}})"));
  EXPECT_NE(s.message().find("writeQuorum"), std::string::npos) << s;
  s = create("delay",
             *json::Parse(R"({"storage":{"durability":"buffered","syncDelayMicroseconds":2000}})"));
  EXPECT_NE(s.message().find("syncDelayMicroseconds applies to durable storage only"),
            std::string::npos)
      << s;

  ASSERT_TRUE(create("dyn", *json::Parse(R"({"replicas":5})")).ok());
  auto cluster = Get(k8s::DynamoClusters(), "dyn");
  ASSERT_TRUE(cluster.has_value());
  EXPECT_EQ(cluster->At({"spec", "replication", "factor"}).AsInt(), 3);  // defaulted
  EXPECT_EQ(cluster->At({"spec", "replication", "readQuorum"}).AsInt(), 2);
  auto patched = client_->MergePatch(
      k8s::DynamoClusters(), kNs, "dyn",
      *json::Parse(R"({"spec":{"replication":{"factor":5,"readQuorum":3,"writeQuorum":3}}})"));
  ASSERT_FALSE(patched.ok());
  EXPECT_NE(patched.status().message().find("spec.replication.factor is immutable"),
            std::string::npos)
      << patched.status();
  EXPECT_TRUE(client_
                  ->MergePatch(k8s::DynamoClusters(), kNs, "dyn",
                               *json::Parse(R"({"spec":{"replication":{"readQuorum":1}}})"))
                  .ok());
}

TEST_F(OperatorTest, AReplicationFactorChangeIsRefusedWithoutRollingPods) {
  // An API server with an older CRD lets the change through: the operator
  // keeps the ring's factor and says why.
  RestartDouble(/*validate_crd=*/false);
  StartOperator();
  ASSERT_TRUE(
      client_
          ->Create(k8s::DynamoClusters(), kNs, ClusterObject("dyn", Value::Obj({{"replicas", 3}})))
          .ok());
  ASSERT_TRUE(WaitFor([&] { return List(k8s::Pods()).size() == 3; }));
  const std::vector<std::string> before = NodeArgs("dyn");
  EXPECT_NE(std::find(before.begin(), before.end(), "--replicas=3"), before.end());
  const int64_t generation =
      Get(k8s::StatefulSets(), "dyn")->At({"metadata", "generation"}).AsInt();
  ASSERT_TRUE(
      client_
          ->MergePatch(k8s::DynamoClusters(), kNs, "dyn", *json::Parse(R"({"spec":{"replication":{
                                   "factor":2,"readQuorum":1,"writeQuorum":1}}})"))
          .ok());
  ASSERT_TRUE(WaitFor([&] {
    return Condition("dyn", "Degraded", "reason") == "ReplicationFactorImmutable";
  })) << Condition("dyn", "Degraded", "message");
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(NodeArgs("dyn"), before);
  EXPECT_EQ(Get(k8s::StatefulSets(), "dyn")->At({"metadata", "generation"}).AsInt(), generation);
  EXPECT_EQ(EventCount("ReplicationFactorImmutable"), 1);
}

TEST_F(OperatorTest, ServiceMonitorsItMayNotManageAreReportedOnceWithoutRetryStorm) {
  for (const bool forbidden : {false, true}) {
    SCOPED_TRACE(forbidden ? "403 Forbidden" : "404: no ServiceMonitor CRD");
    if (forbidden) {
      // The double serves no ServiceMonitors (404, as without the CRD); RBAC
      // without rbac.manageServiceMonitors answers 403 to every method.
      RestartDouble(/*validate_crd=*/true);
      ASSERT_TRUE(double_
                      ->InjectFault(Value::Obj({{"path_contains", "/servicemonitors"},
                                                {"status", 403},
                                                {"reason", "Forbidden"},
                                                {"count", 100000}}))
                      .ok());
    }
    ChildProcess* op = StartOperator();
    ASSERT_TRUE(
        client_
            ->Create(k8s::DynamoClusters(), kNs, ClusterObject("dyn", *json::Parse(R"({"replicas":3,
                                 "metrics":{"serviceMonitor":true}})")))
            .ok());
    ASSERT_TRUE(WaitFor([&] {
      return Condition("dyn", "Degraded", "reason") == "ServiceMonitorUnavailable";
    })) << Condition("dyn", "Degraded", "message");
    EXPECT_NE(Condition("dyn", "Degraded", "message")
                  .find(forbidden ? "rbac.manageServiceMonitors" : "not installed"),
              std::string::npos);
    // The cluster's other objects are there all the same.
    EXPECT_TRUE(WaitFor([&] { return Get(k8s::StatefulSets(), "dyn").has_value(); }));
    // Several reconciles later (fake pods: the busy pace of 1 s): asked
    // once, reported once, still running.
    std::this_thread::sleep_for(std::chrono::seconds(5));
    EXPECT_EQ(RequestsTo("/servicemonitors"), 1);
    EXPECT_EQ(EventCount("ServiceMonitorUnavailable"), 1);
    EXPECT_TRUE(op->Running());
    EXPECT_EQ(op->Terminate(10000), 0);
    operators_.clear();
  }
}

TEST_F(OperatorTest, NodeObjectsAreLabelledAndTheOperatorsOwnPodsAreNotWatched) {
  StartOperator();
  // A pod labelled as the chart labels the operator's pods, with a name the
  // cluster's ordinals would claim: the operator must not take it for a node.
  ASSERT_TRUE(
      client_
          ->Create(k8s::Pods(), kNs, *json::Parse(R"({"apiVersion":"v1","kind":"Pod","metadata":{
                               "name":"dyn-7","labels":{
                               "app.kubernetes.io/name":"dynamo-operator",
                               "app.kubernetes.io/instance":"dyn",
                               "app.kubernetes.io/component":"operator",
                               "app.kubernetes.io/managed-by":"dynamo-operator"}},
                               "spec":{"containers":[{"name":"operator","image":"x:1"}]}})"))
          .ok());
  ASSERT_TRUE(
      client_
          ->Create(k8s::DynamoClusters(), kNs, ClusterObject("dyn", Value::Obj({{"replicas", 3}})))
          .ok());
  ASSERT_TRUE(WaitFor([&] {
    auto c = Get(k8s::DynamoClusters(), "dyn");
    return c && (*c).At({"status", "members"}).size() == 3;
  }));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(Get(k8s::DynamoClusters(), "dyn")->At({"status", "members"}).size(), 3u);
  EXPECT_EQ(Get(k8s::DynamoClusters(), "dyn")->At({"status", "replicas"}).AsInt(), 3);
  const std::vector<std::pair<const k8s::ResourceType*, std::string>> objects = {
      {&k8s::StatefulSets(), "dyn"},         {&k8s::Services(), "dyn"},
      {&k8s::Services(), "dyn-headless"},    {&k8s::ConfigMaps(), "dyn-config"},
      {&k8s::PodDisruptionBudgets(), "dyn"}, {&k8s::Pods(), "dyn-0"}};
  for (const auto& [type, name] : objects) {
    auto o = Get(*type, name);
    ASSERT_TRUE(o.has_value()) << type->kind << " " << name;
    const Value& labels = (*o).At({"metadata", "labels"});
    EXPECT_EQ(labels["app.kubernetes.io/name"].AsString(), "dynamo") << type->kind;
    EXPECT_EQ(labels["app.kubernetes.io/instance"].AsString(), "dyn") << type->kind;
    EXPECT_EQ(labels["app.kubernetes.io/component"].AsString(), "node") << type->kind;
  }
  auto pod = Get(k8s::Pods(), "dyn-0");
  EXPECT_EQ((*pod).At({"spec", "securityContext", "runAsUser"}).AsInt(), 10001);
  EXPECT_EQ((*pod).At({"spec", "securityContext", "fsGroup"}).AsInt(), 10001);
}

TEST_F(OperatorTest, SurvivesWatchExpiryAndStatusConflicts) {
  ASSERT_TRUE(double_->Configure(Value::Obj({{"split_max", 7}, {"gone_form", "http"}})).ok());
  StartOperator();
  ASSERT_TRUE(
      client_
          ->Create(k8s::DynamoClusters(), kNs, ClusterObject("one", Value::Obj({{"replicas", 3}})))
          .ok());
  ASSERT_TRUE(WaitFor([&] { return Get(k8s::StatefulSets(), "one").has_value(); }));
  // Expire every watch both ways, compact history, and make the next status
  // writes conflict.
  ASSERT_TRUE(double_->ExpireWatches("stream").ok());
  ASSERT_TRUE(double_->Compact().ok());
  ASSERT_TRUE(double_->ExpireWatches("close").ok());
  ASSERT_TRUE(double_
                  ->InjectFault(Value::Obj({{"method", "PUT"},
                                            {"path_contains", "/status"},
                                            {"status", 409},
                                            {"reason", "Conflict"},
                                            {"count", 3}}))
                  .ok());
  ASSERT_TRUE(
      client_
          ->Create(k8s::DynamoClusters(), kNs, ClusterObject("two", Value::Obj({{"replicas", 3}})))
          .ok());
  EXPECT_TRUE(WaitFor([&] { return Get(k8s::StatefulSets(), "two").has_value(); }));
  EXPECT_TRUE(WaitFor([&] { return !Condition("two", "Progressing").empty(); }));
}

TEST_F(OperatorTest, TwoReplicasElectOneLeaderAndHandOver) {
  ChildProcess* first = StartOperator({"--leader-election", "--lease-namespace=db"});
  ASSERT_TRUE(WaitFor([&] {
    auto lease = Get(k8s::Leases(), "dynamo-operator");
    return lease && (*lease).At({"spec", "holderIdentity"}).AsString() == "op-0";
  }));
  StartOperator({"--leader-election", "--lease-namespace=db"});
  ASSERT_TRUE(
      client_
          ->Create(k8s::DynamoClusters(), kNs, ClusterObject("dyn", Value::Obj({{"replicas", 3}})))
          .ok());
  ASSERT_TRUE(WaitFor([&] { return Get(k8s::StatefulSets(), "dyn").has_value(); }));
  // Only the leader acts: every Event comes from op-0.
  for (const Value& e : List(k8s::Events())) {
    EXPECT_EQ(e["reportingInstance"].AsString(), "op-0");
  }
  // The leader stops cleanly and releases the lease; the other takes over.
  EXPECT_EQ(first->Terminate(10000), 0);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto lease = Get(k8s::Leases(), "dynamo-operator");
        return lease && (*lease).At({"spec", "holderIdentity"}).AsString() == "op-1";
      },
      15000));
  ASSERT_TRUE(client_
                  ->Create(k8s::DynamoClusters(), kNs,
                           ClusterObject("after", Value::Obj({{"replicas", 3}})))
                  .ok());
  EXPECT_TRUE(WaitFor([&] { return Get(k8s::StatefulSets(), "after").has_value(); }));
  bool from_successor = false;
  for (const Value& e : List(k8s::Events())) {
    from_successor |= e["reportingInstance"].AsString() == "op-1";
  }
  EXPECT_TRUE(from_successor);
}

TEST_F(OperatorTest, ServesHealthAndMetricsAndStopsOnSigterm) {
  const int port = testing::FreePort();
  ChildProcess* op = StartOperator({Cat("--metrics-addr=127.0.0.1:", port)});
  auto http = k8s::NewCppRestHttpClient(Cat("http://127.0.0.1:", port));
  const auto get = [&](const std::string& path) {
    k8s::HttpRequest r;
    r.path = path;
    r.timeout_ms = 1000;
    absl::StatusOr<k8s::HttpResponse> resp = http->Send(r);
    return resp.ok() ? *resp : k8s::HttpResponse{};
  };
  EXPECT_TRUE(WaitFor([&] { return get("/readyz").status == 200; }));
  EXPECT_EQ(get("/healthz").status, 200);
  ASSERT_TRUE(
      client_
          ->Create(k8s::DynamoClusters(), kNs, ClusterObject("dyn", Value::Obj({{"replicas", 3}})))
          .ok());
  EXPECT_TRUE(WaitFor([&] {
    return get("/metrics")
               .body.find("dynamo_operator_actions_total{type=\"apply\",result=\"success\"}") !=
           std::string::npos;
  })) << get("/metrics").body;
  EXPECT_NE(get("/metrics").body.find("dynamo_operator_leader 1"), std::string::npos);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(op->Terminate(10000), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

}  // namespace
}  // namespace dynamo::op
