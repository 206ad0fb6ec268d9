#pragma once

// The figures of a run, for people (a table), for programs (JSON, and one
// tab-separated summary line that bench/compare collects) and as a
// latency-by-percentile plot drawn by gnuplot.

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "runner.h"

namespace dynamo::bench {

// What the run was, for the report's header and the JSON.
struct RunInfo {
  std::string label;
  std::string driver;       // the driver's Describe()
  std::string notes;        // the driver's Notes()
  std::string command;      // the command line
  std::map<std::string, std::string> settings;  // name -> value, as given
};

void PrintTable(std::FILE* out, const PhaseResult& phase, const RunOptions& options);

// Every phase with per-op counts, throughput, percentiles (ms) and errors;
// infos[i] describes phases[i] (the driver may differ between phases).
[[nodiscard]] absl::Status WriteJson(const std::string& path, const std::vector<RunInfo>& infos,
                                     const RunOptions& options,
                                     const std::vector<PhaseResult>& phases);

// Appends one line: label, workload, ops/s, p50, p99, p99.9, max (ms) of all
// run-phase operations, errors, bench CPU (cores), server CPU (cores, and
// microseconds per operation; -1 when not measured), then per op
// "op:ops/s:p50:p99:p99.9".
[[nodiscard]] absl::Status AppendSummary(const std::string& path, const RunInfo& info,
                                         const PhaseResult& run);

// Writes `path` (.png or .svg) with gnuplot: latency by percentile, one line
// per operation, log-scaled "1 in N" axis as HdrHistogram plots do. Leaves the
// data and the script beside it (path + ".dat", path + ".gp").
[[nodiscard]] absl::Status WritePlot(const std::string& path, const RunInfo& info,
                                     const PhaseResult& run);

}  // namespace dynamo::bench
