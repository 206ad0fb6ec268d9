#pragma once

// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it:
// a candidate takes the lease when it is free, released, or has not been
// renewed for leaseDurationSeconds *as observed by this candidate's own
// clock* (never by comparing another machine's timestamps); the holder
// renews every retry period and stops leading as soon as it sees another
// holder, or when it could not renew for renew_deadline_s (shorter than the
// lease duration, so it stops before anyone else can take over). Every
// write is conditional on the resourceVersion read (409 loses the race).
// A holder that shuts down releases the lease so that a successor need not
// wait.
//
// Not thread-safe, except leading(), which any thread may read.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "dynamo/k8s/client.h"
#include "dynamo/k8s/clock.h"

namespace dynamo::k8s {

struct LeaderElectionOptions {
  std::string ns;
  std::string name;
  std::string identity;
  int lease_duration_s = 15;
  int renew_deadline_s = 10;
  int retry_period_s = 2;
};

class LeaderElector {
 public:
  enum class Attempt { kLeading, kHeldByOther, kError };

  LeaderElector(Client* client, LeaderElectionOptions options, const Clock& clock = SystemClock());

  // One step: take or renew the lease.
  Attempt TryAcquireOrRenew();
  // Gives the lease up if held (holder cleared).
  void Release();

  // Campaigns, leads (calling on_started), renews; calls on_stopped when
  // leadership is lost and campaigns again. Returns when `cancel` fires,
  // after releasing the lease (and calling on_stopped) if leading.
  void Run(Cancellation* cancel, const std::function<void()>& on_started,
           const std::function<void()>& on_stopped);

  bool leading() const { return leading_.load(); }
  const std::string& last_error() const { return last_error_; }

 private:
  Client* const client_;
  const LeaderElectionOptions options_;
  const Clock& clock_;
  std::atomic<bool> leading_{false};
  std::string observed_holder_;
  std::string observed_renew_;
  int64_t observed_at_ms_ = 0;
  std::string last_error_;
};

}  // namespace dynamo::k8s
