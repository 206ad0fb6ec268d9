#include "dynamo/k8s/config.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "dynamo/base/strings.h"
#include "dynamo/k8s/yaml.h"

namespace dynamo::k8s {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n')) ++i;
  return s.substr(i);
}

std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

std::string Resolve(const std::string& dir, const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  return dir + "/" + path;
}

const json::Value* Named(const json::Value& list, const std::string& name) {
  for (const json::Value& item : list.AsArray()) {
    if (item["name"].AsString() == name) return &item;
  }
  return nullptr;
}

// A "*-data" field (base64) or its file twin.
absl::StatusOr<std::string> DataOrFile(const json::Value& obj, const char* data_key,
                                       const char* file_key, const std::string& dir,
                                       const FileReader& read) {
  const std::string& data = obj[data_key].AsString();
  if (!data.empty()) {
    std::string decoded;
    if (!absl::Base64Unescape(ToAbsl(data), &decoded)) {
      return absl::InvalidArgumentError(Cat("kubeconfig: ", data_key, " is not valid base64"));
    }
    return decoded;
  }
  const std::string& file = obj[file_key].AsString();
  if (!file.empty()) return read(Resolve(dir, file));
  return std::string();
}

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(Cat("cannot read ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<std::string> GetEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

absl::StatusOr<Config> InClusterConfig(const EnvReader& env, const FileReader& read,
                                       const std::string& dir) {
  const std::optional<std::string> host = env("KUBERNETES_SERVICE_HOST");
  const std::optional<std::string> port = env("KUBERNETES_SERVICE_PORT");
  if (!host || !port || host->empty() || port->empty()) {
    return absl::FailedPreconditionError(
        "not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
        "are not set (use --kubeconfig outside a cluster)");
  }
  Config c;
  const std::string h = host->find(':') != std::string::npos ? Cat("[", *host, "]") : *host;
  c.server = Cat("https://", h, ":", *port);
  c.token_file = dir + "/token";
  absl::StatusOr<std::string> token = read(c.token_file);
  if (!token.ok()) {
    return absl::FailedPreconditionError(
        Cat("in-cluster: cannot read the service-account token: ", token.status().message()));
  }
  absl::StatusOr<std::string> ca = read(dir + "/ca.crt");
  if (!ca.ok()) {
    return absl::FailedPreconditionError(
        Cat("in-cluster: cannot read the service-account CA: ", ca.status().message()));
  }
  c.ca_pem = *ca;
  absl::StatusOr<std::string> ns = read(dir + "/namespace");
  c.default_namespace = ns.ok() ? Trim(*ns) : "default";
  return c;
}

absl::StatusOr<Config> KubeconfigConfig(const std::string& path, const std::string& context,
                                        const FileReader& read) {
  absl::StatusOr<std::string> text = read(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<json::Value> doc = ParseYaml(*text);
  if (!doc.ok()) return absl::InvalidArgumentError(Cat(path, ": ", doc.status().message()));
  const std::string dir = DirOf(path);
  const std::string ctx_name = context.empty() ? (*doc)["current-context"].AsString() : context;
  if (ctx_name.empty()) return absl::InvalidArgumentError(Cat(path, ": no current-context"));
  const json::Value* ctx = Named((*doc)["contexts"], ctx_name);
  if (ctx == nullptr) {
    return absl::NotFoundError(Cat(path, ": no context named \"", ctx_name, "\""));
  }
  const std::string& cluster_name = (*ctx).At({"context", "cluster"}).AsString();
  const std::string& user_name = (*ctx).At({"context", "user"}).AsString();
  const json::Value* cluster = Named((*doc)["clusters"], cluster_name);
  if (cluster == nullptr) {
    return absl::NotFoundError(Cat(path, ": no cluster named \"", cluster_name, "\""));
  }
  Config c;
  const json::Value& cl = (*cluster)["cluster"];
  c.server = cl["server"].AsString();
  if (c.server.empty()) return absl::InvalidArgumentError(Cat(path, ": cluster has no server"));
  while (!c.server.empty() && c.server.back() == '/') c.server.pop_back();
  c.insecure_skip_verify = cl["insecure-skip-tls-verify"].AsBool();
  absl::StatusOr<std::string> ca =
      DataOrFile(cl, "certificate-authority-data", "certificate-authority", dir, read);
  if (!ca.ok()) return ca.status();
  c.ca_pem = *ca;
  c.default_namespace = (*ctx).At({"context", "namespace"}).AsString();
  if (c.default_namespace.empty()) c.default_namespace = "default";

  const json::Value* user = Named((*doc)["users"], user_name);
  if (user == nullptr) return c;  // anonymous
  const json::Value& u = (*user)["user"];
  if (!u["exec"].is_null() || !u["auth-provider"].is_null()) {
    return absl::UnimplementedError(
        Cat(path, ": user \"", user_name,
            "\" authenticates with an exec plugin or auth provider, which this operator does not "
            "run; use a token or a client certificate"));
  }
  c.token = u["token"].AsString();
  c.token_file = Resolve(dir, u["tokenFile"].AsString());
  absl::StatusOr<std::string> cert =
      DataOrFile(u, "client-certificate-data", "client-certificate", dir, read);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = DataOrFile(u, "client-key-data", "client-key", dir, read);
  if (!key.ok()) return key.status();
  c.client_cert_pem = *cert;
  c.client_key_pem = *key;
  if (c.client_cert_pem.empty() != c.client_key_pem.empty()) {
    return absl::InvalidArgumentError(Cat(path, ": user \"", user_name,
                                          "\" has a client certificate without a key or "
                                          "the other way round"));
  }
  return c;
}

TokenSource::TokenSource(const Config& config, const Clock& clock, FileReader read)
    : fixed_(config.token), file_(config.token_file), clock_(clock), read_(std::move(read)) {}

std::string TokenSource::Token() {
  if (file_.empty()) return fixed_;
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_.SteadyMs();
  if (read_at_ms_ < 0 || now - read_at_ms_ >= kRereadMs) {
    absl::StatusOr<std::string> t = read_(file_);
    if (t.ok()) token_ = Trim(*t);  // keep the old token if the file is briefly missing
    read_at_ms_ = now;
  }
  return token_.empty() ? fixed_ : token_;
}

}  // namespace dynamo::k8s
