#pragma once

// The DynamoCluster custom resource (dynamo.dev/v1alpha1) as the operator
// reads it: metadata, the spec with the CRD's defaults applied, and the
// validation the CRD schema performs, repeated here because an operator must
// not trust that its CRD is the installed version. Value types only.

#include <cstdint>
#include <string>
#include <vector>

#include "dynamo/json/json.h"
#include "dynamo/server/limits.h"  // the node's bounds, which a spec must respect

namespace dynamo::reconciler {

inline constexpr char kGroup[] = "dynamo.dev";
inline constexpr char kApiVersion[] = "dynamo.dev/v1alpha1";
inline constexpr char kKind[] = "DynamoCluster";
inline constexpr char kPlural[] = "dynamoclusters";
// Held on every DynamoCluster until its volumes are dealt with per deletePolicy.
inline constexpr char kFinalizer[] = "dynamo.dev/cleanup";
inline constexpr char kFieldManager[] = "dynamo-operator";
// Set on a node's PersistentVolumeClaim once the node's own admin API said
// LEFT (owns no ranges, holds no data or hints): only such a claim is ever
// deleted while its cluster lives.
inline constexpr char kLeftAnnotation[] = "dynamo.dev/node-left";
// The ring's partition count and replication factor are fixed at creation;
// the StatefulSet keeps them in these annotations.
inline constexpr char kPartitionsAnnotation[] = "dynamo.dev/partitions";
inline constexpr char kReplicationFactorAnnotation[] = "dynamo.dev/replication-factor";

inline constexpr int kGrpcPort = 7000;

// spec.replication. The fields are not named n, r and w: YAML 1.1 (Helm,
// kubectl) reads a bare `n` as the boolean false.
struct ReplicationSpec {
  int factor = 3;        // N: copies of each key (--replicas of the node)
  int read_quorum = 2;   // R (--read-quorum)
  int write_quorum = 2;  // W (--write-quorum)
};

struct StorageSpec {
  std::string size = "10Gi";
  std::string storage_class_name;  // empty: the cluster's default class
  std::string durability = "durable";
  // --sync-delay-us: a durable node waits this long before each log sync so
  // that one fsync covers more writes; 0 (off) unless a write-heavy load asks.
  int sync_delay_microseconds = 0;
  std::string delete_policy = "Retain";
};

struct ZonesSpec {
  std::string topology_key = "topology.kubernetes.io/zone";
  bool zone_aware = false;
};

struct MetricsSpec {
  bool enabled = true;
  int port = 9100;
  bool service_monitor = false;
  double sla_seconds = 0.3;
};

struct ClusterSpec {
  int replicas = 3;
  std::string image = "dynamo:0.1.0";
  std::string image_pull_policy;  // empty: Kubernetes' default
  int virtual_nodes = 64;
  int partitions = 256;
  ReplicationSpec replication;
  StorageSpec storage;
  json::Value resources;  // core/v1 ResourceRequirements, passed through
  ZonesSpec zones;
  MetricsSpec metrics;
};

struct Cluster {
  std::string name;
  std::string ns;
  std::string uid;
  std::string resource_version;
  int64_t generation = 0;
  bool deleting = false;  // metadata.deletionTimestamp is set
  std::vector<std::string> finalizers;
  ClusterSpec spec;
  json::Value status;  // as last written

  bool HasFinalizer() const;
};

// Reads a DynamoCluster object, applying defaults. Problems with the spec
// (wrong types, values out of range) are appended to `problems`, each a
// sentence a user can act on; the returned spec then holds the defaults for
// the fields in question so that deletion still works.
Cluster ParseCluster(const json::Value& object, std::vector<std::string>* problems);

// What a reconcile of a DynamoCluster acts on: the object without its status
// and the bookkeeping the API server changes on every write. A watch event
// that leaves it unchanged (above all the operator's own status writes, whose
// node counters change on every pass under load) needs no reconcile of its
// own: the requeue pace covers the nodes.
json::Value ReconcileInput(const json::Value& object);

// Checks the rules the CRD's schema states (ranges, readQuorum and
// writeQuorum within factor, factor at most replicas, partitions a power of
// two). Empty when valid.
std::vector<std::string> Validate(const ClusterSpec& spec);

}  // namespace dynamo::reconciler
