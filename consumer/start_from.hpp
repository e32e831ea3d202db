#pragma once
// --start-from: where an empty store starts reading the input topic.
//
// The store, not Kafka, says where each input partition resumes. A store
// with no history (new, or replaced under a pipeline that has already run)
// would start every partition at its beginning and apply everything again.
// When the output topics show that the pipeline has run, the consumer
// refuses to guess and an operator chooses.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/kafka.hpp"
#include "consumer/state_machine.hpp"
#include "consumer/store.hpp"

namespace meshhook::consumer {

enum class StartFrom : std::uint8_t {
    kEarliest,   // each partition's low watermark: everything Kafka still holds
    kLatest,     // each partition's high watermark: only what arrives from now on
    kCommitted,  // the consumer group's committed offset (low watermark where none)
};
std::string_view to_string(StartFrom choice);
// "earliest" | "latest" | "committed"; nullopt for anything else.
std::optional<StartFrom> parse_start_from(std::string_view text);

// Runs once at start, before consuming. When the store is empty:
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
