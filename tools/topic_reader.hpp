#pragma once
// Reading a whole topic without a consumer group, for `tail`, `replay` and
// `dev --demo`: every partition assigned explicitly, from the beginning or
// the end, and "caught up" defined by the high watermarks seen at start.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/kafka.hpp"

namespace meshhook::tools {

// Partition count of `topic`, from the cluster's full metadata (asking for
// one topic by name could auto-create it). nullopt with `error` set to one
// line: brokers unreachable, or the topic does not exist.
std::optional<int> topic_partitions(common::Consumer& consumer, const std::string& brokers,
                                    const std::string& topic, std::chrono::milliseconds timeout,
                                    std::string& error);

// A consumer config for reading without a group: unique group.id (librdkafka
// wants one), nothing committed.
// `extra`: connection properties from --kafka-config-file (TLS, SASL).
common::KafkaConfig reader_config(const std::string& brokers,
                                  const common::KafkaConfig& extra = {});

class TopicReader {
public:
    // Throws std::runtime_error with one line when the brokers are
    // unreachable or the topic is unknown. `from_end`: only new records.
    TopicReader(const std::string& brokers, const std::string& topic, bool from_end,
                std::chrono::milliseconds timeout = std::chrono::seconds(10),
                const common::KafkaConfig& extra = {});

    // The next record (errors other than records are skipped and kept in
    // last_error()), or an empty Message on timeout.
    common::Message next(std::chrono::milliseconds timeout);

    // Every partition has been read up to its high watermark taken at start.
    bool caught_up() const;
    int partitions() const { return partitions_; }
    const std::string& last_error() const { return last_error_; }

private:
    std::unique_ptr<common::Consumer> consumer_;
    std::string topic_;
    int partitions_ = 0;
    std::map<std::int32_t, std::int64_t> end_;       // high watermark at start
    std::map<std::int32_t, std::int64_t> position_;  // next offset to read
    std::string last_error_;
};

}  // namespace meshhook::tools
