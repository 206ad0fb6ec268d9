#pragma once

// Runs the phases of a benchmark: the load phase (insert every record once)
// and the run phase (the workload's mix, closed or open loop, after a
// warm-up), with a progress line while it runs, and collects the figures.
//
// Closed loop: K client threads, each issuing its next operation as soon as
// the previous one ends; latency is each operation's own duration.
// Open loop: operations are due at a fixed rate whatever the store does (the
// i-th at start + i / rate) and are taken by K client threads; latency is
// measured from the time the operation was due, so a stall delays and counts
// against every operation due during it (no coordinated omission). If the
// store cannot keep up, due operations queue; those never started when the
// run ends plus a grace period are reported as backlog.

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "driver.h"
#include "histogram.h"
#include "workload.h"
#include "zipfian.h"

namespace dynamo::bench {

struct RunOptions {
  WorkloadSpec workload;
  KeyDistribution distribution = KeyDistribution::kZipfian;
  double theta = 0.99;
  uint64_t records = 100000;
  size_t value_bytes = 1024;
  int clients = 32;
  double duration_s = 30;
  double warmup_s = 5;
  double rate = 0;  // operations per second; 0: closed loop
  int load_clients = 32;
  uint64_t load_from = 0;  // the load phase inserts records [load_from, records)
  uint64_t seed = 1;
  double progress_interval_s = 1;
  bool progress = true;
  // Processes of the store under test (on this machine): the CPU they use
  // over the measured window is reported, per operation too.
  std::vector<int> server_pids;
};

struct OpStats {
  // From the time the operation was due (open loop) or started (closed loop).
  Histogram latency;
  // From the time it actually started (equals latency in a closed loop).
  Histogram service;
  uint64_t ok = 0;
  uint64_t not_found = 0;  // reads of a missing key (counted in ok too)
  std::map<std::string, uint64_t> errors;       // by status code name
  std::map<std::string, std::string> samples;  // one message per code

  uint64_t error_count() const;
  void Merge(const OpStats& other);
  void Clear();
};

struct PhaseResult {
  std::string phase;          // load | run
  std::string workload;       // run: the workload's name
  double seconds = 0;         // the measured window
  double warmup_s = 0;
  int clients = 0;
  double rate = 0;            // offered, open loop; 0 in a closed loop
  uint64_t backlog = 0;       // open loop: due operations never started
  uint64_t warmup_ops = 0;    // done during warm-up, not counted
  std::array<OpStats, kOpTypes> ops;
  double cpu_user_s = 0;      // this process, over the window
  double cpu_sys_s = 0;
  double server_cpu_s = -1;   // the server_pids, over the window; -1 if not measured
  std::map<std::string, double> server_cpu_by_thread_s;  // the same, by thread name
  std::string load_average;   // /proc/loadavg at the end

  OpStats Total() const;
};

// One session per client thread; `sessions` must hold at least max(clients,
// load_clients) of them.
PhaseResult RunLoad(std::vector<std::unique_ptr<Session>>& sessions, const RunOptions& options);
PhaseResult RunWorkload(std::vector<std::unique_ptr<Session>>& sessions, const RunOptions& options);

}  // namespace dynamo::bench
