#include "dynamo/k8s/leader_election.h"

#include "dynamo/base/strings.h"
#include "dynamo/k8s/resources.h"

namespace dynamo::k8s {

LeaderElector::LeaderElector(Client* client, LeaderElectionOptions options, const Clock& clock)
    : client_(client), options_(std::move(options)), clock_(clock) {}

LeaderElector::Attempt LeaderElector::TryAcquireOrRenew() {
  const int64_t now_ms = clock_.SteadyMs();
  const std::string now = FormatMicroTime(clock_.UnixMicros());
  absl::StatusOr<json::Value> lease = client_->Get(Leases(), options_.ns, options_.name);
  if (!lease.ok() && k8s::IsNotFound(lease.status())) {
    json::Value fresh = json::Value::Obj(
        {{"apiVersion", "coordination.k8s.io/v1"},
         {"kind", "Lease"},
         {"metadata", json::Value::Obj({{"name", options_.name}, {"namespace", options_.ns}})},
         {"spec", json::Value::Obj({{"holderIdentity", options_.identity},
                                    {"leaseDurationSeconds", options_.lease_duration_s},
                                    {"acquireTime", now},
                                    {"renewTime", now},
                                    {"leaseTransitions", 0}})}});
    absl::StatusOr<json::Value> created = client_->Create(Leases(), options_.ns, fresh);
    if (!created.ok()) {
      last_error_ = std::string(created.status().message());
      return k8s::IsAlreadyExists(created.status()) ? Attempt::kHeldByOther : Attempt::kError;
    }
    observed_holder_ = options_.identity;
    observed_renew_ = now;
    observed_at_ms_ = now_ms;
    leading_ = true;
    return Attempt::kLeading;
  }
  if (!lease.ok()) {
    last_error_ = std::string(lease.status().message());
    return Attempt::kError;
  }
  const json::Value& spec = (*lease)["spec"];
  const std::string& holder = spec["holderIdentity"].AsString();
  const std::string& renewed = spec["renewTime"].AsString();
  if (holder != observed_holder_ || renewed != observed_renew_) {
    observed_holder_ = holder;
    observed_renew_ = renewed;
    observed_at_ms_ = now_ms;
  }
  const int64_t duration_ms = spec["leaseDurationSeconds"].AsInt(options_.lease_duration_s) * 1000;
  if (!holder.empty() && holder != options_.identity && now_ms < observed_at_ms_ + duration_ms) {
    leading_ = false;
    return Attempt::kHeldByOther;
  }
  json::Value next = *lease;
  json::Value& s = next["spec"];
  if (holder != options_.identity) {
    s["acquireTime"] = now;
    s["leaseTransitions"] = spec["leaseTransitions"].AsInt() + 1;
  }
  s["holderIdentity"] = options_.identity;
  s["leaseDurationSeconds"] = options_.lease_duration_s;
  s["renewTime"] = now;
  absl::StatusOr<json::Value> written =
      client_->Replace(Leases(), options_.ns, options_.name, next);
  if (!written.ok()) {
    last_error_ = std::string(written.status().message());
    if (IsConflict(written.status())) {
      leading_ = false;  // someone else wrote it first
      return Attempt::kHeldByOther;
    }
    return Attempt::kError;
  }
  observed_holder_ = options_.identity;
  observed_renew_ = now;
  observed_at_ms_ = now_ms;
  leading_ = true;
  return Attempt::kLeading;
}

void LeaderElector::Release() {
  if (!leading_.exchange(false)) return;
  const std::string now = FormatMicroTime(clock_.UnixMicros());
  const absl::StatusOr<json::Value> done =
      client_->Update(Leases(), options_.ns, options_.name, [&](json::Value& lease) {
        if (lease["spec"]["holderIdentity"].AsString() != options_.identity) return false;
        lease["spec"]["holderIdentity"] = "";
        lease["spec"]["leaseDurationSeconds"] = 1;
        lease["spec"]["renewTime"] = now;
        return true;
      });
  if (!done.ok()) last_error_ = std::string(done.status().message());
}

void LeaderElector::Run(Cancellation* cancel, const std::function<void()>& on_started,
                        const std::function<void()>& on_stopped) {
  const int64_t retry_ms = int64_t{options_.retry_period_s} * 1000;
  while (!cancel->cancelled()) {
    while (TryAcquireOrRenew() != Attempt::kLeading) {
      if (cancel->SleepFor(retry_ms)) return;
    }
    on_started();
    int64_t renewed_ms = clock_.SteadyMs();
    bool lost = false;
    while (!cancel->SleepFor(retry_ms)) {
      const Attempt a = TryAcquireOrRenew();
      if (a == Attempt::kLeading) {
        renewed_ms = clock_.SteadyMs();
      } else if (a == Attempt::kHeldByOther ||
                 clock_.SteadyMs() - renewed_ms > int64_t{options_.renew_deadline_s} * 1000) {
        leading_ = false;
        lost = true;
        break;
      }
    }
    if (!lost) Release();
    leading_ = false;
    on_stopped();
  }
}

}  // namespace dynamo::k8s
