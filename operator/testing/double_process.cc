#include "double_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "dynamo/base/strings.h"
#include "dynamo/k8s/cpprest_http_client.h"

#ifndef DYNAMO_KUBE_DOUBLE
#error "DYNAMO_KUBE_DOUBLE must name kube_double.py"
#endif

namespace dynamo::testing {

std::string MakeTempDir(const std::string& prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = Cat(base && *base ? base : "/tmp", "/", prefix, "-XXXXXX");
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  const char* made = mkdtemp(buf.data());
  return made ? std::string(made) : std::string();
}

void KillGroup(pid_t pgid, int grace_ms) {
  if (pgid <= 0) return;
  ::kill(-pgid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    const pid_t r = waitpid(pgid, &status, WNOHANG);
    if (r == pgid || (r < 0 && errno == ECHILD)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(-pgid, SIGKILL);  // stragglers of the group (pods' processes)
  int status = 0;
  waitpid(pgid, &status, WNOHANG);
}

absl::StatusOr<std::unique_ptr<KubeDouble>> KubeDouble::Start(const DoubleOptions& options) {
  std::unique_ptr<KubeDouble> d(new KubeDouble());
  d->work_dir_ = MakeTempDir("kube-double");
  if (d->work_dir_.empty()) return absl::InternalError("mkdtemp failed");
  const std::string port_file = d->work_dir_ + "/port";
  const std::string log_file = d->work_dir_ + "/double.log";
  std::vector<std::string> args = {"python3",
                                   DYNAMO_KUBE_DOUBLE,
                                   "--port=0",
                                   "--port-file=" + port_file,
                                   "--work-dir=" + d->work_dir_,
                                   "--pod-ip-prefix=" + options.pod_ip_prefix,
                                   "--pod-ip-start=" + std::to_string(options.pod_ip_start)};
  if (!options.node_binary.empty()) args.push_back("--node-binary=" + options.node_binary);
#ifdef DYNAMO_CRD_FILE
  if (options.validate_crd) {
    // Validate DynamoClusters (spec and the status the operator writes) as a
    // real API server would, when the packaging's validator can run.
    args.push_back("--crd=" DYNAMO_CRD_FILE);
    args.push_back("--crd-helpers=" DYNAMO_CRD_HELPERS);
  }
#endif
  for (const std::string& a : options.extra_args) args.push_back(a);

  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    setpgid(0, 0);
    const int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp("python3", argv.data());
    _exit(127);
  }
  setpgid(pid, pid);
  d->pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(port_file);
    int port = 0;
    if (in >> port && port > 0) {
      d->port_ = port;
      d->http_ = k8s::NewCppRestHttpClient(d->url());
      return d;
    }
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      d->pid_ = -1;
      return absl::InternalError(Cat("kube_double.py exited at start; see ", log_file));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(Cat("kube_double.py did not start; see ", log_file));
}

KubeDouble::~KubeDouble() {
  Stop();
  if (!keep_ && !std::getenv("DYNAMO_KEEP_TEST_DIRS") && !work_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(work_dir_, ec);
  }
}

void KubeDouble::Stop() {
  if (pid_ > 0) KillGroup(pid_, 8000);
  pid_ = -1;
}

std::string KubeDouble::url() const { return Cat("http://127.0.0.1:", port_); }

std::unique_ptr<k8s::Client> KubeDouble::NewClient() const {
  return std::make_unique<k8s::Client>(k8s::NewCppRestHttpClient(url()), nullptr);
}

absl::StatusOr<json::Value> KubeDouble::Control(const std::string& method, const std::string& path,
                                                const json::Value& body, const std::string& query) {
  k8s::HttpRequest r;
  r.method = method;
  r.path = path;
  if (!body.is_null()) {
    r.body = body.Dump();
    r.content_type = "application/json";
  }
  if (!query.empty()) {
    const size_t eq = query.find('=');
    r.query.emplace_back(query.substr(0, eq), eq == std::string::npos ? "" : query.substr(eq + 1));
  }
  absl::StatusOr<k8s::HttpResponse> resp = http_->Send(r);
  if (!resp.ok()) return resp.status();
  if (resp->status != 200) return absl::InternalError(Cat(path, ": HTTP ", resp->status));
  return json::Parse(resp->body);
}

absl::Status KubeDouble::Compact() { return Control("POST", "/_double/compact").status(); }
absl::Status KubeDouble::ExpireWatches(const std::string& form) {
  return Control("POST", "/_double/expire-watches", json::Value(), "form=" + form).status();
}
absl::Status KubeDouble::Configure(const json::Value& config) {
  return Control("POST", "/_double/config", config).status();
}
absl::Status KubeDouble::InjectFault(const json::Value& fault) {
  return Control("POST", "/_double/fail", fault).status();
}
absl::StatusOr<std::vector<json::Value>> KubeDouble::Requests() {
  absl::StatusOr<json::Value> r = Control("GET", "/_double/requests");
  if (!r.ok()) return r.status();
  return (*r)["requests"].AsArray();
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::vector<std::string>& argv, const std::string& log_path) {
  std::unique_ptr<ChildProcess> p(new ChildProcess());
  p->log_path_ = log_path;
  std::vector<std::string> args = argv;
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    setpgid(0, 0);
    const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    std::vector<char*> cargv;
    for (std::string& a : args) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  setpgid(pid, pid);
  p->pid_ = pid;
  return p;
}

ChildProcess::~ChildProcess() { Kill(); }

bool ChildProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    ::kill(-pid_, SIGKILL);
    pid_ = -1;
    return false;
  }
  return true;
}

int ChildProcess::Terminate(int timeout_ms) {
  if (pid_ <= 0) return exit_code_;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!Running()) return exit_code_;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill();
  return -1;
}

void ChildProcess::Kill() {
  if (pid_ <= 0) return;
  KillGroup(pid_, 2000);
  pid_ = -1;
}

std::string ChildProcess::LogTail(size_t bytes) const {
  std::ifstream in(log_path_);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return all.size() > bytes ? all.substr(all.size() - bytes) : all;
}

std::string WriteKubeconfig(const std::string& dir, const std::string& server_url) {
  const std::string path = dir + "/kubeconfig";
  std::ofstream out(path);
  out << "apiVersion: v1\nkind: Config\ncurrent-context: double\nclusters:\n- name: double\n"
         "  cluster:\n    server: "
      << server_url
      << "\ncontexts:\n- name: double\n  context:\n    cluster: double\n    user: test\n"
         "    namespace: db\nusers:\n- name: test\n  user:\n    token: test-token\n";
  return path;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

}  // namespace dynamo::testing
