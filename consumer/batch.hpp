#pragma once
// Applies one polled batch to the store in one transaction: the offsets
// first (fencing a zombie consumer before anything else is read), then every
// event through the state machine, then the touched transfer rows.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/transfer_event.hpp"
#include "consumer/state_machine.hpp"
#include "consumer/store.hpp"

namespace meshhook::consumer {

// One consumed record, as the batch sees it (views into the Kafka message).
struct InputRecord {
    std::string_view topic;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
    std::string_view key;
    std::string_view value;
    std::string_view environment;  // the `environment` header; empty = production
};

// The offset move of one partition: from the value this consumer believes
// the store holds (nullopt = no row) to the offset after the batch.
struct PartitionAdvance {
    std::string topic;
    std::int32_t partition = 0;
    std::optional<std::int64_t> expected;
    std::int64_t next = 0;
};

struct BatchStats {
    std::map<std::string, std::uint64_t> events_by_status;
    std::array<std::uint64_t, kOutcomeCount> outcomes{};  // indexed by Outcome
    std::uint64_t credits = 0;
    std::map<std::string, std::uint64_t> reviews;    // by reason
    std::map<std::string, std::uint64_t> anomalies;  // by kind
    std::uint64_t outbox_rows = 0;
    double commit_seconds = 0;
    std::uint64_t count(Outcome o) const { return outcomes[static_cast<std::size_t>(o)]; }
};

enum class BatchStatus { kCommitted, kFenced };

struct BatchResult {
    BatchStatus status = BatchStatus::kCommitted;
    BatchStats stats;
};

class BatchApplier {
public:
    BatchApplier(Policy policy, Topics topics);

    // Throws StoreError (the transaction is rolled back). `advances` must be
    // sorted by (topic, partition) so that concurrent consumers lock offset
    // rows in one order.
    BatchResult apply(Store& store, std::span<const InputRecord> records,
                      std::span<const PartitionAdvance> advances, std::int64_t now_ms);

    // Input partition -> the offset this consumer believes the store holds
    // (nullopt = no row yet).
    using Expected = std::map<std::int32_t, std::optional<std::int64_t>>;

    // Applies a polled batch (records in poll order) so that no single record
    // can wedge its partition: the whole batch in one transaction; when the
    // store refuses it (StoreError::Kind::kStatement) once more; then halves,
    // each in its own transaction, down to the record at fault, which is
    // recorded alone as an `unapplicable_record` anomaly and passed. `expected`
    // moves past every part committed. Throws StoreError when the store is
    // unavailable (the caller waits and re-seeks: parts committed before stay
    // committed). Fenced: stops at once, the caller re-seeks.
    BatchResult apply_isolating(Store& store, std::span<const InputRecord> records,
                                Expected& expected, std::int64_t now_ms);

    const Topics& topics() const { return topics_; }

private:
    // One part of a batch in one transaction, advances derived from `expected`.
    BatchResult apply_part(Store& store, std::span<const InputRecord> records, Expected& expected,
                           std::int64_t now_ms);
    // True = committed; false = fenced.
    bool bisect(Store& store, std::span<const InputRecord> records, Expected& expected,
                std::int64_t now_ms, const StoreError& error, BatchStats& total);
    bool record_unapplicable(Store& store, const InputRecord& record, Expected& expected,
                             std::int64_t now_ms, const StoreError& error, BatchStats& total);
    // The anomaly for a record with an unusable identifier, nullopt when all
    // of them (key, environment, TransferId, EventId) are usable.
    std::optional<AnomalyRecord> check_identifiers(const InputRecord& record,
                                                   const common::ParseResult& parsed) const;

    Policy policy_;
    Topics topics_;
    common::TransferEventParser parser_;
};

}  // namespace meshhook::consumer
