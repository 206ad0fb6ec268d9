#pragma once

// CPU time of the store's processes on this machine, in total and by thread
// name, from /proc (Linux). The split by thread says where a node's time goes
// (its event loop, gRPC's threads, RocksDB's flushes and compactions) with no
// profiler attached.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dynamo::bench {

struct ServerCpu {
  double total_s = 0;                         // user + system, every thread ever run
  std::map<std::string, double> by_thread_s;  // threads alive now, by name (comm)
};

// User + system seconds and the command name of one /proc/.../stat line;
// empty if the line does not parse. The name may hold spaces and ')'.
struct StatCpu {
  std::string name;
  double seconds = 0;
};
std::optional<StatCpu> ParseStatCpu(std::string_view line, double ticks_per_second);

// Empty if a process cannot be read (it exited, or runs elsewhere).
std::optional<ServerCpu> ReadServerCpu(const std::vector<int>& pids);

// The CPU used between two readings. A thread that ended in between counts in
// the total only; its time shows as kEndedThreads.
inline constexpr std::string_view kEndedThreads = "(ended threads)";
ServerCpu CpuBetween(const ServerCpu& before, const ServerCpu& after);

}  // namespace dynamo::bench
