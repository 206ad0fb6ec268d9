#include "dynamo/core/failure_detector.h"

#include <algorithm>
#include <cmath>

namespace dynamo::core {

void FailureDetector::Track(const std::string& node, int64_t now_ms) {
  if (!peers_.contains(node)) peers_[node].last_ms = now_ms;
}

void FailureDetector::Heard(const std::string& node, int64_t now_ms) {
  auto [it, inserted] = peers_.try_emplace(node);
  Peer& p = it->second;
  p.suspected = false;
  if (!inserted && now_ms > p.last_ms) {
    const int64_t interval = now_ms - p.last_ms;
    p.intervals_ms.push_back(interval);
    p.interval_sum_ms += interval;
    if (p.intervals_ms.size() > kWindowMax) {
      p.interval_sum_ms -= p.intervals_ms.front();
      p.intervals_ms.pop_front();
    }
  }
  p.last_ms = std::max(p.last_ms, now_ms);
}

void FailureDetector::Suspect(const std::string& node) {
  auto it = peers_.find(node);
  if (it != peers_.end()) it->second.suspected = true;
}

double FailureDetector::Phi(const std::string& node, int64_t now_ms) const {
  auto it = peers_.find(node);
  if (it == peers_.end()) return 0.0;
  const Peer& p = it->second;
  // Evidence arrives in bursts (direct messages) and trickles (gossip): never
  // let the mean fall below the expected heartbeat interval, or a burst of
  // messages would make a normal pause look like a failure.
  double mean = static_cast<double>(expected_interval_ms_);
  if (!p.intervals_ms.empty()) {
    mean = std::max(mean, static_cast<double>(p.interval_sum_ms) / p.intervals_ms.size());
  }
  const double silent = static_cast<double>(std::max<int64_t>(0, now_ms - p.last_ms));
  return silent / mean * std::log10(std::exp(1.0));
}

bool FailureDetector::Alive(const std::string& node, int64_t now_ms) const {
  auto it = peers_.find(node);
  if (it == peers_.end()) return true;
  if (it->second.suspected) return false;
  return Phi(node, now_ms) < phi_threshold_;
}

}  // namespace dynamo::core
