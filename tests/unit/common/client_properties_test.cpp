// --kafka-config-file: the TLS/SASL settings of a real cluster, from a file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/kafka.hpp"

namespace meshhook::common {
namespace {

constexpr const char* kSetting = "--kafka-config-file (KAFKA_CONFIG_FILE)";

class PropertiesFile {
public:
    explicit PropertiesFile(const std::string& text)
        : path_(::testing::TempDir() + "kafka-" + std::to_string(::getpid()) + "-" +
                std::to_string(counter_++) + ".properties") {
        std::ofstream(path_) << text;
    }
    ~PropertiesFile() { std::remove(path_.c_str()); }
    const std::string& path() const { return path_; }

private:
    static inline int counter_ = 0;
    std::string path_;
};

std::string error_of(const std::string& text) {
    PropertiesFile file(text);
    try {
        (void)load_client_properties(kSetting, file.path());
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "no error";
}

TEST(ClientProperties, ReadsSecurityPropertiesSkippingCommentsAndBlankLines) {
    PropertiesFile file(
        "# production cluster\n"
        "security.protocol = SASL_SSL\n"
        "\n"
        "sasl.mechanisms=SCRAM-SHA-512\n"
        "sasl.username=meshhook\n"
        "sasl.password=p=a#ss word\n"
        "  ssl.ca.location=/etc/kafka/ca.pem  \n"
        "client.rack=eu-west-1a\r\n");
    const auto props = load_client_properties(kSetting, file.path());
    const KafkaConfig expected{{"security.protocol", "SASL_SSL"},
                               {"sasl.mechanisms", "SCRAM-SHA-512"},
                               {"sasl.username", "meshhook"},
                               {"sasl.password", "p=a#ss word"},
                               {"ssl.ca.location", "/etc/kafka/ca.pem"},
                               {"client.rack", "eu-west-1a"}};
    EXPECT_EQ(props, expected);
}

TEST(ClientProperties, RefusesPropertiesTheGuaranteesRestOn) {
    for (const char* line :
         {"acks=1", "enable.idempotence=false", "enable.auto.commit=true", "group.id=other",
          "bootstrap.servers=evil:9092", "linger.ms=50", "isolation.level=read_uncommitted"}) {
        const auto error = error_of(std::string(line) + "\n");
        EXPECT_NE(error.find("is not a connection property"), std::string::npos) << line;
        EXPECT_EQ(error.rfind(kSetting, 0), 0U) << error;
        EXPECT_NE(error.find("line 1"), std::string::npos) << error;
    }
}

TEST(ClientProperties, NamesTheLineOfAnInvalidValueOrMalformedLine) {
    auto error = error_of("# comment\nsecurity.protocol=SSL\nsecurity.protocol=PLAINTEXT\n");
    EXPECT_NE(error.find("line 3"), std::string::npos) << error;
    EXPECT_NE(error.find("set twice"), std::string::npos) << error;

    error = error_of("security.protocol=CARRIER_PIGEON\n");
    EXPECT_NE(error.find("line 1"), std::string::npos) << error;
    EXPECT_NE(error.find("security.protocol"), std::string::npos) << error;

    error = error_of("\n\nsasl.username\n");
    EXPECT_NE(error.find("line 3: expected key=value"), std::string::npos) << error;

    error = error_of("ssl.no.such.thing=1\n");
    EXPECT_NE(error.find("line 1"), std::string::npos) << error;
}

TEST(ClientProperties, AnUnreadableFileIsOneLineNamingTheSetting) {
    try {
        (void)load_client_properties(kSetting, "/nonexistent/kafka.properties");
        FAIL() << "expected ConfigError";
    } catch (const ConfigError& e) {
        const std::string message = e.what();
        EXPECT_EQ(message.rfind(kSetting, 0), 0U) << message;
        EXPECT_NE(message.find("/nonexistent/kafka.properties"), std::string::npos);
        EXPECT_EQ(message.find('\n'), std::string::npos);
    }
}

}  // namespace
}  // namespace meshhook::common

namespace meshhook::common {
namespace {

// --brokers is declared once for every binary that talks to Kafka, and a list
// with no server in it is refused at start naming the setting, in each alike.
TEST(Brokers, AListWithoutAServerIsRefusedNamingTheSetting) {
    for (const std::string value : {"", " , ,", ","}) {
        Settings settings("meshhook-test", "");
        declare_brokers(settings).set("brokers", value);
        try {
            bootstrap_servers(settings);
            ADD_FAILURE() << "accepted \"" << value << "\"";
        } catch (const ConfigError& e) {
            EXPECT_STREQ(e.what(), "--brokers (KAFKA_BROKERS): required (host:port,...)");
        }
    }
    Settings settings("meshhook-test", "");
    declare_brokers(settings).set("brokers", "a:9092,b:9092");
    EXPECT_EQ(bootstrap_servers(settings), "a:9092,b:9092");
}

// Every topic setting (ingest's, the consumer's) is checked by one function.
TEST(TopicName, KafkasNamingRulesAreCheckedNamingTheSetting) {
    Settings settings("meshhook-test", "");
    settings.add({"credit-topic", "CONSUMER_CREDIT_TOPIC", "ledger.credit-commands", ""});
    EXPECT_EQ(topic_name(settings, "credit-topic"), "ledger.credit-commands");
    for (const std::string& bad :
         std::vector<std::string>{"", ".", "..", "has space", "ümlaut", std::string(250, 'a')}) {
        settings.set("credit-topic", bad);
        try {
            topic_name(settings, "credit-topic");
            ADD_FAILURE() << "accepted \"" << bad << "\"";
        } catch (const ConfigError& e) {
            EXPECT_EQ(
                std::string(e.what()).rfind(
                    "--credit-topic (CONSUMER_CREDIT_TOPIC): not a valid Kafka topic name", 0),
                0U)
                << e.what();
        }
    }
    settings.set("credit-topic", std::string(249, 'a'));
    EXPECT_EQ(topic_name(settings, "credit-topic").size(), 249U);
}

}  // namespace
}  // namespace meshhook::common
