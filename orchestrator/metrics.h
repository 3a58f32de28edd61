// A small Prometheus metrics registry: counters, gauges and histograms, rendered in the text
// exposition format 0.0.4 for `GET /metrics`.
//
// MetricsRegistry owns every metric; Counter(), Gauge() and Histogram() return a reference that
// stays valid for the registry's lifetime, and the same name and labels always return the same
// object, so callers may look a metric up once and keep the reference. A family (one name) has
// one type and one help text (the first registration's) and, for histograms, one set of bucket
// bounds (the first registration's). Names are prefixed `itinera_` by the callers; counters end
// in `_total` by convention.
//
// Using a name that is not a valid Prometheus name, a label name that is not valid (or starts
// with "__", or is "le" on a histogram), or one name with two types, is a programming error and
// throws std::logic_error. Everything else never fails.
//
// Thread-safe. Counter and Gauge updates are lock-free; a histogram observation takes a short
// lock; lookups take the registry's lock. A gauge callback runs during Render() without the
// registry's lock held; it must be thread-safe.
#ifndef ITINERA_ORCHESTRATOR_METRICS_H_
#define ITINERA_ORCHESTRATOR_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace itinera::orch {

// Label name -> value. A map, so the same labels given in any order name the same series.
using MetricLabels = std::map<std::string, std::string>;

// A count that only goes up.
class Counter {
 public:
  // Adds `by`; a negative or NaN amount is ignored (a counter never goes down).
  void Increment(double by = 1);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A value that goes up and down, or is computed by a callback at every scrape.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta);
  // From now on Value() is `callback()` (an empty function goes back to the stored value).
  void SetCallback(std::function<double()> callback);
  double Value() const;

 private:
  std::atomic<double> value_{0};
  mutable std::mutex mu_;
  std::function<double()> callback_;
};

// Observations counted into fixed buckets, with their sum and count.
class Histogram {
 public:
  // `bounds`: the buckets' upper bounds (inclusive), ascending and finite; the +Inf bucket is
  // implicit. Bounds that are not finite, or out of order, are dropped.
  explicit Histogram(std::vector<double> bounds);

  void Observe(double value);

  struct Snapshot {
    std::vector<double> bounds;        // without +Inf
    std::vector<uint64_t> cumulative;  // one more than bounds: the last is +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Read() const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// Prometheus' default buckets, in seconds: .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10.
std::vector<double> DefaultLatencyBuckets();

class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  orch::Counter& Counter(const std::string& name, const std::string& help,
                         const MetricLabels& labels = {});
  orch::Gauge& Gauge(const std::string& name, const std::string& help,
                     const MetricLabels& labels = {});
  orch::Histogram& Histogram(const std::string& name, const std::string& help,
                             const MetricLabels& labels = {},
                             const std::vector<double>& bounds = DefaultLatencyBuckets());

  // Every family in name order, its series in label order: `# HELP`, `# TYPE`, then the samples
  // (`_bucket{le=...}`, `_sum` and `_count` for histograms). Label values and help text are
  // escaped as the format requires.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Family {
    Type type = Type::kCounter;
    std::string help;
    std::vector<double> bounds;  // histograms
    std::map<MetricLabels, std::unique_ptr<orch::Counter>> counters;
    std::map<MetricLabels, std::unique_ptr<orch::Gauge>> gauges;
    std::map<MetricLabels, std::unique_ptr<orch::Histogram>> histograms;
  };

  Family& FamilyFor(const std::string& name, const std::string& help, Type type,
                    const MetricLabels& labels);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

}  // namespace itinera::orch

#endif  // ITINERA_ORCHESTRATOR_METRICS_H_
