#include "retry.h"

#include "gtest/gtest.h"

namespace dynamo::client::internal {
namespace {

TEST(RetryTest, OnlyTransportFailuresAndTimeoutsAreRetried) {
  EXPECT_TRUE(Retryable(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(Retryable(absl::StatusCode::kDeadlineExceeded));
  for (absl::StatusCode c :
       {absl::StatusCode::kOk, absl::StatusCode::kInvalidArgument, absl::StatusCode::kNotFound,
        absl::StatusCode::kResourceExhausted, absl::StatusCode::kFailedPrecondition,
        absl::StatusCode::kInternal, absl::StatusCode::kUnimplemented,
        absl::StatusCode::kPermissionDenied, absl::StatusCode::kCancelled}) {
    EXPECT_FALSE(Retryable(c)) << absl::StatusCodeToString(c);
  }
}

TEST(RetryTest, BoundedByAttemptsAndDeadline) {
  RetryPolicy p{3, 10, 200};
  EXPECT_TRUE(p.ShouldRetry(absl::StatusCode::kUnavailable, 2, 1000));
  EXPECT_TRUE(p.ShouldRetry(absl::StatusCode::kDeadlineExceeded, 3, 1000));
  EXPECT_FALSE(p.ShouldRetry(absl::StatusCode::kUnavailable, 4, 1000));  // attempts used up
  EXPECT_FALSE(p.ShouldRetry(absl::StatusCode::kUnavailable, 2, 0));     // no time left
  EXPECT_FALSE(p.ShouldRetry(absl::StatusCode::kInvalidArgument, 2, 1000));
}

TEST(RetryTest, BackoffDoublesWithJitterUpToTheCap) {
  RetryPolicy p{10, 10, 200};
  EXPECT_EQ(p.BackoffMs(1, 0.99), 0);  // the first attempt does not wait
  EXPECT_EQ(p.BackoffMs(2, 0.0), 5);   // half of 10: the jitter's floor
  EXPECT_EQ(p.BackoffMs(2, 1.0), 10);
  EXPECT_EQ(p.BackoffMs(3, 1.0), 20);
  EXPECT_EQ(p.BackoffMs(4, 1.0), 40);
  EXPECT_EQ(p.BackoffMs(7, 1.0), 200);   // 320 capped
  EXPECT_EQ(p.BackoffMs(60, 1.0), 200);  // no overflow on many attempts
  for (int a = 2; a < 20; ++a) {
    for (double r : {0.0, 0.3, 0.7, 0.999}) {
      const int64_t ms = p.BackoffMs(a, r);
      EXPECT_GE(ms, 5);
      EXPECT_LE(ms, 200);
    }
  }
  EXPECT_EQ((RetryPolicy{3, 0, 0}).BackoffMs(3, 0.5), 0);
}

}  // namespace
}  // namespace dynamo::client::internal
