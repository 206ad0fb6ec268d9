#pragma once

// Runs the Kubernetes API double (kube_double.py) as a child process for a
// test: its own process group (so that its pods' processes die with it), a
// fresh work directory, a port chosen by the kernel. The destructor stops the
// whole group, even when the test failed. Not thread-safe.

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "dynamo/json/json.h"
#include "dynamo/k8s/client.h"
#include "dynamo/k8s/http_client.h"

namespace dynamo::testing {

struct DoubleOptions {
  std::string node_binary;  // e2e: pods are real processes
  std::string pod_ip_prefix = "127.0.0.";
  int pod_ip_start = 10;
  std::vector<std::string> extra_args;
  // Validate DynamoClusters against charts/dynamo/crds (when the packaging's
  // validator and its Python modules are available).
  bool validate_crd = true;
};

class KubeDouble {
 public:
  static absl::StatusOr<std::unique_ptr<KubeDouble>> Start(const DoubleOptions& options = {});
  ~KubeDouble();

  int port() const { return port_; }
  std::string url() const;
  const std::string& work_dir() const { return work_dir_; }
  std::unique_ptr<k8s::Client> NewClient() const;

  // The test controls (see kube_double.py).
  absl::StatusOr<json::Value> Control(const std::string& method, const std::string& path,
                                      const json::Value& body = json::Value(),
                                      const std::string& query = "");
  absl::Status Compact();
  absl::Status ExpireWatches(const std::string& form);  // "stream" or "close"
  absl::Status Configure(const json::Value& config);
  absl::Status InjectFault(const json::Value& fault);
  absl::StatusOr<std::vector<json::Value>> Requests();
  void Stop();
  // The work directory (volumes, pod and operator logs) is removed with the
  // double unless kept (tests keep it when they fail) or DYNAMO_KEEP_TEST_DIRS
  // is set.
  void KeepWorkDir() { keep_ = true; }

 private:
  KubeDouble() = default;
  bool keep_ = false;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string work_dir_;
  std::unique_ptr<k8s::HttpClient> http_;
};

// Runs a program (the operator) in its own process group with its output in
// `log_path`; the destructor stops the group. Not thread-safe.
class ChildProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(const std::vector<std::string>& argv,
                                                             const std::string& log_path);
  ~ChildProcess();
  pid_t pid() const { return pid_; }
  bool Running();
  // SIGTERM, then waits up to `timeout_ms`; the exit code, or -1 on timeout
  // (then the group is killed).
  int Terminate(int timeout_ms);
  void Kill();
  const std::string& log_path() const { return log_path_; }
  std::string LogTail(size_t bytes = 4000) const;

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::string log_path_;
};

// A kubeconfig naming the double's URL (token auth), in `dir`.
std::string WriteKubeconfig(const std::string& dir, const std::string& server_url);

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

// A fresh directory under $TMPDIR (or /tmp) named after `prefix`.
std::string MakeTempDir(const std::string& prefix);

// Stops a process group: SIGTERM, then SIGKILL after `grace_ms`.
void KillGroup(pid_t pgid, int grace_ms = 5000);

}  // namespace dynamo::testing
