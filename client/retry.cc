#include "retry.h"

#include <algorithm>

namespace dynamo::client::internal {

bool Retryable(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded;
}

bool RetryPolicy::ShouldRetry(absl::StatusCode code, int next_attempt, int64_t remaining_ms) const {
  return Retryable(code) && next_attempt <= attempts_max && remaining_ms > 0;
}

int64_t RetryPolicy::BackoffMs(int attempt, double random01) const {
  if (attempt < 2 || backoff_initial_ms <= 0) return 0;
  int64_t ms = backoff_initial_ms;
  for (int i = 2; i < attempt && ms < backoff_max_ms; ++i) ms *= 2;
  ms = std::min(ms, backoff_max_ms);
  const double jitter = 0.5 + 0.5 * std::clamp(random01, 0.0, 1.0);
  return static_cast<int64_t>(static_cast<double>(ms) * jitter);
}

}  // namespace dynamo::client::internal
