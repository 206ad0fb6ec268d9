#include "dynamo/operator/controller.h"

#include <cstdio>
#include <future>

#include "dynamo/base/strings.h"
#include "dynamo/k8s/clock.h"
#include "dynamo/k8s/resources.h"
#include "dynamo/reconciler/objects.h"

namespace dynamo::op {
namespace {

using json::Value;
using reconciler::Action;

using reconciler::kInstanceLabel;
using reconciler::ServiceMonitorAccess;

void Log(const std::string& line) {
  std::fprintf(stderr, "%s dynamo-operator: %s\n",
               k8s::FormatRfc3339(k8s::SystemClock().UnixMicros()).c_str(), line.c_str());
}

std::string KeyOf(std::string_view ns, std::string_view name) { return Cat(ns, "/", name); }

bool Terminating(const Value& obj) { return !obj.At({"metadata", "deletionTimestamp"}).is_null(); }

}  // namespace

Controller::Controller(k8s::Client* client, NodeAdmin* nodes, k8s::EventRecorder* events,
                       metrics::Registry* registry, ControllerOptions options)
    : client_(client), nodes_(nodes), events_(events), options_(std::move(options)) {
  if (registry != nullptr) {
    auto r = registry->AddIntCounterFamily("dynamo_operator_reconciles_total",
                                           "Reconciles of DynamoClusters by result.", {"result"});
    if (r.ok()) reconciles_ = *r;
    auto a = registry->AddIntCounterFamily("dynamo_operator_actions_total",
                                           "Actions carried out, by type and result.",
                                           {"type", "result"});
    if (a.ok()) actions_ = *a;
    (void)registry->AddCallbackGauge("dynamo_operator_leader",
                                     "1 while this replica leads and acts, else 0.",
                                     [this] { return leading_.load() ? 1.0 : 0.0; });
    (void)registry->AddCallbackGauge("dynamo_operator_queue_keys",
                                     "Cluster keys waiting in the work queue.",
                                     [this] { return static_cast<double>(queue_.waiting()); });
    (void)registry->AddCallbackCounter(
        "dynamo_operator_watch_relists_total",
        "Re-lists after a watch's resourceVersion expired (410 Gone).", [this] {
          double n = clusters_ ? clusters_->stats().gone : 0;
          for (const auto& r : owned_) n += r->stats().gone;
          return n;
        });
  }
  k8s::ReflectorOptions cluster_opts;
  cluster_opts.ns = options_.ns;
  cluster_opts.watch_timeout_s = options_.watch_timeout_s;
  clusters_ = std::make_unique<k8s::Reflector>(
      client_, k8s::DynamoClusters(), cluster_opts,
      [this](std::string_view type, const Value& obj) { OnClusterEvent(type, obj); });
  for (const k8s::ResourceType* type :
       {&k8s::StatefulSets(), &k8s::Services(), &k8s::ConfigMaps(), &k8s::PodDisruptionBudgets(),
        &k8s::PersistentVolumeClaims(), &k8s::Pods()}) {
    k8s::ReflectorOptions o;
    o.ns = options_.ns;
    // Never the operator's own pods (name=dynamo-operator).
    o.label_selector = reconciler::OwnedObjectsSelector();
    o.watch_timeout_s = options_.watch_timeout_s;
    owned_.push_back(std::make_unique<k8s::Reflector>(
        client_, *type, o, [this](std::string_view, const Value& obj) { Enqueue(obj, false); }));
  }
}

Controller::~Controller() { Stop(); }

void Controller::Start() {
  threads_.emplace_back([this] { clusters_->Run(&cancel_); });
  for (auto& r : owned_) {
    k8s::Reflector* reflector = r.get();
    threads_.emplace_back([this, reflector] { reflector->Run(&cancel_); });
  }
  for (int i = 0; i < options_.workers; ++i) threads_.emplace_back([this] { Work(); });
  // Periodic resync: nodes are polled, not watched.
  threads_.emplace_back([this] {
    while (!cancel_.SleepFor(int64_t{options_.resync_s} * 1000)) {
      for (const Value& c : clusters_->Items()) Enqueue(c, true);
    }
  });
}

void Controller::Stop() {
  cancel_.Cancel();
  queue_.ShutDown();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void Controller::SetLeading(bool leading) {
  const bool was = leading_.exchange(leading);
  if (leading && !was) {
    Log("leading: reconciling every cluster");
    for (const Value& c : clusters_->Items()) Enqueue(c, true);
  } else if (!leading && was) {
    Log("not leading: standing by");
  }
}

bool Controller::Synced() const {
  if (!clusters_->synced()) return false;
  for (const auto& r : owned_) {
    if (!r->synced()) return false;
  }
  return true;
}

void Controller::OnClusterEvent(std::string_view type, const Value& object) {
  const Value& meta = object["metadata"];
  const std::string key = KeyOf(meta["namespace"].AsString(), meta["name"].AsString());
  {
    std::lock_guard<std::mutex> lock(inputs_mu_);
    if (type == "DELETED") {
      cluster_inputs_.erase(key);
    } else {
      Value input = reconciler::ReconcileInput(object);
      auto [it, inserted] = cluster_inputs_.try_emplace(key, input);
      if (!inserted) {
        if (it->second == input) return;
        it->second = std::move(input);
      }
    }
  }
  Enqueue(object, true);
}

void Controller::Enqueue(const Value& object, bool is_cluster) {
  const Value& meta = object["metadata"];
  const std::string& ns = meta["namespace"].AsString();
  const std::string& name =
      is_cluster ? meta["name"].AsString() : meta["labels"][kInstanceLabel].AsString();
  if (name.empty()) return;
  queue_.Add(KeyOf(ns, name));
}

void Controller::Work() {
  std::string key;
  while (queue_.Get(&key)) {
    if (!leading_.load() || !Synced()) {
      queue_.Done(key);
      // Not ours to act on yet; the leader (or we, once leading) will.
      queue_.AddAfter(key, 1000);
      continue;
    }
    int requeue_s = 0;
    const bool ok = ReconcileKey(key, &requeue_s);
    if (reconciles_) reconciles_->WithLabels({ok ? "success" : "error"}).Increment();
    if (ok) {
      queue_.Forget(key);
      if (requeue_s > 0) queue_.AddAfter(key, int64_t{requeue_s} * 1000);
    } else {
      queue_.AddRateLimited(key);
    }
    queue_.Done(key);
  }
}

std::string Controller::NodeAddress(const reconciler::Cluster& c,
                                    const reconciler::Observed& observed,
                                    const std::string& pod) const {
  const int ordinal = reconciler::OrdinalOf(c, pod);
  if (!options_.pod_ip) return reconciler::PodDnsAddress(c, ordinal);
  for (const Value& p : observed.pods) {
    if (p.At({"metadata", "name"}).AsString() == pod) {
      const std::string& ip = p.At({"status", "podIP"}).AsString();
      return ip.empty() ? std::string() : Cat(ip, ":", reconciler::kGrpcPort);
    }
  }
  return "";
}

reconciler::Observed Controller::Observe(const reconciler::Cluster& c) {
  reconciler::Observed obs;
  const auto mine = [&](const Value& obj) {
    const Value& meta = obj["metadata"];
    return meta["namespace"].AsString() == c.ns &&
           meta["labels"][kInstanceLabel].AsString() == c.name;
  };
  for (const auto& r : owned_) {
    const std::string& kind = r->type().kind;
    for (Value& obj : r->Items()) {
      if (!mine(obj)) continue;
      const std::string& name = obj.At({"metadata", "name"}).AsString();
      if (kind == "StatefulSet" && name == c.name) obs.stateful_set = obj;
      if (kind == "Service" && name == reconciler::HeadlessServiceName(c))
        obs.headless_service = obj;
      if (kind == "Service" && name == c.name) obs.client_service = obj;
      if (kind == "ConfigMap" && name == reconciler::ConfigMapName(c)) obs.config_map = obj;
      if (kind == "PodDisruptionBudget" && name == c.name) obs.pdb = obj;
      if (kind == "PersistentVolumeClaim") obs.pvcs.push_back(std::move(obj));
      if (kind == "Pod" && reconciler::OrdinalOf(c, name) >= 0) obs.pods.push_back(std::move(obj));
    }
  }
  ObserveServiceMonitor(c, &obs);
  if (c.spec.zones.zone_aware) ObserveZones(c, &obs);
  // Each running pod's node, in parallel (each call has its own deadline).
  std::vector<std::pair<std::string, std::future<absl::StatusOr<reconciler::NodeView>>>> calls;
  for (const Value& pod : obs.pods) {
    if (Terminating(pod)) continue;
    const std::string& name = pod.At({"metadata", "name"}).AsString();
    if (pod.At({"status", "podIP"}).AsString().empty()) continue;  // not started: not asked
    const std::string address = NodeAddress(c, obs, name);
    if (address.empty()) continue;
    calls.emplace_back(
        name, std::async(std::launch::async, [this, address] { return nodes_->Status(address); }));
  }
  for (auto& [pod, call] : calls) {
    absl::StatusOr<reconciler::NodeView> v = call.get();
    if (v.ok()) {
      obs.nodes[pod] = *std::move(v);
    } else {
      reconciler::NodeView down;
      down.error = std::string(v.status().message());
      obs.nodes[pod] = down;
    }
  }
  for (const auto& [pod, view] : obs.nodes) {
    if (!view.reachable || view.state != reconciler::NodeState::kNormal) continue;
    absl::StatusOr<std::vector<reconciler::RingMemberView>> ring =
        nodes_->Members(NodeAddress(c, obs, pod));
    if (ring.ok()) {
      obs.ring = *std::move(ring);
      break;
    }
  }
  return obs;
}

bool Controller::NoteServiceMonitorAnswer(const absl::Status& status, bool listing) {
  ServiceMonitorAccess access = ServiceMonitorAccess::kAvailable;
  if (status.code() == absl::StatusCode::kPermissionDenied) {
    access = ServiceMonitorAccess::kForbidden;
  } else if (k8s::IsNotFound(status) && listing) {
    // A list answers 404 only when the resource type does not exist.
    access = ServiceMonitorAccess::kNotInstalled;
  } else if (!status.ok()) {
    return false;  // transient, or one object missing: no conclusion
  }
  const int64_t now = k8s::SystemClock().SteadyMs();
  std::lock_guard<std::mutex> lock(sm_mu_);
  const ServiceMonitorAccess was = sm_access_;
  sm_access_ = access;
  if (access == ServiceMonitorAccess::kAvailable) {
    if (was != access) Log("ServiceMonitors: available again; managing them");
    return false;
  }
  sm_retry_at_ms_ = now + int64_t{options_.service_monitor_retry_s} * 1000;
  if (was != access) {
    Log(Cat("ServiceMonitors: ",
            access == ServiceMonitorAccess::kForbidden
                ? "forbidden (403): the operator's role does not grant monitoring.coreos.com "
                  "servicemonitors (the chart's rbac.manageServiceMonitors)"
                : "not installed (404): no monitoring.coreos.com/v1 ServiceMonitor CRD",
            "; clusters asking for one are told so (Degraded=ServiceMonitorUnavailable); "
            "asking again in ",
            options_.service_monitor_retry_s, "s (", status.message(), ")"));
  }
  return true;
}

void Controller::ObserveServiceMonitor(const reconciler::Cluster& c, reconciler::Observed* obs) {
  {
    std::lock_guard<std::mutex> lock(sm_mu_);
    if (sm_access_ != ServiceMonitorAccess::kAvailable &&
        k8s::SystemClock().SteadyMs() < sm_retry_at_ms_) {
      obs->service_monitors = sm_access_;
      return;
    }
  }
  // A list (not a get): its 404 tells a missing CRD from a missing object.
  k8s::ListOptions opts;
  opts.field_selector = Cat("metadata.name=", c.name);
  absl::StatusOr<k8s::ListResult> list = client_->List(k8s::ServiceMonitors(), c.ns, opts);
  NoteServiceMonitorAnswer(list.status(), /*listing=*/true);
  {
    std::lock_guard<std::mutex> lock(sm_mu_);
    obs->service_monitors = sm_access_;
  }
  if (!list.ok()) return;
  for (Value& sm : list->items) {
    if (sm.At({"metadata", "name"}).AsString() == c.name) obs->service_monitor = std::move(sm);
  }
}

void Controller::ObserveZones(const reconciler::Cluster& c, reconciler::Observed* obs) {
  for (const Value& pod : obs->pods) {
    const std::string& machine = pod.At({"spec", "nodeName"}).AsString();
    if (machine.empty() || Terminating(pod) || obs->k8s_node_zones.count(machine) > 0 ||
        obs->k8s_node_errors.count(machine) > 0) {
      continue;
    }
    // A read per reconcile: a Node's labels can change, and zone-aware
    // clusters are few.
    absl::StatusOr<Value> node = client_->Get(k8s::Nodes(), "", machine);
    if (node.ok()) {
      obs->k8s_node_zones[machine] =
          node->At({"metadata", "labels"})[c.spec.zones.topology_key].AsString();
    } else {
      obs->k8s_node_errors[machine] = Cat(
          node.status().message(),
          node.status().code() == absl::StatusCode::kPermissionDenied
              ? " (the operator needs get on nodes, a ClusterRole: the chart's rbac.readNodes)"
              : "");
    }
  }
}

absl::Status Controller::Execute(const Action& a, const Value& cluster,
                                 const reconciler::Observed& observed) {
  std::vector<std::string> unused;
  const reconciler::Cluster c = reconciler::ParseCluster(cluster, &unused);
  switch (a.type) {
    case Action::Type::kApply:
    case Action::Type::kPatch:
    case Action::Type::kDelete: {
      const k8s::ResourceType* type = k8s::FindResource(a.ref.api_version, a.ref.kind);
      if (type == nullptr) {
        return absl::InternalError(Cat("no resource for ", a.ref.api_version, " ", a.ref.kind));
      }
      if (a.type == Action::Type::kApply) {
        return client_->Apply(*type, a.ref.ns, a.ref.name, a.body, reconciler::kFieldManager)
            .status();
      }
      if (a.type == Action::Type::kPatch) {
        return client_->MergePatch(*type, a.ref.ns, a.ref.name, a.body).status();
      }
      return client_->Delete(*type, a.ref.ns, a.ref.name, "Background");
    }
    case Action::Type::kJoin:
    case Action::Type::kLeave:
    case Action::Type::kSetVirtualNodes: {
      const std::string address = NodeAddress(c, observed, a.ref.name);
      if (address.empty()) return absl::UnavailableError(Cat(a.ref.name, " has no address"));
      if (a.type == Action::Type::kJoin) return nodes_->Join(address, a.seed, a.zone);
      if (a.type == Action::Type::kLeave) return nodes_->Leave(address);
      return nodes_->SetVirtualNodes(address, a.vnodes);
    }
    case Action::Type::kUpdateStatus:
      return client_
          ->Update(
              k8s::DynamoClusters(), a.ref.ns, a.ref.name,
              [&](Value& obj) {
                if (obj["status"] == a.body) return false;
                obj["status"] = a.body;
                return true;
              },
              "status")
          .status();
    case Action::Type::kEvent:
      return events_ ? events_->Record(cluster, a.event_type, a.reason, a.message)
                     : absl::OkStatus();
  }
  return absl::InternalError("unknown action");
}

bool Controller::ReconcileKey(const std::string& key, int* requeue_s) {
  *requeue_s = 0;
  const size_t slash = key.find('/');
  const std::string ns = key.substr(0, slash);
  const std::string name = key.substr(slash + 1);
  // A fresh read: the cache may lag our own last write.
  absl::StatusOr<Value> cluster = client_->Get(k8s::DynamoClusters(), ns, name);
  if (!cluster.ok()) {
    if (k8s::IsNotFound(cluster.status())) return true;  // gone: its objects are collected
    Log(Cat("reconcile ", key, ": ", cluster.status().message()));
    return false;
  }
  std::vector<std::string> unused;
  const reconciler::Cluster c = reconciler::ParseCluster(*cluster, &unused);
  const reconciler::Observed observed = Observe(c);
  reconciler::Options opt = options_.reconcile;
  opt.now = k8s::FormatRfc3339(k8s::SystemClock().UnixMicros());
  opt.seed_with_pod_ip = options_.pod_ip;
  const reconciler::Plan plan = reconciler::Reconcile(*cluster, observed, opt);
  bool ok = true;
  bool stopped = false;
  for (const Action& a : plan.actions) {
    if (stopped && a.type != Action::Type::kUpdateStatus) continue;
    const absl::Status s = Execute(a, *cluster, observed);
    const bool quiet =
        a.ref.kind == "ServiceMonitor" && NoteServiceMonitorAnswer(s, /*listing=*/false);
    if (quiet) {
      // Logged once by NoteServiceMonitorAnswer; the next reconcile reports it.
    } else if (a.type != Action::Type::kEvent && a.type != Action::Type::kUpdateStatus) {
      Log(Cat(key, ": ", reconciler::Describe(a),
              s.ok() ? "" : " FAILED: ", s.ok() ? "" : s.message()));
    } else if (!s.ok()) {
      Log(Cat(key, ": ", reconciler::Describe(a), " FAILED: ", s.message()));
    }
    if (actions_) {
      actions_->WithLabels({reconciler::ActionTypeName(a.type), s.ok() ? "success" : "error"})
          .Increment();
    }
    // An optional action's failure is logged and retried at the plan's
    // requeue; a required one's stops the plan and backs off.
    if (!s.ok() && !a.optional) {
      ok = false;
      stopped = true;
    }
  }
  *requeue_s = plan.requeue_after_s;
  return ok;
}

}  // namespace dynamo::op
