// `meshhook tail` and `meshhook replay` against the test broker in its own
// process, over TCP.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "common/kafka.hpp"
#include "tests/integration/tools/cli_harness.hpp"
#include "tests/support/process.hpp"
#include "tools/topic_reader.hpp"

namespace meshhook::testing {
namespace {

const std::string kDlq = "mesh.transfer-events.dlq";
const std::string kEvents = "mesh.transfer-events";
const std::string kAnomalies = "meshhook.anomalies";

// Produces records and waits for every delivery report.
void produce(
    const std::string& brokers, const std::string& topic,
    const std::vector<std::tuple<std::string, std::string,
                                 std::vector<std::pair<std::string, std::string>>>>& records) {
    struct Reports final : common::DeliveryHandler {
        std::atomic<int> ok{0};
        void on_delivery(const common::DeliveryReport& r) noexcept override {
            if (r.ok()) ok.fetch_add(1);
        }
    } reports;
    common::Producer producer({{"bootstrap.servers", brokers}});
    for (const auto& [key, value, headers] : records) {
        std::vector<common::Header> hs;
        for (const auto& [k, v] : headers) hs.push_back({k, v});
        ASSERT_EQ(producer.produce(topic, key, value, hs, &reports),
                  common::ProduceStatus::kEnqueued);
    }
    ASSERT_EQ(producer.flush(10s), 0);
    ASSERT_EQ(reports.ok.load(), static_cast<int>(records.size()));
}

struct Record {
    std::string key;
    std::string value;
    std::map<std::string, std::string> headers;
};

std::vector<Record> read_all(const std::string& brokers, const std::string& topic) {
    std::vector<Record> out;
    tools::TopicReader reader(brokers, topic, false);
    wait_until(
        [&] {
            for (auto m = reader.next(100ms); m; m = reader.next(0ms)) {
                Record r{std::string(m.key().value_or("")), std::string(m.value()), {}};
                for (const auto& h : m.headers())
                    r.headers[std::string(h.key)] = std::string(h.value);
                out.push_back(std::move(r));
            }
            return reader.caught_up();
        },
        20s);
    return out;
}

BrokerProcess::Options one_broker() {
    BrokerProcess::Options o;
    o.brokers = 1;
    o.partitions = 2;
    return o;
}

TEST(CliTail, PrintsKeyHeadersAndValueOfEveryRecordAndStopsAtTheEnd) {
    BrokerProcess broker(one_broker());
    produce(broker.bootstrap(), kDlq,
            {{"t-1", R"({"a":1})", {{"reason", "invalid_json"}, {"environment", "production"}}},
             {"t-2", R"({"b":2})", {}}});
    const auto r = run_meshhook({"tail", kDlq, "--brokers", broker.bootstrap()});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("key=t-1\n  reason: invalid_json\n  environment: production\n{\"a\":1}\n"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("key=t-2\n{\"b\":2}\n"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("2 record(s)"), std::string::npos) << r.err;
}

// The credit topic gets a transactional producer: ledger readers, tail
// included, read committed records only unless told otherwise. (Records of
// an aborted transaction cannot be made here: the mock does not honour
// transactions and the Kafka wrapper has no transactional producer yet, so
// this checks the setting reaches the reader and that both levels still
// stop at the end.)
TEST(CliTail, ReadsCommittedRecordsByDefaultAndEverythingWithReadUncommitted) {
    BrokerProcess broker(one_broker());
    produce(broker.bootstrap(), "ledger.credit-commands", {{"t-1", "one", {}}, {"t-2", "two", {}}});
    for (const bool uncommitted : {false, true}) {
        std::vector<std::string> args{"tail", "ledger.credit-commands", "--brokers",
                                      broker.bootstrap()};
        if (uncommitted) args.emplace_back("--read-uncommitted");
        const auto r = run_meshhook(args);
        EXPECT_EQ(r.code, 0) << r.err;
        EXPECT_NE(
            r.err.find(uncommitted ? ", uncommitted records too" : ", committed records only"),
            std::string::npos)
            << r.err;
        EXPECT_NE(r.out.find("key=t-1\none\n"), std::string::npos) << r.out;
        EXPECT_NE(r.out.find("key=t-2\ntwo\n"), std::string::npos) << r.out;
        EXPECT_NE(r.err.find("2 record(s)"), std::string::npos) << r.err;
    }
}

TEST(CliTail, PrettyPrintsJsonKeepingTheAmountTextExactly) {
    BrokerProcess broker(one_broker());
    produce(broker.bootstrap(), "ledger.credit-commands",
            {{"t",
              R"({"transferId":"t","amount":"250.000000000000000001","n":250.000000000000000001})",
              {}}});
    const auto r = run_meshhook(
        {"tail", "ledger.credit-commands", "--brokers", broker.bootstrap(), "--pretty"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("{\n  \"transferId\": \"t\",\n  \"amount\": \"250.000000000000000001\",\n"
                         "  \"n\": 250.000000000000000001\n}"),
              std::string::npos)
        << r.out;
}

TEST(CliTail, FromEndFollowShowsOnlyRecordsProducedAfterStart) {
    BrokerProcess broker(one_broker());
    produce(broker.bootstrap(), kEvents, {{"old", "before", {}}});
    Process tail({binary_path("meshhook").string(), "tail", kEvents, "--brokers",
                  broker.bootstrap(), "--from", "end", "--follow", "--max", "1"});
    ASSERT_TRUE(
        wait_until([&] { return tail.stderr_text().find("following") != std::string::npos; }, 20s))
        << tail.stderr_text();
    produce(broker.bootstrap(), kEvents, {{"new", "after", {}}});
    const auto out = tail.read_all(20s);
    EXPECT_EQ(tail.wait(10s), 0);
    EXPECT_NE(out.find("key=new\nafter\n"), std::string::npos) << out;
    EXPECT_EQ(out.find("before"), std::string::npos) << out;
}

TEST(CliTail, UnknownTopicIsOneLineAndExitOne) {
    BrokerProcess broker(one_broker());
    const auto r = run_meshhook({"tail", "no.such.topic", "--brokers", broker.bootstrap()});
    EXPECT_EQ(r.code, 1);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("unknown topic 'no.such.topic'"), std::string::npos) << r.err;
}

TEST(CliTail, UnreachableBrokersIsOneLineAndExitOne) {
    const auto brokers = "127.0.0.1:" + std::to_string(free_port());
    const auto r = run_meshhook({"tail", kEvents, "--brokers", brokers, "--timeout-ms", "1500"});
    EXPECT_EQ(r.code, 1);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("cannot reach Kafka at " + brokers), std::string::npos) << r.err;
}

TEST(CliTail, MissingBrokersNamesTheSetting) {
    const auto r = run_meshhook({"tail", kEvents}, {{"KAFKA_BROKERS", ""}});
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("--brokers (KAFKA_BROKERS)"), std::string::npos) << r.err;
}

// --kafka-config-file reaches the tools' clients: PLAINTEXT (what the test
// broker speaks) reads the topic; a property outside the connection set is a
// config error naming the setting.
TEST(CliTail, KafkaConfigFileIsAppliedAndCheckedLikeTheServices) {
    BrokerProcess broker(one_broker());
    produce(broker.bootstrap(), kDlq, {{"t-1", R"({"a":1})", {}}});
    const auto dir = std::filesystem::temp_directory_path() /
                     ("meshhook-cli-props-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "ok.properties") << "security.protocol=PLAINTEXT\n";
    std::ofstream(dir / "bad.properties") << "enable.auto.commit=true\n";

    auto r = run_meshhook({"tail", kDlq, "--brokers", broker.bootstrap(), "--kafka-config-file",
                           (dir / "ok.properties").string()});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("key=t-1"), std::string::npos) << r.out;

    r = run_meshhook({"replay", "--brokers", broker.bootstrap(), "--dry-run"},
                     {{"KAFKA_CONFIG_FILE", (dir / "bad.properties").string()}});
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find("--kafka-config-file (KAFKA_CONFIG_FILE)"), std::string::npos) << r.err;
    EXPECT_EQ(lines_of(r.err).size(), 1U) << r.err;
    std::filesystem::remove_all(dir);
}

class CliReplay : public ::testing::Test {
protected:
    void SetUp() override {
        produce(broker_.bootstrap(), kDlq,
                {{"t-1",
                  R"({"TransferId":"t-1","TransferStatus":"Succ)",
                  {{"reason", "invalid_json"}, {"event-id", "e-1"}, {"environment", "sandbox"}}},
                 {"", R"({"TransferStatus":"Succeeded"})", {{"reason", "missing_transfer_id"}}},
                 {"t-3",
                  R"({"TransferId":"t-3","TransferStatus":"Pend)",
                  {{"reason", "invalid_json"}}}});
    }
    BrokerProcess broker_{one_broker()};
};

TEST_F(CliReplay, DryRunListsWhatWouldGoAndProducesNothing) {
    const auto r = run_meshhook({"replay", "--brokers", broker_.bootstrap(), "--dry-run"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(lines_of(r.out).size(), 4U) << r.out;
    EXPECT_NE(r.out.find("dry run: 3 of 3 record(s)"), std::string::npos) << r.out;
    EXPECT_TRUE(read_all(broker_.bootstrap(), kEvents).empty());
}

TEST_F(CliReplay, ReplaysOneKeyWithItsBytesAndHeadersPlusReplayedAt) {
    const auto r = run_meshhook({"replay", "--brokers", broker_.bootstrap(), "--key", "t-1"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("replayed 1 of 3"), std::string::npos) << r.out;
    const auto events = read_all(broker_.bootstrap(), kEvents);
    ASSERT_EQ(events.size(), 1U);
    EXPECT_EQ(events[0].key, "t-1");
    EXPECT_EQ(events[0].value, R"({"TransferId":"t-1","TransferStatus":"Succ)");
    EXPECT_EQ(events[0].headers.at("reason"), "invalid_json");
    EXPECT_EQ(events[0].headers.at("event-id"), "e-1");
    EXPECT_EQ(events[0].headers.at("environment"), "sandbox");
    ASSERT_TRUE(events[0].headers.contains("replayed-at"));
    EXPECT_EQ(events[0].headers.at("replayed-at").size(),
              std::string("2026-11-28T10:00:00.000Z").size());
    EXPECT_NE(events[0].headers.at("replayed-from").find(kDlq + "["), std::string::npos);
}

TEST_F(CliReplay, RekeysByTheBodysTransferIdAndKeepsTheKeyOfABodyWithoutOne) {
    // Ingest keys a dead letter by the delivery's Id; the main topic is keyed
    // by TransferId (one partition per transfer, in order).
    const std::string late =
        R"({"id":"delivery-7","eventId":"e-7","transferId":"t-7","transferStatus":"Succeeded"})";
    const std::string truncated = R"({"Id":"delivery-8","TransferId":"t-8","TransferStatus":"Pe)";
    produce(broker_.bootstrap(), kDlq,
            {{"delivery-7", late, {{"reason", "sent_timestamp_outside_window"}}},
             {"delivery-8", truncated, {{"reason", "invalid_json"}}}});
    auto r = run_meshhook({"replay", "--brokers", broker_.bootstrap(), "--key", "t-7"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("replayed 1 of 5"), std::string::npos) << r.out;
    for (const char* reason : {"invalid_json", "missing_transfer_id"}) {
        r = run_meshhook({"replay", "--brokers", broker_.bootstrap(), "--reason", reason});
        EXPECT_EQ(r.code, 0) << r.err;
    }
    std::map<std::string, std::vector<std::string>> by_key;
    for (const auto& e : read_all(broker_.bootstrap(), kEvents)) by_key[e.key].push_back(e.value);
    EXPECT_EQ(by_key["t-7"], std::vector<std::string>{late});
    // Truncated JSON names no TransferId the parser stands by: its key is kept.
    EXPECT_EQ(by_key["delivery-8"], std::vector<std::string>{truncated});
    EXPECT_EQ(by_key["t-1"].size(), 1U);  // SetUp's, keyed t-1 already
    EXPECT_EQ(by_key["t-3"].size(), 1U);
    // No TransferId in the body: the source key is kept.
    EXPECT_EQ(by_key[""], std::vector<std::string>{R"({"TransferStatus":"Succeeded"})"});
    EXPECT_FALSE(by_key.contains("delivery-7"));
}

TEST_F(CliReplay, FiltersByReasonAndTime) {
    auto r = run_meshhook({"replay", "--brokers", broker_.bootstrap(), "--reason", "invalid_json",
                           "--until", "2000-01-01T00:00:00Z"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("replayed 0 of 3"), std::string::npos) << r.out;
    r = run_meshhook({"replay", "--brokers", broker_.bootstrap(), "--reason", "invalid_json",
                      "--since", "2000-01-01T00:00:00Z"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("replayed 2 of 3"), std::string::npos) << r.out;
    const auto events = read_all(broker_.bootstrap(), kEvents);
    ASSERT_EQ(events.size(), 2U);
    for (const auto& e : events) EXPECT_EQ(e.headers.at("reason"), "invalid_json");
}

TEST_F(CliReplay, FromAnomaliesReplaysUnparseableBodiesAndSkipsConflicts) {
    // "eyJUcmFuc2ZlcklkIjoidC05In0=" is base64 of {"TransferId":"t-9"}.
    produce(
        broker_.bootstrap(), kAnomalies,
        {{"",
          R"({"kind":"unparseable","environment":"production","reason":"invalid_json","rawBase64":"eyJUcmFuc2ZlcklkIjoidC05In0="})",
          {}},
         {"t-4", R"({"kind":"conflict","environment":"production","transferId":"t-4"})", {}}});
    const auto r =
        run_meshhook({"replay", "--brokers", broker_.bootstrap(), "--from", "anomalies"});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("skip"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("conflict anomaly carries no event body"), std::string::npos) << r.out;
    const auto events = read_all(broker_.bootstrap(), kEvents);
    ASSERT_EQ(events.size(), 1U);
    EXPECT_EQ(events[0].value, R"({"TransferId":"t-9"})");
    EXPECT_EQ(events[0].headers.at("environment"), "production");
}

TEST_F(CliReplay, UnknownSourceTopicIsOneLineAndExitOne) {
    const auto r =
        run_meshhook({"replay", "--brokers", broker_.bootstrap(), "--source", "no.such.dlq"});
    EXPECT_EQ(r.code, 1);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("unknown topic 'no.such.dlq'"), std::string::npos) << r.err;
}

TEST_F(CliReplay, BadTimeIsAConfigErrorNamingTheFlag) {
    const auto r =
        run_meshhook({"replay", "--brokers", broker_.bootstrap(), "--since", "yesterday"});
    EXPECT_EQ(r.code, 2);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("--since"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace meshhook::testing
