// Reconciliation against a bare HTTP stand-in for Mesh's API. Mesh cannot run
// here, so a small Boost.Beast server in this test fakes it on a real socket:
// it checks X-Client-Id / X-Client-Secret, serves Count/Offset pages of at
// most two items (honouring no other filter, as Mesh need not), and answers
// the faults a test scripts: 401, 429, 5xx, a 200 whose envelope is a
// failure, an answer slower than the consumer's call deadline. meshhook-consumer
// runs as its own process against it and a Kafka broker process.

#include <arpa/inet.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <charconv>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "consumer/store.hpp"
#include "tests/integration/consumer/harness.hpp"
#include "tests/support/process.hpp"

namespace meshhook::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

const std::string kClientId = "standin-client";
const std::string kClientSecret = "standin-secret";
constexpr std::string_view kListPath = "/api/v1/transfers/managed/mesh";

class MeshStandIn {
public:
    enum class Fault {
        kUnauthorized,     // 401 permissionDenied
        kRateLimited,      // 429 tooManyRequest, Retry-After: 1
        kServerError,      // 503 serverFailure
        kFailureEnvelope,  // 200 with status serverFailure
        kTooManyEnvelope,  // 200 with status tooManyRequest
        kSlow,             // the right answer, 4 s late
    };
    struct Request {
        std::string prefix;  // the path before /api/v1/...: which consumer asked
        std::map<std::string, std::string> query;
        bool credentials_ok = false;
        std::optional<Fault> fault;
        Clock::time_point at;
    };

    MeshStandIn() : acceptor_(ioc_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)) {
        thread_ = std::thread([this] { serve(); });
    }
    ~MeshStandIn() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        stop_.notify_all();
        // Wakes the blocking accept at once.
        ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
        thread_.join();
        for (std::thread& t : connections_) t.join();
        // Closed once no thread accepts on it (TSan: a close racing the accept).
        boost::system::error_code ec;
        acceptor_.close(ec);
    }
    std::string url(const std::string& prefix) const {
        return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + prefix;
    }
    // A transfer created two minutes ago.
    void add(const std::string& id, const std::string& status, const std::string& amount) {
        const auto created = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count() -
                             120;
        std::lock_guard lock(mutex_);
        items_.push_back(
            R"({"id":")" + id + R"(","status":")" + status + R"(","destinationAmount":)" + amount +
            R"(,"symbol":"USDC","networkName":"Ethereum","userId":"user-7","destinationAddress":)"
            R"("0x9f8e7d6c5b4a39281706f5e4d3c2b1a098765432","hash":"0x)" +
            id.substr(0, 8) + R"(","createdTimestamp":)" + std::to_string(created) + "}");
    }
    // Answered to the next requests, in order, whatever they ask.
    void script(std::vector<Fault> faults) {
        std::lock_guard lock(mutex_);
        script_.insert(script_.end(), faults.begin(), faults.end());
    }
    std::vector<Request> requests() {
        std::lock_guard lock(mutex_);
        return requests_;
    }
    std::size_t scripted_left() {
        std::lock_guard lock(mutex_);
        return script_.size();
    }

private:
    static std::string envelope(std::string_view status, std::string_view content) {
        return R"({"status":")" + std::string(status) + R"(","message":")" +
               (status == "ok" ? "" : "stand-in says " + std::string(status)) +
               R"(","displayMessage":null,"errorType":null,"errorData":null,"content":)" +
               std::string(content) + "}";
    }
    static std::optional<std::uint64_t> number(const std::map<std::string, std::string>& q,
                                               const std::string& name) {
        const auto it = q.find(name);
        if (it == q.end()) return std::nullopt;
        std::uint64_t v = 0;
        const auto [p, ec] =
            std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
        if (ec != std::errc() || p != it->second.data() + it->second.size()) return std::nullopt;
        return v;
    }

    // Status, body, whether to wait first, Retry-After.
    struct Answer {
        unsigned status = 200;
        std::string body;
        bool slow = false;
        bool retry_after = false;
    };

    Answer handle(const http::request<http::string_body>& req) {
        const std::string target(req.target());
        const std::string path = target.substr(0, target.find('?'));
        Request seen;
        seen.at = Clock::now();
        seen.prefix = path.substr(0, path.find("/api/v1/"));
        if (const auto q = target.find('?'); q != std::string::npos) {
            std::string_view rest = std::string_view(target).substr(q + 1);
            while (!rest.empty()) {
                const std::string_view pair = rest.substr(0, rest.find('&'));
                const auto eq = pair.find('=');
                seen.query[std::string(pair.substr(0, eq))] =
                    eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
                rest.remove_prefix(std::min(rest.size(), pair.size() + 1));
            }
        }
        seen.credentials_ok =
            req["X-Client-Id"] == kClientId && req["X-Client-Secret"] == kClientSecret;
        std::lock_guard lock(mutex_);
        if (!script_.empty()) {
            seen.fault = script_.front();
            script_.pop_front();
        }
        requests_.push_back(seen);
        const std::string null = "null";
        if (seen.fault) {
            switch (*seen.fault) {
                case Fault::kUnauthorized: return {401, envelope("permissionDenied", null)};
                case Fault::kRateLimited:
                    return {429, envelope("tooManyRequest", null), false, true};
                case Fault::kServerError: return {503, envelope("serverFailure", null)};
                case Fault::kFailureEnvelope: return {200, envelope("serverFailure", null)};
                case Fault::kTooManyEnvelope: return {200, envelope("tooManyRequest", null)};
                case Fault::kSlow: break;  // the right answer, late
            }
        }
        if (!seen.credentials_ok) return {401, envelope("permissionDenied", null)};
        if (path != seen.prefix + std::string(kListPath)) return {404, envelope("notFound", null)};
        const auto count = number(seen.query, "Count");
        const auto offset = number(seen.query, "Offset").value_or(0);
        if (!count || *count == 0 || *count > 1000) return {400, envelope("badRequest", null)};
        const std::size_t page = std::min<std::uint64_t>(*count, 2);  // Mesh's cap, here 2
        std::string items = "[";
        for (std::size_t i = offset; i < items_.size() && i < offset + page; ++i) {
            items += (items.size() > 1 ? "," : "") + items_[i];
        }
        const bool more = offset + page < items_.size();
        return {200,
                envelope("ok", R"({"items":)" + items + R"(],"total":)" +
                                   std::to_string(items_.size()) + R"(,"hasMorePages":)" +
                                   (more ? "true" : "false") + "}"),
                seen.fault == Fault::kSlow};
    }

    // One thread per connection: a slow answer holds up no other call.
    void serve() {
        for (;;) {
            boost::system::error_code ec;
            tcp::socket socket(ioc_);
            acceptor_.accept(socket, ec);
            if (ec) {
                std::lock_guard lock(mutex_);
                if (stopping_) return;
                continue;
            }
            connections_.emplace_back(
                [this, s = std::move(socket)]() mutable { answer(std::move(s)); });
        }
    }

    void answer(tcp::socket socket) {
        boost::system::error_code ec;
        timeval timeout{5, 0};
        ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        beast::flat_buffer buffer;
        http::request<http::string_body> req;
        http::read(socket, buffer, req, ec);
        if (ec) return;
        const Answer a = handle(req);
        if (a.slow) {
            // Slower than the consumer's call deadline: the behaviour under
            // test, not synchronisation.
            std::unique_lock lock(mutex_);
            if (stop_.wait_for(lock, std::chrono::seconds(4), [this] { return stopping_; })) {
                return;
            }
        }
        http::response<http::string_body> res{static_cast<http::status>(a.status), 11};
        res.set(http::field::content_type, "application/json");
        if (a.retry_after) res.set(http::field::retry_after, "1");
        res.body() = a.body;
        res.keep_alive(false);
        res.prepare_payload();
        http::write(socket, res, ec);  // a client that gave up is gone: ignored
        socket.shutdown(tcp::socket::shutdown_both, ec);
    }

    asio::io_context ioc_;
    tcp::acceptor acceptor_;
    std::thread thread_;
    std::vector<std::thread> connections_;  // the accept thread's; joined after it
    std::mutex mutex_;
    std::condition_variable stop_;
    bool stopping_ = false;
    std::vector<std::string> items_;
    std::deque<Fault> script_;
    std::vector<Request> requests_;
};

std::map<std::string, std::vector<std::string>> credits(const std::string& bootstrap) {
    return values_by_key(bootstrap, kCreditTopic);
}

double api_calls(std::uint16_t port, const std::string& outcome) {
    return metric_sum(port, "meshhook_consumer_reconcile_api_calls_total",
                      "outcome=\"" + outcome + "\"");
}

ConsumerRun standin_run(const std::string& bootstrap, const std::string& store_url,
                        const std::string& group, const std::string& api_url) {
    ConsumerRun run;
    run.bootstrap = bootstrap;
    run.store_url = store_url;
    run.group_id = group;
    run.extra_args = {"--reconcile-interval-s",          "1",    "--reconcile-stale-after-s", "0",
                      "--reconcile-call-timeout-ms",     "2000", "--reconcile-calls-per-s",   "20",
                      "--reconcile-unauthorized-wait-s", "1"};
    // The stand-in serves the transfers list only; the network list has its
    // own tests (networks_test.cpp) and would send every credit to review here.
    run.extra_args.insert(run.extra_args.end(), {"--network-checks", "off"});
    run.env = {{"MESH_CLIENT_ID", kClientId},
               {"MESH_CLIENT_SECRET", kClientSecret},
               {"MESH_API_URL", api_url}};
    return run;
}

using Fault = MeshStandIn::Fault;

TEST(ReconcileStandIn, EveryFaultIsSurvivedWithBackoffAndThePassCompletesOnceMeshBehaves) {
    BrokerProcess broker;
    MeshStandIn mesh;
    const std::string a = "a2000000-0000-4000-8000-000000000001";
    const std::string b = "b2000000-0000-4000-8000-000000000002";
    const std::string c = "c2000000-0000-4000-8000-000000000003";
    mesh.add(a, "succeeded", "250.000000000000000001");
    mesh.add("d2000000-0000-4000-8000-000000000004", "failed", "3");
    mesh.add(b, "Succeeded", "0.1");
    mesh.add("e2000000-0000-4000-8000-000000000005", "pending", "4");
    mesh.add(c, "SUCCEEDED", "17");
    // Pass 1: a 401. Pass 2: 429, 503, a failure envelope, a slow answer: its
    // four attempts are spent. Pass 3: a tooManyRequest envelope, then pages.
    mesh.script({Fault::kUnauthorized, Fault::kRateLimited, Fault::kServerError,
                 Fault::kFailureEnvelope, Fault::kSlow, Fault::kTooManyEnvelope});
    const auto dir = std::filesystem::temp_directory_path() / unique_name("meshhook-standin");
    std::filesystem::create_directories(dir);
    ConsumerRun run = standin_run(broker.bootstrap(), "sqlite://" + (dir / "m.db").string(),
                                  unique_name("standin-group"), mesh.url(""));
    auto consumer = start_consumer(run);

    ASSERT_TRUE(wait_until([&] { return credits(broker.bootstrap()).size() >= 3; }, 90s))
        << consumer->stderr_text();
    const double ok =
        metric_sum(run.metrics_port, "meshhook_consumer_reconcile_passes_total", "outcome=\"ok\"");
    ASSERT_TRUE(wait_until(
        [&] {
            return metric_sum(run.metrics_port, "meshhook_consumer_reconcile_passes_total",
                              "outcome=\"ok\"") >= ok + 1;
        },
        30s));
    auto store = consumer::open_store(run.store_url);
    TopicReader reader(broker.bootstrap());
    ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader); }, 60s));

    const auto by_transfer = credits(broker.bootstrap());
    ASSERT_EQ(by_transfer.size(), 3U);
    for (const auto& [id, amount] :
         std::map<std::string, std::string>{{a, "250.000000000000000001"}, {b, "0.1"}, {c, "17"}}) {
        ASSERT_EQ(by_transfer.count(id), 1U) << id;
        ASSERT_EQ(by_transfer.at(id).size(), 1U) << id;
        EXPECT_NE(by_transfer.at(id)[0].find(R"("amount":")" + amount + "\""), std::string::npos)
            << by_transfer.at(id)[0];
    }

    EXPECT_TRUE(consumer->running());
    EXPECT_EQ(http_get(run.metrics_port, "/readyz").first, 200);
    const std::uint16_t port = run.metrics_port;
    EXPECT_EQ(api_calls(port, "unauthorized"), 1);
    EXPECT_EQ(api_calls(port, "rate_limited"), 2);  // the 429 and the envelope
    EXPECT_EQ(api_calls(port, "server_error"), 1);
    EXPECT_EQ(api_calls(port, "failure_envelope"), 1);
    EXPECT_EQ(api_calls(port, "transport_error"), 1);  // the slow one
    EXPECT_EQ(metric_sum(port, "meshhook_consumer_reconcile_passes_total", "outcome=\"failed\""),
              2);
    EXPECT_GT(metric_sum(port, "meshhook_consumer_reconcile_last_success_timestamp_seconds"), 0);
    const std::string log = consumer->stderr_text();
    for (const std::string line :
         {"Mesh refused the API credentials (HTTP 401)", "rate_limited (429)",
          "server_error (HTTP 503)", "failure_envelope (envelope status serverFailure",
          "transport_error (no answer within 2000 ms)",
          "rate_limited (envelope status "
          "tooManyRequest"}) {
        EXPECT_NE(log.find(line), std::string::npos) << line << "\n" << log;
    }
    EXPECT_EQ(log.find(kClientSecret), std::string::npos) << "a secret reached the log";

    // Backoff, measured where the requests arrive: Retry-After's second after
    // the 429, then 2 s and 4 s doubling; lower bounds, whatever the load.
    const auto requests = mesh.requests();
    ASSERT_GE(requests.size(), 9U);
    auto gap = [&](std::size_t i) { return requests[i + 1].at - requests[i].at; };
    EXPECT_EQ(requests[1].fault, Fault::kRateLimited);
    EXPECT_GE(gap(1), 1s);
    EXPECT_GE(gap(2), 2s);
    EXPECT_GE(gap(3), 4s);
    EXPECT_GE(gap(4), 2s);  // the deadline of the slow call
    // Every request carried both credentials; a pass pages Count=100 with
    // Offset 0, 2, 4 (the stand-in's pages hold two) and stops there.
    std::vector<std::string> offsets;
    for (std::size_t i = 0; i < requests.size(); ++i) {
        EXPECT_TRUE(requests[i].credentials_ok) << i;
        if (requests[i].fault || requests[i].query.contains("Id")) continue;
        EXPECT_EQ(requests[i].query.at("Count"), "100");
        offsets.push_back(requests[i].query.at("Offset"));
    }
    ASSERT_GE(offsets.size(), 3U);
    EXPECT_EQ(std::vector<std::string>(offsets.begin(), offsets.begin() + 3),
              (std::vector<std::string>{"0", "2", "4"}));
    std::filesystem::remove_all(dir);
}

// Two consumers on one PostgreSQL store: one reconciler between them, the
// relay lock's holder; the other takes over when the first is killed.
TEST(ReconcileStandIn, TwoConsumersOnPostgresRunOneReconcilerAndTheSecondTakesOver) {
    BrokerProcess broker;
    PostgresServer postgres;
    MeshStandIn mesh;
    const std::string store_url = postgres.create_database("reconcile_two");
    const std::string group = unique_name("standin-two");
    ConsumerRun run_a = standin_run(broker.bootstrap(), store_url, group, mesh.url("/a"));
    ConsumerRun run_b = standin_run(broker.bootstrap(), store_url, group, mesh.url("/b"));
    auto from = [&](const std::string& prefix) {
        std::size_t n = 0;
        for (const auto& r : mesh.requests())
            if (r.prefix == prefix) ++n;
        return n;
    };
    auto first = start_consumer(run_a);
    ASSERT_TRUE(wait_until([&] { return from("/a") >= 1; }, 30s)) << first->stderr_text();
    auto second = start_consumer(run_b);
    // A's passes go on, once a second; B, ready, never calls.
    const std::size_t before = from("/a");
    ASSERT_TRUE(wait_until([&] { return from("/a") >= before + 5; }, 30s));
    EXPECT_EQ(from("/b"), 0U) << second->stderr_text();

    first->signal(SIGKILL);
    first->wait(10s);
    const std::string late = "f2000000-0000-4000-8000-000000000006";
    mesh.add(late, "succeeded", "42.42");
    ASSERT_TRUE(wait_until([&] { return credits(broker.bootstrap()).count(late) == 1; }, 60s))
        << second->stderr_text();
    EXPECT_NE(second->stderr_text().find("reconciliation: active"), std::string::npos);
    // Never both: the requests are A's, then B's only.
    const auto requests = mesh.requests();
    std::size_t switches = 0;
    for (std::size_t i = 1; i < requests.size(); ++i) {
        if (requests[i].prefix != requests[i - 1].prefix) ++switches;
    }
    EXPECT_EQ(switches, 1U);
    EXPECT_EQ(requests.front().prefix, "/a");
    EXPECT_EQ(requests.back().prefix, "/b");
    const auto by_transfer = credits(broker.bootstrap());
    EXPECT_EQ(by_transfer.at(late).size(), 1U);
}

}  // namespace
}  // namespace meshhook::testing
