#pragma once

// The HTTP the Kubernetes client needs, as a small interface: one request
// with its whole response, and a streaming GET that hands the body over in
// chunks as they arrive (for watches). One implementation sits on cpprestsdk
// (cpprest_http_client.h); nothing else in the operator sees cpprestsdk, so
// libcurl could replace it here alone.
//
// Implementations are safe for concurrent use from multiple threads.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace dynamo::k8s {

struct HttpRequest {
  std::string method = "GET";
  std::string path;  // absolute path, not escaped: "/api/v1/namespaces/db/pods"
  std::vector<std::pair<std::string, std::string>> query;  // not escaped
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string content_type;  // for the body
  int timeout_ms = 30000;    // the whole request; for a stream, the longest silence
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// Lets another thread abort a request in flight (a watch blocked on a quiet
// stream, at shutdown). Thread-safe.
class Cancellation {
 public:
  void Cancel();
  bool cancelled() const { return cancelled_.load(); }
  // Calls `fn` on Cancel(), or now if already cancelled. Returns an id for
  // Unregister; `fn` must not call back into this object.
  int Register(std::function<void()> fn);
  void Unregister(int id);
  // Sleeps up to `ms`; returns true at once when cancelled.
  bool SleepFor(int64_t ms);

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  int next_id_ = 1;
  std::map<int, std::function<void()>> callbacks_;  // guarded by mu_
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;

  // Sends one request. A transport failure (refused, reset, timeout, TLS) is
  // an error status; any HTTP status, 4xx and 5xx included, is a response.
  virtual absl::StatusOr<HttpResponse> Send(const HttpRequest& request,
                                            Cancellation* cancel = nullptr) = 0;

  // Sends a GET and, if the response is 2xx, calls `on_chunk` with the body's
  // bytes as they arrive, split anywhere, until the body ends, `on_chunk`
  // returns false, or `cancel` fires. Returns the status and headers (and
  // the whole body of a non-2xx response). A cancelled stream ends with
  // kCancelled.
  virtual absl::StatusOr<HttpResponse> Stream(
      const HttpRequest& request, const std::function<bool(std::string_view chunk)>& on_chunk,
      Cancellation* cancel = nullptr) = 0;
};

// "a=b&c=d" with percent-escaping, for implementations and tests.
std::string EncodeQuery(const std::vector<std::pair<std::string, std::string>>& query);
std::string PercentEncode(std::string_view s);

}  // namespace dynamo::k8s
