#pragma once

// Records core/v1 Events about objects, as `kubectl describe` shows them.
// Repeats of the same event within kRepeatWindowMs bump the first one's
// count and lastTimestamp instead of creating another object. Best effort:
// a failure is returned but nothing retries. Thread-safe.

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "dynamo/json/json.h"
#include "dynamo/k8s/client.h"
#include "dynamo/k8s/clock.h"

namespace dynamo::k8s {

class EventRecorder {
 public:
  static constexpr int64_t kRepeatWindowMs = 10 * 60 * 1000;
  static constexpr size_t kRememberedMax = 1000;

  EventRecorder(Client* client, std::string component, std::string instance,
                const Clock& clock = SystemClock());

  // `involved`: the object (apiVersion, kind, metadata.name/namespace/uid).
  // `type`: Normal or Warning.
  absl::Status Record(const json::Value& involved, const std::string& type,
                      const std::string& reason, const std::string& message);

 private:
  struct Seen {
    std::string name;
    int64_t count = 0;
    int64_t last_ms = 0;
  };
  Client* const client_;
  const std::string component_;
  const std::string instance_;
  const Clock& clock_;
  std::mutex mu_;
  std::map<std::string, Seen> seen_;  // guarded by mu_
};

}  // namespace dynamo::k8s
