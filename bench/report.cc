#include "report.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_format.h"
#include "dynamo/base/strings.h"

namespace dynamo::bench {
namespace {

double Ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string OpJson(const OpStats& s, double seconds) {
  std::ostringstream o;
  const Histogram& h = s.latency;
  o << "{\"ok\": " << s.ok << ", \"not_found\": " << s.not_found
    << ", \"errors\": " << s.error_count()
    << ", \"ops_per_s\": " << Fixed(seconds > 0 ? static_cast<double>(s.ok) / seconds : 0, 1)
    << ", \"latency_ms\": {\"p50\": " << Fixed(Ms(h.ValueAtQuantile(0.5)), 3)
    << ", \"p90\": " << Fixed(Ms(h.ValueAtQuantile(0.9)), 3)
    << ", \"p99\": " << Fixed(Ms(h.ValueAtQuantile(0.99)), 3)
    << ", \"p99.9\": " << Fixed(Ms(h.ValueAtQuantile(0.999)), 3)
    << ", \"p99.99\": " << Fixed(Ms(h.ValueAtQuantile(0.9999)), 3)
    << ", \"max\": " << Fixed(Ms(h.max()), 3) << ", \"mean\": " << Fixed(h.mean() / 1e6, 3)
    << ", \"min\": " << Fixed(Ms(h.min()), 3) << "}"
    << ", \"service_ms\": {\"p50\": " << Fixed(Ms(s.service.ValueAtQuantile(0.5)), 3)
    << ", \"p99\": " << Fixed(Ms(s.service.ValueAtQuantile(0.99)), 3)
    << ", \"p99.9\": " << Fixed(Ms(s.service.ValueAtQuantile(0.999)), 3)
    << ", \"max\": " << Fixed(Ms(s.service.max()), 3) << "}"
    << ", \"errors_by_status\": {";
  bool first = true;
  for (const auto& [code, count] : s.errors) {
    o << (first ? "" : ", ") << JsonString(code) << ": " << count;
    first = false;
  }
  o << "}, \"error_samples\": {";
  first = true;
  for (const auto& [code, message] : s.samples) {
    o << (first ? "" : ", ") << JsonString(code) << ": " << JsonString(message);
    first = false;
  }
  o << "}, \"percentiles\": [";
  first = true;
  for (const auto& [q, v] : h.PercentileSpectrum(4)) {
    o << (first ? "" : ", ") << "[" << Fixed(q * 100, 6) << ", " << Fixed(Ms(v), 4) << "]";
    first = false;
  }
  o << "]}";
  return o.str();
}

void Row(std::FILE* out, const char* name, const OpStats& s, double seconds) {
  const Histogram& h = s.latency;
  std::fprintf(out, "%-8s %10llu %10.0f %9.3f %9.3f %9.3f %9.3f %8llu\n", name,
               static_cast<unsigned long long>(s.ok),
               seconds > 0 ? static_cast<double>(s.ok) / seconds : 0.0, Ms(h.ValueAtQuantile(0.5)),
               Ms(h.ValueAtQuantile(0.99)), Ms(h.ValueAtQuantile(0.999)), Ms(h.max()),
               static_cast<unsigned long long>(s.error_count()));
}

}  // namespace

void PrintTable(std::FILE* out, const PhaseResult& phase, const RunOptions& options) {
  if (phase.phase == "load") {
    std::fprintf(out, "\nload: records %llu..%llu of %zu bytes, %d clients, %.1f s\n",
                 static_cast<unsigned long long>(options.load_from),
                 static_cast<unsigned long long>(options.records), options.value_bytes,
                 phase.clients, phase.seconds);
  } else {
    std::fprintf(out, "\nrun: workload %s, %s keys over %llu records, %zu-byte values, %d clients, ",
                 options.workload.name.c_str(),
                 options.distribution == KeyDistribution::kZipfian ? "zipfian" : "uniform",
                 static_cast<unsigned long long>(options.records), options.value_bytes,
                 phase.clients);
    if (phase.rate > 0) {
      std::fprintf(out, "open loop at %.0f ops/s (latency from the intended start), ", phase.rate);
    } else {
      std::fprintf(out, "closed loop, ");
    }
    std::fprintf(out, "%.1f s measured after %.1f s warm-up (%llu ops)\n", phase.seconds,
                 phase.warmup_s, static_cast<unsigned long long>(phase.warmup_ops));
  }
  std::fprintf(out, "%-8s %10s %10s %9s %9s %9s %9s %8s\n", "op", "count", "ops/s", "p50 ms",
               "p99 ms", "p99.9 ms", "max ms", "errors");
  int rows = 0;
  for (int i = 0; i < kOpTypes; ++i) {
    const OpStats& s = phase.ops[i];
    if (s.ok + s.error_count() == 0) continue;
    Row(out, OpName(static_cast<OpType>(i)), s, phase.seconds);
    ++rows;
  }
  const OpStats total = phase.Total();
  if (rows > 1) Row(out, "total", total, phase.seconds);
  for (int i = 0; i < kOpTypes; ++i) {
    const OpStats& s = phase.ops[i];
    for (const auto& [code, count] : s.errors) {
      const auto sample = s.samples.find(code);
      std::fprintf(out, "  %s errors %s: %llu (e.g. %s)\n", OpName(static_cast<OpType>(i)),
                   code.c_str(), static_cast<unsigned long long>(count),
                   sample != s.samples.end() ? sample->second.c_str() : "");
    }
    if (s.not_found > 0) {
      std::fprintf(out, "  %s: %llu of missing keys\n", OpName(static_cast<OpType>(i)),
                   static_cast<unsigned long long>(s.not_found));
    }
  }
  if (phase.backlog > 0) {
    std::fprintf(out,
                 "  WARNING: the offered rate was not sustained: %llu due operations never "
                 "started\n",
                 static_cast<unsigned long long>(phase.backlog));
  }
  if (phase.server_cpu_s >= 0 && phase.seconds > 0) {
    const uint64_t ops = phase.Total().ok + phase.Total().error_count();
    std::fprintf(out, "  server processes CPU: %.2f cores, %.0f us per operation\n",
                 phase.server_cpu_s / phase.seconds,
                 ops > 0 ? phase.server_cpu_s * 1e6 / static_cast<double>(ops) : 0.0);
    if (ops > 0 && !phase.server_cpu_by_thread_s.empty()) {
      // Busiest first: where a node's time goes, with no profiler attached.
      std::vector<std::pair<double, std::string>> threads;
      for (const auto& [name, seconds] : phase.server_cpu_by_thread_s) threads.push_back({seconds, name});
      std::sort(threads.rbegin(), threads.rend());
      std::string line;
      for (const auto& [seconds, name] : threads) {
        const double us = seconds * 1e6 / static_cast<double>(ops);
        if (us < 1) break;
        absl::StrAppend(&line, line.empty() ? "" : ", ", name, " ", absl::StrFormat("%.0f", us));
      }
      std::fprintf(out, "  server CPU by thread, us per operation: %s\n", line.c_str());
    }
  }
  std::fprintf(out, "  bench process CPU: %.2f cores (user %.1f s, sys %.1f s); load average %s\n",
               phase.seconds > 0 ? (phase.cpu_user_s + phase.cpu_sys_s) / phase.seconds : 0.0,
               phase.cpu_user_s, phase.cpu_sys_s, phase.load_average.c_str());
}

absl::Status WriteJson(const std::string& path, const std::vector<RunInfo>& infos,
                       const RunOptions& options, const std::vector<PhaseResult>& phases) {
  std::ofstream out(path);
  if (!out) return absl::UnavailableError(Cat("cannot write ", path));
  const RunInfo info = infos.empty() ? RunInfo() : infos.front();
  out << "{\n  \"command\": " << JsonString(info.command) << ",\n  \"settings\": {";
  bool first = true;
  for (const auto& [k, v] : info.settings) {
    out << (first ? "" : ", ") << JsonString(k) << ": " << JsonString(v);
    first = false;
  }
  out << "},\n  \"records\": " << options.records << ",\n  \"value_bytes\": " << options.value_bytes
      << ",\n  \"phases\": [";
  first = true;
  for (size_t k = 0; k < phases.size(); ++k) {
    const PhaseResult& p = phases[k];
    const RunInfo& pi = k < infos.size() ? infos[k] : info;
    out << (first ? "\n" : ",\n") << "    {\"phase\": " << JsonString(p.phase)
        << ", \"workload\": " << JsonString(p.workload) << ", \"label\": " << JsonString(pi.label)
        << ", \"driver\": " << JsonString(pi.driver) << ", \"notes\": " << JsonString(pi.notes)
        << ", \"seconds\": " << Fixed(p.seconds, 3) << ", \"warmup_s\": " << Fixed(p.warmup_s, 1)
        << ", \"clients\": " << p.clients << ", \"rate\": " << Fixed(p.rate, 1)
        << ", \"backlog\": " << p.backlog << ", \"warmup_ops\": " << p.warmup_ops
        << ", \"bench_cpu_user_s\": " << Fixed(p.cpu_user_s, 2)
        << ", \"bench_cpu_sys_s\": " << Fixed(p.cpu_sys_s, 2)
        << ", \"server_cpu_s\": " << Fixed(p.server_cpu_s, 2)
        << ", \"server_cpu_by_thread_s\": {";
    bool first_thread = true;
    for (const auto& [name, seconds] : p.server_cpu_by_thread_s) {
      out << (first_thread ? "" : ", ") << JsonString(name) << ": " << Fixed(seconds, 3);
      first_thread = false;
    }
    out << "}"
        << ", \"load_average\": " << JsonString(p.load_average) << ",\n     \"ops\": {";
    bool first_op = true;
    for (int i = 0; i < kOpTypes; ++i) {
      const OpStats& s = p.ops[i];
      if (s.ok + s.error_count() == 0) continue;
      out << (first_op ? "\n" : ",\n") << "       " << JsonString(OpName(static_cast<OpType>(i)))
          << ": " << OpJson(s, p.seconds);
      first_op = false;
    }
    out << (first_op ? "" : ",\n       ") << "\"total\": " << OpJson(p.Total(), p.seconds)
        << "}}";
    first = false;
  }
  out << "\n  ]\n}\n";
  if (!out) return absl::UnavailableError(Cat("cannot write ", path));
  return absl::OkStatus();
}

absl::Status AppendSummary(const std::string& path, const RunInfo& info, const PhaseResult& run) {
  std::ofstream out(path, std::ios::app);
  if (!out) return absl::UnavailableError(Cat("cannot append to ", path));
  const OpStats t = run.Total();
  const Histogram& h = t.latency;
  const double cores = run.seconds > 0 ? (run.cpu_user_s + run.cpu_sys_s) / run.seconds : 0;
  out << info.label << '\t' << run.workload << '\t' << Fixed(run.seconds > 0 ? static_cast<double>(t.ok) / run.seconds : 0, 0)
      << '\t' << Fixed(Ms(h.ValueAtQuantile(0.5)), 3) << '\t'
      << Fixed(Ms(h.ValueAtQuantile(0.99)), 3) << '\t' << Fixed(Ms(h.ValueAtQuantile(0.999)), 3)
      << '\t' << Fixed(Ms(h.max()), 3) << '\t' << t.error_count() << '\t' << Fixed(cores, 2);
  // Server CPU: cores, and microseconds per operation (-1: not measured).
  const uint64_t ops = t.ok + t.error_count();
  const bool measured = run.server_cpu_s >= 0 && run.seconds > 0 && ops > 0;
  out << '\t' << (measured ? Fixed(run.server_cpu_s / run.seconds, 2) : "-1") << '\t'
      << (measured ? Fixed(run.server_cpu_s * 1e6 / static_cast<double>(ops), 0) : "-1");
  for (int i = 0; i < kOpTypes; ++i) {
    const OpStats& s = run.ops[i];
    if (s.ok == 0) continue;
    out << '\t' << OpName(static_cast<OpType>(i)) << ':'
        << Fixed(static_cast<double>(s.ok) / run.seconds, 0) << ':'
        << Fixed(Ms(s.latency.ValueAtQuantile(0.5)), 3) << ':'
        << Fixed(Ms(s.latency.ValueAtQuantile(0.99)), 3) << ':'
        << Fixed(Ms(s.latency.ValueAtQuantile(0.999)), 3);
  }
  out << '\n';
  return absl::OkStatus();
}

absl::Status WritePlot(const std::string& path, const RunInfo& info, const PhaseResult& run) {
  const bool svg = path.size() > 4 && path.substr(path.size() - 4) == ".svg";
  const std::string dat = path + ".dat";
  const std::string gp = path + ".gp";
  {
    std::ofstream out(dat);
    if (!out) return absl::UnavailableError(Cat("cannot write ", dat));
    // One block per op (gnuplot's "index"): x = 1 / (1 - q), y = latency in ms.
    for (int i = 0; i < kOpTypes; ++i) {
      const OpStats& s = run.ops[i];
      if (s.ok == 0) continue;
      out << "# " << OpName(static_cast<OpType>(i)) << "\n";
      for (const auto& [q, v] : s.latency.PercentileSpectrum(8)) {
        if (q >= 1.0) continue;  // the max has no finite "1 in N"
        out << Fixed(1.0 / (1.0 - q), 4) << ' ' << Fixed(Ms(v), 4) << '\n';
      }
      out << "\n\n";
    }
  }
  std::ofstream script(gp);
  if (!script) return absl::UnavailableError(Cat("cannot write ", gp));
  script << "set terminal " << (svg ? "svg size 900,540" : "pngcairo size 900,540") << "\n"
         << "set output '" << path << "'\n"
         << "set title " << JsonString(Cat(info.label, ": latency by percentile")) << " noenhanced\n"
         << "set logscale x\nset xlabel 'percentile'\nset ylabel 'latency (ms)'\n"
         // Tic labels are formats too: '%%' is a percent sign.
         << "set xtics ('0%%' 1, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, "
            "'99.999%%' 100000)\n"
         << "set grid\nset key top left\n"
         << "plot ";
  int index = 0;
  for (int i = 0; i < kOpTypes; ++i) {
    if (run.ops[i].ok == 0) continue;
    script << (index > 0 ? ", " : "") << "'" << dat << "' index " << index
           << " using 1:2 with lines lw 2 title '" << OpName(static_cast<OpType>(i)) << "'";
    ++index;
  }
  script << "\n";
  script.close();
  if (index == 0) return absl::FailedPreconditionError("nothing to plot");
  const std::string command = Cat("gnuplot '", gp, "' 2>&1");
  if (std::system(command.c_str()) != 0) {
    return absl::UnavailableError(
        Cat("gnuplot failed (is gnuplot-nox installed?); data and script kept in ", dat, " and ",
            gp));
  }
  return absl::OkStatus();
}

}  // namespace dynamo::bench
