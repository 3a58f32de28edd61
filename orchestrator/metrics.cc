#include "orchestrator/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace itinera::orch {
namespace {

bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

// [a-zA-Z_:][a-zA-Z0-9_:]*; label names exclude ':'.
bool ValidName(const std::string& name, bool label) {
  if (name.empty() || !IsNameStart(name[0])) return false;
  for (char c : name) {
    if (!IsNameChar(c) || (label && c == ':')) return false;
  }
  return true;
}

// Prometheus floats: integers without a fraction, others in the shortest form that round-trips.
std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::to_chars_result r;
  if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {  // 2^53: exact as an integer
    r = std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(v));
  } else {
    r = std::to_chars(buf, buf + sizeof(buf), v);
  }
  return std::string(buf, r.ptr);
}

// Label values escape backslash, double quote and newline; help text backslash and newline.
std::string Escape(const std::string& text, bool quote) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quote) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// `{a="1",b="2"}` with an extra label appended (the histogram's "le"), or "" for no labels.
std::string LabelText(const MetricLabels& labels, const std::string& extra_name = "",
                      const std::string& extra_value = "") {
  std::string out;
  auto add = [&](const std::string& name, const std::string& value) {
    out += out.empty() ? "{" : ",";
    out += name + "=\"" + Escape(value, true) + "\"";
  };
  for (const auto& [name, value] : labels) add(name, value);
  if (!extra_name.empty()) add(extra_name, extra_value);
  if (!out.empty()) out += "}";
  return out;
}

}  // namespace

void Counter::Increment(double by) {
  if (!(by > 0)) return;  // also rejects NaN
  value_.fetch_add(by, std::memory_order_relaxed);
}

void Gauge::Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }

void Gauge::SetCallback(std::function<double()> callback) {
  std::lock_guard lock(mu_);
  callback_ = std::move(callback);
}

double Gauge::Value() const {
  std::function<double()> callback;
  {
    std::lock_guard lock(mu_);
    callback = callback_;
  }
  return callback ? callback() : value_.load(std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> bounds) {
  for (double b : bounds) {
    if (std::isfinite(b) && (bounds_.empty() || b > bounds_.back())) bounds_.push_back(b);
  }
  counts_.assign(bounds_.size() + 1, 0);
}

void Histogram::Observe(double value) {
  // The first bucket whose bound is >= value; NaN lands in +Inf.
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  if (std::isnan(value)) i = bounds_.size();
  std::lock_guard lock(mu_);
  ++counts_[i];
  sum_ += value;
  ++count_;
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.bounds = bounds_;
  std::lock_guard lock(mu_);
  uint64_t running = 0;
  for (uint64_t n : counts_) {
    running += n;
    s.cumulative.push_back(running);
  }
  s.sum = sum_;
  s.count = count_;
  return s;
}

std::vector<double> DefaultLatencyBuckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

MetricsRegistry::Family& MetricsRegistry::FamilyFor(const std::string& name,
                                                    const std::string& help, Type type,
                                                    const MetricLabels& labels) {
  if (!ValidName(name, false)) throw std::logic_error("invalid metric name \"" + name + "\"");
  for (const auto& [label, value] : labels) {
    if (!ValidName(label, true) || label.starts_with("__") ||
        (type == Type::kHistogram && label == "le")) {
      throw std::logic_error("invalid label name \"" + label + "\" on metric " + name);
    }
  }
  auto [it, added] = families_.try_emplace(name);
  if (added) {
    it->second.type = type;
    it->second.help = help;
  } else if (it->second.type != type) {
    throw std::logic_error("metric " + name + " registered with two types");
  }
  return it->second;
}

Counter& MetricsRegistry::Counter(const std::string& name, const std::string& help,
                                  const MetricLabels& labels) {
  std::lock_guard lock(mu_);
  auto& slot = FamilyFor(name, help, Type::kCounter, labels).counters[labels];
  if (!slot) slot = std::make_unique<orch::Counter>();
  return *slot;
}

Gauge& MetricsRegistry::Gauge(const std::string& name, const std::string& help,
                              const MetricLabels& labels) {
  std::lock_guard lock(mu_);
  auto& slot = FamilyFor(name, help, Type::kGauge, labels).gauges[labels];
  if (!slot) slot = std::make_unique<orch::Gauge>();
  return *slot;
}

Histogram& MetricsRegistry::Histogram(const std::string& name, const std::string& help,
                                      const MetricLabels& labels,
                                      const std::vector<double>& bounds) {
  std::lock_guard lock(mu_);
  Family& family = FamilyFor(name, help, Type::kHistogram, labels);
  if (family.histograms.empty() && family.bounds.empty()) family.bounds = bounds;
  auto& slot = family.histograms[labels];
  if (!slot) slot = std::make_unique<orch::Histogram>(family.bounds);
  return *slot;
}

std::string MetricsRegistry::Render() const {
  // Copy the structure under the lock (metrics are never removed, so the pointers stay valid),
  // then read the values without it: a gauge callback may take its own locks.
  struct Series {
    MetricLabels labels;
    const orch::Counter* counter = nullptr;
    const orch::Gauge* gauge = nullptr;
    const orch::Histogram* histogram = nullptr;
  };
  struct View {
    std::string name;
    Type type;
    std::string help;
    std::vector<Series> series;
  };
  std::vector<View> views;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, family] : families_) {
      View view{name, family.type, family.help, {}};
      for (const auto& [labels, c] : family.counters) view.series.push_back({labels, c.get()});
      for (const auto& [labels, g] : family.gauges) {
        view.series.push_back({labels, nullptr, g.get()});
      }
      for (const auto& [labels, h] : family.histograms) {
        view.series.push_back({labels, nullptr, nullptr, h.get()});
      }
      views.push_back(std::move(view));
    }
  }

  std::string out;
  for (const View& view : views) {
    const char* type = view.type == Type::kCounter ? "counter"
                       : view.type == Type::kGauge ? "gauge"
                                                   : "histogram";
    out += "# HELP " + view.name + " " + Escape(view.help, false) + "\n";
    out += "# TYPE " + view.name + " " + type + "\n";
    for (const Series& s : view.series) {
      if (s.counter) {
        out += view.name + LabelText(s.labels) + " " + FormatValue(s.counter->Value()) + "\n";
      } else if (s.gauge) {
        out += view.name + LabelText(s.labels) + " " + FormatValue(s.gauge->Value()) + "\n";
      } else {
        orch::Histogram::Snapshot snap = s.histogram->Read();
        for (size_t i = 0; i < snap.cumulative.size(); ++i) {
          std::string le = i < snap.bounds.size() ? FormatValue(snap.bounds[i]) : "+Inf";
          out += view.name + "_bucket" + LabelText(s.labels, "le", le) + " " +
                 std::to_string(snap.cumulative[i]) + "\n";
        }
        out += view.name + "_sum" + LabelText(s.labels) + " " + FormatValue(snap.sum) + "\n";
        out += view.name + "_count" + LabelText(s.labels) + " " + std::to_string(snap.count) + "\n";
      }
    }
  }
  return out;
}

}  // namespace itinera::orch
