#pragma once

// Counters, gauges and histograms exported in the Prometheus text exposition
// format 0.0.4. Our own small module: prometheus-cpp is not packaged for the
// Debian release we build on.
//
// Hot paths (Increment, Set, Observe) are lock-free atomics. Only looking up a
// child by label values takes a per-family lock, so callers look a child up
// once and keep the returned reference:
//
//   dynamo::metrics::Registry registry;
//   auto latency = registry.AddHistogramFamily(
//       "dynamo_request_duration_seconds", "Client request latency by operation.",
//       {"op"}, dynamo::metrics::LatencyBucketsSeconds());
//   if (!latency.ok()) return latency.status();
//   dynamo::metrics::Histogram& put_latency = (*latency)->WithLabels({"put"});
//   put_latency.Observe(0.0042);  // from any thread, no lock
//   std::string text = registry.Render();

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace dynamo::metrics {

// Content-Type of Registry::Render() output when served over HTTP.
inline constexpr std::string_view kTextContentType = "text/plain; version=0.0.4; charset=utf-8";

// Default bound on the number of distinct label-value sets per family (and on
// the samples a callback family may return). Label values come from runtime
// data such as node ids, so an unbounded family is a memory leak waiting for a
// bug; see Registry::Registry.
inline constexpr size_t kDefaultMaxLabelSets = 10'000;

// The label value every label of a family's overflow child carries once the
// family holds max_label_sets children.
inline constexpr std::string_view kOverflowLabelValue = "__overflow__";

// The paper's example SLA: 99.9% of requests within 300 ms.
inline constexpr double kPaperSlaSeconds = 0.3;

// Fine request-latency buckets in seconds, 50 µs .. 10 s (25 bounds). Contains
// kPaperSlaSeconds exactly, so the fraction of requests within the SLA is
// read from a bucket, not estimated by interpolation.
std::vector<double> LatencyBucketsSeconds();

// Returns `bounds` (strictly increasing, finite) with `extra` added, e.g. a
// configured SLA threshold; sorted and deduplicated (a value within a relative
// 1e-9 of an existing bound is that bound). InvalidArgument if `extra` is not
// finite and positive or `bounds` is not a valid bucket list.
absl::StatusOr<std::vector<double>> AddBucketBound(std::vector<double> bounds, double extra);

// A monotonic floating-point counter. Thread-safe and lock-free.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `v`. A negative or NaN `v` is ignored: a counter never goes down.
  void Increment(double v = 1.0) {
    if (v >= 0.0) value_.fetch_add(v, std::memory_order_relaxed);
  }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A monotonic integer counter (requests, bytes). Thread-safe and lock-free;
// cheaper than Counter, whose floating-point add is a compare-exchange loop.
class IntCounter {
 public:
  IntCounter() = default;
  IntCounter(const IntCounter&) = delete;
  IntCounter& operator=(const IntCounter&) = delete;

  void Increment(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

// A value that goes up and down. Thread-safe and lock-free.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  void Sub(double v) { value_.fetch_sub(v, std::memory_order_relaxed); }
  void Increment() { Add(1.0); }
  void Decrement() { Sub(1.0); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A point-in-time copy of a histogram, with the estimates dashboards make.
struct HistogramSnapshot {
  std::vector<double> bounds;        // finite upper bounds, increasing; +Inf implied
  std::vector<uint64_t> cumulative;  // bounds.size() + 1 entries; the last is count
  double sum = 0.0;

  uint64_t count() const { return cumulative.empty() ? 0 : cumulative.back(); }

  // The exact fraction of observations <= `bound`, which must be one of
  // `bounds` (e.g. the SLA bucket). nullopt if it is not, or if count() == 0.
  std::optional<double> FractionAtOrBelow(double bound) const;

  // The q-quantile (0 <= q <= 1) estimated as PromQL's histogram_quantile does:
  // linear interpolation inside the bucket; observations above the last finite
  // bound report that bound. NaN if count() == 0 or q is out of range.
  double Quantile(double q) const;
};

// Observations counted into buckets with caller-given upper bounds (le is
// inclusive). Observe is lock-free: one atomic add per bucket hit plus one on
// the sum. Thread-safe.
class Histogram {
 public:
  // A standalone histogram (benchmarks, tests); registries make their own.
  // InvalidArgument unless `bounds` is strictly increasing and finite (a
  // trailing +Inf is accepted and dropped: the +Inf bucket always exists).
  static absl::StatusOr<std::unique_ptr<Histogram>> Create(std::vector<double> bounds);

  explicit Histogram(std::shared_ptr<const std::vector<double>> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Counts `v` in the first bucket whose bound is >= v; NaN lands in +Inf only.
  void Observe(double v);

  // Buckets are read one by one while writers run, so a snapshot taken under
  // load may split an observation between sum and buckets; the count is the
  // +Inf bucket, so buckets and count always agree.
  HistogramSnapshot Snapshot() const;

  const std::vector<double>& bounds() const { return *bounds_; }

 private:
  std::shared_ptr<const std::vector<double>> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket, not cumulative
  std::atomic<double> sum_{0.0};
};

// One sample of a callback family: values of the family's labels, in order.
struct LabeledValue {
  std::vector<std::string> label_values;
  double value = 0.0;
};

// Called at scrape time, on the scraping thread, with no registry lock held.
using CollectFn = std::function<std::vector<LabeledValue>()>;

namespace internal {

enum class MetricType { kCounter, kGauge, kHistogram };

// Orders label-value lists lexicographically; transparent so that lookups by
// string_view need no allocation.
struct LabelValuesLess {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return std::lexicographical_compare(
        a.begin(), a.end(), b.begin(), b.end(),
        [](std::string_view x, std::string_view y) { return x < y; });
  }
};

// What Registry::Render needs of every family. Thread-safe.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names, size_t max_label_sets);
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return name_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // Appends HELP, TYPE and sample lines; nothing if the family has no samples.
  void Render(std::string* out) const;

 protected:
  // Appends sample lines only.
  virtual void RenderSamples(std::string* out) const = 0;

  const std::string name_;
  const std::string help_;
  const MetricType type_;
  const std::vector<std::string> label_names_;
  const size_t max_label_sets_;
};

}  // namespace internal

// Children of one metric name, one per distinct list of label values.
// T is Counter, IntCounter, Gauge or Histogram. Thread-safe; children live as
// long as the registry, so keep the references WithLabels returns.
template <typename T>
class Family final : public internal::FamilyBase {
 public:
  // Returns the child for these label values (one per label name, in order),
  // creating it on first use. Past max_label_sets children, new label values
  // all map to one overflow child whose labels read kOverflowLabelValue.
  // Aborts if the number of values differs from the number of label names:
  // that is a programming error, like indexing out of bounds.
  T& WithLabels(std::initializer_list<std::string_view> label_values);
  T& WithLabels(std::span<const std::string> label_values);

  // Number of children, including the overflow child once it exists.
  size_t size() const;

 private:
  friend class Registry;
  Family(std::string name, std::string help, internal::MetricType type,
         std::vector<std::string> label_names, size_t max_label_sets,
         std::shared_ptr<const std::vector<double>> bounds);

  template <typename Values>
  T& Get(const Values& label_values);
  std::unique_ptr<T> NewChild() const;
  void RenderSamples(std::string* out) const override;

  const std::shared_ptr<const std::vector<double>> bounds_;  // histograms only
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>, internal::LabelValuesLess> children_
      ABSL_GUARDED_BY(mu_);
};

// Owns metric families and renders them. Registration validates names and
// returns a Status; updates through the returned handles are lock-free;
// Render may run concurrently with both. Thread-safe.
//
// Naming rules enforced here (Prometheus conventions that `promtool check
// metrics` lints): metric and label names are snake_case, [a-z_][a-z0-9_]*
// (the format also allows upper case, which promtool flags as camelCase, and
// colons, which are reserved for recording rules); a leading "__" is reserved
// for Prometheus itself; counter names end
// in "_total" and no other name does; histograms may not use the label "le"
// nor end in _bucket, _sum or _count; help text is non-empty UTF-8. Names
// must not collide, including a histogram's _bucket/_sum/_count series.
class Registry {
 public:
  // `max_label_sets` bounds the children of each family and the samples
  // rendered from each callback family.
  explicit Registry(size_t max_label_sets = kDefaultMaxLabelSets);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  absl::StatusOr<Family<Counter>*> AddCounterFamily(std::string_view name, std::string_view help,
                                                    std::vector<std::string> label_names);
  absl::StatusOr<Family<IntCounter>*> AddIntCounterFamily(std::string_view name,
                                                          std::string_view help,
                                                          std::vector<std::string> label_names);
  absl::StatusOr<Family<Gauge>*> AddGaugeFamily(std::string_view name, std::string_view help,
                                                std::vector<std::string> label_names);
  absl::StatusOr<Family<Histogram>*> AddHistogramFamily(std::string_view name,
                                                        std::string_view help,
                                                        std::vector<std::string> label_names,
                                                        std::vector<double> bounds);

  // Shorthands for metrics without labels; they render from registration on.
  absl::StatusOr<Counter*> AddCounter(std::string_view name, std::string_view help);
  absl::StatusOr<IntCounter*> AddIntCounter(std::string_view name, std::string_view help);
  absl::StatusOr<Gauge*> AddGauge(std::string_view name, std::string_view help);
  absl::StatusOr<Histogram*> AddHistogram(std::string_view name, std::string_view help,
                                          std::vector<double> bounds);

  // Values computed at scrape time (hint backlog per target, members by
  // state). `collect` runs on the scraping thread without registry locks; it
  // must not call Render or RemoveCallback. Samples whose label count is wrong
  // are dropped, duplicates keep the first, and at most max_label_sets are
  // rendered. A callback counter must itself never go down.
  absl::Status AddCallbackGaugeFamily(std::string_view name, std::string_view help,
                                      std::vector<std::string> label_names, CollectFn collect);
  absl::Status AddCallbackCounterFamily(std::string_view name, std::string_view help,
                                        std::vector<std::string> label_names, CollectFn collect);
  absl::Status AddCallbackGauge(std::string_view name, std::string_view help,
                                std::function<double()> value);
  absl::Status AddCallbackCounter(std::string_view name, std::string_view help,
                                  std::function<double()> value);

  // Unregisters a callback family. When it returns, the callback is not
  // running and will not be called again, so what it captured may be
  // destroyed. NotFound if `name` is not a callback family.
  absl::Status RemoveCallback(std::string_view name);

  // The exposition text: families ordered by name, children by label values.
  std::string Render() const;

 private:
  absl::Status Register(std::shared_ptr<internal::FamilyBase> family, bool is_callback);
  absl::Status AddCallback(std::string_view name, std::string_view help, internal::MetricType type,
                           std::vector<std::string> label_names, CollectFn collect);
  template <typename T>
  absl::StatusOr<Family<T>*> AddFamily(std::string_view name, std::string_view help,
                                       internal::MetricType type,
                                       std::vector<std::string> label_names,
                                       std::vector<double> bounds);

  const size_t max_label_sets_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<internal::FamilyBase>, std::less<>> families_
      ABSL_GUARDED_BY(mu_);
  std::set<std::string, std::less<>> callback_names_ ABSL_GUARDED_BY(mu_);
  // Every series name families expose (a histogram's name, _bucket, _sum and
  // _count), so that no two families render the same series.
  std::set<std::string, std::less<>> series_names_ ABSL_GUARDED_BY(mu_);
};

}  // namespace dynamo::metrics
