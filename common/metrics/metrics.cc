#include "common/metrics/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"

namespace helpline::metrics {
namespace {

// Adds `amount` to an atomic double (compare-exchange loop; fetch_add on floating atomics
// is C++20 but not lock-free everywhere, this is equally correct).
void AtomicAdd(std::atomic<double>& target, double amount) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + amount, std::memory_order_relaxed)) {
  }
}

// A sample value as Prometheus parses it: shortest round-trip decimal, +Inf, -Inf, NaN.
std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (ec != std::errc()) return absl::StrCat(value);
  return std::string(buffer, end);
}

// Label values: backslash, double quote and line feed are escaped.
void AppendEscapedLabelValue(std::string& out, absl::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

// HELP text: backslash and line feed are escaped.
void AppendEscapedHelp(std::string& out, absl::string_view help) {
  for (char c : help) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

// `{a="x",b="y"}` (with an optional trailing extra label such as le), or "" for no labels.
std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     absl::string_view extra_name = "", absl::string_view extra_value = "") {
  std::string out;
  const size_t n = std::min(names.size(), values.size());
  if (n == 0 && extra_name.empty()) return out;
  out += '{';
  bool first = true;
  for (size_t i = 0; i < n; ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    AppendEscapedLabelValue(out, values[i]);
    out += '"';
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out.append(extra_name.data(), extra_name.size());
    out += "=\"";
    AppendEscapedLabelValue(out, extra_value);
    out += '"';
  }
  out += '}';
  return out;
}

void AppendHeader(std::string& out, const std::string& name, const std::string& help,
                  absl::string_view type) {
  out += "# HELP ";
  out += name;
  out += ' ';
  AppendEscapedHelp(out, help);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out.append(type.data(), type.size());
  out += '\n';
}

void AppendFamily(std::string& out, const Family<Counter>& family) {
  AppendHeader(out, family.name(), family.help(), "counter");
  family.ForEach([&](const std::vector<std::string>& values, const Counter& counter) {
    absl::StrAppend(&out, family.name(), LabelSet(family.label_names(), values), " ",
                    FormatValue(counter.Value()), "\n");
  });
}

void AppendFamily(std::string& out, const Family<Gauge>& family) {
  AppendHeader(out, family.name(), family.help(), "gauge");
  family.ForEach([&](const std::vector<std::string>& values, const Gauge& gauge) {
    absl::StrAppend(&out, family.name(), LabelSet(family.label_names(), values), " ",
                    FormatValue(gauge.Value()), "\n");
  });
}

void AppendFamily(std::string& out, const Family<Histogram>& family) {
  AppendHeader(out, family.name(), family.help(), "histogram");
  const auto& names = family.label_names();
  family.ForEach([&](const std::vector<std::string>& values, const Histogram& histogram) {
    const auto& bounds = histogram.bounds();
    for (size_t i = 0; i < bounds.size(); ++i) {
      absl::StrAppend(&out, family.name(), "_bucket",
                      LabelSet(names, values, "le", FormatValue(bounds[i])), " ",
                      histogram.CumulativeCount(i), "\n");
    }
    // The +Inf bucket and _count come from the same read so that they always agree.
    const uint64_t total = histogram.CumulativeCount(bounds.size());
    absl::StrAppend(&out, family.name(), "_bucket", LabelSet(names, values, "le", "+Inf"), " ",
                    total, "\n");
    absl::StrAppend(&out, family.name(), "_sum", LabelSet(names, values), " ",
                    FormatValue(histogram.Sum()), "\n");
    absl::StrAppend(&out, family.name(), "_count", LabelSet(names, values), " ", total, "\n");
  });
}

}  // namespace

// ---- Counter / Gauge ----

void Counter::Increment(double amount) {
  if (!(amount >= 0.0)) return;  // Negative or NaN.
  AtomicAdd(value_, amount);
}

double Counter::Value() const { return value_.load(std::memory_order_relaxed); }

void Gauge::Set(double value) { value_.store(value, std::memory_order_relaxed); }
void Gauge::Increment(double amount) { AtomicAdd(value_, amount); }
void Gauge::Decrement(double amount) { AtomicAdd(value_, -amount); }
double Gauge::Value() const { return value_.load(std::memory_order_relaxed); }

// ---- Histogram ----

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  // Keep the bounds strictly increasing and finite (+Inf is implicit).
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  bounds_.erase(std::remove_if(bounds_.begin(), bounds_.end(),
                               [](double b) { return !std::isfinite(b); }),
                bounds_.end());
  buckets_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  // First bucket whose upper bound is >= value; NaN lands in +Inf.
  size_t index = bounds_.size();
  if (!std::isnan(value)) {
    index = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  }
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, value);
  count_.fetch_add(1, std::memory_order_relaxed);
}

uint64_t Histogram::Count() const { return count_.load(std::memory_order_relaxed); }
double Histogram::Sum() const { return sum_.load(std::memory_order_relaxed); }

uint64_t Histogram::CumulativeCount(size_t i) const {
  const size_t last = std::min(i, bounds_.size());
  uint64_t total = 0;
  for (size_t k = 0; k <= last; ++k) total += buckets_[k].load(std::memory_order_relaxed);
  return total;
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,   0.5,   1.0,    2.5,   5.0,  10.0,  30.0};
}

// ---- Family ----

template <typename T>
Family<T>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      bounds_(std::move(bounds)) {
  // A family without labels has exactly one child; expose it (as 0) from the start.
  if (label_names_.empty()) Get(std::vector<std::string>{});
}

template <typename T>
T& Family<T>::Get(const std::vector<std::string>& label_values) {
  std::lock_guard lock(mu_);
  auto it = children_.find(label_values);
  if (it != children_.end()) return *it->second;
  // A wrong number of values (programming error) is normalized to the label names so that
  // the exposition never has a sample with a different label set.
  std::vector<std::string> key = label_values;
  key.resize(label_names_.size());
  it = children_.find(key);
  if (it != children_.end()) return *it->second;
  std::unique_ptr<T> child;
  if constexpr (std::is_same_v<T, Histogram>) {
    child = std::make_unique<Histogram>(bounds_);
  } else {
    child = std::make_unique<T>();
  }
  T& ref = *child;
  children_.emplace(std::move(key), std::move(child));
  return ref;
}

template <typename T>
T& Family<T>::Get(std::initializer_list<absl::string_view> label_values) {
  std::vector<std::string> values;
  values.reserve(label_values.size());
  for (absl::string_view v : label_values) values.emplace_back(v);
  return Get(values);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---- Registry ----

Registry& Registry::Default() {
  static Registry* registry = new Registry();  // Never destroyed: used until exit.
  return *registry;
}

Family<Counter>& Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  auto& slot = counters_[name];
  if (!slot) slot = std::make_unique<Family<Counter>>(name, help, std::move(label_names));
  return *slot;
}

Family<Gauge>& Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  auto& slot = gauges_[name];
  if (!slot) slot = std::make_unique<Family<Gauge>>(name, help, std::move(label_names));
  return *slot;
}

Family<Histogram>& Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<std::string> label_names,
                                          std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  auto& slot = histograms_[name];
  if (!slot) {
    slot = std::make_unique<Family<Histogram>>(name, help, std::move(label_names),
                                               std::move(bounds));
  }
  return *slot;
}

std::string Registry::Serialize() const {
  std::lock_guard lock(mu_);
  // All families sorted by name. A name registered under two kinds is a programming
  // error; only its first kind (counter, gauge, histogram) is exposed so the output stays
  // valid.
  std::map<std::string, std::function<void(std::string&)>> writers;
  for (const auto& [name, family] : counters_) {
    const Family<Counter>* f = family.get();
    writers.emplace(name, [f](std::string& out) { AppendFamily(out, *f); });
  }
  for (const auto& [name, family] : gauges_) {
    const Family<Gauge>* f = family.get();
    writers.emplace(name, [f](std::string& out) { AppendFamily(out, *f); });
  }
  for (const auto& [name, family] : histograms_) {
    const Family<Histogram>* f = family.get();
    writers.emplace(name, [f](std::string& out) { AppendFamily(out, *f); });
  }
  std::string out;
  for (const auto& [name, write] : writers) write(out);
  return out;
}

}  // namespace helpline::metrics
