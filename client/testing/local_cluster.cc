#include "testing/local_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "ctl/admin_rpc.h"
#include "ctl/process.h"
#include "dynamo/base/strings.h"

namespace dynamo::client::testing {
namespace {

constexpr int kLaunchAttemptsMax = 3;

}  // namespace

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(
    const LocalClusterOptions& options) {
  const char* env = std::getenv("DYNAMO_NODE_BINARY");
  absl::StatusOr<std::string> binary = ctl::FindNodeBinary(env ? env : "");
  if (!binary.ok()) return binary.status();
  absl::Status last;
  for (int attempt = 1; attempt <= kLaunchAttemptsMax; ++attempt) {
    std::unique_ptr<LocalCluster> cluster(new LocalCluster());
    last = cluster->Launch(options, *binary);
    if (last.ok()) return cluster;
    last = absl::Status(last.code(), Cat(last.message(), "\n", cluster->LogTails(15)));
  }
  return last;
}

absl::Status LocalCluster::Launch(const LocalClusterOptions& options, const std::string& binary) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = Cat(tmp && tmp[0] ? tmp : "/tmp", "/dynamo-client-test-XXXXXX");
  if (::mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(Cat("mkdtemp ", pattern, " failed"));
  }
  dir_ = pattern;
  absl::StatusOr<std::vector<int>> ports = ctl::PickFreePorts(2 * options.nodes);
  if (!ports.ok()) return ports.status();
  for (int i = 0; i < options.nodes; ++i) {
    Node n;
    n.id = Cat("n", i + 1);
    n.address = Cat("127.0.0.1:", (*ports)[2 * i]);
    n.http = Cat("127.0.0.1:", (*ports)[2 * i + 1]);
    n.log = Cat(dir_, "/", n.id, ".log");
    nodes_.push_back(n);
  }
  binary_ = binary;
  ready_wait_ms_ = options.ready_wait_ms;
  for (Node& n : nodes_) {
    n.args = {Cat("--node-id=", n.id),
              Cat("--listen=", n.address),
              Cat("--http=", n.http),
              Cat("--data-dir=", dir_, "/", n.id),
              Cat("--seeds=", nodes_[0].address),
              Cat("--storage=", options.storage),
              Cat("--replicas=", options.replicas),
              Cat("--read-quorum=", options.read_quorum),
              Cat("--write-quorum=", options.write_quorum)};
    n.args.insert(n.args.end(), options.extra_args.begin(), options.extra_args.end());
  }
  for (int i = 0; i < size(); ++i) {
    if (absl::Status s = Spawn(i); !s.ok()) return s;
  }
  return WaitReady(ready_wait_ms_);
}

absl::Status LocalCluster::Spawn(int i) {
  Node& n = nodes_[i];
  ctl::SpawnOptions spawn;
  spawn.binary = binary_;
  spawn.args = n.args;
  spawn.log_path = n.log;
  spawn.die_with_parent = true;
  absl::StatusOr<pid_t> pid = ctl::Spawn(spawn);
  if (!pid.ok()) return pid.status();
  n.pid = *pid;
  return absl::OkStatus();
}

absl::Status LocalCluster::WaitReady(int64_t wait_ms) {
  return ctl::WaitForCluster(addresses(), nodes_.size(), wait_ms, 1000, [this]() -> absl::Status {
    for (const Node& n : nodes_) {
      if (!ctl::ProcessRunning(n.pid)) {
        return absl::AbortedError(Cat(n.id, " is not running"));
      }
    }
    return absl::OkStatus();
  });
}

absl::Status LocalCluster::Restart(int i) {
  Kill(i);
  if (absl::Status s = Spawn(i); !s.ok()) return s;
  return WaitReady(ready_wait_ms_);
}

LocalCluster::~LocalCluster() {
  KillAll();
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

void LocalCluster::KillAll() {
  for (int i = 0; i < size(); ++i) Kill(i);
}

void LocalCluster::Kill(int i) {
  Node& n = nodes_[i];
  if (n.pid <= 0) return;
  // Only a child not yet reaped is killed: a reaped pid may belong to
  // another process by now.
  int status = 0;
  if (::waitpid(n.pid, &status, WNOHANG) == 0) {
    ::kill(n.pid, SIGKILL);
    ::waitpid(n.pid, &status, 0);
  }
  n.pid = 0;
}

std::vector<std::string> LocalCluster::addresses() const {
  std::vector<std::string> out;
  for (const Node& n : nodes_) out.push_back(n.address);
  return out;
}

int LocalCluster::IndexOfAddress(const std::string& address) const {
  for (int i = 0; i < size(); ++i) {
    if (nodes_[i].address == address) return i;
  }
  return -1;
}

std::string LocalCluster::LogTails(size_t lines) const {
  std::string out;
  for (const Node& n : nodes_) {
    out += Cat("--- last lines of ", n.log, " ---\n", ctl::TailFile(n.log, lines));
  }
  return out;
}

absl::StatusOr<std::string> HttpGet(const std::string& host_port, const std::string& path,
                                    int64_t timeout_ms) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError("need host:port");
  const std::string host = host_port.substr(0, colon);
  const int port = std::atoi(host_port.c_str() + colon + 1);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  timeval tv{static_cast<time_t>(timeout_ms / 1000),
             static_cast<suseconds_t>(timeout_ms % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return absl::UnavailableError(Cat("cannot connect to ", host_port));
  }
  const std::string request =
      Cat("GET ", path, " HTTP/1.0\r\nHost: ", host_port, "\r\nConnection: close\r\n\r\n");
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    ::close(fd);
    return absl::UnavailableError(Cat("cannot send to ", host_port));
  }
  std::string response;
  char buf[16384];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const size_t body = response.find("\r\n\r\n");
  if (response.rfind("HTTP/1.", 0) != 0 || body == std::string::npos) {
    return absl::UnavailableError(Cat("no HTTP answer from ", host_port, path));
  }
  if (response.compare(9, 3, "200") != 0) {
    return absl::UnavailableError(
        Cat(host_port, path, ": ", response.substr(0, response.find('\r'))));
  }
  return response.substr(body + 4);
}

double MetricSum(const std::string& exposition, const std::string& metric,
                 const std::vector<std::string>& labels) {
  double sum = 0;
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(metric, 0) != 0) continue;
    const char next = line.size() > metric.size() ? line[metric.size()] : '\0';
    if (next != '{' && next != ' ') continue;  // another metric with this prefix
    const size_t close = line.find('}');
    const std::string label_set = next == '{' && close != std::string::npos
                                      ? line.substr(metric.size(), close - metric.size() + 1)
                                      : "";
    bool match = true;
    for (const std::string& l : labels) {
      match = match && (label_set.find("{" + l + ",") != std::string::npos ||
                        label_set.find("," + l + ",") != std::string::npos ||
                        label_set.find("{" + l + "}") != std::string::npos ||
                        label_set.find("," + l + "}") != std::string::npos);
    }
    if (!match) continue;
    sum += std::strtod(line.c_str() + line.rfind(' ') + 1, nullptr);
  }
  return sum;
}

}  // namespace dynamo::client::testing
