#include "dynamo/reconciler/cluster.h"

#include <algorithm>

#include "dynamo/base/strings.h"

namespace dynamo::reconciler {
namespace {

// Reads an optional member of `parent`: absent or null keeps the default.
class SpecReader {
 public:
  explicit SpecReader(std::vector<std::string>* problems) : problems_(problems) {}

  void Int(const json::Value& parent, std::string_view key, std::string_view path, int* out) {
    const json::Value* v = parent.Find(key);
    if (v == nullptr || v->is_null()) return;
    if (!v->is_int()) {
      problems_->push_back(Cat("spec.", path, " must be an integer"));
      return;
    }
    *out = static_cast<int>(std::clamp<int64_t>(v->AsInt(), -(int64_t{1} << 30), int64_t{1} << 30));
  }
  void Double(const json::Value& parent, std::string_view key, std::string_view path, double* out) {
    const json::Value* v = parent.Find(key);
    if (v == nullptr || v->is_null()) return;
    if (!v->is_number()) {
      problems_->push_back(Cat("spec.", path, " must be a number"));
      return;
    }
    *out = v->AsDouble();
  }
  void Bool(const json::Value& parent, std::string_view key, std::string_view path, bool* out) {
    const json::Value* v = parent.Find(key);
    if (v == nullptr || v->is_null()) return;
    if (!v->is_bool()) {
      problems_->push_back(Cat("spec.", path, " must be true or false"));
      return;
    }
    *out = v->AsBool();
  }
  void String(const json::Value& parent, std::string_view key, std::string_view path,
              std::string* out) {
    const json::Value* v = parent.Find(key);
    if (v == nullptr || v->is_null()) return;
    if (!v->is_string()) {
      problems_->push_back(Cat("spec.", path, " must be a string"));
      return;
    }
    *out = v->AsString();
  }
  const json::Value& Object(const json::Value& parent, std::string_view key,
                            std::string_view path) {
    const json::Value& v = parent[key];
    if (!v.is_null() && !v.is_object()) {
      problems_->push_back(Cat("spec.", path, " must be an object"));
    }
    return v;
  }

 private:
  std::vector<std::string>* problems_;
};

}  // namespace

bool Cluster::HasFinalizer() const {
  return std::find(finalizers.begin(), finalizers.end(), kFinalizer) != finalizers.end();
}

json::Value ReconcileInput(const json::Value& object) {
  json::Value input = object;
  input.Erase("status");
  input["metadata"].Erase("resourceVersion");
  input["metadata"].Erase("managedFields");
  return input;
}

Cluster ParseCluster(const json::Value& object, std::vector<std::string>* problems) {
  Cluster c;
  const json::Value& meta = object["metadata"];
  c.name = meta["name"].AsString();
  c.ns = meta["namespace"].AsString();
  c.uid = meta["uid"].AsString();
  c.resource_version = meta["resourceVersion"].AsString();
  c.generation = meta["generation"].AsInt();
  c.deleting = !meta["deletionTimestamp"].is_null();
  for (const json::Value& f : meta["finalizers"].AsArray()) c.finalizers.push_back(f.AsString());
  c.status = object["status"];

  std::vector<std::string> local;
  SpecReader read(&local);
  const json::Value& spec = object["spec"];
  ClusterSpec& s = c.spec;
  read.Int(spec, "replicas", "replicas", &s.replicas);
  read.String(spec, "image", "image", &s.image);
  read.String(spec, "imagePullPolicy", "imagePullPolicy", &s.image_pull_policy);
  read.Int(spec, "virtualNodes", "virtualNodes", &s.virtual_nodes);
  read.Int(spec, "partitions", "partitions", &s.partitions);
  const json::Value& repl = read.Object(spec, "replication", "replication");
  read.Int(repl, "factor", "replication.factor", &s.replication.factor);
  read.Int(repl, "readQuorum", "replication.readQuorum", &s.replication.read_quorum);
  read.Int(repl, "writeQuorum", "replication.writeQuorum", &s.replication.write_quorum);
  if (repl.is_object()) {
    // An older CRD (fields n, r, w), or a bare YAML 1.1 `n` that arrived as
    // "false": silently using the defaults instead would be wrong.
    for (const auto& [key, value] : repl.AsObject()) {
      if (key != "factor" && key != "readQuorum" && key != "writeQuorum") {
        local.push_back(Cat("spec.replication.", key,
                            " is not a field: the fields are factor, readQuorum and writeQuorum "
                            "(is the installed DynamoCluster CRD out of date?)"));
      }
    }
  }
  const json::Value& storage = read.Object(spec, "storage", "storage");
  read.String(storage, "size", "storage.size", &s.storage.size);
  read.String(storage, "storageClassName", "storage.storageClassName",
              &s.storage.storage_class_name);
  read.String(storage, "durability", "storage.durability", &s.storage.durability);
  read.Int(storage, "syncDelayMicroseconds", "storage.syncDelayMicroseconds",
           &s.storage.sync_delay_microseconds);
  read.String(storage, "deletePolicy", "storage.deletePolicy", &s.storage.delete_policy);
  const json::Value& resources = read.Object(spec, "resources", "resources");
  if (resources.is_object()) s.resources = resources;
  const json::Value& zones = read.Object(spec, "zones", "zones");
  read.String(zones, "topologyKey", "zones.topologyKey", &s.zones.topology_key);
  read.Bool(zones, "zoneAware", "zones.zoneAware", &s.zones.zone_aware);
  const json::Value& metrics = read.Object(spec, "metrics", "metrics");
  read.Bool(metrics, "enabled", "metrics.enabled", &s.metrics.enabled);
  read.Int(metrics, "port", "metrics.port", &s.metrics.port);
  read.Bool(metrics, "serviceMonitor", "metrics.serviceMonitor", &s.metrics.service_monitor);
  read.Double(metrics, "slaSeconds", "metrics.slaSeconds", &s.metrics.sla_seconds);

  if (local.empty()) local = Validate(s);
  problems->insert(problems->end(), local.begin(), local.end());
  return c;
}

std::vector<std::string> Validate(const ClusterSpec& s) {
  std::vector<std::string> p;
  if (s.replicas < 1) p.push_back(Cat("spec.replicas must be at least 1, got ", s.replicas));
  if (s.image.empty()) p.push_back("spec.image must not be empty");
  if (!s.image_pull_policy.empty() && s.image_pull_policy != "Always" &&
      s.image_pull_policy != "IfNotPresent" && s.image_pull_policy != "Never") {
    p.push_back(Cat("spec.imagePullPolicy must be Always, IfNotPresent or Never, got \"",
                    s.image_pull_policy, "\""));
  }
  if (s.virtual_nodes < 1 || s.virtual_nodes > int64_t{server::kVirtualNodesMax}) {
    p.push_back(Cat("spec.virtualNodes must be in 1..", server::kVirtualNodesMax, ", got ",
                    s.virtual_nodes));
  }
  if (s.partitions < 16 || s.partitions > int64_t{server::kPartitionsMax} ||
      (s.partitions & (s.partitions - 1)) != 0) {
    p.push_back(Cat("spec.partitions must be a power of two from 16 to ", server::kPartitionsMax,
                    ", got ", s.partitions));
  }
  const ReplicationSpec& r = s.replication;
  if (r.factor < 1 || r.factor > int64_t{server::kReplicasMax}) {
    p.push_back(
        Cat("spec.replication.factor must be in 1..", server::kReplicasMax, ", got ", r.factor));
  }
  if (r.read_quorum < 1 || r.read_quorum > r.factor) {
    p.push_back(Cat("spec.replication.readQuorum must be in 1..factor (", r.factor, "), got ",
                    r.read_quorum));
  }
  if (r.write_quorum < 1 || r.write_quorum > r.factor) {
    p.push_back(Cat("spec.replication.writeQuorum must be in 1..factor (", r.factor, "), got ",
                    r.write_quorum));
  }
  if (r.factor > s.replicas) {
    p.push_back(Cat("spec.replication.factor (", r.factor, ") must not exceed spec.replicas (",
                    s.replicas, "): every key needs factor distinct nodes"));
  }
  if (s.storage.size.empty()) p.push_back("spec.storage.size must not be empty");
  if (s.storage.durability != "durable" && s.storage.durability != "buffered") {
    p.push_back(Cat("spec.storage.durability must be durable or buffered, got \"",
                    s.storage.durability, "\""));
  }
  const int delay = s.storage.sync_delay_microseconds;
  if (delay < 0 || delay > server::kSyncDelayUsMax) {
    p.push_back(Cat("spec.storage.syncDelayMicroseconds must be in 0..", server::kSyncDelayUsMax,
                    ", got ", delay));
  } else if (!server::SyncDelayAppliesTo(s.storage.durability, delay)) {
    p.push_back(Cat("spec.storage.syncDelayMicroseconds applies to durable storage only; it is ",
                    delay, " with durability \"", s.storage.durability, "\""));
  }
  if (s.storage.delete_policy != "Retain" && s.storage.delete_policy != "Delete") {
    p.push_back(Cat("spec.storage.deletePolicy must be Retain or Delete, got \"",
                    s.storage.delete_policy, "\""));
  }
  if (s.zones.topology_key.empty()) p.push_back("spec.zones.topologyKey must not be empty");
  if (s.metrics.port < 1 || s.metrics.port > 65535 || s.metrics.port == kGrpcPort) {
    p.push_back(
        Cat("spec.metrics.port must be in 1..65535 and not ", kGrpcPort, ", got ", s.metrics.port));
  }
  if (!(s.metrics.sla_seconds > 0)) {
    p.push_back("spec.metrics.slaSeconds must be greater than 0");
  }
  return p;
}

}  // namespace dynamo::reconciler
