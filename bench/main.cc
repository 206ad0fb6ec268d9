// dynamo-bench: YCSB-style workloads against this store, etcd, Redis, or an
// empty gRPC call. See --help and bench/README.md.

#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/str_split.h"
#include "dynamo/base/strings.h"
#include "driver.h"
#include "report.h"
#include "runner.h"

namespace dynamo::bench {
namespace {

constexpr char kUsage[] = R"(dynamo-bench: YCSB-style workloads against a key-value store.

usage: dynamo-bench --driver=dynamo|etcd|redis|ping --targets=HOST:PORT[,...] [flags]
       dynamo-bench serve-ping --listen=HOST:PORT

what to run
  --workload=a|b|c|write|rmw|f  a 50% read/50% update, b 95/5, c read only, write update
                                only, rmw read-modify-write only, f 50% read/50% rmw [a];
                                a list (write,a) runs each in turn on the same data
  --distribution=zipfian|uniform  key popularity [zipfian]; --theta=0.99 Zipf exponent
  --records=N          keys in the store [100000]
  --value-bytes=N      value size [1024]
  --load               insert every record first (the load phase) [off]
  --load-only          only the load phase
  --load-clients=N     client threads of the load phase [--clients]
  --load-from=N        the load phase inserts records N.. only (to grow a loaded store) [0]
  --clients=K          client threads [32]
  --duration=S         measured seconds [30]; --warmup=S seconds before them, not counted [5]
  --rate=R             open loop at R ops/s, latency from each op's intended start;
                       0 = closed loop [0]
  --seed=N             [1]
  --progress=S         progress line interval, 0 for none [1]

drivers
  --driver=dynamo      this store through the client library; --targets are nodes
    --routing=server|client  server-driven (round robin, any node coordinates) or
                       client-driven (partition-aware) [server]; a list (server,client)
                       runs every workload with each in turn, sharing the cached contexts
    --n= --r= --w=     per-request quorum, 0 = the cluster's default [0]
    --attempts=N       tries per call (the client library retries on another node) [1]
    --no-context-cache updates write blind (new siblings) instead of carrying the
                       last context seen for the key
    --wait-nodes=N     wait until the ring has N owning nodes [number of targets]
    --no-pipes         a unary call per request instead of KV.Pipe streams
                       (ClientOptions::pipes = false)
  --driver=etcd        etcd v3 gRPC KV; --targets are members' client URLs (host:port)
    --etcd-serializable  member-local reads (default: linearizable)
    --channels=N       connections per member [1]
  --driver=redis       --targets=primary,replica,...; writes are SET + WAIT
    --redis-wait-replicas=N [1]   --redis-wait-timeout-ms=T [1000]
    --redis-read-replicas  spread reads over all targets (default: the primary)
  --driver=ping        empty gRPC round trips
    --ping-method=echo|topology|stream  dynamo-bench serve-ping's Ping, a node's KV.Topology,
                       or serve-ping's Ping.Stream (one open stream per client thread)
    --channels=N       connections per target [1]
  --timeout-ms=T       per call [5000]

output
  --label=NAME         name in reports [driver name]
  --server-pids=P,...  processes of the store on this machine: their CPU per operation
                       is reported (the throughput a dedicated machine would reach), in
                       total and by thread name (a node's loop, gRPC, RocksDB's flushes)
  --json=FILE          every figure as JSON
  --summary=FILE       append one tab-separated line (for bench/compare)
  --plot=FILE.png|FILE.svg  latency-by-percentile plot (needs gnuplot)
)";

struct Flags {
  std::map<std::string, std::string> values;
  std::set<std::string> used;

  bool Has(const std::string& name) {
    used.insert(name);
    return values.contains(name);
  }
  std::string Str(const std::string& name, const std::string& dflt) {
    used.insert(name);
    auto it = values.find(name);
    return it == values.end() ? dflt : it->second;
  }
  bool Bool(const std::string& name) {
    used.insert(name);
    auto it = values.find(name);
    return it != values.end() && it->second != "false" && it->second != "0";
  }
  template <typename T>
  absl::StatusOr<T> Num(const std::string& name, T dflt) {
    used.insert(name);
    auto it = values.find(name);
    if (it == values.end()) return dflt;
    T v{};
    bool ok;
    if constexpr (std::is_floating_point_v<T>) {
      ok = absl::SimpleAtod(it->second, &v);
    } else {
      ok = absl::SimpleAtoi(it->second, &v);
    }
    if (!ok) return absl::InvalidArgumentError(Cat("--", name, ": not a number: ", it->second));
    return v;
  }
};

absl::StatusOr<Flags> ParseFlags(const std::vector<std::string>& args) {
  Flags f;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) return absl::InvalidArgumentError(Cat("unexpected argument: ", a));
    const size_t eq = a.find('=');
    if (eq != std::string::npos) {
      f.values[a.substr(2, eq - 2)] = a.substr(eq + 1);
    } else if (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
      f.values[a.substr(2)] = args[++i];
    } else {
      f.values[a.substr(2)] = "true";
    }
  }
  return f;
}

// Parses a numeric flag into *out; the first bad one is kept in *bad.
template <typename T>
void Num(Flags& f, const std::string& name, T dflt, T* out, absl::Status* bad) {
  absl::StatusOr<T> v = f.Num<T>(name, dflt);
  if (v.ok()) {
    *out = *v;
  } else if (bad->ok()) {
    *bad = v.status();
  }
}

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "dynamo-bench: %s\n", std::string(s.message()).c_str());
  return 2;
}

int Main(int argc, char** argv) {
  // Debian builds absl without NDEBUG, which turns on absl::Mutex deadlock
  // detection: a lock-order graph updated on every lock, gRPC's included.
  // The measuring client must not pay for it (DYNAMO_BENCH_MUTEX_DEBUG=1 keeps
  // it, to measure what it costs).
  if (const char* debug = std::getenv("DYNAMO_BENCH_MUTEX_DEBUG"); debug == nullptr || *debug != '1') {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  if (!args.empty() && args[0] == "serve-ping") {
    args.erase(args.begin());
    absl::StatusOr<Flags> f = ParseFlags(args);
    if (!f.ok()) return Fail(f.status());
    return ServePing(f->Str("listen", "127.0.0.1:7099"));
  }
  absl::StatusOr<Flags> parsed = ParseFlags(args);
  if (!parsed.ok()) return Fail(parsed.status());
  Flags& f = *parsed;

  RunOptions run;
  DriverOptions drv;
  absl::Status bad;
  drv.driver = f.Str("driver", "");
  for (absl::string_view t : absl::StrSplit(f.Str("targets", ""), ',', absl::SkipEmpty())) {
    drv.targets.emplace_back(t);
  }
  std::vector<WorkloadSpec> workloads;
  for (absl::string_view w : absl::StrSplit(f.Str("workload", "a"), ',', absl::SkipEmpty())) {
    absl::StatusOr<WorkloadSpec> workload = WorkloadByName(std::string(w));
    if (!workload.ok()) return Fail(workload.status());
    workloads.push_back(*workload);
  }
  if (workloads.empty()) return Fail(absl::InvalidArgumentError("--workload is empty"));
  run.workload = workloads.front();
  const std::string dist = f.Str("distribution", "zipfian");
  if (dist != "zipfian" && dist != "uniform") {
    return Fail(absl::InvalidArgumentError("--distribution must be zipfian or uniform"));
  }
  run.distribution = dist == "zipfian" ? KeyDistribution::kZipfian : KeyDistribution::kUniform;
  Num<double>(f, "theta", 0.99, &run.theta, &bad);
  Num<uint64_t>(f, "records", 100000, &run.records, &bad);
  Num<size_t>(f, "value-bytes", 1024, &run.value_bytes, &bad);
  Num<int>(f, "clients", 32, &run.clients, &bad);
  Num<int>(f, "load-clients", run.clients, &run.load_clients, &bad);
  Num<uint64_t>(f, "load-from", 0, &run.load_from, &bad);
  Num<double>(f, "duration", 30, &run.duration_s, &bad);
  Num<double>(f, "warmup", 5, &run.warmup_s, &bad);
  Num<double>(f, "rate", 0, &run.rate, &bad);
  Num<uint64_t>(f, "seed", 1, &run.seed, &bad);
  Num<double>(f, "progress", 1, &run.progress_interval_s, &bad);
  if (!bad.ok()) return Fail(bad);
  run.progress = run.progress_interval_s > 0;
  for (absl::string_view p : absl::StrSplit(f.Str("server-pids", ""), ',', absl::SkipEmpty())) {
    int pid = 0;
    if (!absl::SimpleAtoi(p, &pid) || pid <= 0) {
      return Fail(absl::InvalidArgumentError(Cat("--server-pids: not a pid: ", p)));
    }
    run.server_pids.push_back(pid);
  }
  const bool load = f.Bool("load") || f.Bool("load-only");
  const bool load_only = f.Bool("load-only");
  if (run.records == 0 || run.clients < 1 || run.load_clients < 1 || run.clients > 4096 ||
      run.theta <= 0 || run.duration_s <= 0 || run.warmup_s < 0 || run.rate < 0) {
    return Fail(absl::InvalidArgumentError(
        "need --records >= 1, 1 <= --clients <= 4096, --theta > 0, --duration > 0, "
        "--warmup >= 0, --rate >= 0"));
  }

  drv.records = run.records;
  Num<int64_t>(f, "timeout-ms", 5000, &drv.timeout_ms, &bad);
  Num<int>(f, "channels", 1, &drv.channels, &bad);
  std::vector<std::string> routings;
  for (absl::string_view r : absl::StrSplit(f.Str("routing", "server"), ',', absl::SkipEmpty())) {
    routings.emplace_back(r);
  }
  if (routings.empty() || drv.driver != "dynamo") routings = {"server"};
  Num<uint32_t>(f, "n", 0, &drv.n, &bad);
  Num<uint32_t>(f, "r", 0, &drv.r, &bad);
  Num<uint32_t>(f, "w", 0, &drv.w, &bad);
  Num<int>(f, "attempts", 1, &drv.attempts, &bad);
  drv.context_cache = !f.Bool("no-context-cache");
  drv.pipes = !f.Bool("no-pipes");
  Num<size_t>(f, "wait-nodes", 0, &drv.wait_nodes, &bad);
  drv.etcd_serializable = f.Bool("etcd-serializable");
  Num<int>(f, "redis-wait-replicas", 1, &drv.redis_wait_replicas, &bad);
  Num<int64_t>(f, "redis-wait-timeout-ms", 1000, &drv.redis_wait_timeout_ms, &bad);
  drv.redis_read_replicas = f.Bool("redis-read-replicas");
  drv.ping_method = f.Str("ping-method", "echo");
  if (!bad.ok()) return Fail(bad);

  RunInfo info;
  info.label = f.Str("label", drv.driver);
  const std::string json = f.Str("json", "");
  const std::string summary = f.Str("summary", "");
  const std::string plot = f.Str("plot", "");
  for (const auto& [k, v] : f.values) {
    if (!f.used.contains(k)) return Fail(absl::InvalidArgumentError(Cat("unknown flag --", k)));
    info.settings[k] = v;
  }
  info.command = "dynamo-bench";
  for (const std::string& a : args) info.command += " " + a;

  signal(SIGPIPE, SIG_IGN);
  std::vector<PhaseResult> phases;
  std::vector<RunInfo> infos;  // per phase
  int rc = 0;
  for (size_t v = 0; v < routings.size(); ++v) {
    drv.routing = routings[v];
    RunInfo vinfo = info;
    if (routings.size() > 1) vinfo.label = Cat(info.label, "-", drv.routing);
    absl::StatusOr<std::unique_ptr<Driver>> driver = MakeDriver(drv);
    if (!driver.ok()) return Fail(driver.status());
    if (absl::Status s = (*driver)->Prepare(); !s.ok()) return Fail(s);
    vinfo.driver = (*driver)->Describe();
    vinfo.notes = (*driver)->Notes();
    std::fprintf(stderr, "dynamo-bench: %s\n", vinfo.driver.c_str());

    std::vector<std::unique_ptr<Session>> sessions;
    for (int i = 0; i < std::max(run.clients, run.load_clients); ++i) {
      absl::StatusOr<std::unique_ptr<Session>> s = (*driver)->NewSession(i);
      if (!s.ok()) return Fail(s.status());
      sessions.push_back(*std::move(s));
    }
    if (load && v == 0) {
      phases.push_back(RunLoad(sessions, run));
      infos.push_back(vinfo);
      PrintTable(stdout, phases.back(), run);
      std::fflush(stdout);
    }
    if (load_only) break;
    for (const WorkloadSpec& w : workloads) {
      RunOptions one = run;
      one.workload = w;
      std::fprintf(stderr, "dynamo-bench: %s: workload %s\n", vinfo.label.c_str(), w.name.c_str());
      phases.push_back(RunWorkload(sessions, one));
      infos.push_back(vinfo);
      std::printf("\n[%s]", vinfo.label.c_str());
      PrintTable(stdout, phases.back(), one);
      std::printf("  driver: %s\n", vinfo.driver.c_str());
      if (!vinfo.notes.empty()) std::printf("  notes: %s\n", vinfo.notes.c_str());
      std::fflush(stdout);
      if (!summary.empty()) {
        if (absl::Status s = AppendSummary(summary, vinfo, phases.back()); !s.ok()) rc = Fail(s);
      }
      if (!plot.empty()) {
        std::string path = plot;
        if (workloads.size() > 1 || routings.size() > 1) {
          const size_t dot = plot.rfind('.');
          const std::string suffix = Cat(routings.size() > 1 ? "-" + drv.routing : "", "-", w.name);
          path = dot == std::string::npos ? plot + suffix
                                          : plot.substr(0, dot) + suffix + plot.substr(dot);
        }
        if (absl::Status s = WritePlot(path, vinfo, phases.back()); !s.ok()) rc = Fail(s);
      }
    }
  }
  if (!json.empty()) {
    if (absl::Status s = WriteJson(json, infos, run, phases); !s.ok()) rc = Fail(s);
  }
  // Any error in the measured phases makes the exit code 1, so scripts notice.
  for (const PhaseResult& p : phases) {
    if (p.Total().error_count() > 0 && rc == 0) rc = 1;
  }
  return rc;
}

}  // namespace
}  // namespace dynamo::bench

int main(int argc, char** argv) { return dynamo::bench::Main(argc, argv); }
