// A small Prometheus client: counters, gauges and histograms with labels,
// rendered in the text exposition format (0.0.4). Debian ships no C++
// Prometheus library; this is the part of one the gateway needs. Updates are
// lock-free atomics; only finding a label set takes a lock.
#ifndef CAMPAIGN_GATEWAY_SERVICE_METRICS_H_
#define CAMPAIGN_GATEWAY_SERVICE_METRICS_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace campaign_gateway {

class Counter {
 public:
  void Increment(double amount = 1) { value_.fetch_add(amount); }
  double Value() const { return value_.load(); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double value) { value_.store(value); }
  void Add(double amount) { value_.fetch_add(amount); }
  double Value() const { return value_.load(); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  // `bounds` are the upper bounds of the buckets, ascending; +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);

  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (not cumulative) counts; the last is the +Inf bucket.
  std::vector<uint64_t> BucketCounts() const;
  uint64_t Count() const { return count_.load(); }
  double Sum() const { return sum_.load(); }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// Latency buckets in seconds, 1 ms to 30 s.
std::vector<double> LatencyBuckets();

// One metric name with its label names; series are made on first use and
// live as long as the family.
template <typename Metric>
class Family {
 public:
  Family(std::string name, std::string help,
         std::vector<std::string> label_names, std::vector<double> bounds = {})
      : name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        bounds_(std::move(bounds)) {}

  // The series for `label_values` (one per label name, in order).
  Metric& With(const std::vector<std::string>& label_values);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Calls `visit(label_values, metric)` for each series, in label order.
  template <typename Visit>
  void ForEach(Visit visit) const {
    absl::MutexLock lock(&mu_);
    for (const auto& [values, metric] : series_) visit(values, *metric);
  }

 private:
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Metric>> series_
      ABSL_GUARDED_BY(mu_);
};

class MetricsRegistry {
 public:
  Family<Counter>& AddCounter(std::string name, std::string help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>& AddGauge(std::string name, std::string help,
                          std::vector<std::string> label_names = {});
  Family<Histogram>& AddHistogram(std::string name, std::string help,
                                  std::vector<std::string> label_names,
                                  std::vector<double> bounds);

  // Every family in registration order, in the text exposition format.
  std::string Render() const;

 private:
  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Family<Counter>>> counters_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_
      ABSL_GUARDED_BY(mu_);
  // (kind, index) in registration order.
  std::vector<std::pair<int, size_t>> order_ ABSL_GUARDED_BY(mu_);
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_METRICS_H_
