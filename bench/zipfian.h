#pragma once

// Key choosers for the workloads: uniform, and Zipf-distributed ranks (YCSB's
// "zipfian" request distribution), optionally scrambled so that the popular
// keys are spread over the key space instead of being its first few keys.
//
// The Zipf sampler is exact (no approximation of the distribution): it uses
// Hörmann and Derflinger's rejection-inversion method ("Rejection-inversion to
// generate variates from monotone discrete distributions", ACM TOMACS 1996),
// O(1) expected time per sample and O(1) setup, for any n up to 2^63.
//
// Thread-compatible: the samplers are immutable after construction; the
// randomness comes from the caller's generator (one per thread).

#include <cstdint>

#include "dynamo/core/random.h"

namespace dynamo::bench {

// Samples ranks k in [0, n) with probability proportional to 1 / (k + 1)^theta.
class ZipfSampler {
 public:
  // n >= 1; theta > 0 (YCSB uses 0.99).
  ZipfSampler(uint64_t n, double theta);

  uint64_t Sample(core::Random& rng) const;

  uint64_t n() const { return n_; }
  double theta() const { return theta_; }

 private:
  double H(double x) const;     // an antiderivative of h(x) = x^-theta, with H(1) = 0
  double HInv(double u) const;  // its inverse
  double h(double x) const;

  uint64_t n_;
  double theta_;
  double h_integral_x1_;  // H(1.5) - h(1): the left end of the sampled interval
  double h_integral_n_;   // H(n + 0.5): its right end
};

// A bijection of [0, n) that scatters consecutive ranks: x -> (a * x + b) mod n
// with a coprime to n.
class Scatter {
 public:
  Scatter(uint64_t n, uint64_t seed);
  uint64_t operator()(uint64_t x) const;

 private:
  uint64_t n_;
  uint64_t a_;
  uint64_t b_;
};

enum class KeyDistribution { kUniform, kZipfian };

// Picks the index of the next key to operate on, in [0, records).
class KeyChooser {
 public:
  KeyChooser(KeyDistribution distribution, uint64_t records, double theta, uint64_t seed);
  uint64_t Next(core::Random& rng) const;

 private:
  KeyDistribution distribution_;
  uint64_t records_;
  ZipfSampler zipf_;
  Scatter scatter_;
};

}  // namespace dynamo::bench
