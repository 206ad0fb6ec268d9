#pragma once

// The controller's work queue, after client-go's: keys (one per cluster)
// coalesce while they wait; a key is never handed to two workers at once (a
// key added while it is being processed is handed out again after Done);
// delayed adds keep the earliest time; failures back off per key,
// exponentially up to a cap, until Forget. Bounded: past kKeysMax waiting
// keys, new keys are dropped (and counted); a periodic resync re-adds them.
// Thread-safe.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>

namespace dynamo::op {

class WorkQueue {
 public:
  static constexpr size_t kKeysMax = 10000;

  struct Options {
    int64_t backoff_initial_ms = 500;
    int64_t backoff_max_ms = 60000;
  };

  explicit WorkQueue(Options options);
  WorkQueue() : WorkQueue(Options{}) {}

  void Add(const std::string& key) { AddAfter(key, 0); }
  void AddAfter(const std::string& key, int64_t delay_ms);
  // After the key's backoff, which doubles with each call until Forget.
  void AddRateLimited(const std::string& key);
  void Forget(const std::string& key);
  int Failures(const std::string& key) const;

  // Blocks until a key is due and not in process, or ShutDown (false).
  bool Get(std::string* key);
  void Done(const std::string& key);
  void ShutDown();

  size_t waiting() const;
  uint64_t dropped() const;

 private:
  using TimePoint = std::chrono::steady_clock::time_point;

  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, TimePoint> due_;  // guarded by mu_
  std::set<std::string> processing_;      // guarded by mu_
  std::map<std::string, int> failures_;   // guarded by mu_
  bool shutdown_ = false;                 // guarded by mu_
  uint64_t dropped_ = 0;                  // guarded by mu_
};

}  // namespace dynamo::op
