#pragma once

// Where the API server is and how to authenticate to it: from inside a pod
// (the service account's token, CA and KUBERNETES_SERVICE_HOST/PORT) or from
// a kubeconfig file (its current context: server, CA data or file, and a
// bearer token, token file, or client certificate and key).

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "dynamo/k8s/clock.h"

namespace dynamo::k8s {

struct Config {
  std::string server;  // "https://10.96.0.1:443"
  std::string ca_pem;
  bool insecure_skip_verify = false;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string token;       // a fixed bearer token
  std::string token_file;  // re-read periodically (service-account tokens rotate)
  std::string default_namespace;
};

// Reads files; tests pass their own.
using FileReader = std::function<absl::StatusOr<std::string>(const std::string& path)>;
using EnvReader = std::function<std::optional<std::string>(const std::string& name)>;
absl::StatusOr<std::string> ReadFile(const std::string& path);
std::optional<std::string> GetEnv(const std::string& name);

inline constexpr char kServiceAccountDir[] = "/var/run/secrets/kubernetes.io/serviceaccount";

absl::StatusOr<Config> InClusterConfig(const EnvReader& env = GetEnv,
                                       const FileReader& read = ReadFile,
                                       const std::string& dir = kServiceAccountDir);

// `context` empty: the file's current-context. Relative file paths in the
// kubeconfig are relative to the file's directory.
absl::StatusOr<Config> KubeconfigConfig(const std::string& path, const std::string& context = "",
                                        const FileReader& read = ReadFile);

// The bearer token to send, re-reading the token file once the last read is
// older than kRereadMs. Thread-safe.
class TokenSource {
 public:
  static constexpr int64_t kRereadMs = 60 * 1000;

  TokenSource(const Config& config, const Clock& clock = SystemClock(), FileReader read = ReadFile);
  // Empty when the config has no token (client certificates, or none).
  std::string Token();

 private:
  const std::string fixed_;
  const std::string file_;
  const Clock& clock_;
  const FileReader read_;
  std::mutex mu_;
  std::string token_;        // guarded by mu_
  int64_t read_at_ms_ = -1;  // guarded by mu_
};

}  // namespace dynamo::k8s
