#include "dynamo/core/failure_detector.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <numeric>

#include "dynamo/core/random.h"

namespace dynamo::core {
namespace {

// The header's definition: -log10 of the probability that an exponentially
// distributed gap with the given mean is at least `silent_ms`.
double ExpectedPhi(double silent_ms, double mean_ms) {
  return -std::log10(std::exp(-silent_ms / mean_ms));
}

TEST(FailureDetectorTest, UnknownPeersAreAlive) {
  FailureDetector fd(8.0, 1000);
  EXPECT_FALSE(fd.Knows("x"));
  EXPECT_TRUE(fd.Alive("x", 1'000'000'000));
  EXPECT_EQ(fd.Phi("x", 1'000'000'000), 0.0);
  fd.Suspect("x");  // suspicion of a peer never heard of does not invent it
  EXPECT_FALSE(fd.Knows("x"));
}

TEST(FailureDetectorTest, PhiGrowsWithSilence) {
  FailureDetector fd(8.0, 1000);
  int64_t t = 0;
  for (int i = 0; i < 10; ++i) fd.Heard("p", t += 1000);
  double previous = fd.Phi("p", t);
  EXPECT_EQ(previous, 0.0);
  for (int64_t silent = 100; silent <= 60000; silent += 700) {
    const double phi = fd.Phi("p", t + silent);
    EXPECT_GT(phi, previous) << silent;
    EXPECT_NEAR(phi, ExpectedPhi(static_cast<double>(silent), 1000.0), 1e-9);
    previous = phi;
  }
  // Hearing from the peer resets the silence.
  fd.Heard("p", t + 5000);
  EXPECT_EQ(fd.Phi("p", t + 5000), 0.0);
}

TEST(FailureDetectorTest, AliveFlipsPastTheThreshold) {
  const double threshold = 3.0;
  FailureDetector fd(threshold, 500);
  int64_t t = 0;
  for (int i = 0; i < 20; ++i) fd.Heard("p", t += 500);
  // Silence at which phi reaches the threshold for a mean gap of 500 ms.
  const double flip_ms = threshold * 500.0 / std::log10(std::exp(1.0));
  EXPECT_TRUE(fd.Alive("p", t + static_cast<int64_t>(flip_ms) - 5));
  EXPECT_FALSE(fd.Alive("p", t + static_cast<int64_t>(flip_ms) + 5));
  EXPECT_FALSE(fd.Alive("p", t + 10 * static_cast<int64_t>(flip_ms)));
  fd.Heard("p", t + 20 * static_cast<int64_t>(flip_ms));
  EXPECT_TRUE(fd.Alive("p", t + 20 * static_cast<int64_t>(flip_ms)));
}

TEST(FailureDetectorTest, ABurstOfMessagesDoesNotShrinkTheExpectedGap) {
  FailureDetector fd(8.0, 1000);
  int64_t t = 0;
  for (int i = 0; i < 50; ++i) fd.Heard("p", t += 1);  // 1 ms apart
  // The mean never drops below the expected interval.
  EXPECT_NEAR(fd.Phi("p", t + 2000), ExpectedPhi(2000, 1000), 1e-9);
  EXPECT_TRUE(fd.Alive("p", t + 2000));
}

TEST(FailureDetectorTest, SlowPeersGetALongerGrace) {
  FailureDetector fd(8.0, 100);
  int64_t t = 0;
  for (int i = 0; i < 10; ++i) fd.Heard("p", t += 3000);
  EXPECT_NEAR(fd.Phi("p", t + 6000), ExpectedPhi(6000, 3000), 1e-9);
}

TEST(FailureDetectorTest, SuspectedUntilHeard) {
  FailureDetector fd(8.0, 1000);
  fd.Heard("p", 1000);
  fd.Heard("p", 2000);
  EXPECT_TRUE(fd.Alive("p", 2000));
  fd.Suspect("p");
  EXPECT_FALSE(fd.Alive("p", 2000));  // phi is 0, yet suspected
  EXPECT_FALSE(fd.Alive("p", 2500));
  fd.Track("p", 3000);  // tracking again is not hearing
  EXPECT_FALSE(fd.Alive("p", 3000));
  fd.Heard("p", 3000);
  EXPECT_TRUE(fd.Alive("p", 3000));
}

TEST(FailureDetectorTest, TrackGivesANewPeerTheBenefitOfTheDoubt) {
  FailureDetector fd(8.0, 1000);
  fd.Track("p", 5000);
  EXPECT_TRUE(fd.Knows("p"));
  EXPECT_TRUE(fd.Alive("p", 5000));
  EXPECT_NEAR(fd.Phi("p", 8000), ExpectedPhi(3000, 1000), 1e-9);
  // Tracking a known peer does not reset its silence.
  fd.Track("p", 9000);
  EXPECT_NEAR(fd.Phi("p", 9000), ExpectedPhi(4000, 1000), 1e-9);
  fd.Forget("p");
  EXPECT_FALSE(fd.Knows("p"));
  EXPECT_TRUE(fd.Alive("p", 1'000'000));
}

TEST(FailureDetectorTest, OldEvidenceDoesNotMoveTimeBackwards) {
  FailureDetector fd(8.0, 1000);
  fd.Heard("p", 10000);
  fd.Heard("p", 4000);  // a late report of an earlier sign of life
  EXPECT_NEAR(fd.Phi("p", 12000), ExpectedPhi(2000, 1000), 1e-9);
}

TEST(FailureDetectorTest, OnlyTheLastWindowOfGapsCounts) {
  FailureDetector fd(8.0, 10);
  int64_t t = 0;
  fd.Heard("p", t);
  // A long history of slow gaps, then a full window of fast ones: the mean
  // must be the fast gap, not diluted by what fell out of the window.
  for (size_t i = 0; i < 3 * FailureDetector::kWindowMax; ++i) fd.Heard("p", t += 5000);
  for (size_t i = 0; i < FailureDetector::kWindowMax; ++i) fd.Heard("p", t += 200);
  EXPECT_NEAR(fd.Phi("p", t + 1000), ExpectedPhi(1000, 200), 1e-9);
}

TEST(FailureDetectorTest, MeanOfTheWindowOnRandomGaps) {
  Random rng(3);
  FailureDetector fd(8.0, 1);
  std::deque<int64_t> window;
  int64_t t = 0;
  fd.Heard("p", t);
  for (int i = 0; i < 1000; ++i) {
    const int64_t gap = 1 + static_cast<int64_t>(rng.Uniform(4000));
    fd.Heard("p", t += gap);
    window.push_back(gap);
    if (window.size() > FailureDetector::kWindowMax) window.pop_front();
    const double mean =
        static_cast<double>(std::accumulate(window.begin(), window.end(), int64_t{0})) /
        static_cast<double>(window.size());
    ASSERT_NEAR(fd.Phi("p", t + 777), ExpectedPhi(777, std::max(1.0, mean)), 1e-9) << i;
  }
}

}  // namespace
}  // namespace dynamo::core
