#pragma once

// Keeps a local cache of one resource type current, as client-go's
// reflector does: list, then watch from the list's resourceVersion with
// bookmarks; resume a watch that ended from the last resourceVersion seen;
// re-list when the version is too old (HTTP 410, or an ERROR event with code
// 410 inside the stream); reconnect after errors with capped exponential
// backoff. After a re-list, objects that vanished are reported DELETED.
//
// Run() blocks on one thread; the cache and stats may be read from any
// thread. The handler runs on Run()'s thread.

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dynamo/json/json.h"
#include "dynamo/k8s/client.h"

namespace dynamo::k8s {

struct ReflectorOptions {
  std::string ns;  // empty: every namespace
  std::string label_selector;
  int watch_timeout_s = 300;
  int backoff_initial_ms = 250;
  int backoff_max_ms = 30000;
};

struct ReflectorStats {
  int lists = 0;
  int watches = 0;
  int gone = 0;  // 410s (both forms)
  int errors = 0;
  int bookmarks = 0;
  int events = 0;
  std::string resource_version;
};

class Reflector {
 public:
  // type: ADDED, MODIFIED or DELETED.
  using Handler = std::function<void(std::string_view type, const json::Value& object)>;

  Reflector(Client* client, const ResourceType& type, ReflectorOptions options, Handler handler);

  void Run(Cancellation* cancel);

  bool synced() const;
  std::vector<json::Value> Items() const;
  std::optional<json::Value> Get(std::string_view ns, std::string_view name) const;
  ReflectorStats stats() const;
  const ResourceType& type() const { return type_; }

 private:
  bool Relist(Cancellation* cancel);
  void Apply(std::string_view type, const json::Value& object);

  Client* const client_;
  const ResourceType type_;
  const ReflectorOptions options_;
  const Handler handler_;

  mutable std::mutex mu_;
  std::map<std::string, json::Value> cache_;  // "ns/name"; guarded by mu_
  bool synced_ = false;                       // guarded by mu_
  ReflectorStats stats_;                      // guarded by mu_
};

}  // namespace dynamo::k8s
