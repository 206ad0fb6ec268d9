// dynamo-operator: runs DynamoClusters on Kubernetes. See operator/README.md.

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "dynamo/base/strings.h"
#include "dynamo/k8s/client.h"
#include "dynamo/k8s/config.h"
#include "dynamo/k8s/events.h"
#include "dynamo/k8s/leader_election.h"
#include "dynamo/metrics/http_endpoint.h"
#include "dynamo/metrics/registry.h"
#include "dynamo/operator/controller.h"
#include "dynamo/operator/node_admin.h"

namespace {

constexpr char kUsage[] =
    R"(dynamo-operator: runs DynamoClusters (dynamo.dev/v1alpha1) on Kubernetes.

Flags:
  --kubeconfig=PATH         kubeconfig to use (default: in-cluster config when
                            KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG,
                            else ~/.kube/config)
  --context=NAME            kubeconfig context (default: its current-context)
  --namespace=NS            watch one namespace (default: all namespaces)
  --leader-election         elect one active replica through a Lease
  --lease-name=NAME         the Lease (default dynamo-operator)
  --lease-namespace=NS      its namespace (default: --namespace, else the
                            pod's namespace, else default)
  --identity=ID             this candidate's name (default: hostname_pid)
  --metrics-addr=HOST:PORT  /metrics, /healthz, /readyz (default 0.0.0.0:8080;
                            "off" disables)
  --metrics-port=PORT       the same on 0.0.0.0:PORT
  --node-address=pod-dns|pod-ip
                            how to reach nodes' admin API: the pod's DNS name
                            through the headless Service (default), or its IP
  --workers=N               concurrent reconciles (default 2)
  --requeue-busy-s=S        re-check while something is in progress (default 5)
  --requeue-idle-s=S        re-check a healthy cluster (default 30)
  --scale-down-max-keys-per-node=N
                            refuse a scale-down that would leave more keys per
                            node than this (default 0: no limit)
  --admin-deadline-ms=MS    deadline of each node admin call (default 2000)
  --watch-timeout-s=S       server-side timeout of each watch (default 300)
)";

struct Flags {
  std::map<std::string, std::string> values;
  bool Has(const std::string& k) const { return values.count(k) > 0; }
  std::string Get(const std::string& k, const std::string& def = "") const {
    const auto it = values.find(k);
    return it == values.end() ? def : it->second;
  }
  int Int(const std::string& k, int def) const {
    const auto it = values.find(k);
    return it == values.end() ? def : std::atoi(it->second.c_str());
  }
};

bool ParseFlags(int argc, char** argv, Flags* flags) {
  static const char* const kKnown[] = {"kubeconfig",
                                       "context",
                                       "namespace",
                                       "leader-election",
                                       "lease-name",
                                       "lease-namespace",
                                       "identity",
                                       "metrics-addr",
                                       "metrics-port",
                                       "node-address",
                                       "workers",
                                       "requeue-busy-s",
                                       "requeue-idle-s",
                                       "scale-down-max-keys-per-node",
                                       "admin-deadline-ms",
                                       "watch-timeout-s",
                                       "help"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      std::cerr << "unexpected argument: " << a << "\n";
      return false;
    }
    a = a.substr(2);
    const size_t eq = a.find('=');
    const std::string key = a.substr(0, eq);
    bool known = false;
    for (const char* k : kKnown) known = known || key == k;
    if (!known) {
      std::cerr << "unknown flag --" << key << "\n";
      return false;
    }
    flags->values[key] = eq == std::string::npos ? "true" : a.substr(eq + 1);
  }
  return true;
}

void Log(const std::string& line) { std::fprintf(stderr, "dynamo-operator: %s\n", line.c_str()); }

}  // namespace

int main(int argc, char** argv) {
  using namespace dynamo;
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) {
    std::cerr << kUsage;
    return 2;
  }
  if (flags.Has("help")) {
    std::cout << kUsage;
    return 0;
  }
  const std::string node_address = flags.Get("node-address", "pod-dns");
  if (node_address != "pod-dns" && node_address != "pod-ip") {
    std::cerr << "--node-address must be pod-dns or pod-ip\n";
    return 2;
  }

  // Block the shutdown signals in every thread; main waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<k8s::Config> config;
  std::string kubeconfig = flags.Get("kubeconfig");
  if (kubeconfig.empty() && !k8s::GetEnv("KUBERNETES_SERVICE_HOST")) {
    kubeconfig = k8s::GetEnv("KUBECONFIG").value_or("");
    if (kubeconfig.empty()) kubeconfig = k8s::GetEnv("HOME").value_or("") + "/.kube/config";
  }
  if (kubeconfig.empty()) {
    config = k8s::InClusterConfig();
  } else {
    config = k8s::KubeconfigConfig(kubeconfig, flags.Get("context"));
  }
  if (!config.ok()) {
    Log(Cat("cannot configure the Kubernetes client: ", config.status().message()));
    return 1;
  }
  const std::string ns = flags.Get("namespace");
  Log(Cat("API server ", config->server, ", watching ",
          ns.empty() ? std::string("all namespaces") : "namespace " + ns, ", nodes by ",
          node_address));

  std::unique_ptr<k8s::Client> client = k8s::Client::FromConfig(*config);
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  // In a pod, the pod's name identifies the candidate (the Deployment passes
  // POD_NAME and POD_NAMESPACE through the downward API).
  const std::string identity =
      flags.Get("identity", k8s::GetEnv("POD_NAME").value_or(Cat(host, "_", getpid())));
  k8s::EventRecorder events(client.get(), "dynamo-operator", identity);
  op::GrpcNodeAdmin nodes(flags.Int("admin-deadline-ms", 2000));
  metrics::Registry registry;

  op::ControllerOptions options;
  options.ns = ns;
  options.pod_ip = node_address == "pod-ip";
  options.workers = std::max(1, flags.Int("workers", 2));
  options.watch_timeout_s = flags.Int("watch-timeout-s", 300);
  options.reconcile.requeue_busy_s = flags.Int("requeue-busy-s", 5);
  options.reconcile.requeue_idle_s = flags.Int("requeue-idle-s", 30);
  options.reconcile.keys_per_node_max =
      std::strtoull(flags.Get("scale-down-max-keys-per-node", "0").c_str(), nullptr, 10);
  op::Controller controller(client.get(), &nodes, &events, &registry, options);

  std::unique_ptr<metrics::HttpEndpoint> http;
  const std::string metrics_addr = flags.Has("metrics-port")
                                       ? Cat("0.0.0.0:", flags.Get("metrics-port"))
                                       : flags.Get("metrics-addr", "0.0.0.0:8080");
  if (metrics_addr != "off") {
    http = std::make_unique<metrics::HttpEndpoint>(metrics_addr, &registry,
                                                   [&controller](std::string* why) {
                                                     if (!controller.Synced()) {
                                                       *why = "caches not synced yet";
                                                       return false;
                                                     }
                                                     return true;
                                                   });
    if (absl::Status s = http->Start(); !s.ok()) {
      Log(Cat("cannot serve metrics on ", metrics_addr, ": ", s.message()));
      return 1;
    }
    Log(Cat("metrics and health at ", http->url()));
  }

  controller.Start();
  k8s::Cancellation election_cancel;
  std::thread election;
  std::unique_ptr<k8s::LeaderElector> elector;
  if (flags.Get("leader-election") == "true") {
    k8s::LeaderElectionOptions le;
    le.name = flags.Get("lease-name", "dynamo-operator");
    le.ns = flags.Get(
        "lease-namespace",
        !ns.empty() ? ns : k8s::GetEnv("POD_NAMESPACE").value_or(config->default_namespace));
    le.identity = identity;
    elector = std::make_unique<k8s::LeaderElector>(client.get(), le);
    Log(Cat("leader election on Lease ", le.ns, "/", le.name, " as ", identity));
    election = std::thread([&] {
      elector->Run(
          &election_cancel, [&] { controller.SetLeading(true); },
          [&] { controller.SetLeading(false); });
    });
  } else {
    controller.SetLeading(true);
  }

  int sig = 0;
  sigwait(&signals, &sig);
  Log(Cat("signal ", sig, ": shutting down"));
  controller.SetLeading(false);  // no new work; in-flight reconciles finish
  election_cancel.Cancel();      // releases the lease for a quick successor
  if (election.joinable()) election.join();
  controller.Stop();
  if (http) http->Stop();
  Log("stopped");
  return 0;
}
