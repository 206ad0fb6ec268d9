#include "dynamo/k8s/events.h"

#include "dynamo/base/strings.h"
#include "dynamo/k8s/resources.h"

namespace dynamo::k8s {

EventRecorder::EventRecorder(Client* client, std::string component, std::string instance,
                             const Clock& clock)
    : client_(client),
      component_(std::move(component)),
      instance_(std::move(instance)),
      clock_(clock) {}

absl::Status EventRecorder::Record(const json::Value& involved, const std::string& type,
                                   const std::string& reason, const std::string& message) {
  const json::Value& meta = involved["metadata"];
  const std::string& ns = meta["namespace"].AsString();
  const std::string key = Cat(meta["uid"].AsString(), "|", ns, "|", meta["name"].AsString(), "|",
                              type, "|", reason, "|", message);
  const int64_t now_ms = clock_.SteadyMs();
  const std::string now = FormatRfc3339(clock_.UnixMicros());

  std::string existing;
  int64_t count = 1;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto it = seen_.find(key);
    if (it != seen_.end() && now_ms - it->second.last_ms < kRepeatWindowMs) {
      existing = it->second.name;
      count = ++it->second.count;
      it->second.last_ms = now_ms;
    }
  }
  if (!existing.empty()) {
    absl::StatusOr<json::Value> patched = client_->MergePatch(
        Events(), ns, existing, json::Value::Obj({{"count", count}, {"lastTimestamp", now}}));
    if (patched.ok()) return absl::OkStatus();
    if (!k8s::IsNotFound(patched.status())) return patched.status();
    // The event expired on the server: make a new one.
  }
  json::Value event = json::Value::Obj({
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata",
       json::Value::Obj({{"generateName", Cat(meta["name"].AsString(), ".")}, {"namespace", ns}})},
      {"involvedObject", json::Value::Obj({{"apiVersion", involved["apiVersion"]},
                                           {"kind", involved["kind"]},
                                           {"name", meta["name"]},
                                           {"namespace", ns},
                                           {"uid", meta["uid"]},
                                           {"resourceVersion", meta["resourceVersion"]}})},
      {"type", type},
      {"reason", reason},
      {"message", message},
      {"count", 1},
      {"firstTimestamp", now},
      {"lastTimestamp", now},
      {"source", json::Value::Obj({{"component", component_}})},
      {"reportingComponent", component_},
      {"reportingInstance", instance_},
  });
  absl::StatusOr<json::Value> created = client_->Create(Events(), ns, event);
  if (!created.ok()) return created.status();
  std::lock_guard<std::mutex> lock(mu_);
  if (seen_.size() >= kRememberedMax) {
    // Forget the oldest: a later repeat just makes a new event.
    auto oldest = seen_.begin();
    for (auto it = seen_.begin(); it != seen_.end(); ++it) {
      if (it->second.last_ms < oldest->second.last_ms) oldest = it;
    }
    seen_.erase(oldest);
  }
  seen_[key] = Seen{(*created).At({"metadata", "name"}).AsString(), 1, now_ms};
  return absl::OkStatus();
}

}  // namespace dynamo::k8s
