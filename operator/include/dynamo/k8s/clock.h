#pragma once

// Time for the Kubernetes client, behind an interface so that tests of token
// re-reading and leader election run on a manual clock.

#include <cstdint>
#include <string>

namespace dynamo::k8s {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t SteadyMs() const = 0;    // monotonic, for intervals
  virtual int64_t UnixMicros() const = 0;  // wall time, for timestamps
};

// The process's clocks. Thread-safe.
const Clock& SystemClock();

// "2006-01-02T15:04:05Z" (metav1.Time) and "2006-01-02T15:04:05.000000Z"
// (metav1.MicroTime), UTC.
std::string FormatRfc3339(int64_t unix_micros);
std::string FormatMicroTime(int64_t unix_micros);

}  // namespace dynamo::k8s
