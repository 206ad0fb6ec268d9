#pragma once

// The node's operational HTTP endpoint: GET /metrics (Prometheus text format
// 0.0.4 from a Registry), GET /healthz (liveness: 200 "ok", or 503 with the
// reason when a restart is the remedy) and GET /readyz (readiness: 200, or 503
// with the reason); both from caller-supplied checks.
// Built on cpprestsdk's http_listener, which stays an implementation detail:
// this header does not include it, and no cpprestsdk exception escapes.
//
//   dynamo::metrics::HttpEndpoint http("0.0.0.0:9100", &registry,
//       [&node](std::string* why) { return node.Ready(why); },
//       [&engine](std::string*) { return engine.Health().ok(); });
//   if (absl::Status s = http.Start(); !s.ok()) return s;
//   LOG(INFO) << "metrics at " << http.url() << "/metrics";

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "dynamo/metrics/registry.h"

namespace dynamo::metrics {

// Serves a Registry over HTTP. Start and Stop may be called from any thread;
// requests are handled on cpprestsdk's thread pool, so the checks must be
// thread-safe. The registry must outlive the endpoint.
class HttpEndpoint {
 public:
  // Returns true when the check passes; otherwise false with a reason in *why
  // (sent as the 503 body). Runs on a request thread. Readiness: should the
  // node receive traffic. Liveness: is the process working, or must it be
  // restarted.
  using Check = std::function<bool(std::string* why)>;

  // `listen_address` is "host:port" or ":port" (all IPv4 interfaces); the
  // host is an IPv4 address or a name, as cpprestsdk's listener cannot bind
  // IPv6 literals. Port 0 picks a free port at Start() (cpprestsdk cannot
  // report the port it bound, so we pick it); see port() and url().
  // A null check always passes.
  HttpEndpoint(std::string listen_address, const Registry* registry, Check ready,
               Check live = nullptr);
  ~HttpEndpoint();  // Stops.
  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  // Binds and starts serving. InvalidArgument for a malformed address,
  // FailedPrecondition if already started, Unavailable if the port is taken
  // or the host cannot be bound.
  [[nodiscard]] absl::Status Start();

  // Stops serving and closes connections; idempotent. Start may follow.
  void Stop();

  // The bound port (the picked one when the address said 0); 0 before Start.
  int port() const;

  // "http://host:port" for clients; a wildcard host reads as the loopback
  // address. Empty before Start.
  std::string url() const;

 private:
  class Impl;
  const std::string listen_address_;
  const Registry* const registry_;
  const Check ready_;
  const Check live_;
  mutable absl::Mutex mu_;
  std::unique_ptr<Impl> impl_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dynamo::metrics
