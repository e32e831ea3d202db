// The Kafka wrapper's typed errors, against a cluster that is not there (a
// closed loopback port): what a caller sees without librdkafka's numbers.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <string>

#include "common/kafka.hpp"
#include "tests/support/process.hpp"

namespace meshhook::common {
namespace {

using namespace std::chrono_literals;

std::string nowhere() {
    return "127.0.0.1:" + std::to_string(testing::free_port());
}

// The one report a produce gets (its message is librdkafka's static text).
class OneReport final : public DeliveryHandler {
public:
    void on_delivery(const DeliveryReport& report) noexcept override { promise_.set_value(report); }
    std::future<DeliveryReport> future() { return promise_.get_future(); }

private:
    std::promise<DeliveryReport> promise_;
};

TEST(KafkaErrors, ARecordNoBrokerAcknowledgedIsARetryableDeliveryError) {
    OneReport handler;
    auto reported = handler.future();
    {
        Producer producer({{"bootstrap.servers", nowhere()}, {"message.timeout.ms", "300"}});
        ASSERT_EQ(producer.produce("t", "k", "v", {}, &handler), ProduceStatus::kEnqueued);
        ASSERT_EQ(reported.wait_for(30s), std::future_status::ready);
    }
    const DeliveryReport report = reported.get();
    EXPECT_FALSE(report.ok());
    ASSERT_TRUE(report.error);
    EXPECT_EQ(report.error.kind(), RecordError::Kind::kRetryable);
    EXPECT_TRUE(report.error.retryable());
    EXPECT_NE(report.error.message().find("timed out"), std::string_view::npos)
        << report.error.message();
}

TEST(KafkaErrors, RejectedAndEndOfPartitionAreNotRetryable) {
    EXPECT_FALSE(RecordError());
    EXPECT_FALSE(RecordError().retryable());
    const RecordError rejected(RecordError::Kind::kRejected, "Broker: Message size too large");
    EXPECT_TRUE(rejected);
    EXPECT_FALSE(rejected.retryable());
    EXPECT_FALSE(RecordError(RecordError::Kind::kEndOfPartition, "").retryable());
    EXPECT_TRUE(DeliveryReport{}.ok());
}

TEST(KafkaErrors, CreateTopicsOnAClusterThatIsNotThereThrowsWithinItsTimeout) {
    const auto start = std::chrono::steady_clock::now();
    try {
        create_topics({{"bootstrap.servers", nowhere()}}, {{"a", 1, 1}, {"b", 2, 1}}, 500ms);
        FAIL() << "created topics on no cluster";
    } catch (const KafkaError& e) {
        EXPECT_NE(std::string(e.what()).find("create topics: "), std::string::npos) << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST(KafkaErrors, CreateTopicsRefusesAnInvalidTopicBeforeAskingTheCluster) {
    try {
        create_topics({{"bootstrap.servers", nowhere()}}, {{"good", 1, 1}, {"bad", -5, 1}}, 500ms);
        FAIL() << "accepted a topic of -5 partitions";
    } catch (const KafkaError& e) {
        EXPECT_NE(std::string(e.what()).find("topic bad: "), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace meshhook::common
