// --kafka-config-file against a real SASL_SSL listener: the Apache Kafka test
// cluster's (PLAIN over TLS, a throwaway CA made with openssl at start). The
// ingest, the consumer, `meshhook tail` and `meshhook replay` each do their
// work through it, and a wrong password ends each of them at start with one
// line and exit 2 instead of retrying forever. Apache engine only: the mock
// has neither SASL nor TLS.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/integration/consumer/harness.hpp"
#include "tests/integration/ingest/ingest_harness.hpp"
#include "tests/integration/tools/cli_harness.hpp"
#include "tests/support/process.hpp"

namespace meshhook::testing {
namespace {

class SaslSsl : public ::testing::Test {
protected:
    void SetUp() override {
        if (!apache_engine()) GTEST_SKIP() << "the mock has no SASL_SSL listener";
        broker_ = std::make_unique<BrokerProcess>();
        ASSERT_TRUE(broker_->sasl_ssl().has_value());
        sasl_ = *broker_->sasl_ssl();
        dir_ = std::filesystem::temp_directory_path() / unique_name("meshhook-sasl");
        std::filesystem::create_directories(dir_);
    }
    void TearDown() override {
        if (!dir_.empty()) std::filesystem::remove_all(dir_);
    }

    // A Kafka config file as an operator writes one for a managed cluster.
    std::string config_file(const std::string& password) {
        const auto path = dir_ / unique_name("client.properties");
        std::ofstream(path) << "security.protocol=SASL_SSL\n"
                            << "sasl.mechanisms=PLAIN\n"
                            << "sasl.username=" << sasl_.username << "\n"
                            << "sasl.password=" << password << "\n"
                            << "ssl.ca.location=" << sasl_.ca_file << "\n";
        return path.string();
    }

    std::unique_ptr<BrokerProcess> broker_;
    BrokerProcess::SaslSsl sasl_;
    std::filesystem::path dir_;
};

TEST_F(SaslSsl, IngestPublishesThroughIt) {
    ingest::IngestProcess ingest(
        sasl_.bootstrap, ingest::with_args({"--kafka-config-file", config_file(sasl_.password)}));
    const auto event = ingest::unique_event();
    const auto request = ingest::signed_post("/webhooks/mesh", event.body, ingest::kFixtureSecret);
    std::optional<ingest::HttpResponse> res;
    ASSERT_TRUE(wait_until(
        [&] {
            res = ingest::request_once(ingest.port(), request);
            return res && res->status == 200;
        },
        30s))
        << (res ? res->body : "no answer") << ingest.process().stderr_text();
    // Read back over the plaintext listener: it is the same cluster.
    bool found = false;
    for (const auto& r : ingest::read_topic(broker_->bootstrap(), kInputTopic)) {
        found = found || r.value == event.body;
    }
    EXPECT_TRUE(found);
}

TEST_F(SaslSsl, ConsumerCreditsThroughIt) {
    Feeder feeder(broker_->bootstrap());
    feeder.send("4f8c2d1e-sasl", R"({"Id":"d1","EventId":"e1","TransferId":"4f8c2d1e-sasl",)"
                                 R"("TransferStatus":"Succeeded","UserId":"u1","Token":"USDC",)"
                                 R"("Chain":"Ethereum","DestinationAddress":"0xabc",)"
                                 R"("DestinationAmount":250.000000000000000001,)"
                                 R"("Timestamp":1764316799000})");
    feeder.flush();
    ConsumerRun run;
    run.bootstrap = sasl_.bootstrap;
    run.store_url = "sqlite://" + (dir_ / "meshhook.db").string();
    run.group_id = unique_name("sasl-group");
    run.extra_args = {"--kafka-config-file", config_file(sasl_.password)};
    auto consumer = start_consumer(run);
    TopicReader reader(broker_->bootstrap());
    std::vector<TopicRecord> credits;
    ASSERT_TRUE(wait_until(
        [&] {
            credits = reader.read_all(kCreditTopic);
            return !credits.empty();
        },
        60s))
        << consumer->stderr_text();
    ASSERT_EQ(credits.size(), 1U);
    EXPECT_EQ(credits[0].key, "4f8c2d1e-sasl");
    EXPECT_NE(credits[0].value.find("250.000000000000000001"), std::string::npos);
}

TEST_F(SaslSsl, TailAndReplayWorkThroughIt) {
    const auto config = config_file(sasl_.password);
    Feeder feeder(broker_->bootstrap());
    feeder.send("dead-lettered-key", R"({"TransferId":"dead-lettered-key")");
    feeder.flush();
    // A record in the DLQ, as ingest writes one.
    {
        common::KafkaConfig kc = {{"bootstrap.servers", broker_->bootstrap()}};
        common::Producer producer(kc);
        producer.produce("mesh.transfer-events.dlq", "dlq-key", "{\"truncated\":", {}, nullptr);
        ASSERT_EQ(producer.flush(30s), 0);
    }
    const auto tail = run_meshhook({"tail", "mesh.transfer-events", "--brokers", sasl_.bootstrap,
                                    "--kafka-config-file", config, "--from", "beginning"});
    EXPECT_EQ(tail.code, 0) << tail.err;
    EXPECT_NE(tail.out.find("dead-lettered-key"), std::string::npos) << tail.out;
    const auto replay = run_meshhook(
        {"replay", "--brokers", sasl_.bootstrap, "--from", "dlq", "--kafka-config-file", config});
    EXPECT_EQ(replay.code, 0) << replay.err;
    bool replayed = false;
    for (const auto& r : ingest::read_topic(broker_->bootstrap(), kInputTopic)) {
        replayed = replayed || (r.key == std::optional<std::string>("dlq-key"));
    }
    EXPECT_TRUE(replayed) << replay.out << replay.err;
}

// One line on stderr naming what to check, exit 2, within seconds.
void expect_login_refused(int code, const std::string& err) {
    EXPECT_EQ(code, 2) << err;
    EXPECT_NE(err.find("Kafka refused the login"), std::string::npos) << err;
    EXPECT_NE(err.find("sasl.password"), std::string::npos) << err;
}

TEST_F(SaslSsl, WrongPasswordEndsEachProcessAtStartWithOneLine) {
    const auto wrong = config_file("not-the-password");
    {
        auto options = ingest::with_args({"--kafka-config-file", wrong});
        options.wait_ready = false;
        ingest::IngestProcess ingest(sasl_.bootstrap, options);
        const auto code = ingest.process().wait(30s);
        ASSERT_TRUE(code.has_value()) << "ingest still running with a wrong password";
        expect_login_refused(*code, ingest.process().stderr_text());
    }
    {
        Process consumer({binary_path("meshhook-consumer").string(), "--brokers", sasl_.bootstrap,
                          "--store", "sqlite://" + (dir_ / "wrong.db").string(), "--group-id",
                          unique_name("wrong"), "--metrics-listen", "127.0.0.1:0",
                          "--kafka-config-file", wrong});
        const auto code = consumer.wait(30s);
        ASSERT_TRUE(code.has_value()) << "consumer still running with a wrong password";
        expect_login_refused(*code, consumer.stderr_text());
    }
    const auto tail = run_meshhook({"tail", "mesh.transfer-events", "--brokers", sasl_.bootstrap,
                                    "--kafka-config-file", wrong},
                                   {}, "", 30s);
    expect_login_refused(tail.code, tail.err);
    const auto replay = run_meshhook(
        {"replay", "--brokers", sasl_.bootstrap, "--kafka-config-file", wrong}, {}, "", 30s);
    expect_login_refused(replay.code, replay.err);
}

}  // namespace
}  // namespace meshhook::testing
