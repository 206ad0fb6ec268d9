#include "dynamo/reconciler/reconciler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "dynamo/base/strings.h"
#include "dynamo/reconciler/objects.h"

namespace dynamo::reconciler {
namespace {

using json::Value;
using Type = Action::Type;

constexpr char kNow[] = "2025-01-01T00:00:00Z";
constexpr char kLater[] = "2025-01-01T00:05:00Z";

// ---------------------------------------------------------------------------
// Builders for observations.

Value MakeCluster(Value spec = Value::Obj()) {
  Value spec_with_defaults = json::MergePatch(Value::Obj({{"replicas", 3}}), spec);
  return Value::Obj({{"apiVersion", kApiVersion},
                     {"kind", kKind},
                     {"metadata", Value::Obj({{"name", "dyn"},
                                              {"namespace", "db"},
                                              {"uid", "uid-1"},
                                              {"resourceVersion", "10"},
                                              {"generation", 1},
                                              {"finalizers", Value::Arr({kFinalizer})}})},
                     {"spec", spec_with_defaults}});
}

Cluster Parsed(const Value& object) {
  std::vector<std::string> problems;
  return ParseCluster(object, &problems);
}

Value MakePod(const Cluster& c, int ordinal, bool ready = true) {
  return Value::Obj(
      {{"apiVersion", "v1"},
       {"kind", "Pod"},
       {"metadata", Value::Obj({{"name", PodName(c, ordinal)}, {"namespace", c.ns}})},
       {"status",
        Value::Obj(
            {{"podIP", Cat("127.0.0.", 10 + ordinal)},
             {"phase", "Running"},
             {"conditions", Value::Arr({Value::Obj(
                                {{"type", "Ready"}, {"status", ready ? "True" : "False"}})})}})}});
}

Value MakeClaim(const Cluster& c, int ordinal, bool left = false) {
  Value meta = Value::Obj({{"name", ClaimName(c, ordinal)}, {"namespace", c.ns}});
  if (left) meta["annotations"] = Value::Obj({{kLeftAnnotation, "true"}});
  return Value::Obj({{"apiVersion", "v1"}, {"kind", "PersistentVolumeClaim"}, {"metadata", meta}});
}

NodeView Normal(const Cluster& c, int ordinal, uint64_t keys = 100) {
  NodeView n;
  n.reachable = true;
  n.node_id = PodName(c, ordinal);
  n.address = Cat("127.0.0.", 10 + ordinal, ":7000");
  n.state = NodeState::kNormal;
  n.ready = true;
  n.owned_partitions = 64;
  n.keys = keys;
  n.vnodes = static_cast<uint32_t>(c.spec.virtual_nodes);
  return n;
}

NodeView InState(const Cluster& c, int ordinal, NodeState state) {
  NodeView n = Normal(c, ordinal);
  n.state = state;
  if (state != NodeState::kNormal && state != NodeState::kLeaving) {
    n.ready = state != NodeState::kStandby && state != NodeState::kJoining;
    n.owned_partitions = 0;
    n.keys = 0;
  }
  return n;
}

NodeView Unreachable() {
  NodeView n;
  n.error = "connection refused";
  return n;
}

// A cluster whose objects all exist as the reconciler wants them, with
// `pods` NORMAL nodes in the ring.
struct Scene {
  Value cluster;
  Cluster c;
  Observed obs;
  Options opt;

  explicit Scene(Value spec = Value::Obj(), int pods = 3) : cluster(MakeCluster(std::move(spec))) {
    c = Parsed(cluster);
    opt.now = kNow;
    obs.headless_service = HeadlessService(c);
    obs.client_service = ClientService(c);
    obs.config_map = SeedsConfigMap(c, PodDnsAddress(c, 0) + "," + PodDnsAddress(c, 1));
    obs.pdb = PodDisruptionBudget(c);
    SetReplicas(pods);
    obs.ring.emplace();
    for (int i = 0; i < pods; ++i) {
      obs.pods.push_back(MakePod(c, i));
      obs.pvcs.push_back(MakeClaim(c, i));
      obs.nodes[PodName(c, i)] = Normal(c, i);
    }
    SyncRing();
  }

  void SetReplicas(int replicas) {
    Value sts = StatefulSet(c, replicas, std::nullopt);
    sts["metadata"]["generation"] = 1;
    sts["status"] = Value::Obj({{"observedGeneration", 1},
                                {"replicas", replicas},
                                {"updatedReplicas", replicas},
                                {"readyReplicas", replicas}});
    obs.stateful_set = sts;
  }
  void SetSpec(Value patch) {
    cluster["spec"] = json::MergePatch(cluster["spec"], patch);
    c = Parsed(cluster);
  }
  // The ring as NORMAL nodes would report it: every NORMAL or LEAVING node.
  void SyncRing() {
    obs.ring.emplace();
    for (const auto& [name, n] : obs.nodes) {
      if (n.reachable && (n.state == NodeState::kNormal || n.state == NodeState::kLeaving)) {
        obs.ring->push_back({n.node_id, n.state, true});
      }
    }
    if (obs.ring->empty()) obs.ring.reset();
  }
  NodeView& node(int ordinal) { return obs.nodes[PodName(c, ordinal)]; }
  void RemovePod(int ordinal) {
    const std::string name = PodName(c, ordinal);
    std::erase_if(obs.pods, [&](const Value& p) {
      return p.At({"metadata", "name"}).AsString() == name;
    });
    obs.nodes.erase(name);
  }
  Plan Run() const { return Reconcile(cluster, obs, opt); }
};

// ---------------------------------------------------------------------------
// Queries on plans.

std::vector<const Action*> Find(const Plan& p, Type type, std::string_view kind = "") {
  std::vector<const Action*> out;
  for (const Action& a : p.actions) {
    if (a.type == type && (kind.empty() || a.ref.kind == kind)) out.push_back(&a);
  }
  return out;
}

int IndexOf(const Plan& p, Type type, std::string_view kind) {
  for (size_t i = 0; i < p.actions.size(); ++i) {
    if (p.actions[i].type == type && p.actions[i].ref.kind == kind) return static_cast<int>(i);
  }
  return -1;
}

std::string Dump(const Plan& p) {
  std::string out;
  for (const Action& a : p.actions) out += "  " + Describe(a) + "\n";
  return out;
}

const Action* StatusOf(const Plan& p) {
  const auto s = Find(p, Type::kUpdateStatus);
  return s.empty() ? nullptr : s.front();
}

Value ConditionOf(const Plan& p, std::string_view type) {
  const Action* s = StatusOf(p);
  return s ? FindCondition(s->body, type) : Value();
}

bool HasEvent(const Plan& p, std::string_view reason) {
  for (const Action* a : Find(p, Type::kEvent)) {
    if (a->reason == reason) return true;
  }
  return false;
}

std::vector<std::string> Targets(const Plan& p, Type type) {
  std::vector<std::string> out;
  for (const Action* a : Find(p, type)) out.push_back(a->ref.name);
  return out;
}

int StsReplicas(const Plan& p, int otherwise) {
  const auto applies = Find(p, Type::kApply, "StatefulSet");
  return applies.empty() ? otherwise
                         : static_cast<int>(applies.front()->body.At({"spec", "replicas"}).AsInt());
}

std::vector<std::string> Args(const Value& sts) {
  std::vector<std::string> out;
  const Value& c = sts.At({"spec", "template", "spec", "containers"}).AsArray().at(0);
  for (const Value& a : c["args"].AsArray()) out.push_back(a.AsString());
  return out;
}

bool Contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// ---------------------------------------------------------------------------
// Spec parsing and validation.

TEST(ClusterSpecTest, DefaultsMatchTheCrd) {
  std::vector<std::string> problems;
  const Cluster c =
      ParseCluster(Value::Obj({{"metadata", Value::Obj({{"name", "x"}})}}), &problems);
  EXPECT_TRUE(problems.empty());
  EXPECT_EQ(c.spec.replicas, 3);
  EXPECT_EQ(c.spec.image, "dynamo:0.1.0");
  EXPECT_EQ(c.spec.virtual_nodes, 64);
  EXPECT_EQ(c.spec.partitions, 256);
  EXPECT_EQ(c.spec.replication.factor, 3);
  EXPECT_EQ(c.spec.replication.read_quorum, 2);
  EXPECT_EQ(c.spec.replication.write_quorum, 2);
  EXPECT_EQ(c.spec.storage.size, "10Gi");
  EXPECT_EQ(c.spec.storage.durability, "durable");
  EXPECT_EQ(c.spec.storage.sync_delay_microseconds, 0);
  EXPECT_EQ(c.spec.storage.delete_policy, "Retain");
  EXPECT_EQ(c.spec.zones.topology_key, "topology.kubernetes.io/zone");
  EXPECT_FALSE(c.spec.zones.zone_aware);
  EXPECT_TRUE(c.spec.metrics.enabled);
  EXPECT_EQ(c.spec.metrics.port, 9100);
  EXPECT_FALSE(c.spec.metrics.service_monitor);
  EXPECT_DOUBLE_EQ(c.spec.metrics.sla_seconds, 0.3);
}

// The operator's own status writes come back as watch events; under load the
// nodes' counters in that status change on every pass. Only what a reconcile
// acts on may queue one at once, or the operator would reconcile (and write
// its status) as fast as the API server answers.
TEST(ClusterSpecTest, OnlyWhatAReconcileActsOnQueuesOne) {
  const Value before = MakeCluster();
  Value status_only = before;
  status_only["status"] = Value::Obj({{"members", Value::Arr({Value::Obj({{"keys", 12}})})}});
  status_only["metadata"]["resourceVersion"] = "11";
  status_only["metadata"]["managedFields"] = Value::Arr({Value::Obj({{"manager", "x"}})});
  EXPECT_EQ(ReconcileInput(status_only), ReconcileInput(before));

  Value scaled = before;
  scaled["spec"]["replicas"] = 5;
  scaled["metadata"]["generation"] = 2;
  Value deleting = before;
  deleting["metadata"]["deletionTimestamp"] = "2026-12-06T14:00:00Z";
  Value no_finalizer = before;
  no_finalizer["metadata"]["finalizers"] = Value::Arr();
  Value annotated = before;
  annotated["metadata"]["annotations"] = Value::Obj({{"note", "x"}});
  for (const Value* changed : {&scaled, &deleting, &no_finalizer, &annotated}) {
    EXPECT_FALSE(ReconcileInput(*changed) == ReconcileInput(before)) << changed->Pretty();
  }
}

TEST(ClusterSpecTest, ValidationNamesTheField) {
  struct Case {
    const char* spec;
    const char* problem;
  };
  const Case cases[] = {
      {R"({"replicas":0,"replication":{"factor":1,"readQuorum":1,"writeQuorum":1}})",
       "spec.replicas"},
      {R"({"replicas":"3"})", "spec.replicas must be an integer"},
      {R"({"virtualNodes":0})", "spec.virtualNodes"},
      {R"({"virtualNodes":4097})", "spec.virtualNodes"},
      {R"({"partitions":100})", "power of two"},
      {R"({"replication":{"factor":3,"readQuorum":4,"writeQuorum":2}})",
       "spec.replication.readQuorum must be in 1..factor (3), got 4"},
      {R"({"replication":{"factor":3,"readQuorum":2,"writeQuorum":0}})",
       "spec.replication.writeQuorum"},
      {R"({"replicas":20,"replication":{"factor":17}})",
       "spec.replication.factor must be in 1..16"},
      {R"({"replication":{"factor":0,"readQuorum":1,"writeQuorum":1}})",
       "spec.replication.factor must be in 1..16, got 0"},
      {R"({"replication":{"factor":"3"}})", "spec.replication.factor must be an integer"},
      // What an older CRD, or a bare YAML 1.1 n (read as false), leaves behind.
      {R"({"replication":{"n":3,"r":2,"w":2}})", "spec.replication.n is not a field"},
      {R"({"replication":{"false":5}})", "spec.replication.false is not a field"},
      {R"({"replicas":2})", "must not exceed spec.replicas"},
      {R"({"storage":{"durability":"fast"}})", "spec.storage.durability"},
      {R"({"storage":{"deletePolicy":"Keep"}})", "spec.storage.deletePolicy"},
      {R"({"storage":{"syncDelayMicroseconds":-1}})",
       "spec.storage.syncDelayMicroseconds must be in 0..100000, got -1"},
      {R"({"storage":{"syncDelayMicroseconds":100001}})",
       "spec.storage.syncDelayMicroseconds must be in 0..100000"},
      {R"({"storage":{"syncDelayMicroseconds":"2ms"}})",
       "spec.storage.syncDelayMicroseconds must be an integer"},
      {R"({"storage":{"durability":"buffered","syncDelayMicroseconds":2000}})",
       "applies to durable storage only"},
      {R"({"metrics":{"port":7000}})", "spec.metrics.port"},
      {R"({"metrics":{"slaSeconds":0}})", "slaSeconds"},
      {R"({"imagePullPolicy":"Sometimes"})", "imagePullPolicy"},
      {R"({"zones":"a"})", "spec.zones must be an object"},
  };
  for (const Case& tc : cases) {
    std::vector<std::string> problems;
    ParseCluster(MakeCluster(*json::Parse(tc.spec)), &problems);
    ASSERT_FALSE(problems.empty()) << tc.spec;
    EXPECT_NE(problems.front().find(tc.problem), std::string::npos)
        << tc.spec << " gave: " << problems.front();
  }
}

// ---------------------------------------------------------------------------
// Creation and the objects.

TEST(ReconcileTest, NewClusterCreatesEveryObjectWithOwnerReferences) {
  Scene s;
  s.obs = Observed{};
  const Plan p = s.Run();
  for (const char* kind : {"Service", "ConfigMap", "PodDisruptionBudget", "StatefulSet"}) {
    EXPECT_FALSE(Find(p, Type::kApply, kind).empty()) << kind << "\n" << Dump(p);
  }
  EXPECT_EQ(Find(p, Type::kApply, "Service").size(), 2u);
  EXPECT_TRUE(Find(p, Type::kApply, "ServiceMonitor").empty());
  for (const Action* a : Find(p, Type::kApply)) {
    const Value& owners = a->body.At({"metadata", "ownerReferences"});
    ASSERT_EQ(owners.size(), 1u) << a->ref.kind;
    EXPECT_EQ(owners.AsArray()[0]["uid"].AsString(), "uid-1");
    EXPECT_TRUE(owners.AsArray()[0]["controller"].AsBool());
    EXPECT_EQ(a->body.At({"metadata", "namespace"}).AsString(), "db");
  }
  EXPECT_EQ(StsReplicas(p, -1), 3);
  // Services, ConfigMap and PDB come before the StatefulSet whose pods need them.
  EXPECT_LT(IndexOf(p, Type::kApply, "ConfigMap"), IndexOf(p, Type::kApply, "StatefulSet"));
  EXPECT_TRUE(HasEvent(p, "Created"));
  EXPECT_TRUE(Find(p, Type::kJoin).empty());
  EXPECT_EQ(ConditionOf(p, "Progressing")["status"].AsString(), "True");
  EXPECT_EQ(ConditionOf(p, "Progressing")["reason"].AsString(), "Creating");
  EXPECT_EQ(ConditionOf(p, "Available")["status"].AsString(), "False");
  EXPECT_EQ(p.requeue_after_s, s.opt.requeue_busy_s);
}

TEST(ReconcileTest, AddsTheFinalizerFirstWithAResourceVersionPrecondition) {
  Scene s;
  s.cluster["metadata"]["finalizers"] = Value::Arr({"other.io/keep"});
  const Plan p = s.Run();
  ASSERT_FALSE(p.actions.empty());
  const Action& a = p.actions.front();
  EXPECT_EQ(a.type, Type::kPatch);
  EXPECT_EQ(a.ref.kind, kKind);
  EXPECT_EQ(a.body.At({"metadata", "finalizers"}), Value::Arr({"other.io/keep", kFinalizer}));
  EXPECT_EQ(a.body.At({"metadata", "resourceVersion"}).AsString(), "10");
}

TEST(ReconcileTest, StatefulSetRunsTheNodeAsTheSpecSays) {
  Scene s(*json::Parse(R"({"replicas":4,"image":"reg/dynamo:1","imagePullPolicy":"Always",
      "virtualNodes":32,"partitions":512,"replication":{"factor":3,"readQuorum":1,"writeQuorum":3},
      "storage":{"size":"5Gi","storageClassName":"fast","durability":"buffered"},
      "resources":{"requests":{"cpu":"1"}},
      "zones":{"topologyKey":"example.com/rack","zoneAware":true},
      "metrics":{"port":9200,"slaSeconds":0.25}})"));
  s.obs = Observed{};
  const Plan p = s.Run();
  const auto applies = Find(p, Type::kApply, "StatefulSet");
  ASSERT_EQ(applies.size(), 1u);
  const Value& sts = applies.front()->body;
  const std::vector<std::string> args = Args(sts);
  for (const char* want :
       {"--node-id=$(POD_NAME)", "--listen=0.0.0.0:7000",
        "--advertise=$(POD_NAME).dyn-headless.$(POD_NAMESPACE).svc:7000", "--http=0.0.0.0:9200",
        "--data-dir=/var/lib/dynamo", "--durability=buffered", "--seeds=$(DYNAMO_SEEDS)",
        "--join=manual", "--replicas=3", "--read-quorum=1", "--write-quorum=3", "--partitions=512",
        "--vnodes=$(DYNAMO_VNODES)", "--sla-seconds=0.25", "--zone-aware=true"}) {
    EXPECT_TRUE(Contains(args, want)) << want;
  }
  EXPECT_EQ(sts.At({"spec", "serviceName"}).AsString(), "dyn-headless");
  const Value& pod = sts.At({"spec", "template", "spec"});
  const Value& container = pod["containers"].AsArray()[0];
  EXPECT_EQ(container["image"].AsString(), "reg/dynamo:1");
  EXPECT_EQ(container["imagePullPolicy"].AsString(), "Always");
  EXPECT_EQ(container.At({"readinessProbe", "httpGet", "path"}).AsString(), "/readyz");
  EXPECT_EQ(container.At({"livenessProbe", "httpGet", "path"}).AsString(), "/healthz");
  EXPECT_EQ(container.At({"resources", "requests", "cpu"}).AsString(), "1");
  EXPECT_TRUE(container.At({"securityContext", "readOnlyRootFilesystem"}).AsBool());
  EXPECT_FALSE(container.At({"securityContext", "allowPrivilegeEscalation"}).AsBool(true));
  EXPECT_TRUE(pod.At({"securityContext", "runAsNonRoot"}).AsBool());
  // The image's user (Dockerfile: useradd --uid 10001); fsGroup makes the
  // data volume writable to it.
  EXPECT_EQ(pod.At({"securityContext", "runAsUser"}).AsInt(), 10001);
  EXPECT_EQ(pod.At({"securityContext", "runAsGroup"}).AsInt(), 10001);
  EXPECT_EQ(pod.At({"securityContext", "fsGroup"}).AsInt(), 10001);
  bool data_mounted = false;
  for (const Value& m : container["volumeMounts"].AsArray()) {
    data_mounted |=
        m["name"].AsString() == "data" && m["mountPath"].AsString() == "/var/lib/dynamo";
  }
  EXPECT_TRUE(data_mounted);
  // Downward API: the names the args use.
  std::set<std::string> env;
  for (const Value& e : container["env"].AsArray()) env.insert(e["name"].AsString());
  EXPECT_EQ(env, (std::set<std::string>{"POD_NAME", "POD_NAMESPACE", "POD_IP", "DYNAMO_SEEDS",
                                        "DYNAMO_VNODES"}));
  const Value& spread = pod["topologySpreadConstraints"].AsArray()[0];
  EXPECT_EQ(spread["topologyKey"].AsString(), "example.com/rack");
  EXPECT_EQ(spread["whenUnsatisfiable"].AsString(), "DoNotSchedule");
  EXPECT_FALSE(pod.At({"affinity", "podAntiAffinity"}).is_null());
  const Value& claim = sts.At({"spec", "volumeClaimTemplates"}).AsArray()[0];
  EXPECT_EQ(claim.At({"metadata", "name"}).AsString(), "data");
  EXPECT_EQ(claim.At({"spec", "resources", "requests", "storage"}).AsString(), "5Gi");
  EXPECT_EQ(claim.At({"spec", "storageClassName"}).AsString(), "fast");
  EXPECT_EQ(sts.At({"metadata", "annotations"})[kPartitionsAnnotation].AsString(), "512");
  EXPECT_EQ(sts.At({"metadata", "annotations"})[kReplicationFactorAnnotation].AsString(), "3");

  const Value& pdb = Find(p, Type::kApply, "PodDisruptionBudget").front()->body;
  EXPECT_EQ(pdb.At({"spec", "maxUnavailable"}).AsInt(), 1);
  const Value& cm = Find(p, Type::kApply, "ConfigMap").front()->body;
  EXPECT_EQ(cm.At({"data", "vnodes"}).AsString(), "32");
  for (const Action* svc : Find(p, Type::kApply, "Service")) {
    if (svc->ref.name == "dyn-headless") {
      EXPECT_EQ(svc->body.At({"spec", "clusterIP"}).AsString(), "None");
      EXPECT_TRUE(svc->body.At({"spec", "publishNotReadyAddresses"}).AsBool());
    } else {
      EXPECT_EQ(svc->ref.name, "dyn");
      EXPECT_EQ(svc->body.At({"spec", "ports"}).size(), 2u);  // grpc and metrics
    }
  }
}

TEST(ReconcileTest, TheSyncDelayReachesTheNodeOnlyWhenSet) {
  auto args_of = [](const char* spec) {
    Scene s(*json::Parse(spec));
    s.obs = Observed{};
    const Plan p = s.Run();
    const auto applies = Find(p, Type::kApply, "StatefulSet");
    return applies.empty() ? std::vector<std::string>{} : Args(applies.front()->body);
  };
  const std::vector<std::string> set = args_of(R"({"storage":{"syncDelayMicroseconds":2000}})");
  ASSERT_FALSE(set.empty());
  EXPECT_TRUE(Contains(set, "--sync-delay-us=2000"));
  EXPECT_TRUE(Contains(set, "--durability=durable"));
  // Unset or 0: no flag, so that clusters made before the field keep their pod template.
  for (const char* spec : {"{}", R"({"storage":{"syncDelayMicroseconds":0}})"}) {
    const std::vector<std::string> args = args_of(spec);
    ASSERT_FALSE(args.empty()) << spec;
    for (const std::string& a : args) {
      EXPECT_EQ(a.rfind("--sync-delay-us", 0), std::string::npos) << spec;
    }
  }
}

TEST(ReconcileTest, FirstSeedIsPodZeroAloneSoThatItCanFoundTheRing) {
  Scene s;
  s.obs = Observed{};
  const Plan p = s.Run();
  const Value& cm = Find(p, Type::kApply, "ConfigMap").front()->body;
  EXPECT_EQ(cm.At({"data", "seeds"}).AsString(), "dyn-0.dyn-headless.db.svc:7000");

  Scene formed;
  formed.obs.config_map = SeedsConfigMap(formed.c, PodDnsAddress(formed.c, 0));
  const Plan q = formed.Run();
  const auto cms = Find(q, Type::kApply, "ConfigMap");
  ASSERT_EQ(cms.size(), 1u) << Dump(q);
  EXPECT_EQ(cms.front()->body.At({"data", "seeds"}).AsString(),
            "dyn-0.dyn-headless.db.svc:7000,dyn-1.dyn-headless.db.svc:7000");
}

TEST(ReconcileTest, SteadyClusterNeedsNothingAndIsAvailable) {
  Scene s;
  const Plan p = s.Run();
  ASSERT_EQ(p.actions.size(), 1u) << Dump(p);
  EXPECT_EQ(p.actions[0].type, Type::kUpdateStatus);
  const Value& st = p.actions[0].body;
  EXPECT_EQ(FindCondition(st, "Available")["status"].AsString(), "True");
  EXPECT_EQ(FindCondition(st, "Available")["reason"].AsString(), "MembersReady");
  EXPECT_EQ(FindCondition(st, "Progressing")["status"].AsString(), "False");
  EXPECT_EQ(FindCondition(st, "Degraded")["status"].AsString(), "False");
  EXPECT_EQ(FindCondition(st, "Available")["observedGeneration"].AsInt(), 1);
  EXPECT_EQ(st["readyMembers"].AsInt(), 3);
  EXPECT_EQ(st["replicas"].AsInt(), 3);
  EXPECT_EQ(st["observedGeneration"].AsInt(), 1);
  EXPECT_EQ(st["members"].size(), 3u);
  EXPECT_EQ(st["members"].AsArray()[2]["state"].AsString(), "normal");
  EXPECT_EQ(st["handoffs"].size(), 0u);
  EXPECT_EQ(p.requeue_after_s, s.opt.requeue_idle_s);

  // Written once, it is not written again.
  s.cluster["status"] = st;
  const Plan again = s.Run();
  EXPECT_TRUE(again.actions.empty()) << Dump(again);
}

TEST(ReconcileTest, ServerDefaultedFieldsDoNotCauseUpdates) {
  Scene s;
  Value sts = *s.obs.stateful_set;
  Value& container = sts["spec"]["template"]["spec"]["containers"].MutableArray()[0];
  container["terminationMessagePath"] = "/dev/termination-log";
  container["ports"].MutableArray()[0]["protocol"] = "TCP";
  sts["spec"]["revisionHistoryLimit"] = 10;
  s.obs.stateful_set = sts;
  EXPECT_TRUE(Find(s.Run(), Type::kApply).empty());
}

// ---------------------------------------------------------------------------
// Joins.

TEST(ReconcileTest, BootstrapJoinsPodZeroAloneToFoundTheRing) {
  Scene s;
  for (int i = 0; i < 3; ++i) s.node(i) = InState(s.c, i, NodeState::kStandby);
  s.SyncRing();
  const Plan p = s.Run();
  const auto joins = Find(p, Type::kJoin);
  ASSERT_EQ(joins.size(), 1u) << Dump(p);
  EXPECT_EQ(joins[0]->ref.name, "dyn-0");
  EXPECT_EQ(joins[0]->seed, "");
  EXPECT_EQ(ConditionOf(p, "Available")["reason"].AsString(), "NoRing");
  EXPECT_EQ(ConditionOf(p, "Progressing")["status"].AsString(), "True");
  EXPECT_EQ(ConditionOf(p, "Degraded")["status"].AsString(), "False");
}

TEST(ReconcileTest, OthersJoinThroughANormalNode) {
  Scene s;
  s.node(1) = InState(s.c, 1, NodeState::kStandby);
  s.node(2) = InState(s.c, 2, NodeState::kStandby);
  s.SyncRing();
  const Plan p = s.Run();
  const auto joins = Find(p, Type::kJoin);
  ASSERT_EQ(joins.size(), 2u) << Dump(p);
  for (const Action* j : joins) EXPECT_EQ(j->seed, "127.0.0.10:7000");
  EXPECT_TRUE(HasEvent(p, "JoinNode"));
  EXPECT_EQ(ConditionOf(p, "Progressing")["reason"].AsString(), "Joining");
  // A ring of one with a replication factor of 3 is not available.
  EXPECT_EQ(ConditionOf(p, "Available")["reason"].AsString(), "TooFewMembers");
}

TEST(ReconcileTest, JoiningNodesAreNotAskedAgainButReportedProgressing) {
  Scene s;
  s.node(2) = InState(s.c, 2, NodeState::kJoining);
  s.SyncRing();
  const Plan p = s.Run();
  EXPECT_TRUE(Find(p, Type::kJoin).empty()) << Dump(p);
  EXPECT_EQ(ConditionOf(p, "Progressing")["reason"].AsString(), "Joining");
}

TEST(ReconcileTest, NodeWithoutAnAddressYetIsAwaited) {
  Scene s;
  s.obs.nodes.erase("dyn-2");
  s.node(1) = InState(s.c, 1, NodeState::kStandby);
  s.SyncRing();
  const Plan p = s.Run();
  EXPECT_EQ(Targets(p, Type::kJoin), std::vector<std::string>{"dyn-1"});
  EXPECT_NE(ConditionOf(p, "Progressing")["message"].AsString().find("dyn-2"), std::string::npos);
}

TEST(ReconcileTest, SeedFallsBackToPodIpOrDnsWhenTheNodeGivesNoAddress) {
  Scene s;
  s.node(0).address = "";
  s.node(2) = InState(s.c, 2, NodeState::kStandby);
  s.SyncRing();
  EXPECT_EQ(Find(s.Run(), Type::kJoin).front()->seed, "dyn-0.dyn-headless.db.svc:7000");
  s.opt.seed_with_pod_ip = true;
  EXPECT_EQ(Find(s.Run(), Type::kJoin).front()->seed, "127.0.0.10:7000");
}

// ---------------------------------------------------------------------------
// Scale up.

TEST(ReconcileTest, ScaleUpGrowsTheStatefulSetThenJoinsTheNewNodes) {
  Scene s;
  s.SetSpec(Value::Obj({{"replicas", 5}}));
  Plan p = s.Run();
  EXPECT_EQ(StsReplicas(p, -1), 5) << Dump(p);
  EXPECT_TRUE(HasEvent(p, "ScalingUp"));
  EXPECT_EQ(ConditionOf(p, "Progressing")["reason"].AsString(), "ScalingUp");
  EXPECT_TRUE(Find(p, Type::kJoin).empty());

  // The pods exist and their nodes answer: join them.
  s.SetReplicas(5);
  for (int i = 3; i < 5; ++i) {
    s.obs.pods.push_back(MakePod(s.c, i, /*ready=*/false));
    s.node(i) = InState(s.c, i, NodeState::kStandby);
  }
  p = s.Run();
  EXPECT_EQ(Targets(p, Type::kJoin), (std::vector<std::string>{"dyn-3", "dyn-4"})) << Dump(p);
  EXPECT_EQ(StsReplicas(p, 5), 5);
  // The existing members are fine: still available while the new ones join.
  EXPECT_EQ(ConditionOf(p, "Available")["status"].AsString(), "True");
  EXPECT_EQ(ConditionOf(p, "Degraded")["status"].AsString(), "False");
}

TEST(ReconcileTest, StartingPodsAreNotDegradation) {
  Scene s;
  s.SetSpec(Value::Obj({{"replicas", 5}}));
  s.SetReplicas(5);
  const Plan p = s.Run();  // pods 3 and 4 not created yet
  EXPECT_EQ(ConditionOf(p, "Degraded")["status"].AsString(), "False");
  EXPECT_EQ(ConditionOf(p, "Progressing")["status"].AsString(), "True");
}

// ---------------------------------------------------------------------------
// Scale down, one node at a time, from the highest ordinal.

TEST(ReconcileTest, ScaleDownAsksOnlyTheHighestOrdinalToLeave) {
  Scene s(Value::Obj({{"replicas", 5}}), 5);
  s.SetSpec(Value::Obj({{"replicas", 3}}));
  const Plan p = s.Run();
  EXPECT_EQ(Targets(p, Type::kLeave), std::vector<std::string>{"dyn-4"}) << Dump(p);
  EXPECT_EQ(StsReplicas(p, 5), 5);  // nothing shrinks yet
  EXPECT_TRUE(Find(p, Type::kDelete).empty());
  EXPECT_TRUE(HasEvent(p, "LeaveNode"));
  EXPECT_EQ(ConditionOf(p, "Progressing")["reason"].AsString(), "ScalingDown");
}

TEST(ReconcileTest, LeavingNodeIsAskedAgainAndItsHandoffReported) {
  Scene s(Value::Obj({{"replicas", 5}}), 5);
  s.SetSpec(Value::Obj({{"replicas", 3}}));
  NodeView& leaving = s.node(4);
  leaving.state = NodeState::kLeaving;
  leaving.handoff_ranges = 2;
  leaving.handoff_keys_remaining = 40;
  leaving.handoff_keys_sent = 60;
  leaving.handoff_bytes_sent = 6000;
  s.SyncRing();
  const Plan p = s.Run();
  EXPECT_EQ(Targets(p, Type::kLeave), std::vector<std::string>{"dyn-4"});
  EXPECT_FALSE(HasEvent(p, "LeaveNode"));  // asked before: no new event
  EXPECT_EQ(StsReplicas(p, 5), 5);
  const Value& st = StatusOf(p)->body;
  ASSERT_EQ(st["handoffs"].size(), 1u);
  const Value& h = st["handoffs"].AsArray()[0];
  EXPECT_EQ(h["node"].AsString(), "dyn-4");
  EXPECT_EQ(h["keysRemaining"].AsInt(), 40);
  EXPECT_EQ(h["keysSent"].AsInt(), 60);
  EXPECT_EQ(h["bytesSent"].AsInt(), 6000);
  EXPECT_EQ(h["ranges"].AsInt(), 2);
  EXPECT_NE(ConditionOf(p, "Progressing")["message"].AsString().find("40 keys remaining"),
            std::string::npos);
  // A leaving member still serves: the cluster stays available.
  EXPECT_EQ(ConditionOf(p, "Available")["status"].AsString(), "True");
}

TEST(ReconcileTest, LeftAndEmptyNodeIsRemovedAfterItsClaimIsMarked) {
  Scene s(Value::Obj({{"replicas", 5}}), 5);
  s.SetSpec(Value::Obj({{"replicas", 3}}));
  s.node(4) = InState(s.c, 4, NodeState::kLeft);
  s.SyncRing();
  const Plan p = s.Run();
  EXPECT_EQ(StsReplicas(p, 5), 4) << Dump(p);
  const auto patches = Find(p, Type::kPatch, "PersistentVolumeClaim");
  ASSERT_EQ(patches.size(), 1u);
  EXPECT_EQ(patches[0]->ref.name, "data-dyn-4");
  EXPECT_EQ(patches[0]->body.At({"metadata", "annotations"})[kLeftAnnotation].AsString(), "true");
  EXPECT_LT(IndexOf(p, Type::kPatch, "PersistentVolumeClaim"),
            IndexOf(p, Type::kApply, "StatefulSet"));
  EXPECT_TRUE(HasEvent(p, "NodeLeft"));
  EXPECT_TRUE(Find(p, Type::kDelete).empty());  // the pod is still there
  EXPECT_TRUE(Find(p, Type::kLeave).empty());
}

TEST(ReconcileTest, NeverRemovesANodeThatStillHoldsSomething) {
  struct Case {
    const char* name;
    std::function<void(NodeView&)> mutate;
  };
  const Case cases[] = {
      {"keys", [](NodeView& n) { n.keys = 1; }},
      {"hints", [](NodeView& n) { n.hint_keys = 3; }},
      {"owned partitions", [](NodeView& n) { n.owned_partitions = 1; }},
      {"unowned keys", [](NodeView& n) { n.unowned_keys = 2; }},
      {"leaving", [](NodeView& n) { n.state = NodeState::kLeaving; }},
      {"normal", [](NodeView& n) { n.state = NodeState::kNormal; }},
      {"unreachable", [](NodeView& n) { n = Unreachable(); }},
  };
  for (const Case& tc : cases) {
    Scene s(Value::Obj({{"replicas", 5}}), 5);
    s.SetSpec(Value::Obj({{"replicas", 3}}));
    s.node(4) = InState(s.c, 4, NodeState::kLeft);
    tc.mutate(s.node(4));
    s.SyncRing();
    const Plan p = s.Run();
    EXPECT_EQ(StsReplicas(p, 5), 5) << tc.name << "\n" << Dump(p);
    EXPECT_TRUE(Find(p, Type::kDelete).empty()) << tc.name;
    EXPECT_TRUE(Find(p, Type::kPatch, "PersistentVolumeClaim").empty()) << tc.name;
  }
  // Nor one whose pod is gone before it could confirm.
  Scene s(Value::Obj({{"replicas", 5}}), 5);
  s.SetSpec(Value::Obj({{"replicas", 3}}));
  s.RemovePod(4);
  EXPECT_EQ(StsReplicas(s.Run(), 5), 5);
}

TEST(ReconcileTest, LeftNodeStillNamedByTheRingWaits) {
  Scene s(Value::Obj({{"replicas", 4}}), 4);
  s.SetSpec(Value::Obj({{"replicas", 3}}));
  s.node(3) = InState(s.c, 3, NodeState::kLeft);
  s.SyncRing();
  s.obs.ring->push_back({"dyn-3", NodeState::kLeaving, true});  // a stale ring view
  EXPECT_EQ(StsReplicas(s.Run(), 4), 4);
}

TEST(ReconcileTest, RaiseWhileLeavingWaitsForTheLeave) {
  Scene s(Value::Obj({{"replicas", 5}}), 5);
  s.SetSpec(Value::Obj({{"replicas", 6}}));
  s.node(4).state = NodeState::kLeaving;
  s.SyncRing();
  Plan p = s.Run();
  EXPECT_EQ(StsReplicas(p, 5), 5) << Dump(p);
  EXPECT_EQ(Targets(p, Type::kLeave), std::vector<std::string>{"dyn-4"});
  EXPECT_TRUE(Find(p, Type::kJoin).empty());
  EXPECT_NE(ConditionOf(p, "Progressing")["message"].AsString().find("waits"), std::string::npos);

  // Once it has left it goes, and only then does the StatefulSet grow.
  s.node(4) = InState(s.c, 4, NodeState::kLeft);
  s.SyncRing();
  p = s.Run();
  EXPECT_EQ(StsReplicas(p, 5), 4);
  s.SetReplicas(4);
  s.RemovePod(4);
  p = s.Run();
  EXPECT_EQ(StsReplicas(p, 4), 6) << Dump(p);
}

TEST(ReconcileTest, ScaleDownWaitsForTheRestToBeNormalAndReady) {
  for (const NodeState other : {NodeState::kJoining, NodeState::kStandby, NodeState::kUnknown}) {
    Scene s(Value::Obj({{"replicas", 4}}), 4);
    s.SetSpec(Value::Obj({{"replicas", 3}}));
    s.node(1) = other == NodeState::kUnknown ? Unreachable() : InState(s.c, 1, other);
    s.SyncRing();
    const Plan p = s.Run();
    EXPECT_TRUE(Find(p, Type::kLeave).empty()) << NodeStateName(other) << "\n" << Dump(p);
    EXPECT_NE(ConditionOf(p, "Progressing")["message"].AsString().find("dyn-1"), std::string::npos);
  }
}

TEST(ReconcileTest, ScaleDownRefusedWhenTheKeysWouldNotFit) {
  Scene s(Value::Obj({{"replicas", 4}}), 4);
  s.SetSpec(Value::Obj({{"replicas", 3}}));
  s.opt.keys_per_node_max = 120;  // 4 x 100 keys over 3 nodes: 134 each
  Plan p = s.Run();
  EXPECT_TRUE(Find(p, Type::kLeave).empty()) << Dump(p);
  EXPECT_EQ(ConditionOf(p, "Degraded")["status"].AsString(), "True");
  EXPECT_EQ(ConditionOf(p, "Degraded")["reason"].AsString(), "ScaleDownRefused");
  EXPECT_NE(ConditionOf(p, "Degraded")["message"].AsString().find("134"), std::string::npos);
  EXPECT_TRUE(HasEvent(p, "ScaleDownRefused"));

  s.opt.keys_per_node_max = 134;
  p = s.Run();
  EXPECT_EQ(Targets(p, Type::kLeave), std::vector<std::string>{"dyn-3"});
  EXPECT_EQ(ConditionOf(p, "Degraded")["status"].AsString(), "False");
}

TEST(ReconcileTest, ScaleDownRefusedWhenFewerThanNWouldRemain) {
  // A ring made with replication factor 2 on 3 nodes: leaving one keeps 2,
  // allowed.
  Scene s(
      *json::Parse(R"({"replicas":3,"replication":{"factor":2,"readQuorum":1,"writeQuorum":1}})"),
      3);
  s.cluster["spec"]["replicas"] = 2;
  Plan p = s.Run();
  EXPECT_EQ(Targets(p, Type::kLeave), std::vector<std::string>{"dyn-2"}) << Dump(p);
  // A spec that bypassed validation (factor 3 > 2 replicas) cannot make the
  // operator go below the factor: nothing is touched.
  s.cluster["spec"]["replication"] =
      Value::Obj({{"factor", 3}, {"readQuorum", 2}, {"writeQuorum", 2}});
  p = s.Run();
  EXPECT_TRUE(Find(p, Type::kLeave).empty());
  EXPECT_TRUE(Find(p, Type::kApply).empty());
  EXPECT_EQ(ConditionOf(p, "Degraded")["reason"].AsString(), "InvalidSpec");
}

TEST(ReconcileTest, StandbyNodeOutsideTheRingIsRemovedWithoutALeave) {
  Scene s(Value::Obj({{"replicas", 4}}), 4);
  s.SetSpec(Value::Obj({{"replicas", 3}}));
  s.node(3) = InState(s.c, 3, NodeState::kStandby);
  s.SyncRing();
  const Plan p = s.Run();
  EXPECT_EQ(StsReplicas(p, 4), 3) << Dump(p);
  EXPECT_TRUE(Find(p, Type::kLeave).empty());
}

// A raise to 5 whose two new pods cannot be scheduled, taken back: their
// nodes never ran, so they go without a leave (which nobody could answer).
// A pod that ran once, or a node the ring or the status names, still waits.
TEST(ReconcileTest, PodsThatNeverStartedAreRemovedWhenTheRaiseIsTakenBack) {
  const auto pending = [](Scene& s, int ordinal, Value container_statuses) {
    s.obs.pods.push_back(Value::Obj(
        {{"apiVersion", "v1"},
         {"kind", "Pod"},
         {"metadata", Value::Obj({{"name", PodName(s.c, ordinal)}, {"namespace", s.c.ns}})},
         {"status", Value::Obj({{"phase", "Pending"},
                                {"containerStatuses", std::move(container_statuses)}})}}));
    s.node(ordinal) = Unreachable();
  };
  const Value waiting = Value::Arr({Value::Obj(
      {{"name", "node"},
       {"restartCount", 0},
       {"state", Value::Obj({{"waiting", Value::Obj({{"reason", "ContainerCreating"}})}})}})});
  Scene s(Value::Obj({{"replicas", 3}}), 3);
  s.SetReplicas(5);
  pending(s, 3, Value::Arr());
  pending(s, 4, waiting);
  Plan p = s.Run();
  EXPECT_EQ(StsReplicas(p, 5), 4) << Dump(p);
  EXPECT_TRUE(HasEvent(p, "NodeRemoved"));
  EXPECT_TRUE(Find(p, Type::kLeave).empty());

  Scene ran(Value::Obj({{"replicas", 3}}), 3);
  ran.SetReplicas(5);
  pending(ran, 3, Value::Arr());
  const Value crashed = Value::Obj({{"waiting", Value::Obj({{"reason", "CrashLoopBackOff"}})}});
  pending(ran, 4,
          Value::Arr({Value::Obj({{"name", "node"}, {"restartCount", 2}, {"state", crashed}})}));
  p = ran.Run();
  EXPECT_EQ(StsReplicas(p, 5), 5) << "a node that ran may hold data\n" << Dump(p);

  Scene member(Value::Obj({{"replicas", 3}}), 3);
  member.SetReplicas(5);
  pending(member, 3, Value::Arr());
  pending(member, 4, waiting);
  member.cluster["status"]["members"] =
      Value::Arr({Value::Obj({{"name", PodName(member.c, 4)}, {"state", "normal"}})});
  member.c = Parsed(member.cluster);
  p = member.Run();
  EXPECT_EQ(StsReplicas(p, 5), 5) << "it was a member: its handoff must be confirmed\n" << Dump(p);
}

TEST(ReconcileTest, ClaimsOfLeftNodesAreDeletedOnlyOnceTheirPodIsGone) {
  Scene s(Value::Obj({{"replicas", 3}}), 3);
  s.obs.pvcs.push_back(MakeClaim(s.c, 4, /*left=*/true));
  s.obs.pvcs.push_back(MakeClaim(s.c, 5, /*left=*/false));  // never confirmed: kept
  Plan p = s.Run();
  EXPECT_EQ(Targets(p, Type::kDelete), std::vector<std::string>{"data-dyn-4"}) << Dump(p);
  EXPECT_TRUE(HasEvent(p, "DeletedVolume"));

  // A claim whose pod still runs is kept; if its node is back in the ring the
  // mark is removed.
  Scene t(Value::Obj({{"replicas", 3}}), 3);
  t.obs.pvcs[2] = MakeClaim(t.c, 2, /*left=*/true);
  p = t.Run();
  EXPECT_TRUE(Find(p, Type::kDelete).empty());
  const auto unmark = Find(p, Type::kPatch, "PersistentVolumeClaim");
  ASSERT_EQ(unmark.size(), 1u) << Dump(p);
  EXPECT_TRUE(unmark[0]->body.At({"metadata", "annotations"})[kLeftAnnotation].is_null());
  EXPECT_TRUE(unmark[0]->body.At({"metadata", "annotations"}).Has(kLeftAnnotation));
}

// ---------------------------------------------------------------------------
// Virtual nodes.

TEST(ReconcileTest, VirtualNodesChangeIsSetOnEveryNode) {
  Scene s;
  s.SetSpec(Value::Obj({{"virtualNodes", 128}}));
  s.node(2) = InState(s.c, 2, NodeState::kJoining);
  s.node(2).vnodes = 64;
  s.SyncRing();
  const Plan p = s.Run();
  const auto sets = Find(p, Type::kSetVirtualNodes);
  ASSERT_EQ(sets.size(), 3u) << Dump(p);
  for (const Action* a : sets) EXPECT_EQ(a->vnodes, 128u);
  EXPECT_TRUE(HasEvent(p, "SetVirtualNodes"));
  EXPECT_EQ(ConditionOf(p, "Progressing")["status"].AsString(), "True");
  // The ConfigMap carries the value for pods started later; the StatefulSet
  // does not change (no rolling restart for a weight change).
  EXPECT_EQ(Find(p, Type::kApply, "ConfigMap").size(), 1u);
  EXPECT_TRUE(Find(p, Type::kApply, "StatefulSet").empty());
}

TEST(ReconcileTest, RebalancingIsProgressUntilHandoffsDrain) {
  Scene s;
  s.node(1).unowned_keys = 10;
  s.node(1).handoff_ranges = 1;
  Plan p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Progressing")["reason"].AsString(), "Rebalancing");
  EXPECT_EQ(StatusOf(p)->body["handoffs"].size(), 1u);
  s.node(1).unowned_keys = 0;
  s.node(1).handoff_ranges = 0;
  p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Progressing")["status"].AsString(), "False");
}

TEST(ReconcileTest, LeavingNodeKeepsItsVirtualNodes) {
  Scene s(Value::Obj({{"replicas", 4}}), 4);
  s.SetSpec(Value::Obj({{"replicas", 3}, {"virtualNodes", 16}}));
  s.node(3).state = NodeState::kLeaving;
  s.SyncRing();
  EXPECT_EQ(Targets(s.Run(), Type::kSetVirtualNodes),
            (std::vector<std::string>{"dyn-0", "dyn-1", "dyn-2"}));
}

// Zone-aware clusters: pod i runs on Kubernetes node "k<i>", whose zone
// label is zones[i] ("" for a node without the label).
void PlaceInZones(Scene& s, const std::vector<std::string>& zones) {
  s.SetSpec(*json::Parse(R"({"zones":{"zoneAware":true}})"));
  for (size_t i = 0; i < zones.size(); ++i) {
    s.obs.pods[i]["spec"] = Value::Obj({{"nodeName", Cat("k", i)}});
    s.obs.k8s_node_zones[Cat("k", i)] = zones[i];
  }
}

TEST(ReconcileTest, ZoneAwareJoinsGiveEachNodeItsKubernetesNodesZone) {
  Scene s;
  PlaceInZones(s, {"zone-a", "zone-b", "zone-c"});
  s.node(0).zone = "zone-a";
  s.node(1) = InState(s.c, 1, NodeState::kStandby);
  s.node(2) = InState(s.c, 2, NodeState::kStandby);
  s.SyncRing();
  const Plan p = s.Run();
  const auto joins = Find(p, Type::kJoin);
  ASSERT_EQ(joins.size(), 2u) << Dump(p);
  EXPECT_EQ(joins[0]->ref.name, "dyn-1");
  EXPECT_EQ(joins[0]->zone, "zone-b");
  EXPECT_EQ(joins[1]->zone, "zone-c");
  EXPECT_EQ(joins[1]->seed, "127.0.0.10:7000");
  EXPECT_EQ(ConditionOf(p, "Degraded")["status"].AsString(), "False");
  EXPECT_EQ(StatusOf(p)->body["members"].AsArray()[0]["zone"].AsString(), "zone-a");

  // Without zone awareness no zone is given, whatever the labels say.
  Scene plain;
  plain.node(2) = InState(plain.c, 2, NodeState::kStandby);
  plain.obs.pods[2]["spec"] = Value::Obj({{"nodeName", "k2"}});
  plain.obs.k8s_node_zones["k2"] = "zone-c";
  plain.SyncRing();
  const Plan q = plain.Run();
  ASSERT_EQ(Find(q, Type::kJoin).size(), 1u) << Dump(q);
  EXPECT_EQ(Find(q, Type::kJoin)[0]->zone, "");
}

TEST(ReconcileTest, ANodeWhoseZoneIsUnknownDoesNotJoinAndTheClusterSaysWhy) {
  Scene s;
  PlaceInZones(s, {"zone-a", "", "zone-c"});
  s.obs.k8s_node_zones.erase("k2");
  s.obs.k8s_node_errors["k2"] = "nodes \"k2\" is forbidden";
  s.node(0).zone = "zone-a";
  s.node(1) = InState(s.c, 1, NodeState::kStandby);
  s.node(2) = InState(s.c, 2, NodeState::kStandby);
  s.SyncRing();
  Plan p = s.Run();
  EXPECT_TRUE(Find(p, Type::kJoin).empty()) << Dump(p);
  const Value degraded = ConditionOf(p, "Degraded");
  EXPECT_EQ(degraded["reason"].AsString(), "ZoneUnknown");
  const std::string& message = degraded["message"].AsString();
  EXPECT_NE(message.find("dyn-1 runs on Kubernetes node k1, which has no label "
                         "topology.kubernetes.io/zone"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("k2 (of dyn-2) could not be read: nodes \"k2\" is forbidden"),
            std::string::npos)
      << message;
  EXPECT_TRUE(HasEvent(p, "ZoneUnknown"));
  // A member that has its zone is not reported when its Node cannot be read.
  {
    Scene ok;
    PlaceInZones(ok, {"zone-a", "zone-b", "zone-c"});
    for (int i = 0; i < 3; ++i) ok.node(i).zone = ok.obs.k8s_node_zones[Cat("k", i)];
    ok.obs.k8s_node_zones.erase("k1");
    ok.obs.k8s_node_errors["k1"] = "the server is currently unable to handle the request";
    const Plan q = ok.Run();
    EXPECT_EQ(ConditionOf(q, "Degraded")["status"].AsString(), "False") << Dump(q);
    EXPECT_TRUE(Find(q, Type::kJoin).empty()) << Dump(q);
  }
  // Once the label is there, the node joins with it.
  s.obs.k8s_node_zones["k1"] = "zone-b";
  s.cluster["status"] = StatusOf(p)->body;
  p = s.Run();
  EXPECT_EQ(Targets(p, Type::kJoin), std::vector<std::string>{"dyn-1"});
  EXPECT_EQ(Find(p, Type::kJoin)[0]->zone, "zone-b");
}

TEST(ReconcileTest, ARingMemberInAnotherZoneThanItsMachineIsToldItsZone) {
  // Zone awareness turned on for a running cluster: its nodes have no zone.
  Scene s;
  PlaceInZones(s, {"zone-a", "zone-b", "zone-c"});
  s.node(1).zone = "zone-b";
  s.node(2).zone = "zone-x";  // a pod that moved
  const Plan p = s.Run();
  const auto joins = Find(p, Type::kJoin);
  ASSERT_EQ(joins.size(), 2u) << Dump(p);
  EXPECT_EQ(joins[0]->ref.name, "dyn-0");
  EXPECT_EQ(joins[0]->zone, "zone-a");
  EXPECT_EQ(joins[0]->seed, "");
  EXPECT_EQ(joins[1]->ref.name, "dyn-2");
  EXPECT_EQ(joins[1]->zone, "zone-c");
  EXPECT_TRUE(HasEvent(p, "SetZone"));
  // Once every node reports its machine's zone there is nothing to do.
  s.node(0).zone = "zone-a";
  s.node(2).zone = "zone-c";
  EXPECT_TRUE(Find(s.Run(), Type::kJoin).empty());
}

// ---------------------------------------------------------------------------
// Health and conditions.

TEST(ReconcileTest, UnreachableRingMemberIsDegradedAndNotAvailable) {
  Scene s;
  s.node(1) = Unreachable();  // the ring (as dyn-0 sees it) still names dyn-1
  s.obs.ring->push_back({"dyn-1", NodeState::kNormal, false});
  const Plan p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Degraded")["status"].AsString(), "True");
  EXPECT_EQ(ConditionOf(p, "Degraded")["reason"].AsString(), "MemberUnreachable");
  EXPECT_NE(ConditionOf(p, "Degraded")["message"].AsString().find("connection refused"),
            std::string::npos);
  EXPECT_EQ(ConditionOf(p, "Available")["status"].AsString(), "False");
  EXPECT_EQ(ConditionOf(p, "Available")["reason"].AsString(), "MembersNotReady");
  // Its pod runs, its admin API does not answer.
  EXPECT_EQ(StatusOf(p)->body["members"].AsArray()[1]["state"].AsString(), "unknown");
  EXPECT_FALSE(StatusOf(p)->body["members"].AsArray()[1]["ready"].AsBool(true));
  EXPECT_EQ(p.requeue_after_s, s.opt.requeue_busy_s);
}

TEST(ReconcileTest, MissingPodOfARingMemberIsDegraded) {
  Scene s;
  s.RemovePod(2);
  s.obs.ring->push_back({"dyn-2", NodeState::kNormal, false});
  const Plan p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Degraded")["reason"].AsString(), "MemberUnreachable");
  EXPECT_FALSE(StatusOf(p)->body["members"].AsArray()[2].Has("state"));
}

TEST(ReconcileTest, WithoutARingViewPreviousMembershipDecides) {
  Scene s;
  const Plan first = s.Run();
  s.cluster["status"] = StatusOf(first)->body;  // dyn-* were normal
  for (int i = 0; i < 3; ++i) s.node(i) = Unreachable();
  s.obs.ring.reset();
  const Plan p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Degraded")["reason"].AsString(), "MemberUnreachable");
  EXPECT_EQ(ConditionOf(p, "Available")["reason"].AsString(), "NoRing");
}

TEST(ReconcileTest, NotReadyMemberIsNotAvailable) {
  Scene s;
  s.obs.pods[0] = MakePod(s.c, 0, /*ready=*/false);
  const Plan p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Available")["status"].AsString(), "False");
  EXPECT_NE(ConditionOf(p, "Available")["message"].AsString().find("dyn-0 not ready"),
            std::string::npos);
}

TEST(ReconcileTest, NodesThatNeverAnsweredAreProgressNotHealth) {
  Scene s;
  for (int i = 0; i < 3; ++i) s.node(i) = Unreachable();
  s.obs.ring.reset();
  const Plan p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Progressing")["status"].AsString(), "True");
  EXPECT_NE(ConditionOf(p, "Progressing")["message"].AsString().find("dyn-0 (connection refused)"),
            std::string::npos);
  EXPECT_EQ(ConditionOf(p, "Degraded")["status"].AsString(), "False");
  EXPECT_EQ(ConditionOf(p, "Available")["status"].AsString(), "False");
  EXPECT_TRUE(Find(p, Type::kJoin).empty());
}

TEST(ReconcileTest, RingMemberThatHasNotSeenTheRingYetIsNotAvailable) {
  Scene s;
  s.node(2).state = NodeState::kJoining;  // the ring names it; it does not know yet
  const Plan p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Available")["status"].AsString(), "False");
  EXPECT_NE(ConditionOf(p, "Available")["message"].AsString().find("dyn-2 is Joining"),
            std::string::npos);
  EXPECT_EQ(StatusOf(p)->body["readyMembers"].AsInt(), 2);
}

TEST(ReconcileTest, StrayRingMemberIsDegraded) {
  Scene s;
  s.obs.ring->push_back({"ghost-7", NodeState::kNormal, false});
  const Plan p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Degraded")["status"].AsString(), "True");
  EXPECT_NE(ConditionOf(p, "Degraded")["message"].AsString().find("ghost-7"), std::string::npos);
}

TEST(ReconcileTest, RollingUpdateIsProgress) {
  Scene s;
  Value sts = *s.obs.stateful_set;
  sts["status"]["updatedReplicas"] = 1;
  sts["status"]["currentRevision"] = "dyn-1";
  sts["status"]["updateRevision"] = "dyn-2";
  s.obs.stateful_set = sts;
  Plan p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Progressing")["reason"].AsString(), "RollingUpdate");
  sts["metadata"]["generation"] = 2;
  s.obs.stateful_set = sts;
  p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Progressing")["reason"].AsString(), "WaitingForStatefulSet");
}

TEST(ReconcileTest, PodOfARemovedNodeStillEndingIsProgress) {
  Scene s;
  s.obs.pods.push_back(MakePod(s.c, 3));
  s.obs.pods.back()["metadata"]["deletionTimestamp"] = kNow;
  const Plan p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Progressing")["reason"].AsString(), "ScalingDown");
  EXPECT_NE(ConditionOf(p, "Progressing")["message"].AsString().find("dyn-3"), std::string::npos);
  EXPECT_EQ(StatusOf(p)->body["members"].size(), 4u);
}

TEST(ReconcileTest, TransitionTimeMovesOnlyWhenTheStatusFlips) {
  Scene s;
  Plan p = s.Run();
  s.cluster["status"] = StatusOf(p)->body;
  EXPECT_EQ(FindCondition(s.cluster["status"], "Available")["lastTransitionTime"].AsString(), kNow);

  s.opt.now = kLater;
  s.node(2).keys = 5000;  // members change, conditions do not
  p = s.Run();
  ASSERT_NE(StatusOf(p), nullptr);
  EXPECT_EQ(ConditionOf(p, "Available")["lastTransitionTime"].AsString(), kNow);

  s.node(2) = Unreachable();
  p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Available")["status"].AsString(), "False");
  EXPECT_EQ(ConditionOf(p, "Available")["lastTransitionTime"].AsString(), kLater);
  EXPECT_EQ(ConditionOf(p, "Degraded")["lastTransitionTime"].AsString(), kLater);
  EXPECT_EQ(ConditionOf(p, "Progressing")["lastTransitionTime"].AsString(), kNow);
}

TEST(ReconcileTest, ConditionsCarryTheGeneration) {
  Scene s;
  s.cluster["metadata"]["generation"] = 7;
  const Plan p = s.Run();
  for (const char* type : {"Available", "Progressing", "Degraded"}) {
    EXPECT_EQ(ConditionOf(p, type)["observedGeneration"].AsInt(), 7) << type;
  }
  EXPECT_EQ(StatusOf(p)->body["observedGeneration"].AsInt(), 7);
}

// ---------------------------------------------------------------------------
// Spec problems.

TEST(ReconcileTest, InvalidSpecTouchesNothingAndSaysWhy) {
  Scene s;
  s.SetSpec(*json::Parse(R"({"replication":{"readQuorum":5}})"));
  const Plan p = s.Run();
  for (const Action& a : p.actions) {
    EXPECT_TRUE(a.type == Type::kUpdateStatus) << Describe(a);
  }
  EXPECT_EQ(ConditionOf(p, "Degraded")["reason"].AsString(), "InvalidSpec");
  EXPECT_NE(ConditionOf(p, "Degraded")["message"].AsString().find("spec.replication.readQuorum"),
            std::string::npos);
  EXPECT_EQ(p.requeue_after_s, s.opt.requeue_busy_s);
}

TEST(ReconcileTest, PartitionsCannotChange) {
  Scene s;
  s.SetSpec(Value::Obj({{"partitions", 1024}}));
  const Plan p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Degraded")["reason"].AsString(), "PartitionsImmutable");
  // The StatefulSet keeps the partitions the ring was made with.
  EXPECT_TRUE(Find(p, Type::kApply, "StatefulSet").empty()) << Dump(p);
}

TEST(ReconcileTest, ServiceMonitorIsOptionalAndRemovedWhenTurnedOff) {
  Scene s;
  s.SetSpec(*json::Parse(R"({"metrics":{"serviceMonitor":true}})"));
  Plan p = s.Run();
  const auto sm = Find(p, Type::kApply, "ServiceMonitor");
  ASSERT_EQ(sm.size(), 1u);
  EXPECT_TRUE(sm[0]->optional);
  EXPECT_EQ(sm[0]->body["apiVersion"].AsString(), "monitoring.coreos.com/v1");
  // The dashboards and alerts select and group by dynamo_cluster and instance.
  const auto& endpoints = sm[0]->body.At({"spec", "endpoints"}).AsArray();
  ASSERT_EQ(endpoints.size(), 1u);
  const auto& relabel = endpoints[0]["relabelings"].AsArray();
  ASSERT_EQ(relabel.size(), 2u);
  EXPECT_EQ(relabel[0]["targetLabel"].AsString(), "dynamo_cluster");
  EXPECT_EQ(relabel[0]["sourceLabels"].AsArray().at(0).AsString(),
            "__meta_kubernetes_pod_label_app_kubernetes_io_instance");
  EXPECT_EQ(relabel[1]["targetLabel"].AsString(), "instance");

  s.obs.service_monitor = sm[0]->body;
  s.SetSpec(*json::Parse(R"({"metrics":{"serviceMonitor":false}})"));
  p = s.Run();
  EXPECT_EQ(Targets(p, Type::kDelete), std::vector<std::string>{"dyn"});
}

TEST(ReconcileTest, ServiceMonitorThatCannotBeManagedIsReportedOnceWithoutHurry) {
  for (const ServiceMonitorAccess access :
       {ServiceMonitorAccess::kForbidden, ServiceMonitorAccess::kNotInstalled}) {
    Scene s;
    s.SetSpec(*json::Parse(R"({"metrics":{"serviceMonitor":true}})"));
    s.obs.service_monitors = access;
    Plan p = s.Run();
    EXPECT_TRUE(Find(p, Type::kApply, "ServiceMonitor").empty()) << Dump(p);
    EXPECT_EQ(ConditionOf(p, "Degraded")["status"].AsString(), "True");
    EXPECT_EQ(ConditionOf(p, "Degraded")["reason"].AsString(), "ServiceMonitorUnavailable");
    EXPECT_NE(ConditionOf(p, "Degraded")["message"].AsString().find(
                  access == ServiceMonitorAccess::kForbidden ? "rbac.manageServiceMonitors"
                                                             : "not installed"),
              std::string::npos);
    EXPECT_TRUE(HasEvent(p, "ServiceMonitorUnavailable"));
    // Nothing a re-check can fix: the idle pace, not the busy one.
    EXPECT_EQ(p.requeue_after_s, s.opt.requeue_idle_s);
    // Once reported, neither the Event nor the status is written again.
    s.cluster["status"] = StatusOf(p)->body;
    s.opt.now = kLater;
    p = s.Run();
    EXPECT_TRUE(p.actions.empty()) << Dump(p);
    // A real problem next to it still gets the busy pace.
    s.node(1) = Unreachable();
    s.obs.ring->push_back({"dyn-1", NodeState::kNormal, false});
    p = s.Run();
    EXPECT_EQ(p.requeue_after_s, s.opt.requeue_busy_s);
    EXPECT_FALSE(HasEvent(p, "ServiceMonitorUnavailable"));
  }
  // Without a ServiceMonitor in the spec there is nothing to say.
  Scene s;
  s.obs.service_monitors = ServiceMonitorAccess::kForbidden;
  EXPECT_EQ(ConditionOf(s.Run(), "Degraded")["status"].AsString(), "False");
}

TEST(ReconcileTest, ReplicationFactorCannotChange) {
  Scene s;
  s.SetSpec(*json::Parse(R"({"replication":{"factor":2,"readQuorum":1,"writeQuorum":1}})"));
  Plan p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Degraded")["reason"].AsString(), "ReplicationFactorImmutable");
  EXPECT_NE(ConditionOf(p, "Degraded")["message"].AsString().find("created with 3"),
            std::string::npos);
  EXPECT_TRUE(HasEvent(p, "ReplicationFactorImmutable"));
  // No pod is rolled: the StatefulSet keeps --replicas=3 and its quorums.
  EXPECT_TRUE(Find(p, Type::kApply, "StatefulSet").empty()) << Dump(p);
  s.cluster["status"] = StatusOf(p)->body;
  p = s.Run();
  EXPECT_FALSE(HasEvent(p, "ReplicationFactorImmutable")) << Dump(p);

  // Other changes still roll out, with the ring's factor and quorums.
  s.SetSpec(
      *json::Parse(R"({"replicas":5,"replication":{"factor":5,"readQuorum":4,"writeQuorum":4}})"));
  p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Degraded")["reason"].AsString(), "ReplicationFactorImmutable");
  const auto sts = Find(p, Type::kApply, "StatefulSet");
  ASSERT_EQ(sts.size(), 1u) << Dump(p);
  const std::vector<std::string> args = Args(sts[0]->body);
  EXPECT_TRUE(Contains(args, "--replicas=3"));
  EXPECT_TRUE(Contains(args, "--read-quorum=2"));
  EXPECT_TRUE(Contains(args, "--write-quorum=2"));
  EXPECT_EQ(sts[0]->body.At({"metadata", "annotations"})[kReplicationFactorAnnotation].AsString(),
            "3");
  EXPECT_EQ(sts[0]->body.At({"spec", "replicas"}).AsInt(), 5);

  // A StatefulSet without the annotation: its node's flags say what it runs.
  Scene old;
  Value without = *old.obs.stateful_set;
  without["metadata"]["annotations"].Erase(kReplicationFactorAnnotation);
  old.obs.stateful_set = without;
  old.SetSpec(*json::Parse(R"({"replication":{"factor":2,"readQuorum":1,"writeQuorum":1}})"));
  EXPECT_EQ(ConditionOf(old.Run(), "Degraded")["reason"].AsString(), "ReplicationFactorImmutable");
  EXPECT_EQ(KeptReplicationFactor(without), 3);
}

// A StatefulSet's volume claims cannot change: a new size or class in the
// spec is reported (the CRD refuses it too, where its rules run), not ignored.
TEST(ReconcileTest, AStorageChangeIsReportedNotIgnored) {
  Scene s;  // volumes of the default 10Gi
  s.SetSpec(*json::Parse(R"({"storage":{"size":"50Gi"}})"));
  Plan p = s.Run();
  EXPECT_EQ(ConditionOf(p, "Degraded")["reason"].AsString(), "StorageFixed") << Dump(p);
  EXPECT_NE(ConditionOf(p, "Degraded")["message"].AsString().find("made with 10Gi"),
            std::string::npos);
  EXPECT_TRUE(HasEvent(p, "StorageFixed"));
  const auto sts = Find(p, Type::kApply, "StatefulSet");
  if (!sts.empty()) {
    EXPECT_EQ(sts[0]->body.At({"spec", "volumeClaimTemplates"})
                  .AsArray()
                  .at(0)
                  .At({"spec", "resources", "requests", "storage"})
                  .AsString(),
              "10Gi");
  }
  // The same size written another way is no change.
  s.SetSpec(*json::Parse(R"({"storage":{"size":"10240Mi"}})"));
  EXPECT_NE(ConditionOf(s.Run(), "Degraded")["reason"].AsString(), "StorageFixed");
  s.SetSpec(*json::Parse(R"({"storage":{"size":"10Gi","storageClassName":"fast"}})"));
  EXPECT_EQ(ConditionOf(s.Run(), "Degraded")["reason"].AsString(), "StorageFixed");
}

TEST(ReconcileTest, ReplicationFactorOfTheRingDecidesScaleDownAndAvailability) {
  // The spec asks for factor 2 (refused); the ring keeps 3: leaving one of 3
  // nodes would leave fewer than 3.
  Scene s;
  s.SetSpec(
      *json::Parse(R"({"replicas":2,"replication":{"factor":2,"readQuorum":1,"writeQuorum":1}})"));
  const Plan p = s.Run();
  EXPECT_TRUE(Find(p, Type::kLeave).empty()) << Dump(p);
  EXPECT_TRUE(HasEvent(p, "ScaleDownRefused"));
  EXPECT_NE(ConditionOf(p, "Degraded")["message"].AsString().find("fewer than the 3 replicas"),
            std::string::npos)
      << ConditionOf(p, "Degraded").Pretty();
}

TEST(ReconcileTest, NodeLabelsLineUpWithTheChartsSelectors) {
  Scene s;
  s.obs = Observed{};
  s.SetSpec(*json::Parse(R"({"metrics":{"serviceMonitor":true}})"));
  const Plan p = s.Run();
  const Value node_labels = Value::Obj({{"app.kubernetes.io/name", "dynamo"},
                                        {"app.kubernetes.io/instance", "dyn"},
                                        {"app.kubernetes.io/component", "node"}});
  // Every object the cluster owns carries name, instance and component=node.
  for (const Action* a : Find(p, Type::kApply)) {
    EXPECT_TRUE(json::IsSubset(node_labels, a->body.At({"metadata", "labels"})))
        << a->ref.kind << " " << a->body.At({"metadata", "labels"}).Dump();
  }
  const Value& sts = Find(p, Type::kApply, "StatefulSet").front()->body;
  const Value& pod_labels = sts.At({"spec", "template", "metadata", "labels"});
  EXPECT_TRUE(json::IsSubset(node_labels, pod_labels)) << pod_labels.Dump();
  // Every selector selects the pods, and includes component=node.
  EXPECT_EQ(sts.At({"spec", "selector", "matchLabels"}), node_labels);
  for (const Action* svc : Find(p, Type::kApply, "Service")) {
    EXPECT_EQ(svc->body.At({"spec", "selector"}), node_labels) << svc->ref.name;
  }
  EXPECT_EQ(Find(p, Type::kApply, "PodDisruptionBudget")
                .front()
                ->body.At({"spec", "selector", "matchLabels"}),
            node_labels);
  EXPECT_EQ(
      Find(p, Type::kApply, "ServiceMonitor").front()->body.At({"spec", "selector", "matchLabels"}),
      node_labels);
  // The operator's own pods (the chart's Deployment) match none of them, nor
  // what the operator lists and watches.
  EXPECT_EQ(OwnedObjectsSelector(),
            "app.kubernetes.io/managed-by=dynamo-operator,app.kubernetes.io/name=dynamo");
  const Value operator_pod = Value::Obj({{"app.kubernetes.io/name", "dynamo-operator"},
                                         {"app.kubernetes.io/instance", "dyn"},
                                         {"app.kubernetes.io/component", "operator"},
                                         {"app.kubernetes.io/managed-by", "dynamo-operator"}});
  EXPECT_FALSE(json::IsSubset(node_labels, operator_pod));
}

TEST(ReconcileTest, SelectorOfAnExistingStatefulSetIsKept) {
  // A StatefulSet's selector is immutable: one made before component=node
  // was added keeps its selector (the pods get the new label all the same).
  Scene s;
  Value sts = *s.obs.stateful_set;
  sts["spec"]["selector"]["matchLabels"].Erase("app.kubernetes.io/component");
  s.obs.stateful_set = sts;
  const Value desired = StatefulSet(s.c, 3, s.obs.stateful_set);
  EXPECT_EQ(desired.At({"spec", "selector"}), sts.At({"spec", "selector"}));
  EXPECT_EQ(desired.At({"spec", "template", "metadata", "labels"})["app.kubernetes.io/component"]
                .AsString(),
            "node");
  EXPECT_TRUE(Find(s.Run(), Type::kApply, "StatefulSet").empty());
}

TEST(ReconcileTest, NodeAnsweringWithoutAStateIsUnknown) {
  Scene s;
  s.node(2).state = NodeState::kUnknown;
  const Plan p = s.Run();
  EXPECT_EQ(StatusOf(p)->body["members"].AsArray()[2]["state"].AsString(), "unknown");
}

// ---------------------------------------------------------------------------
// Deletion.

TEST(ReconcileTest, DeletionWithRetainKeepsClaimsAndDropsTheFinalizer) {
  Scene s;
  s.cluster["metadata"]["deletionTimestamp"] = kNow;
  s.cluster["metadata"]["finalizers"] = Value::Arr({"other.io/x", kFinalizer});
  const Plan p = s.Run();
  EXPECT_TRUE(Find(p, Type::kDelete).empty()) << Dump(p);
  EXPECT_TRUE(HasEvent(p, "VolumesRetained"));
  const auto patch = Find(p, Type::kPatch, kKind);
  ASSERT_EQ(patch.size(), 1u);
  EXPECT_EQ(patch[0]->body.At({"metadata", "finalizers"}), Value::Arr({"other.io/x"}));
  EXPECT_EQ(patch[0]->body.At({"metadata", "resourceVersion"}).AsString(), "10");
  EXPECT_TRUE(Find(p, Type::kLeave).empty());
  EXPECT_TRUE(Find(p, Type::kUpdateStatus).empty());
}

TEST(ReconcileTest, DeletionWithDeleteRemovesClaimsBeforeTheFinalizer) {
  Scene s(*json::Parse(R"({"storage":{"deletePolicy":"Delete"}})"));
  s.cluster["metadata"]["deletionTimestamp"] = kNow;
  Plan p = s.Run();
  EXPECT_EQ(Targets(p, Type::kDelete),
            (std::vector<std::string>{"dyn", "data-dyn-0", "data-dyn-1", "data-dyn-2"}))
      << Dump(p);
  EXPECT_EQ(Find(p, Type::kDelete).front()->ref.kind, "StatefulSet");
  EXPECT_TRUE(Find(p, Type::kPatch).empty());  // finalizer stays until they are gone
  EXPECT_GT(p.requeue_after_s, 0);

  // Claims being deleted are not deleted again; the finalizer waits.
  for (Value& pvc : s.obs.pvcs) pvc["metadata"]["deletionTimestamp"] = kNow;
  Value sts = *s.obs.stateful_set;
  sts["metadata"]["deletionTimestamp"] = kNow;
  s.obs.stateful_set = sts;
  p = s.Run();
  EXPECT_TRUE(Find(p, Type::kDelete).empty());
  EXPECT_TRUE(Find(p, Type::kPatch).empty());

  s.obs.pvcs.clear();
  p = s.Run();
  const auto patch = Find(p, Type::kPatch, kKind);
  ASSERT_EQ(patch.size(), 1u) << Dump(p);
  EXPECT_EQ(patch[0]->body.At({"metadata", "finalizers"}), Value::Arr());
  EXPECT_TRUE(HasEvent(p, "VolumesDeleted"));
}

TEST(ReconcileTest, DeletionWithoutOurFinalizerDoesNothing) {
  Scene s;
  s.cluster["metadata"]["deletionTimestamp"] = kNow;
  s.cluster["metadata"]["finalizers"] = Value::Arr();
  EXPECT_TRUE(s.Run().actions.empty());
}

TEST(ReconcileTest, DeletionWorksEvenWithAnInvalidSpec) {
  Scene s(*json::Parse(R"({"storage":{"deletePolicy":"Delete"}})"));
  s.cluster["spec"]["replicas"] = -1;
  s.cluster["metadata"]["deletionTimestamp"] = kNow;
  s.obs.pvcs.clear();
  const Plan p = s.Run();
  EXPECT_EQ(Find(p, Type::kPatch, kKind).size(), 1u) << Dump(p);
}

// ---------------------------------------------------------------------------
// Whole scale-up / scale-down runs against a simulated cluster, checking the
// safety rules at every step.

struct SimNode {
  NodeState state = NodeState::kStandby;
  uint64_t keys = 0;
  uint32_t vnodes = 64;
  int leave_steps = 0;  // steps of handoff left once leaving
  bool up = true;
};

class World {
 public:
  explicit World(int replicas) : cluster_(MakeCluster(Value::Obj({{"replicas", replicas}}))) {}

  void SetReplicas(int r) { cluster_["spec"]["replicas"] = r; }
  void SetVnodes(int v) { cluster_["spec"]["virtualNodes"] = v; }
  void Crash(int ordinal, bool down) { nodes_[ordinal].up = !down; }

  // One reconcile, its actions carried out, then the world moves on.
  Plan Step() {
    const Cluster c = Parsed(cluster_);
    Observed obs = Observe(c);
    Options opt;
    opt.now = Cat("2025-01-01T00:00:", steps_ % 60, "Z");
    const Plan p = Reconcile(cluster_, obs, opt);
    for (const Action& a : p.actions) Execute(c, obs, a);
    Advance(c);
    ++steps_;
    return p;
  }
  // Steps until nothing is in progress; returns the steps taken.
  int Settle(int steps_max = 60) {
    for (int i = 0; i < steps_max; ++i) {
      Step();
      const Value& prog = FindCondition(cluster_["status"], "Progressing");
      const Value& avail = FindCondition(cluster_["status"], "Available");
      if (prog["status"].AsString() == "False" && avail["status"].AsString() == "True") {
        return i + 1;
      }
    }
    ADD_FAILURE() << "did not settle:\n" << cluster_["status"].Pretty();
    return steps_max;
  }

  int sts_replicas() const {
    return sts_ ? static_cast<int>(sts_->At({"spec", "replicas"}).AsInt()) : 0;
  }
  const std::map<int, SimNode>& nodes() const { return nodes_; }
  const std::set<int>& claims() const { return claims_; }
  const Value& status() const { return cluster_["status"]; }
  uint64_t total_keys() const {
    uint64_t t = 0;
    for (const auto& [i, n] : nodes_) t += n.keys;
    return t + lost_keys_;
  }
  uint64_t lost_keys() const { return lost_keys_; }
  int max_leaving_seen() const { return max_leaving_; }

 private:
  Observed Observe(const Cluster& c) {
    Observed obs;
    for (const auto& [kind, obj] : objects_) {
      if (kind == "Service/dyn-headless") obs.headless_service = obj;
      if (kind == "Service/dyn") obs.client_service = obj;
      if (kind == "ConfigMap/dyn-config") obs.config_map = obj;
      if (kind == "PodDisruptionBudget/dyn") obs.pdb = obj;
    }
    obs.stateful_set = sts_;
    for (const auto& [i, n] : nodes_) {
      obs.pods.push_back(
          MakePod(c, i, n.up && n.state != NodeState::kStandby && n.state != NodeState::kJoining));
      NodeView v;
      if (n.up) {
        v = InState(c, i, n.state);
        v.keys = n.keys;
        v.owned_partitions =
            n.state == NodeState::kNormal || n.state == NodeState::kLeaving ? 10 : 0;
        v.vnodes = n.vnodes;
        if (n.state == NodeState::kLeaving) {
          v.handoff_ranges = 1;
          v.handoff_keys_remaining = n.keys;
          if (n.keys == 0) v.owned_partitions = 0;
        }
      } else {
        v = Unreachable();
      }
      obs.nodes[PodName(c, i)] = v;
    }
    for (const int i : claims_) {
      obs.pvcs.push_back(MakeClaim(c, i, left_marks_.count(i) > 0));
    }
    std::vector<RingMemberView> ring;
    bool any = false;
    for (const auto& [i, n] : nodes_) {
      if (n.state == NodeState::kNormal || n.state == NodeState::kLeaving) {
        ring.push_back({PodName(c, i), n.state, n.up});
        any = any || (n.up && n.state == NodeState::kNormal);
      }
    }
    if (any) obs.ring = ring;
    return obs;
  }

  void Execute(const Cluster& c, const Observed& obs, const Action& a) {
    switch (a.type) {
      case Type::kApply: {
        if (a.ref.kind == "StatefulSet") {
          const int next = static_cast<int>(a.body.At({"spec", "replicas"}).AsInt());
          const int before = sts_replicas();
          // Safety: a shrink removes only a node that said LEFT with nothing.
          for (int i = next; i < before; ++i) {
            const NodeView& v = obs.nodes.at(PodName(c, i));
            const bool never_joined = v.reachable && v.state == NodeState::kStandby && v.Empty();
            EXPECT_TRUE(v.reachable && (v.state == NodeState::kLeft || never_joined) && v.Empty())
                << "removed " << PodName(c, i) << " in state " << NodeStateName(v.state);
          }
          EXPECT_LE(before - next, 1) << "more than one node removed at once";
          Value sts = a.body;
          sts["status"] = Value::Obj({{"observedGeneration", 0}});
          sts_ = sts;
        } else {
          objects_[Cat(a.ref.kind, "/", a.ref.name)] = a.body;
        }
        break;
      }
      case Type::kPatch:
        if (a.ref.kind == "PersistentVolumeClaim") {
          const int i = OrdinalOf(c, a.ref.name, "data-");
          if (a.body.At({"metadata", "annotations"})[kLeftAnnotation].is_null()) {
            left_marks_.erase(i);
          } else {
            left_marks_.insert(i);
          }
        } else if (a.ref.kind == kKind) {
          cluster_["metadata"]["finalizers"] = a.body.At({"metadata", "finalizers"});
        }
        break;
      case Type::kDelete:
        if (a.ref.kind == "PersistentVolumeClaim") {
          const int i = OrdinalOf(c, a.ref.name, "data-");
          EXPECT_TRUE(left_marks_.count(i)) << "deleted an unmarked claim " << a.ref.name;
          EXPECT_EQ(nodes_.count(i), 0u) << "deleted the claim of a running pod";
          claims_.erase(i);
        }
        break;
      case Type::kJoin: {
        SimNode& n = nodes_.at(OrdinalOf(c, a.ref.name));
        if (!n.up) break;
        if (n.state == NodeState::kStandby || n.state == NodeState::kLeft) {
          n.state = NodeState::kJoining;
        }
        break;
      }
      case Type::kLeave: {
        SimNode& n = nodes_.at(OrdinalOf(c, a.ref.name));
        if (!n.up) break;
        if (n.state == NodeState::kNormal) {
          n.state = NodeState::kLeaving;
          n.leave_steps = 3;
        }
        break;
      }
      case Type::kSetVirtualNodes:
        nodes_.at(OrdinalOf(c, a.ref.name)).vnodes = a.vnodes;
        break;
      case Type::kUpdateStatus:
        cluster_["status"] = a.body;
        CheckConditionsTellTheTruth(c, obs, a.body);
        break;
      case Type::kEvent:
        break;
    }
  }

  // Available=True must mean every ring member answered NORMAL or LEAVING
  // and ready; Degraded=False must mean no ring member is down.
  void CheckConditionsTellTheTruth(const Cluster& c, const Observed& obs, const Value& status) {
    const bool available = FindCondition(status, "Available")["status"].AsString() == "True";
    const bool degraded = FindCondition(status, "Degraded")["status"].AsString() == "True";
    int members = 0;
    bool all_up = true;
    for (const auto& [i, n] : nodes_) {
      if (n.state != NodeState::kNormal && n.state != NodeState::kLeaving) continue;
      ++members;
      const NodeView& v = obs.nodes.at(PodName(c, i));
      all_up = all_up && v.reachable;
    }
    if (available) {
      EXPECT_TRUE(all_up) << status.Pretty();
      EXPECT_GE(members, c.spec.replication.factor);
    }
    if (!all_up) {
      EXPECT_TRUE(degraded) << status.Pretty();
    }
    int leaving = 0;
    for (const auto& [i, n] : nodes_) leaving += n.state == NodeState::kLeaving;
    max_leaving_ = std::max(max_leaving_, leaving);
  }

  // The StatefulSet controller and the nodes: pods follow replicas (new pods
  // start STANDBY, removed pods' nodes vanish), joins complete, leaves hand
  // their keys to the others and end LEFT.
  void Advance(const Cluster& c) {
    if (sts_) {
      const int r = sts_replicas();
      for (int i = 0; i < r; ++i) {
        if (!nodes_.count(i)) {
          nodes_[i] = SimNode{};
          nodes_[i].vnodes = static_cast<uint32_t>(c.spec.virtual_nodes);
          claims_.insert(i);
        }
      }
      for (auto it = nodes_.begin(); it != nodes_.end();) {
        if (it->first >= r) {
          lost_keys_ += it->second.keys;  // must stay 0: only empty nodes go
          it = nodes_.erase(it);
        } else {
          ++it;
        }
      }
      (*sts_)["status"] = Value::Obj({{"observedGeneration", 0},
                                      {"replicas", r},
                                      {"updatedReplicas", r},
                                      {"readyReplicas", r}});
    }
    bool any_normal = false;
    for (auto& [i, n] : nodes_) any_normal |= n.state == NodeState::kNormal;
    for (auto& [i, n] : nodes_) {
      if (!n.up) continue;
      if (n.state == NodeState::kJoining && (any_normal || i == 0)) {
        n.state = NodeState::kNormal;
        n.keys += 50;  // its share arrives by handoff
      } else if (n.state == NodeState::kLeaving) {
        if (--n.leave_steps <= 0) {
          // Hand everything to the others (which must be up: the reconciler
          // checked that before the leave started).
          for (auto& [j, other] : nodes_) {
            if (j != i && other.state == NodeState::kNormal) {
              other.keys += n.keys;
              n.keys = 0;
              break;
            }
          }
          if (n.keys == 0) n.state = NodeState::kLeft;
        }
      }
    }
  }

  Value cluster_;
  std::map<std::string, Value> objects_;
  std::optional<Value> sts_;
  std::map<int, SimNode> nodes_;
  std::set<int> claims_;
  std::set<int> left_marks_;
  uint64_t lost_keys_ = 0;
  int steps_ = 0;
  int max_leaving_ = 0;
};

TEST(ReconcileScenarioTest, CreateScaleUpScaleDownChangeVnodes) {
  World w(3);
  w.Settle();
  ASSERT_EQ(w.nodes().size(), 3u);
  for (const auto& [i, n] : w.nodes()) EXPECT_EQ(n.state, NodeState::kNormal) << i;

  w.SetReplicas(5);
  w.Settle();
  EXPECT_EQ(w.sts_replicas(), 5);
  for (const auto& [i, n] : w.nodes()) EXPECT_EQ(n.state, NodeState::kNormal) << i;
  const uint64_t keys = w.total_keys();

  w.SetReplicas(3);
  w.Settle();
  EXPECT_EQ(w.sts_replicas(), 3);
  EXPECT_EQ(w.nodes().size(), 3u);
  EXPECT_EQ(w.lost_keys(), 0u);
  EXPECT_EQ(w.total_keys(), keys);
  EXPECT_EQ(w.max_leaving_seen(), 1);
  EXPECT_EQ(w.claims(), (std::set<int>{0, 1, 2}));  // the left nodes' claims are gone

  w.SetVnodes(100);
  w.Settle();
  for (const auto& [i, n] : w.nodes()) EXPECT_EQ(n.vnodes, 100u) << i;
  EXPECT_EQ(FindCondition(w.status(), "Degraded")["status"].AsString(), "False");
}

TEST(ReconcileScenarioTest, ScaleDownPausesWhileANodeIsDownAndResumes) {
  World w(4);
  w.Settle();
  w.SetReplicas(3);
  w.Crash(1, true);
  for (int i = 0; i < 10; ++i) w.Step();
  EXPECT_EQ(w.sts_replicas(), 4);
  EXPECT_EQ(w.nodes().at(3).state, NodeState::kNormal);  // never asked to leave
  EXPECT_EQ(FindCondition(w.status(), "Degraded")["reason"].AsString(), "MemberUnreachable");
  w.Crash(1, false);
  w.Settle();
  EXPECT_EQ(w.sts_replicas(), 3);
  EXPECT_EQ(w.lost_keys(), 0u);
}

TEST(ReconcileScenarioTest, LeavingNodeThatCrashesIsWaitedFor) {
  World w(4);
  w.Settle();
  w.SetReplicas(3);
  w.Step();  // the leave starts
  ASSERT_EQ(w.nodes().at(3).state, NodeState::kLeaving);
  w.Crash(3, true);
  for (int i = 0; i < 10; ++i) w.Step();
  EXPECT_EQ(w.sts_replicas(), 4);
  w.Crash(3, false);
  w.Settle();
  EXPECT_EQ(w.sts_replicas(), 3);
  EXPECT_EQ(w.lost_keys(), 0u);
}

TEST(ReconcileScenarioTest, UpDownUpWhileLeaving) {
  World w(3);
  w.Settle();
  w.SetReplicas(5);
  w.Settle();
  w.SetReplicas(3);
  w.Step();
  w.Step();
  w.SetReplicas(5);  // raised while dyn-4 is leaving: it finishes first
  w.Settle();
  EXPECT_EQ(w.sts_replicas(), 5);
  for (const auto& [i, n] : w.nodes()) EXPECT_EQ(n.state, NodeState::kNormal) << i;
  EXPECT_EQ(w.lost_keys(), 0u);
}

// ---------------------------------------------------------------------------
// The packaging's golden file: what the operator creates for the sample
// DynamoCluster. scripts/check-packaging.sh checks that the chart's
// ServiceMonitor, PodMonitor and NetworkPolicy select these node pods and
// Services and that none of these selectors matches the operator's pods; this
// test keeps the file equal to what the code renders.

#ifdef DYNAMO_OPERATOR_GOLDEN
TEST(PackagingGoldenTest, ObjectsAreWhatTheReconcilerRenders) {
  const char* path = DYNAMO_OPERATOR_GOLDEN;
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<Value> golden = json::Parse(text.str());
  ASSERT_TRUE(golden.ok()) << path << ": " << golden.status();
  const Value& cluster = (*golden)["cluster"];
  std::vector<std::string> problems;
  const Cluster c = ParseCluster(cluster, &problems);
  ASSERT_TRUE(problems.empty()) << problems.front();
  Value rendered = *golden;
  rendered["ownedObjectsSelector"] = OwnedObjectsSelector();
  rendered["objects"] = Value::Arr({
      HeadlessService(c),
      ClientService(c),
      SeedsConfigMap(c, PodDnsAddress(c, 0)),
      PodDisruptionBudget(c),
      ServiceMonitor(c),
      StatefulSet(c, c.spec.replicas, std::nullopt),
  });
  if (const char* update = std::getenv("DYNAMO_UPDATE_GOLDEN"); update && *update == '1') {
    std::ofstream(path) << rendered.Pretty() << "\n";
    GTEST_SKIP() << "rewrote " << path;
  }
  EXPECT_TRUE(rendered == *golden)
      << path << " is not what the reconciler renders; rewrite it with\n"
      << "  DYNAMO_UPDATE_GOLDEN=1 <build>/operator/dynamo_reconciler_test "
         "--gtest_filter=PackagingGoldenTest.*\n"
      << "and run scripts/check-packaging.sh. Rendered:\n"
      << rendered.Pretty();
}
#endif

}  // namespace
}  // namespace dynamo::reconciler
