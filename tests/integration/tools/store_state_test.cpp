// `meshhook state` against real stores written by the consumer's own store
// code: a SQLite file and a PostgreSQL server.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "consumer/store.hpp"
#include "tests/integration/tools/cli_harness.hpp"
#include "tests/support/process.hpp"
#include "tools/util.hpp"

namespace meshhook::testing {
namespace {

const std::string kCreditTopic = "ledger.credit-commands";

// Three transfers as the consumer records them: one credited (its command
// sent), one pending for a long time, one succeeded-then-failed conflict
// with an unsent review row.
void fill(const std::string& url) {
    auto store = consumer::open_store(url);
    const std::int64_t now = tools::now_ms();
    auto tx = store->begin();
    consumer::TransferRow credited;
    credited.environment = "production";
    credited.transfer_id = "t-credited";
    credited.status = "succeeded";
    credited.rank = 3;
    credited.credited = true;
    credited.token = "USDC";
    credited.chain = "Ethereum";
    credited.amount = "250.000000000000000001";
    credited.destination_address = "0xabc";
    credited.credit_event_id = "e-3";
    credited.last_event_id = "e-3";
    credited.first_seen_ms = now - 60000;
    credited.last_seen_ms = now - 1000;
    tx->put_transfer(credited);
    consumer::TransferRow pending;
    pending.environment = "production";
    pending.transfer_id = "t-stuck";
    pending.status = "pending";
    pending.rank = 1;
    pending.first_seen_ms = now - 7200 * 1000;
    pending.last_seen_ms = now - 7200 * 1000;
    tx->put_transfer(pending);
    consumer::TransferRow conflict;
    conflict.environment = "sandbox";
    conflict.transfer_id = "t-conflict";
    conflict.status = "succeeded";
    conflict.rank = 3;
    conflict.review_reason = "asset_not_allowed";
    conflict.conflict_status = "failed";
    conflict.first_seen_ms = now - 5000;
    conflict.last_seen_ms = now - 4000;
    tx->put_transfer(conflict);
    ASSERT_TRUE(
        tx->add_outbox({kCreditTopic, "t-credited", R"({"amount":"250.000000000000000001"})",
                        "credit:production:t-credited"},
                       now - 1000));
    ASSERT_TRUE(tx->add_outbox({"ledger.credit-review", "t-conflict",
                                R"({"reason":"asset_not_allowed"})", "review:sandbox:t-conflict"},
                               now - 900));
    consumer::AnomalyRecord anomaly;
    anomaly.kind = "conflict";
    anomaly.environment = "sandbox";
    anomaly.transfer_id = "t-conflict";
    anomaly.detail = R"({"kind":"conflict","transferId":"t-conflict"})";
    anomaly.dedup_key = "anomaly:conflict:sandbox:t-conflict:e-9";
    ASSERT_TRUE(tx->add_anomaly(anomaly, now - 800));
    tx->commit();
    const auto rows = store->outbox_rows();
    ASSERT_EQ(rows.size(), 2U);
    store->mark_sent({{rows[0].id, rows[0].topic, 2, 41}}, now - 500);
}

class StateTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        if (GetParam() == "sqlite") {
            dir_ = std::filesystem::temp_directory_path() /
                   ("meshhook-state-" + std::to_string(::getpid()));
            std::filesystem::create_directories(dir_);
            url_ = "sqlite://" + (dir_ / "meshhook.db").string();
        } else {
            postgres_ = std::make_unique<PostgresServer>();
            url_ = postgres_->create_database("state_test");
        }
        fill(url_);
    }
    void TearDown() override {
        if (!dir_.empty()) std::filesystem::remove_all(dir_);
    }
    std::filesystem::path dir_;
    std::unique_ptr<PostgresServer> postgres_;
    std::string url_;
};

TEST_P(StateTest, ShowsACreditedTransferWithItsSentCommand) {
    const auto r = run_meshhook({"state", "t-credited", "--store", url_});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("transfer t-credited (environment production)"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("succeeded (rank 3)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("credited                yes"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("250.000000000000000001 USDC on Ethereum"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ledger.credit-commands created"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("to partition 2 offset 41"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("anomalies (0)"), std::string::npos) << r.out;
}

TEST_P(StateTest, ShowsReviewConflictUnsentRowAndAnomaly) {
    const auto r = run_meshhook({"state", "t-conflict", "--store", url_});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("credited                no"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("sent to review          asset_not_allowed"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("a failed event contradicted succeeded"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("ledger.credit-review"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("NOT SENT yet"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("anomalies (1)"), std::string::npos) << r.out;
}

TEST_P(StateTest, UnknownTransferIsOneLineAndExitOne) {
    const auto r = run_meshhook({"state", "t-nobody", "--store", url_});
    EXPECT_EQ(r.code, 1);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("knows nothing about transfer t-nobody"), std::string::npos) << r.err;
}

TEST_P(StateTest, SummaryCountsStatusesSilentTransfersAndUnsentRows) {
    const auto r = run_meshhook({"state", "--summary", "--store", url_, "--older-than-s", "3600"});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("production    pending              1   credited 0"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("production    succeeded            1   credited 1"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("sent to review: 1, conflicts: 1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("silent for over 3600 s: 1\n  t-stuck (production) pending since"),
              std::string::npos)
        << r.out;
    EXPECT_TRUE(
        std::regex_search(r.out, std::regex(R"(ledger\.credit-commands +1 rows, 0 unsent\n)")))
        << r.out;
    EXPECT_TRUE(
        std::regex_search(r.out, std::regex(R"(ledger\.credit-review +1 rows, 1 unsent \(oldest)")))
        << r.out;
    EXPECT_NE(r.out.find("conflict                  1"), std::string::npos) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Stores, StateTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param_info) { return param_info.param; });

TEST(StateErrors, MissingSqliteFileIsOneLineAndCreatesNothing) {
    const std::string path = "/tmp/meshhook-no-such-store-" + std::to_string(::getpid()) + ".db";
    const auto r = run_meshhook({"state", "t", "--store", "sqlite://" + path});
    EXPECT_EQ(r.code, 1);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("no SQLite store at " + path), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(StateErrors, PostgresThatDoesNotConnectIsOneLineWithThePasswordHidden) {
    const auto port = free_port();
    const auto r =
        run_meshhook({"state", "--summary", "--store",
                      "postgresql://meshhook:s3cret@127.0.0.1:" + std::to_string(port) + "/x"});
    EXPECT_EQ(r.code, 1);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("cannot connect to PostgreSQL store postgresql://meshhook:***@127.0.0.1"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(r.err.find("s3cret"), std::string::npos) << r.err;
}

TEST(StateErrors, AFileThatIsNotAMeshhookStoreIsSaidSo) {
    const std::string path = "/tmp/meshhook-not-a-store-" + std::to_string(::getpid()) + ".db";
    { std::ofstream(path) << ""; }
    const auto r = run_meshhook({"state", "--summary", "--store", "sqlite://" + path});
    std::filesystem::remove(path);
    EXPECT_EQ(r.code, 1);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("is not a meshhook store"), std::string::npos) << r.err;
}

TEST(StateErrors, UnsupportedUrlSchemeAndMissingStoreAreOneLine) {
    auto r = run_meshhook({"state", "t", "--store", "mysql://x"});
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find("must start with sqlite:// or postgresql://"), std::string::npos) << r.err;
    r = run_meshhook({"state", "t"}, {{"CONSUMER_STORE", ""}});
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("--store (CONSUMER_STORE)"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace meshhook::testing
