#include "zipfian.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>

namespace dynamo::bench {
namespace {

// log(1 + x) / x, accurate near 0.
double Helper1(double x) {
  if (std::abs(x) > 1e-8) return std::log1p(x) / x;
  return 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}

// (exp(x) - 1) / x, accurate near 0.
double Helper2(double x) {
  if (std::abs(x) > 1e-8) return std::expm1(x) / x;
  return 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x));
}

__extension__ typedef unsigned __int128 Wide;  // GCC/Clang extension: say so to -Wpedantic

}  // namespace

ZipfSampler::ZipfSampler(uint64_t n, double theta) : n_(std::max<uint64_t>(1, n)), theta_(theta) {
  assert(theta > 0);
  h_integral_x1_ = H(1.5) - 1.0;
  h_integral_n_ = H(static_cast<double>(n_) + 0.5);
}

double ZipfSampler::h(double x) const { return std::exp(-theta_ * std::log(x)); }

double ZipfSampler::H(double x) const {
  const double log_x = std::log(x);
  return Helper2((1.0 - theta_) * log_x) * log_x;
}

double ZipfSampler::HInv(double u) const {
  double t = u * (1.0 - theta_);
  if (t < -1.0) t = -1.0;  // only rounding can get here
  return std::exp(Helper1(t) * u);
}

uint64_t ZipfSampler::Sample(core::Random& rng) const {
  // Rank k (1-based) owns the interval (H(k + 0.5) - h(k), H(k + 0.5)] of
  // length h(k), its probability mass; the intervals lie inside the "hat"
  // (H(k - 0.5), H(k + 0.5)] because h is convex. Draw u uniformly over the
  // hat, invert, and accept when u falls in the mass of the rank it lands on.
  // The first rank's interval starts the range, so it is never rejected.
  while (true) {
    const double u = h_integral_n_ + rng.Unit() * (h_integral_x1_ - h_integral_n_);
    const double x = HInv(u);
    double kd = std::floor(x + 0.5);
    kd = std::clamp(kd, 1.0, static_cast<double>(n_));
    const uint64_t k = static_cast<uint64_t>(kd);
    if (u >= H(kd + 0.5) - h(kd)) return k - 1;
  }
}

Scatter::Scatter(uint64_t n, uint64_t seed) : n_(std::max<uint64_t>(1, n)) {
  core::Random rng(seed);
  // A multiplier near n / golden ratio moves neighbours far apart.
  uint64_t a = static_cast<uint64_t>(static_cast<double>(n_) * 0.6180339887498949) | 1;
  if (a == 0 || a >= n_) a = 1;
  while (n_ > 1 && std::gcd(a, n_) != 1) ++a;
  a_ = a % n_ == 0 ? 1 : a;
  b_ = rng.Uniform(n_);
}

uint64_t Scatter::operator()(uint64_t x) const {
  return static_cast<uint64_t>((static_cast<Wide>(a_) * (x % n_) + b_) % n_);
}

KeyChooser::KeyChooser(KeyDistribution distribution, uint64_t records, double theta, uint64_t seed)
    : distribution_(distribution),
      records_(std::max<uint64_t>(1, records)),
      zipf_(records_, theta),
      scatter_(records_, seed) {}

uint64_t KeyChooser::Next(core::Random& rng) const {
  if (distribution_ == KeyDistribution::kUniform) return rng.Uniform(records_);
  return scatter_(zipf_.Sample(rng));
}

}  // namespace dynamo::bench
