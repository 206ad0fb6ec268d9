#include "runner.h"

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "dynamo/core/random.h"
#include "server_cpu.h"

namespace dynamo::bench {
namespace {

using Clock = std::chrono::steady_clock;

int64_t Ns(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

struct CpuTimes {
  double user_s = 0;
  double sys_s = 0;
};

CpuTimes ProcessCpu() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return {static_cast<double>(ru.ru_utime.tv_sec) + ru.ru_utime.tv_usec / 1e6,
          static_cast<double>(ru.ru_stime.tv_sec) + ru.ru_stime.tv_usec / 1e6};
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// What one client thread measured. The thread records under its own lock,
// which only the progress reporter ever contends for, once per interval.
struct WorkerStats {
  absl::Mutex mu;
  std::array<OpStats, kOpTypes> total ABSL_GUARDED_BY(mu);
  std::array<OpStats, kOpTypes> interval ABSL_GUARDED_BY(mu);
  uint64_t warmup_ops ABSL_GUARDED_BY(mu) = 0;

  void Record(OpType op, const absl::Status& status, bool found, int64_t latency_ns,
              int64_t service_ns, bool measured) {
    absl::MutexLock lock(&mu);
    OpStats& i = interval[static_cast<int>(op)];
    if (!measured) {
      ++warmup_ops;
    }
    for (OpStats* s : {&i, measured ? &total[static_cast<int>(op)] : nullptr}) {
      if (s == nullptr) continue;
      if (status.ok()) {
        ++s->ok;
        if (!found) ++s->not_found;
        s->latency.Record(latency_ns);
        s->service.Record(service_ns);
      } else {
        const std::string code = absl::StatusCodeToString(status.code());
        ++s->errors[code];
        if (s->samples.size() < 16 && !s->samples.contains(code)) {
          s->samples[code] = std::string(status.message().substr(0, 300));
        }
      }
    }
  }
};

absl::Status Execute(Session& session, OpType op, uint64_t index, ValueMaker& values,
                     bool* found) {
  const std::string key = KeyName(index);
  *found = true;
  switch (op) {
    case OpType::kRead:
      return session.Read(index, key, found);
    case OpType::kUpdate:
    case OpType::kInsert:
      return session.Write(index, key, values.Next());
    case OpType::kReadModifyWrite:
      return session.ReadModifyWrite(index, key, values.Next());
  }
  return absl::InternalError("unknown op");
}

std::string Ms(int64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", static_cast<double>(ns) / 1e6);
  return buf;
}

// Prints one progress line from the interval figures of every worker.
void Progress(const char* phase, double elapsed_s, double interval_s, bool warming,
              std::vector<std::unique_ptr<WorkerStats>>& workers, uint64_t load_total,
              uint64_t load_done) {
  std::array<OpStats, kOpTypes> sum;
  for (auto& w : workers) {
    absl::MutexLock lock(&w->mu);
    for (int i = 0; i < kOpTypes; ++i) {
      sum[i].Merge(w->interval[i]);
      w->interval[i].Clear();
    }
  }
  uint64_t ops = 0, errors = 0;
  std::string detail;
  for (int i = 0; i < kOpTypes; ++i) {
    ops += sum[i].ok + sum[i].error_count();
    errors += sum[i].error_count();
    if (sum[i].ok == 0) continue;
    detail += std::string(" ") + OpName(static_cast<OpType>(i)) + " p50/p99 " +
              Ms(sum[i].latency.ValueAtQuantile(0.5)) + "/" +
              Ms(sum[i].latency.ValueAtQuantile(0.99)) + " ms";
  }
  std::string load;
  if (load_total > 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " %llu/%llu records",
                  static_cast<unsigned long long>(load_done),
                  static_cast<unsigned long long>(load_total));
    load = buf;
  }
  std::fprintf(stderr, "[%6.1fs] %s%s: %8.0f ops/s%s errors %llu%s\n", elapsed_s, phase,
               warming ? " (warm-up)" : "", static_cast<double>(ops) / interval_s, detail.c_str(),
               static_cast<unsigned long long>(errors), load.c_str());
}

void SleepUntilNs(int64_t t_ns) {
  const int64_t now = Ns(Clock::now());
  if (t_ns > now) std::this_thread::sleep_for(std::chrono::nanoseconds(t_ns - now));
}

}  // namespace

uint64_t OpStats::error_count() const {
  uint64_t n = 0;
  for (const auto& [code, count] : errors) n += count;
  return n;
}

void OpStats::Merge(const OpStats& other) {
  latency.Merge(other.latency);
  service.Merge(other.service);
  ok += other.ok;
  not_found += other.not_found;
  for (const auto& [code, count] : other.errors) errors[code] += count;
  for (const auto& [code, message] : other.samples) samples.emplace(code, message);
}

void OpStats::Clear() {
  latency.Clear();
  service.Clear();
  ok = not_found = 0;
  errors.clear();
  samples.clear();
}

OpStats PhaseResult::Total() const {
  OpStats t;
  for (const OpStats& s : ops) t.Merge(s);
  return t;
}

PhaseResult RunLoad(std::vector<std::unique_ptr<Session>>& sessions, const RunOptions& options) {
  PhaseResult result;
  result.phase = "load";
  const int clients = std::min<int>(options.load_clients, static_cast<int>(sessions.size()));
  result.clients = clients;
  std::vector<std::unique_ptr<WorkerStats>> workers;
  for (int i = 0; i < clients; ++i) workers.push_back(std::make_unique<WorkerStats>());
  std::atomic<uint64_t> next{options.load_from};
  std::atomic<int> running{clients};
  const CpuTimes cpu0 = ProcessCpu();
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      ValueMaker values(options.value_bytes, options.seed * 1000003 + static_cast<uint64_t>(t));
      while (true) {
        const uint64_t index = next.fetch_add(1);
        if (index >= options.records) break;
        const auto t0 = Clock::now();
        bool found = true;
        absl::Status s = Execute(*sessions[t], OpType::kInsert, index, values, &found);
        const int64_t d = Ns(Clock::now()) - Ns(t0);
        workers[t]->Record(OpType::kInsert, s, found, d, d, true);
      }
      --running;
    });
  }
  auto last = start;
  while (running.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto now = Clock::now();
    const double since = std::chrono::duration<double>(now - last).count();
    if (options.progress && since >= options.progress_interval_s) {
      Progress("load", std::chrono::duration<double>(now - start).count(), since, false, workers,
               options.records, std::min(next.load(), options.records));
      last = now;
    }
  }
  for (auto& th : threads) th.join();
  const CpuTimes cpu1 = ProcessCpu();
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.cpu_user_s = cpu1.user_s - cpu0.user_s;
  result.cpu_sys_s = cpu1.sys_s - cpu0.sys_s;
  result.load_average = LoadAverage();
  for (auto& w : workers) {
    absl::MutexLock lock(&w->mu);
    for (int i = 0; i < kOpTypes; ++i) result.ops[i].Merge(w->total[i]);
  }
  return result;
}

PhaseResult RunWorkload(std::vector<std::unique_ptr<Session>>& sessions,
                        const RunOptions& options) {
  PhaseResult result;
  result.phase = "run";
  result.workload = options.workload.name;
  const int clients = std::min<int>(options.clients, static_cast<int>(sessions.size()));
  result.clients = clients;
  result.rate = options.rate;
  result.warmup_s = options.warmup_s;
  const KeyChooser keys(options.distribution, options.records, options.theta, options.seed);
  std::vector<std::unique_ptr<WorkerStats>> workers;
  for (int i = 0; i < clients; ++i) workers.push_back(std::make_unique<WorkerStats>());

  const auto start = Clock::now();
  const int64_t start_ns = Ns(start);
  const int64_t warm_end_ns = start_ns + static_cast<int64_t>(options.warmup_s * 1e9);
  const int64_t end_ns = warm_end_ns + static_cast<int64_t>(options.duration_s * 1e9);
  // Open loop: how long past the end due operations may still start.
  const int64_t grace_ns = static_cast<int64_t>(std::max(2.0, options.duration_s / 4) * 1e9);
  const bool open_loop = options.rate > 0;
  const double period_ns = open_loop ? 1e9 / options.rate : 0;
  const uint64_t due_total =
      open_loop ? static_cast<uint64_t>(static_cast<double>(end_ns - start_ns) / period_ns) : 0;
  std::atomic<uint64_t> next_ticket{0};
  std::atomic<uint64_t> started{0};
  std::atomic<bool> stop{false};
  std::atomic<int> running{clients};
  std::atomic<int64_t> last_done_ns{warm_end_ns};
  CpuTimes cpu_at_warm_end;
  std::optional<ServerCpu> servers_at_warm_end;
  bool cpu_taken = false;

  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      core::Random rng(options.seed * 7919 + static_cast<uint64_t>(t) + 1);
      ValueMaker values(options.value_bytes, options.seed * 1000003 + static_cast<uint64_t>(t));
      Session& session = *sessions[t];
      WorkerStats& stats = *workers[t];
      while (!stop.load(std::memory_order_relaxed)) {
        int64_t due_ns;
        if (open_loop) {
          const uint64_t ticket = next_ticket.fetch_add(1);
          if (ticket >= due_total) break;
          due_ns = start_ns + static_cast<int64_t>(static_cast<double>(ticket) * period_ns);
          SleepUntilNs(due_ns);
          if (Ns(Clock::now()) > end_ns + grace_ns) break;  // hopelessly behind: stop
        } else {
          due_ns = Ns(Clock::now());
          if (due_ns >= end_ns) break;
        }
        started.fetch_add(1, std::memory_order_relaxed);
        const OpType op = ChooseOp(options.workload, rng);
        const uint64_t index = keys.Next(rng);
        const int64_t begin_ns = Ns(Clock::now());
        bool found = true;
        absl::Status s = Execute(session, op, index, values, &found);
        const int64_t done_ns = Ns(Clock::now());
        const bool measured = due_ns >= warm_end_ns;
        stats.Record(op, s, found, done_ns - due_ns, done_ns - begin_ns, measured);
        if (measured) {
          int64_t prev = last_done_ns.load(std::memory_order_relaxed);
          while (done_ns > prev && !last_done_ns.compare_exchange_weak(prev, done_ns)) {
          }
        }
      }
      --running;
    });
  }

  auto last = start;
  while (running.load() > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const auto now = Clock::now();
    if (!cpu_taken && Ns(now) >= warm_end_ns) {
      cpu_at_warm_end = ProcessCpu();
      servers_at_warm_end = ReadServerCpu(options.server_pids);
      cpu_taken = true;
    }
    if (!open_loop && Ns(now) >= end_ns) stop.store(true);
    const double since = std::chrono::duration<double>(now - last).count();
    if (options.progress && since >= options.progress_interval_s) {
      Progress("run", std::chrono::duration<double>(now - start).count(), since,
               Ns(now) < warm_end_ns, workers, 0, 0);
      last = now;
    }
  }
  for (auto& th : threads) th.join();
  if (!cpu_taken) {
    cpu_at_warm_end = ProcessCpu();
    servers_at_warm_end = ReadServerCpu(options.server_pids);
  }
  const CpuTimes cpu1 = ProcessCpu();
  const std::optional<ServerCpu> servers_end = ReadServerCpu(options.server_pids);
  if (servers_at_warm_end && servers_end) {
    const ServerCpu used = CpuBetween(*servers_at_warm_end, *servers_end);
    result.server_cpu_s = used.total_s;
    result.server_cpu_by_thread_s = used.by_thread_s;
  }
  result.cpu_user_s = cpu1.user_s - cpu_at_warm_end.user_s;
  result.cpu_sys_s = cpu1.sys_s - cpu_at_warm_end.sys_s;
  result.load_average = LoadAverage();
  result.seconds = static_cast<double>(std::max(last_done_ns.load(), end_ns) - warm_end_ns) / 1e9;
  if (open_loop) result.backlog = due_total - std::min(due_total, started.load());
  for (auto& w : workers) {
    absl::MutexLock lock(&w->mu);
    result.warmup_ops += w->warmup_ops;
    for (int i = 0; i < kOpTypes; ++i) result.ops[i].Merge(w->total[i]);
  }
  return result;
}

}  // namespace dynamo::bench
