#pragma once

// Starting, watching and stopping node processes (Linux), for `dynamoctl dev`
// and the integration tests.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace dynamo::ctl {

struct SpawnOptions {
  std::string binary;
  std::vector<std::string> args;  // after argv[0]
  std::string log_path;           // stdout and stderr, appended; stdin is /dev/null
  // Own session (setsid): the process outlives the caller and its terminal.
  bool new_session = false;
  // SIGKILL the process when the spawning thread exits (tests: nothing is
  // left behind even if the test process dies).
  bool die_with_parent = false;
};

// Forks and execs. A failing exec is reported in the log and by exit code 127.
[[nodiscard]] absl::StatusOr<pid_t> Spawn(const SpawnOptions& options);

// The process exists and is not a zombie. Reaps it first if it is our child.
bool ProcessRunning(pid_t pid);

// /proc/PID/cmdline's arguments, the program first (none if gone).
std::vector<std::string> ProcessArguments(pid_t pid);

// Sends SIGTERM (or `signal`) to every pid, waits up to `wait_ms` for all to
// exit, then SIGKILLs the rest and waits up to 5 s more. Returns the pids
// that had to be killed; an error if some still run.
[[nodiscard]] absl::StatusOr<std::vector<pid_t>> StopProcesses(const std::vector<pid_t>& pids,
                                                               int64_t wait_ms);

// The last `lines` lines of a file ("" if unreadable).
std::string TailFile(const std::string& path, size_t lines);

// Whether a TCP port on 127.0.0.1 can be bound now.
bool PortFree(int port);

// Whether a TCP connection to HOST:PORT (an IPv4 literal) is accepted now.
// Other hosts are not probed: true.
bool Accepting(const std::string& host_port);

// Ports the kernel hands out as free (bound to 127.0.0.1:0, then released),
// distinct. For tests that run concurrently.
[[nodiscard]] absl::StatusOr<std::vector<int>> PickFreePorts(size_t count);

// This executable's absolute path ("" if unknown).
std::string SelfExecutable();

// The dynamo-node to run: `explicit_path` if given (must be executable);
// else dynamo-node next to this executable, then in ../node/ of it (a build
// tree), then on PATH. NotFound says where it looked.
[[nodiscard]] absl::StatusOr<std::string> FindNodeBinary(const std::string& explicit_path);

int64_t MonotonicMs();

}  // namespace dynamo::ctl
