#include "router.h"

#include <algorithm>
#include <set>

namespace dynamo::client::internal {

void HealthTracker::MarkFailed(const std::string& address, int64_t now_ms) {
  // Bound: forget expired marks first, then (a cluster larger than the bound)
  // the mark that expires soonest.
  if (down_until_ms_.size() >= kAddressesMax && !down_until_ms_.contains(address)) {
    std::erase_if(down_until_ms_, [&](const auto& e) { return e.second <= now_ms; });
    if (down_until_ms_.size() >= kAddressesMax) {
      auto soonest =
          std::min_element(down_until_ms_.begin(), down_until_ms_.end(),
                           [](const auto& a, const auto& b) { return a.second < b.second; });
      down_until_ms_.erase(soonest);
    }
  }
  down_until_ms_[address] = now_ms + down_ms_;
}

void HealthTracker::MarkSucceeded(const std::string& address) { down_until_ms_.erase(address); }

bool HealthTracker::Healthy(const std::string& address, int64_t now_ms) const {
  auto it = down_until_ms_.find(address);
  return it == down_until_ms_.end() || it->second <= now_ms;
}

std::vector<std::string> PlanClientDriven(const Topology& topology, std::string_view key,
                                          const HealthTracker& tracker, int64_t now_ms,
                                          uint64_t rotation) {
  std::vector<std::string> replicas, others, unhealthy;
  size_t position = 0;
  for (const Topology::Node* node : topology.PreferenceOrder(key)) {
    const bool replica = position++ < topology.replicas;
    if (node == nullptr || node->address.empty()) continue;
    if (!node->alive || !tracker.Healthy(node->address, now_ms)) {
      unhealthy.push_back(node->address);
    } else {
      (replica ? replicas : others).push_back(node->address);
    }
  }
  if (!replicas.empty()) {
    std::rotate(replicas.begin(), replicas.begin() + rotation % replicas.size(), replicas.end());
  }
  replicas.insert(replicas.end(), others.begin(), others.end());
  replicas.insert(replicas.end(), unhealthy.begin(), unhealthy.end());
  return replicas;
}

std::vector<std::string> PlanRoundRobin(const std::vector<std::string>& addresses,
                                        uint64_t rotation, const HealthTracker& tracker,
                                        int64_t now_ms) {
  std::vector<std::string> healthy, unhealthy;
  const size_t n = addresses.size();
  for (size_t i = 0; i < n; ++i) {
    const std::string& a = addresses[(rotation + i) % n];
    (tracker.Healthy(a, now_ms) ? healthy : unhealthy).push_back(a);
  }
  healthy.insert(healthy.end(), unhealthy.begin(), unhealthy.end());
  return healthy;
}

std::vector<std::string> KnownAddresses(const std::vector<std::string>& seeds,
                                        const Topology* topology) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  auto add = [&](const std::string& a) {
    if (!a.empty() && seen.insert(a).second) out.push_back(a);
  };
  for (const std::string& s : seeds) add(s);
  if (topology != nullptr) {
    for (const Topology::Node& n : topology->nodes) add(n.address);
  }
  return out;
}

}  // namespace dynamo::client::internal
