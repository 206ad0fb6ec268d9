#include "dynamo/k8s/clock.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace dynamo::k8s {
namespace {

class RealClock final : public Clock {
 public:
  int64_t SteadyMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  int64_t UnixMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

std::string Format(int64_t unix_micros, bool micros) {
  const time_t secs = static_cast<time_t>(unix_micros / 1000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  if (micros) {
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(unix_micros % 1000000));
  } else {
    std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  return buf;
}

}  // namespace

const Clock& SystemClock() {
  static const RealClock* const kClock = new RealClock();
  return *kClock;
}

std::string FormatRfc3339(int64_t unix_micros) { return Format(unix_micros, false); }
std::string FormatMicroTime(int64_t unix_micros) { return Format(unix_micros, true); }

}  // namespace dynamo::k8s
