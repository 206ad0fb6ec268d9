#include "ctl/dev_cluster.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <sstream>

#include "ctl/admin_rpc.h"
#include "ctl/format.h"
#include "ctl/process.h"
#include "dynamo/base/strings.h"

namespace dynamo::ctl {
namespace {

namespace fs = std::filesystem;

constexpr char kConfFile[] = "cluster.conf";
constexpr size_t kLogTailLines = 20;
constexpr int64_t kStopAfterFailureMs = 5000;

std::string Addr(int port) { return Cat("127.0.0.1:", port); }

struct PidFile {
  std::string name;  // "n1"
  fs::path path;
  pid_t pid = 0;
};

// The node number of a file named "n<digits><suffix>", or -1.
int NodeIndex(const std::string& file, const std::string& suffix) {
  if (file.size() < 2 + suffix.size() || file[0] != 'n' ||
      file.compare(file.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return -1;
  }
  const std::string digits = file.substr(1, file.size() - 1 - suffix.size());
  if (digits.size() > 4 || !std::all_of(digits.begin(), digits.end(), ::isdigit)) return -1;
  return std::atoi(digits.c_str());
}

// DIR/nI.pid files, by node number.
std::vector<PidFile> ReadPidFiles(const fs::path& dir) {
  std::map<int, PidFile> found;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string file = e.path().filename().string();
    const int index = NodeIndex(file, ".pid");
    if (index < 0) continue;
    PidFile p{file.substr(0, file.size() - 4), e.path(), 0};
    std::ifstream in(e.path());
    long pid = 0;
    if (in >> pid && pid > 0) p.pid = static_cast<pid_t>(pid);
    found[index] = p;
  }
  std::vector<PidFile> out;
  for (auto& [index, p] : found) out.push_back(std::move(p));
  return out;
}

// A running process that is the node whose data is in `data_dir` (a pid
// file can outlive its process, and the pid be reused by something else).
// Known by its --data-dir rather than its program's name, which a symlink or
// another build may change.
bool IsRunningNode(pid_t pid, const fs::path& data_dir) {
  if (!ProcessRunning(pid)) return false;
  std::error_code ec;
  const fs::path wanted = fs::weakly_canonical(data_dir, ec);
  const std::string flag = "--data-dir=";
  for (const std::string& arg : ProcessArguments(pid)) {
    if (arg.rfind(flag, 0) == 0 && fs::weakly_canonical(arg.substr(flag.size()), ec) == wanted) {
      return true;
    }
  }
  return false;
}

struct ConfNode {
  std::string name, address, http;
};

std::vector<ConfNode> ReadConf(const fs::path& dir) {
  std::vector<ConfNode> nodes;
  std::ifstream in(dir / kConfFile);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string kind;
    ConfNode n;
    if (words >> kind >> n.name >> n.address >> n.http && kind == "node") nodes.push_back(n);
  }
  return nodes;
}

// How to run dynamoctl again: its bare name when PATH finds this executable.
std::string SelfCommand() {
  const std::string self = SelfExecutable();
  if (self.empty()) return "dynamoctl";
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "");
  std::string dir;
  std::error_code ec;
  while (std::getline(dirs, dir, ':')) {
    if (!dir.empty() && fs::equivalent(fs::path(dir) / "dynamoctl", self, ec)) return "dynamoctl";
  }
  return self;
}

std::string Quote(const std::string& s) {
  if (s.find_first_of(" \t'\"$\\") == std::string::npos) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

absl::Status ValidateDevUp(const DevUpOptions& o) {
  if (o.nodes < 1 || o.nodes > kDevNodesMax) {
    return absl::InvalidArgumentError(Cat("-n must be in [1, ", kDevNodesMax, "], not ", o.nodes));
  }
  auto range_ok = [&](int base) { return base >= 1 && base + o.nodes - 1 <= 65535; };
  if (!range_ok(o.base_port) || !range_ok(o.http_base_port)) {
    return absl::InvalidArgumentError(Cat("ports must fit in [1, 65535]: --base-port ", o.base_port,
                                          " and --http-base-port ", o.http_base_port, " with ",
                                          o.nodes, " nodes"));
  }
  if (o.base_port < o.http_base_port + o.nodes && o.http_base_port < o.base_port + o.nodes) {
    return absl::InvalidArgumentError(Cat("gRPC ports ", o.base_port, "..",
                                          o.base_port + o.nodes - 1, " overlap HTTP ports ",
                                          o.http_base_port, "..", o.http_base_port + o.nodes - 1));
  }
  if (o.storage != "rocksdb" && o.storage != "memory") {
    return absl::InvalidArgumentError(
        Cat("--storage must be rocksdb or memory, not '", o.storage, "'"));
  }
  if (o.replicas < 1 || o.read_quorum < 1 || o.write_quorum < 1 || o.read_quorum > o.replicas ||
      o.write_quorum > o.replicas) {
    return absl::InvalidArgumentError(
        Cat("need 1 <= R, W <= N: N=", o.replicas, " R=", o.read_quorum, " W=", o.write_quorum));
  }
  if (o.replicas > static_cast<uint32_t>(o.nodes)) {
    return absl::InvalidArgumentError(Cat("N=", o.replicas, " copies need at least ", o.replicas,
                                          " nodes, not ", o.nodes, " (pass --replicas)"));
  }
  if (o.dir.empty()) return absl::InvalidArgumentError("--dir must not be empty");
  return absl::OkStatus();
}

std::vector<std::string> DevNodeArgs(const DevUpOptions& o, const std::string& dir, int index) {
  const std::string name = Cat("n", index);
  return {
      Cat("--node-id=", name),
      Cat("--listen=", Addr(o.base_port + index - 1)),
      Cat("--http=", Addr(o.http_base_port + index - 1)),
      Cat("--data-dir=", (fs::path(dir) / name).string()),
      // Node 1 names only itself, so it founds the ring; the others join it.
      Cat("--seeds=", Addr(o.base_port)),
      Cat("--storage=", o.storage),
      Cat("--replicas=", o.replicas),
      Cat("--read-quorum=", o.read_quorum),
      Cat("--write-quorum=", o.write_quorum),
  };
}

int DevUp(const DevUpOptions& o, std::ostream& out, std::ostream& err) {
  if (absl::Status s = ValidateDevUp(o); !s.ok()) {
    err << "error: " << s.message() << "\n";
    return 1;
  }
  absl::StatusOr<std::string> binary = FindNodeBinary(o.node_binary);
  if (!binary.ok()) {
    err << "error: " << binary.status().message() << "\n";
    return 1;
  }
  std::error_code ec;
  const fs::path dir = fs::absolute(o.dir, ec);
  fs::create_directories(dir, ec);
  if (ec) {
    err << "error: cannot create " << dir.string() << ": " << ec.message() << "\n";
    return 1;
  }

  std::string running;
  for (const PidFile& p : ReadPidFiles(dir)) {
    if (IsRunningNode(p.pid, dir / p.name)) {
      running += Cat(running.empty() ? "" : ", ", p.name, " pid ", p.pid);
    } else {
      fs::remove(p.path, ec);  // stale: its process is gone
    }
  }
  if (!running.empty()) {
    err << "error: a dev cluster is already running in " << dir.string() << " (" << running
        << "): stop it first with `dynamoctl dev down --dir " << Quote(o.dir) << "`\n";
    return 1;
  }
  for (int i = 1; i <= o.nodes; ++i) {
    for (auto [port, what] :
         {std::pair{o.base_port + i - 1, "gRPC"}, std::pair{o.http_base_port + i - 1, "HTTP"}}) {
      if (!PortFree(port)) {
        err << "error: port " << port << " on 127.0.0.1 (the " << what << " port of n" << i
            << ") is in use: pick other ports with --base-port / --http-base-port\n";
        return 1;
      }
    }
  }
  {
    std::ofstream conf(dir / kConfFile, std::ios::trunc);
    conf << "# written by dynamoctl dev up: node NAME GRPC-ADDRESS HTTP-ADDRESS\n";
    for (int i = 1; i <= o.nodes; ++i) {
      conf << "node n" << i << " " << Addr(o.base_port + i - 1) << " "
           << Addr(o.http_base_port + i - 1) << "\n";
    }
  }

  std::vector<pid_t> pids;
  std::vector<std::string> addresses;
  auto give_up = [&](const std::string& why, const std::string& logs) {
    err << "error: " << why << "\n" << logs;
    (void)StopProcesses(pids, kStopAfterFailureMs);
    for (int i = 1; i <= o.nodes; ++i) fs::remove(dir / Cat("n", i, ".pid"), ec);
    err << "stopped the nodes; their data and logs are in " << dir.string() << "\n";
    return 1;
  };
  for (int i = 1; i <= o.nodes; ++i) {
    SpawnOptions spawn;
    spawn.binary = *binary;
    spawn.args = DevNodeArgs(o, dir.string(), i);
    spawn.log_path = (dir / Cat("n", i, ".log")).string();
    spawn.new_session = true;
    absl::StatusOr<pid_t> pid = Spawn(spawn);
    if (!pid.ok()) return give_up(Cat("cannot start n", i, ": ", pid.status().message()), "");
    pids.push_back(*pid);
    addresses.push_back(Addr(o.base_port + i - 1));
    std::ofstream(dir / Cat("n", i, ".pid"), std::ios::trunc) << *pid << "\n";
  }
  out << "started " << o.nodes << " dynamo-node processes (" << *binary << "), waiting up to "
      << o.wait_ms / 1000 << " s until every node is NORMAL and ready..." << std::endl;

  std::string died_log;
  absl::Status ready = WaitForCluster(
      addresses, static_cast<size_t>(o.nodes), o.wait_ms, o.rpc_timeout_ms, [&]() -> absl::Status {
        for (int i = 1; i <= o.nodes; ++i) {
          if (!ProcessRunning(pids[i - 1])) {
            const std::string log = (dir / Cat("n", i, ".log")).string();
            died_log = Cat("last lines of ", log, ":\n", TailFile(log, kLogTailLines));
            return absl::AbortedError(Cat("node n", i, " (pid ", pids[i - 1], ") exited"));
          }
        }
        return absl::OkStatus();
      });
  if (!ready.ok()) {
    std::string logs = died_log;
    if (logs.empty()) {
      for (int i = 1; i <= o.nodes; ++i) {
        const std::string log = (dir / Cat("n", i, ".log")).string();
        logs += Cat("last lines of ", log, ":\n", TailFile(log, 5));
      }
    }
    return give_up(std::string(ready.message()), logs);
  }

  const std::string ctl = SelfCommand();
  const std::string dir_flag = o.dir == ".dev-cluster" ? "" : Cat(" --dir ", Quote(o.dir));
  std::vector<std::vector<std::string>> rows = {{"NODE", "GRPC", "HTTP", "PID", "LOG"}};
  for (int i = 1; i <= o.nodes; ++i) {
    rows.push_back({Cat("n", i), addresses[i - 1], Addr(o.http_base_port + i - 1), Cat(pids[i - 1]),
                    (dir / Cat("n", i, ".log")).string()});
  }
  out << "dev cluster of " << o.nodes << " nodes is up (N=" << o.replicas << " R=" << o.read_quorum
      << " W=" << o.write_quorum << ", " << o.storage << " storage, data in " << dir.string()
      << "):\n"
      << FormatTable(rows) << "\nuse it:\n"
      << "  export DYNAMO_ADDR=" << addresses[0] << "\n"
      << "  " << ctl << " put greeting hello\n"
      << "  " << ctl << " get greeting\n"
      << "  " << ctl << " cluster status\n"
      << "  " << ctl << " ring\n"
      << "  curl -s http://" << Addr(o.http_base_port) << "/metrics\n"
      << "stop it:\n"
      << "  " << ctl << " dev down" << dir_flag << "           # keeps the data\n"
      << "  " << ctl << " dev down" << dir_flag << " --wipe    # removes data and logs\n";
  return 0;
}

int DevDown(const std::string& dir_arg, bool wipe, int64_t wait_ms, std::ostream& out,
            std::ostream& err) {
  std::error_code ec;
  const fs::path dir = fs::absolute(dir_arg, ec);
  if (!fs::is_directory(dir, ec)) {
    out << "no dev cluster in " << dir.string() << "\n";
    return 0;
  }
  const std::vector<PidFile> files = ReadPidFiles(dir);
  std::vector<pid_t> pids;
  std::vector<std::string> names;
  for (const PidFile& p : files) {
    if (IsRunningNode(p.pid, dir / p.name)) {
      pids.push_back(p.pid);
      names.push_back(p.name);
    } else if (ProcessRunning(p.pid)) {
      err << "warning: pid " << p.pid << " of " << p.path.string()
          << " is not the dynamo-node of " << (dir / p.name).string()
          << " (its pid was reused?): left alone\n";
    }
  }
  absl::StatusOr<std::vector<pid_t>> killed = StopProcesses(pids, wait_ms);
  if (!killed.ok()) {
    err << "error: " << killed.status().message() << "\n";
    return 1;
  }
  for (const PidFile& p : files) fs::remove(p.path, ec);
  if (!killed->empty()) {
    out << killed->size() << " node(s) did not stop within " << wait_ms
        << " ms of SIGTERM: killed\n";
  }
  std::string stopped;
  for (const std::string& n : names) stopped += Cat(stopped.empty() ? "" : " ", n);
  out << (pids.empty() ? std::string("no node was running")
                       : Cat("stopped ", pids.size(), " node(s): ", stopped))
      << " in " << dir.string() << "\n";
  if (wipe) {
    std::vector<fs::path> doomed;
    for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      const bool ours = NodeIndex(name, "") >= 0 || NodeIndex(name, ".log") >= 0 ||
                        NodeIndex(name, ".pid") >= 0 || name == kConfFile;
      if (ours) doomed.push_back(e.path());
    }
    for (const fs::path& p : doomed) fs::remove_all(p, ec);
    if (fs::is_empty(dir, ec)) fs::remove(dir, ec);
    out << "removed data and logs\n";
  }
  return 0;
}

int DevStatus(const std::string& dir_arg, int64_t rpc_timeout_ms, std::ostream& out,
              std::ostream& err) {
  std::error_code ec;
  const fs::path dir = fs::absolute(dir_arg, ec);
  const std::vector<ConfNode> nodes = ReadConf(dir);
  if (nodes.empty()) {
    err << "error: no dev cluster in " << dir.string() << " (no " << kConfFile << ")\n";
    return 1;
  }
  std::map<std::string, pid_t> pids;
  for (const PidFile& p : ReadPidFiles(dir)) pids[p.name] = p.pid;
  std::vector<std::vector<std::string>> rows = {
      {"NODE", "GRPC", "HTTP", "PID", "PROCESS", "STATE", "READY", "KEYS"}};
  size_t up = 0;
  for (const ConfNode& n : nodes) {
    auto it = pids.find(n.name);
    const bool running = it != pids.end() && IsRunningNode(it->second, dir / n.name);
    std::vector<std::string> row = {n.name,
                                    n.address,
                                    n.http,
                                    it == pids.end() ? "-" : Cat(it->second),
                                    running ? "running" : "stopped",
                                    "-",
                                    "-",
                                    "-"};
    if (running) {
      ++up;
      absl::StatusOr<v1::NodeStatus> s = NodeStatus(n.address, rpc_timeout_ms);
      if (s.ok()) {
        row[5] = NodeStateName(s->state());
        row[6] = s->ready() ? "yes" : "no";
        row[7] = Cat(s->keys());
      } else {
        row[5] = absl::StatusCodeToString(s.status().code());
      }
    }
    rows.push_back(row);
  }
  out << "dev cluster in " << dir.string() << ": " << up << " of " << nodes.size()
      << " nodes running\n"
      << FormatTable(rows);
  return 0;
}

}  // namespace dynamo::ctl
