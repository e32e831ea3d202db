// Reconciliation end to end: meshhook-consumer against `meshhook mesh` (the
// Mesh API simulator, over HTTP) and `meshhook broker`. Transfers whose
// webhooks never arrived are credited exactly once with their exact amount;
// a late webhook afterwards creates nothing; a 429 and a wrong secret are
// survived.

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "consumer/store.hpp"
#include "tests/integration/consumer/harness.hpp"
#include "tests/support/process.hpp"

namespace meshhook::testing {
namespace {

const std::string kClientId = "test-client";
const std::string kClientSecret = "test-secret-1";

// `meshhook mesh` with its control channel.
class MeshSimulator {
public:
    explicit MeshSimulator(std::vector<std::string> extra = {}) {
        std::vector<std::string> argv{binary_path("meshhook").string(),
                                      "mesh",
                                      "--client-id",
                                      kClientId,
                                      "--client-secret",
                                      kClientSecret};
        argv.insert(argv.end(), extra.begin(), extra.end());
        process_ = std::make_unique<Process>(argv);
        const auto line = process_->read_line(10s);
        EXPECT_TRUE(line && line->starts_with("listen=")) << process_->stderr_text();
        url_ = "http://" + (line ? line->substr(7) : std::string());
    }
    void transfer(const std::string& line) {
        process_->write_line("transfer " + line);
        EXPECT_EQ(process_->read_line(5s), std::optional<std::string>("ok")) << line;
    }
    std::string stats() {
        process_->write_line("stats");
        return process_->read_line(5s).value_or("");
    }
    const std::string& url() const { return url_; }

private:
    std::unique_ptr<Process> process_;
    std::string url_;
};

std::string webhook(const std::string& transfer, const std::string& status,
                    const std::string& amount, const std::string& event_id) {
    return R"({"Id":")" + event_id + R"(-d","EventId":")" + event_id + R"(","TransferId":")" +
           transfer + R"(","TransferStatus":")" + status +
           R"(","Timestamp":1764316800000,"UserId":"user-7","Token":"USDC","Chain":"Ethereum","DestinationAmount":)" +
           amount + R"(,"DestinationAddress":"0x9f8e7d6c5b4a39281706f5e4d3c2b1a098765432"})";
}

class Reconcile : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() / unique_name("meshhook-reconcile-it");
        std::filesystem::create_directories(dir_);
        run_.bootstrap = broker_.bootstrap();
        run_.store_url = "sqlite://" + (dir_ / "meshhook.db").string();
        run_.group_id = unique_name("reconcile-group");
        run_.extra_args = {"--reconcile-interval-s", "1", "--reconcile-stale-after-s", "0"};
    }
    void TearDown() override {
        consumer_.reset();
        std::filesystem::remove_all(dir_);
    }
    void start(const MeshSimulator& mesh, const std::string& secret = kClientSecret) {
        run_.env = {{"MESH_CLIENT_ID", kClientId},
                    {"MESH_CLIENT_SECRET", secret},
                    {"MESH_API_URL", mesh.url()}};
        consumer_ = start_consumer(run_);
    }
    // TransferId -> credit payloads.
    std::map<std::string, std::vector<std::string>> credits() {
        return values_by_key(broker_.bootstrap(), kCreditTopic);
    }
    double passes_ok() {
        return metric_sum(run_.metrics_port, "meshhook_consumer_reconcile_passes_total",
                          "outcome=\"ok\"");
    }

    BrokerProcess broker_;
    std::filesystem::path dir_;
    ConsumerRun run_;
    std::unique_ptr<Process> consumer_;
};

TEST_F(Reconcile, MissedWebhooksAreCreditedOnceWithTheExactAmountAndLateWebhooksChangeNothing) {
    // Pages of 2 (so a pass pages three times) and a 429 every 4th request.
    MeshSimulator mesh({"--max-count", "2", "--rate-limit-every", "4"});
    const std::string never = "a0000000-0000-4000-8000-000000000001";      // no webhook at all
    const std::string stuck = "b0000000-0000-4000-8000-000000000002";      // only its pending one
    const std::string failed = "c0000000-0000-4000-8000-000000000003";     // failed, never heard
    const std::string pending = "d0000000-0000-4000-8000-000000000004";    // pending at Mesh
    const std::string webhooked = "e0000000-0000-4000-8000-000000000005";  // every webhook came
    const std::string common =
        " symbol=USDC networkName=Ethereum "
        "destinationAddress=0x9f8e7d6c5b4a39281706f5e4d3c2b1a098765432 userId=user-7";
    start(mesh);
    auto store = consumer::open_store(run_.store_url);
    TopicReader reader(broker_.bootstrap());
    {
        Feeder feeder(broker_.bootstrap());
        feeder.send(stuck, webhook(stuck, "Pending", "17.123456789012345678", "evt-b-pending"));
        feeder.send(webhooked, webhook(webhooked, "Succeeded", "9.99", "evt-e-succeeded"));
        feeder.flush();
    }
    // The webhooks that did arrive are applied before Mesh's list shows the
    // transfers, so `stuck` is stale here (pending), not missing.
    ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader); }, 60s))
        << consumer_->stderr_text();
    mesh.transfer(never + " succeeded 250.000000000000000001 hash=0xaaa clientTransactionId=tx-1" +
                  common);
    mesh.transfer(stuck + " succeeded 17.123456789012345678 hash=0xbbb" + common);
    mesh.transfer(failed + " failed 3.5" + common);
    mesh.transfer(pending + " pending 4" + common);
    mesh.transfer(webhooked + " succeeded 9.99 hash=0xeee" + common);

    ASSERT_TRUE(wait_until([&] { return credits().size() >= 3; }, 60s)) << consumer_->stderr_text();
    // More passes find nothing new: the store knows every final status now.
    const double after = passes_ok();
    ASSERT_TRUE(wait_until([&] { return passes_ok() >= after + 2; }, 30s))
        << consumer_->stderr_text();

    // A late webhook for the reconciled transfer: a duplicate, nothing new.
    {
        Feeder feeder(broker_.bootstrap());
        feeder.send(never, webhook(never, "Succeeded", "250.000000000000000001", "evt-a-late"));
        feeder.flush();
    }
    ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader); }, 60s))
        << consumer_->stderr_text();

    const auto by_transfer = credits();
    ASSERT_EQ(by_transfer.size(), 3U);
    ASSERT_EQ(by_transfer.count(never), 1U);
    ASSERT_EQ(by_transfer.at(never).size(), 1U);
    EXPECT_NE(by_transfer.at(never)[0].find(R"("amount":"250.000000000000000001")"),
              std::string::npos)
        << by_transfer.at(never)[0];
    EXPECT_NE(by_transfer.at(never)[0].find(R"("eventId":"reconcile:)" + never + R"(:succeeded")"),
              std::string::npos)
        << by_transfer.at(never)[0];
    EXPECT_NE(by_transfer.at(never)[0].find(R"("transactionId":"tx-1")"), std::string::npos);
    ASSERT_EQ(by_transfer.count(stuck), 1U);
    ASSERT_EQ(by_transfer.at(stuck).size(), 1U);
    EXPECT_NE(by_transfer.at(stuck)[0].find(R"("amount":"17.123456789012345678")"),
              std::string::npos)
        << by_transfer.at(stuck)[0];
    ASSERT_EQ(by_transfer.count(webhooked), 1U);
    EXPECT_EQ(by_transfer.at(webhooked).size(), 1U);
    EXPECT_EQ(by_transfer.count(failed), 0U);
    EXPECT_EQ(by_transfer.count(pending), 0U);

    const auto failed_row = store->transfer("production", failed);
    ASSERT_TRUE(failed_row.has_value());
    EXPECT_EQ(failed_row->status, "failed");
    EXPECT_FALSE(failed_row->credited);
    const auto never_row = store->transfer("production", never);
    ASSERT_TRUE(never_row.has_value());
    EXPECT_TRUE(never_row->credited);
    EXPECT_EQ(never_row->last_event_id, "reconcile:" + never + ":succeeded");

    const std::uint16_t port = run_.metrics_port;
    EXPECT_GE(
        metric_sum(port, "meshhook_consumer_reconcile_api_calls_total", "outcome=\"rate_limited\""),
        1);
    // At least once each (a pass may run again before the consumer applied
    // the last one's events: those dedup).
    EXPECT_GE(
        metric_sum(port, "meshhook_consumer_reconcile_transfers_found_total", "kind=\"missing\""),
        3);  // never, failed, pending
    EXPECT_GE(
        metric_sum(port, "meshhook_consumer_reconcile_transfers_found_total", "kind=\"stale\""), 1);
    EXPECT_GE(metric_sum(port, "meshhook_consumer_reconcile_events_synthesized_total"), 4);
    EXPECT_GT(metric_sum(port, "meshhook_consumer_reconcile_last_success_timestamp_seconds"), 0);
    EXPECT_NE(mesh.stats().find("429:"), std::string::npos);
}

TEST_F(Reconcile, AQuietPendingTransferCreatedBeforeTheWindowIsLookedUpByIdAndCreditedOnce) {
    // The list's window is the last minute; these transfers were created ten
    // days ago, so only a look-up by Id can learn what became of them.
    run_.extra_args = {"--reconcile-interval-s", "1", "--reconcile-stale-after-s", "0",
                       "--reconcile-lookback-s", "60"};
    MeshSimulator mesh;
    const std::string old = "a1000000-0000-4000-8000-000000000001";    // succeeded at Mesh
    const std::string still = "b1000000-0000-4000-8000-000000000002";  // still pending at Mesh
    const std::int64_t ten_days_ago = std::chrono::duration_cast<std::chrono::seconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count() -
                                      864000;
    const std::string created = " created=" + std::to_string(ten_days_ago) +
                                " executed=" + std::to_string(ten_days_ago + 60) +
                                " symbol=USDC networkName=Ethereum userId=user-7 "
                                "destinationAddress=0x9f8e7d6c5b4a39281706f5e4d3c2b1a098765432";
    mesh.transfer(old + " succeeded 31.000000000000000007 hash=0xold" + created);
    mesh.transfer(still + " pending 8" + created);
    start(mesh);
    {
        Feeder feeder(broker_.bootstrap());
        feeder.send(old, webhook(old, "Pending", "31.000000000000000007", "evt-old-pending"));
        feeder.send(still, webhook(still, "Pending", "8", "evt-still-pending"));
        feeder.flush();
    }
    ASSERT_TRUE(wait_until([&] { return credits().count(old) == 1; }, 60s))
        << consumer_->stderr_text();
    // Passes go on looking `still` up; `old` is final here now and is not.
    const double after = passes_ok();
    ASSERT_TRUE(wait_until([&] { return passes_ok() >= after + 2; }, 30s))
        << consumer_->stderr_text();
    auto store = consumer::open_store(run_.store_url);
    TopicReader reader(broker_.bootstrap());
    ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader); }, 60s))
        << consumer_->stderr_text();

    const auto by_transfer = credits();
    ASSERT_EQ(by_transfer.size(), 1U);
    ASSERT_EQ(by_transfer.at(old).size(), 1U);
    EXPECT_NE(by_transfer.at(old)[0].find(R"("amount":"31.000000000000000007")"), std::string::npos)
        << by_transfer.at(old)[0];
    EXPECT_NE(by_transfer.at(old)[0].find(R"("eventId":"reconcile:)" + old + R"(:succeeded")"),
              std::string::npos)
        << by_transfer.at(old)[0];
    EXPECT_EQ(store->transfer("production", still)->status, "pending");
    EXPECT_GE(metric_sum(run_.metrics_port, "meshhook_consumer_reconcile_transfers_found_total",
                         "kind=\"stale\""),
              1);
    EXPECT_EQ(metric_sum(run_.metrics_port, "meshhook_consumer_reconcile_transfers_found_total",
                         "kind=\"missing\""),
              0);  // the list's answer, outside the window, is ignored
    const std::string stats = mesh.stats();
    const auto lookups = stats.find("lookups=");
    ASSERT_NE(lookups, std::string::npos) << stats;
    EXPECT_GE(std::stoi(stats.substr(lookups + 8)), 3) << stats;  // both, then `still` again
}

// `meshhook reconcile`: a dry run says per transfer what Mesh and the store
// each say and writes nothing; --apply produces what the consumer's pass
// would, and a consumer (without reconciliation of its own) credits once.
TEST_F(Reconcile, CliDryRunReportsEachDisagreementAndApplyProducesTheConsumersEvents) {
    MeshSimulator mesh;
    const std::string stale = "a3000000-0000-4000-8000-000000000001";    // pending here
    const std::string differs = "b3000000-0000-4000-8000-000000000002";  // credited 5 here
    const std::string failed = "c3000000-0000-4000-8000-000000000003";   // credited here
    const std::string missing = "d3000000-0000-4000-8000-000000000004";  // never heard of
    const std::string same = "e3000000-0000-4000-8000-000000000005";     // 9.990 here
    const std::string lost = "f3000000-0000-4000-8000-000000000006";     // failed, never heard
    const std::string common =
        " symbol=USDC networkName=Ethereum userId=user-7 "
        "destinationAddress=0x9f8e7d6c5b4a39281706f5e4d3c2b1a098765432";
    mesh.transfer(stale + " succeeded 12.5 hash=0x1" + common);
    mesh.transfer(differs + " succeeded 5.5 hash=0x2" + common);
    mesh.transfer(failed + " failed 7" + common);
    mesh.transfer(missing + " succeeded 100.000000000000000001 hash=0x4" + common);
    mesh.transfer(same + " succeeded 9.99 hash=0x5" + common);
    mesh.transfer(lost + " failed 1" + common);
    consumer_ = start_consumer(run_);  // no MESH_* variables: it does not reconcile
    auto store = consumer::open_store(run_.store_url);
    TopicReader reader(broker_.bootstrap());
    {
        Feeder feeder(broker_.bootstrap());
        feeder.send(stale, webhook(stale, "Pending", "12.5", "evt-1"));
        feeder.send(differs, webhook(differs, "Succeeded", "5", "evt-2"));
        feeder.send(failed, webhook(failed, "Succeeded", "7", "evt-3"));
        feeder.send(same, webhook(same, "Succeeded", "9.990", "evt-5"));
        feeder.flush();
    }
    ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader) && credits().size() == 3; }, 60s))
        << consumer_->stderr_text();
    const std::map<std::string, std::string> env = {{"MESH_CLIENT_ID", kClientId},
                                                    {"MESH_CLIENT_SECRET", kClientSecret},
                                                    {"MESH_API_URL", mesh.url()}};
    auto cli = [&](std::vector<std::string> extra) {
        std::vector<std::string> argv{binary_path("meshhook").string(),
                                      "reconcile",
                                      "--store",
                                      run_.store_url,
                                      "--environment",
                                      "production",
                                      "--reconcile-stale-after-s",
                                      "0"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        Process p(argv, env);
        std::string out = p.read_all(60s);
        const auto code = p.wait(10s);
        return std::make_pair(code.value_or(-1), out + p.stderr_text());
    };
    const std::int64_t input_before = reader.end_offset_sum(kInputTopic);

    const auto [dry_code, dry] = cli({});
    ASSERT_EQ(dry_code, 0) << dry;
    EXPECT_NE(dry.find("stale  " + stale +
                       "  mesh: succeeded 12.5 USDC/Ethereum  store: pending - "
                       "not credited\n"),
              std::string::npos)
        << dry;
    EXPECT_NE(dry.find("amount_differs  " + differs +
                       "  mesh: succeeded 5.5 USDC/Ethereum  store: succeeded 5 credited\n"),
              std::string::npos)
        << dry;
    EXPECT_NE(dry.find("failed_at_mesh  " + failed +
                       "  mesh: failed 7 USDC/Ethereum  store: succeeded 7 credited\n"),
              std::string::npos)
        << dry;
    EXPECT_NE(dry.find("missing  " + missing +
                       "  mesh: succeeded 100.000000000000000001 USDC/Ethereum  store: -\n"),
              std::string::npos)
        << dry;
    EXPECT_NE(dry.find("missing  " + lost + "  mesh: failed 1"), std::string::npos) << dry;
    EXPECT_EQ(dry.find(same), std::string::npos) << dry;  // 9.99 is 9.990
    EXPECT_NE(dry.find("missing 2, stale 1, amount_differs 1, failed_at_mesh 1; dry run: nothing "
                       "produced (--apply would produce 3 events)"),
              std::string::npos)
        << dry;
    EXPECT_EQ(reader.end_offset_sum(kInputTopic), input_before);  // a dry run writes nothing

    const auto [apply_code, applied] = cli({"--apply", "--brokers", broker_.bootstrap()});
    ASSERT_EQ(apply_code, 0) << applied;
    EXPECT_NE(applied.find("3 of 3 events produced"), std::string::npos) << applied;
    ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader) && credits().size() == 5; }, 60s))
        << consumer_->stderr_text();
    const auto by_transfer = credits();
    EXPECT_EQ(by_transfer.at(stale).size(), 1U);
    ASSERT_EQ(by_transfer.at(missing).size(), 1U);
    EXPECT_NE(by_transfer.at(missing)[0].find(R"("amount":"100.000000000000000001")"),
              std::string::npos);
    EXPECT_EQ(by_transfer.count(lost), 0U);
    EXPECT_EQ(store->transfer("production", lost)->status, "failed");

    // Applied twice: the events dedup, nothing new is credited.
    const auto [again_code, again] = cli({"--apply", "--brokers", broker_.bootstrap()});
    ASSERT_EQ(again_code, 0) << again;
    EXPECT_NE(again.find("missing 0, stale 0, amount_differs 1, failed_at_mesh 1"),
              std::string::npos)
        << again;
    ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader); }, 60s));
    EXPECT_EQ(credits().size(), 5U);
}

TEST_F(Reconcile, WrongSecretIsLoggedAndCountedAndTheConsumerKeepsRunning) {
    MeshSimulator mesh;
    mesh.transfer(
        "f0000000-0000-4000-8000-000000000006 succeeded 5 symbol=USDC networkName=Ethereum "
        "userId=user-7");
    start(mesh, "not-the-secret");
    ASSERT_TRUE(wait_until(
        [&] {
            return metric_sum(run_.metrics_port, "meshhook_consumer_reconcile_api_calls_total",
                              "outcome=\"unauthorized\"") >= 1;
        },
        30s))
        << consumer_->stderr_text();
    EXPECT_TRUE(wait_until(
        [&] {
            return consumer_->stderr_text().find("refused the API credentials") !=
                   std::string::npos;
        },
        5s))
        << consumer_->stderr_text();
    EXPECT_EQ(consumer_->stderr_text().find("not-the-secret"), std::string::npos)
        << "a secret reached the log";
    std::this_thread::sleep_for(2s);
    EXPECT_TRUE(consumer_->running());
    EXPECT_EQ(http_get(run_.metrics_port, "/readyz").first, 200);
    EXPECT_EQ(metric_sum(run_.metrics_port, "meshhook_consumer_reconcile_passes_total",
                         "outcome=\"failed\""),
              1);  // retried slowly: not once a second
    EXPECT_EQ(
        metric_sum(run_.metrics_port, "meshhook_consumer_reconcile_last_success_timestamp_seconds"),
        0);
    EXPECT_TRUE(credits().empty());
}

}  // namespace
}  // namespace meshhook::testing
