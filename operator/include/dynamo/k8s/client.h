#pragma once

// A Kubernetes API client over the HttpClient interface: get, list (all
// pages), create, replace, merge patch, server-side apply, the status
// subresource, delete with a propagation policy, optimistic updates that
// re-read on 409 Conflict, and watch streams decoded line by line.
//
// Errors carry the API server's message; the Is*() helpers below classify
// them. A Client is safe for concurrent use from multiple threads.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "dynamo/json/json.h"
#include "dynamo/k8s/config.h"
#include "dynamo/k8s/http_client.h"
#include "dynamo/k8s/resources.h"

namespace dynamo::k8s {

bool IsNotFound(const absl::Status& s);       // 404
bool IsAlreadyExists(const absl::Status& s);  // 409, reason AlreadyExists
bool IsConflict(const absl::Status& s);       // 409 on a stale resourceVersion
bool IsGone(const absl::Status& s);           // 410: the resourceVersion is too old

// Maps an HTTP error response (with its Status body) to an absl::Status.
absl::Status StatusFromResponse(const HttpResponse& response, std::string_view what);

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int64_t page_size = 500;  // limit per page; pages follow "continue"
  int pages_max = 1000;     // a bound on one list
};

struct ListResult {
  std::vector<json::Value> items;
  std::string resource_version;  // the list's: where a watch starts
};

struct WatchOptions {
  std::string resource_version;
  std::string label_selector;
  std::string field_selector;
  int timeout_s = 300;  // the server ends the stream after this
  bool allow_bookmarks = true;
};

struct WatchEvent {
  std::string type;  // ADDED, MODIFIED, DELETED, BOOKMARK (ERROR is returned as a status)
  json::Value object;
};

// Splits a watch stream into events: chunks do not align with events, so
// bytes are buffered and split on newlines. Not thread-safe.
class WatchDecoder {
 public:
  static constexpr size_t kLineBytesMax = 16 << 20;

  // Feeds bytes; calls `on_line` with each complete, non-empty line. Fails
  // on a line longer than kLineBytesMax.
  absl::Status Feed(std::string_view chunk, const std::function<bool(std::string_view)>& on_line);
  size_t buffered() const { return buffer_.size(); }

 private:
  std::string buffer_;
};

// Parses one watch line. An ERROR event becomes its status (410 → IsGone).
absl::StatusOr<WatchEvent> ParseWatchEvent(std::string_view line);

class Client {
 public:
  static constexpr char kUserAgent[] = "dynamo-operator/0.1";

  // `tokens` may be null (no bearer token).
  Client(std::unique_ptr<HttpClient> http, std::shared_ptr<TokenSource> tokens);
  // The cpprestsdk transport for a config.
  static std::unique_ptr<Client> FromConfig(const Config& config);

  absl::StatusOr<json::Value> Get(const ResourceType& type, std::string_view ns,
                                  std::string_view name, Cancellation* cancel = nullptr);
  absl::StatusOr<ListResult> List(const ResourceType& type, std::string_view ns,
                                  const ListOptions& options = {}, Cancellation* cancel = nullptr);
  absl::StatusOr<json::Value> Create(const ResourceType& type, std::string_view ns,
                                     const json::Value& object);
  // PUT; the object's metadata.resourceVersion makes it conditional (409).
  absl::StatusOr<json::Value> Replace(const ResourceType& type, std::string_view ns,
                                      std::string_view name, const json::Value& object,
                                      std::string_view subresource = "");
  // JSON merge patch (RFC 7386). A metadata.resourceVersion in the patch is
  // a precondition.
  absl::StatusOr<json::Value> MergePatch(const ResourceType& type, std::string_view ns,
                                         std::string_view name, const json::Value& patch,
                                         std::string_view subresource = "");
  // Server-side apply (application/apply-patch+yaml; JSON is YAML).
  absl::StatusOr<json::Value> Apply(const ResourceType& type, std::string_view ns,
                                    std::string_view name, const json::Value& object,
                                    std::string_view field_manager, bool force = true);
  // propagation: Background, Foreground or Orphan. NotFound is not an error.
  absl::Status Delete(const ResourceType& type, std::string_view ns, std::string_view name,
                      std::string_view propagation = "Background",
                      std::string_view precondition_uid = "");
  // Reads, lets `mutate` change the object (false: nothing to do), writes it
  // back conditionally (PUT with its resourceVersion, on `subresource`), and
  // re-reads and retries on 409 Conflict, at most `attempts` times.
  absl::StatusOr<json::Value> Update(const ResourceType& type, std::string_view ns,
                                     std::string_view name,
                                     const std::function<bool(json::Value&)>& mutate,
                                     std::string_view subresource = "", int attempts = 5);
  // Watches until the server ends the stream (OK), `on_event` returns false
  // (OK), `cancel` fires (kCancelled), or an error: HTTP 410 and an in-stream
  // ERROR with code 410 both give IsGone().
  absl::Status Watch(const ResourceType& type, std::string_view ns, const WatchOptions& options,
                     const std::function<bool(const WatchEvent&)>& on_event,
                     Cancellation* cancel = nullptr);

 private:
  absl::StatusOr<json::Value> Call(HttpRequest request, std::string_view what,
                                   Cancellation* cancel = nullptr);
  void Authorize(HttpRequest* request);

  std::unique_ptr<HttpClient> http_;
  std::shared_ptr<TokenSource> tokens_;
};

}  // namespace dynamo::k8s
