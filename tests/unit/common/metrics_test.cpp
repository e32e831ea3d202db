#include "common/metrics.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace meshhook::common {
namespace {

TEST(Metrics, RendersCounterWithHelpAndTypeOnce) {
    Registry r;
    r.counter("ingest_requests_total", "Webhook requests by outcome.", {{"outcome", "accepted"}})
        .inc(3);
    r.counter("ingest_requests_total", "Webhook requests by outcome.", {{"outcome", "rejected"}})
        .inc();
    EXPECT_EQ(r.render(),
              "# HELP ingest_requests_total Webhook requests by outcome.\n"
              "# TYPE ingest_requests_total counter\n"
              "ingest_requests_total{outcome=\"accepted\"} 3\n"
              "ingest_requests_total{outcome=\"rejected\"} 1\n");
}

TEST(Metrics, SameNameAndLabelsReturnSameObjectWhateverTheLabelOrder) {
    Registry r;
    auto& a = r.counter("c_total", "h", {{"a", "1"}, {"b", "2"}});
    auto& b = r.counter("c_total", "h", {{"b", "2"}, {"a", "1"}});
    auto& other = r.counter("c_total", "h", {{"a", "1"}, {"b", "3"}});
    EXPECT_EQ(&a, &b);
    EXPECT_NE(&a, &other);
}

TEST(Metrics, RendersFamiliesInRegistrationOrderAndSeriesInCreationOrder) {
    Registry r;
    r.gauge("zeta", "Z.").set(1);
    r.counter("alpha_total", "A.", {{"k", "b"}});
    r.counter("alpha_total", "A.", {{"k", "a"}});
    r.gauge("zeta", "Z.").set(2);
    EXPECT_EQ(r.render(),
              "# HELP zeta Z.\n"
              "# TYPE zeta gauge\n"
              "zeta 2\n"
              "# HELP alpha_total A.\n"
              "# TYPE alpha_total counter\n"
              "alpha_total{k=\"b\"} 0\n"
              "alpha_total{k=\"a\"} 0\n");
}

TEST(Metrics, EscapesLabelValuesAndHelpText) {
    Registry r;
    r.counter("esc_total", "Line one\nback\\slash \"quoted\"",
              {{"v", "a\\b\"c\nd"}, {"w", "plain"}})
        .inc();
    EXPECT_EQ(r.render(),
              "# HELP esc_total Line one\\nback\\\\slash \"quoted\"\n"
              "# TYPE esc_total counter\n"
              "esc_total{v=\"a\\\\b\\\"c\\nd\",w=\"plain\"} 1\n");
}

TEST(Metrics, GaugeIncDecAndSetRenderAsFloats) {
    Registry r;
    auto& g = r.gauge("queue_depth", "Depth.");
    g.inc(2.5);
    g.dec();
    EXPECT_DOUBLE_EQ(g.value(), 1.5);
    EXPECT_NE(r.render().find("\nqueue_depth 1.5\n"), std::string::npos);
    g.set(-0.25);
    EXPECT_NE(r.render().find("\nqueue_depth -0.25\n"), std::string::npos);
    g.set(1048576);
    EXPECT_NE(r.render().find("\nqueue_depth 1048576\n"), std::string::npos);
    g.set(std::numeric_limits<double>::infinity());
    EXPECT_NE(r.render().find("\nqueue_depth +Inf\n"), std::string::npos);
    g.set(std::numeric_limits<double>::quiet_NaN());
    EXPECT_NE(r.render().find("\nqueue_depth NaN\n"), std::string::npos);
}

TEST(Metrics, HistogramRendersCumulativeBucketsWithInfSumAndCount) {
    Registry r;
    auto& h = r.histogram("latency_seconds", "Latency.", {{"route", "webhook"}}, {0.25, 0.5, 1});
    h.observe(0.125);
    h.observe(0.25);  // `le` is inclusive
    h.observe(0.75);
    h.observe(8);
    EXPECT_EQ(r.render(),
              "# HELP latency_seconds Latency.\n"
              "# TYPE latency_seconds histogram\n"
              "latency_seconds_bucket{route=\"webhook\",le=\"0.25\"} 2\n"
              "latency_seconds_bucket{route=\"webhook\",le=\"0.5\"} 2\n"
              "latency_seconds_bucket{route=\"webhook\",le=\"1\"} 3\n"
              "latency_seconds_bucket{route=\"webhook\",le=\"+Inf\"} 4\n"
              "latency_seconds_sum{route=\"webhook\"} 9.125\n"
              "latency_seconds_count{route=\"webhook\"} 4\n");
    EXPECT_EQ(h.count(), 4u);
    EXPECT_EQ(h.bucket(0), 2u);
    EXPECT_EQ(h.bucket(3), 1u);
}

TEST(Metrics, UnlabelledHistogramUsesLatencyBucketsByDefault) {
    Registry r;
    r.histogram("d_seconds", "D.").observe(0.0007);
    const auto text = r.render();
    const std::string expected_bounds[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                           "0.025",  "0.05",  "0.1",    "0.15",  "0.2",
                                           "0.25",   "0.5",   "1",      "2.5",   "+Inf"};
    std::size_t pos = 0;
    for (const auto& le : expected_bounds) {
        const auto count = le == "0.0005" ? "0" : "1";
        const auto line = "d_seconds_bucket{le=\"" + le + "\"} " + count + "\n";
        const auto found = text.find(line, pos);
        ASSERT_NE(found, std::string::npos) << "missing or out of order: " << line << text;
        pos = found;
    }
    EXPECT_NE(text.find("\nd_seconds_sum 0.0007\nd_seconds_count 1\n"), std::string::npos) << text;
}

TEST(Metrics, LatencyBucketsCoverMeshBudget) {
    EXPECT_EQ(latency_buckets(), (std::vector<double>{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1, 2.5}));
}

TEST(Metrics, RejectsBadNamesAndLabelNames) {
    Registry r;
    EXPECT_THROW(r.counter("", "h"), std::invalid_argument);
    EXPECT_THROW(r.counter("1abc", "h"), std::invalid_argument);
    EXPECT_THROW(r.counter("has-dash", "h"), std::invalid_argument);
    EXPECT_THROW(r.counter("ok_total", "h", {{"bad-label", "x"}}), std::invalid_argument);
    EXPECT_THROW(r.counter("ok_total", "h", {{"9x", "x"}}), std::invalid_argument);
    EXPECT_THROW(r.counter("ok_total", "h", {{"__reserved", "x"}}), std::invalid_argument);
    EXPECT_THROW(r.counter("ok_total", "h", {{"a", "1"}, {"a", "2"}}), std::invalid_argument);
    EXPECT_THROW(r.histogram("h_seconds", "h", {{"le", "1"}}), std::invalid_argument);
    EXPECT_NO_THROW(r.counter("ns:ok_total", "h", {{"_x", "any \"value\""}}));
}

TEST(Metrics, TypeClashThrows) {
    Registry r;
    r.counter("thing", "h");
    EXPECT_THROW(r.gauge("thing", "h"), std::invalid_argument);
    EXPECT_THROW(r.histogram("thing", "h"), std::invalid_argument);
}

TEST(Metrics, HistogramBoundsMustBeIncreasingAndAgreeWithinFamily) {
    EXPECT_THROW(Histogram({1, 0.5}), std::invalid_argument);
    EXPECT_THROW(Histogram({1, 1}), std::invalid_argument);
    EXPECT_THROW(Histogram({std::numeric_limits<double>::quiet_NaN()}), std::invalid_argument);
    EXPECT_EQ(Histogram({1, std::numeric_limits<double>::infinity()}).bounds(),
              std::vector<double>{1});
    Registry r;
    r.histogram("x_seconds", "h", {{"a", "1"}}, {1, 2});
    EXPECT_THROW(r.histogram("x_seconds", "h", {{"a", "2"}}, {1, 3}), std::invalid_argument);
}

TEST(Metrics, HistogramIgnoresNaN) {
    Histogram h({1});
    h.observe(std::numeric_limits<double>::quiet_NaN());
    EXPECT_EQ(h.count(), 0u);
    EXPECT_EQ(h.sum(), 0.0);
}

TEST(Metrics, CollectorsRunBeforeEachRender) {
    Registry r;
    int depth = 0;
    auto& g = r.gauge("depth", "D.");
    r.add_collector([&] { g.set(++depth); });
    // A collector may create metrics lazily; that must not deadlock.
    r.add_collector([&] { r.counter("lazy_total", "L.").inc(); });
    EXPECT_NE(r.render().find("\ndepth 1\n"), std::string::npos);
    const auto text = r.render();
    EXPECT_NE(text.find("\ndepth 2\n"), std::string::npos) << text;
    EXPECT_NE(text.find("\nlazy_total 2\n"), std::string::npos) << text;
}

TEST(Metrics, ConcurrentUpdatesFromSeveralThreadsSumExactly) {
    Registry r;
    auto& c = r.counter("hits_total", "H.");
    auto& g = r.gauge("level", "L.");
    auto& h = r.histogram("obs_seconds", "O.", {}, {0.5});
    constexpr int kThreads = 4;
    constexpr int kPerThread = 50000;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < kPerThread; ++i) {
                c.inc();
                g.inc(1);
                h.observe(i % 2 == 0 ? 0.25 : 1.0);
            }
        });
    }
    // Scrapes racing the updates must never show _count disagreeing with +Inf.
    for (int i = 0; i < 20; ++i) {
        const auto text = r.render();
        const auto inf = text.find("obs_seconds_bucket{le=\"+Inf\"} ");
        const auto count = text.find("obs_seconds_count ");
        ASSERT_NE(inf, std::string::npos);
        ASSERT_NE(count, std::string::npos);
        const auto value_at = [&](std::size_t pos) {
            const auto start = text.find(' ', pos) + 1;
            return text.substr(start, text.find('\n', start) - start);
        };
        EXPECT_EQ(value_at(inf), value_at(count));
    }
    for (auto& t : threads) {
        t.join();
    }
    constexpr auto kTotal = static_cast<std::uint64_t>(kThreads) * kPerThread;
    EXPECT_EQ(c.value(), kTotal);
    EXPECT_DOUBLE_EQ(g.value(), static_cast<double>(kTotal));
    EXPECT_EQ(h.count(), kTotal);
    EXPECT_EQ(h.bucket(0), kTotal / 2);
    EXPECT_EQ(h.bucket(1), kTotal / 2);
    EXPECT_DOUBLE_EQ(h.sum(), static_cast<double>(kTotal / 2) * 1.25);
    const auto text = r.render();
    EXPECT_NE(text.find("\nhits_total 200000\n"), std::string::npos) << text;
    EXPECT_NE(text.find("\nobs_seconds_count 200000\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace meshhook::common
