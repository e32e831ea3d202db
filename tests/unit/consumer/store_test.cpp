// One store suite, run against SQLite (a file) and a real PostgreSQL server
// that the test starts itself.

#include "consumer/store.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <span>
#include <thread>

#include "consumer/batch.hpp"
#include "consumer/sql.hpp"
#include "tests/support/process.hpp"

namespace meshhook::consumer {
namespace {

using namespace std::chrono_literals;
constexpr std::int64_t kNow = 1764317200000;
const std::string kInput = "mesh.transfer-events";

testing::PostgresServer& postgres() {
    // One server for the whole binary (start-up is about a second); each test
    // gets its own database.
    static testing::PostgresServer server;
    return server;
}

class StoreSuite : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        static std::atomic<int> counter{0};
        const int n = counter.fetch_add(1);
        if (GetParam() == "sqlite") {
            dir_ = std::filesystem::temp_directory_path() /
                   ("meshhook-store-" + std::to_string(::getpid()) + "-" + std::to_string(n));
            std::filesystem::create_directories(dir_);
            url_ = "sqlite://" + (dir_ / "meshhook.db").string();
        } else {
            url_ = postgres().create_database("store_test_" + std::to_string(n));
        }
        store_ = open_store(url_);
    }
    void TearDown() override {
        store_.reset();
        if (!dir_.empty()) {
            std::filesystem::remove_all(dir_);
        }
    }

    std::unique_ptr<sql::Connection> raw_connection() const {
        if (GetParam() == "sqlite") {
            return sql::open_sqlite(url_.substr(9));
        }
        return sql::open_postgres(url_);
    }

    static TransferRow sample_row(std::string environment = "production") {
        TransferRow row;
        row.environment = std::move(environment);
        row.transfer_id = "t-1";
        row.status = "succeeded";
        row.rank = 3;
        row.credited = true;
        row.token = "USDC";
        row.chain = "Ethereum";
        row.amount = "250.000000000000000001";
        row.destination_address = "0xabc";
        row.credit_event_id = "ev-3";
        row.last_event_id = "ev-3";
        row.first_seen_ms = kNow - 1000;
        row.last_seen_ms = kNow;
        return row;
    }

    // The batch as the consume loop applies it; `expected` moves as it commits.
    BatchResult isolate(std::span<const InputRecord> records, BatchApplier::Expected expected,
                        BatchApplier::Expected* after = nullptr) {
        BatchApplier applier({}, {});
        BatchResult r = applier.apply_isolating(*store_, records, expected, kNow);
        if (after != nullptr) {
            *after = expected;
        }
        return r;
    }

    std::filesystem::path dir_;
    std::string url_;
    std::unique_ptr<Store> store_;
};

TEST_P(StoreSuite, CreatesTheSchemaAtTheCurrentVersionAndReopensIdempotently) {
    EXPECT_EQ(store_->kind(), GetParam() == "sqlite" ? "sqlite" : "postgresql");
    EXPECT_EQ(store_->schema_version(), kSchemaVersion);
    store_.reset();
    store_ = open_store(url_);
    EXPECT_EQ(store_->schema_version(), kSchemaVersion);
}

TEST_P(StoreSuite, RefusesASchemaNewerThanTheBinary) {
    store_.reset();
    raw_connection()->exec_script("UPDATE meshhook_schema SET version = 99");
    try {
        open_store(url_);
        FAIL() << "opened a version 99 schema";
    } catch (const StoreError& e) {
        EXPECT_NE(std::string(e.what()).find("newer than this binary"), std::string::npos)
            << e.what();
    }
}

// The read-only mode: `meshhook state` and the tests read through it.

std::string one_line_error(const std::function<void()>& open) {
    try {
        open();
    } catch (const StoreError& e) {
        const std::string what = e.what();
        EXPECT_EQ(what.find('\n'), std::string::npos) << what;
        return what;
    }
    ADD_FAILURE() << "opened";
    return "";
}

TEST_P(StoreSuite, ReaderRefusesAnotherSchemaVersionWithOneLineAndMigratesNothing) {
    store_.reset();
    raw_connection()->exec_script("UPDATE meshhook_schema SET version = 99");
    std::string what = one_line_error([&] { open_store_reader(url_); });
    EXPECT_NE(what.find("has schema version 99, newer than this binary's (" +
                        std::to_string(kSchemaVersion) + ")"),
              std::string::npos)
        << what;
    raw_connection()->exec_script("UPDATE meshhook_schema SET version = 1");
    what = one_line_error([&] { open_store_reader(url_); });
    EXPECT_NE(what.find("has schema version 1, older than"), std::string::npos) << what;
    // Nothing was migrated: the version is still the one written above.
    const auto r = raw_connection()->query("SELECT version FROM meshhook_schema", {});
    ASSERT_EQ(r.rows.size(), 1U);
    EXPECT_EQ(r.rows[0][0], std::optional<std::string>("1"));
}

TEST_P(StoreSuite, ReaderOfADatabaseWithoutTheSchemaCreatesNothing) {
    store_.reset();
    std::string bare_url;
    if (GetParam() == "sqlite") {
        const auto path = dir_ / "bare.db";
        sql::open_sqlite(path.string())->exec_script("CREATE TABLE other (x INTEGER)");
        bare_url = "sqlite://" + path.string();
        const std::string missing = (dir_ / "missing.db").string();
        const std::string what = one_line_error([&] { open_store_reader("sqlite://" + missing); });
        EXPECT_NE(what.find("no SQLite store at " + missing), std::string::npos) << what;
        EXPECT_FALSE(std::filesystem::exists(missing));
    } else {
        static std::atomic<int> n{0};
        bare_url = postgres().create_database("bare_" + std::to_string(n++));
    }
    for (int i = 0; i < 2; ++i) {  // the second open finds no table either
        const std::string what = one_line_error([&] { open_store_reader(bare_url); });
        EXPECT_NE(what.find("is not a meshhook store (no meshhook_schema table)"),
                  std::string::npos)
            << what;
    }
}

TEST_P(StoreSuite, ReaderSessionCannotWrite) {
    if (GetParam() == "sqlite") {
        auto conn = sql::open_sqlite(url_.substr(9), sql::Access::kReadOnly);
        EXPECT_THROW(conn->exec_script("DELETE FROM outbox"), StoreError);
    } else {
        auto conn = sql::open_postgres(url_, sql::Access::kReadOnly);
        EXPECT_THROW(conn->exec_script("DELETE FROM outbox"), StoreError);
    }
    EXPECT_EQ(open_store_reader(url_)->schema_version(), kSchemaVersion);
}

TEST_P(StoreSuite, ReaderGivesATransfersHistoryAndTheSummaryAsTypedRows) {
    TransferRow credited = sample_row("production");
    TransferRow sandbox = sample_row("sandbox");
    sandbox.status = "pending";
    sandbox.rank = 1;
    sandbox.credited = false;
    sandbox.amount.clear();
    sandbox.last_seen_ms = kNow - 7200 * 1000;
    TransferRow other = sample_row("production");
    other.transfer_id = "t-2";
    other.credited = false;
    other.review_reason = "asset_not_allowed";
    other.conflict_status = "failed";
    TransferRow unknown = sample_row("production");  // only an unknown status seen so far
    unknown.transfer_id = "t-3";
    unknown.status.clear();
    unknown.rank = 0;
    unknown.credited = false;
    unknown.last_unknown_status = "RefundPending";
    {
        auto tx = store_->begin();
        tx->put_transfer(credited);
        tx->put_transfer(sandbox);
        tx->put_transfer(other);
        tx->put_transfer(unknown);
        ASSERT_TRUE(
            tx->add_outbox({"ledger.credit-commands", "t-1", "{}", "credit:production:t-1"}, kNow));
        ASSERT_TRUE(tx->add_outbox({"ledger.credit-review", "t-2", "{}", "review:production:t-2"},
                                   kNow + 1));
        ASSERT_TRUE(
            tx->add_outbox({"ledger.credit-review", "t-1", "{}", "review:sandbox:t-1"}, kNow + 2));
        ASSERT_TRUE(tx->add_anomaly(
            {"conflict", "sandbox", "t-1", "{\"kind\":\"conflict\"}", "anomaly:conflict:1"},
            kNow + 3));
        ASSERT_TRUE(tx->advance_offset(kInput, 1, std::nullopt, 7));
        ASSERT_TRUE(tx->advance_offset(kInput, 0, std::nullopt, 5));
        tx->commit();
    }
    const auto rows = store_->outbox_rows();
    ASSERT_EQ(rows.size(), 3U);
    store_->mark_sent({{rows[0].id, rows[0].topic, 2, 41}}, kNow + 10);
    store_->park(rows[2], "MSG_SIZE_TOO_LARGE", kNow + 11);

    auto reader = open_store_reader(url_);
    const TransferHistory all = reader->history("t-1", "");
    ASSERT_EQ(all.transfers.size(), 2U);
    EXPECT_EQ(all.transfers[0], credited);
    EXPECT_EQ(all.transfers[1], sandbox);
    ASSERT_EQ(all.outbox.size(), 2U);
    EXPECT_EQ(all.outbox[0].sent_ms, kNow + 10);
    EXPECT_EQ(all.outbox[0].sent_partition, 2);
    EXPECT_EQ(all.outbox[0].sent_offset, 41);
    EXPECT_EQ(all.outbox[1].dedup_key, "review:sandbox:t-1");
    EXPECT_EQ(all.outbox[1].parked_ms, kNow + 11);
    EXPECT_EQ(all.outbox[1].park_reason, "MSG_SIZE_TOO_LARGE");
    ASSERT_EQ(all.anomalies.size(), 1U);
    EXPECT_EQ(all.anomalies[0].record.kind, "conflict");
    EXPECT_EQ(all.anomalies[0].record.environment, "sandbox");
    EXPECT_EQ(all.anomalies[0].created_ms, kNow + 3);
    EXPECT_GT(all.anomalies[0].id, 0);
    const TransferHistory one = reader->history("t-1", "sandbox");
    ASSERT_EQ(one.transfers.size(), 1U);
    EXPECT_EQ(one.transfers[0], sandbox);
    EXPECT_TRUE(reader->history("t-nobody", "").empty());
    EXPECT_EQ(reader->transfers(), (std::vector<TransferRow>{credited, other, unknown, sandbox}));

    const StoreSummary s = reader->summary(kNow - 3600 * 1000, 20);
    ASSERT_EQ(s.by_status.size(), 3U);
    EXPECT_EQ(s.by_status[0].environment, "production");  // no status yet sorts first
    EXPECT_EQ(s.by_status[0].status, "");
    EXPECT_EQ(s.by_status[0].transfers, 1);
    EXPECT_EQ(s.by_status[1].status, "succeeded");
    EXPECT_EQ(s.by_status[1].transfers, 2);
    EXPECT_EQ(s.by_status[1].credited, 1);
    EXPECT_EQ(s.by_status[2].environment, "sandbox");
    EXPECT_EQ(s.by_status[2].status, "pending");
    EXPECT_EQ(s.in_review, 1);
    EXPECT_EQ(s.conflicts, 1);
    EXPECT_EQ(s.silent, 1);
    ASSERT_EQ(s.silent_oldest.size(), 1U);
    EXPECT_EQ(s.silent_oldest[0], sandbox);
    ASSERT_EQ(s.outbox.size(), 2U);
    EXPECT_EQ(s.outbox[0].topic, "ledger.credit-commands");
    EXPECT_EQ(s.outbox[0].rows, 1);
    EXPECT_EQ(s.outbox[0].unsent, 0);
    EXPECT_FALSE(s.outbox[0].oldest_unsent_created_ms.has_value());
    EXPECT_EQ(s.outbox[1].topic, "ledger.credit-review");
    EXPECT_EQ(s.outbox[1].rows, 2);
    EXPECT_EQ(s.outbox[1].unsent, 2);
    EXPECT_EQ(s.outbox[1].parked, 1);
    EXPECT_EQ(s.outbox[1].oldest_unsent_created_ms, kNow + 1);
    ASSERT_EQ(s.anomalies.size(), 2U);
    EXPECT_EQ(s.anomalies[0].kind, "conflict");
    EXPECT_EQ(s.anomalies[1].kind, "outbox_row_parked");
    EXPECT_EQ(s.anomalies[1].count, 1);
    EXPECT_EQ(s.offsets, (std::vector<PartitionPosition>{{kInput, 0, 5}, {kInput, 1, 7}}));
    EXPECT_EQ(s.relay_positions,
              (std::vector<PartitionPosition>{{"ledger.credit-commands", 2, 42}}));
}

TEST_P(StoreSuite, TransferRowRoundTripsThroughATransaction) {
    const TransferRow row = sample_row();
    {
        auto tx = store_->begin();
        EXPECT_FALSE(tx->find_transfer("production", "t-1").has_value());
        tx->put_transfer(row);
        EXPECT_EQ(tx->find_transfer("production", "t-1"), row);
        tx->commit();
    }
    EXPECT_EQ(store_->transfer("production", "t-1"), row);

    TransferRow updated = row;
    updated.conflict_status = "failed";
    updated.last_seen_ms = kNow + 5;
    updated.first_seen_ms = 1;  // first_seen is never rewritten by an update
    {
        auto tx = store_->begin();
        tx->put_transfer(updated);
        tx->commit();
    }
    updated.first_seen_ms = row.first_seen_ms;
    EXPECT_EQ(store_->transfer("production", "t-1"), updated);
}

TEST_P(StoreSuite, EnvironmentsNeverShareATransfer) {
    {
        auto tx = store_->begin();
        tx->put_transfer(sample_row("production"));
        TransferRow sandbox = sample_row("sandbox");
        sandbox.status = "pending";
        sandbox.rank = 1;
        sandbox.credited = false;
        tx->put_transfer(sandbox);
        tx->commit();
    }
    EXPECT_EQ(store_->transfer("production", "t-1")->status, "succeeded");
    EXPECT_EQ(store_->transfer("sandbox", "t-1")->status, "pending");
    EXPECT_FALSE(store_->transfer("staging", "t-1").has_value());
}

TEST_P(StoreSuite, StaleTransfersAreTheQuietNonFinalOnesOfOneEnvironmentPagedInOrder) {
    struct Spec {
        std::string environment, id, status;
        int rank;
        std::int64_t last_seen_ms;
    };
    const std::vector<Spec> specs = {
        {"production", "p-pending-old", "pending", 1, kNow - 5000},
        {"production", "p-processing", "processing", 2, kNow - 3000},
        {"production", "p-unknown", "", 0, kNow - 3000},  // only unknown statuses so far
        {"production", "p-pending-recent", "pending", 1, kNow - 10},
        {"production", "p-succeeded", "succeeded", 3, kNow - 9000},
        {"production", "p-failed", "failed", 3, kNow - 9000},
        {"sandbox", "s-pending", "pending", 1, kNow - 9000},
    };
    {
        auto tx = store_->begin();
        for (const Spec& s : specs) {
            TransferRow row = sample_row(s.environment);
            row.transfer_id = s.id;
            row.status = s.status;
            row.rank = s.rank;
            row.credited = s.status == "succeeded";
            row.last_seen_ms = s.last_seen_ms;
            tx->put_transfer(row);
        }
        tx->commit();
    }
    auto ids = [](const std::vector<TransferRow>& rows) {
        std::vector<std::string> out;
        for (const TransferRow& r : rows) out.push_back(r.transfer_id);
        return out;
    };
    const std::int64_t quiet_before = kNow - 1000;
    EXPECT_EQ(ids(store_->stale_transfers("production", quiet_before, std::nullopt, 10)),
              (std::vector<std::string>{"p-pending-old", "p-processing", "p-unknown"}));
    // Two at a time from a cursor: every row once, in order, then nothing.
    const auto first = store_->stale_transfers("production", quiet_before, std::nullopt, 2);
    ASSERT_EQ(ids(first), (std::vector<std::string>{"p-pending-old", "p-processing"}));
    const Store::StaleCursor cursor{first.back().last_seen_ms, first.back().transfer_id};
    EXPECT_EQ(ids(store_->stale_transfers("production", quiet_before, cursor, 2)),
              (std::vector<std::string>{"p-unknown"}));
    const Store::StaleCursor end{kNow - 3000, "p-unknown"};
    EXPECT_TRUE(store_->stale_transfers("production", quiet_before, end, 2).empty());
    EXPECT_EQ(ids(store_->stale_transfers("sandbox", quiet_before, std::nullopt, 10)),
              (std::vector<std::string>{"s-pending"}));
}

TEST_P(StoreSuite, UncommittedTransactionLeavesNothingBehind) {
    {
        auto tx = store_->begin();
        tx->put_transfer(sample_row());
        EXPECT_TRUE(
            tx->add_outbox({"ledger.credit-commands", "t-1", "{}", "credit:production:t-1"}, kNow));
        EXPECT_TRUE(tx->advance_offset(kInput, 0, std::nullopt, 10));
    }  // dropped: rolled back, as after a crash before commit
    EXPECT_FALSE(store_->transfer("production", "t-1").has_value());
    EXPECT_TRUE(store_->outbox_rows().empty());
    EXPECT_TRUE(store_->offsets(kInput).empty());
}

// What --start-from looks at: an offset row or an outbox row is history; a
// transfer row alone never exists without an offset row in the same commit.
TEST_P(StoreSuite, IsEmptyUntilAnOffsetOrAnOutboxRowIsCommitted) {
    EXPECT_TRUE(store_->empty());
    {
        auto tx = store_->begin();
        EXPECT_TRUE(tx->advance_offset(kInput, 0, std::nullopt, 10));
    }  // rolled back
    EXPECT_TRUE(store_->empty());
    {
        auto tx = store_->begin();
        EXPECT_TRUE(
            tx->add_outbox({"ledger.credit-commands", "t-1", "{}", "credit:production:t-1"}, kNow));
        tx->commit();
    }
    EXPECT_FALSE(store_->empty());
    raw_connection()->exec_script("DELETE FROM outbox");
    EXPECT_TRUE(store_->empty());
    {
        auto tx = store_->begin();
        EXPECT_TRUE(tx->advance_offset(kInput, 0, std::nullopt, 0));
        tx->commit();
    }
    EXPECT_FALSE(store_->empty());
}

TEST_P(StoreSuite, OutboxDedupKeyAdmitsOneRow) {
    auto tx = store_->begin();
    EXPECT_TRUE(
        tx->add_outbox({"ledger.credit-commands", "t-1", "first", "credit:production:t-1"}, kNow));
    EXPECT_FALSE(
        tx->add_outbox({"ledger.credit-commands", "t-1", "second", "credit:production:t-1"}, kNow));
    tx->commit();
    const auto rows = store_->outbox_rows();
    ASSERT_EQ(rows.size(), 1U);
    EXPECT_EQ(rows[0].payload, "first");
    EXPECT_FALSE(rows[0].sent_ms.has_value());
}

TEST_P(StoreSuite, OffsetMovesOnlyFromTheExpectedValue) {
    {
        auto tx = store_->begin();
        EXPECT_TRUE(tx->advance_offset(kInput, 0, std::nullopt, 5));
        EXPECT_TRUE(tx->advance_offset(kInput, 3, std::nullopt, 1));
        tx->commit();
    }
    {
        auto tx = store_->begin();
        EXPECT_FALSE(tx->advance_offset(kInput, 0, std::nullopt, 7));  // row exists already
    }
    {
        auto tx = store_->begin();
        EXPECT_FALSE(tx->advance_offset(kInput, 0, 4, 9));  // someone else moved it
    }
    {
        auto tx = store_->begin();
        EXPECT_TRUE(tx->advance_offset(kInput, 0, 5, 9));
        tx->commit();
    }
    EXPECT_EQ(store_->offsets(kInput), (std::map<std::int32_t, std::int64_t>{{0, 9}, {3, 1}}));
    EXPECT_TRUE(store_->offsets("other-topic").empty());
}

// Two consumers that both believe they own a partition (a rebalance in
// flight): the second transaction waits for the first and then finds the
// offset moved, so its batch is refused.
TEST_P(StoreSuite, ZombieConsumerIsFencedByTheOffsetRow) {
    {
        auto tx = store_->begin();
        ASSERT_TRUE(tx->advance_offset(kInput, 1, std::nullopt, 9));
        tx->commit();
    }
    auto zombie_store = open_store(url_);
    auto tx = store_->begin();
    ASSERT_TRUE(tx->advance_offset(kInput, 1, 9, 20));
    ASSERT_TRUE(
        tx->add_outbox({"ledger.credit-commands", "t-1", "a", "credit:production:t-1"}, kNow));
    auto zombie = std::async(std::launch::async, [&] {
        auto ztx = zombie_store->begin();
        const bool moved = ztx->advance_offset(kInput, 1, 9, 15);
        if (moved) {
            ztx->add_outbox({"ledger.credit-commands", "t-1", "b", "credit:production:t-1"}, kNow);
            ztx->commit();
        }
        return moved;
    });
    // The zombie must be blocked behind our transaction, not done already.
    EXPECT_EQ(zombie.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
    tx->commit();
    EXPECT_FALSE(zombie.get());
    EXPECT_EQ(store_->offsets(kInput).at(1), 20);
    ASSERT_EQ(store_->outbox_rows().size(), 1U);
    EXPECT_EQ(store_->outbox_rows()[0].payload, "a");
}

TEST_P(StoreSuite, RelayTakesUnsentRowsInIdOrderAndMarksThemSent) {
    {
        auto tx = store_->begin();
        for (int i = 0; i < 5; ++i) {
            ASSERT_TRUE(tx->add_outbox({"ledger.credit-commands", "t-" + std::to_string(i),
                                        "p" + std::to_string(i), "k" + std::to_string(i)},
                                       kNow + i));
        }
        ASSERT_TRUE(tx->add_outbox({"meshhook.anomalies", "t-x", "anomaly", "a1"}, kNow + 9));
        tx->commit();
    }
    OutboxStats stats = store_->outbox_stats();
    EXPECT_EQ(stats.unsent, 6);
    EXPECT_EQ(stats.oldest_unsent_created_ms, kNow);

    auto first = store_->unsent(3);
    ASSERT_EQ(first.size(), 3U);
    EXPECT_EQ(first[0].payload, "p0");
    EXPECT_EQ(first[1].payload, "p1");
    EXPECT_EQ(first[2].payload, "p2");
    EXPECT_LT(first[0].id, first[1].id);
    const std::string credits = "ledger.credit-commands";
    store_->mark_sent({{first[0].id, credits, 2, 40},
                       {first[1].id, credits, 0, 7},
                       {first[2].id, credits, 2, 41}},
                      kNow + 50);

    auto rest = store_->unsent(100);
    ASSERT_EQ(rest.size(), 3U);
    EXPECT_EQ(rest[0].payload, "p3");
    EXPECT_EQ(rest[2].topic, "meshhook.anomalies");
    stats = store_->outbox_stats();
    EXPECT_EQ(stats.unsent, 3);
    EXPECT_EQ(stats.oldest_unsent_created_ms, kNow + 3);
    EXPECT_EQ(store_->relay_positions("ledger.credit-commands"),
              (std::map<std::int32_t, std::int64_t>{{0, 8}, {2, 42}}));
    EXPECT_TRUE(store_->relay_positions("meshhook.anomalies").empty());

    const auto all = store_->outbox_rows();
    EXPECT_EQ(all[0].sent_partition, 2);
    EXPECT_EQ(all[0].sent_offset, 40);
    EXPECT_EQ(all[0].sent_ms, kNow + 50);
}

TEST_P(StoreSuite, AScanMarksRowsItFindsAndRemembersKeysTheStoreHasNoRowFor) {
    {
        auto tx = store_->begin();
        ASSERT_TRUE(
            tx->add_outbox({"ledger.credit-commands", "t-1", "p", "credit:production:t-1"}, kNow));
        tx->commit();
    }
    const std::vector<ScannedKey> found{{"credit:production:t-1", 12},
                                        {"credit:production:t-2", 13}};
    EXPECT_EQ(store_->record_scan("ledger.credit-commands", 1, found, 15, kNow), 1U);
    EXPECT_EQ(store_->outbox_rows()[0].sent_offset, 12);
    EXPECT_EQ(store_->outbox_stats().unsent, 0);
    EXPECT_FALSE(store_->outbox_stats().oldest_unsent_created_ms.has_value());
    EXPECT_EQ(store_->relay_positions("ledger.credit-commands"),
              (std::map<std::int32_t, std::int64_t>{{1, 15}}));
    // Scanning again changes nothing, and never moves a position back.
    EXPECT_EQ(store_->record_scan("ledger.credit-commands", 1, found, 14, kNow), 0U);
    EXPECT_EQ(store_->relay_positions("ledger.credit-commands").at(1), 15);

    // The store went back in time: the consumer re-creates t-2's credit,
    // which the scan already found on the topic. It comes back as published.
    {
        auto tx = store_->begin();
        ASSERT_TRUE(
            tx->add_outbox({"ledger.credit-commands", "t-2", "p", "credit:production:t-2"}, kNow));
        ASSERT_TRUE(
            tx->add_outbox({"ledger.credit-commands", "t-3", "p", "credit:production:t-3"}, kNow));
        tx->commit();
    }
    const auto unsent = store_->unsent(10);
    ASSERT_EQ(unsent.size(), 2U);
    ASSERT_TRUE(unsent[0].published.has_value());
    EXPECT_EQ(unsent[0].published->partition, 1);
    EXPECT_EQ(unsent[0].published->offset, 13);
    EXPECT_FALSE(unsent[1].published.has_value());
}

TEST_P(StoreSuite, ParkedRowsLeaveTheRelaysQueueAndAreCounted) {
    {
        auto tx = store_->begin();
        ASSERT_TRUE(tx->add_outbox({"ledger.credit-review", "t-1", "big", "review:1"}, kNow));
        ASSERT_TRUE(tx->add_outbox({"ledger.credit-commands", "t-2", "p", "credit:2"}, kNow + 1));
        tx->commit();
    }
    const auto rows = store_->unsent(10);
    ASSERT_EQ(rows.size(), 2U);
    {
        auto tx = store_->begin();  // held behind the parked row: same topic and key
        ASSERT_TRUE(tx->add_outbox({"ledger.credit-review", "t-1", "later", "review:2"}, kNow + 2));
        tx->commit();
    }
    store_->park(rows[0], "MSG_SIZE_TOO_LARGE", kNow + 5);
    const auto left = store_->unsent(10);
    ASSERT_EQ(left.size(), 1U);
    EXPECT_EQ(left[0].dedup_key, "credit:2");
    const OutboxStats stats = store_->outbox_stats();
    EXPECT_EQ(stats.unsent, 2);  // the credit and the held review
    EXPECT_EQ(stats.parked, 1);
    EXPECT_EQ(stats.oldest_unsent_created_ms, kNow + 1);
    const auto all = store_->outbox_rows();
    EXPECT_EQ(all[0].parked_ms, kNow + 5);
    EXPECT_EQ(all[0].park_reason, "MSG_SIZE_TOO_LARGE");
    const auto anomalies = store_->anomalies();
    ASSERT_EQ(anomalies.size(), 1U);
    EXPECT_EQ(anomalies[0].kind, "outbox_row_parked");
    EXPECT_NE(anomalies[0].detail.find("review:1"), std::string::npos);
}

TEST_P(StoreSuite, OnlyOneRelayHoldsTheLock) {
    auto other = open_store(url_);
    EXPECT_TRUE(store_->try_acquire_relay_lock());
    EXPECT_TRUE(store_->try_acquire_relay_lock());  // re-entrant for its holder
    EXPECT_FALSE(other->try_acquire_relay_lock());
    store_.reset();  // the holder dies: its lock goes with it
    EXPECT_TRUE(testing::wait_until([&] { return other->try_acquire_relay_lock(); }, 5s));
}

// ------------------------------------------------------------------ batches

// Owns the bytes the records' views point into.
struct Fed {
    std::vector<std::string> bodies;
    std::vector<std::string> environments;
    std::vector<InputRecord> records;
};

Fed feed(const std::vector<std::pair<std::string, std::string>>& fixtures_and_env,
         std::int32_t partition, std::int64_t first_offset) {
    Fed fed;
    for (const auto& [name, env] : fixtures_and_env) {
        fed.bodies.push_back(testing::fixture(name));
        fed.environments.push_back(env);
    }
    for (std::size_t i = 0; i < fixtures_and_env.size(); ++i) {
        fed.records.push_back({kInput, partition, first_offset + static_cast<std::int64_t>(i),
                               "key", fed.bodies[i], fed.environments[i]});
    }
    return fed;
}

TEST_P(StoreSuite, FixtureBatchCreditsOnceRecordsAnomaliesAndMovesOffsets) {
    BatchApplier applier({}, {});
    const Fed fed = feed({{"01-pending.json", ""},
                          {"03-succeeded.json", ""},
                          {"02-processing.json", ""},
                          {"04-succeeded-retry.json", ""},
                          {"05-failed-other-transfer.json", ""},
                          {"06-camelcase-succeeded.json", ""},
                          {"90-malformed-truncated.json", ""},
                          {"91-missing-transfer-id.json", ""},
                          {"03-succeeded.json", "sandbox"}},
                         0, 100);
    const std::array<PartitionAdvance, 1> advance{{{kInput, 0, std::nullopt, 109}}};
    const BatchResult r = applier.apply(*store_, fed.records, advance, kNow);
    ASSERT_EQ(r.status, BatchStatus::kCommitted);
    EXPECT_EQ(r.stats.credits, 3U);  // 03 production, 06, 03 sandbox
    EXPECT_EQ(r.stats.count(Outcome::kApplied), 5U);
    EXPECT_EQ(r.stats.count(Outcome::kStale), 1U);      // processing after succeeded
    EXPECT_EQ(r.stats.count(Outcome::kDuplicate), 1U);  // Mesh's retry
    EXPECT_EQ(r.stats.count(Outcome::kUnparseable), 2U);
    EXPECT_EQ(r.stats.anomalies.at("unparseable"), 2U);
    EXPECT_EQ(r.stats.events_by_status.at("succeeded"), 4U);

    EXPECT_EQ(store_->offsets(kInput).at(0), 109);
    const auto rows = store_->outbox_rows();
    ASSERT_EQ(rows.size(), 5U);
    int credits = 0;
    for (const OutboxRow& row : rows) {
        if (row.topic == "ledger.credit-commands") {
            ++credits;
        }
    }
    EXPECT_EQ(credits, 3);
    EXPECT_EQ(rows[0].dedup_key, "credit:production:4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01");
    EXPECT_NE(rows[0].payload.find("\"amount\":\"250.000000000000000001\""), std::string::npos);
    EXPECT_EQ(store_->transfer("production", "4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01")->status,
              "succeeded");
    EXPECT_EQ(store_->transfer("sandbox", "4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01")->status,
              "succeeded");
    EXPECT_EQ(store_->transfer("production", "c0ffee00-1234-4abc-8def-00000000beef")->status,
              "failed");
    const auto anomalies = store_->anomalies();
    ASSERT_EQ(anomalies.size(), 2U);
    EXPECT_EQ(anomalies[0].kind, "unparseable");
    EXPECT_EQ(anomalies[0].dedup_key, "anomaly:unparseable:mesh.transfer-events:0:106");
}

TEST_P(StoreSuite, ReplayedBatchFromAStaleOffsetIsFencedAndWritesNothing) {
    BatchApplier applier({}, {});
    const Fed fed = feed({{"03-succeeded.json", ""}}, 2, 0);
    const std::array<PartitionAdvance, 1> first{{{kInput, 2, std::nullopt, 1}}};
    ASSERT_EQ(applier.apply(*store_, fed.records, first, kNow).status, BatchStatus::kCommitted);
    // The same records again, as a consumer that missed the commit would send them.
    const BatchResult again = applier.apply(*store_, fed.records, first, kNow);
    EXPECT_EQ(again.status, BatchStatus::kFenced);
    EXPECT_EQ(again.stats.credits, 0U);
    EXPECT_EQ(store_->outbox_rows().size(), 1U);
    EXPECT_EQ(store_->offsets(kInput).at(2), 1);
}

TEST_P(StoreSuite, SucceededThenFailedAcrossBatchesIsOneCreditAndOneAnomaly) {
    BatchApplier applier({}, {});
    const Fed a = feed({{"03-succeeded.json", ""}}, 0, 0);
    const std::array<PartitionAdvance, 1> first{{{kInput, 0, std::nullopt, 1}}};
    ASSERT_EQ(applier.apply(*store_, a.records, first, kNow).status, BatchStatus::kCommitted);

    // The failed fixture, rewritten to the same transfer.
    std::string failed = testing::fixture("05-failed-other-transfer.json");
    const std::string other = "c0ffee00-1234-4abc-8def-00000000beef";
    failed.replace(failed.find(other), other.size(), "4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01");
    const std::array<InputRecord, 2> records{
        {{kInput, 0, 1, "k", failed, ""}, {kInput, 0, 2, "k", failed, ""}}};
    const std::array<PartitionAdvance, 1> second{{{kInput, 0, 1, 3}}};
    const BatchResult r = applier.apply(*store_, records, second, kNow);
    ASSERT_EQ(r.status, BatchStatus::kCommitted);
    EXPECT_EQ(r.stats.count(Outcome::kConflict), 2U);
    EXPECT_EQ(r.stats.anomalies.at("conflict"), 1U);  // the retry shares the EventId
    const auto rows = store_->outbox_rows();
    ASSERT_EQ(rows.size(), 2U);
    EXPECT_EQ(rows[0].topic, "ledger.credit-commands");
    EXPECT_EQ(rows[1].topic, "meshhook.anomalies");
    const auto row = store_->transfer("production", "4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01");
    EXPECT_EQ(row->status, "succeeded");
    EXPECT_EQ(row->conflict_status, "failed");
    EXPECT_TRUE(row->credited);
    ASSERT_EQ(store_->anomalies().size(), 1U);
    EXPECT_EQ(store_->anomalies()[0].kind, "conflict");
}

TEST_P(StoreSuite, CommittedStateSurvivesReopening) {
    BatchApplier applier({}, {});
    const Fed fed = feed({{"01-pending.json", ""}, {"02-processing.json", ""}}, 1, 0);
    const std::array<PartitionAdvance, 1> advance{{{kInput, 1, std::nullopt, 2}}};
    ASSERT_EQ(applier.apply(*store_, fed.records, advance, kNow).status, BatchStatus::kCommitted);
    store_.reset();
    store_ = open_store(url_);
    EXPECT_EQ(store_->offsets(kInput).at(1), 2);
    const auto row = store_->transfer("production", "4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01");
    ASSERT_TRUE(row.has_value());
    EXPECT_EQ(row->status, "processing");
    EXPECT_EQ(row->rank, 2);
    EXPECT_EQ(row->last_event_id, "7d3e5f10-1111-4a2b-9c3d-000000000002");
}

// ------------------------------------------------- records that must not wedge

// A succeeded event; the arguments are JSON string contents (escapes allowed).
std::string succeeded(std::string_view transfer_id, std::string_view event_id,
                      std::string_view user_id = "user-42") {
    return std::string(R"({"EventId":")") + std::string(event_id) + R"(","UserId":")" +
           std::string(user_id) + R"(","TransferId":")" + std::string(transfer_id) +
           R"(","TransferStatus":"Succeeded","Token":"USDC","Chain":"Ethereum",)" +
           R"("DestinationAddress":"0xabc","DestinationAmount":250.000000000000000001,)" +
           R"("Timestamp":1764317099000})";
}

std::size_t count_topic(const std::vector<OutboxRow>& rows, std::string_view topic) {
    return static_cast<std::size_t>(std::count_if(
        rows.begin(), rows.end(), [&](const OutboxRow& r) { return r.topic == topic; }));
}

// The fixture's succeeded event with `from` replaced by `to` (once).
std::string succeeded_with(std::string_view from, std::string_view to) {
    std::string body = testing::fixture("03-succeeded.json");
    body.replace(body.find(from), from.size(), to);
    return body;
}

// A second succeeded that disagrees on the amount, in a later batch: the
// first decision stands (one credit, the row keeps its amount), the anomaly
// row carries both values; a refund status after the credit is an anomaly and
// a review, and still the row and the credit are unchanged.
TEST_P(StoreSuite, DisagreeingSecondSucceededAndARefundLeaveTheCreditAndAreRecorded) {
    BatchApplier applier({}, {});
    const Fed a = feed({{"03-succeeded.json", ""}}, 0, 0);
    const std::array<PartitionAdvance, 1> first{{{kInput, 0, std::nullopt, 1}}};
    ASSERT_EQ(applier.apply(*store_, a.records, first, kNow).status, BatchStatus::kCommitted);

    const std::string disagree = succeeded_with("\"DestinationAmount\":250.000000000000000001",
                                                "\"DestinationAmount\":251.5");
    const std::string refund = succeeded_with("\"Succeeded\"", "\"RefundSucceeded\"");
    const std::array<InputRecord, 4> records{{{kInput, 0, 1, "k", disagree, ""},
                                              {kInput, 0, 2, "k", disagree, ""},
                                              {kInput, 0, 3, "k", refund, ""},
                                              {kInput, 0, 4, "k", refund, ""}}};
    const std::array<PartitionAdvance, 1> second{{{kInput, 0, 1, 5}}};
    const BatchResult r = applier.apply(*store_, records, second, kNow);
    ASSERT_EQ(r.status, BatchStatus::kCommitted);
    EXPECT_EQ(r.stats.credits, 0U);
    EXPECT_EQ(r.stats.anomalies.at("succeeded_fields_disagree"), 1U);  // Mesh's retry: one
    EXPECT_EQ(r.stats.anomalies.at("refund_after_credit"), 1U);
    EXPECT_EQ(r.stats.reviews.at("refund_after_credit"), 1U);

    const auto row = store_->transfer("production", "4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01");
    ASSERT_TRUE(row);
    EXPECT_TRUE(row->credited);
    EXPECT_EQ(row->status, "succeeded");
    EXPECT_EQ(row->amount, "250.000000000000000001");
    EXPECT_EQ(row->last_unknown_status, "RefundSucceeded");

    const auto anomalies = store_->anomalies();
    ASSERT_EQ(anomalies.size(), 2U);
    EXPECT_EQ(anomalies[0].kind, "succeeded_fields_disagree");
    EXPECT_EQ(anomalies[0].transfer_id, "4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01");
    EXPECT_NE(anomalies[0].detail.find(
                  R"({"field":"amount","first":"250.000000000000000001","later":"251.5"})"),
              std::string::npos)
        << anomalies[0].detail;
    EXPECT_EQ(anomalies[1].kind, "refund_after_credit");
    const auto rows = store_->outbox_rows();
    ASSERT_EQ(rows.size(), 4U);  // credit, anomaly, refund anomaly, refund review
    EXPECT_EQ(count_topic(rows, "ledger.credit-commands"), 1U);
    EXPECT_EQ(count_topic(rows, "ledger.credit-review"), 1U);
    EXPECT_NE(rows[0].payload.find("\"amount\":\"250.000000000000000001\""), std::string::npos);
}

// A first succeeded without an amount goes to review; the later delivery
// with the amount credits nothing and becomes one review update.
TEST_P(StoreSuite, AnAmountArrivingAfterAReviewIsAReviewUpdateNotACredit) {
    BatchApplier applier({}, {});
    const std::string no_amount = succeeded_with("\"DestinationAmount\":250.000000000000000001",
                                                 "\"DestinationAmount\":null");
    const std::string with_amount = succeeded_with("7d3e5f10-1111-4a2b-9c3d-000000000003",
                                                   "7d3e5f10-1111-4a2b-9c3d-0000000000a3");
    const std::array<InputRecord, 1> a{{{kInput, 0, 0, "k", no_amount, ""}}};
    const std::array<PartitionAdvance, 1> first{{{kInput, 0, std::nullopt, 1}}};
    ASSERT_EQ(applier.apply(*store_, a, first, kNow).status, BatchStatus::kCommitted);
    const std::array<InputRecord, 2> b{
        {{kInput, 0, 1, "k", with_amount, ""}, {kInput, 0, 2, "k", with_amount, ""}}};
    const std::array<PartitionAdvance, 1> second{{{kInput, 0, 1, 3}}};
    const BatchResult r = applier.apply(*store_, b, second, kNow);
    ASSERT_EQ(r.status, BatchStatus::kCommitted);
    EXPECT_EQ(r.stats.credits, 0U);
    EXPECT_EQ(r.stats.reviews.at("review_update"), 1U);

    const auto row = store_->transfer("production", "4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01");
    EXPECT_FALSE(row->credited);
    EXPECT_EQ(row->review_reason, "amount_missing");
    const auto rows = store_->outbox_rows();
    ASSERT_EQ(rows.size(), 2U);
    EXPECT_EQ(count_topic(rows, "ledger.credit-review"), 2U);
    EXPECT_TRUE(rows[1].dedup_key.starts_with("review-update:production:"));
    EXPECT_NE(rows[1].payload.find("\"amount\":\"250.000000000000000001\""), std::string::npos);
    EXPECT_TRUE(store_->anomalies().empty());
}

TEST_P(StoreSuite, NulInATransferIdIsRefusedBeforeTheStoreAndAliasesNoOtherTransfer) {
    // simdjson unescapes \u0000 to a NUL byte; libpq used to cut the id there,
    // so "t-1\0evil" was stored and found as "t-1" on PostgreSQL only.
    const std::string good = succeeded("t-1", "ev-1");
    const std::string evil = succeeded(R"(t-1\u0000evil)", "ev-2");
    const std::array<InputRecord, 2> records{
        {{kInput, 0, 0, "t-1", good, ""}, {kInput, 0, 1, "t-1", evil, ""}}};
    BatchApplier::Expected expected;
    const BatchResult r = isolate(records, {{0, std::nullopt}}, &expected);
    ASSERT_EQ(r.status, BatchStatus::kCommitted);
    EXPECT_EQ(r.stats.credits, 1U);
    EXPECT_EQ(r.stats.count(Outcome::kUnusableIdentifier), 1U);
    EXPECT_EQ(r.stats.anomalies.at("unusable_identifier"), 1U);
    EXPECT_EQ(expected.at(0), 2);
    EXPECT_EQ(store_->offsets(kInput).at(0), 2);
    EXPECT_EQ(store_->transfer("production", "t-1")->credit_event_id, "ev-1");
    const auto anomalies = store_->anomalies();
    ASSERT_EQ(anomalies.size(), 1U);
    EXPECT_EQ(anomalies[0].kind, "unusable_identifier");
    EXPECT_EQ(anomalies[0].transfer_id, "");
    EXPECT_EQ(anomalies[0].dedup_key, "anomaly:unusable_identifier:mesh.transfer-events:0:1");
    EXPECT_NE(anomalies[0].detail.find(R"("field":"TransferId","reason":"control_character")"),
              std::string::npos)
        << anomalies[0].detail;
    const auto rows = store_->outbox_rows();
    EXPECT_EQ(count_topic(rows, "ledger.credit-commands"), 1U);
    EXPECT_EQ(count_topic(rows, "meshhook.anomalies"), 1U);
}

TEST_P(StoreSuite, LongIdsAndNonUtf8KeysOrEnvironmentsAreAnomaliesAtTheirOffsets) {
    const std::string long_id(5 * 1024, 'x');
    const std::string good = succeeded("t-good", "ev-good");
    const std::string long_transfer = succeeded(long_id, "ev-1");
    const std::string long_event = succeeded("t-2", std::string(300, 'e'));
    const std::string plain = succeeded("t-3", "ev-3");
    const std::array<InputRecord, 5> records{{
        {kInput, 3, 40, "t-good", good, ""},
        {kInput, 3, 41, "k", long_transfer, ""},
        {kInput, 3, 42, "t-2", long_event, "sandbox"},
        {kInput, 3, 43, "t-3\xff\xfe", plain, ""},
        {kInput, 3, 44, "t-3", plain, "sand\xc3"},
    }};
    const BatchResult r = isolate(records, {{3, std::nullopt}});
    ASSERT_EQ(r.status, BatchStatus::kCommitted);
    EXPECT_EQ(r.stats.credits, 1U);
    EXPECT_EQ(r.stats.count(Outcome::kUnusableIdentifier), 4U);
    EXPECT_EQ(store_->offsets(kInput).at(3), 45);
    EXPECT_FALSE(store_->transfer("production", "t-3").has_value());
    const auto anomalies = store_->anomalies();
    ASSERT_EQ(anomalies.size(), 4U);
    const std::array<std::string, 4> fields{R"("field":"TransferId","reason":"too_long")",
                                            R"("field":"EventId","reason":"too_long")",
                                            R"("field":"key","reason":"invalid_utf8")",
                                            R"("field":"environment","reason":"invalid_utf8")"};
    for (std::size_t i = 0; i < fields.size(); ++i) {
        EXPECT_EQ(anomalies[i].dedup_key,
                  "anomaly:unusable_identifier:mesh.transfer-events:3:" + std::to_string(41 + i));
        EXPECT_NE(anomalies[i].detail.find(fields[i]), std::string::npos) << anomalies[i].detail;
    }
    EXPECT_EQ(anomalies[1].environment, "sandbox");
    EXPECT_EQ(anomalies[3].environment, "");  // the unusable environment is not repeated
    // The anomaly rows' keys are storable: an unusable key is replaced by none.
    for (const OutboxRow& row : store_->outbox_rows()) {
        EXPECT_TRUE(row.key == "t-good" || row.key == "k" || row.key == "t-2" || row.key == "t-3" ||
                    row.key.empty())
            << row.key;
    }
}

TEST_P(StoreSuite, EitherStoreRefusesNulOrInvalidUtf8InTextAsAStatementError) {
    for (const std::string& bad : {std::string("user\0x", 6), std::string("user\xff")}) {
        TransferRow row = sample_row();
        row.user_id = bad;
        auto tx = store_->begin();
        try {
            tx->put_transfer(row);
            FAIL() << "stored " << ::testing::PrintToString(bad);
        } catch (const StoreError& e) {
            EXPECT_EQ(e.kind(), StoreError::Kind::kStatement) << e.what();
        }
    }
    EXPECT_FALSE(store_->transfer("production", "t-1").has_value());
}

TEST_P(StoreSuite, RecordsTheStoreRefusesAreFoundByBisectionAndTheRestIsApplied) {
    // A trigger stands for any refusal of the engine's own (SQLSTATE P0001 on
    // PostgreSQL, SQLITE_CONSTRAINT on SQLite); the NUL byte in a UserId (not
    // an identifier, so it passes validation) for a value no store holds.
    if (GetParam() == "sqlite") {
        raw_connection()->exec_script(
            "CREATE TRIGGER poison BEFORE INSERT ON transfers WHEN NEW.transfer_id = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'poisoned'); END;");
    } else {
        raw_connection()->exec_script(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.transfer_id = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; "
            "RETURN NEW; END $$; CREATE TRIGGER poison BEFORE INSERT ON transfers "
            "FOR EACH ROW EXECUTE FUNCTION poison();");
    }
    std::vector<std::string> bodies;
    for (int i = 0; i < 6; ++i) {
        bodies.push_back(succeeded("t-" + std::to_string(i), "ev-" + std::to_string(i)));
    }
    bodies.push_back(succeeded("poison", "ev-poison"));
    bodies.push_back(succeeded("t-nul", "ev-nul", R"(user\u0000x)"));
    std::vector<InputRecord> records;
    // Two partitions interleaved; the two bad records in the middle.
    const std::array<std::size_t, 8> order{0, 1, 6, 2, 3, 7, 4, 5};
    for (std::size_t i = 0; i < order.size(); ++i) {
        const auto partition = static_cast<std::int32_t>(i % 2);
        records.push_back(
            {kInput, partition, 100 + static_cast<std::int64_t>(i / 2), "k", bodies[order[i]], ""});
    }
    {
        auto tx = store_->begin();
        ASSERT_TRUE(tx->advance_offset(kInput, 0, std::nullopt, 100));
        tx->commit();
    }
    BatchApplier::Expected expected;
    const BatchResult r = isolate(records, {{0, 100}, {1, std::nullopt}}, &expected);
    ASSERT_EQ(r.status, BatchStatus::kCommitted);
    EXPECT_EQ(r.stats.credits, 6U);
    EXPECT_EQ(r.stats.count(Outcome::kUnapplicable), 2U);
    EXPECT_EQ(r.stats.anomalies.at("unapplicable_record"), 2U);
    EXPECT_EQ(store_->offsets(kInput).at(0), 104);
    EXPECT_EQ(store_->offsets(kInput).at(1), 104);
    EXPECT_EQ(expected.at(0), 104);
    EXPECT_EQ(expected.at(1), 104);
    for (int i = 0; i < 6; ++i) {
        EXPECT_TRUE(store_->transfer("production", "t-" + std::to_string(i))->credited) << i;
    }
    EXPECT_FALSE(store_->transfer("production", "poison").has_value());
    EXPECT_FALSE(store_->transfer("production", "t-nul").has_value());
    const auto anomalies = store_->anomalies();
    ASSERT_EQ(anomalies.size(), 2U);
    // "poison" is records[2] (partition 0, offset 101), "t-nul" records[5] (1, 102).
    EXPECT_EQ(anomalies[0].dedup_key, "anomaly:unapplicable_record:mesh.transfer-events:0:101");
    EXPECT_EQ(anomalies[0].transfer_id, "poison");
    EXPECT_NE(anomalies[0].detail.find("poisoned"), std::string::npos) << anomalies[0].detail;
    EXPECT_EQ(anomalies[1].dedup_key, "anomaly:unapplicable_record:mesh.transfer-events:1:102");
    EXPECT_EQ(anomalies[1].transfer_id, "t-nul");
    EXPECT_NE(anomalies[1].detail.find("NUL byte"), std::string::npos) << anomalies[1].detail;
    const auto rows = store_->outbox_rows();
    EXPECT_EQ(count_topic(rows, "ledger.credit-commands"), 6U);
    EXPECT_EQ(count_topic(rows, "meshhook.anomalies"), 2U);
}

// A store whose transactions fail as an unreachable store does.
class UnavailableStore final : public Store {
public:
    explicit UnavailableStore(Store& inner) : inner_(inner) {}
    std::string_view kind() const override { return inner_.kind(); }
    int schema_version() override { return inner_.schema_version(); }
    std::unique_ptr<StoreTransaction> begin() override {
        throw StoreError("PostgreSQL connection lost: server closed the connection");
    }
    std::map<std::int32_t, std::int64_t> offsets(std::string_view t) override {
        return inner_.offsets(t);
    }
    bool empty() override { return inner_.empty(); }
    std::optional<TransferRow> transfer(std::string_view e, std::string_view t) override {
        return inner_.transfer(e, t);
    }
    std::vector<TransferRow> stale_transfers(std::string_view e, std::int64_t q,
                                             const std::optional<StaleCursor>& a,
                                             std::size_t l) override {
        return inner_.stale_transfers(e, q, a, l);
    }
    std::vector<OutboxRow> unsent(std::size_t limit) override { return inner_.unsent(limit); }
    void mark_sent(const std::vector<SentMark>& m, std::int64_t now) override {
        inner_.mark_sent(m, now);
    }
    std::size_t record_scan(std::string_view t, std::int32_t p, const std::vector<ScannedKey>& k,
                            std::int64_t n, std::int64_t now) override {
        return inner_.record_scan(t, p, k, n, now);
    }
    std::map<std::int32_t, std::int64_t> relay_positions(std::string_view t) override {
        return inner_.relay_positions(t);
    }
    void park(const OutboxRow& r, std::string_view why, std::int64_t now) override {
        inner_.park(r, why, now);
    }
    OutboxStats outbox_stats() override { return inner_.outbox_stats(); }
    bool try_acquire_relay_lock() override { return inner_.try_acquire_relay_lock(); }
    std::vector<OutboxRow> outbox_rows() override { return inner_.outbox_rows(); }
    std::vector<AnomalyRecord> anomalies() override { return inner_.anomalies(); }
    std::vector<TransferRow> transfers() override { return inner_.transfers(); }
    TransferHistory history(std::string_view t, std::string_view e) override {
        return inner_.history(t, e);
    }
    StoreSummary summary(std::int64_t before, std::size_t limit) override {
        return inner_.summary(before, limit);
    }

private:
    Store& inner_;
};

TEST_P(StoreSuite, AnUnavailableStoreIsWaitedForNeverBisectedIntoAnomalies) {
    UnavailableStore down(*store_);
    const std::string a = succeeded("t-1", "ev-1");
    const std::string b = succeeded("t-2", "ev-2");
    const std::array<InputRecord, 2> records{
        {{kInput, 0, 0, "t-1", a, ""}, {kInput, 0, 1, "t-2", b, ""}}};
    BatchApplier applier({}, {});
    BatchApplier::Expected expected{{0, std::nullopt}};
    try {
        applier.apply_isolating(down, records, expected, kNow);
        FAIL() << "applied against a store that is down";
    } catch (const StoreError& e) {
        EXPECT_EQ(e.kind(), StoreError::Kind::kUnavailable);
    }
    EXPECT_FALSE(expected.at(0).has_value());
    EXPECT_TRUE(store_->anomalies().empty());
    EXPECT_TRUE(store_->offsets(kInput).empty());
}

INSTANTIATE_TEST_SUITE_P(Stores, StoreSuite, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                             return param.param;
                         });

TEST(StoreUrl, UnknownSchemeIsOneClearError) {
    try {
        open_store("mysql://user:secret@host/db");
        FAIL();
    } catch (const StoreError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("sqlite:// or postgresql://"), std::string::npos);
        EXPECT_EQ(what.find("secret"), std::string::npos) << what;
    }
}

TEST(StoreUrl, UnreachablePostgresIsOneClearError) {
    const std::uint16_t port = testing::free_port();
    try {
        open_store("postgresql://meshhook@127.0.0.1:" + std::to_string(port) + "/x");
        FAIL();
    } catch (const StoreError& e) {
        EXPECT_NE(std::string(e.what()).find("cannot connect to PostgreSQL"), std::string::npos);
    }
}

TEST(StoreUrl, SqliteInMissingDirectoryIsOneClearError) {
    EXPECT_THROW(open_store("sqlite:///nonexistent-dir/meshhook.db"), StoreError);
}

TEST(StoreUrl, PasswordsAreRedacted) {
    EXPECT_EQ(redact_store_url("postgresql://u:hunter2@db:5432/m"), "postgresql://u:***@db:5432/m");
    EXPECT_EQ(redact_store_url("postgresql://db/m?password=hunter2&x=1"),
              "postgresql://db/m?password=***&x=1");
    EXPECT_EQ(redact_store_url("sqlite:///var/lib/m.db"), "sqlite:///var/lib/m.db");
}

}  // namespace
}  // namespace meshhook::consumer
