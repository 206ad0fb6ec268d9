#include "dynamo/metrics/registry.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "dynamo/base/strings.h"

namespace dynamo::metrics {
namespace {

using internal::MetricType;


// ---- text format primitives ----

// Formats as Go's strconv.FormatFloat(v, 'g', -1, 64) does, which is what the
// reference client library emits: shortest round-trip digits, exponent form
// when the decimal exponent is < -4 or >= 6 ("5e-05", "1.5e+06"), plain
// decimals otherwise ("0.3", "100000"). std::to_chars ignores the locale.
void AppendDouble(std::string* out, double v) {
  if (std::isnan(v)) {
    out->append("NaN");
    return;
  }
  if (std::isinf(v)) {
    out->append(v > 0 ? "+Inf" : "-Inf");
    return;
  }
  char buf[64];
  const auto sci = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  const std::string_view s(buf, static_cast<size_t>(sci.ptr - buf));
  // to_chars scientific always writes "e+dd" or "e-dd".
  const size_t e = s.find('e');
  int exponent = 0;
  std::from_chars(s.data() + e + 2, s.data() + s.size(), exponent);
  if (s[e + 1] == '-') exponent = -exponent;
  if (exponent < -4 || exponent >= 6) {
    out->append(s);
    return;
  }
  const auto fixed = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
  out->append(buf, static_cast<size_t>(fixed.ptr - buf));
}

void AppendUint(std::string* out, uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, static_cast<size_t>(r.ptr - buf));
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is invalid
// (truncated, overlong, a surrogate, or above U+10FFFF).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMinForLength[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8SequenceLength(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

// Appends `s` escaped for a label value (quote = true) or HELP text. Invalid
// UTF-8 becomes U+FFFD: label values come from runtime data, and Prometheus
// rejects a whole scrape over one bad byte.
void AppendEscaped(std::string* out, std::string_view s, bool quote) {
  for (size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c == '"' && quote) {
      out->append("\\\"");
    } else {
      const size_t len = Utf8SequenceLength(s, i);
      if (len == 0) {
        out->append("\xEF\xBF\xBD");
        ++i;
      } else {
        out->append(s.substr(i, len));
        i += len;
      }
      continue;
    }
    ++i;
  }
}

// name{a="x",b="y"[,le="0.3"]} — braces only when there is a label.
void AppendSeries(std::string* out, std::string_view name, std::string_view suffix,
                  const std::vector<std::string>& label_names,
                  const std::vector<std::string>& label_values, const double* le) {
  out->append(name);
  out->append(suffix);
  if (label_names.empty() && le == nullptr) return;
  out->push_back('{');
  for (size_t i = 0; i < label_names.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->append(label_names[i]);
    out->append("=\"");
    AppendEscaped(out, label_values[i], /*quote=*/true);
    out->push_back('"');
  }
  if (le != nullptr) {
    if (!label_names.empty()) out->push_back(',');
    out->append("le=\"");
    AppendDouble(out, *le);
    out->push_back('"');
  }
  out->push_back('}');
}

void AppendValue(std::string* out, double v) {
  out->push_back(' ');
  AppendDouble(out, v);
  out->push_back('\n');
}

void AppendValue(std::string* out, uint64_t v) {
  out->push_back(' ');
  AppendUint(out, v);
  out->push_back('\n');
}

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// ---- name rules ----

// The format allows [a-zA-Z_][a-zA-Z0-9_]*; we also leave out upper case,
// which `promtool check metrics` flags as camelCase.
bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

absl::Status CheckName(std::string_view what, std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError(Cat(what, " name is empty"));
  if (name.find(':') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat(what, " name \"", name, "\": colons are reserved for Prometheus recording rules"));
  }
  if (!IsNameStart(name[0]) || !std::all_of(name.begin(), name.end(), IsNameChar)) {
    return absl::InvalidArgumentError(
        Cat(what, " name \"", name, "\" must be snake_case: [a-z_][a-z0-9_]*"));
  }
  if (name.starts_with("__")) {
    return absl::InvalidArgumentError(
        Cat(what, " name \"", name, "\": names starting with \"__\" are reserved for Prometheus"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<double>> NormalizeBounds(std::vector<double> bounds) {
  if (!bounds.empty() && bounds.back() == std::numeric_limits<double>::infinity()) {
    bounds.pop_back();
  }
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) {
      return absl::InvalidArgumentError(
          "histogram bucket bounds must be finite (+Inf is implied, and only allowed last)");
    }
    if (i > 0 && !(bounds[i - 1] < bounds[i])) {
      return absl::InvalidArgumentError(Cat("histogram bucket bounds must be strictly increasing; ",
                                            bounds[i - 1], " is followed by ", bounds[i]));
    }
  }
  return bounds;
}

}  // namespace

// ---- buckets ----

std::vector<double> LatencyBucketsSeconds() {
  // Decimal literals, not products like 50 * 1e-6, so that each bound is the
  // double nearest its decimal and renders as that decimal (le="0.3").
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075,
          0.01,    0.015,  0.02,    0.03,   0.05,  0.075, 0.1,   0.15,  0.2,
          0.3,     0.5,    0.75,    1.0,    2.5,   5.0,   10.0};
}

absl::StatusOr<std::vector<double>> AddBucketBound(std::vector<double> bounds, double extra) {
  if (!std::isfinite(extra) || !(extra > 0.0)) {
    return absl::InvalidArgumentError(
        Cat("an extra bucket bound must be finite and positive, got ", extra));
  }
  absl::StatusOr<std::vector<double>> normalized = NormalizeBounds(std::move(bounds));
  if (!normalized.ok()) return normalized.status();
  std::vector<double>& b = *normalized;
  for (double existing : b) {
    if (std::fabs(existing - extra) <= 1e-9 * std::fabs(existing)) return b;
  }
  b.insert(std::lower_bound(b.begin(), b.end(), extra), extra);
  return b;
}

// ---- histogram ----

std::optional<double> HistogramSnapshot::FractionAtOrBelow(double bound) const {
  if (count() == 0) return std::nullopt;
  const auto it = std::find(bounds.begin(), bounds.end(), bound);
  if (it == bounds.end()) return std::nullopt;
  return static_cast<double>(cumulative[static_cast<size_t>(it - bounds.begin())]) /
         static_cast<double>(count());
}

double HistogramSnapshot::Quantile(double q) const {
  const uint64_t n = count();
  if (n == 0 || !(q >= 0.0 && q <= 1.0)) return std::numeric_limits<double>::quiet_NaN();
  const double rank = q * static_cast<double>(n);
  // The first non-empty bucket that reaches the rank (non-empty so that q = 0
  // reports where the data starts rather than dividing by an empty bucket).
  const auto it = std::find_if(cumulative.begin(), cumulative.end(), [rank](uint64_t c) {
    return c > 0 && static_cast<double>(c) >= rank;
  });
  const size_t b = static_cast<size_t>(it - cumulative.begin());
  if (b >= bounds.size()) {
    return bounds.empty() ? std::numeric_limits<double>::quiet_NaN() : bounds.back();
  }
  const double end = bounds[b];
  if (b == 0 && end <= 0.0) return end;
  const double start = b == 0 ? 0.0 : bounds[b - 1];
  const uint64_t below = b == 0 ? 0 : cumulative[b - 1];
  const double in_bucket = static_cast<double>(cumulative[b] - below);
  return start + (end - start) * ((rank - static_cast<double>(below)) / in_bucket);
}

absl::StatusOr<std::unique_ptr<Histogram>> Histogram::Create(std::vector<double> bounds) {
  absl::StatusOr<std::vector<double>> normalized = NormalizeBounds(std::move(bounds));
  if (!normalized.ok()) return normalized.status();
  return std::make_unique<Histogram>(
      std::make_shared<const std::vector<double>>(*std::move(normalized)));
}

Histogram::Histogram(std::shared_ptr<const std::vector<double>> bounds)
    : bounds_(std::move(bounds)),
      counts_(std::make_unique<std::atomic<uint64_t>[]>(bounds_->size() + 1)) {}

void Histogram::Observe(double v) {
  const std::vector<double>& b = *bounds_;
  // "!(bound >= v)" rather than "bound < v" so that NaN passes every bound
  // and lands in +Inf, as in the reference client.
  const size_t i = static_cast<size_t>(
      std::partition_point(b.begin(), b.end(), [v](double bound) { return !(bound >= v); }) -
      b.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

HistogramSnapshot Histogram::Snapshot() const {
  HistogramSnapshot s;
  s.bounds = *bounds_;
  s.cumulative.resize(bounds_->size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i < s.cumulative.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

// ---- families ----

namespace internal {

FamilyBase::FamilyBase(std::string name, std::string help, MetricType type,
                       std::vector<std::string> label_names, size_t max_label_sets)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)),
      max_label_sets_(max_label_sets) {}

void FamilyBase::Render(std::string* out) const {
  std::string samples;
  RenderSamples(&samples);
  if (samples.empty()) return;
  out->append("# HELP ");
  out->append(name_);
  out->push_back(' ');
  AppendEscaped(out, help_, /*quote=*/false);
  out->append("\n# TYPE ");
  out->append(name_);
  out->push_back(' ');
  out->append(TypeName(type_));
  out->push_back('\n');
  out->append(samples);
}

}  // namespace internal

template <typename T>
Family<T>::Family(std::string name, std::string help, internal::MetricType type,
                  std::vector<std::string> label_names, size_t max_label_sets,
                  std::shared_ptr<const std::vector<double>> bounds)
    : FamilyBase(std::move(name), std::move(help), type, std::move(label_names), max_label_sets),
      bounds_(std::move(bounds)) {}

template <typename T>
T& Family<T>::WithLabels(std::initializer_list<std::string_view> label_values) {
  return Get(label_values);
}

template <typename T>
T& Family<T>::WithLabels(std::span<const std::string> label_values) {
  return Get(label_values);
}

template <typename T>
size_t Family<T>::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return children_.size();
}

template <typename T>
std::unique_ptr<T> Family<T>::NewChild() const {
  if constexpr (std::is_same_v<T, Histogram>) {
    return std::make_unique<Histogram>(bounds_);
  } else {
    return std::make_unique<T>();
  }
}

template <typename T>
template <typename Values>
T& Family<T>::Get(const Values& label_values) {
  if (label_values.size() != label_names_.size()) {
    std::fprintf(stderr, "metrics: %s has %zu label names but was given %zu label values\n",
                 name_.c_str(), label_names_.size(), label_values.size());
    std::abort();
  }
  {
    absl::ReaderMutexLock lock(&mu_);
    const auto it = children_.find(label_values);
    if (it != children_.end()) return *it->second;
  }
  absl::MutexLock lock(&mu_);
  if (const auto it = children_.find(label_values); it != children_.end()) return *it->second;
  std::vector<std::string> overflow(label_names_.size(), std::string(kOverflowLabelValue));
  const bool has_overflow = children_.contains(overflow);
  if (children_.size() - (has_overflow ? 1 : 0) >= max_label_sets_) {
    auto& child = children_[std::move(overflow)];
    if (child == nullptr) child = NewChild();
    return *child;
  }
  std::vector<std::string> key(label_values.begin(), label_values.end());
  return *children_.emplace(std::move(key), NewChild()).first->second;
}

template <typename T>
void Family<T>::RenderSamples(std::string* out) const {
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [values, child] : children_) {
    if constexpr (std::is_same_v<T, Histogram>) {
      const HistogramSnapshot s = child->Snapshot();
      for (size_t i = 0; i < s.cumulative.size(); ++i) {
        const double le =
            i < s.bounds.size() ? s.bounds[i] : std::numeric_limits<double>::infinity();
        AppendSeries(out, name_, "_bucket", label_names_, values, &le);
        AppendValue(out, s.cumulative[i]);
      }
      AppendSeries(out, name_, "_sum", label_names_, values, nullptr);
      AppendValue(out, s.sum);
      AppendSeries(out, name_, "_count", label_names_, values, nullptr);
      AppendValue(out, s.count());
    } else {
      AppendSeries(out, name_, "", label_names_, values, nullptr);
      AppendValue(out, child->Value());
    }
  }
}

template class Family<Counter>;
template class Family<IntCounter>;
template class Family<Gauge>;
template class Family<Histogram>;

namespace {

// A family whose samples come from a function at scrape time. The function
// runs under cb_mu_ so that Disable() can promise it has stopped.
class CallbackFamily final : public internal::FamilyBase {
 public:
  CallbackFamily(std::string name, std::string help, MetricType type,
                 std::vector<std::string> label_names, size_t max_label_sets, CollectFn collect)
      : FamilyBase(std::move(name), std::move(help), type, std::move(label_names), max_label_sets),
        collect_(std::move(collect)) {}

  void Disable() {
    absl::MutexLock lock(&cb_mu_);
    collect_ = nullptr;
  }

 private:
  void RenderSamples(std::string* out) const override {
    std::vector<LabeledValue> samples;
    {
      absl::MutexLock lock(&cb_mu_);
      if (!collect_) return;
      samples = collect_();
    }
    std::erase_if(samples, [this](const LabeledValue& s) {
      return s.label_values.size() != label_names_.size();
    });
    std::stable_sort(samples.begin(), samples.end(),
                     [](const LabeledValue& a, const LabeledValue& b) {
                       return internal::LabelValuesLess()(a.label_values, b.label_values);
                     });
    samples.erase(std::unique(samples.begin(), samples.end(),
                              [](const LabeledValue& a, const LabeledValue& b) {
                                return a.label_values == b.label_values;
                              }),
                  samples.end());
    if (samples.size() > max_label_sets_) samples.resize(max_label_sets_);
    for (const LabeledValue& s : samples) {
      AppendSeries(out, name_, "", label_names_, s.label_values, nullptr);
      AppendValue(out, s.value);
    }
  }

  mutable absl::Mutex cb_mu_;
  CollectFn collect_ ABSL_GUARDED_BY(cb_mu_);
};

std::vector<std::string> SeriesNames(std::string_view name, MetricType type) {
  std::vector<std::string> names{std::string(name)};
  if (type == MetricType::kHistogram) {
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      names.push_back(Cat(name, suffix));
    }
  }
  return names;
}

// The naming rules listed on Registry.
absl::Status Validate(std::string_view name, std::string_view help, MetricType type,
                      const std::vector<std::string>& label_names) {
  if (absl::Status s = CheckName("metric", name); !s.ok()) return s;
  const bool total = name.ends_with("_total");
  if (type == MetricType::kCounter && !total) {
    return absl::InvalidArgumentError(
        Cat("counter \"", name, "\" must end in _total (Prometheus naming convention)"));
  }
  if (type != MetricType::kCounter && total) {
    return absl::InvalidArgumentError(
        Cat(TypeName(type), " \"", name, "\" must not end in _total: that suffix marks counters"));
  }
  if (type == MetricType::kHistogram) {
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (name.ends_with(suffix)) {
        return absl::InvalidArgumentError(
            Cat("histogram \"", name, "\" must not end in ", suffix, ": the format appends it"));
      }
    }
  }
  if (help.empty()) {
    return absl::InvalidArgumentError(Cat("metric \"", name, "\" needs help text"));
  }
  if (!IsValidUtf8(help)) {
    return absl::InvalidArgumentError(Cat("help of \"", name, "\" is not valid UTF-8"));
  }
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string& label = label_names[i];
    if (absl::Status s = CheckName(Cat("label of \"", name, "\":"), label); !s.ok()) {
      return s;
    }
    if (type == MetricType::kHistogram && label == "le") {
      return absl::InvalidArgumentError(
          Cat("histogram \"", name, "\" may not use the label \"le\": it holds bounds"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (label_names[j] == label) {
        return absl::InvalidArgumentError(
            Cat("metric \"", name, "\" names the label \"", label, "\" twice"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

// ---- registry ----

Registry::Registry(size_t max_label_sets) : max_label_sets_(max_label_sets) {}

Registry::~Registry() = default;

absl::Status Registry::Register(std::shared_ptr<internal::FamilyBase> family, bool is_callback) {
  const std::vector<std::string> series = SeriesNames(family->name(), family->type());
  absl::MutexLock lock(&mu_);
  for (const std::string& s : series) {
    if (series_names_.contains(s)) {
      return absl::AlreadyExistsError(
          Cat("metric \"", family->name(), "\" collides with the registered series \"", s, "\""));
    }
  }
  series_names_.insert(series.begin(), series.end());
  if (is_callback) callback_names_.insert(family->name());
  families_.emplace(family->name(), std::move(family));
  return absl::OkStatus();
}

template <typename T>
absl::StatusOr<Family<T>*> Registry::AddFamily(std::string_view name, std::string_view help,
                                               MetricType type,
                                               std::vector<std::string> label_names,
                                               std::vector<double> bounds) {
  if (absl::Status s = Validate(name, help, type, label_names); !s.ok()) return s;
  std::shared_ptr<const std::vector<double>> shared_bounds;
  if constexpr (std::is_same_v<T, Histogram>) {
    absl::StatusOr<std::vector<double>> normalized = NormalizeBounds(std::move(bounds));
    if (!normalized.ok()) {
      return absl::InvalidArgumentError(
          Cat("histogram \"", name, "\": ", normalized.status().message()));
    }
    shared_bounds = std::make_shared<const std::vector<double>>(*std::move(normalized));
  }
  // Family's constructor is private to Registry, hence no make_shared.
  std::shared_ptr<Family<T>> family(new Family<T>(std::string(name), std::string(help), type,
                                                  std::move(label_names), max_label_sets_,
                                                  std::move(shared_bounds)));
  Family<T>* raw = family.get();
  if (absl::Status s = Register(std::move(family), /*is_callback=*/false); !s.ok()) return s;
  return raw;
}

absl::StatusOr<Family<Counter>*> Registry::AddCounterFamily(std::string_view name,
                                                            std::string_view help,
                                                            std::vector<std::string> label_names) {
  return AddFamily<Counter>(name, help, MetricType::kCounter, std::move(label_names), {});
}

absl::StatusOr<Family<IntCounter>*> Registry::AddIntCounterFamily(
    std::string_view name, std::string_view help, std::vector<std::string> label_names) {
  return AddFamily<IntCounter>(name, help, MetricType::kCounter, std::move(label_names), {});
}

absl::StatusOr<Family<Gauge>*> Registry::AddGaugeFamily(std::string_view name,
                                                        std::string_view help,
                                                        std::vector<std::string> label_names) {
  return AddFamily<Gauge>(name, help, MetricType::kGauge, std::move(label_names), {});
}

absl::StatusOr<Family<Histogram>*> Registry::AddHistogramFamily(
    std::string_view name, std::string_view help, std::vector<std::string> label_names,
    std::vector<double> bounds) {
  return AddFamily<Histogram>(name, help, MetricType::kHistogram, std::move(label_names),
                              std::move(bounds));
}

namespace {

// The single child of a family without labels, created now so that it
// renders (as zero) from registration on.
template <typename T>
absl::StatusOr<T*> OnlyChild(absl::StatusOr<Family<T>*> family) {
  if (!family.ok()) return family.status();
  return &(*family)->WithLabels({});
}

}  // namespace

absl::StatusOr<Counter*> Registry::AddCounter(std::string_view name, std::string_view help) {
  return OnlyChild(AddCounterFamily(name, help, {}));
}

absl::StatusOr<IntCounter*> Registry::AddIntCounter(std::string_view name, std::string_view help) {
  return OnlyChild(AddIntCounterFamily(name, help, {}));
}

absl::StatusOr<Gauge*> Registry::AddGauge(std::string_view name, std::string_view help) {
  return OnlyChild(AddGaugeFamily(name, help, {}));
}

absl::StatusOr<Histogram*> Registry::AddHistogram(std::string_view name, std::string_view help,
                                                  std::vector<double> bounds) {
  return OnlyChild(AddHistogramFamily(name, help, {}, std::move(bounds)));
}

absl::Status Registry::AddCallback(std::string_view name, std::string_view help, MetricType type,
                                   std::vector<std::string> label_names, CollectFn collect) {
  if (absl::Status s = Validate(name, help, type, label_names); !s.ok()) return s;
  if (!collect) {
    return absl::InvalidArgumentError(Cat("callback for \"", name, "\" is empty"));
  }
  return Register(
      std::make_shared<CallbackFamily>(std::string(name), std::string(help), type,
                                       std::move(label_names), max_label_sets_, std::move(collect)),
      /*is_callback=*/true);
}

absl::Status Registry::AddCallbackGaugeFamily(std::string_view name, std::string_view help,
                                              std::vector<std::string> label_names,
                                              CollectFn collect) {
  return AddCallback(name, help, MetricType::kGauge, std::move(label_names), std::move(collect));
}

absl::Status Registry::AddCallbackCounterFamily(std::string_view name, std::string_view help,
                                                std::vector<std::string> label_names,
                                                CollectFn collect) {
  return AddCallback(name, help, MetricType::kCounter, std::move(label_names), std::move(collect));
}

namespace {

CollectFn Unlabelled(std::function<double()> value) {
  if (!value) return nullptr;
  return [value = std::move(value)] { return std::vector<LabeledValue>{{{}, value()}}; };
}

}  // namespace

absl::Status Registry::AddCallbackGauge(std::string_view name, std::string_view help,
                                        std::function<double()> value) {
  return AddCallback(name, help, MetricType::kGauge, {}, Unlabelled(std::move(value)));
}

absl::Status Registry::AddCallbackCounter(std::string_view name, std::string_view help,
                                          std::function<double()> value) {
  return AddCallback(name, help, MetricType::kCounter, {}, Unlabelled(std::move(value)));
}

absl::Status Registry::RemoveCallback(std::string_view name) {
  std::shared_ptr<internal::FamilyBase> family;
  {
    absl::MutexLock lock(&mu_);
    const auto it = callback_names_.find(name);
    if (it == callback_names_.end()) {
      return absl::NotFoundError(Cat("no callback metric named \"", name, "\""));
    }
    callback_names_.erase(it);
    const auto f = families_.find(name);
    family = std::move(f->second);
    families_.erase(f);
    for (const std::string& s : SeriesNames(name, family->type())) series_names_.erase(s);
  }
  // A concurrent Render may still hold the family; Disable waits for its call.
  static_cast<CallbackFamily*>(family.get())->Disable();
  return absl::OkStatus();
}

std::string Registry::Render() const {
  std::vector<std::shared_ptr<internal::FamilyBase>> families;
  {
    absl::ReaderMutexLock lock(&mu_);
    families.reserve(families_.size());
    for (const auto& [name, family] : families_) families.push_back(family);
  }
  std::string out;
  for (const auto& family : families) family->Render(&out);
  return out;
}

}  // namespace dynamo::metrics
