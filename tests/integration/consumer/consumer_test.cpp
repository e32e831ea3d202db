// meshhook-consumer as a process against `meshhook broker` over TCP: the
// fixtures in several orders with duplicates give exactly one credit per
// succeeded transfer, with the amount text unchanged.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "common/transfer_event.hpp"
#include "consumer/encoding.hpp"
#include "consumer/sql.hpp"
#include "consumer/state_machine.hpp"
#include "consumer/store.hpp"
#include "tests/integration/consumer/harness.hpp"
#include "tests/support/process.hpp"

namespace meshhook::testing {
namespace {

const std::string kTransfer = "4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01";
const std::string kFailedTransfer = "c0ffee00-1234-4abc-8def-00000000beef";
const std::string kCamelTransfer = "5e5e5e5e-0000-4000-8000-00000000aaaa";

// Fixture file -> the key meshhook-ingest would give it (its TransferId).
const std::map<std::string, std::string> kKeys = {
    {"01-pending.json", kTransfer},
    {"02-processing.json", kTransfer},
    {"03-succeeded.json", kTransfer},
    {"04-succeeded-retry.json", kTransfer},
    {"05-failed-other-transfer.json", kFailedTransfer},
    {"06-camelcase-succeeded.json", kCamelTransfer},
    {"90-malformed-truncated.json", "bad00000-0000-4000-8000-00000000aaaa"},
    {"91-missing-transfer-id.json", ""},
};

// The credit command the consumer must emit for a fixture, byte for byte.
std::string expected_command(const std::string& fixture_name, const std::string& environment = "") {
    common::TransferEventParser parser;
    const std::string body = fixture(fixture_name);
    const auto parsed = parser.parse(body);
    EXPECT_TRUE(parsed.ok());
    return consumer::encode_credit_command(
        consumer::TransferEvent::from_view(parsed.event, environment));
}

class ConsumerIntegration : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() / unique_name("meshhook-consumer-it");
        std::filesystem::create_directories(dir_);
        run_.bootstrap = broker_.bootstrap();
        run_.store_url = "sqlite://" + (dir_ / "meshhook.db").string();
        run_.group_id = unique_name("it-group");
    }
    void TearDown() override {
        process_.reset();
        std::filesystem::remove_all(dir_);
    }

    void start() { process_ = start_consumer(run_); }

    void feed(const std::vector<std::string>& fixtures, const std::string& environment = "") {
        Feeder feeder(broker_.bootstrap());
        for (const std::string& name : fixtures) {
            feeder.send(kKeys.at(name), fixture(name), environment);
        }
        feeder.flush();
    }

    // Waits until the consumer applied the whole input and sent its outbox.
    void wait_caught_up() {
        auto store = consumer::open_store(run_.store_url);
        TopicReader reader(broker_.bootstrap());
        ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader); }, 60s))
            << process_->stderr_text();
    }

    std::vector<TopicRecord> read(const std::string& topic) {
        TopicReader reader(broker_.bootstrap());
        return reader.read_all(topic);
    }

    BrokerProcess broker_;
    std::filesystem::path dir_;
    ConsumerRun run_;
    std::unique_ptr<Process> process_;
};

struct Order {
    std::string name;
    std::vector<std::string> fixtures;
};

void PrintTo(const Order& order, std::ostream* os) {
    *os << order.name;
}

std::vector<Order> orders() {
    const std::vector<std::string> all = {"01-pending.json",
                                          "02-processing.json",
                                          "03-succeeded.json",
                                          "04-succeeded-retry.json",
                                          "05-failed-other-transfer.json",
                                          "06-camelcase-succeeded.json",
                                          "90-malformed-truncated.json",
                                          "91-missing-transfer-id.json"};
    std::vector<Order> out;
    out.push_back({"InOrder", all});
    std::vector<std::string> reversed(all.rbegin(), all.rend());
    out.push_back({"Reversed", reversed});
    std::vector<std::string> twice;
    for (const std::string& f : all) {
        twice.push_back(f);
        twice.push_back(f);
    }
    twice.insert(twice.end(), all.begin(), all.end());
    out.push_back({"EveryDeliveryRepeated", twice});
    std::vector<std::string> shuffled = twice;
    std::mt19937 rng(20261128);
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    out.push_back({"ShuffledWithDuplicates", shuffled});
    return out;
}

class FixtureOrders : public ConsumerIntegration, public ::testing::WithParamInterface<Order> {};

TEST_P(FixtureOrders, OneCreditPerSucceededTransferWithTheExactAmountText) {
    start();
    feed(GetParam().fixtures);
    wait_caught_up();

    const auto credits = read(kCreditTopic);
    std::map<std::string, std::vector<TopicRecord>> by_key;
    for (const TopicRecord& r : credits) {
        by_key[r.key].push_back(r);
    }
    ASSERT_EQ(credits.size(), 2U);
    ASSERT_EQ(by_key[kTransfer].size(), 1U);
    ASSERT_EQ(by_key[kCamelTransfer].size(), 1U);
    EXPECT_FALSE(by_key.contains(kFailedTransfer));
    EXPECT_EQ(by_key[kTransfer][0].value, expected_command("03-succeeded.json"));
    EXPECT_NE(by_key[kTransfer][0].value.find("\"amount\":\"250.000000000000000001\""),
              std::string::npos);
    EXPECT_EQ(by_key[kTransfer][0].dedup_key, "credit:production:" + kTransfer);
    EXPECT_EQ(by_key[kCamelTransfer][0].value, expected_command("06-camelcase-succeeded.json"));

    // Each bad record (one per delivery: they have no identity to dedup on)
    // became an anomaly with its raw bytes; nothing went to review.
    const auto bad = static_cast<std::size_t>(
        std::count_if(GetParam().fixtures.begin(), GetParam().fixtures.end(),
                      [](const std::string& f) { return f.starts_with("9"); }));
    const auto anomalies = read(kAnomalyTopic);
    ASSERT_EQ(anomalies.size(), bad);
    for (const TopicRecord& a : anomalies) {
        EXPECT_NE(a.value.find("\"kind\":\"unparseable\""), std::string::npos);
    }
    EXPECT_TRUE(read(kReviewTopic).empty());

    auto store = consumer::open_store(run_.store_url);
    EXPECT_EQ(store->transfer("production", kFailedTransfer)->status, "failed");
    EXPECT_TRUE(store->transfer("production", kTransfer)->credited);
}

INSTANTIATE_TEST_SUITE_P(Orders, FixtureOrders, ::testing::ValuesIn(orders()),
                         [](const ::testing::TestParamInfo<Order>& param) {
                             return param.param.name;
                         });

TEST_F(ConsumerIntegration, SandboxAndProductionAreSeparateTransfers) {
    start();
    feed({"03-succeeded.json"});
    feed({"03-succeeded.json", "04-succeeded-retry.json"}, "sandbox");
    wait_caught_up();
    const auto credits = read(kCreditTopic);
    ASSERT_EQ(credits.size(), 2U);
    std::set<std::string> keys;
    for (const TopicRecord& r : credits) {
        keys.insert(r.dedup_key);
    }
    EXPECT_EQ(keys, (std::set<std::string>{"credit:production:" + kTransfer,
                                           "credit:sandbox:" + kTransfer}));
}

TEST_F(ConsumerIntegration, AssetOutsidePolicyGoesToReviewNotToTheLedger) {
    run_.extra_args = {"--allowed-assets", "usdc:solana"};
    start();
    feed({"03-succeeded.json", "06-camelcase-succeeded.json"});
    wait_caught_up();
    const auto credits = read(kCreditTopic);
    ASSERT_EQ(credits.size(), 1U);
    EXPECT_EQ(credits[0].key, kCamelTransfer);
    const auto reviews = read(kReviewTopic);
    ASSERT_EQ(reviews.size(), 1U);
    EXPECT_EQ(reviews[0].key, kTransfer);
    EXPECT_NE(reviews[0].value.find("\"reason\":\"asset_not_allowed\""), std::string::npos);
    EXPECT_NE(reviews[0].value.find("\"amount\":\"250.000000000000000001\""), std::string::npos);
}

TEST_F(ConsumerIntegration, RestartResumesFromTheStoreAndDoesNotCreditAgain) {
    start();
    feed({"01-pending.json", "03-succeeded.json"});
    wait_caught_up();
    process_->signal(SIGTERM);
    ASSERT_EQ(process_->wait(30s), std::optional<int>(0)) << process_->stderr_text();

    run_.group_id = unique_name("it-group");  // a new group: Kafka's offsets are no help
    start();
    feed({"04-succeeded-retry.json", "02-processing.json", "05-failed-other-transfer.json"});
    wait_caught_up();
    const auto credits = read(kCreditTopic);
    ASSERT_EQ(credits.size(), 1U);
    EXPECT_EQ(credits[0].value, expected_command("03-succeeded.json"));
}

// --start-from. The first run credits 03 and stops; the store is then
// replaced by a new, empty one under the same topics.
class StartFrom : public ConsumerIntegration {
protected:
    void run_first_consumer_and_replace_the_store() {
        start();
        feed({"01-pending.json", "03-succeeded.json"});
        wait_caught_up();
        // The loop commits to the group asynchronously after each batch: wait
        // for it, so that `committed` has something to find.
        ASSERT_TRUE(wait_until([&] { return group_offsets_sum() == input_end(); }, 30s));
        process_->signal(SIGTERM);
        ASSERT_EQ(process_->wait(30s), std::optional<int>(0)) << process_->stderr_text();
        ASSERT_EQ(read(kCreditTopic).size(), 1U);
        run_.store_url = "sqlite://" + (dir_ / "replaced.db").string();
    }

    std::vector<std::string> args(const std::vector<std::string>& extra = {}) const {
        std::vector<std::string> argv{binary_path("meshhook-consumer").string(),
                                      "--brokers",
                                      run_.bootstrap,
                                      "--store",
                                      run_.store_url,
                                      "--group-id",
                                      run_.group_id,
                                      "--metrics-listen",
                                      "127.0.0.1:0"};
        argv.insert(argv.end(), extra.begin(), extra.end());
        return argv;
    }

    std::int64_t input_end() {
        TopicReader reader(broker_.bootstrap());
        return reader.end_offset_sum(kInputTopic);
    }

    std::int64_t group_offsets_sum() {
        common::Consumer group(
            {{"bootstrap.servers", broker_.bootstrap()}, {"group.id", run_.group_id}});
        const auto partitions = group.partition_count(kInputTopic, 5s);
        if (!partitions) {
            return -1;
        }
        std::vector<common::TopicPartition> asked;
        for (std::int32_t p = 0; p < *partitions; ++p) {
            asked.push_back({kInputTopic, p, common::kOffsetInvalid});
        }
        std::int64_t sum = 0;
        try {
            for (const auto& tp : group.committed(asked, 5s)) {
                sum += std::max<std::int64_t>(0, tp.offset);
            }
        } catch (const common::KafkaError&) {
            return -1;
        }
        return sum;
    }

    // 03 once (from the first run), 06 once (from the new store, which
    // never saw 03).
    void expect_only_the_new_transfer_credited_by_the_new_store() {
        std::map<std::string, int> count;
        for (const TopicRecord& r : read(kCreditTopic)) {
            ++count[r.dedup_key];
        }
        EXPECT_EQ(count, (std::map<std::string, int>{{"credit:production:" + kTransfer, 1},
                                                     {"credit:production:" + kCamelTransfer, 1}}));
        auto store = consumer::open_store(run_.store_url);
        EXPECT_FALSE(store->transfer("production", kTransfer).has_value());
        ASSERT_TRUE(store->transfer("production", kCamelTransfer).has_value());
        EXPECT_TRUE(store->transfer("production", kCamelTransfer)->credited);
    }
};

TEST_F(StartFrom, EmptyStoreOverARunPipelineRefusesToStartWithoutIt) {
    run_first_consumer_and_replace_the_store();
    Process p(args());
    EXPECT_EQ(p.wait(20s), std::optional<int>(2));
    const std::string err = p.stderr_text();
    EXPECT_EQ(err.rfind("meshhook-consumer: --start-from (CONSUMER_START_FROM): the store is "
                        "empty but ledger.credit-commands is not (",
                        0),
              0U)
        << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_TRUE(consumer::open_store(run_.store_url)->empty());
}

TEST_F(StartFrom, LatestSkipsWhatTheTopicHeldAndCreditsWhatComesAfter) {
    run_first_consumer_and_replace_the_store();
    run_.extra_args = {"--start-from", "latest"};
    start();  // the offsets are written before "ready"
    {
        auto store = consumer::open_store(run_.store_url);
        std::int64_t stored = 0;
        for (const auto& [partition, offset] : store->offsets(kInputTopic)) {
            stored += offset;
        }
        EXPECT_EQ(stored, input_end());
        EXPECT_FALSE(store->transfer("production", kTransfer).has_value());
    }
    feed({"06-camelcase-succeeded.json"});
    wait_caught_up();
    expect_only_the_new_transfer_credited_by_the_new_store();
}

// What arrived while no consumer ran is past the group's offsets: `committed`
// applies it; `latest` would have skipped it and `earliest` credited 03 again.
TEST_F(StartFrom, CommittedResumesAtTheGroupsOffsets) {
    run_first_consumer_and_replace_the_store();
    feed({"06-camelcase-succeeded.json"});
    run_.extra_args = {"--start-from", "committed"};
    start();
    wait_caught_up();
    expect_only_the_new_transfer_credited_by_the_new_store();
}

TEST_F(StartFrom, IsIgnoredOnceTheStoreHasOffsets) {
    start();
    feed({"03-succeeded.json"});
    wait_caught_up();
    process_->signal(SIGTERM);
    ASSERT_EQ(process_->wait(30s), std::optional<int>(0)) << process_->stderr_text();
    feed({"06-camelcase-succeeded.json"});
    run_.extra_args = {"--start-from", "latest"};
    start();
    wait_caught_up();  // 06 was applied: the store's offsets won over `latest`
    EXPECT_EQ(read(kCreditTopic).size(), 2U);
    EXPECT_NE(process_->stderr_text().find("--start-from (CONSUMER_START_FROM) latest ignored"),
              std::string::npos)
        << process_->stderr_text();
}

TEST_F(StartFrom, FreshDeploymentStartsWithoutIt) {
    start();
    feed({"01-pending.json", "03-succeeded.json"});
    wait_caught_up();
    EXPECT_EQ(read(kCreditTopic).size(), 1U);
    EXPECT_NE(process_->stderr_text().find("output topics hold no records"), std::string::npos)
        << process_->stderr_text();
}

TEST_F(StartFrom, UnknownValueFailsAtStartWithOneLineNamingIt) {
    Process p(args({"--start-from", "beginning"}));
    EXPECT_EQ(p.wait(10s), std::optional<int>(2));
    const std::string err = p.stderr_text();
    EXPECT_NE(err.find("--start-from (CONSUMER_START_FROM): expected earliest, latest or "
                       "committed, got \"beginning\""),
              std::string::npos)
        << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

// A crash after the broker acknowledged a command but before the store
// marked it sent: on start the relay finds it on the topic and does not
// send it again; a row that never reached the topic is sent.
TEST_F(ConsumerIntegration, RelayMarksRowsAlreadyOnTheTopicInsteadOfResending) {
    {
        auto store = consumer::open_store(run_.store_url);
        auto tx = store->begin();
        ASSERT_TRUE(tx->add_outbox(
            {kCreditTopic, "t-delivered", "{\"delivered\":true}", "credit:production:t-delivered"},
            1));
        ASSERT_TRUE(tx->add_outbox(
            {kCreditTopic, "t-pending", "{\"delivered\":false}", "credit:production:t-pending"},
            2));
        tx->commit();
    }
    {
        common::Producer producer({{"bootstrap.servers", broker_.bootstrap()}});
        ASSERT_EQ(producer.produce(kCreditTopic, "t-delivered", "{\"delivered\":true}",
                                   {{"dedup-key", "credit:production:t-delivered"}}, nullptr),
                  common::ProduceStatus::kEnqueued);
        ASSERT_EQ(producer.flush(10s), 0);
    }
    start();
    auto store = consumer::open_store(run_.store_url);
    ASSERT_TRUE(wait_until([&] { return store->outbox_stats().unsent == 0; }, 30s))
        << process_->stderr_text();
    const auto credits = read(kCreditTopic);
    ASSERT_EQ(credits.size(), 2U);
    std::map<std::string, int> count;
    for (const TopicRecord& r : credits) {
        ++count[r.dedup_key];
    }
    EXPECT_EQ(count["credit:production:t-delivered"], 1);
    EXPECT_EQ(count["credit:production:t-pending"], 1);
    for (const consumer::OutboxRow& row : store->outbox_rows()) {
        ASSERT_TRUE(row.sent_offset.has_value()) << row.dedup_key;
        const auto it = std::find_if(credits.begin(), credits.end(), [&](const TopicRecord& r) {
            return r.dedup_key == row.dedup_key;
        });
        ASSERT_NE(it, credits.end());
        EXPECT_EQ(*row.sent_offset, it->offset);
        EXPECT_EQ(*row.sent_partition, it->partition);
    }
}

// ---------------------------------------------- records that used to wedge it

// Between good events: a body whose TransferId is 5 KB (keyed like its
// transfer, so it sits between that transfer's pending and succeeded), and a
// record whose Kafka key is not UTF-8 (`unusable_identifier` anomalies), and a
// UserId holding a NUL byte (an `unapplicable_record`, found by bisecting the
// batch). Good events are credited once, and the consumer keeps going.
class WedgeRecords : public ConsumerIntegration, public ::testing::WithParamInterface<std::string> {
protected:
    static PostgresServer& postgres() {
        static PostgresServer server;
        return server;
    }

    static std::string with_transfer(const std::string& fixture_name, const std::string& id) {
        std::string body = fixture(fixture_name);
        const std::string& from = kKeys.at(fixture_name);
        body.replace(body.find(from), from.size(), id);
        return body;
    }
};

TEST_P(WedgeRecords, OversizedIdNonUtf8KeyAndNulUserIdAreAnomaliesTheRestIsCreditedOnce) {
    if (GetParam() == "postgresql") {
        run_.store_url = postgres().create_database(unique_name("wedge"));
    }
    start();
    const std::string after = "afafafaf-0000-4000-8000-000000000001";
    Feeder feeder(broker_.bootstrap());
    feeder.send(kTransfer, fixture("01-pending.json"));
    // Random text: it does not compress, so PostgreSQL's B-tree (entries up to
    // about 2.7 KB) refused it, and the batch failed forever.
    std::string long_id;
    std::mt19937 rng(5120);
    while (long_id.size() < 5 * 1024) {
        long_id += "0123456789abcdef"[rng() % 16];
    }
    feeder.send(kTransfer, with_transfer("03-succeeded.json", long_id));
    feeder.send(kTransfer, fixture("03-succeeded.json"));
    feeder.send("\xff\xfe" + kCamelTransfer, fixture("06-camelcase-succeeded.json"));
    // A NUL byte in a UserId: a usable event no store holds, found by bisection.
    const std::string nul_user = "0000dead-0000-4000-8000-000000000001";
    std::string nul_body = with_transfer("03-succeeded.json", nul_user);
    nul_body.replace(nul_body.find("user-42"), 7, R"(user\u000042)");
    feeder.send(nul_user, nul_body);
    feeder.send(kTransfer, fixture("04-succeeded-retry.json"));
    feeder.send(kFailedTransfer, fixture("05-failed-other-transfer.json"));
    feeder.send(after, with_transfer("03-succeeded.json", after));
    feeder.flush();
    wait_caught_up();

    std::map<std::string, int> credits;
    for (const TopicRecord& r : read(kCreditTopic)) {
        ++credits[r.dedup_key];
    }
    EXPECT_EQ(credits, (std::map<std::string, int>{{"credit:production:" + kTransfer, 1},
                                                   {"credit:production:" + after, 1}}));
    const auto on_topic = read(kAnomalyTopic);
    ASSERT_EQ(on_topic.size(), 3U);
    std::set<std::string> fields;
    for (const TopicRecord& r : on_topic) {
        if (r.key == nul_user) {
            EXPECT_TRUE(r.dedup_key.starts_with("anomaly:unapplicable_record:")) << r.dedup_key;
            EXPECT_NE(r.value.find("NUL byte"), std::string::npos) << r.value;
            continue;
        }
        EXPECT_TRUE(r.dedup_key.starts_with("anomaly:unusable_identifier:mesh.transfer-events:"))
            << r.dedup_key;
        for (const std::string field : {R"("field":"TransferId","reason":"too_long")",
                                        R"("field":"key","reason":"invalid_utf8")"}) {
            if (r.value.find(field) != std::string::npos) {
                fields.insert(field);
            }
        }
    }
    EXPECT_EQ(fields.size(), 2U);
    auto store = consumer::open_store(run_.store_url);
    ASSERT_EQ(store->anomalies().size(), 3U);
    EXPECT_FALSE(store->transfer("production", nul_user).has_value());
    EXPECT_FALSE(store->transfer("production", kCamelTransfer).has_value());
    EXPECT_EQ(store->transfer("production", kTransfer)->status, "succeeded");
    EXPECT_EQ(store->transfer("production", kFailedTransfer)->status, "failed");

    // Not wedged: what comes next is applied too.
    feed({"06-camelcase-succeeded.json"});
    wait_caught_up();
    int camel = 0;
    for (const TopicRecord& r : read(kCreditTopic)) {
        camel += r.key == kCamelTransfer ? 1 : 0;
    }
    EXPECT_EQ(camel, 1);
}

INSTANTIATE_TEST_SUITE_P(Stores, WedgeRecords, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param) { return std::string(param.param); });

// ------------------------------------------------ topics deleted and recreated

// The input and credit topics deleted and recreated under a store that has
// run (apache: the shared cluster's topics deleted and created anew; mock: a
// new cluster, whose topics start at offset 0 all the same). The store's
// offsets are then past the partitions' ends: the consumer used to drop every
// new record below them, and the relay to skip its recovery scan. Now the
// consumer refuses to start with one line naming --start-from, and the relay
// sends nothing until its positions are reset.
class RecreatedTopics : public ConsumerIntegration,
                        public ::testing::WithParamInterface<std::string> {
protected:
    static PostgresServer& postgres() {
        static PostgresServer server;
        return server;
    }
    std::unique_ptr<consumer::sql::Connection> raw_store() const {
        if (GetParam() == "postgresql") {
            return consumer::sql::open_postgres(run_.store_url);
        }
        return consumer::sql::open_sqlite(run_.store_url.substr(9));
    }
};

TEST_P(RecreatedTopics, StoredOffsetsPastTheEndStopTheConsumerAndTheRelayUntilAnOperatorChooses) {
    if (GetParam() == "postgresql") {
        run_.store_url = postgres().create_database(unique_name("recreated"));
    }
    run_.extra_args = {"--drain-timeout-ms", "500"};
    start();
    feed({"01-pending.json", "02-processing.json", "03-succeeded.json"});  // one partition, @3
    wait_caught_up();
    process_->signal(SIGTERM);
    ASSERT_EQ(process_->wait(30s), std::optional<int>(0)) << process_->stderr_text();
    ASSERT_EQ(read(kCreditTopic).size(), 1U);
    std::map<std::int32_t, std::int64_t> before;
    std::int32_t partition = -1;
    {
        auto store = consumer::open_store(run_.store_url);
        before = store->offsets(kInputTopic);
        ASSERT_EQ(before.size(), 1U);
        partition = before.begin()->first;
        ASSERT_EQ(before.begin()->second, 3);
    }

    BrokerProcess recreated;  // every topic deleted and created anew (or a new cluster)
    run_.bootstrap = recreated.bootstrap();
    // A new transfer on the same partition (keyed like the old one), at offset 0.
    {
        Feeder feeder(recreated.bootstrap());
        feeder.send(kTransfer, fixture("06-camelcase-succeeded.json"));
        feeder.flush();
    }

    Process refused({binary_path("meshhook-consumer").string(), "--brokers", run_.bootstrap,
                     "--store", run_.store_url, "--group-id", run_.group_id, "--metrics-listen",
                     "127.0.0.1:0"});
    EXPECT_EQ(refused.wait(30s), std::optional<int>(2)) << refused.stderr_text();
    const std::string err = refused.stderr_text();
    EXPECT_EQ(err.rfind("meshhook-consumer: --start-from (CONSUMER_START_FROM): the store's "
                        "offsets are past the end of mesh.transfer-events ([" +
                            std::to_string(partition) + "] at 3, its end is 1)",
                        0),
              0U)
        << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_EQ(consumer::open_store(run_.store_url)->offsets(kInputTopic), before);

    // The operator chooses: earliest applies what the new topic holds.
    run_.extra_args = {"--start-from", "earliest", "--drain-timeout-ms", "500"};
    start();
    auto store = consumer::open_store(run_.store_url);
    TopicReader reader(recreated.bootstrap());
    ASSERT_TRUE(wait_until(
        [&] {
            const auto offsets = store->offsets(kInputTopic);
            return offsets.contains(partition) && offsets.at(partition) == 1;
        },
        60s))
        << process_->stderr_text();
    ASSERT_TRUE(wait_until(
        [&] {
            return store->transfer("production", kCamelTransfer).has_value() &&
                   store->outbox_stats().unsent == 1;
        },
        30s))
        << process_->stderr_text();
    EXPECT_NE(process_->stderr_text().find("earliest applied to offsets past the end of "
                                           "mesh.transfer-events (the topic was recreated): [" +
                                           std::to_string(partition) + "] 3->0"),
              std::string::npos)
        << process_->stderr_text();

    // The relay's position in the credit topic is past its new end: it sends
    // nothing (a scan from there would miss what the topic holds), and says so.
    std::string metrics;
    ASSERT_TRUE(wait_until(
        [&] {
            metrics = http_get(run_.metrics_port, "/metrics").second;
            return metrics.find("meshhook_consumer_relay_positions_past_end_total 0") ==
                       std::string::npos &&
                   metrics.find("meshhook_consumer_relay_positions_past_end_total") !=
                       std::string::npos;
        },
        30s))
        << metrics;
    EXPECT_TRUE(reader.read_all(kCreditTopic).empty());
    EXPECT_EQ(store->outbox_stats().unsent, 1);
    EXPECT_NE(process_->stderr_text().find("DELETE FROM relay_positions WHERE topic = "
                                           "'ledger.credit-commands'"),
              std::string::npos)
        << process_->stderr_text();

    // The operator's statement from that line: the relay scans the new topic
    // from its beginning and sends the new credit, once; the old one is not
    // sent again (its row was sent to the old topic).
    const std::array<consumer::sql::Param, 0> none{};
    raw_store()->query("DELETE FROM relay_positions WHERE topic = 'ledger.credit-commands'", none);
    ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader); }, 60s))
        << process_->stderr_text();
    const auto credits = reader.read_all(kCreditTopic);
    ASSERT_EQ(credits.size(), 1U);
    EXPECT_EQ(credits[0].dedup_key, "credit:production:" + kCamelTransfer);
}

INSTANTIATE_TEST_SUITE_P(Stores, RecreatedTopics, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param) { return std::string(param.param); });

// The input topic deleted and recreated while the consumer runs (Apache
// Kafka: the mock cannot delete a topic). Its fetch offset is then out of
// range: the consumer used to reset to the new beginning and drop every
// record below the stored offset; now it stops with one line.
TEST_F(ConsumerIntegration, InputTopicRecreatedUnderARunningConsumerStopsIt) {
    if (!apache_engine()) {
        GTEST_SKIP() << "the mock cluster cannot delete a topic";
    }
    start();
    feed({"01-pending.json", "02-processing.json", "03-succeeded.json"});
    wait_caught_up();
    const auto before = consumer::open_store(run_.store_url)->offsets(kInputTopic);
    ASSERT_EQ(before.size(), 1U);
    const std::int32_t partition = before.begin()->first;

    BrokerProcess recreated;  // the shared cluster: every topic deleted and created anew
    {
        Feeder feeder(recreated.bootstrap());
        feeder.send(kTransfer, fixture("06-camelcase-succeeded.json"));
        feeder.flush();
    }
    EXPECT_EQ(process_->wait(60s), std::optional<int>(1)) << process_->stderr_text();
    const std::string err = process_->stderr_text();
    EXPECT_NE(err.find("fatal: --start-from (CONSUMER_START_FROM): the store's offsets are past "
                       "the end of mesh.transfer-events ([" +
                       std::to_string(partition) + "] at 3, its end is "),
              std::string::npos)
        << err;
    EXPECT_EQ(consumer::open_store(run_.store_url)->offsets(kInputTopic), before);
}

TEST_F(ConsumerIntegration, ServesMetricsHealthAndReadiness) {
    start();
    feed({"01-pending.json", "03-succeeded.json", "04-succeeded-retry.json",
          "90-malformed-truncated.json"});
    wait_caught_up();
    EXPECT_EQ(http_get(run_.metrics_port, "/healthz").first, 200);
    EXPECT_TRUE(
        wait_until([&] { return http_get(run_.metrics_port, "/readyz").first == 200; }, 10s));
    EXPECT_EQ(http_get(run_.metrics_port, "/nope").first, 404);
    std::string metrics;
    // The relay refreshes the backlog gauge at least once a second.
    ASSERT_TRUE(wait_until(
        [&] {
            metrics = http_get(run_.metrics_port, "/metrics").second;
            return metrics.find(
                       "meshhook_consumer_outbox_sent_total{topic=\"ledger.credit-commands\"} 1") !=
                   std::string::npos;
        },
        10s))
        << metrics;
    for (const std::string line :
         {"meshhook_consumer_events_total{status=\"succeeded\"} 2",
          "meshhook_consumer_events_total{status=\"pending\"} 1",
          "meshhook_consumer_event_outcomes_total{outcome=\"applied\"} 2",
          "meshhook_consumer_event_outcomes_total{outcome=\"duplicate\"} 1",
          "meshhook_consumer_event_outcomes_total{outcome=\"unparseable\"} 1",
          "meshhook_consumer_credits_total 1",
          "meshhook_consumer_anomalies_total{kind=\"unparseable\"} 1",
          "meshhook_consumer_outbox_backlog 0", "meshhook_consumer_ready 1"}) {
        EXPECT_NE(metrics.find(line), std::string::npos) << line << "\n" << metrics;
    }
    EXPECT_NE(metrics.find("meshhook_consumer_batch_apply_duration_seconds_count"),
              std::string::npos);
    EXPECT_NE(metrics.find("meshhook_consumer_store_commit_duration_seconds_count"),
              std::string::npos);
    EXPECT_NE(metrics.find("meshhook_consumer_lag{"), std::string::npos);
}

TEST_F(ConsumerIntegration, SigtermSendsWhatIsCommittedAndExitsZero) {
    start();
    feed({"03-succeeded.json"});
    auto store = consumer::open_store(run_.store_url);
    ASSERT_TRUE(wait_until([&] { return !store->outbox_rows().empty(); }, 30s));
    process_->signal(SIGTERM);
    ASSERT_EQ(process_->wait(30s), std::optional<int>(0)) << process_->stderr_text();
    EXPECT_EQ(store->outbox_stats().unsent, 0);
    EXPECT_EQ(read(kCreditTopic).size(), 1U);
}

TEST_F(ConsumerIntegration, ReadyFileNamesTheMetricsAddressOnceReady) {
    const auto path = (dir_ / "consumer.ready").string();
    run_.extra_args = {"--ready-file", path};
    start();  // returns once it printed "ready"
    ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(path); }, 10s));
    const auto text = read_file(path);
    EXPECT_NE(text.find("metrics_listen=127.0.0.1:" + std::to_string(run_.metrics_port) + "\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("pid=" + std::to_string(process_->pid()) + "\n"), std::string::npos)
        << text;
}

TEST_F(ConsumerIntegration, BadSettingFailsAtStartWithOneLineNamingIt) {
    Process p({binary_path("meshhook-consumer").string(), "--brokers", broker_.bootstrap(),
               "--store", run_.store_url, "--allowed-assets", "USDC-Ethereum"});
    EXPECT_EQ(p.wait(10s), std::optional<int>(2));
    const std::string err = p.stderr_text();
    EXPECT_NE(err.find("--allowed-assets"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

// --kafka-config-file: connection properties reach every client (the credit
// comes out through both the consumer and the relay's producer); a property
// the exactly-once guarantee rests on is refused at start.
TEST_F(ConsumerIntegration, KafkaConfigFileAppliesConnectionPropertiesAndRefusesTheRest) {
    const auto good = (dir_ / "client.properties").string();
    const auto bad = (dir_ / "bad.properties").string();
    std::ofstream(good) << "security.protocol=PLAINTEXT\nclient.rack=rack-a\n";
    std::ofstream(bad) << "# would commit offsets outside the store's transaction\n"
                          "enable.auto.commit=true\n";

    Process refused({binary_path("meshhook-consumer").string(), "--brokers", broker_.bootstrap(),
                     "--store", run_.store_url, "--kafka-config-file", bad});
    EXPECT_EQ(refused.wait(10s), std::optional<int>(2));
    const std::string err = refused.stderr_text();
    EXPECT_NE(err.find("--kafka-config-file"), std::string::npos) << err;
    EXPECT_NE(err.find("enable.auto.commit"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;

    run_.extra_args = {"--kafka-config-file", good};
    start();
    feed({"03-succeeded.json"});
    wait_caught_up();
    EXPECT_EQ(read(kCreditTopic).size(), 1U);
}

TEST_F(ConsumerIntegration, UnreachableStoreFailsAtStartWithOneLine) {
    Process p({binary_path("meshhook-consumer").string(), "--brokers", broker_.bootstrap(),
               "--store",
               "postgresql://meshhook:hunter2@127.0.0.1:" + std::to_string(free_port()) + "/x"});
    EXPECT_EQ(p.wait(10s), std::optional<int>(2));
    const std::string err = p.stderr_text();
    EXPECT_NE(err.find("--store"), std::string::npos) << err;
    EXPECT_NE(err.find("cannot connect to PostgreSQL"), std::string::npos) << err;
    EXPECT_EQ(err.find("hunter2"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

TEST_F(ConsumerIntegration, StoreWithANewerSchemaFailsAtStartWithOneLine) {
    consumer::open_store(run_.store_url).reset();  // creates the schema
    consumer::sql::open_sqlite(run_.store_url.substr(9))
        ->exec_script("UPDATE meshhook_schema SET version = 7");
    Process p({binary_path("meshhook-consumer").string(), "--brokers", broker_.bootstrap(),
               "--store", run_.store_url});
    EXPECT_EQ(p.wait(10s), std::optional<int>(2));
    const std::string err = p.stderr_text();
    EXPECT_NE(err.find("schema version 7 is newer than this binary"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
}

}  // namespace
}  // namespace meshhook::testing
