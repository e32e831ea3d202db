#include "tools/topic_reader.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <stdexcept>

namespace meshhook::tools {

std::optional<int> topic_partitions(common::Consumer& consumer, const std::string& brokers,
                                    const std::string& topic, std::chrono::milliseconds timeout,
                                    std::string& error) {
    auto count = consumer.existing_topic_partitions(topic, timeout, error);
    if (!count) {
        const std::string unreachable = "cannot reach Kafka: ";
        error = error.rfind(unreachable, 0) == 0
                    ? "cannot reach Kafka at " + brokers + ": " + error.substr(unreachable.size())
                    : error + " on " + brokers;
    }
    return count;
}

common::KafkaConfig reader_config(const std::string& brokers, const common::KafkaConfig& extra) {
    static std::atomic<int> counter{0};
    common::KafkaConfig config{
        {"bootstrap.servers", brokers},
        {"group.id",
         "meshhook-cli-" + std::to_string(::getpid()) + "-" + std::to_string(counter++)},
        {"enable.auto.commit", "false"},
        // The end of a partition is known from its EOF event, not from the
        // last record's offset: transaction markers take offsets that no
        // record is delivered at, so with transactional producers the last
        // record's offset + 1 never reaches the high watermark.
        {"enable.partition.eof", "true"},
        // A dead broker list should fail in seconds, not librdkafka's minutes.
        {"socket.connection.setup.timeout.ms", "5000"},
        // The CLI reports what went wrong in one line of its own;
        // librdkafka's retry chatter would bury it.
        {"log_level", "0"}};
    config.insert(config.end(), extra.begin(), extra.end());
    return config;
}

TopicReader::TopicReader(const std::string& brokers, const std::string& topic, bool from_end,
                         std::chrono::milliseconds timeout, const common::KafkaConfig& extra)
    : consumer_(std::make_unique<common::Consumer>(reader_config(brokers, extra))), topic_(topic) {
    std::string error;
    const auto count = topic_partitions(*consumer_, brokers, topic, timeout, error);
    if (!count) throw std::runtime_error(error);
    partitions_ = *count;
    std::vector<common::TopicPartition> assignment;
    for (std::int32_t p = 0; p < partitions_; ++p) {
        const auto marks = consumer_->watermarks(topic, p, timeout);
        if (!marks) {
            throw std::runtime_error("cannot read offsets of " + topic + "[" + std::to_string(p) +
                                     "] from " + brokers);
        }
        end_[p] = marks->second;
        position_[p] = from_end ? marks->second : marks->first;
        assignment.push_back({topic, p, position_[p]});
    }
    consumer_->assign(assignment);
}

common::Message TopicReader::next(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        auto msg = consumer_->poll(std::max(left, std::chrono::milliseconds(0)));
        if (!msg) return msg;
        if (!msg.error()) {
            position_[msg.partition()] = msg.offset() + 1;
            return msg;
        }
        if (msg.is_partition_eof()) {
            auto& position = position_[msg.partition()];
            position = std::max(position, msg.offset());
        } else {
            last_error_ = msg.error().message();
        }
        if (std::chrono::steady_clock::now() >= deadline) return common::Message();
    }
}

bool TopicReader::caught_up() const {
    for (const auto& [p, end] : end_) {
        const auto it = position_.find(p);
        if (it == position_.end() || it->second < end) return false;
    }
    return true;
}

}  // namespace meshhook::tools
