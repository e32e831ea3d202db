#pragma once
// A small Prometheus registry: counters, gauges and histograms with labels,
// rendered in the text exposition format 0.0.4. Debian ships no Prometheus
// C++ client, and what the services need fits in a few hundred lines.
//
// Metric objects are created at start-up and then only updated: updates are
// lock-free atomics, safe from any thread; references stay valid for the
// registry's lifetime.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshhook::common {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
public:
    void inc(std::uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> value_{0};
};

class Gauge {
public:
    void set(double v) { value_.store(v, std::memory_order_relaxed); }
    void inc(double d = 1);
    void dec(double d = 1) { inc(-d); }
    double value() const { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> value_{0};
};

class Histogram {
public:
    explicit Histogram(std::vector<double> upper_bounds);
    void observe(double v);
    std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }
    double sum() const { return sum_.load(std::memory_order_relaxed); }
    const std::vector<double>& bounds() const { return bounds_; }
    // Non-cumulative count of bucket i (i == bounds().size() is +Inf).
    std::uint64_t bucket(std::size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }

private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
    std::atomic<std::uint64_t> count_{0};
    std::atomic<double> sum_{0};
};

// Latency buckets in seconds, from 0.5 ms to 2.5 s (Mesh's budget is 0.2 s).
std::vector<double> latency_buckets();

class Registry {
public:
    Registry();
    ~Registry();
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    // Same (name, labels) returns the same object. Names and label names must
    // match [a-zA-Z_:][a-zA-Z0-9_:]*; a mismatch or a type clash throws
    // std::invalid_argument (a programming error found at start-up).
    Counter& counter(std::string_view name, std::string_view help, const Labels& labels = {});
    Gauge& gauge(std::string_view name, std::string_view help, const Labels& labels = {});
    Histogram& histogram(std::string_view name, std::string_view help, const Labels& labels = {},
                         std::vector<double> bounds = latency_buckets());

    // Runs before each render, e.g. to sample a queue depth into a gauge.
    void add_collector(std::function<void()> collect);

    std::string render() const;

private:
    struct Family;
    Family& family(std::string_view name, std::string_view help, int type);
    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<Family>> families_;
    std::vector<std::function<void()>> collectors_;
};

}  // namespace meshhook::common
