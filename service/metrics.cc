#include "service/metrics.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace campaign_gateway {
namespace {

std::string FormatValue(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return absl::StrFormat("%.0f", value);
  }
  return absl::StrFormat("%.9g", value);
}

// Label values are escaped as the exposition format requires.
std::string EscapeLabel(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Labels(const std::vector<std::string>& names,
                   const std::vector<std::string>& values,
                   const std::string& extra_name = "",
                   const std::string& extra_value = "") {
  std::vector<std::string> parts;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    parts.push_back(
        absl::StrCat(names[i], "=\"", EscapeLabel(values[i]), "\""));
  }
  if (!extra_name.empty()) {
    parts.push_back(absl::StrCat(extra_name, "=\"", extra_value, "\""));
  }
  if (parts.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += ",";
    out += parts[i];
  }
  return out + "}";
}

template <typename Metric>
void Header(const Family<Metric>& family, const char* type, std::string& out) {
  absl::StrAppend(&out, "# HELP ", family.name(), " ", family.help(), "\n",
                  "# TYPE ", family.name(), " ", type, "\n");
}

template <typename Metric>
void RenderSimple(const Family<Metric>& family, const char* type,
                  std::string& out) {
  Header(family, type, out);
  family.ForEach([&](const std::vector<std::string>& values, const Metric& m) {
    absl::StrAppend(&out, family.name(), Labels(family.label_names(), values),
                    " ", FormatValue(m.Value()), "\n");
  });
}

void RenderHistogram(const Family<Histogram>& family, std::string& out) {
  Header(family, "histogram", out);
  family.ForEach([&](const std::vector<std::string>& values,
                     const Histogram& h) {
    const std::vector<uint64_t> counts = h.BucketCounts();
    uint64_t cumulative = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      cumulative += counts[i];
      const std::string le = i < h.bounds().size() ? FormatValue(h.bounds()[i])
                                                   : std::string("+Inf");
      absl::StrAppend(&out, family.name(), "_bucket",
                      Labels(family.label_names(), values, "le", le), " ",
                      cumulative, "\n");
    }
    absl::StrAppend(
        &out, family.name(), "_sum", Labels(family.label_names(), values), " ",
        FormatValue(h.Sum()), "\n", family.name(), "_count",
        Labels(family.label_names(), values), " ", cumulative, "\n");
  });
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i] = 0;
}

void Histogram::Observe(double value) {
  const size_t bucket =
      std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value);
  count_.fetch_add(1);
}

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> counts(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) counts[i] = buckets_[i].load();
  return counts;
}

std::vector<double> LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,  0.5,    1,     2.5,  5,     10,   30};
}

template <typename Metric>
Metric& Family<Metric>::With(const std::vector<std::string>& label_values) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<Metric>& slot = series_[label_values];
  if (slot == nullptr) {
    if constexpr (std::is_same_v<Metric, Histogram>) {
      slot = std::make_unique<Histogram>(bounds_);
    } else {
      slot = std::make_unique<Metric>();
    }
  }
  return *slot;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Family<Counter>& MetricsRegistry::AddCounter(
    std::string name, std::string help, std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  counters_.push_back(std::make_unique<Family<Counter>>(
      std::move(name), std::move(help), std::move(label_names)));
  order_.emplace_back(0, counters_.size() - 1);
  return *counters_.back();
}

Family<Gauge>& MetricsRegistry::AddGauge(std::string name, std::string help,
                                         std::vector<std::string> label_names) {
  absl::MutexLock lock(&mu_);
  gauges_.push_back(std::make_unique<Family<Gauge>>(
      std::move(name), std::move(help), std::move(label_names)));
  order_.emplace_back(1, gauges_.size() - 1);
  return *gauges_.back();
}

Family<Histogram>& MetricsRegistry::AddHistogram(
    std::string name, std::string help, std::vector<std::string> label_names,
    std::vector<double> bounds) {
  absl::MutexLock lock(&mu_);
  histograms_.push_back(std::make_unique<Family<Histogram>>(
      std::move(name), std::move(help), std::move(label_names),
      std::move(bounds)));
  order_.emplace_back(2, histograms_.size() - 1);
  return *histograms_.back();
}

std::string MetricsRegistry::Render() const {
  absl::MutexLock lock(&mu_);
  std::string out;
  for (const auto& [kind, index] : order_) {
    switch (kind) {
      case 0:
        RenderSimple(*counters_[index], "counter", out);
        break;
      case 1:
        RenderSimple(*gauges_[index], "gauge", out);
        break;
      default:
        RenderHistogram(*histograms_[index], out);
    }
  }
  return out;
}

}  // namespace campaign_gateway
