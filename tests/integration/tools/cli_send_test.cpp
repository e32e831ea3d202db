// `meshhook send` against a scripted HTTP server over a real socket: what it
// sends, in which order, and how it retries.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "common/signature.hpp"
#include "common/transfer_event.hpp"
#include "tests/integration/tools/cli_harness.hpp"
#include "tests/support/process.hpp"
#include "tools/scenario.hpp"

namespace meshhook::testing {
namespace {

// An HTTP/1.1 server answering each POST with the next scripted status (200
// once the script is used up), recording every request. One connection at
// a time is enough: tests that need order run with --concurrency 1.
class ScriptedServer {
public:
    struct Request {
        std::string signature;
        std::string body;
    };

    explicit ScriptedServer(std::deque<int> script) : script_(std::move(script)) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(fd_, 16) != 0) {
            throw std::runtime_error("ScriptedServer: bind/listen failed");
        }
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~ScriptedServer() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }

    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(port_) + "/webhooks/mesh";
    }
    std::vector<Request> requests() {
        std::lock_guard lock(mutex_);
        return requests_;
    }

private:
    bool wait_readable(int fd) {
        while (!stop_) {
            pollfd pfd{fd, POLLIN, 0};
            if (::poll(&pfd, 1, 50) > 0) return true;
        }
        return false;
    }

    void serve() {
        while (wait_readable(fd_)) {
            const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c < 0) continue;
            handle(c);
            ::close(c);
        }
    }

    void handle(int c) {
        std::string buf;
        for (;;) {
            auto end = buf.find("\r\n\r\n");
            while (end == std::string::npos) {
                if (!wait_readable(c)) return;
                char tmp[4096];
                const ssize_t n = ::read(c, tmp, sizeof tmp);
                if (n <= 0) return;
                buf.append(tmp, static_cast<std::size_t>(n));
                end = buf.find("\r\n\r\n");
            }
            const std::string head = buf.substr(0, end);
            std::size_t length = 0;
            std::string signature;
            std::istringstream lines(head);
            for (std::string line; std::getline(lines, line);) {
                if (!line.empty() && line.back() == '\r') line.pop_back();
                const auto colon = line.find(':');
                if (colon == std::string::npos) continue;
                std::string name = line.substr(0, colon);
                for (auto& ch : name)
                    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                const std::string value = line.substr(line.find_first_not_of(' ', colon + 1));
                if (name == "content-length") length = std::stoul(value);
                if (name == "x-mesh-signature-256") signature = value;
            }
            while (buf.size() < end + 4 + length) {
                if (!wait_readable(c)) return;
                char tmp[4096];
                const ssize_t n = ::read(c, tmp, sizeof tmp);
                if (n <= 0) return;
                buf.append(tmp, static_cast<std::size_t>(n));
            }
            int status = 200;
            {
                std::lock_guard lock(mutex_);
                requests_.push_back({signature, buf.substr(end + 4, length)});
                if (!script_.empty()) {
                    status = script_.front();
                    script_.pop_front();
                }
            }
            buf.erase(0, end + 4 + length);
            std::string response =
                "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: 2\r\n";
            if (status == 503) response += "Retry-After: 0\r\n";
            response += "\r\nok";
            if (::send(c, response.data(), response.size(), MSG_NOSIGNAL) < 0) return;
        }
    }

    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::thread thread_;
    std::mutex mutex_;
    std::deque<int> script_;
    std::vector<Request> requests_;
};

const std::string kSecret = "whsec_test_fixture_secret";

std::int64_t now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// True when `body` is fixture `name` with only its SentTimestamp changed, to a
// time in [from_s, to_s]: what `meshhook send` does to every attempt, as Mesh does.
::testing::AssertionResult is_restamped(const std::string& body, const std::string& name,
                                        std::int64_t from_s, std::int64_t to_s) {
    common::TransferEventParser parser;
    const auto parsed = parser.parse(body);
    if (!parsed.ok() || !parsed.event.sent_timestamp.has_value()) {
        return ::testing::AssertionFailure() << "no SentTimestamp in " << body;
    }
    const auto sent = parsed.event.sent_timestamp_value;
    if (sent < from_s || sent > to_s) {
        return ::testing::AssertionFailure()
               << "SentTimestamp " << sent << " outside [" << from_s << ", " << to_s << "]";
    }
    const std::chrono::system_clock::time_point at{std::chrono::seconds(sent)};
    if (common::restamp_sent_timestamp(fixture(name), at) != body) {
        return ::testing::AssertionFailure() << "not " << name << " restamped: " << body;
    }
    return ::testing::AssertionSuccess();
}

TEST(CliSend, DemoScenarioSendsFixturesOneToFiveInOrderRestampedAndSignedLikeMesh) {
    ScriptedServer server({});
    const auto before = now_s();
    const auto r =
        run_meshhook({"send", "--url", server.url(), "--secret", kSecret, "--scenario", "demo"});
    const auto after = now_s();
    EXPECT_EQ(r.code, 0) << r.err;
    const auto requests = server.requests();
    ASSERT_EQ(requests.size(), 5U);
    const std::vector<std::string> names = {"01-pending.json", "02-processing.json",
                                            "03-succeeded.json", "04-succeeded-retry.json",
                                            "05-failed-other-transfer.json"};
    for (std::size_t i = 0; i < names.size(); ++i) {
        EXPECT_TRUE(is_restamped(requests[i].body, names[i], before, after));
        EXPECT_EQ(requests[i].signature, common::sign(kSecret, requests[i].body)) << names[i];
    }
    EXPECT_NE(r.out.find("deliveries 5: 5 delivered (200), 0 given up"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("latency ms p50"), std::string::npos) << r.out;
}

TEST(CliSend, ExactSendsTheStoredBytesWithTheirDocumentedSignature) {
    ScriptedServer server({});
    const auto r = run_meshhook({"send", "--url", server.url(), "--secret", kSecret, "--exact",
                                 fixture_path("03-succeeded.json").string()});
    EXPECT_EQ(r.code, 0) << r.err;
    const auto requests = server.requests();
    ASSERT_EQ(requests.size(), 1U);
    EXPECT_EQ(requests[0].body, fixture("03-succeeded.json"));
    // The documented value for 03, not just self-consistency.
    EXPECT_EQ(requests[0].signature, "+USHqMn1BKTQbXdliClRAc/TzIa8hxuzELNeZzBGd38=");
}

TEST(CliSend, RetriesNon200AnswersWithTheSameEventRestampedUntilAccepted) {
    ScriptedServer server({503, 500, 200});
    const auto before = now_s();
    const auto r = run_meshhook({"send", "--url", server.url(), "--secret", kSecret, "--backoff-ms",
                                 "10", fixture_path("03-succeeded.json").string()});
    const auto after = now_s();
    EXPECT_EQ(r.code, 0) << r.err;
    const auto requests = server.requests();
    ASSERT_EQ(requests.size(), 3U);
    for (const auto& req : requests) {
        EXPECT_TRUE(is_restamped(req.body, "03-succeeded.json", before, after));
        EXPECT_EQ(req.signature, common::sign(kSecret, req.body));
    }
    EXPECT_NE(r.out.find("200 x1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("500 x1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("503 x1"), std::string::npos) << r.out;
}

TEST(CliSend, GivesUpAfterMaxAttemptsWithOneLineAndExitOne) {
    ScriptedServer server({500, 500, 500, 500});
    const auto r =
        run_meshhook({"send", "--url", server.url(), "--secret", kSecret, "--backoff-ms", "1",
                      "--max-attempts", "3", fixture_path("01-pending.json").string()});
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(server.requests().size(), 3U);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("1 of 1 deliveries were never answered 200"), std::string::npos) << r.err;
}

TEST(CliSend, DirectorySendsItsJsonFilesByNameKeepingEachTransfersOrder) {
    ScriptedServer server({});
    const auto before = now_s();
    const auto r =
        run_meshhook({"send", "--url", server.url(), "--secret", kSecret, "--concurrency", "3",
                      fixture_path("01-pending.json").parent_path().string()});
    const auto after = now_s();
    EXPECT_EQ(r.code, 0) << r.err;
    const auto requests = server.requests();
    ASSERT_EQ(requests.size(), 8U);
    std::vector<std::string> order;
    for (const auto& req : requests) {
        for (const std::string name : {"01-pending.json", "02-processing.json", "03-succeeded.json",
                                       "04-succeeded-retry.json"}) {
            if (is_restamped(req.body, name, before, after)) order.push_back(name);
        }
    }
    EXPECT_EQ(order, (std::vector<std::string>{"01-pending.json", "02-processing.json",
                                               "03-succeeded.json", "04-succeeded-retry.json"}));
}

TEST(CliSend, RandomScenarioSendsValidSignedBodiesInTransferOrder) {
    ScriptedServer server({});
    const auto r =
        run_meshhook({"send", "--url", server.url(), "--secret", kSecret, "--scenario", "random",
                      "--transfers", "40", "--seed", "9", "--concurrency", "1"});
    EXPECT_EQ(r.code, 0) << r.err;
    const auto requests = server.requests();
    ASSERT_GT(requests.size(), 40U);
    common::TransferEventParser parser;
    std::map<std::string, int> first_seen_rank;
    for (const auto& req : requests) {
        EXPECT_EQ(req.signature, common::sign(kSecret, req.body));
        const auto parsed = parser.parse(req.body);
        ASSERT_TRUE(parsed.ok()) << req.body;
        first_seen_rank.emplace(std::string(parsed.event.transfer_id.value), 0);
    }
    EXPECT_EQ(first_seen_rank.size(), 40U);
    EXPECT_NE(r.out.find("scenario random: 40 transfers"), std::string::npos) << r.out;
}

TEST(CliSend, RateSpacesDeliveriesEvenly) {
    ScriptedServer server({});
    const auto start = std::chrono::steady_clock::now();
    const auto r = run_meshhook(
        {"send", "--url", server.url(), "--secret", kSecret, "--scenario", "demo", "--rate", "10"});
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(server.requests().size(), 5U);
    // Five deliveries at 10/s: four gaps of 100 ms at least.
    EXPECT_GE(elapsed, 400ms);
}

TEST(CliSend, WrongSecretAnswered401IsOneLineNamingTheSecret) {
    ScriptedServer server({401});
    const auto r = run_meshhook({"send", "--url", server.url(), "--secret", "whsec_wrong",
                                 "--max-attempts", "1", fixture_path("01-pending.json").string()});
    EXPECT_EQ(r.code, 1);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("check --secret"), std::string::npos) << r.err;
}

TEST(CliSend, UnreadableFileIsOneLineAndNothingIsSent) {
    ScriptedServer server({});
    const auto r = run_meshhook({"send", "--url", server.url(), "--secret", kSecret,
                                 fixture_path("01-pending.json").string(), "/nonexistent/x.json"});
    EXPECT_EQ(r.code, 1);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("cannot read /nonexistent/x.json"), std::string::npos) << r.err;
    EXPECT_TRUE(server.requests().empty());
}

TEST(CliSend, UnreachableUrlIsOneLineAndExitOne) {
    const auto port = free_port();
    const auto r =
        run_meshhook({"send", "--url", "http://127.0.0.1:" + std::to_string(port) + "/", "--secret",
                      kSecret, "--max-attempts", "2", "--backoff-ms", "1", "--scenario", "demo"});
    EXPECT_EQ(r.code, 1);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("cannot connect"), std::string::npos) << r.err;
}

TEST(CliSend, BadScenarioAndHttpsUrlAreConfigErrors) {
    auto r = run_meshhook({"send", "--secret", kSecret, "--scenario", "chaos"});
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("--scenario"), std::string::npos) << r.err;
    r = run_meshhook({"send", "--secret", kSecret, "--url", "https://x/", "--scenario", "demo"});
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("--url"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace meshhook::testing

namespace meshhook::testing {
namespace {

// GET over a real socket with Mesh's credential headers; the body.
std::string mesh_list(std::uint16_t port, const std::string& target) {
    const int fd = connect_loopback(port);
    send_all(fd, "GET " + target +
                     " HTTP/1.1\r\nHost: x\r\nX-Client-Id: cid\r\nX-Client-Secret: cs\r\n"
                     "Connection: close\r\n\r\n");
    std::string response;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) {
        response.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    const auto body = response.find("\r\n\r\n");
    return body == std::string::npos ? response : response.substr(body + 4);
}

TEST(CliMesh, DrivesAScenarioSignedLikeMeshDropsAFractionAndItsListKnowsEveryTransfer) {
    ScriptedServer server({503});  // the first delivery is retried, same bytes
    Process mesh({binary_path("meshhook").string(), "mesh", "--client-id", "cid", "--client-secret",
                  "cs", "--webhook-url", server.url(), "--webhook-secret", kSecret, "--scenario",
                  "random", "--transfers", "30", "--seed", "7", "--drop", "0.2"});
    const auto listen = mesh.read_line(10s);
    ASSERT_TRUE(listen && listen->starts_with("listen=")) << mesh.stderr_text();
    const auto port = static_cast<std::uint16_t>(std::stoi(listen->substr(listen->rfind(':') + 1)));
    const auto done = mesh.read_line(60s);
    ASSERT_TRUE(done && done->starts_with("webhooks=")) << mesh.stderr_text();
    const std::size_t dropped = std::stoul(done->substr(done->rfind("dropped=") + 8));

    const auto requests = server.requests();
    // Every delivery that was not dropped arrived once (the scenario's own
    // duplicates included), signed over its exact bytes; the 503 made the
    // first arrive twice, the same bytes.
    const std::size_t total = tools::random_scenario(30, 7).deliveries;
    const auto sent_at = done->find("deliveries ");
    ASSERT_NE(sent_at, std::string::npos) << *done;
    const std::size_t sent = std::stoul(done->substr(sent_at + 11));
    EXPECT_NE(done->find(std::to_string(sent) + " delivered (200)"), std::string::npos) << *done;
    EXPECT_EQ(sent + dropped, total) << *done;
    EXPECT_EQ(requests.size(), sent + 1);
    ASSERT_GE(requests.size(), 2U);
    EXPECT_EQ(requests[0].body, requests[1].body);
    // About a fifth dropped (seeded: the same every run).
    EXPECT_GT(dropped, total / 10) << *done;
    EXPECT_LT(dropped, total * 3 / 10) << *done;
    std::map<std::string, int> best_rank;  // TransferId -> highest rank delivered
    common::TransferEventParser parser;
    for (const auto& r : requests) EXPECT_EQ(r.signature, common::sign(kSecret, r.body));

    // The list knows all 30 transfers, dropped webhooks or not, each at the
    // final status Mesh's webhooks would have ended on.
    const std::string list = mesh_list(port, "/api/v1/transfers/managed/mesh?Count=1000&Offset=0");
    EXPECT_NE(list.find(R"("total":30)"), std::string::npos) << list;
    for (const auto& r : requests) {
        const auto parsed = parser.parse(r.body);
        ASSERT_TRUE(parsed.ok());
        const std::string id(parsed.event.transfer_id.value);
        const int rank = common::status_rank(parsed.event.status);
        best_rank[id] = std::max(best_rank[id], rank);
    }
    for (const auto& [id, rank] : best_rank) {
        const std::string one =
            mesh_list(port, "/api/v1/transfers/managed/mesh?Id=" + id + "&Count=10&Offset=0");
        EXPECT_NE(one.find(R"("total":1)"), std::string::npos) << one;
        // Mesh's status is at least as far as any delivered one.
        const auto status_at = one.find(R"("status":")", one.find(R"("items")"));
        ASSERT_NE(status_at, std::string::npos) << one;
        const std::string status =
            one.substr(status_at + 10, one.find('"', status_at + 10) - status_at - 10);
        EXPECT_GE(common::status_rank(common::parse_status(status)), rank) << id << " " << one;
    }
    mesh.close_stdin();
    EXPECT_EQ(mesh.wait(10s), 0);
}

}  // namespace
}  // namespace meshhook::testing
