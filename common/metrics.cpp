#include "common/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <iterator>
#include <stdexcept>
#include <system_error>

namespace meshhook::common {

namespace {

enum Type : int { kCounter = 0, kGauge = 1, kHistogram = 2 };

constexpr std::string_view type_name(int type) {
    switch (type) {
        case kCounter: return "counter";
        case kGauge: return "gauge";
        default: return "histogram";
    }
}

void add_to(std::atomic<double>& target, double d) {
    double current = target.load(std::memory_order_relaxed);
    while (!target.compare_exchange_weak(current, current + d, std::memory_order_relaxed)) {
    }
}

bool is_metric_name(std::string_view name) {
    const auto head = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    };
    const auto tail = [&](char c) { return head(c) || (c >= '0' && c <= '9'); };
    return !name.empty() && head(name.front()) && std::all_of(name.begin() + 1, name.end(), tail);
}

// Prometheus reserves ':' for recording rules' metric names only, and "__" for
// its own labels; both would be rejected at scrape time, so refuse them here.
bool is_label_name(std::string_view name) {
    return is_metric_name(name) && name.find(':') == std::string_view::npos &&
           !name.starts_with("__");
}

// Go's strconv 'g' formatting is what Prometheus itself writes; readable fixed
// notation for the common range, shortest round-trip digits always.
void append_double(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "NaN";
        return;
    }
    if (std::isinf(v)) {
        out += v > 0 ? "+Inf" : "-Inf";
        return;
    }
    char buf[400];
    const double magnitude = std::fabs(v);
    const bool fixed = magnitude == 0 || (magnitude >= 1e-4 && magnitude < 1e21);
    const auto result = fixed ? std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed)
                              : std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, result.ptr);
}

void append_uint(std::string& out, std::uint64_t v) {
    char buf[24];
    const auto result = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, result.ptr);
}

void append_escaped(std::string& out, std::string_view text, bool quote) {
    for (char c : text) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (quote && c == '"') {
            out += "\\\"";
        } else {
            out += c;
        }
    }
}

// `{a="x",b="y"` without the closing brace, so a histogram can append `le`.
std::string label_prefix(const Labels& labels) {
    std::string out;
    for (const auto& [name, value] : labels) {
        out += out.empty() ? "{" : ",";
        out += name;
        out += "=\"";
        append_escaped(out, value, true);
        out += '"';
    }
    return out;
}

Labels sorted(Labels labels) {
    std::sort(labels.begin(), labels.end());
    return labels;
}

}  // namespace

void Gauge::inc(double d) {
    add_to(value_, d);
}

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
    // +Inf is implicit; accept it when a caller lists it anyway.
    if (!bounds_.empty() && std::isinf(bounds_.back()) && bounds_.back() > 0) {
        bounds_.pop_back();
    }
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
        if (!std::isfinite(bounds_[i]) || (i > 0 && !(bounds_[i - 1] < bounds_[i]))) {
            throw std::invalid_argument("histogram bounds must be finite and strictly increasing");
        }
    }
    buckets_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
}

void Histogram::observe(double v) {
    // A NaN measurement is a bug upstream; counting it would poison _sum forever.
    if (std::isnan(v)) {
        return;
    }
    // `le` is inclusive: the first bound >= v.
    const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
    const auto index = static_cast<std::size_t>(std::distance(bounds_.begin(), it));
    buckets_[index].fetch_add(1, std::memory_order_relaxed);
    add_to(sum_, v);
    count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<double> latency_buckets() {
    return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.5, 1, 2.5};
}

struct Registry::Family {
    struct Series {
        Labels key;          // sorted, so label order does not create a new series
        std::string labels;  // rendered and escaped once, at creation
        std::unique_ptr<Counter> counter;
        std::unique_ptr<Gauge> gauge;
        std::unique_ptr<Histogram> histogram;
    };

    std::string name;
    std::string help;
    int type = kCounter;
    std::vector<double> bounds;  // histograms: every series shares them
    std::vector<std::unique_ptr<Series>> series;

    Series& find_or_add(const Labels& labels) {
        auto key = sorted(labels);
        for (std::size_t i = 0; i < key.size(); ++i) {
            if (!is_label_name(key[i].first)) {
                throw std::invalid_argument("metric " + name + ": bad label name \"" +
                                            key[i].first + "\"");
            }
            if (i > 0 && key[i - 1].first == key[i].first) {
                throw std::invalid_argument("metric " + name + ": label \"" + key[i].first +
                                            "\" given twice");
            }
            if (type == kHistogram && key[i].first == "le") {
                throw std::invalid_argument("histogram " + name + ": label \"le\" is reserved");
            }
        }
        for (auto& s : series) {
            if (s->key == key) {
                return *s;
            }
        }
        auto s = std::make_unique<Series>();
        s->key = std::move(key);
        s->labels = label_prefix(labels);
        series.push_back(std::move(s));
        return *series.back();
    }
};

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Family& Registry::family(std::string_view name, std::string_view help, int type) {
    if (!is_metric_name(name)) {
        throw std::invalid_argument("bad metric name \"" + std::string(name) + "\"");
    }
    for (auto& f : families_) {
        if (f->name == name) {
            if (f->type != type) {
                throw std::invalid_argument("metric " + f->name + " already registered as a " +
                                            std::string(type_name(f->type)));
            }
            return *f;
        }
    }
    auto f = std::make_unique<Family>();
    f->name = std::string(name);
    f->help = std::string(help);
    f->type = type;
    families_.push_back(std::move(f));
    return *families_.back();
}

Counter& Registry::counter(std::string_view name, std::string_view help, const Labels& labels) {
    std::lock_guard lock(mutex_);
    auto& s = family(name, help, kCounter).find_or_add(labels);
    if (!s.counter) {
        s.counter = std::make_unique<Counter>();
    }
    return *s.counter;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help, const Labels& labels) {
    std::lock_guard lock(mutex_);
    auto& s = family(name, help, kGauge).find_or_add(labels);
    if (!s.gauge) {
        s.gauge = std::make_unique<Gauge>();
    }
    return *s.gauge;
}

Histogram& Registry::histogram(std::string_view name, std::string_view help, const Labels& labels,
                               std::vector<double> bounds) {
    // Normalise (and validate) before comparing with the family's bounds.
    auto fresh = std::make_unique<Histogram>(std::move(bounds));
    std::lock_guard lock(mutex_);
    auto& f = family(name, help, kHistogram);
    if (f.series.empty()) {
        f.bounds = fresh->bounds();
    } else if (f.bounds != fresh->bounds()) {
        throw std::invalid_argument("histogram " + f.name + ": bounds differ between series");
    }
    auto& s = f.find_or_add(labels);
    if (!s.histogram) {
        s.histogram = std::move(fresh);
    }
    return *s.histogram;
}

void Registry::add_collector(std::function<void()> collect) {
    std::lock_guard lock(mutex_);
    collectors_.push_back(std::move(collect));
}

std::string Registry::render() const {
    // Collectors run unlocked: they may create metrics, which takes the mutex.
    std::vector<std::function<void()>> collectors;
    {
        std::lock_guard lock(mutex_);
        collectors = collectors_;
    }
    for (const auto& collect : collectors) {
        collect();
    }

    std::string out;
    std::lock_guard lock(mutex_);
    for (const auto& f : families_) {
        out += "# HELP ";
        out += f->name;
        out += ' ';
        append_escaped(out, f->help, false);
        out += "\n# TYPE ";
        out += f->name;
        out += ' ';
        out += type_name(f->type);
        out += '\n';
        for (const auto& s : f->series) {
            const std::string closed = s->labels.empty() ? std::string() : s->labels + "}";
            if (f->type == kCounter) {
                out += f->name + closed + ' ';
                append_uint(out, s->counter->value());
                out += '\n';
            } else if (f->type == kGauge) {
                out += f->name + closed + ' ';
                append_double(out, s->gauge->value());
                out += '\n';
            } else {
                const auto& h = *s->histogram;
                const std::string open = s->labels.empty() ? "{" : s->labels + ",";
                std::uint64_t cumulative = 0;
                for (std::size_t i = 0; i <= h.bounds().size(); ++i) {
                    cumulative += h.bucket(i);
                    out += f->name + "_bucket" + open + "le=\"";
                    if (i < h.bounds().size()) {
                        append_double(out, h.bounds()[i]);
                    } else {
                        out += "+Inf";
                    }
                    out += "\"} ";
                    append_uint(out, cumulative);
                    out += '\n';
                }
                out += f->name + "_sum" + closed + ' ';
                append_double(out, h.sum());
                // _count is the +Inf bucket by definition; reading count() separately
                // could disagree with it while observations race the scrape.
                out += '\n' + f->name + "_count" + closed + ' ';
                append_uint(out, cumulative);
                out += '\n';
            }
        }
    }
    return out;
}

}  // namespace meshhook::common
