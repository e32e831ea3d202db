// meshhook-ingest as a process, over real sockets, against `meshhook broker`
// (Kafka protocol over TCP). What Mesh sees (status codes, timing) and what
// lands in Kafka (exact bytes, keys, headers) are both checked.
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/signature.hpp"
#include "tests/integration/ingest/ingest_harness.hpp"
#include "tests/support/process.hpp"

namespace meshhook {
namespace {

using namespace std::chrono_literals;
using testing::BrokerProcess;
using testing::fixture;
using testing::wait_until;
using namespace testing::ingest;

constexpr const char* kTopic = "mesh.transfer-events";
constexpr const char* kDlq = "mesh.transfer-events.dlq";

struct FixtureCase {
    std::string file;
    std::string dlq_reason;  // empty: a usable event
};

const std::vector<FixtureCase>& fixture_cases() {
    static const std::vector<FixtureCase> cases = {
        {"01-pending.json", ""},
        {"02-processing.json", ""},
        {"03-succeeded.json", ""},
        {"04-succeeded-retry.json", ""},
        {"05-failed-other-transfer.json", ""},
        {"06-camelcase-succeeded.json", ""},
        {"90-malformed-truncated.json", "invalid_json"},
        {"91-missing-transfer-id.json", "missing_transfer_id"},
    };
    return cases;
}

std::string header_of(const Record& r, const std::string& name) {
    const auto it = r.headers.find(name);
    return it == r.headers.end() ? "<absent>" : it->second;
}

// The value of a JSON string member in a fixture (either casing), found
// textually so the test does not depend on the parser it is testing.
std::string json_member(const std::string& body, const std::string& pascal) {
    std::string camel = pascal;
    camel[0] = static_cast<char>(camel[0] - 'A' + 'a');
    for (const auto& name : {pascal, camel}) {
        const auto key = "\"" + name + "\"";
        const auto pos = body.find(key);
        if (pos == std::string::npos) continue;
        const auto open = body.find('"', body.find(':', pos + key.size()) + 1);
        const auto close = body.find('"', open + 1);
        if (open == std::string::npos || close == std::string::npos) return {};
        return body.substr(open + 1, close - open - 1);
    }
    return {};
}

// 0 when there was no response at all.
unsigned status_of(const std::optional<HttpResponse>& res) {
    return res ? res->status : 0;
}

bool eventually_metric(IngestProcess& ingest, const std::string& series, double value) {
    return wait_until([&] { return metric_value(ingest.metrics(), series) == value; }, 5s);
}

class IngestServer : public ::testing::Test {
protected:
    BrokerProcess broker_;

    std::int64_t now_ms() const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
    }
};

TEST_F(IngestServer, EveryFixtureGetsItsStatusAndLandsInItsTopicWithExactBytesAndHeaders) {
    IngestProcess ingest(broker_.bootstrap());
    const auto before = now_ms();
    std::map<std::string, std::string> bodies;  // as sent: restamped, as Mesh would
    for (const auto& c : fixture_cases()) bodies[c.file] = testing::fresh_fixture(c.file);
    for (const auto& c : fixture_cases()) {
        const auto& body = bodies[c.file];
        const auto res =
            request_once(ingest.port(), signed_post("/webhooks/mesh", body, kFixtureSecret));
        ASSERT_TRUE(res) << c.file;
        if (c.dlq_reason.empty()) {
            EXPECT_EQ(res->status, 200u) << c.file << ": " << res->body;
            EXPECT_NE(res->body.find(R"("status":"accepted")"), std::string::npos) << res->body;
        } else {
            EXPECT_EQ(res->status, 400u) << c.file << ": " << res->body;
            EXPECT_NE(res->body.find(c.dlq_reason), std::string::npos) << res->body;
        }
        EXPECT_EQ(res->header("content-type"), "application/json");
    }
    const auto after = now_ms();

    const auto events = read_topic(broker_.bootstrap(), kTopic);
    const auto dead = read_topic(broker_.bootstrap(), kDlq);
    ASSERT_EQ(events.size(), 6u);
    ASSERT_EQ(dead.size(), 2u);

    for (const auto& c : fixture_cases()) {
        const auto& body = bodies[c.file];
        const auto& records = c.dlq_reason.empty() ? events : dead;
        const auto it = std::find_if(records.begin(), records.end(),
                                     [&](const Record& r) { return r.value == body; });
        ASSERT_NE(it, records.end()) << c.file << " not found byte for byte";
        EXPECT_EQ(header_of(*it, "environment"), "production");
        ASSERT_TRUE(it->headers.count("received-at")) << c.file;
        const auto received = std::stoll(it->headers.at("received-at"));
        EXPECT_GE(received, before - 1000);
        EXPECT_LE(received, after + 1000);
        if (c.dlq_reason != "invalid_json") {  // a truncated body has no ids to tell
            EXPECT_EQ(header_of(*it, "delivery-id"), json_member(body, "Id")) << c.file;
            EXPECT_EQ(header_of(*it, "event-id"), json_member(body, "EventId")) << c.file;
        }
        if (c.dlq_reason.empty()) {
            EXPECT_EQ(it->key.value_or(""), json_member(body, "TransferId")) << c.file;
        } else {
            EXPECT_EQ(header_of(*it, "reason"), c.dlq_reason) << c.file;
        }
    }
    // Mesh's retry (04) is a second record, not swallowed here: the consumer dedups.
    const auto retry_key = json_member(fixture("04-succeeded-retry.json"), "TransferId");
    EXPECT_EQ(std::count_if(events.begin(), events.end(),
                            [&](const Record& r) { return r.key == retry_key; }),
              4);  // 01..04 are one transfer's life
    // Same key, same partition: the order of one transfer's events is kept.
    std::set<std::int32_t> partitions;
    for (const auto& r : events) {
        if (r.key == retry_key) partitions.insert(r.partition);
    }
    EXPECT_EQ(partitions.size(), 1u);
}

TEST_F(IngestServer, RefusesMissingUndecodableAndMismatchedSignaturesWith401AndPublishesNothing) {
    IngestProcess ingest(broker_.bootstrap());
    const auto body = testing::fresh_fixture("03-succeeded.json");
    const auto missing = request_once(ingest.port(), post_request("/webhooks/mesh", body, {}));
    const auto undecodable = request_once(
        ingest.port(),
        post_request("/webhooks/mesh", body, {{"X-Mesh-Signature-256", "not base64!"}}));
    const auto mismatch =
        request_once(ingest.port(), signed_post("/webhooks/mesh", body, "whsec_some_other_secret"));
    // A body changed by one byte after signing.
    auto tampered = body;
    tampered[tampered.size() / 2] ^= 1;
    const auto tampered_res =
        request_once(ingest.port(),
                     post_request("/webhooks/mesh", tampered,
                                  {{"X-Mesh-Signature-256", common::sign(kFixtureSecret, body)}}));
    for (const auto* res : {&missing, &undecodable, &mismatch, &tampered_res}) {
        ASSERT_TRUE(*res);
        EXPECT_EQ((*res)->status, 401u) << (*res)->body;
    }
    // A request is counted once its response is written, which the client
    // may see a moment before the server's completion handler runs.
    EXPECT_TRUE(eventually_metric(
        ingest, R"(meshhook_ingest_requests_total{route="webhook",status="401"})", 4));
    const auto metrics = ingest.metrics();
    EXPECT_EQ(
        metric_value(
            metrics,
            R"(meshhook_ingest_signature_failures_total{environment="production",reason="missing_header"})"),
        1);
    EXPECT_EQ(
        metric_value(
            metrics,
            R"(meshhook_ingest_signature_failures_total{environment="production",reason="undecodable"})"),
        1);
    EXPECT_EQ(
        metric_value(
            metrics,
            R"(meshhook_ingest_signature_failures_total{environment="production",reason="mismatch"})"),
        2);
    EXPECT_EQ(
        metric_value(metrics, R"(meshhook_ingest_requests_total{route="webhook",status="401"})"),
        4);
    EXPECT_TRUE(read_topic(broker_.bootstrap(), kTopic).empty());
    EXPECT_TRUE(read_topic(broker_.bootstrap(), kDlq).empty());
}

TEST_F(IngestServer, AcceptsEveryActiveSecretDuringRotationAndBothHeaderNames) {
    IngestProcess::Options options;
    options.secret = "whsec_old_secret, whsec_new_secret";
    IngestProcess ingest(broker_.bootstrap(), options);
    const auto a = unique_event();
    const auto b = unique_event();
    const auto c = unique_event();
    const auto d = unique_event();
    EXPECT_EQ(status_of(request_once(ingest.port(),
                                     signed_post("/webhooks/mesh", a.body, "whsec_old_secret"))),
              200u);
    EXPECT_EQ(status_of(request_once(ingest.port(),
                                     signed_post("/webhooks/mesh", b.body, "whsec_new_secret"))),
              200u);
    // The legacy header name carries the same signature.
    EXPECT_EQ(status_of(request_once(
                  ingest.port(),
                  post_request("/webhooks/mesh", c.body,
                               {{"X-Mesh-Signature", common::sign("whsec_new_secret", c.body)}}))),
              200u);
    // A secret rotated out (no longer in the list) is refused.
    EXPECT_EQ(status_of(request_once(ingest.port(),
                                     signed_post("/webhooks/mesh", d.body, kFixtureSecret))),
              401u);

    std::set<std::string> keys;
    for (const auto& r : read_topic(broker_.bootstrap(), kTopic)) keys.insert(r.key.value_or(""));
    EXPECT_EQ(keys, (std::set<std::string>{a.transfer_id, b.transfer_id, c.transfer_id}));
}

TEST_F(IngestServer, EnvironmentSecretsAreNotInterchangeable) {
    IngestProcess::Options options;
    options.env["MESH_WEBHOOK_SECRET_SANDBOX"] = "whsec_sandbox_secret";
    IngestProcess ingest(broker_.bootstrap(), options);
    const auto prod = unique_event();
    const auto sandbox = unique_event();
    const auto port = ingest.port();
    // Each secret on the other's route: refused.
    EXPECT_EQ(status_of(request_once(
                  port, signed_post("/webhooks/mesh/sandbox", prod.body, kFixtureSecret))),
              401u);
    EXPECT_EQ(status_of(request_once(
                  port, signed_post("/webhooks/mesh", sandbox.body, "whsec_sandbox_secret"))),
              401u);
    // Each on its own: accepted, tagged with its environment.
    EXPECT_EQ(
        status_of(request_once(port, signed_post("/webhooks/mesh", prod.body, kFixtureSecret))),
        200u);
    EXPECT_EQ(status_of(request_once(port, signed_post("/webhooks/mesh/sandbox", sandbox.body,
                                                       "whsec_sandbox_secret"))),
              200u);
    // An environment that has no secret has no route.
    EXPECT_EQ(status_of(request_once(
                  port, signed_post("/webhooks/mesh/staging", prod.body, kFixtureSecret))),
              404u);

    std::map<std::string, std::string> env_by_key;
    for (const auto& r : read_topic(broker_.bootstrap(), kTopic)) {
        env_by_key[r.key.value_or("")] = header_of(r, "environment");
    }
    EXPECT_EQ(env_by_key, (std::map<std::string, std::string>{{prod.transfer_id, "production"},
                                                              {sandbox.transfer_id, "sandbox"}}));
    EXPECT_EQ(
        metric_value(
            ingest.metrics(),
            R"(meshhook_ingest_signature_failures_total{environment="sandbox",reason="mismatch"})"),
        1);
}

TEST_F(IngestServer, OversizeBodyIs413AndTheConnectionClosedWithoutTouchingKafka) {
    IngestProcess ingest(broker_.bootstrap(), with_args({"--max-body-bytes", "1024"}));
    std::string body = unique_event().body;
    body.insert(body.size() - 1, R"(,"Padding":")" + std::string(2000, 'x') + "\"");
    HttpConnection conn(ingest.port());
    const auto res = conn.round_trip(signed_post("/webhooks/mesh", body, kFixtureSecret));
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 413u);
    EXPECT_FALSE(res->keep_alive);
    EXPECT_TRUE(conn.wait_closed(3s));
    // Chunked, with no Content-Length to refuse up front: refused as it grows.
    // (A signature header, or it would be refused from the header: 401.)
    HttpConnection chunked(ingest.port());
    std::string req =
        "POST /webhooks/mesh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        "X-Mesh-Signature-256: c2lnbmF0dXJl\r\n\r\n";
    for (int i = 0; i < 4; ++i) req += "200\r\n" + std::string(512, 'y') + "\r\n";
    const auto res2 = chunked.round_trip(req);
    ASSERT_TRUE(res2);
    EXPECT_EQ(res2->status, 413u);
    EXPECT_TRUE(read_topic(broker_.bootstrap(), kTopic).empty());
    EXPECT_TRUE(read_topic(broker_.bootstrap(), kDlq).empty());
}

TEST_F(IngestServer, WrongMethodIs405AndUnknownPathIs404) {
    IngestProcess ingest(broker_.bootstrap());
    const auto get = request_once(ingest.port(), get_request("/webhooks/mesh"));
    ASSERT_TRUE(get);
    EXPECT_EQ(get->status, 405u);
    EXPECT_EQ(get->header("allow"), "POST");
    const auto put = request_once(
        ingest.port(), "PUT /webhooks/mesh HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
    ASSERT_TRUE(put);
    EXPECT_EQ(put->status, 405u);
    const auto post_health = request_once(ingest.admin_port(), post_request("/healthz", "{}", {}));
    ASSERT_TRUE(post_health);
    EXPECT_EQ(post_health->status, 405u);
    const auto unknown =
        request_once(ingest.port(), signed_post("/webhooks/other", "{}", kFixtureSecret));
    ASSERT_TRUE(unknown);
    EXPECT_EQ(unknown->status, 404u);
    EXPECT_EQ(status_of(request_once(ingest.admin_port(), get_request("/healthz"))), 200u);
    // Each listener serves only its own routes.
    for (const auto* path : {"/healthz", "/readyz", "/metrics"}) {
        EXPECT_EQ(status_of(request_once(ingest.port(), get_request(path))), 404u) << path;
    }
    EXPECT_EQ(
        status_of(request_once(ingest.admin_port(),
                               signed_post("/webhooks/mesh", unique_event().body, kFixtureSecret))),
        404u);
    EXPECT_TRUE(read_topic(broker_.bootstrap(), kTopic).empty());
}

TEST_F(IngestServer, StalledClientGets408AndTheConnectionIsClosed) {
    IngestProcess ingest(broker_.bootstrap(), with_args({"--read-timeout-ms", "300"}));
    HttpConnection conn(ingest.port());
    const auto start = std::chrono::steady_clock::now();
    // Headers half sent, then nothing (slowloris).
    ASSERT_TRUE(conn.send("POST /webhooks/mesh HTTP/1.1\r\nHost: x\r\nContent-Len"));
    const auto res = conn.read_response(3s);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 408u);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 250ms);
    EXPECT_TRUE(conn.wait_closed(3s));

    // Headers complete, body stalled half way: same.
    HttpConnection conn2(ingest.port());
    const auto body = testing::fresh_fixture("03-succeeded.json");
    const auto req = signed_post("/webhooks/mesh", body, kFixtureSecret);
    ASSERT_TRUE(conn2.send(std::string_view(req).substr(0, req.size() - 10)));
    const auto res2 = conn2.read_response(3s);
    ASSERT_TRUE(res2);
    EXPECT_EQ(res2->status, 408u);
    EXPECT_TRUE(conn2.wait_closed(3s));
    EXPECT_TRUE(read_topic(broker_.bootstrap(), kTopic).empty());
}

TEST_F(IngestServer, KeepAliveAndPipelinedRequestsAreAnsweredInOrder) {
    IngestProcess ingest(broker_.bootstrap());
    HttpConnection conn(ingest.port());
    std::vector<UniqueEvent> events;
    for (int i = 0; i < 3; ++i) {
        events.push_back(unique_event());
        const auto res =
            conn.round_trip(signed_post("/webhooks/mesh", events.back().body, kFixtureSecret));
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 200u);
        EXPECT_TRUE(res->keep_alive);
    }
    // Four requests in one write; the answers come back in request order.
    const auto p1 = unique_event();
    const auto p2 = unique_event();
    const std::string pipeline = signed_post("/webhooks/mesh", p1.body, kFixtureSecret) +
                                 signed_post("/webhooks/mesh", p1.body, "wrong_secret") +
                                 get_request("/webhooks/mesh") +
                                 signed_post("/webhooks/mesh", p2.body, kFixtureSecret);
    ASSERT_TRUE(conn.send(pipeline));
    std::vector<unsigned> statuses;
    std::vector<std::string> bodies;
    for (int i = 0; i < 4; ++i) {
        const auto res = conn.read_response(5s);
        ASSERT_TRUE(res) << "response " << i;
        statuses.push_back(res->status);
        bodies.push_back(res->body);
    }
    EXPECT_EQ(statuses, (std::vector<unsigned>{200, 401, 405, 200}));
    EXPECT_NE(bodies[0].find(p1.event_id), std::string::npos);
    EXPECT_NE(bodies[3].find(p2.event_id), std::string::npos);
    EXPECT_EQ(read_topic(broker_.bootstrap(), kTopic).size(), 5u);
}

TEST_F(IngestServer, ExpectContinueGets100BeforeTheBodyAndOversizeIsRefusedUpFront) {
    IngestProcess ingest(broker_.bootstrap(), with_args({"--max-body-bytes", "1024"}));
    const auto e = unique_event();
    HttpConnection conn(ingest.port());
    const std::string head =
        "POST /webhooks/mesh HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        "X-Mesh-Signature-256: " +
        common::sign(kFixtureSecret, e.body) +
        "\r\nContent-Length: " + std::to_string(e.body.size()) + "\r\n\r\n";
    ASSERT_TRUE(conn.send(head));
    const auto interim = conn.read_response(3s);
    ASSERT_TRUE(interim);
    EXPECT_EQ(interim->status, 100u);
    ASSERT_TRUE(conn.send(e.body));
    const auto final_res = conn.read_response(3s);
    ASSERT_TRUE(final_res);
    EXPECT_EQ(final_res->status, 200u) << final_res->body;

    // Too large by its Content-Length: refused before the client sends it.
    HttpConnection big(ingest.port());
    ASSERT_TRUE(
        big.send("POST /webhooks/mesh HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                 "Content-Length: 1000000\r\n\r\n"));
    const auto refused = big.read_response(3s);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 413u);
    EXPECT_TRUE(big.wait_closed(3s));
    const auto records = read_topic(broker_.bootstrap(), kTopic);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].value, e.body);
}

TEST_F(IngestServer, ManyConcurrentKeepAliveConnectionsAreAllServedOnTwoThreads) {
    IngestProcess ingest(broker_.bootstrap());  // --threads 2
    constexpr int kConnections = 40;
    constexpr int kPerConnection = 10;
    std::mutex mutex;
    std::vector<std::string> acknowledged;
    std::atomic<int> unavailable{0};
    std::atomic<int> other{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < kConnections; ++c) {
        clients.emplace_back([&] {
            std::optional<HttpConnection> conn;
            try {
                conn.emplace(ingest.port());
            } catch (const std::exception&) {
                other += kPerConnection;
                return;
            }
            for (int i = 0; i < kPerConnection; ++i) {
                const auto e = unique_event();
                const auto res =
                    conn->round_trip(signed_post("/webhooks/mesh", e.body, kFixtureSecret), 10s);
                if (res && res->status == 200) {
                    std::lock_guard lock(mutex);
                    acknowledged.push_back(e.body);
                } else if (res && res->status == 503) {
                    ++unavailable;  // ack budget missed on a busy machine: truthful, retried by
                                    // Mesh
                } else {
                    ++other;
                }
            }
        });
    }
    for (auto& t : clients) t.join();
    EXPECT_EQ(other.load(), 0) << "every request answered, and only 200 or 503";
    EXPECT_EQ(acknowledged.size() + static_cast<std::size_t>(unavailable.load()),
              std::size_t{kConnections} * kPerConnection);
    EXPECT_GE(acknowledged.size(), std::size_t{kConnections} * kPerConnection / 2);
    std::map<std::string, int> copies;
    for (const auto& r : read_topic(broker_.bootstrap(), kTopic)) ++copies[r.value];
    for (const auto& body : acknowledged) EXPECT_EQ(copies[body], 1);
}

TEST_F(IngestServer,
       BrokersDownIs503WithinBudgetThenBackIs200AndAcknowledgedEventsLandExactlyOnce) {
    IngestProcess ingest(broker_.bootstrap(), with_args({"--ack-timeout-ms", "150"}));
    const auto port = ingest.port();
    std::vector<UniqueEvent> acknowledged;
    std::vector<UniqueEvent> retried;
    for (int i = 0; i < 5; ++i) {
        auto e = unique_event();
        const auto request = signed_post("/webhooks/mesh", e.body, kFixtureSecret);
        if (status_of(request_once(port, request)) == 200u) {
            acknowledged.push_back(std::move(e));
            continue;
        }
        // Retried like Mesh: on Apache Kafka a fresh producer's first produce
        // to a new topic can miss the 150 ms budget on this machine.
        ASSERT_TRUE(
            wait_until([&] { return status_of(request_once(port, request)) == 200u; }, 20s));
        retried.push_back(std::move(e));
    }

    for (int id = 1; id <= 3; ++id) broker_.broker_down(id);
    HttpConnection conn(port);
    for (int i = 0; i < 5; ++i) {
        const auto e = unique_event();
        const auto res = conn.round_trip(signed_post("/webhooks/mesh", e.body, kFixtureSecret));
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 503u) << res->body;
        EXPECT_FALSE(res->header("retry-after").empty());
        EXPECT_LT(res->elapsed, 200ms) << "Mesh's budget";
    }
    // A signed but unusable body cannot be dead-lettered either: 503, not 400.
    const auto dlq = conn.round_trip(
        signed_post("/webhooks/mesh", fixture("90-malformed-truncated.json"), kFixtureSecret));
    ASSERT_TRUE(dlq);
    EXPECT_EQ(dlq->status, 503u);
    EXPECT_LT(dlq->elapsed, 200ms);
    EXPECT_TRUE(wait_until(
        [&] {
            const auto r = request_once(ingest.admin_port(), get_request("/readyz"));
            return r && r->status == 503;
        },
        10s))
        << "readyz should follow the outage";

    for (int id = 1; id <= 3; ++id) broker_.broker_up(id);
    // Late delivery reports for the 503s arrive from now on: no crash, no
    // second answer. While the producer reconnects to each partition leader
    // some requests may still time out; like Mesh, the test retries those.
    for (int i = 0; i < 12; ++i) {
        auto e = unique_event();
        const auto request = signed_post("/webhooks/mesh", e.body, kFixtureSecret);
        const auto first = request_once(port, request);
        ASSERT_TRUE(first);
        if (first->status == 200) {
            acknowledged.push_back(std::move(e));
            continue;
        }
        EXPECT_EQ(first->status, 503u) << first->body;
        EXPECT_TRUE(wait_until(
            [&] {
                const auto r = request_once(port, request);
                return r && r->status == 200;
            },
            20s))
            << "brokers are back: the retry must be accepted";
        retried.push_back(std::move(e));
    }
    EXPECT_TRUE(ingest.process().running());

    std::map<std::string, int> copies;
    for (const auto& r : read_topic(broker_.bootstrap(), kTopic)) ++copies[r.value];
    // Answered 200 on first delivery: exactly one record. Retried after a 503:
    // at least one (the first attempt may land late; the consumer dedups).
    for (const auto& e : acknowledged) EXPECT_EQ(copies[e.body], 1) << e.event_id;
    for (const auto& e : retried) EXPECT_GE(copies[e.body], 1) << e.event_id;
    EXPECT_GE(
        metric_value(ingest.metrics(), R"(meshhook_ingest_unavailable_total{reason="ack_timeout"})")
            .value_or(0),
        6);
}

TEST_F(IngestServer, FullProducerQueueIs503AtOnce) {
    IngestProcess ingest(broker_.bootstrap(), with_args({"--max-queued-messages", "2"}));
    for (int id = 1; id <= 3; ++id) broker_.broker_down(id);
    HttpConnection conn(ingest.port());
    // Two records wait in the producer for the brokers (ack timeout)...
    for (int i = 0; i < 2; ++i) {
        const auto res =
            conn.round_trip(signed_post("/webhooks/mesh", unique_event().body, kFixtureSecret));
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 503u);
    }
    // ...and the third finds the queue full: refused without waiting for Kafka.
    const auto full =
        conn.round_trip(signed_post("/webhooks/mesh", unique_event().body, kFixtureSecret));
    ASSERT_TRUE(full);
    EXPECT_EQ(full->status, 503u);
    EXPECT_NE(full->body.find("queue_full"), std::string::npos) << full->body;
    EXPECT_FALSE(full->header("retry-after").empty());
    EXPECT_LT(full->elapsed, 100ms) << "no wait for the ack timeout";
    const auto metrics = ingest.metrics();
    EXPECT_EQ(metric_value(metrics, R"(meshhook_ingest_unavailable_total{reason="queue_full"})"),
              1);
    EXPECT_EQ(metric_value(metrics, R"(meshhook_ingest_unavailable_total{reason="ack_timeout"})"),
              2);
    EXPECT_EQ(metric_value(metrics, "meshhook_ingest_producer_queue_depth"), 2);
}

// The queue's bytes are bounded too (librdkafka's default is 1 GiB): 1 KiB
// takes two of these ~0.5 KiB records, far below the message-count bound
// (100,000), and the third is refused at once.
TEST_F(IngestServer, ProducerQueueFullByBytesIs503AtOnce) {
    IngestProcess ingest(broker_.bootstrap(), with_args({"--max-queued-kbytes", "1"}));
    for (int id = 1; id <= 3; ++id) broker_.broker_down(id);
    HttpConnection conn(ingest.port());
    std::vector<std::string> answers;
    for (int i = 0; i < 3; ++i) {
        const auto e = unique_event();
        const auto res = conn.round_trip(signed_post("/webhooks/mesh", e.body, kFixtureSecret));
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 503u);
        answers.push_back(res->body.find("queue_full") != std::string::npos ? "queue_full"
                                                                            : res->body);
    }
    EXPECT_NE(answers[0], "queue_full");
    EXPECT_NE(answers[1], "queue_full");
    EXPECT_EQ(answers[2], "queue_full");
    EXPECT_EQ(metric_value(ingest.metrics(), "meshhook_ingest_producer_queue_depth"), 2);
}

TEST_F(IngestServer, SigtermDuringLoadLosesNoAcknowledgedEventAndExitsZero) {
    IngestProcess ingest(broker_.bootstrap());
    const auto port = ingest.port();
    std::mutex mutex;
    std::vector<std::string> acknowledged;
    std::atomic<int> answered{0};
    std::atomic<int> unavailable{0};
    std::atomic<int> other{0};
    std::atomic<bool> stop{false};
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t) {
        clients.emplace_back([&] {
            try {
                while (!stop) {
                    HttpConnection conn(port);  // throws once the listener is gone
                    while (true) {
                        const auto e = unique_event();
                        const auto res =
                            conn.round_trip(signed_post("/webhooks/mesh", e.body, kFixtureSecret));
                        if (!res) break;  // closed by the drain: reconnect (or fail to)
                        ++answered;
                        if (res->status == 200) {
                            std::lock_guard lock(mutex);
                            acknowledged.push_back(e.body);
                        } else if (res->status == 503) {
                            ++unavailable;
                        } else {
                            ++other;
                        }
                        if (!res->keep_alive || stop) break;
                    }
                }
            } catch (const std::exception&) {
            }
        });
    }
    EXPECT_TRUE(wait_until([&] { return answered.load() >= 100; }, 30s));
    ingest.process().signal(SIGTERM);
    const auto code = ingest.process().wait(20s);
    stop = true;  // the clients end by themselves once the listener is gone; this is for failures
    for (auto& c : clients) c.join();
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 0) << ingest.process().stderr_text();

    std::map<std::string, int> copies;
    for (const auto& r : read_topic(broker_.bootstrap(), kTopic)) ++copies[r.value];
    ASSERT_FALSE(acknowledged.empty());
    for (const auto& body : acknowledged) EXPECT_EQ(copies[body], 1);
    // A 503 (ack budget missed on a busy machine) is truthful; what must not
    // happen is a 200 whose event is missing.
    EXPECT_GT(acknowledged.size(), static_cast<std::size_t>(unavailable.load()));
    EXPECT_EQ(other.load(), 0) << "only 200 or 503 during a drain";
}

TEST_F(IngestServer, MetricsAndHealthEndpointsExposeTheIngestCounters) {
    IngestProcess ingest(broker_.bootstrap());
    const auto e = unique_event();
    ASSERT_EQ(status_of(request_once(ingest.port(),
                                     signed_post("/webhooks/mesh", e.body, kFixtureSecret))),
              200u);
    ASSERT_EQ(
        status_of(request_once(
            ingest.port(),
            signed_post("/webhooks/mesh", fixture("91-missing-transfer-id.json"), kFixtureSecret))),
        400u);
    const auto healthz = request_once(ingest.admin_port(), get_request("/healthz"));
    ASSERT_TRUE(healthz);
    EXPECT_EQ(healthz->status, 200u);
    // Requests are counted once their response is written (see above): wait for those.
    ASSERT_TRUE(eventually_metric(
        ingest, R"(meshhook_ingest_requests_total{route="healthz",status="200"})", 1));
    ASSERT_TRUE(eventually_metric(
        ingest, R"(meshhook_ingest_request_duration_seconds_count{route="webhook"})", 2));
    const auto res = request_once(ingest.admin_port(), get_request("/metrics"));
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200u);
    EXPECT_NE(res->header("content-type").find("text/plain"), std::string::npos);
    const auto& m = res->body;
    EXPECT_EQ(metric_value(m, R"(meshhook_ingest_requests_total{route="webhook",status="200"})"),
              1);
    EXPECT_EQ(metric_value(m, R"(meshhook_ingest_requests_total{route="webhook",status="400"})"),
              1);
    EXPECT_EQ(metric_value(m, R"(meshhook_ingest_requests_total{route="healthz",status="200"})"),
              1);
    EXPECT_EQ(metric_value(m, R"(meshhook_ingest_published_total{environment="production"})"), 1);
    EXPECT_EQ(
        metric_value(
            m,
            R"(meshhook_ingest_dlq_writes_total{environment="production",reason="missing_transfer_id"})"),
        1);
    EXPECT_EQ(metric_value(m, R"(meshhook_ingest_request_duration_seconds_count{route="webhook"})"),
              2);
    EXPECT_EQ(metric_value(m, "meshhook_ingest_kafka_ack_duration_seconds_count"), 2);
    EXPECT_EQ(metric_value(m, "meshhook_ingest_in_flight_requests"), 0);
    EXPECT_EQ(metric_value(m, "meshhook_ingest_producer_queue_depth"), 0);
    EXPECT_EQ(metric_value(m, "meshhook_ingest_ready"), 1);
    EXPECT_EQ(metric_value(m, R"(meshhook_ingest_unavailable_total{reason="queue_full"})"), 0);
}

TEST_F(IngestServer, AllowListRefusesOtherClientsAndBelievesOnlyTrustedProxies) {
    {
        // Without a trusted proxy the peer is the client: refused at accept,
        // with no answer, whatever X-Forwarded-For it would have claimed.
        IngestProcess ingest(broker_.bootstrap(), with_args({"--allow-ips", "20.22.113.37/32"}));
        const auto e = unique_event();
        HttpConnection conn(ingest.port());
        EXPECT_TRUE(conn.wait_closed(5s));
        const auto spoofed = request_once(
            ingest.port(),
            post_request("/webhooks/mesh", e.body,
                         {{"X-Mesh-Signature-256", common::sign(kFixtureSecret, e.body)},
                          {"X-Forwarded-For", "20.22.113.37"}}));
        EXPECT_FALSE(spoofed);
    }
    IngestProcess ingest(broker_.bootstrap(), with_args({"--allow-ips", "20.22.113.37",
                                                         "--trusted-proxies", "127.0.0.0/8"}));
    const auto ok = unique_event();
    const auto via_proxy =
        request_once(ingest.port(),
                     post_request("/webhooks/mesh", ok.body,
                                  {{"X-Mesh-Signature-256", common::sign(kFixtureSecret, ok.body)},
                                   {"X-Forwarded-For", "20.22.113.37"}}));
    ASSERT_TRUE(via_proxy);
    EXPECT_EQ(via_proxy->status, 200u);
    // The client prepends whatever it likes; the proxy appends the real address.
    const auto other = unique_event();
    const auto forged = request_once(
        ingest.port(),
        post_request("/webhooks/mesh", other.body,
                     {{"X-Mesh-Signature-256", common::sign(kFixtureSecret, other.body)},
                      {"X-Forwarded-For", "20.22.113.37, 198.51.100.7"}}));
    ASSERT_TRUE(forged);
    EXPECT_EQ(forged->status, 403u);
    const auto records = read_topic(broker_.bootstrap(), kTopic);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].value, ok.body);
}

TEST_F(IngestServer, ReplayWindowRefusesDeliveriesSentOutsideItWithoutAKafkaWrite) {
    // The default window (24 h): the fixtures were sent in November 2025.
    IngestProcess ingest(broker_.bootstrap());
    const auto old = request_once(
        ingest.port(), signed_post("/webhooks/mesh", fixture("03-succeeded.json"), kFixtureSecret));
    ASSERT_TRUE(old);
    EXPECT_EQ(old->status, 400u);
    EXPECT_NE(old->body.find("sent_timestamp_outside_window"), std::string::npos) << old->body;
    const auto fresh = unique_event();
    EXPECT_EQ(status_of(request_once(ingest.port(),
                                     signed_post("/webhooks/mesh", fresh.body, kFixtureSecret))),
              200u);
    // The replayed body was written nowhere: replays cost no Kafka write.
    EXPECT_TRUE(read_topic(broker_.bootstrap(), kDlq).empty());
    const auto events = read_topic(broker_.bootstrap(), kTopic);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].value, fresh.body);
}

// A captured body replayed inside the window carries an acknowledged Id (each
// of Mesh's attempts has a new one): answered 200 again, produced once.
TEST_F(IngestServer, ReplayedAcknowledgedDeliveryIsAnswered200AndNotProducedTwice) {
    const auto event = unique_event();
    const auto post = signed_post("/webhooks/mesh", event.body, kFixtureSecret);
    {
        IngestProcess ingest(broker_.bootstrap());
        for (int i = 0; i < 3; ++i) EXPECT_EQ(status_of(request_once(ingest.port(), post)), 200u);
        EXPECT_NE(ingest.metrics().find(
                      R"(meshhook_ingest_repeated_deliveries_total{environment="production"} 2)"),
                  std::string::npos);
    }
    EXPECT_EQ(read_topic(broker_.bootstrap(), kTopic).size(), 1u);

    // Without the memory each repeat is a record (the consumer dedups by EventId).
    IngestProcess forgetful(broker_.bootstrap(), with_args({"--remember-deliveries", "0"}));
    EXPECT_EQ(status_of(request_once(forgetful.port(), post)), 200u);
    EXPECT_EQ(read_topic(broker_.bootstrap(), kTopic).size(), 2u);
}

TEST_F(IngestServer, ConnectionsOverTheCapAreClosed) {
    IngestProcess ingest(broker_.bootstrap(), with_args({"--max-connections", "2"}));
    // Two connections that have been served count against the cap. (The
    // readiness probes' connections may take a moment to be released.)
    std::vector<std::unique_ptr<HttpConnection>> held;
    ASSERT_TRUE(wait_until(
        [&] {
            auto conn = std::make_unique<HttpConnection>(ingest.port());
            const auto res = conn->round_trip(get_request("/webhooks/mesh"), 1s);
            if (res && res->status == 405) held.push_back(std::move(conn));
            return held.size() == 2;
        },
        10s));
    HttpConnection over(ingest.port());
    EXPECT_TRUE(over.wait_closed(3s));
    EXPECT_FALSE(over.round_trip(get_request("/webhooks/mesh"), 1s));
    // The two within the cap are unaffected, and the admin listener (probes)
    // has its own cap.
    const auto res = held.front()->round_trip(get_request("/webhooks/mesh"));
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 405u);
    EXPECT_EQ(status_of(request_once(ingest.admin_port(), get_request("/healthz"))), 200u);
}

TEST_F(IngestServer, ServesWebhooksOverTls) {
    const testing::ingest::SelfSignedCert cert;
    IngestProcess::Options options;
    options.args = {"--tls-cert", cert.cert_path(), "--tls-key", cert.key_path()};
    // Readiness is polled on the admin listener, which stays plain HTTP.
    IngestProcess ingest(broker_.bootstrap(), options);
    const auto e = unique_event();
    const auto res = https_request(
        ingest.port(), signed_post("/webhooks/mesh", e.body, kFixtureSecret), cert.cert_path());
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 200u) << res->body;
    // Plain HTTP on the TLS port gets no HTTP answer.
    HttpConnection plain(ingest.port());
    EXPECT_FALSE(plain.round_trip(get_request("/webhooks/mesh"), 2s));
    const auto records = read_topic(broker_.bootstrap(), kTopic);
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].value, e.body);
}

// TLS 1.2 at least, and for 1.2 only forward-secret AEAD suites: a client
// limited to TLS 1.1, or to a CBC/SHA-1 suite, gets no handshake.
TEST_F(IngestServer, TlsRefusesOldVersionsAndWeakCiphers) {
    const testing::ingest::SelfSignedCert cert;
    IngestProcess::Options options;
    options.args = {"--tls-cert", cert.cert_path(), "--tls-key", cert.key_path()};
    IngestProcess ingest(broker_.bootstrap(), options);
    const auto handshake = [&](int max_version, const char* ciphers) {
        return testing::ingest::tls_handshake_succeeds(
            ingest.port(), cert.cert_path(), [&](void* native) {
                auto* ctx = static_cast<SSL_CTX*>(native);
                SSL_CTX_set_security_level(ctx, 0);  // let the client offer old things
                SSL_CTX_set_max_proto_version(ctx, max_version);
                if (ciphers != nullptr) SSL_CTX_set_cipher_list(ctx, ciphers);
            });
    };
    EXPECT_TRUE(handshake(TLS1_3_VERSION, nullptr));
    EXPECT_TRUE(handshake(TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256"));
    EXPECT_FALSE(handshake(TLS1_1_VERSION, "DEFAULT:@SECLEVEL=0"));
    EXPECT_FALSE(handshake(TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA"));
    EXPECT_FALSE(handshake(TLS1_2_VERSION, "ECDHE-ECDSA-AES256-SHA384"));
}

// SIGHUP reads --tls-cert and --tls-key again: a connection opened before
// keeps working on the old certificate, new handshakes get the new one, and a
// pair that does not load leaves the current one serving.
TEST_F(IngestServer, TlsCertificateReloadedOnSighupWithoutDroppingConnections) {
    const testing::ingest::SelfSignedCert served;  // its files are overwritten below
    const testing::ingest::SelfSignedCert old_cert;
    const testing::ingest::SelfSignedCert new_cert;
    const auto install = [&](const testing::ingest::SelfSignedCert& c) {
        std::filesystem::copy_file(c.cert_path(), served.cert_path(),
                                   std::filesystem::copy_options::overwrite_existing);
        std::filesystem::copy_file(c.key_path(), served.key_path(),
                                   std::filesystem::copy_options::overwrite_existing);
    };
    install(old_cert);
    IngestProcess ingest(broker_.bootstrap(), with_args({"--tls-cert", served.cert_path(),
                                                         "--tls-key", served.key_path()}));
    const auto trusts = [&](const testing::ingest::SelfSignedCert& c) {
        return testing::ingest::tls_handshake_succeeds(ingest.port(), c.cert_path(), [](void*) {});
    };
    TlsConnection open(ingest.port(), old_cert.cert_path());
    ASSERT_TRUE(open.handshaken());
    const auto before = unique_event();
    EXPECT_EQ(status_of(open.request(signed_post("/webhooks/mesh", before.body, kFixtureSecret))),
              200u);
    EXPECT_FALSE(trusts(new_cert));

    install(new_cert);
    ingest.process().signal(SIGHUP);
    EXPECT_TRUE(wait_until([&] { return trusts(new_cert); }, 10s));
    EXPECT_FALSE(trusts(old_cert));
    // The connection from before the reload: still open, still answered.
    const auto after = unique_event();
    EXPECT_EQ(status_of(open.request(signed_post("/webhooks/mesh", after.body, kFixtureSecret))),
              200u);

    // A broken pair (the key of another certificate) is refused; the new one stays.
    std::filesystem::copy_file(old_cert.key_path(), served.key_path(),
                               std::filesystem::copy_options::overwrite_existing);
    ingest.process().signal(SIGHUP);
    EXPECT_TRUE(wait_until(
        [&] {
            return ingest.process().stderr_text().find("TLS reload failed") != std::string::npos;
        },
        10s));
    EXPECT_TRUE(trusts(new_cert));
    EXPECT_TRUE(ingest.process().running());
    EXPECT_EQ(read_topic(broker_.bootstrap(), kTopic).size(), 2u);
}

// --kafka-config-file reaches the producer: the same delivery is stored with
// PLAINTEXT (what the test broker speaks) and cannot be with SSL, which that
// broker does not speak, so it is answered 503 (Mesh retries it).
TEST_F(IngestServer, KafkaConfigFilePropertiesReachTheProducer) {
    const auto dir = std::filesystem::path(::testing::TempDir()) /
                     ("ingest-kafka-config-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto plaintext = (dir / "plaintext.properties").string();
    const auto ssl = (dir / "ssl.properties").string();
    std::ofstream(plaintext) << "# the test broker\nsecurity.protocol=PLAINTEXT\n"
                                "client.rack=rack-a\nsocket.keepalive.enable=true\n";
    std::ofstream(ssl) << "security.protocol=SSL\n";
    {
        IngestProcess ingest(broker_.bootstrap(), with_args({"--kafka-config-file", plaintext}));
        const auto ev = unique_event();
        const auto res =
            request_once(ingest.port(), signed_post("/webhooks/mesh", ev.body, kFixtureSecret));
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 200u) << res->body;
    }
    {
        auto options = with_args({"--kafka-config-file", ssl, "--ack-timeout-ms", "300"});
        options.wait_ready = false;
        IngestProcess ingest(broker_.bootstrap(), options);
        const auto ev = unique_event();
        const auto res =
            request_once(ingest.port(), signed_post("/webhooks/mesh", ev.body, kFixtureSecret));
        ASSERT_TRUE(res);
        EXPECT_EQ(res->status, 503u) << res->body;
        const auto ready = request_once(ingest.admin_port(), get_request("/readyz", false));
        ASSERT_TRUE(ready);
        EXPECT_EQ(ready->status, 503u);
    }
    std::filesystem::remove_all(dir);
}

// Ready means a webhook can be stored: Kafka reachable and both topics there
// with a leader for every partition. A missing topic is not ready (the
// previous check only asked for broker metadata) until it is created.
TEST_F(IngestServer, ReadinessWaitsForTheTopicsToExist) {
    const std::string topic = "ready-check-" + std::to_string(::getpid()) + "-events";
    IngestProcess::Options options;
    options.args = {"--topic", topic, "--dlq-topic", topic + ".dlq"};
    options.wait_ready = false;
    IngestProcess ingest(broker_.bootstrap(), options);
    const auto ready = [&] {
        return status_of(request_once(ingest.admin_port(), get_request("/readyz", false))) == 200u;
    };
    // Several readiness checks (every 0.25 s while not ready) see no topic.
    EXPECT_FALSE(wait_until(ready, 3s)) << "ready without its topics";
    broker_.create_topic(topic, 4);
    EXPECT_FALSE(wait_until(ready, 1500ms)) << "ready without its dead-letter topic";
    broker_.create_topic(topic + ".dlq", 4);
    EXPECT_TRUE(wait_until(ready, 20s)) << "not ready once both topics exist";
}

// A supervisor (meshhook dev, a test) learns the bound address from a file,
// not from log lines; a path it cannot write is a bad setting.
TEST_F(IngestServer, ReadyFileNamesTheBoundAddressAndThePid) {
    const auto path = ::testing::TempDir() + "ingest-" + std::to_string(::getpid()) + ".ready";
    std::filesystem::remove(path);
    IngestProcess ingest(broker_.bootstrap(), with_args({"--ready-file", path}));
    ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(path); }, 10s));
    const auto text = testing::read_file(path);
    EXPECT_NE(text.find("listen=127.0.0.1:" + std::to_string(ingest.port()) + "\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("pid=" + std::to_string(ingest.process().pid()) + "\n"), std::string::npos)
        << text;
    EXPECT_NE(text.find("admin=127.0.0.1:" + std::to_string(ingest.admin_port()) + "\n"),
              std::string::npos)
        << text;
    std::filesystem::remove(path);

    testing::Process bad({testing::binary_path("meshhook-ingest").string(), "--brokers",
                          broker_.bootstrap(), "--listen", "127.0.0.1:0", "--admin-listen",
                          "127.0.0.1:0", "--ready-file", "/nonexistent/dir/ingest.ready"},
                         {{"MESH_WEBHOOK_SECRET", "s"}});
    const auto code = bad.wait(10s);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 2);
    const auto err = bad.stderr_text();
    EXPECT_NE(err.find("--ready-file"), std::string::npos) << err;
}

// --threads defaults to the CPUs the process may use: under `taskset -c 0`
// that is 1, whatever the machine has (hardware_concurrency() said 2 here).
TEST(IngestStartup, ThreadsDefaultToTheCpusTheProcessMayUse) {
    testing::Process p({"/usr/bin/taskset", "-c", "0",
                        testing::binary_path("meshhook-ingest").string(), "--help"});
    std::string help;
    for (const auto deadline = std::chrono::steady_clock::now() + 10s;
         help.find("--max-body-bytes") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline;) {
        const auto line = p.read_line(1s);
        if (!line) continue;
        help += *line + "\n";
    }
    const auto at = help.find("--threads");
    ASSERT_NE(at, std::string::npos) << help << p.stderr_text();
    const auto line_end = help.find("[default:", at);
    ASSERT_NE(line_end, std::string::npos) << help;
    EXPECT_EQ(help.substr(line_end, 12), "[default: 1]") << help.substr(at, 200);
}

TEST(IngestStartup, RefusesToStartWithoutASecretOrWithABadSetting) {
    const auto ingest = testing::binary_path("meshhook-ingest").string();
    {
        testing::Process p({ingest, "--brokers", "127.0.0.1:9"});
        const auto code = p.wait(10s);
        ASSERT_TRUE(code);
        EXPECT_EQ(*code, 2);
        const auto err = p.stderr_text();
        EXPECT_NE(err.find("MESH_WEBHOOK_SECRET"), std::string::npos) << err;
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    }
    {
        testing::Process p({ingest, "--brokers", "127.0.0.1:9", "--max-body-bytes", "lots"},
                           {{"MESH_WEBHOOK_SECRET", "s"}});
        const auto code = p.wait(10s);
        ASSERT_TRUE(code);
        EXPECT_EQ(*code, 2);
        const auto err = p.stderr_text();
        EXPECT_NE(err.find("--max-body-bytes"), std::string::npos) << err;
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
        EXPECT_EQ(err.find("\"s\""), std::string::npos) << "the secret must not be printed";
    }
    {
        // Properties meshhook's guarantees rest on cannot come from the file.
        const auto path =
            ::testing::TempDir() + "acks-" + std::to_string(::getpid()) + ".properties";
        std::ofstream(path) << "security.protocol=PLAINTEXT\nacks=0\n";
        testing::Process p({ingest, "--brokers", "127.0.0.1:9", "--kafka-config-file", path},
                           {{"MESH_WEBHOOK_SECRET", "s"}});
        const auto code = p.wait(10s);
        ASSERT_TRUE(code);
        EXPECT_EQ(*code, 2);
        const auto err = p.stderr_text();
        EXPECT_NE(err.find("--kafka-config-file"), std::string::npos) << err;
        EXPECT_NE(err.find("line 2"), std::string::npos) << err;
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
        std::remove(path.c_str());
    }
}

}  // namespace
}  // namespace meshhook
