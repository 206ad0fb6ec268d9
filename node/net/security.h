#pragma once

// Transport security of dynamo-node: TLS credentials built from certificate
// files that are re-read when they change, and bearer tokens read from files.

#include <chrono>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "dynamo/server/options.h"
#include "grpcpp/grpcpp.h"

namespace dynamo::server {

struct Credentials {
  std::shared_ptr<grpc::ServerCredentials> server;
  std::shared_ptr<grpc::ChannelCredentials> peer;  // for calls to other nodes
  bool tls = false;
};

// Insecure credentials without --tls-cert; else TLS whose server side asks
// for (and verifies) client certificates against --tls-ca, and whose peer
// side presents this node's certificate and verifies the peer's chain.
absl::StatusOr<Credentials> MakeCredentials(const ServerOptions& options);

// True if the call came from a peer whose certificate the CA signed (or if
// TLS is off: then every peer is trusted, as on a private network).
bool IsAuthenticatedPeer(const grpc::ServerContextBase* context, bool tls);

// A bearer token held in a file, re-read when the file changes (checked at
// most once a second). An empty path means no token is required.
// Thread-safe.
class TokenFile {
 public:
  explicit TokenFile(std::string path) : path_(std::move(path)) {}
  // Reads the file once: a missing or empty token file is an error at start.
  absl::Status Load();
  // True if no token is required or the call's "authorization" metadata is
  // "Bearer <token>".
  bool Allows(const grpc::ServerContextBase* context);

 private:
  void Refresh() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  int64_t mtime_ns_ ABSL_GUARDED_BY(mu_) = 0;
  std::chrono::steady_clock::time_point checked_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dynamo::server
