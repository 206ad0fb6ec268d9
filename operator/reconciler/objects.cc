#include "dynamo/reconciler/objects.h"

#include <algorithm>
#include <charconv>
#include <optional>
#include <string>

#include "dynamo/base/strings.h"

namespace dynamo::reconciler {
namespace {

using json::Value;

constexpr char kDataDir[] = "/var/lib/dynamo";
constexpr char kContainerName[] = "dynamo";

Value Metadata(const Cluster& c, const std::string& name) {
  return Value::Obj({{"name", name},
                     {"namespace", c.ns},
                     {"labels", Labels(c)},
                     {"ownerReferences", Value::Arr({OwnerReference(c)})}});
}

Value EnvFromField(const char* name, const char* path) {
  return Value::Obj(
      {{"name", name},
       {"valueFrom",
        Value::Obj({{"fieldRef", Value::Obj({{"apiVersion", "v1"}, {"fieldPath", path}})}})}});
}

Value EnvFromConfigMap(const Cluster& c, const char* name, const char* key) {
  return Value::Obj(
      {{"name", name},
       {"valueFrom", Value::Obj({{"configMapKeyRef",
                                  Value::Obj({{"name", ConfigMapName(c)}, {"key", key}})}})}});
}

Value HttpProbe(const char* path, int period_s, int failure_threshold) {
  return Value::Obj({{"httpGet", Value::Obj({{"path", path}, {"port", "metrics"}})},
                     {"periodSeconds", period_s},
                     {"failureThreshold", failure_threshold}});
}

Value SpreadConstraint(const Cluster& c, const std::string& key, bool required) {
  return Value::Obj({{"maxSkew", 1},
                     {"topologyKey", key},
                     {"whenUnsatisfiable", required ? "DoNotSchedule" : "ScheduleAnyway"},
                     {"labelSelector", Value::Obj({{"matchLabels", SelectorLabels(c)}})}});
}

int ParsePositive(const std::string& text) {
  int parsed = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
  return ec == std::errc() && end == text.data() + text.size() && parsed > 0 ? parsed : 0;
}

// The value of `--flag=` in the node container's args, or empty.
std::string ArgOf(const Value& sts, std::string_view flag) {
  for (const Value& container : sts.At({"spec", "template", "spec", "containers"}).AsArray()) {
    if (container["name"].AsString() != kContainerName) continue;
    for (const Value& arg : container["args"].AsArray()) {
      const std::string& a = arg.AsString();
      if (a.size() > flag.size() && a.compare(0, flag.size(), flag) == 0) {
        return a.substr(flag.size());
      }
    }
  }
  return "";
}

std::string FormatSeconds(double s) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), s);
  return std::string(buf, static_cast<size_t>(end - buf));
}

}  // namespace

std::string HeadlessServiceName(const Cluster& c) { return c.name + "-headless"; }
std::string ConfigMapName(const Cluster& c) { return c.name + "-config"; }
std::string PodName(const Cluster& c, int ordinal) { return Cat(c.name, "-", ordinal); }
std::string ClaimName(const Cluster& c, int ordinal) { return Cat("data-", c.name, "-", ordinal); }

int OrdinalOf(const Cluster& c, const std::string& name, std::string_view prefix) {
  const std::string head = Cat(prefix, c.name, "-");
  if (name.size() <= head.size() || name.compare(0, head.size(), head) != 0) return -1;
  int ordinal = -1;
  const char* first = name.data() + head.size();
  const char* last = name.data() + name.size();
  const auto [end, ec] = std::from_chars(first, last, ordinal);
  if (ec != std::errc() || end != last || ordinal < 0) return -1;
  return ordinal;
}

std::string PodDnsAddress(const Cluster& c, int ordinal) {
  return Cat(PodName(c, ordinal), ".", HeadlessServiceName(c), ".", c.ns, ".svc:", kGrpcPort);
}

Value Labels(const Cluster& c) {
  return Value::Obj({{kNameLabel, kNodeName},
                     {kInstanceLabel, c.name},
                     {kComponentLabel, kNodeComponent},
                     {kManagedByLabel, kManagedBy}});
}

Value SelectorLabels(const Cluster& c) {
  return Value::Obj(
      {{kNameLabel, kNodeName}, {kInstanceLabel, c.name}, {kComponentLabel, kNodeComponent}});
}

std::string OwnedObjectsSelector() {
  return Cat(kManagedByLabel, "=", kManagedBy, ",", kNameLabel, "=", kNodeName);
}

int KeptPartitions(const Value& sts) {
  const int kept =
      ParsePositive(sts.At({"metadata", "annotations"})[kPartitionsAnnotation].AsString());
  return kept > 0 ? kept : ParsePositive(ArgOf(sts, "--partitions="));
}

namespace {

// A Kubernetes quantity's value ("10Gi", "10240Mi" and "10737418240" alike),
// or nullopt if it is not one.
std::optional<long double> QuantityValue(const std::string& q) {
  size_t end = 0;
  long double number = 0;
  try {
    number = std::stold(q, &end);
  } catch (...) {
    return std::nullopt;
  }
  const std::string suffix = q.substr(end);
  static const std::pair<const char*, long double> kSuffixes[] = {
      {"", 1},          {"Ki", 0x1p10L}, {"Mi", 0x1p20L}, {"Gi", 0x1p30L}, {"Ti", 0x1p40L},
      {"Pi", 0x1p50L},  {"Ei", 0x1p60L}, {"n", 1e-9L},    {"u", 1e-6L},    {"m", 1e-3L},
      {"k", 1e3L},      {"M", 1e6L},     {"G", 1e9L},     {"T", 1e12L},    {"P", 1e15L},
      {"E", 1e18L}};
  for (const auto& [name, factor] : kSuffixes) {
    if (suffix == name) return number * factor;
  }
  return std::nullopt;  // (stold took any decimal exponent already)
}

}  // namespace

std::string StorageChange(const Cluster& c, const Value& sts) {
  const Value* claim = nullptr;
  for (const Value& t : sts.At({"spec", "volumeClaimTemplates"}).AsArray()) {
    if (t.At({"metadata", "name"}).AsString() == "data") claim = &t;
  }
  if (claim == nullptr) return "";
  const std::string& made_size = claim->At({"spec", "resources", "requests", "storage"}).AsString();
  const std::string& made_class = claim->At({"spec", "storageClassName"}).AsString();
  const std::optional<long double> made = QuantityValue(made_size);
  const std::optional<long double> wanted = QuantityValue(c.spec.storage.size);
  std::string why;
  if (made && wanted && *made != *wanted) {
    why = Cat("spec.storage.size is ", c.spec.storage.size, " but the volumes were made with ",
              made_size);
  }
  if (made_class != c.spec.storage.storage_class_name) {
    why += Cat(why.empty() ? "" : "; ", "spec.storage.storageClassName is '",
               c.spec.storage.storage_class_name, "' but the volumes were made with '", made_class,
               "'");
  }
  if (why.empty()) return "";
  return Cat(why, ": a StatefulSet's volume claims cannot change, so new pods get what the "
                  "first ones got; grow each claim data-", c.name,
             "-<n> itself where its storage class allows expansion");
}

int KeptReplicationFactor(const Value& sts) {
  const int kept =
      ParsePositive(sts.At({"metadata", "annotations"})[kReplicationFactorAnnotation].AsString());
  return kept > 0 ? kept : ParsePositive(ArgOf(sts, "--replicas="));
}

Value OwnerReference(const Cluster& c) {
  return Value::Obj({{"apiVersion", kApiVersion},
                     {"kind", kKind},
                     {"name", c.name},
                     {"uid", c.uid},
                     {"controller", true},
                     {"blockOwnerDeletion", true}});
}

Value HeadlessService(const Cluster& c) {
  // Not-ready pods must resolve too: a node gossips and joins before it is
  // ready (it is ready only once it is in a ring).
  return Value::Obj(
      {{"apiVersion", "v1"},
       {"kind", "Service"},
       {"metadata", Metadata(c, HeadlessServiceName(c))},
       {"spec", Value::Obj({{"clusterIP", "None"},
                            {"publishNotReadyAddresses", true},
                            {"selector", SelectorLabels(c)},
                            {"ports", Value::Arr({Value::Obj({{"name", "grpc"},
                                                              {"port", kGrpcPort},
                                                              {"targetPort", kGrpcPort}})})}})}});
}

Value ClientService(const Cluster& c) {
  Value ports =
      Value::Arr({Value::Obj({{"name", "grpc"}, {"port", kGrpcPort}, {"targetPort", kGrpcPort}})});
  if (c.spec.metrics.enabled) {
    ports.Append(Value::Obj(
        {{"name", "metrics"}, {"port", c.spec.metrics.port}, {"targetPort", c.spec.metrics.port}}));
  }
  return Value::Obj(
      {{"apiVersion", "v1"},
       {"kind", "Service"},
       {"metadata", Metadata(c, c.name)},
       {"spec",
        Value::Obj({{"type", "ClusterIP"}, {"selector", SelectorLabels(c)}, {"ports", ports}})}});
}

Value SeedsConfigMap(const Cluster& c, const std::string& seeds) {
  return Value::Obj(
      {{"apiVersion", "v1"},
       {"kind", "ConfigMap"},
       {"metadata", Metadata(c, ConfigMapName(c))},
       {"data", Value::Obj({{"seeds", seeds}, {"vnodes", std::to_string(c.spec.virtual_nodes)}})}});
}

Value PodDisruptionBudget(const Cluster& c) {
  return Value::Obj(
      {{"apiVersion", "policy/v1"},
       {"kind", "PodDisruptionBudget"},
       {"metadata", Metadata(c, c.name)},
       {"spec", Value::Obj({{"maxUnavailable", 1},
                            {"selector", Value::Obj({{"matchLabels", SelectorLabels(c)}})}})}});
}

Value ServiceMonitor(const Cluster& c) {
  Value selector = SelectorLabels(c);
  // The labels the chart's dashboards and alerts select and group by, as the
  // chart's own monitors relabel them: dynamo_cluster (the cluster's name)
  // and instance (the pod's).
  auto relabel = [](const char* source, const char* target) {
    return Value::Obj(
        {{"action", "replace"}, {"sourceLabels", Value::Arr({source})}, {"targetLabel", target}});
  };
  Value relabelings = Value::Arr(
      {relabel("__meta_kubernetes_pod_label_app_kubernetes_io_instance", "dynamo_cluster"),
       relabel("__meta_kubernetes_pod_name", "instance")});
  return Value::Obj(
      {{"apiVersion", "monitoring.coreos.com/v1"},
       {"kind", "ServiceMonitor"},
       {"metadata", Metadata(c, c.name)},
       {"spec",
        Value::Obj({{"selector", Value::Obj({{"matchLabels", selector}})},
                    {"endpoints", Value::Arr({Value::Obj({{"port", "metrics"},
                                                          {"path", "/metrics"},
                                                          {"interval", "15s"},
                                                          {"relabelings", relabelings}})})}})}});
}

Value StatefulSet(const Cluster& c, int replicas, const std::optional<Value>& existing) {
  const ClusterSpec& s = c.spec;
  int partitions = s.partitions;
  int factor = s.replication.factor;
  std::string read_quorum = std::to_string(s.replication.read_quorum);
  std::string write_quorum = std::to_string(s.replication.write_quorum);
  if (existing) {
    if (const int kept = KeptPartitions(*existing); kept > 0) partitions = kept;
    if (const int kept = KeptReplicationFactor(*existing); kept > 0 && kept != factor) {
      // The ring keeps its replication factor (the reconciler reports the
      // refused change). The quorums were checked against the spec's factor,
      // not this one: they stay as they are until the factor is put back.
      factor = kept;
      const std::string r = ArgOf(*existing, "--read-quorum=");
      const std::string w = ArgOf(*existing, "--write-quorum=");
      read_quorum = r.empty() ? std::to_string(std::min(s.replication.read_quorum, kept)) : r;
      write_quorum = w.empty() ? std::to_string(std::min(s.replication.write_quorum, kept)) : w;
    }
  }
  const std::string advertise =
      Cat("--advertise=$(POD_NAME).", HeadlessServiceName(c), ".$(POD_NAMESPACE).svc:", kGrpcPort);
  Value args = Value::Arr({
      "--node-id=$(POD_NAME)",
      Value(Cat("--listen=0.0.0.0:", kGrpcPort)),
      Value(advertise),
      Value(Cat("--http=0.0.0.0:", s.metrics.port)),
      Value(Cat("--data-dir=", kDataDir)),
      "--storage=rocksdb",
      Value(Cat("--durability=", s.storage.durability)),
      "--seeds=$(DYNAMO_SEEDS)",
      "--join=manual",
      Value(Cat("--replicas=", factor)),
      Value(Cat("--read-quorum=", read_quorum)),
      Value(Cat("--write-quorum=", write_quorum)),
      Value(Cat("--partitions=", partitions)),
      "--vnodes=$(DYNAMO_VNODES)",
      Value(Cat("--sla-seconds=", FormatSeconds(s.metrics.sla_seconds))),
  });
  // Each node's zone is a label of its Kubernetes node, which the downward
  // API cannot give: the operator passes it in Admin.Join instead.
  if (s.zones.zone_aware) args.Append("--zone-aware=true");
  // Only when set, so that existing clusters' pod templates stay as they were.
  if (s.storage.sync_delay_microseconds > 0) {
    args.Append(Value(Cat("--sync-delay-us=", s.storage.sync_delay_microseconds)));
  }
  Value ports = Value::Arr({Value::Obj({{"name", "grpc"}, {"containerPort", kGrpcPort}}),
                            Value::Obj({{"name", "metrics"}, {"containerPort", s.metrics.port}})});
  Value container = Value::Obj({
      {"name", kContainerName},
      {"image", s.image},
      {"args", args},
      {"env", Value::Arr({EnvFromField("POD_NAME", "metadata.name"),
                          EnvFromField("POD_NAMESPACE", "metadata.namespace"),
                          EnvFromField("POD_IP", "status.podIP"),
                          EnvFromConfigMap(c, "DYNAMO_SEEDS", "seeds"),
                          EnvFromConfigMap(c, "DYNAMO_VNODES", "vnodes")})},
      {"ports", ports},
      {"readinessProbe", HttpProbe("/readyz", 5, 3)},
      {"livenessProbe", HttpProbe("/healthz", 10, 6)},
      {"startupProbe", HttpProbe("/healthz", 5, 60)},
      {"securityContext",
       Value::Obj({{"allowPrivilegeEscalation", false},
                   {"readOnlyRootFilesystem", true},
                   {"runAsNonRoot", true},
                   {"capabilities", Value::Obj({{"drop", Value::Arr({"ALL"})}})}})},
      {"volumeMounts", Value::Arr({Value::Obj({{"name", "data"}, {"mountPath", kDataDir}}),
                                   Value::Obj({{"name", "tmp"}, {"mountPath", "/tmp"}})})},
  });
  if (!s.image_pull_policy.empty()) container["imagePullPolicy"] = s.image_pull_policy;
  if (s.resources.is_object() && s.resources.size() > 0) container["resources"] = s.resources;

  Value template_meta = Value::Obj({{"labels", Labels(c)}});
  if (s.metrics.enabled) {
    template_meta["annotations"] =
        Value::Obj({{"prometheus.io/scrape", "true"},
                    {"prometheus.io/port", std::to_string(s.metrics.port)},
                    {"prometheus.io/path", "/metrics"}});
  }
  Value pod_spec = Value::Obj({
      {"terminationGracePeriodSeconds", 60},
      {"securityContext",
       Value::Obj({{"runAsNonRoot", true},
                   {"runAsUser", kNodeUid},
                   {"runAsGroup", kNodeUid},
                   {"fsGroup", kNodeUid},
                   {"seccompProfile", Value::Obj({{"type", "RuntimeDefault"}})}})},
      {"topologySpreadConstraints",
       Value::Arr({SpreadConstraint(c, s.zones.topology_key, s.zones.zone_aware),
                   SpreadConstraint(c, "kubernetes.io/hostname", false)})},
      {"affinity",
       Value::Obj(
           {{"podAntiAffinity",
             Value::Obj({{"preferredDuringSchedulingIgnoredDuringExecution",
                          Value::Arr({Value::Obj(
                              {{"weight", 100},
                               {"podAffinityTerm",
                                Value::Obj({{"topologyKey", "kubernetes.io/hostname"},
                                            {"labelSelector",
                                             Value::Obj({{"matchLabels",
                                                          SelectorLabels(c)}})}})}})})}})}})},
      {"containers", Value::Arr({container})},
      {"volumes", Value::Arr({Value::Obj({{"name", "tmp"}, {"emptyDir", Value::Obj()}})})},
  });

  // Volume claim templates cannot change on a StatefulSet: keep what exists.
  Value claims;
  if (existing && (*existing).At({"spec", "volumeClaimTemplates"}).is_array()) {
    claims = (*existing).At({"spec", "volumeClaimTemplates"});
  } else {
    Value claim_spec = Value::Obj(
        {{"accessModes", Value::Arr({"ReadWriteOnce"})},
         {"resources", Value::Obj({{"requests", Value::Obj({{"storage", s.storage.size}})}})}});
    if (!s.storage.storage_class_name.empty()) {
      claim_spec["storageClassName"] = s.storage.storage_class_name;
    }
    claims =
        Value::Arr({Value::Obj({{"metadata", Value::Obj({{"name", "data"}, {"labels", Labels(c)}})},
                                {"spec", claim_spec}})});
  }

  // The selector cannot change on a StatefulSet either.
  Value selector = Value::Obj({{"matchLabels", SelectorLabels(c)}});
  if (existing && (*existing).At({"spec", "selector"}).is_object()) {
    selector = (*existing).At({"spec", "selector"});
  }

  Value meta = Metadata(c, c.name);
  meta["annotations"] = Value::Obj({{kPartitionsAnnotation, std::to_string(partitions)},
                                    {kReplicationFactorAnnotation, std::to_string(factor)}});
  return Value::Obj(
      {{"apiVersion", "apps/v1"},
       {"kind", "StatefulSet"},
       {"metadata", meta},
       {"spec",
        Value::Obj({{"replicas", replicas},
                    {"serviceName", HeadlessServiceName(c)},
                    // The operator orders joins and leaves itself.
                    {"podManagementPolicy", "Parallel"},
                    {"selector", selector},
                    {"updateStrategy", Value::Obj({{"type", "RollingUpdate"}})},
                    {"template", Value::Obj({{"metadata", template_meta}, {"spec", pod_spec}})},
                    {"volumeClaimTemplates", claims}})}});
}

}  // namespace dynamo::reconciler
