#include "dynamo/metrics/registry.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <locale>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace dynamo::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

TEST(RegistryTest, IntCounterRendersHelpTypeAndValue) {
  Registry registry;
  absl::StatusOr<IntCounter*> requests =
      registry.AddIntCounter("dynamo_requests_total", "Requests.");
  ASSERT_TRUE(requests.ok()) << requests.status();
  (*requests)->Increment();
  (*requests)->Increment(2);
  EXPECT_EQ(registry.Render(),
            "# HELP dynamo_requests_total Requests.\n"
            "# TYPE dynamo_requests_total counter\n"
            "dynamo_requests_total 3\n");
}

TEST(RegistryTest, CounterFamilyWithLabelsIgnoresNegativeIncrements) {
  Registry registry;
  auto family =
      registry.AddCounterFamily("dynamo_bytes_written_total", "Bytes written.", {"engine", "cf"});
  ASSERT_TRUE(family.ok()) << family.status();
  Counter& rocks = (*family)->WithLabels({"rocksdb", "data"});
  rocks.Increment(1.5);
  rocks.Increment(-7);    // a counter never goes down
  rocks.Increment(kNaN);  // nor becomes NaN
  rocks.Increment();
  EXPECT_EQ(rocks.Value(), 2.5);
  EXPECT_EQ(registry.Render(),
            "# HELP dynamo_bytes_written_total Bytes written.\n"
            "# TYPE dynamo_bytes_written_total counter\n"
            "dynamo_bytes_written_total{engine=\"rocksdb\",cf=\"data\"} 2.5\n");
}

TEST(RegistryTest, GaugeSetAddSub) {
  Registry registry;
  absl::StatusOr<Gauge*> gauge = registry.AddGauge("dynamo_open_connections", "Connections.");
  ASSERT_TRUE(gauge.ok()) << gauge.status();
  (*gauge)->Set(10);
  (*gauge)->Add(2.5);
  (*gauge)->Sub(0.5);
  (*gauge)->Increment();
  (*gauge)->Decrement();
  (*gauge)->Decrement();
  EXPECT_EQ(registry.Render(),
            "# HELP dynamo_open_connections Connections.\n"
            "# TYPE dynamo_open_connections gauge\n"
            "dynamo_open_connections 11\n");
}

TEST(RegistryTest, FloatsFormatAsPrometheusParsesThem) {
  Registry registry;
  auto family = registry.AddGaugeFamily("dynamo_value", "Values.", {"case"});
  ASSERT_TRUE(family.ok()) << family.status();
  const std::vector<std::pair<std::string, double>> cases = {
      {"a_zero", 0.0},
      {"b_sla", 0.3},
      {"c_tenth_times_three", 0.1 * 3},
      {"d_small", 0.0001},
      {"e_smaller", 0.00005},
      {"f_big", 100000},
      {"g_million", 1e6},
      {"h_digits", 1234567},
      {"i_negative", -2.5},
      {"j_plus_inf", kInf},
      {"k_minus_inf", -kInf},
      {"l_nan", kNaN},
      {"m_max", 1.7976931348623157e308},
      {"n_denormal", 5e-324},
  };
  for (const auto& [label, value] : cases) (*family)->WithLabels({label}).Set(value);
  EXPECT_EQ(registry.Render(),
            "# HELP dynamo_value Values.\n"
            "# TYPE dynamo_value gauge\n"
            "dynamo_value{case=\"a_zero\"} 0\n"
            "dynamo_value{case=\"b_sla\"} 0.3\n"
            "dynamo_value{case=\"c_tenth_times_three\"} 0.30000000000000004\n"
            "dynamo_value{case=\"d_small\"} 0.0001\n"
            "dynamo_value{case=\"e_smaller\"} 5e-05\n"
            "dynamo_value{case=\"f_big\"} 100000\n"
            "dynamo_value{case=\"g_million\"} 1e+06\n"
            "dynamo_value{case=\"h_digits\"} 1.234567e+06\n"
            "dynamo_value{case=\"i_negative\"} -2.5\n"
            "dynamo_value{case=\"j_plus_inf\"} +Inf\n"
            "dynamo_value{case=\"k_minus_inf\"} -Inf\n"
            "dynamo_value{case=\"l_nan\"} NaN\n"
            "dynamo_value{case=\"m_max\"} 1.7976931348623157e+308\n"
            "dynamo_value{case=\"n_denormal\"} 5e-324\n");
}

// A numpunct that would turn 1234.5 into "1.234,5" if anything used iostreams.
class GermanNumbers : public std::numpunct<char> {
 protected:
  char do_decimal_point() const override { return ','; }
  char do_thousands_sep() const override { return '.'; }
  std::string do_grouping() const override { return "\3"; }
};

TEST(RegistryTest, RenderingIgnoresTheGlobalLocale) {
  Registry registry;
  absl::StatusOr<Gauge*> gauge = registry.AddGauge("dynamo_ratio", "A ratio.");
  ASSERT_TRUE(gauge.ok());
  (*gauge)->Set(1234.5);
  const std::locale previous =
      std::locale::global(std::locale(std::locale::classic(), new GermanNumbers));
  const std::string text = registry.Render();
  std::locale::global(previous);
  EXPECT_THAT(text, HasSubstr("dynamo_ratio 1234.5\n"));
}

TEST(RegistryTest, EscapesLabelValuesAndHelp) {
  Registry registry;
  auto family =
      registry.AddGaugeFamily("dynamo_escape", "Back\\slash, \"quotes\" stay,\nnewline.", {"v"});
  ASSERT_TRUE(family.ok()) << family.status();
  (*family)->WithLabels({"a\\b"}).Set(1);
  (*family)->WithLabels({"say \"hi\""}).Set(2);
  (*family)->WithLabels({"line1\nline2"}).Set(3);
  (*family)->WithLabels({"caf\xC3\xA9"}).Set(4);  // valid UTF-8 passes through
  (*family)
      ->WithLabels({"bad\xFF"
                    "byte"})
      .Set(5);                                     // invalid UTF-8 becomes U+FFFD
  (*family)->WithLabels({"\xED\xA0\x80"}).Set(6);  // a UTF-16 surrogate is invalid too
  (*family)->WithLabels({""}).Set(7);
  EXPECT_EQ(registry.Render(),
            "# HELP dynamo_escape Back\\\\slash, \"quotes\" stay,\\nnewline.\n"
            "# TYPE dynamo_escape gauge\n"
            "dynamo_escape{v=\"\"} 7\n"
            "dynamo_escape{v=\"a\\\\b\"} 1\n"
            "dynamo_escape{v=\"bad\xEF\xBF\xBD"
            "byte\"} 5\n"
            "dynamo_escape{v=\"caf\xC3\xA9\"} 4\n"
            "dynamo_escape{v=\"line1\\nline2\"} 3\n"
            "dynamo_escape{v=\"say \\\"hi\\\"\"} 2\n"
            "dynamo_escape{v=\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"} 6\n");
}

TEST(RegistryTest, RejectsInvalidNames) {
  Registry registry;
  struct Case {
    std::string name;
    std::vector<std::string> labels;
    std::string why;
  };
  const std::vector<Case> gauges = {
      {"", {}, "empty"},
      {"1abc", {}, "snake_case"},
      {"a-b", {}, "snake_case"},
      {"caf\xC3\xA9", {}, "snake_case"},
      {"dynamoRequests", {}, "snake_case"},
      {"a:b", {}, "recording rules"},
      {"__internal", {}, "reserved"},
      {"dynamo_things_total", {}, "must not end in _total"},
      {"dynamo_ok", {""}, "empty"},
      {"dynamo_ok", {"a-b"}, "snake_case"},
      {"dynamo_ok", {"targetNode"}, "snake_case"},
      {"dynamo_ok", {"__name__"}, "reserved"},
      {"dynamo_ok", {"a:b"}, "recording rules"},
      {"dynamo_ok", {"x", "x"}, "twice"},
  };
  for (const Case& c : gauges) {
    absl::StatusOr<Family<Gauge>*> family = registry.AddGaugeFamily(c.name, "Help.", c.labels);
    EXPECT_EQ(family.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(family.status().message(), HasSubstr(c.why)) << c.name;
  }
  EXPECT_THAT(registry.AddIntCounter("dynamo_requests", "Help.").status().message(),
              HasSubstr("must end in _total"));
  EXPECT_THAT(registry.AddCounter("dynamo_requests", "Help.").status().message(),
              HasSubstr("must end in _total"));
  EXPECT_THAT(registry.AddCallbackCounter("dynamo_requests", "Help.", [] { return 1.0; }).message(),
              HasSubstr("must end in _total"));
  EXPECT_THAT(
      registry.AddHistogram("dynamo_latency_seconds_count", "Help.", {1}).status().message(),
      HasSubstr("must not end in _count"));
  EXPECT_THAT(registry.AddHistogramFamily("dynamo_latency_seconds", "Help.", {"le"}, {1})
                  .status()
                  .message(),
              HasSubstr("\"le\""));
  EXPECT_THAT(registry.AddGauge("dynamo_no_help", "").status().message(),
              HasSubstr("needs help text"));
  EXPECT_THAT(registry.AddGauge("dynamo_bad_help", "\xFF").status().message(), HasSubstr("UTF-8"));
  EXPECT_EQ(registry.AddCallbackGauge("dynamo_null_callback", "Help.", nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  // Nothing half-registered.
  EXPECT_EQ(registry.Render(), "");
  EXPECT_TRUE(registry.AddGauge("dynamo_ok", "Help.").ok());
}

TEST(RegistryTest, RejectsCollidingNames) {
  Registry registry;
  ASSERT_TRUE(registry.AddGauge("dynamo_members", "Help.").ok());
  EXPECT_EQ(registry.AddGauge("dynamo_members", "Help.").status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(registry.AddCallbackGauge("dynamo_members", "Help.", [] { return 0.0; }).code(),
            absl::StatusCode::kAlreadyExists);

  ASSERT_TRUE(registry.AddHistogram("dynamo_latency_seconds", "Help.", {1}).ok());
  const absl::Status count = registry.AddGauge("dynamo_latency_seconds_count", "Help.").status();
  EXPECT_EQ(count.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(count.message(), HasSubstr("dynamo_latency_seconds_count"));

  ASSERT_TRUE(registry.AddGauge("dynamo_size_sum", "Help.").ok());
  EXPECT_EQ(registry.AddHistogram("dynamo_size", "Help.", {1}).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(RegistryTest, RendersInOrderOfNameThenLabelValues) {
  Registry registry;
  auto zeta = registry.AddGaugeFamily("zeta", "Z.", {"node"});
  auto alpha = registry.AddIntCounterFamily("alpha_total", "A.", {"op", "status"});
  ASSERT_TRUE(zeta.ok() && alpha.ok());
  (*zeta)->WithLabels({"n2"}).Set(2);
  (*zeta)->WithLabels({"n10"}).Set(10);
  (*zeta)->WithLabels({"n1"}).Set(1);
  (*alpha)->WithLabels({"put", "ok"}).Increment();
  (*alpha)->WithLabels({"get", "timeout"}).Increment(2);
  (*alpha)->WithLabels({"get", "ok"}).Increment(3);
  EXPECT_EQ(registry.Render(),
            "# HELP alpha_total A.\n"
            "# TYPE alpha_total counter\n"
            "alpha_total{op=\"get\",status=\"ok\"} 3\n"
            "alpha_total{op=\"get\",status=\"timeout\"} 2\n"
            "alpha_total{op=\"put\",status=\"ok\"} 1\n"
            "# HELP zeta Z.\n"
            "# TYPE zeta gauge\n"
            "zeta{node=\"n1\"} 1\n"
            "zeta{node=\"n10\"} 10\n"
            "zeta{node=\"n2\"} 2\n");
}

TEST(RegistryTest, FamilyWithoutChildrenRendersNothingUnlabelledRendersZero) {
  Registry registry;
  ASSERT_TRUE(registry.AddGaugeFamily("dynamo_by_peer", "Per peer.", {"peer"}).ok());
  ASSERT_TRUE(registry.AddIntCounter("dynamo_events_total", "Events.").ok());
  EXPECT_EQ(registry.Render(),
            "# HELP dynamo_events_total Events.\n"
            "# TYPE dynamo_events_total counter\n"
            "dynamo_events_total 0\n");
}

TEST(RegistryTest, WithLabelsReturnsAStableReference) {
  Registry registry;
  auto family = registry.AddHistogramFamily("dynamo_request_duration_seconds", "Latency.", {"op"},
                                            LatencyBucketsSeconds());
  ASSERT_TRUE(family.ok()) << family.status();
  Histogram& put = (*family)->WithLabels({"put"});
  for (int i = 0; i < 100; ++i) (*family)->WithLabels({absl::StrCat("op", i)});
  EXPECT_EQ(&put, &(*family)->WithLabels({"put"}));
  const std::vector<std::string> dynamic = {"put"};
  EXPECT_EQ(&put, &(*family)->WithLabels(dynamic));
  EXPECT_EQ((*family)->size(), 101u);
}

TEST(RegistryDeathTest, WrongNumberOfLabelValuesAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry registry;
  auto family = registry.AddGaugeFamily("dynamo_g", "G.", {"a", "b"});
  ASSERT_TRUE(family.ok());
  EXPECT_DEATH((*family)->WithLabels({"only-one"}), "2 label names but was given 1");
}

TEST(RegistryTest, LabelSetsAreBoundedWithAnOverflowChild) {
  Registry registry(/*max_label_sets=*/3);
  auto family = registry.AddIntCounterFamily("dynamo_peer_messages_total", "Messages.", {"peer"});
  ASSERT_TRUE(family.ok());
  for (std::string peer : {"a", "b", "c", "d", "e"}) (*family)->WithLabels({peer}).Increment();
  (*family)->WithLabels({"a"}).Increment();  // existing children are still found
  EXPECT_EQ((*family)->size(), 4u);
  EXPECT_EQ(registry.Render(),
            "# HELP dynamo_peer_messages_total Messages.\n"
            "# TYPE dynamo_peer_messages_total counter\n"
            "dynamo_peer_messages_total{peer=\"__overflow__\"} 2\n"
            "dynamo_peer_messages_total{peer=\"a\"} 2\n"
            "dynamo_peer_messages_total{peer=\"b\"} 1\n"
            "dynamo_peer_messages_total{peer=\"c\"} 1\n");
}

TEST(HistogramTest, BucketsAreInclusiveCumulativeWithSumAndCount) {
  Registry registry;
  auto family = registry.AddHistogramFamily("dynamo_request_duration_seconds", "Latency.", {"op"},
                                            {0.1, 0.3, 1});
  ASSERT_TRUE(family.ok()) << family.status();
  Histogram& get = (*family)->WithLabels({"get"});
  for (double v : {0.1, 0.3, 1.0, 5.0, -1.0}) get.Observe(v);
  EXPECT_EQ(registry.Render(),
            "# HELP dynamo_request_duration_seconds Latency.\n"
            "# TYPE dynamo_request_duration_seconds histogram\n"
            "dynamo_request_duration_seconds_bucket{op=\"get\",le=\"0.1\"} 2\n"
            "dynamo_request_duration_seconds_bucket{op=\"get\",le=\"0.3\"} 3\n"
            "dynamo_request_duration_seconds_bucket{op=\"get\",le=\"1\"} 4\n"
            "dynamo_request_duration_seconds_bucket{op=\"get\",le=\"+Inf\"} 5\n"
            "dynamo_request_duration_seconds_sum{op=\"get\"} 5.4\n"
            "dynamo_request_duration_seconds_count{op=\"get\"} 5\n");
}

TEST(HistogramTest, UnlabelledHistogramAndEdgeValues) {
  Registry registry;
  absl::StatusOr<Histogram*> h = registry.AddHistogram("dynamo_value_size_bytes", "Sizes.",
                                                       {1024, 65536, kInf});  // +Inf dropped
  ASSERT_TRUE(h.ok()) << h.status();
  (*h)->Observe(0.30000000000000004);
  (*h)->Observe(std::nextafter(1024.0, kInf));  // just above a bound: next bucket
  (*h)->Observe(kInf);
  EXPECT_EQ(registry.Render(),
            "# HELP dynamo_value_size_bytes Sizes.\n"
            "# TYPE dynamo_value_size_bytes histogram\n"
            "dynamo_value_size_bytes_bucket{le=\"1024\"} 1\n"
            "dynamo_value_size_bytes_bucket{le=\"65536\"} 2\n"
            "dynamo_value_size_bytes_bucket{le=\"+Inf\"} 3\n"
            "dynamo_value_size_bytes_sum +Inf\n"
            "dynamo_value_size_bytes_count 3\n");
}

TEST(HistogramTest, NaNLandsOnlyInTheInfBucket) {
  absl::StatusOr<std::unique_ptr<Histogram>> h = Histogram::Create({1, 2});
  ASSERT_TRUE(h.ok());
  (*h)->Observe(kNaN);
  const HistogramSnapshot s = (*h)->Snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{0, 0, 1}));
  EXPECT_TRUE(std::isnan(s.sum));
}

TEST(HistogramTest, RejectsBadBounds) {
  for (const std::vector<double>& bounds :
       std::vector<std::vector<double>>{{1, 0.5}, {1, 1}, {kNaN}, {-kInf, 1}, {1, kInf, 2}}) {
    EXPECT_EQ(Histogram::Create(bounds).status().code(), absl::StatusCode::kInvalidArgument);
    Registry registry;
    const absl::Status s = registry.AddHistogram("dynamo_h", "H.", bounds).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr("dynamo_h"));
  }
  // No finite bounds at all is valid: a count and a sum.
  EXPECT_TRUE(Histogram::Create({}).ok());
}

TEST(HistogramTest, LatencyBucketsHoldTheSlaExactly) {
  const std::vector<double> b = LatencyBucketsSeconds();
  ASSERT_EQ(b.size(), 25u);
  EXPECT_EQ(b.front(), 0.00005);
  EXPECT_EQ(b.back(), 10.0);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
  EXPECT_NE(std::find(b.begin(), b.end(), 0.3), b.end());
  EXPECT_NE(std::find(b.begin(), b.end(), kPaperSlaSeconds), b.end());

  Registry registry;
  absl::StatusOr<Histogram*> h = registry.AddHistogram("dynamo_put_duration_seconds", "Put.", b);
  ASSERT_TRUE(h.ok());
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("dynamo_put_duration_seconds_bucket{le=\"0.3\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dynamo_put_duration_seconds_bucket{le=\"5e-05\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("dynamo_put_duration_seconds_bucket{le=\"0.0075\"} 0\n"));

  // 999 requests in 250 µs and one in 2 s: exactly 99.9% within the SLA.
  for (int i = 0; i < 999; ++i) (*h)->Observe(0.00025);
  (*h)->Observe(2.0);
  const HistogramSnapshot s = (*h)->Snapshot();
  EXPECT_EQ(s.FractionAtOrBelow(0.3), 0.999);
  EXPECT_EQ(s.FractionAtOrBelow(0.31), std::nullopt);  // not a bound: no guessing
}

TEST(HistogramTest, AddBucketBoundSortsAndDeduplicates) {
  const std::vector<double> base = LatencyBucketsSeconds();
  absl::StatusOr<std::vector<double>> with = AddBucketBound(base, 0.25);
  ASSERT_TRUE(with.ok());
  EXPECT_EQ(with->size(), base.size() + 1);
  EXPECT_TRUE(std::is_sorted(with->begin(), with->end()));
  EXPECT_NE(std::find(with->begin(), with->end(), 0.25), with->end());

  EXPECT_EQ(*AddBucketBound(base, 0.3), base);
  EXPECT_EQ(*AddBucketBound(base, 300 / 1000.0), base);  // a configured "300 ms"
  EXPECT_EQ(*AddBucketBound(base, 0.1 * 3), base);       // 0.30000000000000004: the same SLA
  EXPECT_EQ(AddBucketBound(base, 20.0)->back(), 20.0);
  EXPECT_EQ(AddBucketBound(base, 0.00001)->front(), 0.00001);

  for (double bad : {0.0, -0.3, kInf, kNaN}) {
    EXPECT_EQ(AddBucketBound(base, bad).status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(AddBucketBound({2, 1}, 0.5).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(HistogramTest, QuantileInterpolatesLikeHistogramQuantile) {
  absl::StatusOr<std::unique_ptr<Histogram>> h = Histogram::Create({1, 2, 4});
  ASSERT_TRUE(h.ok());
  EXPECT_TRUE(std::isnan((*h)->Snapshot().Quantile(0.5)));
  for (double v : {0.5, 1.5, 1.7, 3.0}) (*h)->Observe(v);
  const HistogramSnapshot s = (*h)->Snapshot();
  EXPECT_EQ(s.count(), 4u);
  EXPECT_DOUBLE_EQ(s.Quantile(0.5), 1.5);  // rank 2 of bucket (1,2] holding 2
  EXPECT_DOUBLE_EQ(s.Quantile(1.0), 4.0);
  EXPECT_DOUBLE_EQ(s.Quantile(0.0), 0.0);
  EXPECT_DOUBLE_EQ(s.Quantile(0.25), 1.0);
  EXPECT_TRUE(std::isnan(s.Quantile(1.5)));
  (*h)->Observe(100);  // beyond the last bound: reported as that bound
  EXPECT_DOUBLE_EQ((*h)->Snapshot().Quantile(1.0), 4.0);
}

TEST(RegistryTest, ConcurrentUpdatesSumCorrectly) {
  Registry registry;
  auto ints = registry.AddIntCounterFamily("dynamo_ops_total", "Ops.", {"op"});
  auto doubles = registry.AddCounterFamily("dynamo_work_total", "Work.", {"op"});
  auto gauges = registry.AddGaugeFamily("dynamo_level", "Level.", {"op"});
  auto hists = registry.AddHistogramFamily("dynamo_op_duration_seconds", "Ops.", {"op"},
                                           LatencyBucketsSeconds());
  ASSERT_TRUE(ints.ok() && doubles.ok() && gauges.ok() && hists.ok());
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20'000;
  std::atomic<bool> done{false};
  size_t rendered_bytes = 0;
  std::thread scraper([&] {
    while (!done.load()) rendered_bytes += registry.Render().size();
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Look-ups race with each other on purpose; hot paths keep the handle.
        (*ints)->WithLabels({"put"}).Increment();
        (*doubles)->WithLabels({"put"}).Increment(0.5);
        (*gauges)->WithLabels({"put"}).Add(t % 2 == 0 ? 2.0 : -1.0);
        (*hists)->WithLabels({"put"}).Observe(i % 2 == 0 ? 0.3 : 0.5);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  done = true;
  scraper.join();
  EXPECT_EQ((*ints)->WithLabels({"put"}).Value(), uint64_t{kThreads} * kPerThread);
  EXPECT_EQ((*doubles)->WithLabels({"put"}).Value(), kThreads * kPerThread * 0.5);
  EXPECT_EQ((*gauges)->WithLabels({"put"}).Value(), (kThreads / 2) * kPerThread * 1.0);
  const HistogramSnapshot s = (*hists)->WithLabels({"put"}).Snapshot();
  EXPECT_EQ(s.count(), uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(s.FractionAtOrBelow(0.3), 0.5);
  EXPECT_NEAR(s.sum, kThreads * (kPerThread / 2) * 0.8, 1e-6);
  EXPECT_EQ((*ints)->size(), 1u);
  EXPECT_THAT(registry.Render(), HasSubstr("dynamo_ops_total{op=\"put\"} 160000\n"));
  EXPECT_GE(rendered_bytes, 0u);  // the scraper ran alongside; what it saw varies
}

TEST(CallbackTest, FamilyIsSortedDeduplicatedAndChecked) {
  Registry registry;
  ASSERT_TRUE(registry
                  .AddCallbackGaugeFamily("dynamo_hint_backlog_bytes", "Hints held per target.",
                                          {"target"},
                                          [] {
                                            return std::vector<LabeledValue>{
                                                {{"n3"}, 300},        {{"n1"}, 100},
                                                {{"n1"}, 999},         // duplicate: first wins
                                                {{"n2", "extra"}, 7},  // wrong arity: dropped
                                                {{"n2"}, 200},
                                            };
                                          })
                  .ok());
  ASSERT_TRUE(
      registry
          .AddCallbackCounter("dynamo_gossip_rounds_total", "Gossip rounds.", [] { return 42.0; })
          .ok());
  ASSERT_TRUE(registry
                  .AddCallbackGaugeFamily("dynamo_empty", "Nothing yet.", {"x"},
                                          [] { return std::vector<LabeledValue>{}; })
                  .ok());
  EXPECT_EQ(registry.Render(),
            "# HELP dynamo_gossip_rounds_total Gossip rounds.\n"
            "# TYPE dynamo_gossip_rounds_total counter\n"
            "dynamo_gossip_rounds_total 42\n"
            "# HELP dynamo_hint_backlog_bytes Hints held per target.\n"
            "# TYPE dynamo_hint_backlog_bytes gauge\n"
            "dynamo_hint_backlog_bytes{target=\"n1\"} 100\n"
            "dynamo_hint_backlog_bytes{target=\"n2\"} 200\n"
            "dynamo_hint_backlog_bytes{target=\"n3\"} 300\n");
}

TEST(CallbackTest, ValueIsReadAtScrapeTime) {
  Registry registry;
  std::atomic<int> alive{3};
  ASSERT_TRUE(registry
                  .AddCallbackGaugeFamily("dynamo_members", "Members by state.", {"state"},
                                          [&alive] {
                                            return std::vector<LabeledValue>{
                                                {{"alive"}, static_cast<double>(alive.load())},
                                                {{"leaving"}, 0}};
                                          })
                  .ok());
  EXPECT_THAT(registry.Render(), HasSubstr("dynamo_members{state=\"alive\"} 3\n"));
  alive = 4;
  EXPECT_THAT(registry.Render(), HasSubstr("dynamo_members{state=\"alive\"} 4\n"));
}

TEST(CallbackTest, SamplesAreBounded) {
  Registry registry(/*max_label_sets=*/2);
  ASSERT_TRUE(registry
                  .AddCallbackGaugeFamily(
                      "dynamo_many", "Many.", {"i"},
                      [] {
                        return std::vector<LabeledValue>{{{"c"}, 3}, {{"b"}, 2}, {{"a"}, 1}};
                      })
                  .ok());
  EXPECT_EQ(registry.Render(),
            "# HELP dynamo_many Many.\n"
            "# TYPE dynamo_many gauge\n"
            "dynamo_many{i=\"a\"} 1\n"
            "dynamo_many{i=\"b\"} 2\n");
}

TEST(CallbackTest, RemoveCallbackStopsCallsAndFreesTheName) {
  Registry registry;
  std::atomic<int> calls{0};
  ASSERT_TRUE(
      registry.AddCallbackGauge("dynamo_queue_depth", "Depth.", [&calls] { return ++calls; }).ok());
  ASSERT_TRUE(registry.AddGauge("dynamo_plain", "Plain.").ok());
  registry.Render();
  EXPECT_EQ(calls.load(), 1);

  EXPECT_TRUE(registry.RemoveCallback("dynamo_queue_depth").ok());
  EXPECT_THAT(registry.Render(), Not(HasSubstr("dynamo_queue_depth")));
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(registry.RemoveCallback("dynamo_queue_depth").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.RemoveCallback("dynamo_plain").code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(registry.AddCallbackGauge("dynamo_queue_depth", "Depth.", [] { return 7.0; }).ok());
  EXPECT_THAT(registry.Render(), HasSubstr("dynamo_queue_depth 7\n"));
}

TEST(CallbackTest, RemoveWaitsForAScrapeInProgress) {
  Registry registry;
  std::atomic<bool> in_callback{false};
  std::atomic<bool> release{false};
  auto owned = std::make_unique<int>(5);  // what the callback reads
  ASSERT_TRUE(registry
                  .AddCallbackGauge("dynamo_slow", "Slow.",
                                    [&, p = owned.get()] {
                                      in_callback = true;
                                      while (!release.load()) std::this_thread::yield();
                                      return static_cast<double>(*p);
                                    })
                  .ok());
  std::string text;
  std::thread scraper([&] { text = registry.Render(); });
  while (!in_callback.load()) std::this_thread::yield();
  std::atomic<bool> removed{false};
  std::thread remover([&] {
    EXPECT_TRUE(registry.RemoveCallback("dynamo_slow").ok());
    removed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(removed.load());  // still inside the callback
  release = true;
  remover.join();
  owned.reset();  // safe now: the callback has returned and will not run again
  scraper.join();
  EXPECT_THAT(text, HasSubstr("dynamo_slow 5\n"));
}

// ---- promtool ----

std::optional<std::string> FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = absl::StrCat(dir, "/", program);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

// Runs `command`, returning its exit status and combined output.
std::pair<int, std::string> RunCommand(const std::string& command) {
  std::string output;
  FILE* pipe = popen(absl::StrCat(command, " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// A registry using every feature, named as the node names its metrics.
void FillWithEveryFeature(Registry& registry) {
  auto latency = registry.AddHistogramFamily("dynamo_request_duration_seconds",
                                             "Client request latency, by operation.", {"op"},
                                             *AddBucketBound(LatencyBucketsSeconds(), 0.25));
  auto requests = registry.AddIntCounterFamily(
      "dynamo_requests_total", "Client requests, by operation and result.", {"op", "result"});
  auto bytes = registry.AddCounterFamily("dynamo_replica_sent_bytes_total",
                                         "Bytes sent to replicas.", {"peer"});
  auto ring = registry.AddGauge("dynamo_ring_owned_ratio", "Share of the ring this node owns.");
  auto temperature =
      registry.AddGaugeFamily("dynamo_test_values", "Odd values\\ and\nlines.", {"case"});
  auto sizes = registry.AddHistogram("dynamo_value_size_bytes", "Sizes of stored values.",
                                     {64, 1024, 65536, 1048576});
  ASSERT_TRUE(latency.ok() && requests.ok() && bytes.ok() && ring.ok() && temperature.ok() &&
              sizes.ok());
  for (double v : {0.00004, 0.0003, 0.25, 0.3, 0.31, 12.0}) {
    (*latency)->WithLabels({"get"}).Observe(v);
  }
  (*latency)->WithLabels({"put"}).Observe(0.002);
  (*requests)->WithLabels({"get", "ok"}).Increment(10);
  (*requests)->WithLabels({"put", "quorum_failed"}).Increment();
  (*bytes)->WithLabels({"node-1:7000"}).Increment(1.5e9);
  (*bytes)->WithLabels({"we\"ird\\peer\nname\xFF"}).Increment(3);
  (*ring)->Set(0.3333333333333333);
  (*temperature)->WithLabels({"inf"}).Set(kInf);
  (*temperature)->WithLabels({"minus_inf"}).Set(-kInf);
  (*temperature)->WithLabels({"nan"}).Set(kNaN);
  (*temperature)->WithLabels({"tiny"}).Set(5e-324);
  (*sizes)->Observe(100);
  ASSERT_TRUE(
      registry
          .AddCallbackGaugeFamily("dynamo_hint_backlog_bytes",
                                  "Bytes of hints held for each target node.", {"target"},
                                  [] {
                                    return std::vector<LabeledValue>{{{"n2"}, 4096}, {{"n1"}, 0}};
                                  })
          .ok());
  ASSERT_TRUE(registry
                  .AddCallbackGaugeFamily(
                      "dynamo_members", "Cluster members, by state.", {"state"},
                      [] {
                        return std::vector<LabeledValue>{{{"alive"}, 3}, {{"leaving"}, 1}};
                      })
                  .ok());
  ASSERT_TRUE(registry
                  .AddCallbackCounter("dynamo_antientropy_repairs_total",
                                      "Key ranges repaired by anti-entropy.", [] { return 2.0; })
                  .ok());
}

TEST(PromtoolTest, EveryFeaturePassesCheckMetrics) {
  const std::optional<std::string> promtool = FindOnPath("promtool");
  if (!promtool) {
    GTEST_SKIP() << "promtool is not on PATH: install Debian's `prometheus` package "
                    "(apt-get install -y prometheus) to lint the exposition format";
  }
  Registry registry;
  FillWithEveryFeature(registry);
  const std::string text = registry.Render();
  const std::string path =
      (std::filesystem::path(testing::TempDir()) / absl::StrCat("metrics-", getpid(), ".txt"))
          .string();
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  const auto [status, output] =
      RunCommand(absl::StrCat(*promtool, " check metrics < '", path, "'"));
  std::filesystem::remove(path);
  EXPECT_EQ(status, 0) << output << "\n--- exposition ---\n" << text;
  EXPECT_EQ(output, "") << "\n--- exposition ---\n" << text;
}

TEST(PromtoolTest, PromtoolCatchesABadExposition) {
  // Guards the test above against a promtool that accepts anything.
  const std::optional<std::string> promtool = FindOnPath("promtool");
  if (!promtool) GTEST_SKIP() << "promtool is not on PATH (Debian package `prometheus`)";
  const std::string path =
      (std::filesystem::path(testing::TempDir()) / absl::StrCat("bad-", getpid(), ".txt")).string();
  {
    std::ofstream out(path, std::ios::binary);
    out << "# HELP requests Requests.\n# TYPE requests counter\nrequests 1\n";
  }
  const auto [status, output] =
      RunCommand(absl::StrCat(*promtool, " check metrics < '", path, "'"));
  std::filesystem::remove(path);
  EXPECT_NE(status, 0);
  EXPECT_THAT(output, HasSubstr("_total"));
}

}  // namespace
}  // namespace dynamo::metrics
