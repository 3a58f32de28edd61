#include "orchestrator/metrics.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace itinera::orch {
namespace {

TEST(MetricsTest, SameNameAndLabelsGiveTheSameCounter) {
  MetricsRegistry registry;
  Counter& a = registry.Counter("itinera_x_total", "X.", {{"route", "/a"}, {"code", "200"}});
  Counter& b = registry.Counter("itinera_x_total", "X.", {{"code", "200"}, {"route", "/a"}});
  Counter& c = registry.Counter("itinera_x_total", "X.", {{"route", "/b"}, {"code", "200"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  a.Increment();
  b.Increment(2);
  EXPECT_EQ(a.Value(), 3);
  EXPECT_EQ(c.Value(), 0);
}

TEST(MetricsTest, CounterNeverGoesDown) {
  MetricsRegistry registry;
  Counter& c = registry.Counter("itinera_c_total", "C.");
  c.Increment(5);
  c.Increment(-2);
  c.Increment(0.0 / 0.0);
  EXPECT_EQ(c.Value(), 5);
}

TEST(MetricsTest, RendersTheTextFormat) {
  MetricsRegistry registry;
  registry
      .Counter("itinera_http_requests_total", "HTTP requests.",
               {{"route", "/v1/events"}, {"code", "202"}})
      .Increment(3);
  registry
      .Counter("itinera_http_requests_total", "ignored: the first help wins",
               {{"route", "/healthz"}, {"code", "200"}})
      .Increment();
  registry.Gauge("itinera_queue_depth", "Queue depth.").Set(2.5);
  Histogram& h = registry.Histogram("itinera_latency_seconds", "Latency.", {}, {0.1, 1});
  h.Observe(0.25);
  h.Observe(0.5);
  h.Observe(7);
  EXPECT_EQ(registry.Render(),
            "# HELP itinera_http_requests_total HTTP requests.\n"
            "# TYPE itinera_http_requests_total counter\n"
            "itinera_http_requests_total{code=\"200\",route=\"/healthz\"} 1\n"
            "itinera_http_requests_total{code=\"202\",route=\"/v1/events\"} 3\n"
            "# HELP itinera_latency_seconds Latency.\n"
            "# TYPE itinera_latency_seconds histogram\n"
            "itinera_latency_seconds_bucket{le=\"0.1\"} 0\n"
            "itinera_latency_seconds_bucket{le=\"1\"} 2\n"
            "itinera_latency_seconds_bucket{le=\"+Inf\"} 3\n"
            "itinera_latency_seconds_sum 7.75\n"
            "itinera_latency_seconds_count 3\n"
            "# HELP itinera_queue_depth Queue depth.\n"
            "# TYPE itinera_queue_depth gauge\n"
            "itinera_queue_depth 2.5\n");
}

TEST(MetricsTest, HistogramLabelsComeBeforeLe) {
  MetricsRegistry registry;
  registry.Histogram("itinera_h_seconds", "H.", {{"route", "/x"}}, {1}).Observe(1);
  EXPECT_NE(registry.Render().find("itinera_h_seconds_bucket{route=\"/x\",le=\"1\"} 1\n"),
            std::string::npos)
      << registry.Render();
}

TEST(MetricsTest, HistogramBucketBoundIsInclusiveAndSumCounts) {
  Histogram h({0.5, 1, 2});
  h.Observe(0.5);
  h.Observe(1.5);
  h.Observe(3);
  Histogram::Snapshot s = h.Read();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{1, 1, 2, 3}));
  EXPECT_EQ(s.count, 3u);
  EXPECT_DOUBLE_EQ(s.sum, 5);
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  MetricsRegistry registry;
  registry.Counter("itinera_e_total", "Back\\slash and\nnewline.", {{"v", "a\"b\\c\nd"}})
      .Increment();
  const std::string text = registry.Render();
  EXPECT_NE(text.find("# HELP itinera_e_total Back\\\\slash and\\nnewline.\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("itinera_e_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos) << text;
}

TEST(MetricsTest, GaugeCallbackIsEvaluatedAtEveryRender) {
  MetricsRegistry registry;
  int calls = 0;
  registry.Gauge("itinera_g", "G.").SetCallback([&] { return ++calls * 10.0; });
  EXPECT_NE(registry.Render().find("itinera_g 10\n"), std::string::npos);
  EXPECT_NE(registry.Render().find("itinera_g 20\n"), std::string::npos);
}

TEST(MetricsTest, GaugeSetAndAdd) {
  MetricsRegistry registry;
  Gauge& g = registry.Gauge("itinera_g", "G.");
  g.Set(4);
  g.Add(-1.5);
  EXPECT_EQ(g.Value(), 2.5);
}

TEST(MetricsTest, SpecialValuesAndLargeNumbers) {
  MetricsRegistry registry;
  registry.Gauge("itinera_a", "A.", {{"k", "inf"}}).Set(1.0 / 0.0);
  registry.Gauge("itinera_a", "A.", {{"k", "nan"}}).Set(0.0 / 0.0);
  registry.Gauge("itinera_a", "A.", {{"k", "big"}}).Set(1e20);
  registry.Gauge("itinera_a", "A.", {{"k", "neg"}}).Set(-3);
  const std::string text = registry.Render();
  EXPECT_NE(text.find("itinera_a{k=\"inf\"} +Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("itinera_a{k=\"nan\"} NaN\n"), std::string::npos) << text;
  EXPECT_NE(text.find("itinera_a{k=\"big\"} 1e+20\n"), std::string::npos) << text;
  EXPECT_NE(text.find("itinera_a{k=\"neg\"} -3\n"), std::string::npos) << text;
}

TEST(MetricsTest, MisuseIsAProgrammingError) {
  MetricsRegistry registry;
  registry.Counter("itinera_dup", "D.");
  EXPECT_THROW(registry.Gauge("itinera_dup", "D."), std::logic_error);
  EXPECT_THROW(registry.Counter("itinera bad", "B."), std::logic_error);
  EXPECT_THROW(registry.Counter("9lives", "B."), std::logic_error);
  EXPECT_THROW(registry.Counter("itinera_ok_total", "B.", {{"__reserved", "x"}}), std::logic_error);
  EXPECT_THROW(registry.Counter("itinera_ok_total", "B.", {{"a:b", "x"}}), std::logic_error);
  EXPECT_THROW(registry.Histogram("itinera_h", "H.", {{"le", "1"}}), std::logic_error);
}

TEST(MetricsTest, ConcurrentUpdatesAreNotLost) {
  MetricsRegistry registry;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&registry] {
      for (int i = 0; i < 10000; ++i) {
        registry.Counter("itinera_n_total", "N.", {{"k", "v"}}).Increment();
        registry.Histogram("itinera_s", "S.").Observe(0.01);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(registry.Counter("itinera_n_total", "N.", {{"k", "v"}}).Value(), 40000);
  EXPECT_EQ(registry.Histogram("itinera_s", "S.").Read().count, 40000u);
}

}  // namespace
}  // namespace itinera::orch
