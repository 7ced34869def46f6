// Prometheus metrics: a registry of families (counter, gauge, histogram) with labels, and the
// text exposition format (version 0.0.4). Names follow DESIGN §5: `helpline_` prefix, base
// units, `_total` counters, `_seconds` histograms.
//
// Thread-safe. Families and children live as long as their registry; references returned
// by Add*/Get stay valid, so hot paths look a child up once and keep the reference.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace helpline::metrics {

class Counter {
 public:
  void Increment(double amount = 1.0);  // amount must be >= 0; negative amounts are ignored.
  double Value() const;

 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void Set(double value);
  void Increment(double amount = 1.0);
  void Decrement(double amount = 1.0);
  double Value() const;

 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  // `bounds` are the upper bounds of the buckets, strictly increasing; +Inf is implicit.
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  uint64_t Count() const;
  double Sum() const;
  // Cumulative count of observations <= bounds()[i]; i == bounds().size() is +Inf.
  uint64_t CumulativeCount(size_t i) const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // Non-cumulative, size bounds_+1.
  std::atomic<double> sum_{0.0};
  std::atomic<uint64_t> count_{0};
};

// Default latency buckets in seconds: 0.5 ms .. 30 s.
std::vector<double> LatencyBuckets();

// A metric name with a fixed list of label names; children per label values.
template <typename T>
class Family {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds = {});
  // Returns the child for these label values (one per label name, in order), creating it.
  // A wrong number of values is a programming error: it returns a child keyed by the values
  // given, and the exposition stays valid.
  T& Get(const std::vector<std::string>& label_values);
  T& Get(std::initializer_list<absl::string_view> label_values);

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Calls fn(label_values, child) for each child, under the family's lock.
  template <typename Fn>
  void ForEach(Fn fn) const {
    std::lock_guard lock(mu_);
    for (const auto& [values, child] : children_) fn(values, *child);
  }

 private:
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_;
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process-wide registry that services and common modules record into.
  static Registry& Default();

  // Adding a name twice with the same kind returns the existing family.
  Family<Counter>& AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> label_names = {});
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> label_names = {});
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names,
                                  std::vector<double> bounds = LatencyBuckets());

  // The whole registry in the Prometheus text format (content type
  // "text/plain; version=0.0.4; charset=utf-8"). Label values are escaped.
  std::string Serialize() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family<Counter>>> counters_;
  std::map<std::string, std::unique_ptr<Family<Gauge>>> gauges_;
  std::map<std::string, std::unique_ptr<Family<Histogram>>> histograms_;
};

inline constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace helpline::metrics
