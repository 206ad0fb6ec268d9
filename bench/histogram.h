#pragma once

// A log-linear latency histogram in the manner of HdrHistogram: every power of
// two is split into 2^precision_bits equal buckets, so a recorded value is
// known to within a relative error of 2^-precision_bits (0.8% at the default
// 7 bits) at any magnitude, with a fixed, small memory footprint and O(1)
// recording. Values are non-negative integers (the bench records nanoseconds).
//
// Thread-compatible: one writer at a time; merge per-thread histograms to
// combine them.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dynamo::bench {

class Histogram {
 public:
  static constexpr int kPrecisionBitsDefault = 7;
  static constexpr int kPrecisionBitsMax = 12;
  // Values above this are clamped (and counted in clamped()): 2^42 ns is 73 minutes.
  static constexpr int kValueBitsMax = 42;

  explicit Histogram(int precision_bits = kPrecisionBitsDefault);

  void Record(int64_t value) { RecordN(value, 1); }
  void RecordN(int64_t value, uint64_t count);
  // Adds every sample of `other`, which must have the same precision.
  void Merge(const Histogram& other);
  void Clear();

  uint64_t count() const { return count_; }
  uint64_t clamped() const { return clamped_; }
  int64_t min() const { return count_ == 0 ? 0 : min_; }
  int64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : sum_ / static_cast<double>(count_); }
  int precision_bits() const { return precision_bits_; }

  // The smallest recorded-equivalent value v such that at least `q` (0..1) of
  // the samples are <= v: the upper edge of the bucket holding that rank,
  // never above max(). 0 for an empty histogram. q >= 1 gives max().
  int64_t ValueAtQuantile(double q) const;

  // (quantile, value) pairs for an HdrHistogram-style percentile plot: points
  // at 0, 0.5, 0.75, 0.875, ... (each halving the remaining tail), `per_half`
  // points per halving, up to the quantile of the last sample.
  std::vector<std::pair<double, int64_t>> PercentileSpectrum(int per_half = 5) const;

  // Bucket geometry, exposed for tests.
  size_t BucketIndex(int64_t value) const;
  int64_t BucketLow(size_t index) const;
  int64_t BucketHigh(size_t index) const;  // inclusive
  size_t bucket_count() const { return counts_.size(); }

 private:
  int precision_bits_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t clamped_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
  double sum_ = 0;
};

}  // namespace dynamo::bench
