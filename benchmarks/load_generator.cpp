// Open-loop HTTP load generator for meshhook-ingest's latency benchmark.
//
// Request k is due at start + k/R whatever happened to earlier requests, and
// its latency runs from that intended time to the last byte of its response.
// A request that finds every connection busy waits in a FIFO, and that wait
// counts, as it would for Mesh's sender: no coordinated omission. wrk is
// closed-loop (a slow response delays the next request on that connection and
// hides the stall), wrk2 is not packaged in Debian 12, and `meshhook send`
// blocks one thread per connection, which tops out near 8,000/s on one core.
// This is one io_context on one thread, so it can share a core with the test
// broker.
//
// usage: bench_load --url http://HOST:PORT/PATH --fixture FILE --secret S
//                   --rate R --seconds T [--connections N=256]
//                   [--distinct D=2000] [--warmup-seconds W=1] [--id-seed S=0]
//
// The D deliveries get Ids from S (the upper half of each UUID) and their
// index: a run with another S posts Ids that ingest has never acknowledged,
// so none is answered from its memory of recent Ids as a replay.
//
// Prints one line on stdout:
//   RESULT offered_per_s=R achieved_per_s=X requests=K ok=K200 non2xx=M
//          errors=E p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=..
//          over_200ms_ok=C
// and a human summary on stderr. ok counts every 2xx (ingest answers 200), so
// requests = ok + non2xx + errors; latencies cover every answer, errors none.
// A connection error fails its request and the connection reconnects; what
// is still unanswered 5 s after the last due time counts as an error.
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/optional/optional.hpp>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/signature.hpp"
#include "common/transfer_event.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view kUsage =
    "usage: bench_load --url http://HOST:PORT/PATH --fixture FILE --secret S --rate R "
    "--seconds T [--connections N=256] [--distinct D=2000] [--warmup-seconds W=1] [--id-seed S=0]";
constexpr auto kDrainTimeout = 5s;
constexpr auto kReconnectDelay = 100ms;
constexpr auto kSlowOk = 200ms;

[[noreturn]] void fail(const std::string& message, int code = 2) {
    std::cerr << "bench_load: " << message << '\n';
    std::exit(code);
}

// ---------------------------------------------------------------------------
// Arguments

struct Url {
    std::string host;
    std::string port;
    std::string path;
    std::string host_header;  // as written in the URL, for the Host header
};

struct Options {
    Url url;
    std::string fixture;
    std::string secret;
    double rate = 0;
    double seconds = 0;
    double warmup_seconds = 1;
    std::size_t connections = 256;
    std::size_t distinct = 2000;
    std::uint64_t id_seed = 0;
};

std::optional<Url> parse_url(std::string_view text) {
    constexpr std::string_view kScheme = "http://";
    if (!text.starts_with(kScheme)) return std::nullopt;
    text.remove_prefix(kScheme.size());
    const auto slash = text.find('/');
    const std::string_view authority = text.substr(0, slash);
    Url url;
    url.path = slash == std::string_view::npos ? "/" : std::string(text.substr(slash));
    url.host_header = std::string(authority);
    std::string_view host;
    std::string_view port;
    if (authority.starts_with('[')) {  // [v6-address]:port
        const auto close = authority.find(']');
        if (close == std::string_view::npos || authority.substr(close + 1, 1) != ":") {
            return std::nullopt;
        }
        host = authority.substr(1, close - 1);
        port = authority.substr(close + 2);
    } else {
        const auto colon = authority.rfind(':');
        if (colon == std::string_view::npos) return std::nullopt;
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    unsigned number = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), number);
    if (host.empty() || ec != std::errc{} || end != port.data() + port.size() || number == 0 ||
        number > 65535) {
        return std::nullopt;
    }
    url.host = std::string(host);
    url.port = std::string(port);
    return url;
}

template <typename T>
T parse_number(std::string_view flag, std::string_view text) {
    T value{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) {
        fail(std::string(flag) + " wants a number, got '" + std::string(text) + "'");
    }
    return value;
}

Options parse_options(int argc, char** argv) {
    Options options;
    bool have_url = false;
    bool have_rate = false;
    bool have_seconds = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view flag = argv[i];
        if (flag == "--help" || flag == "-h") {
            std::cout << kUsage << '\n';
            std::exit(0);
        }
        std::string_view value;
        if (const auto eq = flag.find('=');
            flag.starts_with("--") && eq != std::string_view::npos) {
            value = flag.substr(eq + 1);
            flag = flag.substr(0, eq);
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            fail(std::string(flag) + " needs a value; " + std::string(kUsage));
        }
        if (flag == "--url") {
            auto url = parse_url(value);
            if (!url) fail("--url '" + std::string(value) + "' is not http://HOST:PORT/PATH");
            options.url = std::move(*url);
            have_url = true;
        } else if (flag == "--fixture") {
            options.fixture = value;
        } else if (flag == "--secret") {
            options.secret = value;
        } else if (flag == "--rate") {
            options.rate = parse_number<double>(flag, value);
            have_rate = true;
        } else if (flag == "--seconds") {
            options.seconds = parse_number<double>(flag, value);
            have_seconds = true;
        } else if (flag == "--warmup-seconds") {
            options.warmup_seconds = parse_number<double>(flag, value);
        } else if (flag == "--connections") {
            options.connections = parse_number<std::size_t>(flag, value);
        } else if (flag == "--distinct") {
            options.distinct = parse_number<std::size_t>(flag, value);
        } else if (flag == "--id-seed") {
            options.id_seed = parse_number<std::uint64_t>(flag, value);
        } else {
            fail("unknown flag '" + std::string(flag) + "'; " + std::string(kUsage));
        }
    }
    if (!have_url) fail("missing --url; " + std::string(kUsage));
    if (options.fixture.empty()) fail("missing --fixture; " + std::string(kUsage));
    if (options.secret.empty()) fail("missing --secret; " + std::string(kUsage));
    if (!have_rate || !(options.rate > 0) || !std::isfinite(options.rate)) {
        fail("--rate must be a number of requests per second > 0");
    }
    if (!have_seconds || !(options.seconds > 0) || !std::isfinite(options.seconds)) {
        fail("--seconds must be > 0");
    }
    if (!(options.warmup_seconds >= 0) || !std::isfinite(options.warmup_seconds)) {
        fail("--warmup-seconds must be >= 0");
    }
    if (options.connections == 0) fail("--connections must be >= 1");
    if (options.distinct == 0) fail("--distinct must be >= 1");
    return options;
}

// ---------------------------------------------------------------------------
// Requests

// The string value of a top-level "field": "value" pair in the raw fixture.
// A scan rather than a JSON parser because the bodies must keep the fixture's
// exact bytes (its 18-decimal amounts included), as make_wrk_script.py does.
std::string string_field(const std::string& json, std::string_view field) {
    const std::string key = '"' + std::string(field) + '"';
    for (auto at = json.find(key); at != std::string::npos; at = json.find(key, at + 1)) {
        auto pos = json.find_first_not_of(" \t\r\n", at + key.size());
        if (pos == std::string::npos || json[pos] != ':') continue;  // a value, not a key
        pos = json.find_first_not_of(" \t\r\n", pos + 1);
        if (pos == std::string::npos || json[pos] != '"') break;
        const auto end = json.find('"', pos + 1);
        if (end == std::string::npos || end == pos + 1) break;
        return json.substr(pos + 1, end - pos - 1);
    }
    fail("fixture has no non-empty string field \"" + std::string(field) + "\"", 1);
}

void replace_all(std::string& text, const std::string& from, const std::string& to) {
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
        text.replace(at, from.size(), to);
    }
}

// str(uuid.UUID(int=value)) for a value below 2^64: the same ids
// make_wrk_script.py gives, so wrk and bench_load runs post the same bodies.
std::string uuid_from(std::uint64_t high, std::uint64_t value) {
    char hex[33];
    std::snprintf(hex, sizeof hex, "%016llx%016llx", static_cast<unsigned long long>(high),
                  static_cast<unsigned long long>(value));
    const std::string_view h(hex, 32);
    std::string out;
    out.reserve(36);
    out.append(h.substr(0, 8)).append("-").append(h.substr(8, 4)).append("-");
    out.append(h.substr(12, 4)).append("-").append(h.substr(16, 4)).append("-");
    out.append(h.substr(20, 12));
    return out;
}

// Whole requests, serialised once, so sending is one write of ready bytes.
std::vector<std::string> build_requests(const Options& options) {
    std::ifstream in(options.fixture, std::ios::binary);
    if (!in) fail("cannot read fixture " + options.fixture, 1);
    // Sent now, as Mesh stamps each delivery (ingest's replay window is on);
    // a 10-digit time for a 10-digit one: the body keeps its size.
    const std::string fixture = meshhook::common::restamp_sent_timestamp(
        std::string{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()},
        std::chrono::system_clock::now());

    constexpr std::array<std::string_view, 3> kIdFields = {"TransferId", "EventId", "Id"};
    std::array<std::string, 3> originals;
    for (std::size_t f = 0; f < kIdFields.size(); ++f) {
        originals[f] = string_field(fixture, kIdFields[f]);
    }

    std::vector<std::string> requests;
    requests.reserve(options.distinct);
    for (std::size_t i = 0; i < options.distinct; ++i) {
        std::string body = fixture;
        for (std::size_t f = 0; f < kIdFields.size(); ++f) {
            replace_all(body, originals[f],
                        uuid_from(options.id_seed,
                                  (static_cast<std::uint64_t>(i) << 8) | kIdFields[f].size()));
        }
        std::string request;
        request.reserve(body.size() + options.url.path.size() + 256);
        request.append("POST ").append(options.url.path).append(" HTTP/1.1\r\n");
        request.append("Host: ").append(options.url.host_header).append("\r\n");
        request.append("Content-Type: application/json\r\n");
        request.append(meshhook::common::kSignatureHeader)
            .append(": ")
            .append(meshhook::common::sign(options.secret, body))
            .append("\r\n");
        request.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n");
        request.append(body);
        requests.push_back(std::move(request));
    }
    return requests;
}

// A response body reader that throws the bytes away. Only the status matters,
// http::empty_body fails on any body (the servers answer a small JSON one),
// and http::string_body would allocate for every response.
struct DiscardBody {
    struct value_type {};
    class reader {
    public:
        template <bool kIsRequest, class Fields>
        reader(http::header<kIsRequest, Fields>&, value_type&) {}
        void init(const boost::optional<std::uint64_t>&, beast::error_code& ec) { ec = {}; }
        template <class ConstBufferSequence>
        std::size_t put(const ConstBufferSequence& buffers, beast::error_code& ec) {
            ec = {};
            return asio::buffer_size(buffers);
        }
        void finish(beast::error_code& ec) { ec = {}; }
    };
};

// ---------------------------------------------------------------------------
// Generator

class Generator;

// One keep-alive connection carrying one request at a time. Owned by the
// Generator, which outlives the io_context run, so handlers capture `this`.
class Connection {
public:
    Connection(Generator& generator, asio::io_context& ioc)
        : generator_(generator), socket_(ioc), retry_timer_(ioc) {}

    beast::error_code connect_now(const tcp::endpoint& endpoint);
    void send(std::uint64_t k, Clock::time_point intended);
    void close();

    bool busy() const { return busy_; }
    std::uint64_t request() const { return request_; }

private:
    void do_read();
    void on_read(beast::error_code ec);
    void on_error();
    void do_reconnect();
    void on_connect(beast::error_code ec);
    void set_options();

    Generator& generator_;
    tcp::socket socket_;
    asio::steady_timer retry_timer_;
    beast::flat_buffer buffer_;
    std::optional<http::response_parser<DiscardBody>> parser_;
    std::uint64_t request_ = 0;
    Clock::time_point intended_;
    bool busy_ = false;
};

struct Counts {
    std::vector<std::uint64_t> latencies_us;
    std::array<std::uint64_t, 600> statuses{};
    std::uint64_t ok = 0;
    std::uint64_t non2xx = 0;
    std::uint64_t errors = 0;
    std::uint64_t timed_out = 0;  // still unanswered when the drain gave up (part of errors)
    std::uint64_t over_slow_ok = 0;
    std::uint64_t warmup_errors = 0;
    std::uint64_t reconnects = 0;
    std::uint64_t connect_failures = 0;
    std::chrono::nanoseconds max_release_lag{0};
    std::size_t max_backlog = 0;
    Clock::time_point last_recorded_done;
};

class Generator {
public:
    Generator(asio::io_context& ioc, const Options& options, std::vector<std::string> requests)
        : ioc_(ioc),
          requests_(std::move(requests)),
          rate_(options.rate),
          // Request k is recorded when k/R falls in [W, W+T).
          first_recorded_(
              static_cast<std::uint64_t>(std::ceil(options.rate * options.warmup_seconds))),
          total_(static_cast<std::uint64_t>(
              std::ceil(options.rate * (options.warmup_seconds + options.seconds)))),
          tick_timer_(ioc),
          drain_timer_(ioc) {
        counts_.latencies_us.reserve(total_ - first_recorded_);
        connections_.reserve(options.connections);
        for (std::size_t i = 0; i < options.connections; ++i) {
            connections_.push_back(std::make_unique<Connection>(*this, ioc));
        }
    }

    // Blocking connects up front: a generator that cannot reach the server
    // should say so before the clock starts, not report a run of errors.
    void connect_all(const Url& url) {
        tcp::resolver resolver(ioc_);
        beast::error_code ec;
        const auto endpoints = resolver.resolve(url.host, url.port, ec);
        if (ec) fail("cannot resolve " + url.host + ": " + ec.message(), 1);
        if (endpoints.empty()) fail("cannot resolve " + url.host + ": no addresses", 1);
        // The first connection picks the address; the rest and every
        // reconnect reuse it.
        for (const auto& entry : endpoints) {
            ec = connections_.front()->connect_now(entry.endpoint());
            if (!ec) {
                endpoint_ = entry.endpoint();
                break;
            }
        }
        for (std::size_t i = 0; i < connections_.size(); ++i) {
            if (i > 0) ec = connections_[i]->connect_now(endpoint_);
            if (ec) {
                fail("cannot connect to " + url.host_header + " (connection " +
                         std::to_string(i + 1) + " of " + std::to_string(connections_.size()) +
                         "): " + ec.message(),
                     1);
            }
            idle_.push_back(connections_[i].get());
        }
    }

    void start() {
        start_ = Clock::now();
        recorded_start_ = intended(first_recorded_);
        schedule_end_ = intended(total_);
        drain_timer_.expires_at(schedule_end_ + kDrainTimeout);
        drain_timer_.async_wait([this](beast::error_code ec) {
            if (!ec && !finished_) finish();
        });
        on_tick();
    }

    // --- called by connections
    const tcp::endpoint& endpoint() const { return endpoint_; }
    const std::string& wire(std::uint64_t k) const { return requests_[k % requests_.size()]; }
    bool finished() const { return finished_; }

    void on_response(std::uint64_t k, Clock::time_point intended_at, unsigned status) {
        const auto now = Clock::now();
        --in_flight_;
        if (k >= first_recorded_) {
            const auto latency =
                std::chrono::duration_cast<std::chrono::microseconds>(now - intended_at);
            counts_.latencies_us.push_back(static_cast<std::uint64_t>(latency.count()));
            ++counts_.statuses[status >= 100 && status < counts_.statuses.size() ? status : 0];
            if (status >= 200 && status < 300) {
                ++counts_.ok;
                if (now - intended_at > kSlowOk) ++counts_.over_slow_ok;
            } else {
                ++counts_.non2xx;
            }
            counts_.last_recorded_done = now;
        }
    }

    void on_failure(std::uint64_t k) {
        --in_flight_;
        if (k >= first_recorded_) {
            ++counts_.errors;
            counts_.last_recorded_done = Clock::now();
        } else {
            ++counts_.warmup_errors;
        }
        maybe_finish();
    }

    void on_idle(Connection& connection) {
        if (finished_) return;
        if (!backlog_.empty()) {
            const auto k = backlog_.front();
            backlog_.pop_front();
            dispatch(connection, k);
        } else {
            idle_.push_back(&connection);
        }
        maybe_finish();
    }

    Counts& counts() { return counts_; }

    void report(const Options& options) {
        auto& c = counts_;
        auto& lat = c.latencies_us;
        std::sort(lat.begin(), lat.end());
        // Nearest rank: the smallest latency that at least p of the answers beat or matched.
        const auto percentile = [&lat](double p) -> std::uint64_t {
            if (lat.empty()) return 0;
            auto rank =
                static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(lat.size())));
            return lat[std::clamp<std::size_t>(rank, 1, lat.size()) - 1];
        };
        const std::uint64_t requests = total_ - first_recorded_;
        const std::uint64_t responses = c.ok + c.non2xx;
        // Responses over the time from the window's start to the last recorded
        // answer, at least T: a generator or server that falls behind finishes
        // late, and that shows here instead of hiding in the drain.
        double elapsed =
            std::chrono::duration<double>(c.last_recorded_done - recorded_start_).count();
        elapsed = std::max(elapsed, options.seconds);
        const auto achieved =
            static_cast<std::uint64_t>(std::llround(static_cast<double>(responses) / elapsed));
        const auto offered = static_cast<std::uint64_t>(std::llround(options.rate));

        std::cout << "RESULT offered_per_s=" << offered << " achieved_per_s=" << achieved
                  << " requests=" << requests << " ok=" << c.ok << " non2xx=" << c.non2xx
                  << " errors=" << c.errors << " p50_us=" << percentile(50)
                  << " p90_us=" << percentile(90) << " p99_us=" << percentile(99)
                  << " p999_us=" << percentile(99.9) << " max_us=" << (lat.empty() ? 0 : lat.back())
                  << " over_200ms_ok=" << c.over_slow_ok << std::endl;

        rusage usage{};
        getrusage(RUSAGE_SELF, &usage);
        const double cpu =
            static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
            static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
        const double wall = std::chrono::duration<double>(finished_at_ - start_).count();
        std::ostringstream statuses;
        for (std::size_t s = 0; s < c.statuses.size(); ++s) {
            if (c.statuses[s] != 0) {
                statuses << ' ' << (s == 0 ? std::string("other") : std::to_string(s)) << '='
                         << c.statuses[s];
            }
        }
        std::fprintf(
            stderr,
            "bench_load: offered %llu/s achieved %llu/s over %.1f s; %llu requests: %llu "
            "ok, %llu non-2xx, %llu errors (%llu unanswered at drain timeout); latency "
            "us p50 %llu p90 %llu p99 %llu p99.9 %llu max %llu; %llu ok over 200 ms; "
            "statuses:%s; warm-up errors %llu, reconnects after errors %llu, failed reconnects "
            "%llu; "
            "schedule lag max %lld us, backlog max %zu; cpu %.2f s of %.2f s wall\n",
            static_cast<unsigned long long>(offered), static_cast<unsigned long long>(achieved),
            options.seconds, static_cast<unsigned long long>(requests),
            static_cast<unsigned long long>(c.ok), static_cast<unsigned long long>(c.non2xx),
            static_cast<unsigned long long>(c.errors), static_cast<unsigned long long>(c.timed_out),
            static_cast<unsigned long long>(percentile(50)),
            static_cast<unsigned long long>(percentile(90)),
            static_cast<unsigned long long>(percentile(99)),
            static_cast<unsigned long long>(percentile(99.9)),
            static_cast<unsigned long long>(lat.empty() ? 0 : lat.back()),
            static_cast<unsigned long long>(c.over_slow_ok),
            statuses.str().empty() ? " none" : statuses.str().c_str(),
            static_cast<unsigned long long>(c.warmup_errors),
            static_cast<unsigned long long>(c.reconnects),
            static_cast<unsigned long long>(c.connect_failures),
            static_cast<long long>(
                std::chrono::duration_cast<std::chrono::microseconds>(c.max_release_lag).count()),
            c.max_backlog, cpu, wall);
    }

private:
    Clock::time_point intended(std::uint64_t k) const {
        return start_ + std::chrono::nanoseconds(static_cast<std::int64_t>(
                            std::llround(static_cast<double>(k) * 1e9 / rate_)));
    }

    // Releases every request that is due, then sleeps until the next one. When
    // the thread falls behind, the next tick releases the whole overdue batch,
    // each still timed from its own intended moment.
    void on_tick() {
        const auto now = Clock::now();
        while (next_ < total_) {
            const auto due = intended(next_);
            if (due > now) break;
            if (next_ >= first_recorded_)
                counts_.max_release_lag = std::max(counts_.max_release_lag, now - due);
            release(next_++);
            if (finished_) return;
        }
        if (next_ < total_) {
            tick_timer_.expires_at(intended(next_));
            tick_timer_.async_wait([this](beast::error_code ec) {
                if (!ec && !finished_) on_tick();
            });
        } else {
            maybe_finish();
        }
    }

    void release(std::uint64_t k) {
        // Round robin over idle connections (FIFO, not a stack), so each one
        // carries traffic every few milliseconds and none sits long enough to
        // meet the server's keep-alive idle timeout.
        if (!idle_.empty()) {
            Connection* connection = idle_.front();
            idle_.pop_front();
            dispatch(*connection, k);
        } else {
            backlog_.push_back(k);
            counts_.max_backlog = std::max(counts_.max_backlog, backlog_.size());
        }
    }

    void dispatch(Connection& connection, std::uint64_t k) {
        ++in_flight_;
        connection.send(k, intended(k));
    }

    void maybe_finish() {
        if (!finished_ && next_ == total_ && in_flight_ == 0 && backlog_.empty()) finish();
    }

    // Recorded requests still queued or in flight here are the ones the drain
    // gave up on: they count as errors.
    void finish() {
        finished_ = true;
        finished_at_ = Clock::now();
        for (const auto k : backlog_) {
            if (k >= first_recorded_) ++counts_.errors, ++counts_.timed_out;
        }
        backlog_.clear();
        for (auto& connection : connections_) {
            if (connection->busy() && connection->request() >= first_recorded_) {
                ++counts_.errors;
                ++counts_.timed_out;
            }
            connection->close();
        }
        tick_timer_.cancel();
        drain_timer_.cancel();
    }

    asio::io_context& ioc_;
    const std::vector<std::string> requests_;
    const double rate_;
    const std::uint64_t first_recorded_;
    const std::uint64_t total_;
    asio::steady_timer tick_timer_;
    asio::steady_timer drain_timer_;
    tcp::endpoint endpoint_;
    std::vector<std::unique_ptr<Connection>> connections_;
    std::deque<Connection*> idle_;
    std::deque<std::uint64_t> backlog_;
    std::uint64_t next_ = 0;
    std::uint64_t in_flight_ = 0;
    Clock::time_point start_;
    Clock::time_point recorded_start_;
    Clock::time_point schedule_end_;
    Clock::time_point finished_at_;
    bool finished_ = false;
    Counts counts_;
};

void Connection::set_options() {
    beast::error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    // Lets send() try the write inline; Asio's async operations are unaffected.
    socket_.non_blocking(true, ec);
}

beast::error_code Connection::connect_now(const tcp::endpoint& endpoint) {
    beast::error_code ec;
    socket_.close(ec);
    socket_.connect(endpoint, ec);
    if (!ec) set_options();
    return ec;
}

void Connection::send(std::uint64_t k, Clock::time_point intended) {
    request_ = k;
    intended_ = intended;
    busy_ = true;
    const std::string& wire = generator_.wire(k);
    // A request is a few hundred bytes and the socket buffer is nearly always
    // free, so a direct non-blocking write saves a trip through the reactor.
    beast::error_code ec;
    std::size_t written = socket_.write_some(asio::buffer(wire), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
        written = 0;
        ec = {};
    }
    if (ec) return on_error();
    if (written == wire.size()) return do_read();
    asio::async_write(socket_, asio::buffer(wire) + written,
                      [this](beast::error_code write_ec, std::size_t) {
                          if (generator_.finished()) return;
                          if (write_ec) return on_error();
                          do_read();
                      });
}

void Connection::do_read() {
    parser_.emplace();
    http::async_read(socket_, buffer_, *parser_,
                     [this](beast::error_code ec, std::size_t) { on_read(ec); });
}

void Connection::on_read(beast::error_code ec) {
    if (generator_.finished()) return;
    if (ec) return on_error();
    busy_ = false;
    const bool keep_alive = parser_->get().keep_alive();
    generator_.on_response(request_, intended_, parser_->get().result_int());
    if (!keep_alive) return do_reconnect();  // the server said Connection: close; not an error
    generator_.on_idle(*this);
}

void Connection::on_error() {
    busy_ = false;
    ++generator_.counts().reconnects;
    generator_.on_failure(request_);
    do_reconnect();
}

void Connection::do_reconnect() {
    if (generator_.finished()) return;
    beast::error_code ignored;
    socket_.close(ignored);
    buffer_.clear();
    socket_.async_connect(generator_.endpoint(), [this](beast::error_code ec) { on_connect(ec); });
}

void Connection::on_connect(beast::error_code ec) {
    if (generator_.finished()) return;
    if (ec) {
        ++generator_.counts().connect_failures;
        beast::error_code ignored;
        socket_.close(ignored);
        retry_timer_.expires_after(kReconnectDelay);
        retry_timer_.async_wait([this](beast::error_code wait_ec) {
            if (!wait_ec) do_reconnect();
        });
        return;
    }
    set_options();
    generator_.on_idle(*this);
}

void Connection::close() {
    beast::error_code ignored;
    socket_.close(ignored);
    retry_timer_.cancel();
}

}  // namespace

int main(int argc, char** argv) {
    const Options options = parse_options(argc, argv);
    auto requests = build_requests(options);

    asio::io_context ioc(1);
    Generator generator(ioc, options, std::move(requests));
    generator.connect_all(options.url);
    generator.start();
    ioc.run();
    generator.report(options);
    return 0;
}
