#include "ctl/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <thread>

#include "dynamo/base/strings.h"

namespace dynamo::ctl {
namespace {

constexpr int64_t kPollMs = 50;
constexpr int64_t kKillWaitMs = 5000;

bool Executable(const std::string& path) {
  struct stat st;
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

// A socket bound to 127.0.0.1:port, or -1.
int BindLoopback(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  // As servers do (gRPC's included): connections of a stopped node that linger
  // in TIME_WAIT do not make its port unusable, a listening socket still does.
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

absl::StatusOr<pid_t> Spawn(const SpawnOptions& options) {
  // Everything the child needs is prepared before fork: between fork and exec
  // a multi-threaded parent's child may only make async-signal-safe calls.
  std::vector<std::string> argv_storage;
  argv_storage.push_back(options.binary);
  argv_storage.insert(argv_storage.end(), options.args.begin(), options.args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  const int log_fd =
      ::open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::FailedPreconditionError(
        Cat("cannot open log file ", options.log_path, ": ", std::strerror(errno)));
  }
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    ::close(log_fd);
    return absl::FailedPreconditionError(Cat("cannot open /dev/null: ", std::strerror(errno)));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    ::close(null_fd);
    return absl::ResourceExhaustedError(Cat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    if (options.die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);  // the parent died before prctl
    }
    if (options.new_session) ::setsid();
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGPIPE, SIG_DFL);
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // Nothing else of ours (sockets, a test runner's pipes) stays open in the
    // node: a pipe held by a detached node would keep its reader waiting.
    ::close_range(3, ~0u, 0);
    ::execv(argv[0], argv.data());
    static const char kMsg[] = "exec of the node binary failed\n";
    [[maybe_unused]] ssize_t n = ::write(2, kMsg, sizeof kMsg - 1);
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(null_fd);
  return pid;
}

bool ProcessRunning(pid_t pid) {
  if (pid <= 0) return false;
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) == pid) return false;  // our child, now reaped
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  // A zombie still answers kill(0); nobody may be reaping it (no init in a container).
  std::ifstream stat(Cat("/proc/", pid, "/stat"));
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return true;
  const char state = line[paren + 2];
  return state != 'Z' && state != 'X';
}

std::vector<std::string> ProcessArguments(pid_t pid) {
  std::ifstream in(Cat("/proc/", pid, "/cmdline"), std::ios::binary);
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  return args;
}

absl::StatusOr<std::vector<pid_t>> StopProcesses(const std::vector<pid_t>& pids, int64_t wait_ms) {
  for (pid_t pid : pids) {
    if (ProcessRunning(pid)) ::kill(pid, SIGTERM);
  }
  auto wait_all = [&](int64_t ms) {
    const int64_t deadline = MonotonicMs() + ms;
    while (true) {
      bool any = false;
      for (pid_t pid : pids) any = any || ProcessRunning(pid);
      if (!any || MonotonicMs() >= deadline) return !any;
      std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
    }
  };
  std::vector<pid_t> killed;
  if (wait_all(wait_ms)) return killed;
  for (pid_t pid : pids) {
    if (ProcessRunning(pid)) {
      ::kill(pid, SIGKILL);
      killed.push_back(pid);
    }
  }
  if (wait_all(kKillWaitMs)) return killed;
  std::string left;
  for (pid_t pid : pids) {
    if (ProcessRunning(pid)) left += Cat(left.empty() ? "" : ", ", pid);
  }
  return absl::DeadlineExceededError(Cat("processes still running after SIGKILL: ", left));
}

std::string TailFile(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(std::move(line));
    if (tail.size() > lines) tail.pop_front();
  }
  std::string out;
  for (const std::string& l : tail) out += l + "\n";
  return out;
}

bool PortFree(int port) {
  const int fd = BindLoopback(port);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

bool Accepting(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) return true;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(host_port.c_str() + colon + 1)));
  if (::inet_pton(AF_INET, host_port.substr(0, colon).c_str(), &addr.sin_addr) != 1) return true;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

absl::StatusOr<std::vector<int>> PickFreePorts(size_t count) {
  std::vector<int> fds, ports;
  absl::Status status;
  for (size_t i = 0; i < count; ++i) {
    const int fd = BindLoopback(0);  // held open until all are picked: distinct ports
    if (fd < 0) {
      status =
          absl::ResourceExhaustedError(Cat("cannot bind a loopback port: ", std::strerror(errno)));
      break;
    }
    fds.push_back(fd);
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ports.push_back(ntohs(addr.sin_port));
  }
  for (int fd : fds) ::close(fd);
  if (!status.ok()) return status;
  return ports;
}

std::string SelfExecutable() {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "" : p.string();
}

absl::StatusOr<std::string> FindNodeBinary(const std::string& explicit_path) {
  if (!explicit_path.empty()) {
    if (Executable(explicit_path)) return std::filesystem::absolute(explicit_path).string();
    return absl::NotFoundError(Cat("--node-binary ", explicit_path, " is not an executable file"));
  }
  std::vector<std::string> tried;
  const std::string self = SelfExecutable();
  if (!self.empty()) {
    const std::filesystem::path dir = std::filesystem::path(self).parent_path();
    for (const std::filesystem::path& p :
         {dir / "dynamo-node", dir.parent_path() / "node" / "dynamo-node"}) {
      tried.push_back(p.string());
      if (Executable(p.string())) return p.string();
    }
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = dirs.substr(start, end - start);
    if (!dir.empty()) {
      const std::string candidate = dir + "/dynamo-node";
      if (Executable(candidate)) return candidate;
    }
    start = end + 1;
  }
  tried.push_back("$PATH");
  std::string where;
  for (const std::string& t : tried) where += Cat(where.empty() ? "" : ", ", t);
  return absl::NotFoundError(
      Cat("cannot find dynamo-node (looked at ", where, "): pass --node-binary PATH"));
}

}  // namespace dynamo::ctl
