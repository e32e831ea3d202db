// meshhook-ingest bounded under attack (issue 15): what one connection can
// make the receiver hold, and what it answers from the header alone. Real
// sockets against the receiver as a process, `meshhook broker` for Kafka.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/hostile/hostile_support.hpp"
#include "tests/support/process.hpp"

namespace meshhook {
namespace {

// The per-connection budget of ingest/README.md (16 KiB) is the release cost;
// sanitizers add redzones and shadow memory to every allocation (measured
// here: ASan 25 KiB a connection, TSan 66 KiB), so their builds check looser
// bounds that still catch a buffer grown towards the 64 KiB body limit
// (ASan) or far beyond it (TSan).
#if defined(__SANITIZE_ADDRESS__)
constexpr double kPerConnectionBoundKib = 48.0;
#elif defined(__SANITIZE_THREAD__)
constexpr double kPerConnectionBoundKib = 160.0;
#else
constexpr double kPerConnectionBoundKib = 16.0;
#endif

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::BrokerProcess;
using namespace testing::hostile;

// Long, so that only the new header-time answers and buffer limit can explain
// a quick answer: the previous receiver waited for the body (or the end of a
// chunk line) until this timeout.
constexpr auto kLongReadTimeout = "30000";

std::string chunked_head(const std::vector<std::string>& extra = {}) {
    std::string out =
        "POST /webhooks/mesh HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n";
    for (const auto& line : extra) out.append(line).append("\r\n");
    return out.append("\r\n");
}

std::string hex(std::size_t n) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%zx", n);
    return buf;
}

// A signed body sent as one chunk with `extension` after its size and
// `trailer` lines after the last chunk.
std::string signed_chunked(const std::string& body, const std::string& extension,
                           const std::string& trailer) {
    return chunked_head({signature_line(body)}) + hex(body.size()) + extension + "\r\n" + body +
           "\r\n0\r\n" + trailer + "\r\n";
}

// 64 MiB over four connections at once, each a chunk-size line or a trailer
// section that never ends. The previous receiver buffered all of it (Beast
// bounds neither) until the read timeout; now each connection is cut off at
// the session's buffer limit with a 400, and the process's resident memory
// stays within a few MiB of where it started.
TEST(BoundedIngest, EndlessChunkLinesAndTrailersGet400AndResidentMemoryStaysFlat) {
    BrokerProcess broker;
    Ingest ingest(broker.bootstrap(), {"--read-timeout-ms", kLongReadTimeout});
    const auto rss_before = ingest.rss_kib();

    constexpr std::size_t kPerConnection = std::size_t{16} * 1024 * 1024;
    const std::string flood(kPerConnection, 'a');
    const std::string sig = "X-Mesh-Signature-256: c2lnbmF0dXJl";
    const std::vector<std::string> heads = {
        chunked_head({sig}) + "1;",                           // an extension that never ends
        chunked_head({sig}) + "1;ext=",                       // the same with a value
        chunked_head({sig}) + "1\r\n{\r\n0\r\nX-Trailer: ",   // a trailer field that never ends
        chunked_head({sig}) + "1\r\n{\r\n0\r\nX-T: 1\r\nX-",  // a trailer that never ends
    };
    std::vector<unsigned> statuses(heads.size(), 0);
    std::vector<std::thread> attackers;
    const auto started = Clock::now();
    for (std::size_t i = 0; i < heads.size(); ++i) {
        attackers.emplace_back([&, i] {
            RawSocket socket(ingest.port());
            const auto answers = send_and_read(socket, heads[i] + flood, 1, 60s);
            if (!answers.empty()) statuses[i] = answers.front().status;
        });
    }
    for (auto& t : attackers) t.join();
    const auto elapsed = Clock::now() - started;

    const auto peak = ingest.peak_rss_kib();
    const auto growth = peak > rss_before ? peak - rss_before : 0;
    std::cout << "[ figures  ] RSS before " << rss_before << " KiB, peak after 64 MiB of endless "
              << "chunk lines and trailers " << peak << " KiB (+" << growth << " KiB) in "
              << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms"
              << std::endl;
    for (std::size_t i = 0; i < heads.size(); ++i) {
        EXPECT_EQ(statuses[i], 400u) << "attack " << i;
    }
    // The buffer limit is 32 KiB per connection; 8 MiB is for allocator and
    // thread-stack noise, far below one connection's 16 MiB.
    EXPECT_LE(growth, 8u * 1024) << "resident memory grew with the attack";
    EXPECT_LT(elapsed, 20s) << "cut off at the read timeout, not at the buffer limit";

    // Still serving.
    const auto event = unique_event();
    RawSocket good(ingest.port());
    ASSERT_TRUE(good.send_all(signed_post(event.body)));
    const auto res = good.read_response(20s);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200u) << res->body;
}

TEST(BoundedIngest, ChunkExtensionsBeyondAFewBytesAndTrailersGet400AndNothingIsPublished) {
    BrokerProcess broker;
    Ingest ingest(broker.bootstrap(), {"--read-timeout-ms", kLongReadTimeout});
    const auto send = [&](const std::string& bytes) {
        RawSocket socket(ingest.port());
        const auto answers = send_and_read(socket, bytes, 1, 20s);
        return answers.empty() ? 0u : answers.front().status;
    };
    EXPECT_EQ(send(signed_chunked(unique_event().body, ";" + std::string(20, 'x'), "")), 400u);
    EXPECT_EQ(send(signed_chunked(unique_event().body, "", "X-Checksum: 1\r\n")), 400u);
    EXPECT_EQ(record_count(broker.bootstrap(), kTopic), 0);
    EXPECT_EQ(record_count(broker.bootstrap(), kDlqTopic), 0);
    // A short extension and no trailer: an ordinary chunked delivery.
    EXPECT_EQ(send(signed_chunked(unique_event().body, ";a=b", "")), 200u);
    EXPECT_EQ(send(signed_chunked(unique_event().body, "", "")), 200u);
    EXPECT_EQ(record_count(broker.bootstrap(), kTopic), 2);
}

// Sends only the header of a request that announces a 1000-byte body, and
// expects the answer without sending a byte of that body.
Response answer_to_head(std::uint16_t port, const std::string& head) {
    RawSocket socket(port);
    EXPECT_TRUE(socket.send_all(head));
    auto res = socket.read_response(10s);
    EXPECT_TRUE(res) << "no answer before the body:\n" << head;
    return res.value_or(Response{});
}

std::string head(std::string_view method, std::string_view path, std::size_t length,
                 const std::vector<std::string>& extra) {
    std::string out(method);
    out.append(" ").append(path).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (const auto& line : extra) out.append(line).append("\r\n");
    return out.append("Content-Length: ").append(std::to_string(length)).append("\r\n\r\n");
}

TEST(BoundedIngest, RefusalsDecidedByTheHeaderAreAnsweredBeforeTheBodyIsSent) {
    BrokerProcess broker;
    Ingest ingest(broker.bootstrap(), {"--read-timeout-ms", kLongReadTimeout});
    const std::string sig = "X-Mesh-Signature-256: c2lnbmF0dXJl";

    auto res = answer_to_head(ingest.port(), head("POST", "/nope", 1000, {sig}));
    EXPECT_EQ(res.status, 404u);
    EXPECT_TRUE(res.closes()) << "the unread body must not be parsed as the next request";
    res = answer_to_head(ingest.port(), head("PUT", "/webhooks/mesh", 1000, {sig}));
    EXPECT_EQ(res.status, 405u);
    EXPECT_TRUE(res.closes());
    res = answer_to_head(ingest.port(), head("POST", "/webhooks/mesh", 1000, {}));
    EXPECT_EQ(res.status, 401u);
    EXPECT_NE(res.body.find("missing_header"), std::string::npos) << res.body;
    EXPECT_TRUE(res.closes());
    res = answer_to_head(ingest.port(), head("POST", "/webhooks/mesh", 10'000'000, {sig}));
    EXPECT_EQ(res.status, 413u);
    EXPECT_TRUE(res.closes());
    EXPECT_EQ(record_count(broker.bootstrap(), kTopic), 0);
    EXPECT_EQ(record_count(broker.bootstrap(), kDlqTopic), 0);
}

// Behind a proxy that adds an X-Forwarded-For field of its own instead of
// appending, the client's forged first field must not pass the allow-list;
// and the 403 comes from the header, before the body.
TEST(BoundedIngest, EveryForwardedForFieldIsReadAndTheAllowListAnswersBeforeTheBody) {
    BrokerProcess broker;
    Ingest ingest(broker.bootstrap(), {"--read-timeout-ms", kLongReadTimeout, "--allow-ips",
                                       "20.22.113.37", "--trusted-proxies", "127.0.0.1/32"});
    const std::string sig = "X-Mesh-Signature-256: c2lnbmF0dXJl";
    const auto res = answer_to_head(ingest.port(), head("POST", "/webhooks/mesh", 1000,
                                                        {sig, "X-Forwarded-For: 20.22.113.37",
                                                         "X-Forwarded-For: 198.51.100.7"}));
    EXPECT_EQ(res.status, 403u);
    EXPECT_TRUE(res.closes());

    // The proxy's own field names Mesh: allowed.
    const auto event = unique_event();
    RawSocket socket(ingest.port());
    ASSERT_TRUE(socket.send_all(signed_post(
        event.body, {"X-Forwarded-For: 198.51.100.7", "X-Forwarded-For: 20.22.113.37"})));
    const auto ok = socket.read_response(20s);
    ASSERT_TRUE(ok);
    EXPECT_EQ(ok->status, 200u) << ok->body;
    EXPECT_EQ(record_count(broker.bootstrap(), kTopic), 1);
}

// Without a trusted proxy the TCP peer is the client: one outside the
// allow-list is closed at accept, before it can send a byte, while the
// admin listener (probes) is not behind the list.
TEST(BoundedIngest, WithoutATrustedProxyTheAllowListIsEnforcedAtAccept) {
    BrokerProcess broker;
    Ingest ingest(broker.bootstrap(),
                  {"--allow-ips", "20.22.113.37", "--first-byte-timeout-ms", "30000"});
    RawSocket refused(ingest.port());
    EXPECT_TRUE(refused.wait_closed(5s)) << "127.0.0.1 is not on the list: closed at accept";
    EXPECT_TRUE(refused.pending().empty()) << "no answer, nothing read";
    RawSocket probe(ingest.admin_port());
    ASSERT_TRUE(probe.send_all(get("/readyz", true)));
    const auto ready = probe.read_response(10s);
    ASSERT_TRUE(ready);
    EXPECT_EQ(ready->status, 200u);
}

// A connection that sends nothing is closed after --first-byte-timeout-ms,
// not after the (long) idle timeout; once it has been served, the idle
// timeout governs the wait for its next request.
TEST(BoundedIngest, ANewConnectionThatSendsNothingIsClosedAtTheFirstByteDeadline) {
    BrokerProcess broker;
    Ingest ingest(broker.bootstrap(),
                  {"--first-byte-timeout-ms", "500", "--idle-timeout-ms", "60000"});
    RawSocket silent(ingest.port());
    const auto started = Clock::now();
    EXPECT_TRUE(silent.wait_closed(10s)) << "still open long after the first-byte deadline";
    EXPECT_GE(Clock::now() - started, 450ms);
    EXPECT_TRUE(silent.pending().empty()) << "closed without an answer";

    RawSocket served(ingest.port());
    ASSERT_TRUE(served.send_all(get("/webhooks/mesh")));
    const auto res = served.read_response(10s);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 405u);
    EXPECT_FALSE(served.wait_closed(1500ms))
        << "a served keep-alive connection waits the idle timeout";
}

TEST(BoundedIngest, ConnectionsBeyondThePerSourceCapAreClosedAtAccept) {
    BrokerProcess broker;
    Ingest ingest(broker.bootstrap(),
                  {"--max-connections-per-source", "3", "--first-byte-timeout-ms", "30000"});
    const auto served = [&](RawSocket& s) {
        if (!s.send_all(get("/webhooks/mesh"))) return false;
        const auto res = s.read_response(5s);
        return res && res->status == 405;
    };
    std::vector<std::unique_ptr<RawSocket>> held;
    for (int i = 0; i < 3; ++i) {
        held.push_back(std::make_unique<RawSocket>(ingest.port()));
        ASSERT_TRUE(served(*held.back())) << "connection " << i;
    }
    RawSocket over(ingest.port());
    EXPECT_TRUE(over.wait_closed(10s)) << "a fourth connection from 127.0.0.1 was kept";
    EXPECT_TRUE(over.pending().empty());

    held.pop_back();  // a slot frees when a connection closes
    EXPECT_TRUE(testing::wait_until(
        [&] {
            RawSocket again(ingest.port());
            return served(again);
        },
        10s));
}

// The per-connection figure of the memory budget (ingest/README.md): 500
// keep-alive connections, each after one accepted delivery (its buffer and
// parser used once), held idle; resident memory per connection stays small
// (measured ~10 KiB; the budget counts 16 KiB plus the 32 KiB unparsed-input
// limit a hostile client can fill).
TEST(BoundedIngest, AnIdleKeepAliveConnectionCostsAFewKibOfResidentMemory) {
    constexpr std::size_t kConnections = 500;
    BrokerProcess broker;
    Ingest ingest(broker.bootstrap(), {"--max-connections-per-source", "1000"});
    // Warm-up: thread arenas, the producer's buffers and the first parse.
    {
        RawSocket warm(ingest.port());
        for (int i = 0; i < 20; ++i) {
            ASSERT_TRUE(warm.send_all(signed_post(unique_event().body)));
            ASSERT_TRUE(warm.read_response(20s));
        }
    }
    const auto rss_before = ingest.rss_kib();
    std::vector<std::unique_ptr<RawSocket>> held;
    for (std::size_t i = 0; i < kConnections; ++i) {
        held.push_back(std::make_unique<RawSocket>(ingest.port()));
        ASSERT_TRUE(held.back()->send_all(signed_post(unique_event().body)));
        const auto res = held.back()->read_response(20s);
        ASSERT_TRUE(res) << "connection " << i;
        ASSERT_EQ(res->status, 200u) << res->body;
    }
    const auto rss_after = ingest.rss_kib();
    const auto per_connection =
        static_cast<double>(rss_after > rss_before ? rss_after - rss_before : 0) /
        static_cast<double>(kConnections);
    std::cout << "[ figures  ] RSS " << rss_before << " KiB before, " << rss_after << " KiB with "
              << kConnections << " idle keep-alive connections: " << per_connection << " KiB each"
              << std::endl;
    EXPECT_LE(per_connection, kPerConnectionBoundKib)
        << "the budget in ingest/README.md counts 16 KiB (release build)";
}

// During a Kafka outage each webhook is answered 503 at the ack timeout, and
// its connection is released then: the delivery report (which comes only at
// --kafka-message-timeout-ms) must not keep the session, or closed sockets
// would fill --max-connections for a minute.
TEST(BoundedIngest, AfterA503TheConnectionIsReleasedAtOnceNotAtTheDeliveryReport) {
    BrokerProcess broker;
    Ingest ingest(broker.bootstrap(), {"--max-connections", "2", "--ack-timeout-ms", "300",
                                       "--kafka-message-timeout-ms", "60000"});
    for (int id = 1; id <= broker.broker_count(); ++id) broker.broker_down(id);
    for (int i = 0; i < 5; ++i) {
        const bool answered = testing::wait_until(
            [&] {
                RawSocket s(ingest.port());
                if (!s.send_all(signed_post(unique_event().body))) return false;
                const auto res = s.read_response(5s);
                return res && res->status == 503;
            },
            15s);
        ASSERT_TRUE(answered) << "delivery " << i << " found no free connection slot";
    }
}

// A flood of rejected requests writes a few warning lines a second and one
// summary line with the count of the rest, not one line each.
TEST(BoundedIngest, AFloodOfRejectedRequestsIsLoggedAsAFewLinesAndASummary) {
    BrokerProcess broker;
    Ingest ingest(broker.bootstrap(), {});
    constexpr std::size_t kFlood = 300;
    std::string flood;
    for (std::size_t i = 0; i < kFlood; ++i) flood += get("/webhooks/mesh");  // 405 each
    RawSocket socket(ingest.port());
    const auto answers = send_and_read(socket, std::move(flood), kFlood, 60s);
    ASSERT_EQ(answers.size(), kFlood);

    const auto count_lines = [](const std::string& text, std::string_view needle) {
        std::size_t n = 0;
        for (auto pos = text.find(needle); pos != std::string::npos;
             pos = text.find(needle, pos + 1)) {
            ++n;
        }
        return n;
    };
    // Every rejection is either a line of its own or counted in a summary;
    // the summaries come within a second of the flood's end.
    const auto accounted = [&](std::size_t& written, std::size_t& summed) {
        const auto err = ingest.process().stderr_text();
        written = count_lines(err, "rejected request status=405");
        summed = 0;
        for (auto pos = err.find("suppressed "); pos != std::string::npos;
             pos = err.find("suppressed ", pos + 1)) {
            const auto end = err.find('\n', pos);
            const auto line = err.substr(pos, end - pos);
            if (line.find("status=405") != std::string::npos) {
                summed += std::stoul(line.substr(std::string_view("suppressed ").size()));
            }
        }
        return written + summed == kFlood;
    };
    std::size_t written = 0;
    std::size_t summed = 0;
    EXPECT_TRUE(testing::wait_until([&] { return accounted(written, summed); }, 10s))
        << written << " lines + " << summed << " in summaries != " << kFlood;
    // 10 a second; the flood may straddle a few seconds on a loaded machine.
    EXPECT_LE(written, 40u);
    EXPECT_GT(summed, 0u);
}

}  // namespace
}  // namespace meshhook
