#include "server_cpu.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace dynamo::bench {
namespace {

std::optional<StatCpu> ReadStat(const std::filesystem::path& path, double ticks_per_second) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  return ParseStatCpu(line, ticks_per_second);
}

}  // namespace

std::optional<StatCpu> ParseStatCpu(std::string_view line, double ticks_per_second) {
  // "pid (name) state ppid ...": the name ends at the last ')'; utime and
  // stime are fields 14 and 15 (proc(5)).
  const size_t open = line.find('(');
  const size_t close = line.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open ||
      close + 2 > line.size()) {
    return std::nullopt;
  }
  std::istringstream rest{std::string(line.substr(close + 2))};
  std::string field;
  double utime = -1, stime = -1;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::atof(field.c_str());
    if (i == 15) stime = std::atof(field.c_str());
  }
  if (utime < 0 || stime < 0) return std::nullopt;
  return StatCpu{std::string(line.substr(open + 1, close - open - 1)),
                 (utime + stime) / ticks_per_second};
}

std::optional<ServerCpu> ReadServerCpu(const std::vector<int>& pids) {
  if (pids.empty()) return std::nullopt;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  ServerCpu cpu;
  for (int pid : pids) {
    const std::filesystem::path proc = "/proc/" + std::to_string(pid);
    std::optional<StatCpu> process = ReadStat(proc / "stat", tick);
    if (!process) return std::nullopt;
    cpu.total_s += process->seconds;
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(proc / "task", ec)) {
      // A thread may end while we list: it is then simply not counted here.
      if (std::optional<StatCpu> thread = ReadStat(task.path() / "stat", tick)) {
        cpu.by_thread_s[thread->name] += thread->seconds;
      }
    }
  }
  return cpu;
}

ServerCpu CpuBetween(const ServerCpu& before, const ServerCpu& after) {
  ServerCpu used;
  used.total_s = after.total_s - before.total_s;
  double named = 0;
  for (const auto& [name, seconds] : after.by_thread_s) {
    auto earlier = before.by_thread_s.find(name);
    // Fewer seconds than before: threads of that name ended; what is left is a lower bound.
    const double delta =
        std::max(0.0, seconds - (earlier == before.by_thread_s.end() ? 0.0 : earlier->second));
    if (delta > 0) used.by_thread_s[name] = delta;
    named += delta;
  }
  if (used.total_s - named > 0.005) used.by_thread_s[std::string(kEndedThreads)] = used.total_s - named;
  return used;
}

}  // namespace dynamo::bench
