// The pure parts of reconciliation: Mesh API settings, list pages, the
// list item -> webhook event mapping and what a pass acts on.

#include "consumer/reconcile.hpp"

#include <gtest/gtest.h>

#include "common/config.hpp"
#include "common/transfer_event.hpp"

namespace meshhook::consumer {
namespace {

using namespace std::chrono_literals;

constexpr std::string_view kPage = R"({
  "status": "ok", "message": "", "displayMessage": null, "errorType": null, "errorData": null,
  "content": {
    "items": [
      {"id": "a0000000-0000-4000-8000-000000000001", "clientTransactionId": "tx-1",
       "userId": "user-7", "status": "succeeded", "amount": 250.5,
       "destinationAmount": 250.000000000000000001, "sourceAmount": 250.1,
       "symbol": "USDC", "networkId": "e3c7fdd8-b1fc-4e51-85ae-bb276e075611",
       "networkName": "Ethereum", "hash": "0xabc", "destinationAddress": "0x9f8e",
       "refundAddress": null, "createdTimestamp": 1764316800, "executedTimestamp": 1764316859,
       "transferType": "deposit", "from": {"type": "cex", "name": "Coinbase"},
       "fees": [{"amount": 0.1}]},
      {"id": "b0000000-0000-4000-8000-000000000002", "status": "Pending",
       "destinationAmount": "17.5", "hash": null, "createdTimestamp": "2025-11-28T08:00:00.250Z"}
    ],
    "total": 7,
    "hasMorePages": true
  }
})";

TEST(ReconcileListPage, ParsesItemsKeepingTheAmountTextAndThePagingFields) {
    std::string error;
    const auto page = parse_list_page(kPage, error);
    ASSERT_TRUE(page.has_value()) << error;
    EXPECT_EQ(page->status, "ok");
    EXPECT_EQ(page->total, 7);
    EXPECT_TRUE(page->has_more_pages);
    ASSERT_EQ(page->items.size(), 2U);
    const ListItem& a = page->items[0];
    EXPECT_EQ(a.id, "a0000000-0000-4000-8000-000000000001");
    EXPECT_EQ(a.client_transaction_id, "tx-1");
    EXPECT_EQ(a.user_id, "user-7");
    EXPECT_EQ(a.status, "succeeded");
    EXPECT_EQ(a.destination_amount, "250.000000000000000001");
    EXPECT_EQ(a.symbol, "USDC");
    EXPECT_EQ(a.network_name, "Ethereum");
    EXPECT_EQ(a.hash, "0xabc");
    EXPECT_EQ(a.destination_address, "0x9f8e");
    EXPECT_EQ(a.created_ms, std::optional<std::int64_t>(1764316800000));
    EXPECT_EQ(a.executed_ms, std::optional<std::int64_t>(1764316859000));
    const ListItem& b = page->items[1];
    EXPECT_EQ(b.status, "Pending");
    EXPECT_EQ(b.destination_amount, "17.5");  // a string holding a number
    EXPECT_TRUE(b.hash.empty());
    EXPECT_EQ(b.created_ms, std::optional<std::int64_t>(1764316800250));
    EXPECT_FALSE(b.executed_ms.has_value());
}

TEST(ReconcileListPage, LastPageSaysNoMorePages) {
    std::string error;
    const auto page = parse_list_page(
        R"({"status":"ok","content":{"items":[],"total":0,"hasMorePages":false}})", error);
    ASSERT_TRUE(page.has_value()) << error;
    EXPECT_TRUE(page->items.empty());
    EXPECT_FALSE(page->has_more_pages);
}

TEST(ReconcileListPage, FailureEnvelopeParsesWithItsStatus) {
    std::string error;
    const auto page =
        parse_list_page(R"({"status":"tooManyRequest","message":"slow down","displayMessage":null,)"
                        R"("errorType":"tooManyRequest","errorData":null,"content":null})",
                        error);
    ASSERT_TRUE(page.has_value()) << error;
    EXPECT_EQ(page->status, "tooManyRequest");
    EXPECT_EQ(page->message, "slow down");
    EXPECT_TRUE(page->items.empty());
}

TEST(ReconcileListPage, RefusesWhatIsNotAnEnvelopeOrAnItemWithoutIdOrABadAmount) {
    std::string error;
    EXPECT_FALSE(parse_list_page("<html>", error).has_value());
    EXPECT_FALSE(parse_list_page(R"({"content":{}})", error).has_value());  // no status
    EXPECT_FALSE(
        parse_list_page(R"({"status":"ok","content":{"items":[{"status":"failed"}]}})", error)
            .has_value());
    EXPECT_FALSE(
        parse_list_page(
            R"({"status":"ok","content":{"items":[{"id":"x","destinationAmount":"12 USDC"}]}})",
            error)
            .has_value());
}

TEST(ReconcileEvent, MapsEveryFieldIntoTheWebhookShapeWithTheExactAmount) {
    std::string error;
    const auto page = parse_list_page(kPage, error);
    ASSERT_TRUE(page.has_value()) << error;
    const std::string body = synthesize_event(page->items[0], 1764400000123);
    EXPECT_NE(body.find(R"("DestinationAmount":250.000000000000000001)"), std::string::npos)
        << body;

    common::TransferEventParser parser;
    const auto parsed = parser.parse(body);
    ASSERT_TRUE(parsed.ok()) << parsed.error.message();
    const auto& e = parsed.event;
    EXPECT_EQ(e.transfer_id.value, "a0000000-0000-4000-8000-000000000001");
    EXPECT_EQ(e.event_id.value, "reconcile:a0000000-0000-4000-8000-000000000001:succeeded");
    EXPECT_EQ(e.id.value, "reconcile:a0000000-0000-4000-8000-000000000001:succeeded:1764400000123");
    EXPECT_EQ(e.status, common::TransferStatus::kSucceeded);
    EXPECT_EQ(e.destination_amount.value, "250.000000000000000001");
    EXPECT_EQ(e.token.value, "USDC");
    EXPECT_EQ(e.chain.value, "Ethereum");
    EXPECT_EQ(e.tx_hash.value, "0xabc");
    EXPECT_EQ(e.user_id.value, "user-7");
    EXPECT_EQ(e.transaction_id.value, "tx-1");
    EXPECT_EQ(e.destination_address.value, "0x9f8e");
    EXPECT_EQ(e.timestamp_value, 1764316859000);  // executedTimestamp, in ms
    EXPECT_EQ(e.sent_timestamp_value, 1764400000);
    EXPECT_TRUE(e.source_amount.is_absent());  // the webhook's, not the list's
}

TEST(ReconcileEvent, EventIdIsStablePerTransferAndStatusWhateverTheCasing) {
    EXPECT_EQ(synthesized_event_id("t-1", "Succeeded"), synthesized_event_id("t-1", "succeeded"));
    EXPECT_NE(synthesized_event_id("t-1", "pending"), synthesized_event_id("t-1", "succeeded"));
    ListItem item;
    item.id = "t-1";
    item.status = "Succeeded";
    item.destination_amount = "1";
    const std::string first = synthesize_event(item, 1000);
    const std::string later = synthesize_event(item, 99000);
    common::TransferEventParser parser;
    const std::string first_id(parser.parse(first).event.event_id.value);
    EXPECT_EQ(first_id, std::string(parser.parse(later).event.event_id.value));
}

TEST(ReconcileEvent, OmitsWhatTheListDoesNotSayAndEscapesStrings) {
    ListItem item;
    item.id = "t-\"2\"";
    item.status = "failed";
    const std::string body = synthesize_event(item, 5000);
    common::TransferEventParser parser;
    const auto parsed = parser.parse(body);
    ASSERT_TRUE(parsed.ok()) << body;
    EXPECT_EQ(parsed.event.transfer_id.value, "t-\"2\"");
    EXPECT_TRUE(parsed.event.destination_amount.is_absent());
    EXPECT_TRUE(parsed.event.tx_hash.is_absent());
    EXPECT_TRUE(parsed.event.timestamp.is_absent());
}

TEST(ReconcilePaging, TargetCarriesCountOffsetAndTheWindowInSeconds) {
    EXPECT_EQ(list_target("", 100, 200, 1764316800),
              "/api/v1/transfers/managed/mesh?Count=100&Offset=200&FromTimestamp=1764316800"
              "&OrderBy=createdTimestamp&DescendingOrder=false");
    EXPECT_EQ(list_target("/mesh", 2, 0, 5).substr(0, 36), "/mesh/api/v1/transfers/managed/mesh?");
}

TEST(ReconcileClassify, MissingStaleOrNothing) {
    const std::int64_t now = 1764400000000;
    ListItem item;
    item.id = "t";
    item.status = "succeeded";
    item.created_ms = now - 3600'000;
    EXPECT_EQ(classify(item, std::nullopt, now, 900s), Finding::kMissing);

    TransferRow pending;
    pending.status = "pending";
    pending.rank = 1;
    pending.last_seen_ms = now - 1000'000;
    EXPECT_EQ(classify(item, pending, now, 900s), Finding::kStale);
    pending.last_seen_ms = now - 10'000;  // its webhook may still be on the way
    EXPECT_EQ(classify(item, pending, now, 900s), Finding::kNone);

    TransferRow done;
    done.status = "succeeded";
    done.rank = 3;
    EXPECT_EQ(classify(item, done, now, 0s), Finding::kNone);

    item.status = "processing";  // not final at Mesh: nothing to tell a pending row
    EXPECT_EQ(classify(item, pending, now, 0s), Finding::kNone);
    item.status = "failed";
    item.created_ms = now - 10'000;  // too recent for a transfer never heard of
    EXPECT_EQ(classify(item, std::nullopt, now, 900s), Finding::kNone);
}

TEST(ReconcileClassify, ACreditMeshContradictsIsForAHumanNeverActedOn) {
    const std::int64_t now = 1764400000000;
    ListItem item;
    item.id = "t";
    item.status = "Succeeded";
    item.destination_amount = "250.0100";
    TransferRow credited;
    credited.status = "succeeded";
    credited.rank = 3;
    credited.credited = true;
    credited.amount = "250.01";
    EXPECT_EQ(classify(item, credited, now, 0s), Finding::kNone);  // the same decimal
    item.destination_amount = "250.02";
    EXPECT_EQ(classify(item, credited, now, 0s), Finding::kAmountDiffers);
    item.status = "failed";
    EXPECT_EQ(classify(item, credited, now, 0s), Finding::kFailedAtMesh);
    EXPECT_FALSE(acted_on(Finding::kAmountDiffers));
    EXPECT_FALSE(acted_on(Finding::kFailedAtMesh));
    EXPECT_TRUE(acted_on(Finding::kMissing));
    EXPECT_TRUE(acted_on(Finding::kStale));
    credited.credited = false;  // went to review: not credited here
    EXPECT_EQ(classify(item, credited, now, 0s), Finding::kNone);
}

TEST(ReconcileDecimal, EqualValuesWrittenDifferently) {
    EXPECT_TRUE(same_decimal("9.99", "9.990"));
    EXPECT_TRUE(same_decimal("009.99", "9.99"));
    EXPECT_TRUE(same_decimal("10", "10.000"));
    EXPECT_TRUE(same_decimal("0.000000000000000001", "0.0000000000000000010"));
    EXPECT_FALSE(same_decimal("250.000000000000000001", "250"));
    EXPECT_FALSE(same_decimal("100", "10"));
    EXPECT_FALSE(same_decimal("1.5", "15"));
}

TEST(ReconcileLookup, TargetNamesTheTransferPercentEncoded) {
    EXPECT_EQ(lookup_target("", "a0000000-0000-4000-8000-000000000001"),
              "/api/v1/transfers/managed/mesh?Id=a0000000-0000-4000-8000-000000000001"
              "&Count=10&Offset=0");
    EXPECT_EQ(lookup_target("/p", "a b&c=d/é"),
              "/p/api/v1/transfers/managed/mesh?Id=a%20b%26c%3Dd%2F%C3%A9&Count=10&Offset=0");
}

// ReconcileConfig carries no second spelling of its settings' defaults:
// loaded from the declared settings, each field is the declared default.
TEST(ReconcileSettings, LoadedFromTheDeclarationsEachFieldIsTheDeclaredDefault) {
    common::Settings declared("meshhook-consumer", "test");
    declare_reconcile_settings(declared, true);
    const ReconcileConfig c = load_reconcile_config(declared, true);
    EXPECT_EQ(std::to_string(c.interval.count()), declared.get("reconcile-interval-s"));
    EXPECT_EQ(std::to_string(c.stale_after.count()), declared.get("reconcile-stale-after-s"));
    EXPECT_EQ(std::to_string(c.lookback.count()), declared.get("reconcile-lookback-s"));
    EXPECT_EQ(std::to_string(c.calls_per_second), declared.get("reconcile-calls-per-s"));
    EXPECT_EQ(std::to_string(c.call_timeout.count()), declared.get("reconcile-call-timeout-ms"));
    EXPECT_EQ(std::to_string(c.unauthorized_wait.count()),
              declared.get("reconcile-unauthorized-wait-s"));

    // `meshhook reconcile` declares no interval: one pass, none loaded.
    common::Settings one_pass("meshhook reconcile", "test");
    declare_reconcile_settings(one_pass, false);
    const ReconcileConfig once = load_reconcile_config(one_pass, false);
    EXPECT_EQ(once.interval.count(), 0);
    EXPECT_EQ(once.lookback, c.lookback);
}

TEST(ReconcileSettings, ProductionAndPerEnvironmentCredentialsWithDefaultUrls) {
    std::vector<std::string> warnings;
    const auto envs = mesh_environments({{"MESH_CLIENT_ID", "id"},
                                         {"MESH_CLIENT_SECRET", "s"},
                                         {"MESH_CLIENT_ID_SANDBOX", "sid"},
                                         {"MESH_CLIENT_SECRET_SANDBOX", "ss"},
                                         {"MESH_API_URL_SANDBOX", "http://127.0.0.1:8080/"}},
                                        warnings);
    ASSERT_EQ(envs.size(), 2U);
    EXPECT_EQ(envs[0].name, "production");
    EXPECT_EQ(envs[0].api_url, kMeshProductionApi);
    EXPECT_EQ(envs[1].name, "sandbox");
    EXPECT_EQ(envs[1].api_url, "http://127.0.0.1:8080");
    ASSERT_EQ(warnings.size(), 1U);  // plain http
    EXPECT_NE(warnings[0].find("MESH_API_URL_SANDBOX"), std::string::npos);
    EXPECT_EQ(warnings[0].find("ss"), std::string::npos);
}

TEST(ReconcileSettings, RefusesHalfAPairAndAnUnknownEnvironmentWithoutUrl) {
    std::vector<std::string> warnings;
    EXPECT_THROW(mesh_environments({{"MESH_CLIENT_ID", "id"}}, warnings), common::ConfigError);
    EXPECT_THROW(mesh_environments({{"MESH_CLIENT_SECRET_SANDBOX", "s"}}, warnings),
                 common::ConfigError);
    EXPECT_THROW(
        mesh_environments({{"MESH_CLIENT_ID_EU", "i"}, {"MESH_CLIENT_SECRET_EU", "s"}}, warnings),
        common::ConfigError);
    EXPECT_THROW(
        mesh_environments(
            {{"MESH_CLIENT_ID", "i"}, {"MESH_CLIENT_SECRET", "s"}, {"MESH_API_URL", "ftp://x"}},
            warnings),
        common::ConfigError);
    EXPECT_TRUE(mesh_environments({{"MESH_CLIENT_ID", ""}}, warnings).empty());  // empty = unset
}

TEST(ReconcileSettings, ParsesBaseUrls) {
    std::string error;
    const auto https = parse_api_url("https://integration-api.meshconnect.com", error);
    ASSERT_TRUE(https.has_value()) << error;
    EXPECT_TRUE(https->tls);
    EXPECT_EQ(https->port, 443);
    EXPECT_EQ(https->base_path, "");
    const auto http = parse_api_url("http://[::1]:9000/prefix/", error);
    ASSERT_TRUE(http.has_value()) << error;
    EXPECT_FALSE(http->tls);
    EXPECT_EQ(http->host, "::1");
    EXPECT_EQ(http->port, 9000);
    EXPECT_EQ(http->base_path, "/prefix");
    EXPECT_FALSE(parse_api_url("https://:0", error).has_value());
}

TEST(ReconcileTimestamps, SecondsMillisecondsAndIsoStrings) {
    EXPECT_EQ(parse_mesh_timestamp("1764316800", true), 1764316800000);
    EXPECT_EQ(parse_mesh_timestamp("1764316800123", true), 1764316800123);
    EXPECT_EQ(parse_mesh_timestamp("2025-11-28T08:00:00Z", false), 1764316800000);
    EXPECT_EQ(parse_mesh_timestamp("2025-11-28T08:00:00.5+00:00", false), 1764316800500);
    EXPECT_FALSE(parse_mesh_timestamp("yesterday", false).has_value());
    EXPECT_FALSE(parse_mesh_timestamp("2025-11-28T08:00:00+02:00", false).has_value());
}

}  // namespace
}  // namespace meshhook::consumer
