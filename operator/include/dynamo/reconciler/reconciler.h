#pragma once

// The operator's decisions, as a pure function: from a DynamoCluster, the
// objects it owns as observed, and each pod's node admin status, compute the
// actions to take now. No I/O and no clock (the time is passed in): every rule
// is re-derived from what is observed on every call (level-triggered), so a
// crash or a lost update at any point is repaired by the next reconcile.
//
// Scaling rules, in the words of the lessons of existing operators:
//  - scale up: grow the StatefulSet, then commit the join of each new node
//    whose admin API answers (a node is not ready before it is in a ring);
//  - scale down: one node at a time from the highest ordinal; ask it to leave
//    (again on every reconcile while it is leaving), report its handoff, and
//    shrink the StatefulSet only once that node's own admin API says LEFT and
//    it owns no partitions and holds no keys or hints;
//  - a raise of replicas while a node is leaving waits for the leave to end;
//  - before a leave starts: enough nodes must remain for the replication
//    factor, every remaining node must be NORMAL and ready, and the keys
//    must fit.
//  - the partitions and the replication factor are those the ring was
//    created with (kept on the StatefulSet); a change is refused (Degraded)
//    rather than rolled out to the pods.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dynamo/json/json.h"
#include "dynamo/reconciler/cluster.h"

namespace dynamo::reconciler {

// Mirrors dynamo.v1.NodeState (the reconciler does not link the protos).
enum class NodeState { kUnknown, kStandby, kJoining, kNormal, kLeaving, kLeft };
std::string_view NodeStateName(NodeState state);  // "Normal", "Leaving", ... for messages
// The CRD's status.members[].state enum: "normal", "leaving", ...; "unknown"
// for kUnknown (the node does not answer its admin API, or gives no state).
std::string_view StatusStateName(NodeState state);

// One node's answer to Admin.Status, or why there was none.
struct NodeView {
  bool reachable = false;
  std::string error;  // when unreachable
  std::string node_id;
  std::string address;  // what the node advertises to its peers
  std::string zone;     // the failure domain it places replicas by ("": none)
  NodeState state = NodeState::kUnknown;
  bool ready = false;
  uint32_t owned_partitions = 0;
  uint64_t keys = 0;
  uint64_t unowned_keys = 0;
  uint64_t hint_keys = 0;  // summed over targets
  uint32_t vnodes = 0;
  uint64_t ring_version = 0;
  // Outgoing range transfers, summed.
  uint32_t handoff_ranges = 0;
  uint64_t handoff_keys_remaining = 0;
  uint64_t handoff_keys_sent = 0;
  uint64_t handoff_bytes_sent = 0;

  // Holds nothing that is not elsewhere: what makes deleting it safe.
  bool Empty() const {
    return owned_partitions == 0 && keys == 0 && unowned_keys == 0 && hint_keys == 0;
  }
};

// A member of the ring as one NORMAL node's Members call describes it.
struct RingMemberView {
  std::string node_id;
  NodeState state = NodeState::kUnknown;
  bool alive = false;
};

// Whether the operator can manage prometheus-operator ServiceMonitors.
enum class ServiceMonitorAccess {
  kAvailable,     // yes (or not known to be otherwise)
  kForbidden,     // 403: RBAC does not grant them (the chart's rbac.manageServiceMonitors)
  kNotInstalled,  // 404: the ServiceMonitor CRD is not installed
};

struct Observed {
  std::optional<json::Value> headless_service;
  std::optional<json::Value> client_service;
  std::optional<json::Value> config_map;
  std::optional<json::Value> pdb;
  std::optional<json::Value> service_monitor;
  ServiceMonitorAccess service_monitors = ServiceMonitorAccess::kAvailable;
  std::optional<json::Value> stateful_set;
  std::vector<json::Value> pods;  // the cluster's pods (by label)
  std::vector<json::Value> pvcs;  // the cluster's claims (by label)
  // Keyed by pod name. A pod without an entry was not asked (it has no
  // address yet); an entry with reachable=false did not answer.
  std::map<std::string, NodeView> nodes;
  // The ring as a reachable NORMAL node sees it; absent when none answered.
  std::optional<std::vector<RingMemberView>> ring;
  // Zone-aware clusters only: the zone label (spec.zones.topologyKey) of each
  // Kubernetes Node that runs a pod of the cluster, keyed by the Node's name
  // ("" when the Node lacks the label). A Node the operator could not read
  // is absent here and present in k8s_node_errors, with the reason.
  std::map<std::string, std::string> k8s_node_zones;
  std::map<std::string, std::string> k8s_node_errors;
};

struct Options {
  std::string now;          // RFC 3339 UTC, for lastTransitionTime
  int requeue_busy_s = 5;   // while something is in progress or wrong
  int requeue_idle_s = 30;  // when all is well: nodes are polled, not watched
  // Capacity check before a leave: the keys each remaining node would hold
  // (all keys counted, spread evenly) must not exceed this. 0: no limit.
  // The admin API reports key counts, not free bytes.
  uint64_t keys_per_node_max = 0;
  // When a node's Status gives no address, seed joins with the pod IP
  // (true) or the pod's DNS name through the headless Service (false).
  bool seed_with_pod_ip = false;
};

struct ObjectRef {
  std::string api_version;
  std::string kind;
  std::string ns;
  std::string name;
  friend bool operator==(const ObjectRef&, const ObjectRef&) = default;
};

struct Action {
  enum class Type {
    kApply,            // server-side apply of `body` (create or update)
    kPatch,            // JSON merge patch `body` on `ref`
    kDelete,           // delete `ref` (background propagation)
    kJoin,             // Admin.Join on pod `ref`, with `seed` and `zone`
    kLeave,            // Admin.Leave on pod `ref`
    kSetVirtualNodes,  // Admin.SetVirtualNodes(`vnodes`) on pod `ref`
    kUpdateStatus,     // replace the cluster's status with `body`
    kEvent,            // an Event on the cluster
  };
  Type type = Type::kApply;
  ObjectRef ref;
  json::Value body;
  // A failed optional action is reported but does not stop the plan (a
  // ServiceMonitor whose CRD is not installed).
  bool optional = false;
  std::string seed;
  std::string zone;  // kJoin: the node's zone ("": leave it as it is)
  uint32_t vnodes = 0;
  std::string event_type;  // Normal | Warning
  std::string reason;      // events: the reason; others: a short why, for logs
  std::string message;
};
std::string_view ActionTypeName(Action::Type type);
std::string Describe(const Action& action);  // one line, for logs and tests

struct Plan {
  // In order; the executor stops at the first failed (non-optional) action.
  std::vector<Action> actions;
  int requeue_after_s = 0;  // 0: only on a change
};

Plan Reconcile(const json::Value& cluster, const Observed& observed, const Options& options);

// The condition of `type` in a status, or null.
const json::Value& FindCondition(const json::Value& status, std::string_view type);

}  // namespace dynamo::reconciler
