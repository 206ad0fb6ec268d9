#include "dynamo/k8s/reflector.h"

#include <algorithm>
#include <utility>

#include "dynamo/base/strings.h"

namespace dynamo::k8s {
namespace {

std::string KeyOf(const json::Value& object) {
  const json::Value& meta = object["metadata"];
  return Cat(meta["namespace"].AsString(), "/", meta["name"].AsString());
}

}  // namespace

Reflector::Reflector(Client* client, const ResourceType& type, ReflectorOptions options,
                     Handler handler)
    : client_(client), type_(type), options_(std::move(options)), handler_(std::move(handler)) {}

bool Reflector::synced() const {
  std::lock_guard<std::mutex> lock(mu_);
  return synced_;
}

std::vector<json::Value> Reflector::Items() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<json::Value> out;
  out.reserve(cache_.size());
  for (const auto& [key, v] : cache_) out.push_back(v);
  return out;
}

std::optional<json::Value> Reflector::Get(std::string_view ns, std::string_view name) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = cache_.find(Cat(ns, "/", name));
  if (it == cache_.end()) return std::nullopt;
  return it->second;
}

ReflectorStats Reflector::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

bool Reflector::Relist(Cancellation* cancel) {
  ListOptions lo;
  lo.label_selector = options_.label_selector;
  absl::StatusOr<ListResult> list = client_->List(type_, options_.ns, lo, cancel);
  if (!list.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.errors;
    return false;
  }
  std::map<std::string, json::Value> fresh;
  for (json::Value& item : list->items) {
    std::string key = KeyOf(item);
    fresh.emplace(std::move(key), std::move(item));
  }
  std::vector<std::pair<std::string, json::Value>> changes;  // (type, object)
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [key, old] : cache_) {
      if (!fresh.count(key)) changes.emplace_back("DELETED", old);
    }
    for (const auto& [key, now] : fresh) {
      const auto it = cache_.find(key);
      if (it == cache_.end()) {
        changes.emplace_back("ADDED", now);
      } else if (it->second.At({"metadata", "resourceVersion"}) !=
                 now.At({"metadata", "resourceVersion"})) {
        changes.emplace_back("MODIFIED", now);
      }
    }
    cache_ = std::move(fresh);
    synced_ = true;
    ++stats_.lists;
    stats_.resource_version = list->resource_version;
  }
  for (const auto& [type, object] : changes) handler_(type, object);
  return true;
}

void Reflector::Apply(std::string_view type, const json::Value& object) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.events;
    const std::string& rv = object.At({"metadata", "resourceVersion"}).AsString();
    if (!rv.empty()) stats_.resource_version = rv;
    if (type == "DELETED") {
      cache_.erase(KeyOf(object));
    } else {
      cache_[KeyOf(object)] = object;
    }
  }
  handler_(type, object);
}

void Reflector::Run(Cancellation* cancel) {
  bool need_list = true;
  int backoff_ms = options_.backoff_initial_ms;
  const auto back_off = [&] {
    const bool cancelled = cancel->SleepFor(backoff_ms);
    backoff_ms = std::min(backoff_ms * 2, options_.backoff_max_ms);
    return cancelled;
  };
  while (!cancel->cancelled()) {
    if (need_list) {
      if (!Relist(cancel)) {
        if (back_off()) return;
        continue;
      }
      need_list = false;
    }
    WatchOptions wo;
    wo.resource_version = stats().resource_version;
    wo.label_selector = options_.label_selector;
    wo.timeout_s = options_.watch_timeout_s;
    wo.allow_bookmarks = true;
    int delivered = 0;
    const absl::Status st = client_->Watch(
        type_, options_.ns, wo,
        [&](const WatchEvent& e) {
          ++delivered;
          if (e.type == "BOOKMARK") {
            std::lock_guard<std::mutex> lock(mu_);
            ++stats_.bookmarks;
            const std::string& rv = e.object.At({"metadata", "resourceVersion"}).AsString();
            if (!rv.empty()) stats_.resource_version = rv;
            return true;
          }
          Apply(e.type, e.object);
          return true;
        },
        cancel);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.watches;
    }
    if (cancel->cancelled()) return;
    if (st.ok()) {
      backoff_ms = options_.backoff_initial_ms;  // the server ended a healthy stream
      continue;
    }
    if (IsGone(st)) {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.gone;
      need_list = true;
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.errors;
    }
    if (delivered > 0) backoff_ms = options_.backoff_initial_ms;
    if (back_off()) return;
  }
}

}  // namespace dynamo::k8s
