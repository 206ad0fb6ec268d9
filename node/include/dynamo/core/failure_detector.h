#pragma once

// Local failure detection (the paper's section 4.8): each node decides for
// itself whether a peer looks alive. The verdict only steers routing (which
// nodes get requests, when hints are delivered); membership changes only by
// explicit join and leave.

#include <cstdint>
#include <deque>
#include <map>
#include <string>

namespace dynamo::core {

// Phi-accrual detector over the arrival times of evidence that a peer lives
// (its heartbeat advancing in gossip, any message from it), plus fast
// suspicion: a peer whose request timed out counts as down until it is heard
// from again. Not thread-safe.
class FailureDetector {
 public:
  static constexpr size_t kWindowMax = 64;

  FailureDetector(double phi_threshold, int64_t expected_interval_ms)
      : phi_threshold_(phi_threshold), expected_interval_ms_(expected_interval_ms) {}

  // Starts tracking a peer we just learned of, as if heard from now: an
  // unknown peer is given the benefit of the doubt for a few intervals.
  void Track(const std::string& node, int64_t now_ms);
  void Heard(const std::string& node, int64_t now_ms);
  void Suspect(const std::string& node);
  void Forget(const std::string& node) { peers_.erase(node); }

  // Suspicion level: -log10 of the probability that a live peer would be
  // silent this long, with exponentially distributed inter-arrival times.
  double Phi(const std::string& node, int64_t now_ms) const;
  bool Alive(const std::string& node, int64_t now_ms) const;
  bool Knows(const std::string& node) const { return peers_.contains(node); }

 private:
  struct Peer {
    int64_t last_ms = 0;
    std::deque<int64_t> intervals_ms;
    int64_t interval_sum_ms = 0;
    bool suspected = false;
  };
  double phi_threshold_;
  int64_t expected_interval_ms_;
  std::map<std::string, Peer, std::less<>> peers_;
};

}  // namespace dynamo::core
