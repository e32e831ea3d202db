// Settings -> IngestConfig: defaults, per-environment secrets, and one line
// naming the setting for every bad value.
#include "ingest/config.hpp"

#include <gtest/gtest.h>

#include <cstdlib>

namespace meshhook::ingest {
namespace {

using namespace std::chrono_literals;
using EnvSecrets = std::vector<std::pair<std::string, std::string>>;

class Config : public ::testing::Test {
protected:
    void SetUp() override {
        // Settings::parse reads the environment: keep the test's own out of it.
        for (const char* v :
             {"MESH_WEBHOOK_SECRET", "KAFKA_BROKERS", "INGEST_LISTEN", "KAFKA_TOPIC",
              "KAFKA_DLQ_TOPIC", "INGEST_MAX_BODY_BYTES", "INGEST_ACK_TIMEOUT_MS",
              "INGEST_ALLOW_IPS", "INGEST_TRUSTED_PROXIES", "INGEST_TLS_CERT", "INGEST_TLS_KEY",
              "LOG_FORMAT", "LOG_LEVEL", "INGEST_THREADS", "INGEST_ADMIN_LISTEN",
              "INGEST_FIRST_BYTE_TIMEOUT_MS", "INGEST_MAX_CONNECTIONS_PER_SOURCE"}) {
            ::unsetenv(v);
        }
    }

    IngestConfig load(std::vector<std::string> args, const EnvSecrets& env = {}) {
        common::Settings settings(std::string(kProgram), "test");
        declare_settings(settings);
        std::vector<const char*> argv = {"meshhook-ingest"};
        for (const auto& a : args) argv.push_back(a.c_str());
        settings.parse(static_cast<int>(argv.size()), argv.data());
        return load_config(settings, env);
    }

    // The single line a bad setting produces.
    std::string error_of(std::vector<std::string> args, const EnvSecrets& env = {}) {
        try {
            load(std::move(args), env);
        } catch (const common::ConfigError& e) {
            return e.what();
        }
        return "<no error>";
    }
};

TEST_F(Config, DefaultsMatchTheIssue) {
    const auto c = load({"--brokers", "k:9092", "--webhook-secret", "s1"});
    EXPECT_EQ(c.listen.host, "0.0.0.0");
    EXPECT_EQ(c.listen.port, 8080);
    EXPECT_EQ(c.topic, "mesh.transfer-events");
    EXPECT_EQ(c.dlq_topic, "mesh.transfer-events.dlq");
    EXPECT_EQ(c.max_body_bytes, 65536u);
    EXPECT_EQ(c.ack_timeout, 150ms);
    EXPECT_TRUE(c.allow_ips.empty());
    ASSERT_TRUE(c.max_sent_age);
    EXPECT_EQ(*c.max_sent_age, std::chrono::seconds(86400));  // the replay window is on
    EXPECT_EQ(c.remembered_deliveries, 100000u);
    EXPECT_EQ(c.max_queued_kbytes, 65536u);  // librdkafka's own default is 1 GiB
    EXPECT_FALSE(c.tls());
    EXPECT_GE(c.threads, 1u);
    EXPECT_EQ(c.admin_listen.port, 9090);
    EXPECT_EQ(c.first_byte_timeout, 3000ms);
    EXPECT_EQ(c.max_connections_per_source, 256u);
}

TEST_F(Config, AdminListenerAndConnectionBoundsAreCheckedAtStart) {
    const std::vector<std::string> base = {"--brokers", "k:9092", "--webhook-secret", "s1"};
    auto with = [&](std::vector<std::string> extra) {
        auto args = base;
        args.insert(args.end(), extra.begin(), extra.end());
        return args;
    };
    EXPECT_EQ(error_of(with({"--listen", "0.0.0.0:9090"})),
              "--admin-listen (INGEST_ADMIN_LISTEN): must differ from --listen");
    EXPECT_NE(error_of(with({"--max-connections-per-source", "0"}))
                  .find("--max-connections-per-source (INGEST_MAX_CONNECTIONS_PER_SOURCE)"),
              std::string::npos);
    EXPECT_NE(error_of(with({"--first-byte-timeout-ms", "x"}))
                  .find("--first-byte-timeout-ms (INGEST_FIRST_BYTE_TIMEOUT_MS)"),
              std::string::npos);
    const auto c = load(with({"--admin-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"}));
    EXPECT_EQ(c.admin_listen.host, "127.0.0.1");
}

// Tests and the fuzzer build their IngestConfig in code: it must be the
// configuration the binary runs with by default, not a second set of
// defaults (the struct used to say 1 thread where the table says one per core).
TEST_F(Config, DefaultConfigInCodeIsTheDeclaredDefaults) {
    const IngestConfig in_code = default_config("k:9092", "s1");
    const IngestConfig binary = load({"--brokers", "k:9092", "--webhook-secret", "s1"});
    common::Settings declared(std::string(kProgram), "test");
    declare_settings(declared);
    EXPECT_EQ(std::to_string(in_code.threads), declared.get("threads"));
    EXPECT_EQ(in_code.threads, binary.threads);
    EXPECT_EQ(std::to_string(in_code.max_body_bytes), declared.get("max-body-bytes"));
    EXPECT_EQ(std::to_string(in_code.ack_timeout.count()), declared.get("ack-timeout-ms"));
    EXPECT_EQ(in_code.listen.host + ":" + std::to_string(in_code.listen.port),
              declared.get("listen"));
    EXPECT_EQ(in_code.topic, declared.get("topic"));
    EXPECT_EQ(in_code.dlq_topic, declared.get("dlq-topic"));
    EXPECT_EQ(std::to_string(in_code.max_connections), declared.get("max-connections"));
    EXPECT_EQ(std::to_string(in_code.read_timeout.count()), declared.get("read-timeout-ms"));
    EXPECT_EQ(std::to_string(in_code.idle_timeout.count()), declared.get("idle-timeout-ms"));
    EXPECT_EQ(std::to_string(in_code.drain_timeout.count()), declared.get("drain-timeout-ms"));
    EXPECT_EQ(std::to_string(in_code.kafka_message_timeout.count()),
              declared.get("kafka-message-timeout-ms"));
    EXPECT_EQ(std::to_string(in_code.kafka_linger.count()), declared.get("kafka-linger-ms"));
    EXPECT_EQ(std::to_string(in_code.max_queued_messages), declared.get("max-queued-messages"));
    EXPECT_EQ(std::to_string(in_code.max_queued_kbytes), declared.get("max-queued-kbytes"));
    EXPECT_EQ(in_code.log_level, declared.get("log-level"));
    ASSERT_EQ(in_code.environments.size(), 1U);
    EXPECT_EQ(in_code.environments[0].name, "production");
    EXPECT_EQ(in_code.brokers, "k:9092");
}

TEST_F(Config, SecretListIsProductionAndSuffixedVariablesAddEnvironments) {
    const auto c = load({"--brokers", "k:9092", "--webhook-secret", " new , old ,"},
                        {{"SANDBOX", "sbx"}, {"EU_WEST", "a,b"}});
    ASSERT_EQ(c.environments.size(), 3u);
    EXPECT_EQ(c.environments[0].name, "production");
    EXPECT_EQ(c.environments[0].secrets, (std::vector<std::string>{"new", "old"}));
    EXPECT_EQ(c.environment_index("sandbox"), 1u);
    EXPECT_EQ(c.environments[1].secrets, (std::vector<std::string>{"sbx"}));
    EXPECT_EQ(c.environment_index("eu_west"), 2u);
}

TEST_F(Config, EnvironmentVariableSecretIsRead) {
    ::setenv("MESH_WEBHOOK_SECRET", "from-env", 1);
    const auto c = load({"--brokers", "k:9092"});
    ::unsetenv("MESH_WEBHOOK_SECRET");
    ASSERT_EQ(c.environments.size(), 1u);
    EXPECT_EQ(c.environments[0].secrets, (std::vector<std::string>{"from-env"}));
}

TEST_F(Config, OnlyASandboxSecretIsEnoughToStart) {
    const auto c = load({"--brokers", "k:9092"}, {{"SANDBOX", "sbx"}});
    EXPECT_FALSE(c.environment_index("production"));
    EXPECT_TRUE(c.environment_index("sandbox"));
}

TEST_F(Config, NoSecretAtAllFailsNamingTheVariable) {
    const auto e = error_of({"--brokers", "k:9092"});
    EXPECT_NE(e.find("MESH_WEBHOOK_SECRET"), std::string::npos) << e;
}

TEST_F(Config, ListOfOnlySeparatorsIsNoSecret) {
    const auto e = error_of({"--brokers", "k:9092", "--webhook-secret", " , "});
    EXPECT_NE(e.find("MESH_WEBHOOK_SECRET"), std::string::npos) << e;
    const auto e2 = error_of({"--brokers", "k:9092"}, {{"SANDBOX", ","}});
    EXPECT_NE(e2.find("MESH_WEBHOOK_SECRET_SANDBOX"), std::string::npos) << e2;
}

TEST_F(Config, EmptySuffixedVariableCountsAsUnset) {
    const auto c = load({"--brokers", "k:9092", "--webhook-secret", "a"}, {{"SANDBOX", ""}});
    EXPECT_EQ(c.environments.size(), 1u);
    EXPECT_FALSE(c.environment_index("sandbox"));
}

TEST_F(Config, ProductionConfiguredTwiceIsRefused) {
    const auto e =
        error_of({"--brokers", "k:9092", "--webhook-secret", "a"}, {{"PRODUCTION", "b"}});
    EXPECT_NE(e.find("MESH_WEBHOOK_SECRET_PRODUCTION"), std::string::npos) << e;
}

TEST_F(Config, MissingBrokersFailsNamingThem) {
    const auto e = error_of({"--webhook-secret", "a"});
    EXPECT_NE(e.find("--brokers (KAFKA_BROKERS)"), std::string::npos) << e;
}

TEST_F(Config, EveryBadValueNamesItsSetting) {
    const std::vector<std::string> base = {"--brokers", "k:9092", "--webhook-secret", "sekrit"};
    const std::pair<std::vector<std::string>, std::string> cases[] = {
        {{"--listen", "nohost"}, "--listen (INGEST_LISTEN)"},
        {{"--max-body-bytes", "big"}, "--max-body-bytes (INGEST_MAX_BODY_BYTES)"},
        {{"--ack-timeout-ms", "0"}, "--ack-timeout-ms (INGEST_ACK_TIMEOUT_MS)"},
        {{"--threads", "0"}, "--threads (INGEST_THREADS)"},
        {{"--max-connections", "-1"}, "--max-connections (INGEST_MAX_CONNECTIONS)"},
        {{"--allow-ips", "20.22.113.37/33"}, "--allow-ips (INGEST_ALLOW_IPS)"},
        {{"--allow-ips", "10.0.0.0/8", "--trusted-proxies", "proxy"}, "--trusted-proxies"},
        {{"--trusted-proxies", "10.0.0.0/8"}, "--trusted-proxies"},
        {{"--max-sent-age-s", "soon"}, "--max-sent-age-s"},
        {{"--max-sent-age-s", "OFF"}, "--max-sent-age-s"},
        {{"--remember-deliveries", "-1"}, "--remember-deliveries (INGEST_REMEMBER_DELIVERIES)"},
        {{"--max-sent-age-s", "604801"}, "--max-sent-age-s"},
        {{"--tls-cert", "/nonexistent/cert.pem"}, "TLS needs both"},
        {{"--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}, "--tls-cert"},
        {{"--topic", "bad topic"}, "--topic (KAFKA_TOPIC)"},
        {{"--dlq-topic", "mesh.transfer-events"}, "--dlq-topic"},
        {{"--read-timeout-ms", "1"}, "--read-timeout-ms"},
        {{"--kafka-message-timeout-ms", "100", "--ack-timeout-ms", "200"},
         "--kafka-message-timeout-ms"},
        {{"--log-format", "xml"}, "--log-format (LOG_FORMAT)"},
        {{"--log-level", "loud"}, "--log-level (LOG_LEVEL)"},
    };
    for (const auto& [extra, expected] : cases) {
        auto args = base;
        args.insert(args.end(), extra.begin(), extra.end());
        const auto e = error_of(args);
        EXPECT_NE(e.find(expected), std::string::npos) << expected << " -> " << e;
        EXPECT_EQ(e.find('\n'), std::string::npos) << e;
        EXPECT_EQ(e.find("sekrit"), std::string::npos) << "a secret in an error line: " << e;
    }
}

TEST_F(Config, BadEnvironmentSuffixIsRefused) {
    const auto e = error_of({"--brokers", "k:9092"}, {{"SAND-BOX", "x"}});
    EXPECT_NE(e.find("MESH_WEBHOOK_SECRET_SAND-BOX"), std::string::npos) << e;
}

TEST_F(Config, SummaryLineNeverShowsTheSecret) {
    common::Settings settings(std::string(kProgram), "test");
    declare_settings(settings);
    const char* argv[] = {"meshhook-ingest", "--webhook-secret", "whsec_do_not_print"};
    settings.parse(3, argv);
    EXPECT_EQ(settings.summary_line().find("whsec_do_not_print"), std::string::npos);
    EXPECT_EQ(settings.help_text().find("whsec_do_not_print"), std::string::npos);
}

}  // namespace
TEST_F(Config, ReplayWindowTurnsOffWithZeroOrOff) {
    for (const char* off : {"0", "off"}) {
        EXPECT_FALSE(load({"--brokers", "k:9092", "--webhook-secret", "s", "--max-sent-age-s", off})
                         .max_sent_age)
            << off;
    }
    EXPECT_EQ(load({"--brokers", "k:9092", "--webhook-secret", "s", "--max-sent-age-s", "300"})
                  .max_sent_age,
              std::chrono::seconds(300));
}

}  // namespace meshhook::ingest
