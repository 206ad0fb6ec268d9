#include "dynamo/reconciler/reconciler.h"

#include <algorithm>
#include <utility>

#include "dynamo/base/strings.h"
#include "dynamo/reconciler/objects.h"

namespace dynamo::reconciler {
namespace {

using json::Value;

bool PodReady(const Value& pod) {
  for (const Value& cond : pod.At({"status", "conditions"}).AsArray()) {
    if (cond["type"].AsString() == "Ready") return cond["status"].AsString() == "True";
  }
  return false;
}

bool Deleting(const Value& object) {
  return !object.At({"metadata", "deletionTimestamp"}).is_null();
}

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out.append(sep);
    out.append(parts[i]);
  }
  return out;
}

struct Finding {
  std::string reason;
  std::string message;
  // Whether it makes the cluster re-checked at the busy pace. A problem that
  // only a person can fix (RBAC, a missing CRD) does not.
  bool urgent = true;
};

std::string ServiceMonitorProblem(ServiceMonitorAccess access) {
  switch (access) {
    case ServiceMonitorAccess::kForbidden:
      return "spec.metrics.serviceMonitor is true but the operator may not manage "
             "ServiceMonitors (403 Forbidden): install the chart with "
             "rbac.manageServiceMonitors=true, or scrape the nodes with the chart's own "
             "monitors";
    case ServiceMonitorAccess::kNotInstalled:
      return "spec.metrics.serviceMonitor is true but the ServiceMonitor CRD "
             "(monitoring.coreos.com/v1, prometheus-operator) is not installed";
    case ServiceMonitorAccess::kAvailable:
      break;
  }
  return "";
}

// One reconcile: reads the observation, appends actions, collects what the
// conditions will say.
class Builder {
 public:
  Builder(Cluster c, const Observed& obs, const Options& opt)
      : c_(std::move(c)), obs_(obs), opt_(opt) {
    cluster_ref_ = {kApiVersion, kKind, c_.ns, c_.name};
    for (const Value& pod : obs_.pods) {
      const int ordinal = OrdinalOf(c_, pod.At({"metadata", "name"}).AsString());
      if (ordinal >= 0) pods_[ordinal] = &pod;
    }
    factor_ = c_.spec.replication.factor;
    if (obs_.stateful_set) {
      current_ = static_cast<int>((*obs_.stateful_set).At({"spec", "replicas"}).AsInt(1));
      if (const int kept = KeptReplicationFactor(*obs_.stateful_set); kept > 0) factor_ = kept;
    }
  }

  Plan Finalize();
  Plan Run(const std::vector<std::string>& problems);

 private:
  // --- observation helpers ---
  const Value* Pod(int ordinal) const {
    const auto it = pods_.find(ordinal);
    return it == pods_.end() ? nullptr : it->second;
  }
  const NodeView* Node(int ordinal) const {
    const auto it = obs_.nodes.find(PodName(c_, ordinal));
    return it == obs_.nodes.end() ? nullptr : &it->second;
  }
  bool Reachable(int ordinal) const {
    const NodeView* n = Node(ordinal);
    return n != nullptr && n->reachable;
  }
  NodeState StateOf(int ordinal) const {
    const NodeView* n = Node(ordinal);
    return n != nullptr && n->reachable ? n->state : NodeState::kUnknown;
  }
  std::string NodeId(int ordinal) const {
    const NodeView* n = Node(ordinal);
    return n != nullptr && n->reachable && !n->node_id.empty() ? n->node_id : PodName(c_, ordinal);
  }
  // Whether the ring (as a NORMAL node sees it) names this node as a member.
  std::optional<bool> RingNames(int ordinal) const {
    if (!obs_.ring) return std::nullopt;
    const std::string id = NodeId(ordinal);
    for (const RingMemberView& m : *obs_.ring) {
      if (m.node_id == id) return m.state == NodeState::kNormal || m.state == NodeState::kLeaving;
    }
    return false;
  }
  // The pod is pending and none of its containers ever started (say, it
  // cannot be scheduled after a raise): its node never ran, so it cannot have
  // joined or stored anything. A missing pod is not known never to have run.
  bool PodNeverRan(int ordinal) const {
    const Value* pod = Pod(ordinal);
    if (pod == nullptr || (*pod).At({"status", "phase"}).AsString() != "Pending") return false;
    for (const Value& cs : (*pod).At({"status", "containerStatuses"}).AsArray()) {
      if (cs["restartCount"].AsInt() > 0 || cs["started"].AsBool() ||
          !cs.At({"state", "running"}).is_null() || !cs.At({"state", "terminated"}).is_null() ||
          !cs.At({"lastState", "terminated"}).is_null()) {
        return false;
      }
    }
    return true;
  }
  bool WasMember(int ordinal) const {
    const std::string name = PodName(c_, ordinal);
    for (const Value& m : c_.status["members"].AsArray()) {
      if (m["name"].AsString() == name) {
        const std::string& s = m["state"].AsString();
        return s == "normal" || s == "leaving";
      }
    }
    return false;
  }
  // Zone-aware clusters: the zone of the Kubernetes Node that runs the pod,
  // or nullopt (with the reason in *why) while it is not known. Without zone
  // awareness a node needs no zone: "".
  std::optional<std::string> ZoneOf(int ordinal, std::string* why) const {
    if (!c_.spec.zones.zone_aware) return std::string();
    const std::string pod_name = PodName(c_, ordinal);
    const Value* pod = Pod(ordinal);
    const std::string machine = pod ? (*pod).At({"spec", "nodeName"}).AsString() : "";
    if (machine.empty()) {
      *why = Cat(pod_name, " is not on a Kubernetes node yet");
      return std::nullopt;
    }
    if (const auto it = obs_.k8s_node_zones.find(machine); it != obs_.k8s_node_zones.end()) {
      if (!it->second.empty()) return it->second;
      *why = Cat(pod_name, " runs on Kubernetes node ", machine, ", which has no label ",
                 c_.spec.zones.topology_key);
      return std::nullopt;
    }
    const auto error = obs_.k8s_node_errors.find(machine);
    *why = Cat("Kubernetes node ", machine, " (of ", pod_name, ") could not be read: ",
               error == obs_.k8s_node_errors.end() ? std::string("not observed") : error->second);
    return std::nullopt;
  }
  std::string SeedAddress(int ordinal) const {
    const NodeView* n = Node(ordinal);
    if (n != nullptr && n->reachable && !n->address.empty()) return n->address;
    const Value* pod = Pod(ordinal);
    if (opt_.seed_with_pod_ip && pod != nullptr) {
      const std::string& ip = (*pod).At({"status", "podIP"}).AsString();
      if (!ip.empty()) return Cat(ip, ":", kGrpcPort);
    }
    return PodDnsAddress(c_, ordinal);
  }

  // --- action helpers ---
  void Event(std::string type, std::string reason, std::string message) {
    Action a;
    a.type = Action::Type::kEvent;
    a.ref = cluster_ref_;
    a.event_type = std::move(type);
    a.reason = std::move(reason);
    a.message = std::move(message);
    plan_.actions.push_back(std::move(a));
  }
  void Apply(Value desired, const std::optional<Value>& observed, bool optional = false) {
    if (observed && json::IsSubset(desired, *observed)) return;
    const std::string kind = desired["kind"].AsString();
    const std::string name = desired.At({"metadata", "name"}).AsString();
    Action a;
    a.type = Action::Type::kApply;
    a.ref = {desired["apiVersion"].AsString(), kind, c_.ns, name};
    a.optional = optional;
    a.reason = observed ? "update" : "create";
    a.body = std::move(desired);
    plan_.actions.push_back(std::move(a));
    if (!observed) Event("Normal", "Created", Cat("created ", kind, " ", name));
  }
  void Patch(ObjectRef ref, Value patch, std::string why) {
    Action a;
    a.type = Action::Type::kPatch;
    a.ref = std::move(ref);
    a.body = std::move(patch);
    a.reason = std::move(why);
    plan_.actions.push_back(std::move(a));
  }
  void Delete(ObjectRef ref, std::string why, bool optional = false) {
    Action a;
    a.type = Action::Type::kDelete;
    a.ref = std::move(ref);
    a.optional = optional;
    a.reason = std::move(why);
    plan_.actions.push_back(std::move(a));
  }
  void NodeCall(Action::Type type, int ordinal, std::string why) {
    Action a;
    a.type = type;
    a.ref = {"v1", "Pod", c_.ns, PodName(c_, ordinal)};
    a.optional = true;  // one node's failure must not stop calls to the others
    a.reason = std::move(why);
    if (type == Action::Type::kSetVirtualNodes) {
      a.vnodes = static_cast<uint32_t>(c_.spec.virtual_nodes);
    }
    plan_.actions.push_back(std::move(a));
  }
  void SetFinalizers(std::vector<std::string> finalizers, std::string why) {
    Value list = Value::Arr();
    for (std::string& f : finalizers) list.Append(std::move(f));
    Patch(cluster_ref_,
          Value::Obj({{"metadata", Value::Obj({{"finalizers", list},
                                               {"resourceVersion", c_.resource_version}})}}),
          std::move(why));
  }

  void Degraded(std::string reason, std::string message, bool urgent = true) {
    degraded_.push_back({std::move(reason), std::move(message), urgent});
  }
  // Whether the last status already reported this problem.
  bool Reported(std::string_view type, std::string_view message) const {
    const Value& cond = FindCondition(c_.status, type);
    return cond["status"].AsString() == "True" &&
           cond["message"].AsString().find(message) != std::string::npos;
  }
  void Progressing(std::string reason, std::string message) {
    progressing_.push_back({std::move(reason), std::move(message)});
  }

  // --- the rules ---
  int Scale();
  void Joins(int replicas);
  void VirtualNodes(int replicas);
  void Claims(int replicas);
  std::string Seeds() const;
  void Health(int replicas);
  void Status(int replicas);
  Value Condition(std::string_view type, bool status, const Finding& f) const;

  Cluster c_;
  const Observed& obs_;
  const Options& opt_;
  ObjectRef cluster_ref_;
  std::map<int, const Value*> pods_;
  int current_ = 0;   // the StatefulSet's replicas as observed (0: none)
  int factor_ = 0;    // the replication factor the ring runs with
  int leaving_ = -1;  // the ordinal whose leave is under way, if any
  Plan plan_;
  std::vector<Finding> degraded_;
  std::vector<Finding> progressing_;
  std::vector<Action> node_calls_;
};

Plan Builder::Finalize() {
  if (!c_.HasFinalizer()) return plan_;
  std::vector<std::string> rest;
  for (const std::string& f : c_.finalizers) {
    if (f != kFinalizer) rest.push_back(f);
  }
  if (c_.spec.storage.delete_policy == "Delete") {
    // The StatefulSet goes first: its pods hold the claims (a claim in use
    // is only deleted once its pod is gone), and it would recreate them.
    if (obs_.stateful_set && !Deleting(*obs_.stateful_set)) {
      Delete({"apps/v1", "StatefulSet", c_.ns, c_.name}, "cluster deleted, deletePolicy Delete");
    }
    std::vector<std::string> names;
    for (const Value& pvc : obs_.pvcs) {
      const std::string& name = pvc.At({"metadata", "name"}).AsString();
      names.push_back(name);
      if (!Deleting(pvc)) {
        Delete({"v1", "PersistentVolumeClaim", c_.ns, name},
               "cluster deleted, deletePolicy Delete");
      }
    }
    if (!names.empty()) {
      Event("Normal", "DeletingVolumes",
            Cat("deleting ", names.size(),
                " PersistentVolumeClaims (deletePolicy Delete): ", Join(names, ", ")));
      plan_.requeue_after_s = 2;
      return plan_;
    }
    Event("Normal", "VolumesDeleted",
          "every PersistentVolumeClaim is deleted (deletePolicy Delete)");
  } else {
    std::vector<std::string> names;
    for (const Value& pvc : obs_.pvcs) names.push_back(pvc.At({"metadata", "name"}).AsString());
    Event("Normal", "VolumesRetained",
          names.empty()
              ? std::string("no PersistentVolumeClaims to keep")
              : Cat("kept ", names.size(),
                    " PersistentVolumeClaims (deletePolicy Retain): ", Join(names, ", ")));
  }
  SetFinalizers(std::move(rest), "cleanup done");
  return plan_;
}

// Decides the StatefulSet's replicas: at most one step of a scale-down, or a
// scale-up once no leave is under way. Issues the Leave calls.
int Builder::Scale() {
  const int target = c_.spec.replicas;
  if (!obs_.stateful_set) return target;  // a new cluster: every pod at once
  const int cur = current_;
  if (cur <= 0) return target;
  const int top = cur - 1;
  const std::string top_pod = PodName(c_, top);
  const NodeView* node = Node(top);
  const NodeState state = StateOf(top);
  const bool top_leaving = state == NodeState::kLeaving || state == NodeState::kLeft;

  if (cur <= target && !top_leaving) {
    if (target > cur) {
      Progressing("ScalingUp", Cat("growing the StatefulSet from ", cur, " to ", target, " pods"));
      Event("Normal", "ScalingUp", Cat("scaling up from ", cur, " to ", target, " nodes"));
    }
    return target;
  }

  // A scale-down step on the highest ordinal (or a leave that must finish
  // before a raise of replicas can proceed).
  leaving_ = top;
  const std::string raise_waits =
      target >= cur ? Cat("; the raise to ", target, " replicas waits until it has left") : "";
  // A node that never joined has nothing to hand off: its pod goes without
  // a leave, once the ring (as a NORMAL node sees it) does not name it.
  const bool outside_ring = obs_.ring && !RingNames(top).value_or(true);
  const auto remove_unjoined = [&](const std::string& why, const std::string& short_why) {
    Event("Normal", "NodeRemoved", Cat(top_pod, " ", why, "; removing its pod"));
    Progressing("ScalingDown", Cat("removing ", top_pod, " (", short_why, ")"));
    leaving_ = -1;
    return cur - 1;
  };
  if (node == nullptr || !node->reachable) {
    // Taking back a raise whose pods never started; the status's members
    // agree that it never joined.
    if (PodNeverRan(top) && outside_ring && !WasMember(top)) {
      return remove_unjoined("never started and is not in the ring", "never started");
    }
    Progressing("ScalingDown", Cat("waiting to reach ", top_pod,
                                   " to confirm its handoff before removing it", raise_waits));
    return cur;
  }
  if (state == NodeState::kLeft) {
    if (!node->Empty()) {
      Progressing("ScalingDown", Cat(top_pod, " reports LEFT but still holds ", node->keys,
                                     " keys, ", node->hint_keys, " hints and owns ",
                                     node->owned_partitions, " partitions: waiting"));
      return cur;
    }
    if (RingNames(top).value_or(false)) {
      Progressing("ScalingDown",
                  Cat(top_pod, " reports LEFT but the ring still names it: waiting"));
      return cur;
    }
    for (const Value& pvc : obs_.pvcs) {
      const std::string& name = pvc.At({"metadata", "name"}).AsString();
      if (OrdinalOf(c_, name, "data-") != top) continue;
      if (pvc.At({"metadata", "annotations"})[kLeftAnnotation].AsString() == "true") continue;
      Patch({"v1", "PersistentVolumeClaim", c_.ns, name},
            Value::Obj({{"metadata",
                         Value::Obj({{"annotations", Value::Obj({{kLeftAnnotation, "true"}})}})}}),
            Cat(top_pod, " left the ring"));
    }
    Event("Normal", "NodeLeft",
          Cat(top_pod, " left the ring and holds no data or hints; removing its pod (", cur, " -> ",
              cur - 1, " pods)"));
    Progressing("ScalingDown", Cat("removing ", top_pod, " after its handoff", raise_waits));
    leaving_ = -1;
    return cur - 1;
  }
  if (state == NodeState::kLeaving) {
    NodeCall(Action::Type::kLeave, top, "still leaving: asked again (level-triggered)");
    Progressing("ScalingDown",
                Cat(top_pod, " is handing off its ranges: ", node->handoff_keys_remaining,
                    " keys remaining in ", node->handoff_ranges, " transfers, ",
                    node->owned_partitions, " partitions still owned", raise_waits));
    return cur;
  }

  // The leave has not started: check that it may.
  if (state == NodeState::kStandby && node->Empty() && outside_ring) {
    return remove_unjoined("never joined the ring and holds nothing", "never joined");
  }
  const int remaining = cur - 1;
  if (remaining < factor_) {
    const std::string msg =
        Cat("scale-down to ", target, " refused: ", remaining,
            " nodes would remain, fewer than the ", factor_, " replicas of every key");
    Degraded("ScaleDownRefused", msg);
    Event("Warning", "ScaleDownRefused", msg);
    leaving_ = -1;
    return cur;
  }
  std::vector<std::string> not_ready;
  uint64_t total_keys = node->keys;
  for (int i = 0; i < top; ++i) {
    const NodeView* other = Node(i);
    if (other == nullptr || !other->reachable || other->state != NodeState::kNormal ||
        !other->ready) {
      not_ready.push_back(PodName(c_, i));
    } else {
      total_keys += other->keys;
    }
  }
  if (!not_ready.empty()) {
    Progressing("ScalingDown", Cat("waiting for ", Join(not_ready, ", "),
                                   " to be NORMAL and ready before ", top_pod, " leaves"));
    leaving_ = -1;
    return cur;
  }
  if (opt_.keys_per_node_max > 0) {
    const uint64_t per_node =
        (total_keys + static_cast<uint64_t>(remaining) - 1) / static_cast<uint64_t>(remaining);
    if (per_node > opt_.keys_per_node_max) {
      const std::string msg = Cat("scale-down to ", target, " refused: the remaining ", remaining,
                                  " nodes would hold about ", per_node,
                                  " keys each, above the limit of ", opt_.keys_per_node_max);
      Degraded("ScaleDownRefused", msg);
      Event("Warning", "ScaleDownRefused", msg);
      leaving_ = -1;
      return cur;
    }
  }
  NodeCall(Action::Type::kLeave, top, "scale down");
  Event("Normal", "LeaveNode",
        Cat("asked ", top_pod, " to hand off its ranges and leave the ring (scale down from ", cur,
            " to ", target, ")"));
  Progressing("ScalingDown", Cat(top_pod, " asked to leave the ring"));
  return cur;
}

// Commits the join of every node that should be in the ring and is not.
void Builder::Joins(int replicas) {
  const int members = std::min(replicas, c_.spec.replicas);
  int normal = -1;  // a NORMAL node to seed joins with
  for (int i = 0; i < replicas; ++i) {
    if (StateOf(i) == NodeState::kNormal) {
      normal = i;
      break;
    }
  }
  std::vector<std::string> joining;
  std::vector<std::string> waiting;
  std::vector<std::string> zoneless;
  const auto join = [&](int ordinal, std::string seed, std::string zone, std::string why) {
    Action a;
    a.type = Action::Type::kJoin;
    a.ref = {"v1", "Pod", c_.ns, PodName(c_, ordinal)};
    a.optional = true;
    a.seed = std::move(seed);
    a.zone = std::move(zone);
    a.reason = std::move(why);
    plan_.actions.push_back(std::move(a));
  };
  for (int i = 0; i < members; ++i) {
    if (i == leaving_) continue;
    const Value* pod = Pod(i);
    const NodeView* node = Node(i);
    const std::string name = PodName(c_, i);
    if (pod == nullptr || node == nullptr) {
      waiting.push_back(name);
      continue;
    }
    if (!node->reachable) continue;  // reported by Health()
    std::string zone_unknown;
    const std::optional<std::string> zone = ZoneOf(i, &zone_unknown);
    // A member that has a zone keeps it while its machine's cannot be read
    // (an API server hiccup, a deleted Node): nothing to report.
    const bool has_zone = (node->state == NodeState::kNormal ||
                           node->state == NodeState::kJoining) && !node->zone.empty();
    if (!zone && !has_zone) zoneless.push_back(zone_unknown);
    switch (node->state) {
      case NodeState::kNormal:
      case NodeState::kJoining:
        if (node->state == NodeState::kJoining) joining.push_back(name);
        // In the ring, or on its way, with another zone than its machine's
        // (zone awareness turned on later, or a pod moved): its ranges move
        // as for a change of virtual nodes.
        if (zone && !zone->empty() && node->zone != *zone) {
          join(i, "", *zone, "set the zone");
          Event("Normal", "SetZone",
                Cat("told ", name, " its zone ", *zone,
                    node->zone.empty() ? std::string() : Cat(" (was ", node->zone, ")"),
                    "; the ring places replicas in distinct zones"));
        }
        break;
      case NodeState::kUnknown:
        waiting.push_back(name);
        break;
      case NodeState::kStandby:
      case NodeState::kLeft:
      case NodeState::kLeaving: {
        // A zone-aware ring places by zone from the start: a node whose
        // zone is not known yet waits (Degraded=ZoneUnknown says why).
        if (!zone) continue;
        const std::string in_zone = zone->empty() ? std::string() : Cat(" in zone ", *zone);
        // No ring yet: the lowest ordinal founds it (its only seed is itself);
        // the others wait for it to be NORMAL.
        if (normal < 0 && !(obs_.ring && !obs_.ring->empty())) {
          if (i != 0) {
            waiting.push_back(name);
            continue;
          }
          join(i, "", *zone, "found the ring");
          Event("Normal", "JoinNode", Cat("asked ", name, " to found the ring", in_zone));
        } else if (normal >= 0) {
          const std::string seed = SeedAddress(normal);
          join(i, seed, *zone, "join the ring");
          Event("Normal", "JoinNode",
                Cat("asked ", name, " to join the ring", in_zone, " (seed ", seed, ")"));
        } else {
          waiting.push_back(name);
          continue;
        }
        joining.push_back(name);
        break;
      }
    }
  }
  if (!zoneless.empty()) {
    const std::string msg =
        Cat("zone-aware placement needs each node's zone (the label ", c_.spec.zones.topology_key,
            " of its Kubernetes node); ", Join(zoneless, "; "),
            ". A node whose zone is unknown does not join the ring");
    // Only a person can label a node or grant the role: no hurry.
    Degraded("ZoneUnknown", msg, /*urgent=*/false);
    if (!Reported("Degraded", msg)) Event("Warning", "ZoneUnknown", msg);
  }
  if (!joining.empty()) Progressing("Joining", Cat(Join(joining, ", "), " joining the ring"));
  if (!waiting.empty()) {
    Progressing("WaitingForPods", Cat("waiting for ", Join(waiting, ", "), " to start"));
  }
}

void Builder::VirtualNodes(int replicas) {
  std::vector<std::string> changed;
  for (int i = 0; i < replicas; ++i) {
    if (i == leaving_) continue;
    const NodeView* node = Node(i);
    if (node == nullptr || !node->reachable) continue;
    if (node->state == NodeState::kLeft || node->state == NodeState::kLeaving) continue;
    if (node->vnodes == static_cast<uint32_t>(c_.spec.virtual_nodes)) continue;
    NodeCall(Action::Type::kSetVirtualNodes, i,
             Cat("vnodes ", node->vnodes, " -> ", c_.spec.virtual_nodes));
    Event("Normal", "SetVirtualNodes",
          Cat("set ", PodName(c_, i), "'s virtual nodes from ", node->vnodes, " to ",
              c_.spec.virtual_nodes, " (the ring rebalances with handoff)"));
    changed.push_back(PodName(c_, i));
  }
  if (!changed.empty()) {
    Progressing("Rebalancing",
                Cat("virtual nodes of ", Join(changed, ", "), " set to ", c_.spec.virtual_nodes));
  }
}

// Claims of pods that no longer exist: deleted only if their node said LEFT.
// A claim whose pod runs a node that is in the ring again loses the mark.
void Builder::Claims(int replicas) {
  for (const Value& pvc : obs_.pvcs) {
    const std::string& name = pvc.At({"metadata", "name"}).AsString();
    const int ordinal = OrdinalOf(c_, name, "data-");
    if (ordinal < 0 || Deleting(pvc)) continue;
    const bool marked = pvc.At({"metadata", "annotations"})[kLeftAnnotation].AsString() == "true";
    if (!marked) continue;
    const NodeState state = StateOf(ordinal);
    if (Pod(ordinal) != nullptr) {
      if (state == NodeState::kNormal || state == NodeState::kJoining) {
        Patch(
            {"v1", "PersistentVolumeClaim", c_.ns, name},
            Value::Obj({{"metadata",
                         Value::Obj({{"annotations", Value::Obj({{kLeftAnnotation, nullptr}})}})}}),
            "its node is in the ring again");
      }
      continue;
    }
    if (ordinal < replicas) continue;  // its pod is about to be (re)created
    Delete({"v1", "PersistentVolumeClaim", c_.ns, name}, "its node left the ring");
    Event("Normal", "DeletedVolume",
          Cat("deleted PersistentVolumeClaim ", name, ": its node left the ring with nothing"));
  }
}

std::string Builder::Seeds() const {
  // The first node founds the ring only if it is its own only seed; a second
  // seed is added once pod-1 is in the ring (pods started later get both).
  std::string seeds = PodDnsAddress(c_, 0);
  bool second = StateOf(1) == NodeState::kNormal;
  if (obs_.config_map) {
    second = second ||
             (*obs_.config_map).At({"data", "seeds"}).AsString().find(',') != std::string::npos;
  }
  if (second && c_.spec.replicas >= 2 && current_ >= 2) seeds += "," + PodDnsAddress(c_, 1);
  return seeds;
}

void Builder::Health(int replicas) {
  std::vector<std::string> unreachable;
  std::vector<std::string> starting;
  const int upto = std::max(replicas, current_);
  for (int i = 0; i < upto; ++i) {
    const NodeView* node = Node(i);
    const bool member = RingNames(i).value_or(WasMember(i));
    if (!member) {
      // Not in the ring: a node that does not answer yet is starting.
      if (i < replicas && node != nullptr && !node->reachable && i != leaving_) {
        starting.push_back(Cat(PodName(c_, i), " (", node->error, ")"));
      }
      continue;
    }
    if (Pod(i) == nullptr) {
      unreachable.push_back(Cat(PodName(c_, i), " has no pod"));
    } else if (node == nullptr) {
      unreachable.push_back(Cat(PodName(c_, i), " is not running"));
    } else if (!node->reachable) {
      unreachable.push_back(Cat(PodName(c_, i), " does not answer (", node->error, ")"));
    }
  }
  if (!unreachable.empty()) {
    Degraded("MemberUnreachable", Cat("ring members down: ", Join(unreachable, "; ")));
  }
  if (!starting.empty()) {
    Progressing("WaitingForNodes",
                Cat("nodes not answering their admin API yet: ", Join(starting, "; ")));
  }
  if (obs_.ring) {
    std::vector<std::string> strays;
    for (const RingMemberView& m : *obs_.ring) {
      if (m.state != NodeState::kNormal && m.state != NodeState::kLeaving) continue;
      const int ordinal = OrdinalOf(c_, m.node_id);
      if (ordinal < 0 || ordinal >= upto) strays.push_back(m.node_id);
    }
    if (!strays.empty()) {
      Degraded("StrayRingMember",
               Cat("the ring names nodes that are not pods of this cluster: ", Join(strays, ", ")));
    }
  }
  uint64_t unowned = 0;
  uint32_t transfers = 0;
  for (const auto& [name, node] : obs_.nodes) {
    if (!node.reachable || OrdinalOf(c_, name) < 0) continue;
    unowned += node.unowned_keys;
    transfers += node.handoff_ranges;
  }
  if (transfers > 0 || unowned > 0) {
    Progressing("Rebalancing", Cat(transfers, " range transfers in flight, ", unowned,
                                   " keys held for ranges their node no longer owns"));
  }
  if (obs_.stateful_set) {
    const Value& sts = *obs_.stateful_set;
    const int64_t generation = sts.At({"metadata", "generation"}).AsInt();
    const int64_t seen = sts.At({"status", "observedGeneration"}).AsInt();
    const int64_t updated = sts.At({"status", "updatedReplicas"}).AsInt();
    const int64_t want = sts.At({"spec", "replicas"}).AsInt();
    const std::string& cur_rev = sts.At({"status", "currentRevision"}).AsString();
    const std::string& upd_rev = sts.At({"status", "updateRevision"}).AsString();
    if (seen < generation) {
      Progressing(
          "WaitingForStatefulSet",
          Cat("StatefulSet ", c_.name, " has not acted on its generation ", generation, " yet"));
    } else if (cur_rev != upd_rev) {
      Progressing("RollingUpdate", Cat("StatefulSet ", c_.name, " is rolling out: ", updated,
                                       " of ", want, " pods updated"));
    }
  }
  std::vector<std::string> going;
  for (const auto& [ordinal, pod] : pods_) {
    if (ordinal >= replicas) going.push_back(PodName(c_, ordinal));
  }
  if (!going.empty()) {
    Progressing("ScalingDown",
                Cat("waiting for the pods of removed nodes to end: ", Join(going, ", ")));
  }
  int not_ready = 0;
  for (int i = 0; i < replicas; ++i) {
    const Value* pod = Pod(i);
    if (pod == nullptr || !PodReady(*pod)) ++not_ready;
  }
  if (not_ready > 0) {
    Progressing("WaitingForPods", Cat(not_ready, " of ", replicas, " pods not ready"));
  }
}

Value Builder::Condition(std::string_view type, bool status, const Finding& f) const {
  const std::string s = status ? "True" : "False";
  std::string since = opt_.now;
  const Value& before = FindCondition(c_.status, type);
  if (before["status"].AsString() == s && !before["lastTransitionTime"].AsString().empty()) {
    since = before["lastTransitionTime"].AsString();
  }
  return Value::Obj({{"type", type},
                     {"status", s},
                     {"reason", f.reason},
                     {"message", f.message},
                     {"lastTransitionTime", since},
                     {"observedGeneration", c_.generation}});
}

// The reason of the first urgent finding (else the first), and every message,
// urgent ones first.
Finding Merge(std::vector<Finding> findings) {
  std::stable_partition(findings.begin(), findings.end(),
                        [](const Finding& x) { return x.urgent; });
  Finding f{findings.front().reason, ""};
  std::vector<std::string> messages;
  for (const Finding& x : findings) {
    if (std::find(messages.begin(), messages.end(), x.message) == messages.end()) {
      messages.push_back(x.message);
    }
  }
  f.message = Join(messages, "; ");
  return f;
}

void Builder::Status(int replicas) {
  Value members = Value::Arr();
  Value handoffs = Value::Arr();
  int ready_members = 0;
  int pods = 0;
  int upto = std::max(replicas, current_);
  for (const auto& [ordinal, pod] : pods_) {
    if (!Deleting(*pod)) ++pods;
    upto = std::max(upto, ordinal + 1);
  }
  for (int i = 0; i < upto; ++i) {
    const std::string name = PodName(c_, i);
    const NodeView* node = Node(i);
    const Value* pod = Pod(i);
    const bool ready =
        node != nullptr && node->reachable && node->ready && pod != nullptr && PodReady(*pod);
    if (ready && node->state == NodeState::kNormal) ++ready_members;
    Value m =
        Value::Obj({{"name", name},
                    {"nodeId", NodeId(i)},
                    {"ready", ready},
                    {"ownedPartitions", node && node->reachable ? node->owned_partitions : 0u},
                    {"keys", node && node->reachable ? node->keys : uint64_t{0}}});
    // A node that was asked and did not answer is "unknown"; a pod that
    // is missing or not started yet (not asked) has no state.
    if (node != nullptr) {
      m["state"] = StatusStateName(node->reachable ? node->state : NodeState::kUnknown);
    }
    if (node != nullptr && node->reachable && !node->zone.empty()) m["zone"] = node->zone;
    members.Append(std::move(m));
    if (node != nullptr && node->reachable &&
        (node->state == NodeState::kLeaving || node->handoff_ranges > 0)) {
      handoffs.Append(Value::Obj({{"node", NodeId(i)},
                                  {"keysRemaining", node->handoff_keys_remaining},
                                  {"keysSent", node->handoff_keys_sent},
                                  {"bytesSent", node->handoff_bytes_sent},
                                  {"ranges", node->handoff_ranges}}));
    }
  }

  // Available: every ring member answers, is NORMAL (or LEAVING, still
  // serving) and ready, and there are at least N of them.
  Finding available{"MembersReady", ""};
  bool is_available = false;
  if (!obs_.ring) {
    available = {"NoRing", "no NORMAL node answered: the ring is not formed or not reachable"};
  } else {
    std::vector<std::string> bad;
    int in_ring = 0;
    for (const RingMemberView& m : *obs_.ring) {
      if (m.state != NodeState::kNormal && m.state != NodeState::kLeaving) continue;
      ++in_ring;
      const int ordinal = OrdinalOf(c_, m.node_id);
      const NodeView* node = ordinal >= 0 ? Node(ordinal) : nullptr;
      const Value* pod = ordinal >= 0 ? Pod(ordinal) : nullptr;
      if (node == nullptr || !node->reachable) {
        bad.push_back(Cat(m.node_id, " unreachable"));
      } else if (node->state != NodeState::kNormal && node->state != NodeState::kLeaving) {
        // The ring names it but the node has not seen that ring yet.
        bad.push_back(Cat(m.node_id, " is ", NodeStateName(node->state), " by its own account"));
      } else if (!node->ready || pod == nullptr || !PodReady(*pod)) {
        bad.push_back(Cat(m.node_id, " not ready"));
      }
    }
    if (in_ring < factor_) {
      available = {"TooFewMembers",
                   Cat(in_ring, " ring members, fewer than the replication factor ", factor_)};
    } else if (!bad.empty()) {
      available = {"MembersNotReady", Join(bad, ", ")};
    } else {
      is_available = true;
      available.message = Cat(in_ring, " ring members NORMAL and ready");
    }
  }
  const bool is_progressing = !progressing_.empty();
  const bool is_degraded = !degraded_.empty();
  const bool urgent =
      std::any_of(degraded_.begin(), degraded_.end(), [](const Finding& f) { return f.urgent; });
  Value conditions = Value::Arr(
      {Condition("Available", is_available, available),
       Condition("Progressing", is_progressing,
                 is_progressing ? Merge(progressing_) : Finding{"Stable", "nothing in progress"}),
       Condition("Degraded", is_degraded,
                 is_degraded ? Merge(degraded_) : Finding{"AsExpected", "no problems seen"})});
  Value status = Value::Obj({{"observedGeneration", c_.generation},
                             {"replicas", pods},
                             {"readyMembers", ready_members},
                             {"conditions", conditions},
                             {"members", members},
                             {"handoffs", handoffs}});
  if (!(status == c_.status)) {
    Action a;
    a.type = Action::Type::kUpdateStatus;
    a.ref = cluster_ref_;
    a.body = std::move(status);
    a.reason = "status";
    plan_.actions.push_back(std::move(a));
  }
  plan_.requeue_after_s =
      is_progressing || urgent || !is_available ? opt_.requeue_busy_s : opt_.requeue_idle_s;
}

Plan Builder::Run(const std::vector<std::string>& problems) {
  if (!c_.HasFinalizer()) {
    std::vector<std::string> with = c_.finalizers;
    with.push_back(kFinalizer);
    SetFinalizers(std::move(with), "add finalizer");
  }
  if (!problems.empty()) {
    Degraded("InvalidSpec", Join(problems, "; "));
    Status(current_);
    return std::move(plan_);
  }
  if (obs_.stateful_set) {
    const int kept = KeptPartitions(*obs_.stateful_set);
    if (kept > 0 && kept != c_.spec.partitions) {
      Degraded("PartitionsImmutable",
               Cat("spec.partitions is ", c_.spec.partitions, " but the ring was created with ",
                   kept, " partitions, which cannot change; keeping ", kept));
    }
    if (factor_ != c_.spec.replication.factor) {
      const std::string msg = Cat(
          "spec.replication.factor is ", c_.spec.replication.factor,
          " but the ring was created with ", factor_, ", which cannot change in place; keeping ",
          factor_, " (and readQuorum and writeQuorum as they are) until the spec says ", factor_,
          " again");
      Degraded("ReplicationFactorImmutable", msg);
      if (!Reported("Degraded", msg)) Event("Warning", "ReplicationFactorImmutable", msg);
    }
    if (const std::string msg = StorageChange(c_, *obs_.stateful_set); !msg.empty()) {
      Degraded("StorageFixed", msg);
      if (!Reported("Degraded", msg)) Event("Warning", "StorageFixed", msg);
    }
  }
  if (!obs_.stateful_set) Progressing("Creating", "creating the cluster's objects");

  // Scaling decides the StatefulSet's size and issues leave calls; its
  // actions (claim marks) must precede the StatefulSet change.
  std::vector<Action> before = std::move(plan_.actions);
  plan_.actions.clear();
  const int replicas = Scale();
  std::vector<Action> scaling = std::move(plan_.actions);
  plan_.actions = std::move(before);

  Apply(HeadlessService(c_), obs_.headless_service);
  Apply(ClientService(c_), obs_.client_service);
  Apply(SeedsConfigMap(c_, Seeds()), obs_.config_map);
  Apply(PodDisruptionBudget(c_), obs_.pdb);
  if (c_.spec.metrics.enabled && c_.spec.metrics.service_monitor) {
    if (obs_.service_monitors == ServiceMonitorAccess::kAvailable) {
      Apply(ServiceMonitor(c_), obs_.service_monitor, /*optional=*/true);
    } else {
      // Reported once (an Event when it starts), re-checked at the idle pace.
      const std::string msg = ServiceMonitorProblem(obs_.service_monitors);
      Degraded("ServiceMonitorUnavailable", msg, /*urgent=*/false);
      if (!Reported("Degraded", msg)) Event("Warning", "ServiceMonitorUnavailable", msg);
    }
  } else if (obs_.service_monitor) {
    Delete({"monitoring.coreos.com/v1", "ServiceMonitor", c_.ns, c_.name},
           "spec.metrics.serviceMonitor is off", /*optional=*/true);
  }
  // Claim marks (a Patch) first, then the StatefulSet, then node calls.
  std::vector<Action> calls;
  for (Action& a : scaling) {
    if (a.type == Action::Type::kPatch)
      plan_.actions.push_back(std::move(a));
    else
      calls.push_back(std::move(a));
  }
  Apply(StatefulSet(c_, replicas, obs_.stateful_set), obs_.stateful_set);
  for (Action& a : calls) plan_.actions.push_back(std::move(a));
  if (obs_.stateful_set) {
    Joins(replicas);
    VirtualNodes(replicas);
    Claims(replicas);
  }
  Health(replicas);
  Status(replicas);
  return std::move(plan_);
}

}  // namespace

std::string_view NodeStateName(NodeState state) {
  switch (state) {
    case NodeState::kStandby:
      return "Standby";
    case NodeState::kJoining:
      return "Joining";
    case NodeState::kNormal:
      return "Normal";
    case NodeState::kLeaving:
      return "Leaving";
    case NodeState::kLeft:
      return "Left";
    default:
      return "Unknown";
  }
}

std::string_view StatusStateName(NodeState state) {
  switch (state) {
    case NodeState::kStandby:
      return "standby";
    case NodeState::kJoining:
      return "joining";
    case NodeState::kNormal:
      return "normal";
    case NodeState::kLeaving:
      return "leaving";
    case NodeState::kLeft:
      return "left";
    default:
      return "unknown";
  }
}

std::string_view ActionTypeName(Action::Type type) {
  switch (type) {
    case Action::Type::kApply:
      return "apply";
    case Action::Type::kPatch:
      return "patch";
    case Action::Type::kDelete:
      return "delete";
    case Action::Type::kJoin:
      return "join";
    case Action::Type::kLeave:
      return "leave";
    case Action::Type::kSetVirtualNodes:
      return "set-vnodes";
    case Action::Type::kUpdateStatus:
      return "status";
    case Action::Type::kEvent:
      return "event";
  }
  return "?";
}

std::string Describe(const Action& a) {
  std::string out = Cat(ActionTypeName(a.type), " ", a.ref.kind, "/", a.ref.name);
  switch (a.type) {
    case Action::Type::kJoin:
      out += Cat(" seed=", a.seed);
      if (!a.zone.empty()) out += Cat(" zone=", a.zone);
      break;
    case Action::Type::kSetVirtualNodes:
      out += Cat(" vnodes=", a.vnodes);
      break;
    case Action::Type::kEvent:
      out += Cat(" ", a.event_type, " ", a.reason, ": ", a.message);
      break;
    default:
      if (!a.reason.empty()) out += Cat(" (", a.reason, ")");
  }
  return out;
}

const json::Value& FindCondition(const json::Value& status, std::string_view type) {
  for (const json::Value& c : status["conditions"].AsArray()) {
    if (c["type"].AsString() == type) return c;
  }
  static const json::Value* const kNull = new json::Value();
  return *kNull;
}

Plan Reconcile(const json::Value& cluster, const Observed& observed, const Options& options) {
  std::vector<std::string> problems;
  Cluster c = ParseCluster(cluster, &problems);
  const bool deleting = c.deleting;
  Builder b(std::move(c), observed, options);
  return deleting ? b.Finalize() : b.Run(problems);
}

}  // namespace dynamo::reconciler
