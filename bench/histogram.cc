#include "histogram.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cmath>

namespace dynamo::bench {

Histogram::Histogram(int precision_bits)
    : precision_bits_(std::clamp(precision_bits, 1, kPrecisionBitsMax)) {
  const size_t sub = size_t{1} << precision_bits_;
  // Index = shift * sub + (value >> shift), shift = max(0, msb - precision): the
  // largest value (kValueBitsMax bits) lands below (kValueBitsMax - p + 1) * sub.
  counts_.assign(static_cast<size_t>(kValueBitsMax - precision_bits_ + 1) * sub, 0);
}

size_t Histogram::BucketIndex(int64_t value) const {
  uint64_t v = value < 0 ? 0 : static_cast<uint64_t>(value);
  const uint64_t limit = (uint64_t{1} << kValueBitsMax) - 1;
  if (v > limit) v = limit;
  const int msb = v == 0 ? 0 : 63 - std::countl_zero(v);
  const int shift = std::max(0, msb - precision_bits_);
  return (static_cast<size_t>(shift) << precision_bits_) + static_cast<size_t>(v >> shift);
}

int64_t Histogram::BucketLow(size_t index) const {
  const size_t sub = size_t{1} << precision_bits_;
  if (index < sub) return static_cast<int64_t>(index);
  const size_t shift = index / sub - 1;
  const uint64_t mantissa = index - shift * sub;
  return static_cast<int64_t>(mantissa << shift);
}

int64_t Histogram::BucketHigh(size_t index) const {
  const size_t sub = size_t{1} << precision_bits_;
  if (index < sub) return static_cast<int64_t>(index);
  const size_t shift = index / sub - 1;
  return BucketLow(index) + (int64_t{1} << shift) - 1;
}

void Histogram::RecordN(int64_t value, uint64_t n) {
  if (n == 0) return;
  if (value < 0) value = 0;
  const int64_t limit = (int64_t{1} << kValueBitsMax) - 1;
  if (value > limit) {
    clamped_ += n;
    value = limit;
  }
  counts_[BucketIndex(value)] += n;
  if (count_ == 0 || value < min_) min_ = value;
  if (value > max_) max_ = value;
  count_ += n;
  sum_ += static_cast<double>(value) * static_cast<double>(n);
}

void Histogram::Merge(const Histogram& other) {
  assert(other.precision_bits_ == precision_bits_);
  if (other.count_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  if (count_ == 0 || other.min_ < min_) min_ = other.min_;
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  clamped_ += other.clamped_;
  sum_ += other.sum_;
}

void Histogram::Clear() {
  std::fill(counts_.begin(), counts_.end(), 0);
  count_ = clamped_ = 0;
  min_ = max_ = 0;
  sum_ = 0;
}

int64_t Histogram::ValueAtQuantile(double q) const {
  if (count_ == 0) return 0;
  if (q >= 1.0) return max_;
  if (q < 0) q = 0;
  // The rank of the sample wanted, 1-based: at least 1 so that q = 0 is the minimum.
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(BucketHigh(i), min_, max_);
  }
  return max_;
}

std::vector<std::pair<double, int64_t>> Histogram::PercentileSpectrum(int per_half) const {
  std::vector<std::pair<double, int64_t>> out;
  if (count_ == 0) return out;
  per_half = std::max(1, per_half);
  const double last = 1.0 - 1.0 / static_cast<double>(count_);
  // Quantiles 1 - 2^-(k / per_half): evenly spaced on the usual log(1/(1-q)) axis.
  for (int k = 0;; ++k) {
    const double q = 1.0 - std::pow(2.0, -static_cast<double>(k) / per_half);
    if (q > last) break;
    out.emplace_back(q, ValueAtQuantile(q));
    if (k > 64 * per_half) break;
  }
  out.emplace_back(1.0, max_);
  return out;
}

}  // namespace dynamo::bench
