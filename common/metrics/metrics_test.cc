#include "common/metrics/metrics.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace helpline::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(CounterTest, IncrementsAndIgnoresNegative) {
  Counter c;
  c.Increment();
  c.Increment(2.5);
  c.Increment(-10);
  EXPECT_DOUBLE_EQ(c.Value(), 3.5);
}

TEST(GaugeTest, SetIncrementDecrement) {
  Gauge g;
  g.Set(10);
  g.Increment(2);
  g.Decrement(5);
  EXPECT_DOUBLE_EQ(g.Value(), 7);
  g.Decrement(10);
  EXPECT_DOUBLE_EQ(g.Value(), -3);
}

TEST(HistogramTest, BucketsAreCumulativeAndBoundsInclusive) {
  Histogram h({0.1, 1, 10});
  h.Observe(0.05);
  h.Observe(0.1);  // Upper bounds are inclusive.
  h.Observe(0.5);
  h.Observe(100);
  EXPECT_EQ(h.Count(), 4u);
  EXPECT_DOUBLE_EQ(h.Sum(), 100.65);
  EXPECT_EQ(h.CumulativeCount(0), 2u);
  EXPECT_EQ(h.CumulativeCount(1), 3u);
  EXPECT_EQ(h.CumulativeCount(2), 3u);
  EXPECT_EQ(h.CumulativeCount(3), 4u);
}

TEST(HistogramTest, ConcurrentObservationsAreAllCounted) {
  Histogram h(LatencyBuckets());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h] {
      for (int i = 0; i < 10000; ++i) h.Observe(0.002);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.Count(), 40000u);
  EXPECT_EQ(h.CumulativeCount(h.bounds().size()), 40000u);
  EXPECT_NEAR(h.Sum(), 80.0, 1e-6);
}

TEST(FamilyTest, SameLabelValuesGiveSameChild) {
  Registry r;
  auto& f = r.AddCounter("helpline_x_total", "x", {"a", "b"});
  Counter& c1 = f.Get({"1", "2"});
  Counter& c2 = f.Get(std::vector<std::string>{"1", "2"});
  Counter& c3 = f.Get({"1", "3"});
  EXPECT_EQ(&c1, &c2);
  EXPECT_NE(&c1, &c3);
  // Adding the name again returns the same family.
  EXPECT_EQ(&r.AddCounter("helpline_x_total", "other help", {"a", "b"}), &f);
}

TEST(FamilyTest, WrongNumberOfValuesStillGivesValidLabelSet) {
  Registry r;
  auto& f = r.AddCounter("helpline_y_total", "y", {"a", "b"});
  f.Get({"only"}).Increment();
  f.Get({"1", "2", "3"}).Increment();
  const std::string text = r.Serialize();
  EXPECT_THAT(text, HasSubstr("helpline_y_total{a=\"only\",b=\"\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("helpline_y_total{a=\"1\",b=\"2\"} 1\n"));
}

TEST(SerializeTest, CounterGaugeAndEscaping) {
  Registry r;
  r.AddCounter("helpline_requests_total", "Requests.\nSecond line with \\ backslash",
               {"method", "code"})
      .Get({"Get \"x\"\\y\nz", "OK"})
      .Increment(3);
  r.AddGauge("helpline_active_sessions", "Active sessions.").Get({}).Set(1.5);
  const std::string text = r.Serialize();
  EXPECT_THAT(text, HasSubstr("# HELP helpline_requests_total Requests.\\nSecond line with "
                              "\\\\ backslash\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE helpline_requests_total counter\n"));
  EXPECT_THAT(text, HasSubstr("helpline_requests_total{method=\"Get \\\"x\\\"\\\\y\\nz\","
                              "code=\"OK\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE helpline_active_sessions gauge\n"
                              "helpline_active_sessions 1.5\n"));
  // Families are sorted by name.
  EXPECT_LT(text.find("helpline_active_sessions"), text.find("helpline_requests_total"));
}

TEST(SerializeTest, UnlabelledFamilyIsExposedAsZeroFromTheStart) {
  Registry r;
  r.AddCounter("helpline_things_total", "Things.");
  EXPECT_THAT(r.Serialize(), HasSubstr("\nhelpline_things_total 0\n"));
}

TEST(SerializeTest, HistogramLines) {
  Registry r;
  auto& h = r.AddHistogram("helpline_latency_seconds", "Latency.", {"stage"}, {0.1, 0.5});
  h.Get({"dst"}).Observe(0.2);
  h.Get({"dst"}).Observe(0.05);
  h.Get({"dst"}).Observe(3);
  EXPECT_EQ(r.Serialize(),
            "# HELP helpline_latency_seconds Latency.\n"
            "# TYPE helpline_latency_seconds histogram\n"
            "helpline_latency_seconds_bucket{stage=\"dst\",le=\"0.1\"} 1\n"
            "helpline_latency_seconds_bucket{stage=\"dst\",le=\"0.5\"} 2\n"
            "helpline_latency_seconds_bucket{stage=\"dst\",le=\"+Inf\"} 3\n"
            "helpline_latency_seconds_sum{stage=\"dst\"} 3.25\n"
            "helpline_latency_seconds_count{stage=\"dst\"} 3\n");
}

TEST(SerializeTest, DefaultRegistryIsOneInstance) {
  EXPECT_EQ(&Registry::Default(), &Registry::Default());
}

// Runs `promtool check metrics < path`; returns its exit code and combined output.
std::pair<int, std::string> RunPromtool(const std::string& path) {
  std::string output;
  FILE* pipe = popen(absl::StrCat("promtool check metrics < ", path, " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::array<char, 512> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) output.append(buf.data(), n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST(PromtoolTest, ExpositionPassesCheckMetrics) {
  if (access("/usr/bin/promtool", X_OK) != 0 &&
      std::system("command -v promtool >/dev/null") != 0) {
    GTEST_SKIP() << "promtool not installed";
  }
  Registry r;
  auto& handled = r.AddCounter("helpline_grpc_server_handled_total", "RPCs completed.",
                               {"service", "method", "code"});
  handled.Get({"helpline-dst", "Track", "OK"}).Increment(5);
  handled.Get({"helpline-dst", "Track", "weird \"quoted\"\\ value\nwith newline"}).Increment();
  r.AddGauge("helpline_active_sessions", "Sessions with a live lease.", {"tenant"})
      .Get({"acme"})
      .Set(3);
  r.AddGauge("helpline_queue_depth", "Requests waiting for a worker.");
  auto& latency = r.AddHistogram("helpline_grpc_server_handling_seconds",
                                 "RPC latency.\nFrom the first byte to the status.",
                                 {"service", "method"});
  latency.Get({"helpline-dst", "Track"}).Observe(0.012);
  latency.Get({"helpline-dst", "Track"}).Observe(42);
  r.AddHistogram("helpline_empty_seconds", "No observations yet.", {"stage"});
  r.AddCounter("helpline_unlabelled_total", "No labels.").Get({}).Increment(1e21);

  const std::string text = r.Serialize();
  const std::string path =
      (std::filesystem::temp_directory_path() / absl::StrCat("metrics_test_", getpid(), ".prom"))
          .string();
  {
    std::ofstream out(path);
    out << text;
  }
  auto [code, output] = RunPromtool(path);
  std::filesystem::remove(path);
  EXPECT_EQ(code, 0) << output << "\n--- exposition ---\n" << text;
  EXPECT_EQ(output, "") << "\n--- exposition ---\n" << text;
}

TEST(PromtoolTest, CatchesABadExposition) {
  // Guards the test above: promtool must actually reject a lint problem.
  if (std::system("command -v promtool >/dev/null") != 0) GTEST_SKIP() << "no promtool";
  Registry r;
  r.AddCounter("helpline_bad_counter", "Missing the _total suffix.").Get({}).Increment();
  const std::string path =
      (std::filesystem::temp_directory_path() / absl::StrCat("metrics_bad_", getpid(), ".prom"))
          .string();
  {
    std::ofstream out(path);
    out << r.Serialize();
  }
  auto [code, output] = RunPromtool(path);
  std::filesystem::remove(path);
  EXPECT_NE(code, 0);
  EXPECT_THAT(output, HasSubstr("_total"));
}

}  // namespace
}  // namespace helpline::metrics
