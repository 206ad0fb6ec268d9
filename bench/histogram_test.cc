#include "histogram.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "dynamo/core/random.h"
#include "gtest/gtest.h"

namespace dynamo::bench {
namespace {

TEST(HistogramTest, EmptyHasZeros) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.ValueAtQuantile(0.5), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_TRUE(h.PercentileSpectrum().empty());
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram h(7);
  for (int64_t v = 0; v < 256; ++v) {
    EXPECT_EQ(h.BucketLow(h.BucketIndex(v)), v);
    EXPECT_EQ(h.BucketHigh(h.BucketIndex(v)), v);
  }
}

TEST(HistogramTest, BucketsTileTheRangeWithBoundedRelativeWidth) {
  for (int bits : {1, 3, 7, 10}) {
    Histogram h(bits);
    int64_t expected_low = 0;
    for (size_t i = 0; i < h.bucket_count(); ++i) {
      ASSERT_EQ(h.BucketLow(i), expected_low) << "bits " << bits << " bucket " << i;
      const int64_t width = h.BucketHigh(i) - h.BucketLow(i) + 1;
      ASSERT_GE(width, 1);
      // Width relative to the bucket's values is at most 2^-bits.
      ASSERT_LE(static_cast<double>(width - 1), std::ldexp(static_cast<double>(h.BucketLow(i)), -bits))
          << "bits " << bits << " bucket " << i;
      ASSERT_EQ(h.BucketIndex(h.BucketLow(i)), i);
      ASSERT_EQ(h.BucketIndex(h.BucketHigh(i)), i);
      expected_low = h.BucketHigh(i) + 1;
    }
    EXPECT_EQ(expected_low, int64_t{1} << Histogram::kValueBitsMax) << "bits " << bits;
  }
}

// Quantiles agree with sorting the samples, within the histogram's precision.
TEST(HistogramTest, QuantilesMatchSortedSamplesWithinPrecision) {
  core::Random rng(42);
  Histogram h(7);
  std::vector<int64_t> samples;
  for (int i = 0; i < 200000; ++i) {
    // Log-uniform over 1 us .. 1 s in nanoseconds, plus a few outliers.
    int64_t v = static_cast<int64_t>(std::exp(std::log(1e3) + rng.Unit() * std::log(1e6)));
    if (i % 10007 == 0) v = 5'000'000'000;
    samples.push_back(v);
    h.Record(v);
  }
  std::sort(samples.begin(), samples.end());
  for (double q : {0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0}) {
    size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(samples.size())));
    rank = std::clamp<size_t>(rank, 1, samples.size());
    const int64_t exact = samples[rank - 1];
    const int64_t got = h.ValueAtQuantile(q);
    EXPECT_GE(got, exact) << "q " << q;  // the upper edge of the bucket: never optimistic
    EXPECT_LE(static_cast<double>(got - exact), static_cast<double>(exact) / 128.0 + 1) << "q " << q;
  }
  EXPECT_EQ(h.max(), 5'000'000'000);
  EXPECT_EQ(h.min(), samples.front());
  EXPECT_EQ(h.count(), samples.size());
}

TEST(HistogramTest, MergeEqualsRecordingEverythingInOne) {
  core::Random rng(7);
  Histogram a, b, all;
  for (int i = 0; i < 10000; ++i) {
    const int64_t v = static_cast<int64_t>(rng.Uniform(1'000'000));
    (i % 3 == 0 ? a : b).Record(v);
    all.Record(v);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  for (double q : {0.5, 0.99, 0.999}) EXPECT_EQ(a.ValueAtQuantile(q), all.ValueAtQuantile(q));
}

TEST(HistogramTest, ClampsHugeAndNegativeValues) {
  Histogram h;
  h.Record(-5);
  h.Record(int64_t{1} << 50);
  EXPECT_EQ(h.count(), 2u);
  EXPECT_EQ(h.clamped(), 1u);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.max(), (int64_t{1} << Histogram::kValueBitsMax) - 1);
}

TEST(HistogramTest, SpectrumIsMonotoneAndEndsAtMax) {
  Histogram h;
  for (int64_t v = 1; v <= 100000; ++v) h.Record(v);
  const auto spectrum = h.PercentileSpectrum(4);
  ASSERT_GE(spectrum.size(), 40u);
  for (size_t i = 1; i < spectrum.size(); ++i) {
    EXPECT_GT(spectrum[i].first, spectrum[i - 1].first);
    EXPECT_GE(spectrum[i].second, spectrum[i - 1].second);
  }
  EXPECT_EQ(spectrum.back().first, 1.0);
  EXPECT_EQ(spectrum.back().second, 100000);
}

}  // namespace
}  // namespace dynamo::bench
