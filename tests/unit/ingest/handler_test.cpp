// The request path without sockets or Kafka: request in, response or
// publication out; publication outcome in, response out.
#include "ingest/handler.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "common/signature.hpp"
#include "common/transfer_event.hpp"
#include "tests/support/process.hpp"

namespace meshhook::ingest {
namespace {

namespace http = boost::beast::http;
using namespace std::chrono_literals;

constexpr std::string_view kSecret = "whsec_test_fixture_secret";
constexpr std::string_view kSandboxSecret = "whsec_sandbox";

IngestConfig test_config() {
    IngestConfig c = default_config("127.0.0.1:9092", std::string(kSecret));
    c.environments = {{"production", {"whsec_rotated_in", std::string(kSecret)}},
                      {"sandbox", {std::string(kSandboxSecret)}}};
    return c;
}

Request post(const std::string& target, std::string body, std::optional<std::string> signature,
             std::string_view header = common::kSignatureHeader) {
    Request r{http::verb::post, target, 11};
    if (signature) r.set(header, *signature);
    r.body() = std::move(body);
    r.prepare_payload();
    return r;
}

Request signed_post(const std::string& target, const std::string& body,
                    std::string_view secret = kSecret) {
    return post(target, body, common::sign(secret, body));
}

Request get(const std::string& target) {
    return Request{http::verb::get, target, 11};
}

std::string header_of(const Publication& p, std::string_view name) {
    for (const auto& [k, v] : p.headers) {
        if (k == name) return v;
    }
    return "<absent>";
}

// A fixed "now" (late 2026), in seconds since the epoch.
constexpr auto kNow = std::chrono::system_clock::time_point(1'795'860'000s);

// A fixture body as Mesh would send it at kNow: the replay window is on by
// default, and the fixtures' SentTimestamp is from November 2025.
std::string fixture(const std::string& name) {
    return common::restamp_sent_timestamp(testing::fixture(name), kNow);
}

class Handler : public ::testing::Test {
protected:
    explicit Handler(IngestConfig config = test_config())
        : config_(std::move(config)),
          metrics_(registry_, {"production", "sandbox"}),
          recent_(config_.environments.size(), 10),
          context_{config_, metrics_, ready_, "test-host", &recent_},
          handler_(context_) {}

    Action handle(const Request& r, std::string_view peer = "20.22.113.37") {
        return handler_.handle(r, {IpAddress::parse(peer).value(), true}, kNow);
    }
    Action admin(const Request& r) {
        return handler_.admin(r, {IpAddress::parse("10.0.0.1").value(), true});
    }
    std::uint64_t counter(std::string_view name, const common::Labels& labels) {
        return registry_.counter(name, "", labels).value();
    }

    IngestConfig config_;
    common::Registry registry_;
    IngestMetrics metrics_;
    std::atomic<bool> ready_{false};
    RecentDeliveries recent_;
    HandlerContext context_;
    RequestHandler handler_;
};

TEST_F(Handler, SignedEventBecomesAPublicationKeyedByTransferIdWithTheExactBytes) {
    const auto body = fixture("03-succeeded.json");
    const auto request = signed_post("/webhooks/mesh", body);  // the publication views its body
    auto action = handle(request);
    EXPECT_EQ(action.route, Route::kWebhook);
    ASSERT_FALSE(action.is_response());
    const auto& pub = action.publication();
    EXPECT_EQ(pub.kind, Publication::Kind::kEvent);
    EXPECT_EQ(pub.topic, "mesh.transfer-events");
    EXPECT_EQ(pub.key, "4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01");
    EXPECT_EQ(pub.value, body);
    EXPECT_EQ(header_of(pub, "event-id"), "7d3e5f10-1111-4a2b-9c3d-000000000003");
    EXPECT_NE(header_of(pub, "delivery-id"), "<absent>");
    EXPECT_EQ(header_of(pub, "environment"), "production");
    EXPECT_EQ(header_of(pub, "received-at"), "1795860000000");
    EXPECT_EQ(header_of(pub, "host"), "test-host");
    EXPECT_EQ(header_of(pub, "reason"), "<absent>");
}

// Statuses beyond the four are Mesh's to send (RefundPending, RefundSucceeded,
// or new ones): they go to the topic like any event, never to the DLQ; the
// consumer records them and, after a credit, raises them for review.
TEST_F(Handler, UnknownStatusesArePublishedNotDeadLettered) {
    for (const std::string status : {"RefundPending", "RefundSucceeded", "SomethingNew"}) {
        std::string body = fixture("03-succeeded.json");
        body.replace(body.find("\"Succeeded\""), 11, "\"" + status + "\"");
        auto action = handle(signed_post("/webhooks/mesh", body));
        ASSERT_FALSE(action.is_response()) << status;
        EXPECT_EQ(action.publication().kind, Publication::Kind::kEvent) << status;
        EXPECT_EQ(action.publication().key, "4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01");
    }
}

TEST_F(Handler, AcknowledgedEventIsAnswered200AndCounted) {
    auto action = handle(signed_post("/webhooks/mesh", fixture("03-succeeded.json")));
    const auto res =
        handler_.complete(action.publication(), PublishOutcome::kAcknowledged, 11, true);
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_EQ(res.body(),
              R"({"status":"accepted","eventId":"7d3e5f10-1111-4a2b-9c3d-000000000003",)"
              R"("transferId":"4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01"})");
    EXPECT_TRUE(res.keep_alive());
    EXPECT_EQ(counter("meshhook_ingest_published_total", {{"environment", "production"}}), 1u);
}

// A captured body replayed inside the window: the same Id as an acknowledged
// delivery. Kafka holds it already, so it gets the same 200 and no publication.
TEST_F(Handler, RepeatOfAnAcknowledgedDeliveryIdIsAnswered200WithoutAPublication) {
    const auto body = fixture("03-succeeded.json");
    auto first = handle(signed_post("/webhooks/mesh", body));
    ASSERT_FALSE(first.is_response());
    // Not yet acknowledged: a repeat is published again (it may be Mesh's only copy).
    ASSERT_FALSE(handle(signed_post("/webhooks/mesh", body)).is_response());
    const auto accepted =
        handler_.complete(first.publication(), PublishOutcome::kAcknowledged, 11, true);

    auto repeat = handle(signed_post("/webhooks/mesh", body));
    ASSERT_TRUE(repeat.is_response());
    EXPECT_EQ(repeat.response().result_int(), 200u);
    EXPECT_EQ(repeat.response().body(), accepted.body());
    EXPECT_EQ(counter("meshhook_ingest_repeated_deliveries_total", {{"environment", "production"}}),
              1u);
    // Another environment has its own memory; Mesh's retry (04: new Id) is published.
    EXPECT_FALSE(handle(signed_post("/webhooks/mesh/sandbox", body, kSandboxSecret)).is_response());
    EXPECT_FALSE(
        handle(signed_post("/webhooks/mesh", fixture("04-succeeded-retry.json"))).is_response());
}

TEST_F(Handler, DeliveryAnswered503IsNotRemembered) {
    const auto body = fixture("03-succeeded.json");
    auto first = handle(signed_post("/webhooks/mesh", body));
    handler_.complete(first.publication(), PublishOutcome::kAckTimeout, 11, true);
    EXPECT_FALSE(handle(signed_post("/webhooks/mesh", body)).is_response());
}

TEST_F(Handler, EveryFailedPublicationIs503WithRetryAfterAndCountedByReason) {
    const std::pair<PublishOutcome, std::string> cases[] = {
        {PublishOutcome::kQueueFull, "queue_full"},
        {PublishOutcome::kAckTimeout, "ack_timeout"},
        {PublishOutcome::kDeliveryFailed, "delivery_failed"},
        {PublishOutcome::kDraining, "draining"},
    };
    for (const auto& [outcome, reason] : cases) {
        auto action = handle(signed_post("/webhooks/mesh", fixture("03-succeeded.json")));
        const auto res = handler_.complete(action.publication(), outcome, 11, true);
        EXPECT_EQ(res.result_int(), 503u) << reason;
        EXPECT_EQ(res[http::field::retry_after], "1") << reason;
        EXPECT_NE(res.body().find(reason), std::string::npos) << res.body();
        EXPECT_EQ(counter("meshhook_ingest_unavailable_total", {{"reason", reason}}), 1u) << reason;
    }
    EXPECT_EQ(counter("meshhook_ingest_published_total", {{"environment", "production"}}), 0u);
}

TEST_F(Handler, SignedButTruncatedBodyIsDeadLetteredWithItsReason) {
    const auto body = fixture("90-malformed-truncated.json");
    const auto request = signed_post("/webhooks/mesh", body);
    auto action = handle(request);
    ASSERT_FALSE(action.is_response());
    const auto& pub = action.publication();
    EXPECT_EQ(pub.kind, Publication::Kind::kDeadLetter);
    EXPECT_EQ(pub.topic, "mesh.transfer-events.dlq");
    EXPECT_EQ(pub.value, body);
    EXPECT_EQ(header_of(pub, "reason"), "invalid_json");
    EXPECT_EQ(header_of(pub, "environment"), "production");
    EXPECT_NE(header_of(pub, "received-at"), "<absent>");
    // 400 only once the DLQ holds it; counted then.
    const auto res = handler_.complete(pub, PublishOutcome::kAcknowledged, 11, true);
    EXPECT_EQ(res.result_int(), 400u);
    EXPECT_NE(res.body().find(R"("deadLettered":true)"), std::string::npos);
    EXPECT_EQ(counter("meshhook_ingest_dlq_writes_total",
                      {{"environment", "production"}, {"reason", "invalid_json"}}),
              1u);
}

TEST_F(Handler, SignedBodyWithoutTransferIdIsDeadLetteredWithItsDeliveryId) {
    auto action = handle(signed_post("/webhooks/mesh", fixture("91-missing-transfer-id.json")));
    ASSERT_FALSE(action.is_response());
    const auto& pub = action.publication();
    EXPECT_EQ(pub.kind, Publication::Kind::kDeadLetter);
    EXPECT_EQ(header_of(pub, "reason"), "missing_transfer_id");
    EXPECT_NE(header_of(pub, "delivery-id"), "<absent>");
    EXPECT_EQ(pub.key, header_of(pub, "delivery-id"));
}

TEST_F(Handler, SignedEventWithAnUnusableTransferIdOrEventIdIsDeadLettered) {
    // The consumer would refuse these ids (a NUL, which PostgreSQL cannot
    // hold; over 256 bytes): the delivery is kept whole in the DLQ instead.
    const std::string transfer = "4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01";
    const std::string event = "7d3e5f10-1111-4a2b-9c3d-000000000003";
    const std::string base = fixture("03-succeeded.json");
    const auto with = [&](const std::string& from, const std::string& to) {
        std::string body = base;
        body.replace(body.find(from), from.size(), to);
        return body;
    };
    const std::vector<std::tuple<std::string, std::string, std::string>> cases{
        {with(transfer, transfer + R"(\u0000x)"), "unusable_transfer_id", "control_character"},
        {with(transfer, std::string(5 * 1024, 'x')), "unusable_transfer_id", "too_long"},
        {with(event, std::string(300, 'e')), "unusable_event_id", "too_long"},
    };
    for (const auto& [body, reason, problem] : cases) {
        const auto request = signed_post("/webhooks/mesh", body);  // pub.value views it
        auto action = handle(request);
        ASSERT_FALSE(action.is_response()) << reason;
        const auto& pub = action.publication();
        EXPECT_EQ(pub.kind, Publication::Kind::kDeadLetter) << reason;
        EXPECT_EQ(pub.topic, "mesh.transfer-events.dlq");
        EXPECT_EQ(pub.value, body);
        EXPECT_EQ(header_of(pub, "reason"), reason);
        EXPECT_NE(header_of(pub, "detail").find(problem), std::string::npos)
            << header_of(pub, "detail");
        EXPECT_EQ(handler_.complete(pub, PublishOutcome::kAcknowledged, 11, true).result_int(),
                  400u);
    }
    EXPECT_EQ(counter("meshhook_ingest_dlq_writes_total",
                      {{"environment", "production"}, {"reason", "unusable_transfer_id"}}),
              2u);
    EXPECT_EQ(counter("meshhook_ingest_dlq_writes_total",
                      {{"environment", "production"}, {"reason", "unusable_event_id"}}),
              1u);
}

TEST_F(Handler, DeadLetterThatKafkaDidNotTakeIs503NotDropped) {
    auto action = handle(signed_post("/webhooks/mesh", fixture("91-missing-transfer-id.json")));
    const auto res = handler_.complete(action.publication(), PublishOutcome::kAckTimeout, 11, true);
    EXPECT_EQ(res.result_int(), 503u);
    EXPECT_EQ(counter("meshhook_ingest_dlq_writes_total",
                      {{"environment", "production"}, {"reason", "missing_transfer_id"}}),
              0u);
}

TEST_F(Handler, RefusesSignaturesByReasonWith401AndCountsThem) {
    const auto body = fixture("01-pending.json");
    const std::pair<Request, std::string> cases[] = {
        {post("/webhooks/mesh", body, std::nullopt), "missing_header"},
        {post("/webhooks/mesh", body, ""), "missing_header"},
        {post("/webhooks/mesh", body, "bm90IGEgZGlnZXN0"), "undecodable"},
        {signed_post("/webhooks/mesh", body, "whsec_wrong"), "mismatch"},
        {signed_post("/webhooks/mesh", body, kSandboxSecret), "mismatch"},
    };
    for (const auto& [request, reason] : cases) {
        auto action = handle(request);
        ASSERT_TRUE(action.is_response()) << reason;
        EXPECT_EQ(action.response().result_int(), 401u) << reason;
        EXPECT_NE(action.response().body().find(reason), std::string::npos);
    }
    EXPECT_EQ(counter("meshhook_ingest_signature_failures_total",
                      {{"environment", "production"}, {"reason", "missing_header"}}),
              2u);
    EXPECT_EQ(counter("meshhook_ingest_signature_failures_total",
                      {{"environment", "production"}, {"reason", "undecodable"}}),
              1u);
    EXPECT_EQ(counter("meshhook_ingest_signature_failures_total",
                      {{"environment", "production"}, {"reason", "mismatch"}}),
              2u);
}

TEST_F(Handler, RejectsBodySignedWithRotatedOutSecret) {
    const auto body = fixture("01-pending.json");
    EXPECT_FALSE(handle(signed_post("/webhooks/mesh", body, "whsec_rotated_in")).is_response());
    EXPECT_FALSE(handle(signed_post("/webhooks/mesh", body, kSecret)).is_response());
    auto out = handle(signed_post("/webhooks/mesh", body, "whsec_rotated_out"));
    ASSERT_TRUE(out.is_response());
    EXPECT_EQ(out.response().result_int(), 401u);
}

TEST_F(Handler, AcceptsTheLegacySignatureHeaderName) {
    const auto body = fixture("02-processing.json");
    auto action = handle(
        post("/webhooks/mesh", body, common::sign(kSecret, body), common::kLegacySignatureHeader));
    EXPECT_FALSE(action.is_response());
}

TEST_F(Handler, EachEnvironmentRouteUsesOnlyItsOwnSecrets) {
    const auto body = fixture("06-camelcase-succeeded.json");
    auto sandbox = handle(signed_post("/webhooks/mesh/sandbox", body, kSandboxSecret));
    ASSERT_FALSE(sandbox.is_response());
    EXPECT_EQ(header_of(sandbox.publication(), "environment"), "sandbox");
    auto crossed = handle(signed_post("/webhooks/mesh/sandbox", body, kSecret));
    ASSERT_TRUE(crossed.is_response());
    EXPECT_EQ(crossed.response().result_int(), 401u);
    EXPECT_EQ(counter("meshhook_ingest_signature_failures_total",
                      {{"environment", "sandbox"}, {"reason", "mismatch"}}),
              1u);
    auto unknown = handle(signed_post("/webhooks/mesh/staging", body, kSecret));
    ASSERT_TRUE(unknown.is_response());
    EXPECT_EQ(unknown.response().result_int(), 404u);
}

TEST_F(Handler, QueryStringDoesNotChangeTheRoute) {
    const auto body = fixture("01-pending.json");
    EXPECT_FALSE(handle(signed_post("/webhooks/mesh?source=mesh", body)).is_response());
}

TEST_F(Handler, WrongMethodIs405WithAllowAndUnknownPathIs404) {
    auto get_webhook = handle(get("/webhooks/mesh"));
    ASSERT_TRUE(get_webhook.is_response());
    EXPECT_EQ(get_webhook.response().result_int(), 405u);
    EXPECT_EQ(get_webhook.response()[http::field::allow], "POST");
    auto post_metrics = admin(post("/metrics", "{}", std::nullopt));
    EXPECT_EQ(post_metrics.response().result_int(), 405u);
    EXPECT_EQ(post_metrics.response()[http::field::allow], "GET");
    auto unknown = handle(get("/nope"));
    EXPECT_EQ(unknown.route, Route::kOther);
    EXPECT_EQ(unknown.response().result_int(), 404u);
}

TEST_F(Handler, ReadyzFollowsTheReadinessFlagAndHealthzIsAlwaysUp) {
    EXPECT_EQ(admin(get("/healthz")).response().result_int(), 200u);
    EXPECT_EQ(admin(get("/readyz")).response().result_int(), 503u);
    ready_ = true;
    EXPECT_EQ(admin(get("/readyz")).response().result_int(), 200u);
    EXPECT_EQ(admin(get("/healthz")).route, Route::kHealthz);
    EXPECT_EQ(admin(get("/readyz")).route, Route::kReadyz);
}

TEST_F(Handler, EachListenerServesOnlyItsOwnRoutes) {
    ready_ = true;
    for (const auto* path : {"/healthz", "/readyz", "/metrics"}) {
        const auto action = handle(get(path));
        ASSERT_TRUE(action.is_response());
        EXPECT_EQ(action.route, Route::kOther) << path;
        EXPECT_EQ(std::get<Response>(action.next).result_int(), 404u) << path;
    }
    auto webhook = admin(signed_post("/webhooks/mesh", fixture("03-succeeded.json")));
    ASSERT_TRUE(webhook.is_response());
    EXPECT_EQ(webhook.response().result_int(), 404u);
}

TEST_F(Handler, MetricsRouteRendersThePrometheusText) {
    metrics_.request_answered(Route::kWebhook, 200, 0.004);
    auto action = admin(get("/metrics"));
    EXPECT_EQ(action.route, Route::kMetrics);
    const auto& res = action.response();
    EXPECT_EQ(res.result_int(), 200u);
    EXPECT_NE(res[http::field::content_type].find("text/plain; version=0.0.4"), std::string::npos);
    EXPECT_NE(res.body().find(R"(meshhook_ingest_requests_total{route="webhook",status="200"} 1)"),
              std::string::npos);
}

TEST_F(Handler, ConnectionCloseIsHonouredInTheResponse) {
    Request r = get("/healthz");
    r.keep_alive(false);
    EXPECT_FALSE(admin(r).response().keep_alive());
    auto action = handler_.handle(get("/webhooks/mesh"),
                                  {IpAddress::parse("20.22.113.37").value(), false}, kNow);
    EXPECT_FALSE(action.response().keep_alive());
}

TEST_F(Handler, BodyOverTheLimitIs413EvenIfSigned) {
    std::string body(config_.max_body_bytes + 1, 'x');
    auto action = handle(signed_post("/webhooks/mesh", body));
    ASSERT_TRUE(action.is_response());
    EXPECT_EQ(action.response().result_int(), 413u);
}

class HandlerWithAllowList : public Handler {
protected:
    static IngestConfig config() {
        auto c = test_config();
        c.allow_ips = parse_networks("--allow-ips", "20.22.113.37/32");
        c.trusted_proxies = parse_networks("--trusted-proxies", "10.0.0.0/8");
        return c;
    }
    HandlerWithAllowList() : Handler(config()) {}
};

TEST_F(HandlerWithAllowList, RefusesAddressesOutsideTheList) {
    const auto body = fixture("01-pending.json");
    EXPECT_FALSE(handle(signed_post("/webhooks/mesh", body), "20.22.113.37").is_response());
    EXPECT_FALSE(handle(signed_post("/webhooks/mesh", body), "::ffff:20.22.113.37").is_response());
    auto other = handle(signed_post("/webhooks/mesh", body), "198.51.100.1");
    ASSERT_TRUE(other.is_response());
    EXPECT_EQ(other.response().result_int(), 403u);
    // Health endpoints are for the platform, not for Mesh: on the admin
    // listener, not behind the list.
    EXPECT_EQ(admin(get("/healthz")).response().result_int(), 200u);
}

TEST_F(HandlerWithAllowList, BelievesForwardedForOnlyFromTrustedProxies) {
    const auto body = fixture("01-pending.json");
    auto via_proxy = signed_post("/webhooks/mesh", body);
    via_proxy.set("X-Forwarded-For", "20.22.113.37");
    EXPECT_FALSE(handle(via_proxy, "10.1.2.3").is_response());
    // The same header straight from the internet is the client's own claim.
    auto direct = handle(via_proxy, "198.51.100.1");
    ASSERT_TRUE(direct.is_response());
    EXPECT_EQ(direct.response().result_int(), 403u);
    // A client-supplied prefix does not help: the proxy's appended hop decides.
    auto forged = signed_post("/webhooks/mesh", body);
    forged.set("X-Forwarded-For", "20.22.113.37, 198.51.100.1");
    auto res = handle(forged, "10.1.2.3");
    ASSERT_TRUE(res.is_response());
    EXPECT_EQ(res.response().result_int(), 403u);
}

class HandlerWithReplayWindow : public Handler {
protected:
    static IngestConfig config() {
        auto c = test_config();
        c.max_sent_age = 300s;
        return c;
    }
    HandlerWithReplayWindow() : Handler(config()) {}

    std::string body_sent_at(std::int64_t sent) {
        return R"({"Id":"d1","EventId":"e1","SentTimestamp":)" + std::to_string(sent) +
               R"(,"TransferId":"t1","TransferStatus":"Pending"})";
    }
};

TEST_F(HandlerWithReplayWindow, AcceptsDeliveriesSentInsideTheWindowInSecondsOrMilliseconds) {
    EXPECT_EQ(
        handle(signed_post("/webhooks/mesh", body_sent_at(1'795'860'000 - 299))).publication().kind,
        Publication::Kind::kEvent);
    EXPECT_EQ(handle(signed_post("/webhooks/mesh", body_sent_at(1'795'860'000'000 + 1000)))
                  .publication()
                  .kind,
              Publication::Kind::kEvent);
}

// Untrusted signed integers: `now - sent` used to overflow. With sent =
// now + INT64_MIN the age wrapped to INT64_MIN, both window checks passed and
// the delivery was published as fresh.
TEST_F(HandlerWithReplayWindow, RefusesTimestampsThatAreNotTimesWithoutOverflow) {
    constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
    constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
    for (const std::int64_t sent :
         {std::int64_t{1'795'860'000} + kMin, kMin, kMax, std::int64_t{-1}, kMax - 1}) {
        auto action = handle(signed_post("/webhooks/mesh", body_sent_at(sent)));
        ASSERT_TRUE(action.is_response()) << sent;
        EXPECT_EQ(action.response().result_int(), 400u) << sent;
        EXPECT_NE(action.response().body().find("sent_timestamp_outside_window"),
                  std::string::npos);
    }
    // Milliseconds at the edge of the window are read as milliseconds.
    EXPECT_EQ(handle(signed_post("/webhooks/mesh", body_sent_at(1'795'860'000'000 - 299'000)))
                  .publication()
                  .kind,
              Publication::Kind::kEvent);
}

// A stale body is a replay: answered 400 with nothing to produce, so each
// replay costs no Kafka write. One without SentTimestamp cannot be judged and
// goes to the DLQ like any other unusable signed delivery.
TEST_F(HandlerWithReplayWindow, RefusesDeliveriesSentOutsideTheWindowWithoutAPublication) {
    for (const auto sent : {std::int64_t{1'795'860'000 - 301}, std::int64_t{1'795'860'000 + 301},
                            std::int64_t{1'795'860'000'000 - 301'000}}) {
        auto action = handle(signed_post("/webhooks/mesh", body_sent_at(sent)));
        ASSERT_TRUE(action.is_response()) << sent;
        EXPECT_EQ(action.response().result_int(), 400u);
        EXPECT_NE(action.response().body().find("sent_timestamp_outside_window"),
                  std::string::npos);
    }
    auto missing = handle(
        signed_post("/webhooks/mesh",
                    std::string(R"({"Id":"d1","TransferId":"t1","TransferStatus":"Pending"})")));
    EXPECT_EQ(header_of(missing.publication(), "reason"), "missing_sent_timestamp");
}

TEST(ErrorResponse, IsJsonWithRetryAfterOnlyFor503) {
    const auto res = error_response(503, "unavailable", "say \"why\"", 11, true);
    EXPECT_EQ(res[http::field::content_type], "application/json");
    EXPECT_EQ(res[http::field::retry_after], "1");
    EXPECT_EQ(res.body(), R"({"error":"unavailable","message":"say \"why\""})");
    EXPECT_EQ(error_response(400, "x", "y", 11, true).count(http::field::retry_after), 0u);
}

}  // namespace
}  // namespace meshhook::ingest
