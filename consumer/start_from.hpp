#pragma once
// --start-from: where an empty store starts reading the input topic.
//
// The store, not Kafka, says where each input partition resumes. A store
// with no history (new, or replaced under a pipeline that has already run)
// would start every partition at its beginning and apply everything again.
// When the output topics show that the pipeline has run, the consumer
// refuses to guess and an operator chooses.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/kafka.hpp"
#include "consumer/store.hpp"
#include "consumer/topics.hpp"

namespace meshhook::consumer {

enum class StartFrom : std::uint8_t {
    kEarliest,   // each partition's low watermark: everything Kafka still holds
    kLatest,     // each partition's high watermark: only what arrives from now on
    kCommitted,  // the consumer group's committed offset (low watermark where none)
};
std::string_view to_string(StartFrom choice);
// "earliest" | "latest" | "committed"; nullopt for anything else.
std::optional<StartFrom> parse_start_from(std::string_view text);

// A partition whose stored offset is past its end (high watermark): the
// input topic was deleted and recreated (offsets restart at 0), so every
// record below the stored offset would be skipped without a word.
struct PastTheEnd {
    std::int32_t partition = 0;
    std::int64_t stored = 0;
    std::int64_t low = 0;
    std::int64_t high = 0;
};
// The partitions of `stored` (partition -> next offset) whose offset is past
// the end of `topic`'s partition. Throws common::KafkaError when Kafka does
// not give a partition's watermarks within `timeout`.
std::vector<PastTheEnd> offsets_past_the_end(common::Consumer& kafka, const std::string& topic,
                                             const std::map<std::int32_t, std::int64_t>& stored,
                                             std::chrono::milliseconds timeout);
// "the store's offsets are past the end of T ([0] at 120, its end is 3), ...":
// what happened and what an operator can do, after `setting`.
std::string past_the_end_message(const std::string& setting, const std::string& topic,
                                 const std::vector<PastTheEnd>& partitions);

// Runs once at start, before consuming. Stored offsets past the end of the
// input topic come first: without `choice` they throw common::ConfigError
// (past_the_end_message); with it, those partitions move to where `choice`
// says (each from the value read: another consumer's move wins). When the
// store is empty:
//  - with `choice`, writes the starting offset of every partition of
//    `topics.input` in one store transaction (a row another consumer wrote
//    meanwhile is kept: the insert only happens where no row exists);
//  - without, throws common::ConfigError starting with `setting` when one of
//    the output topics holds records.
// A store with history is left alone. `kafka` carries the group's group.id
// (for kCommitted) and is never subscribed. Throws common::KafkaError when
// Kafka does not answer within `timeout` (the caller retries) and StoreError.
// Returns what was decided, for one log line.
std::string prepare_start(Store& store, common::Consumer& kafka, const Topics& topics,
                          std::optional<StartFrom> choice, const std::string& setting,
                          std::chrono::milliseconds timeout);

}  // namespace meshhook::consumer
