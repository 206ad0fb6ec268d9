#include "security.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "dynamo/base/strings.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_certificate_verifier.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace dynamo::server {
namespace {

absl::Status Readable(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) return absl::FailedPreconditionError(Cat("cannot read ", what, " file ", path));
  return absl::OkStatus();
}

// Constant-time comparison: a token's prefix must not be guessable by timing.
bool SameToken(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

absl::StatusOr<Credentials> MakeCredentials(const ServerOptions& options) {
  Credentials c;
  if (options.tls_cert.empty()) {
    c.server = grpc::InsecureServerCredentials();
    c.peer = grpc::InsecureChannelCredentials();
    return c;
  }
  for (auto [path, what] : {std::pair{options.tls_cert, "certificate"},
                            std::pair{options.tls_key, "key"}}) {
    if (absl::Status s = Readable(path, what); !s.ok()) return s;
  }
  if (!options.tls_ca.empty()) {
    if (absl::Status s = Readable(options.tls_ca, "CA"); !s.ok()) return s;
  }
  using grpc::experimental::FileWatcherCertificateProvider;
  const auto refresh = static_cast<unsigned int>(options.tls_reload_s);
  auto provider =
      options.tls_ca.empty()
          ? std::make_shared<FileWatcherCertificateProvider>(options.tls_key, options.tls_cert,
                                                             refresh)
          : std::make_shared<FileWatcherCertificateProvider>(options.tls_key, options.tls_cert,
                                                             options.tls_ca, refresh);
  grpc::experimental::TlsServerCredentialsOptions server(provider);
  server.watch_identity_key_cert_pairs();
  if (!options.tls_ca.empty()) {
    server.watch_root_certs();
    // Clients of the KV API may come without a certificate; peers must show
    // one the CA signed (checked per call in the Replica service).
    server.set_cert_request_type(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  c.server = grpc::experimental::TlsServerCredentials(server);

  grpc::experimental::TlsChannelCredentialsOptions peer;
  peer.set_certificate_provider(provider);
  peer.watch_identity_key_cert_pairs();
  if (!options.tls_ca.empty()) peer.watch_root_certs();
  peer.set_verify_server_certs(true);
  // Nodes are addressed by IP or pod DNS name, which certificates may not
  // list: the chain to the cluster CA is what authenticates a peer.
  peer.set_check_call_host(false);
  peer.set_certificate_verifier(std::make_shared<grpc::experimental::NoOpCertificateVerifier>());
  c.peer = grpc::experimental::TlsCredentials(peer);
  c.tls = true;
  return c;
}

bool IsAuthenticatedPeer(const grpc::ServerContextBase* context, bool tls) {
  if (!tls) return true;
  std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
  return auth != nullptr && auth->IsPeerAuthenticated();
}

absl::Status TokenFile::Load() {
  if (path_.empty()) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  Refresh();
  if (token_.empty()) {
    return absl::FailedPreconditionError(Cat("token file ", path_, " is missing or empty"));
  }
  return absl::OkStatus();
}

void TokenFile::Refresh() {
  struct stat st {};
  if (stat(path_.c_str(), &st) != 0) return;  // keep the last good token
  const int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (mtime == mtime_ns_) return;
  std::ifstream in(path_);
  std::stringstream buf;
  buf << in.rdbuf();
  std::string token = buf.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  if (token.empty()) return;
  token_ = std::move(token);
  mtime_ns_ = mtime;
}

bool TokenFile::Allows(const grpc::ServerContextBase* context) {
  if (path_.empty()) return true;
  std::string expected;
  {
    absl::MutexLock lock(&mu_);
    const auto now = std::chrono::steady_clock::now();
    if (now - checked_ > std::chrono::seconds(1)) {
      checked_ = now;
      Refresh();
    }
    expected = token_;
  }
  const auto& md = context->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return false;
  const std::string_view value(it->second.data(), it->second.size());
  constexpr std::string_view kBearer = "Bearer ";
  if (value.substr(0, kBearer.size()) != kBearer) return false;
  return SameToken(value.substr(kBearer.size()), expected);
}

}  // namespace dynamo::server
