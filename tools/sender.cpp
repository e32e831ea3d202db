#include "tools/sender.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <ostream>
#include <thread>
#include <unordered_map>

#include "common/signature.hpp"
#include "common/transfer_event.hpp"

namespace meshhook::tools {
namespace {

using Clock = std::chrono::steady_clock;

// Spaces requests evenly over all workers: each takes the next slot.
class Pacer {
public:
    explicit Pacer(double rate)
        : interval_(rate > 0 ? std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(1.0 / rate))
                             : Clock::duration::zero()),
          next_(Clock::now()) {}

    void wait() {
        if (interval_ == Clock::duration::zero()) return;
        Clock::time_point slot;
        {
            std::lock_guard lock(mutex_);
            slot = std::max(next_, Clock::now());
            next_ = slot + interval_;
        }
        std::this_thread::sleep_until(slot);
    }

private:
    Clock::duration interval_;
    std::mutex mutex_;
    Clock::time_point next_;
};

struct Shared {
    const std::vector<Stream>& streams;
    const SendOptions& options;
    std::ostream& log;
    Pacer pacer;
    std::atomic<std::size_t> next_stream{0};
    std::mutex mutex;  // guards summary and log
    SendSummary summary;
};

std::chrono::milliseconds backoff_for(const SendOptions& o, unsigned attempt,
                                      const std::optional<std::string>& retry_after) {
    // Mesh does not document its schedule; doubling from a short start,
    // capped, is what it is observed to do, and a Retry-After wins when given.
    if (retry_after) {
        unsigned seconds = 0;
        const auto& t = *retry_after;
        auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), seconds);
        if (ec == std::errc() && p == t.data() + t.size()) {
            return std::min(std::chrono::milliseconds(seconds * 1000ULL), o.max_backoff);
        }
    }
    auto delay = o.initial_backoff;
    for (unsigned i = 1; i < attempt && delay < o.max_backoff; ++i) delay *= 2;
    return std::min(delay, o.max_backoff);
}

void worker(Shared& shared) {
    const auto& o = shared.options;
    HttpClient client(o.url.host, o.url.port, o.timeout);
    for (;;) {
        const std::size_t index = shared.next_stream.fetch_add(1);
        if (index >= shared.streams.size()) return;
        for (const auto& delivery : shared.streams[index]) {
            bool delivered = false;
            std::string last;
            unsigned attempt = 1;
            for (; attempt <= o.max_attempts; ++attempt) {
                shared.pacer.wait();
                // Like Mesh, every attempt carries the time it was sent, signed:
                // a stored body would be outside ingest's replay window.
                const std::string body = o.restamp
                                             ? common::restamp_sent_timestamp(
                                                   delivery.body, std::chrono::system_clock::now())
                                             : delivery.body;
                const HttpClient::Headers headers = {
                    {std::string(common::kSignatureHeader), common::sign(o.secret, body)},
                    {"Content-Type", "application/json"}};
                const auto start = Clock::now();
                const auto result = client.request("POST", o.url.target, body, headers);
                const double ms =
                    std::chrono::duration<double, std::milli>(Clock::now() - start).count();
                const std::string answer =
                    result.response ? std::to_string(result.response->status) : "error";
                last = result.response ? answer + " " + result.response->body : result.error;
                {
                    std::lock_guard lock(shared.mutex);
                    ++shared.summary.attempts;
                    ++shared.summary.answers[answer];
                    if (result.response) shared.summary.latencies_ms.push_back(ms);
                    if (o.verbose) {
                        shared.log
                            << delivery.name << ": " << last
                            << (attempt > 1 ? " (attempt " + std::to_string(attempt) + ")" : "")
                            << "\n";
                    }
                }
                if (result.response && result.response->status == 200) {
                    delivered = true;
                    break;
                }
                if (attempt < o.max_attempts) {
                    std::this_thread::sleep_for(backoff_for(
                        o, attempt, result.response ? result.response->retry_after : std::nullopt));
                }
            }
            std::lock_guard lock(shared.mutex);
            ++shared.summary.deliveries;
            if (delivered) {
                ++shared.summary.delivered;
            } else {
                ++shared.summary.gave_up;
                std::replace(last.begin(), last.end(), '\n', ' ');
                if (shared.summary.failures.size() < 5) {
                    shared.summary.failures.push_back(delivery.name + ": gave up after " +
                                                      std::to_string(o.max_attempts) +
                                                      " attempt(s), last: " + last);
                }
            }
        }
    }
}

double percentile(const std::vector<double>& sorted, double p) {
    if (sorted.empty()) return 0;
    const auto rank =
        static_cast<std::size_t>(std::lround(p * static_cast<double>(sorted.size() - 1)));
    return sorted[std::min(rank, sorted.size() - 1)];
}

}  // namespace

SendSummary send_streams(const std::vector<Stream>& streams, const SendOptions& options,
                         std::ostream& log) {
    Shared shared{streams, options, log, Pacer(options.rate), {}, {}, {}};
    const auto start = Clock::now();
    const unsigned workers = std::max(
        1U, std::min<unsigned>(options.concurrency, static_cast<unsigned>(streams.size())));
    std::vector<std::thread> threads;
    threads.reserve(workers);
    for (unsigned i = 0; i < workers; ++i) threads.emplace_back([&shared] { worker(shared); });
    for (auto& t : threads) t.join();
    shared.summary.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
    return std::move(shared.summary);
}

std::string format_summary(const SendSummary& s) {
    std::string out = "deliveries " + std::to_string(s.deliveries) + ": " +
                      std::to_string(s.delivered) + " delivered (200), " +
                      std::to_string(s.gave_up) + " given up; attempts " +
                      std::to_string(s.attempts) + " (";
    bool first = true;
    for (const auto& [answer, count] : s.answers) {
        if (!first) out += ", ";
        first = false;
        out += answer + " x" + std::to_string(count);
    }
    out += ")";
    auto sorted = s.latencies_ms;
    std::sort(sorted.begin(), sorted.end());
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "; latency ms p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f max %.2f; %.2f s",
                  percentile(sorted, 0.5), percentile(sorted, 0.9), percentile(sorted, 0.99),
                  percentile(sorted, 0.999), sorted.empty() ? 0.0 : sorted.back(), s.elapsed_s);
    out += buf;
    if (s.elapsed_s > 0) {
        std::snprintf(buf, sizeof buf, " (%.0f attempts/s)",
                      static_cast<double>(s.attempts) / s.elapsed_s);
        out += buf;
    }
    return out;
}

std::vector<Stream> group_by_transfer(std::vector<Delivery> deliveries) {
    common::TransferEventParser parser;
    std::vector<Stream> streams;
    std::unordered_map<std::string, std::size_t> index;
    for (auto& d : deliveries) {
        const auto parsed = parser.parse(d.body);
        if (!parsed.ok()) {
            streams.push_back({std::move(d)});
            continue;
        }
        std::string id(parsed.event.transfer_id.value);
        auto [it, inserted] = index.emplace(std::move(id), streams.size());
        if (inserted) streams.emplace_back();
        streams[it->second].push_back(std::move(d));
    }
    return streams;
}

}  // namespace meshhook::tools
