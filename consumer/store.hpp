#pragma once
// The consumer's transactional store: transfer state, partition offsets, the
// outbox and anomalies, on SQLite or PostgreSQL behind one interface, with one
// schema and the same SQL. Exactly once rests on committing the state, the
// outbox rows and the next offsets in one transaction.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "consumer/state_machine.hpp"

namespace meshhook::consumer {

// The schema version this binary writes; a store at a newer one is refused.
inline constexpr int kSchemaVersion = 2;

// Whether a retry can help decides what the consume loop does with a failed
// batch: it waits out an unavailable store for as long as it takes, but it
// bisects a batch the store refuses to find the one record at fault.
struct StoreError : std::runtime_error {
    enum class Kind : std::uint8_t {
        // The store cannot do any work now (connection lost, disk full or
        // read-only, locked, a deadlock or serialisation failure, a bug in our
        // SQL): the same statement can succeed later. The default: never
        // blame a record for the store's own trouble.
        kUnavailable,
        // The store refused this statement's data (a constraint, a value it
        // cannot hold such as a NUL byte or invalid UTF-8 in text, a value too
        // large): the same data fails again, whatever the store's health.
        kStatement,
    };
    explicit StoreError(const std::string& what, Kind kind = Kind::kUnavailable)
        : std::runtime_error(what), kind_(kind) {}
    Kind kind() const { return kind_; }

private:
    Kind kind_;
};

struct SentMark {
    std::int64_t id = 0;
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t offset = 0;
};

struct OutboxRow {
    std::int64_t id = 0;
    std::string topic;
    std::string key;
    std::string payload;
    std::string dedup_key;
    std::int64_t created_ms = 0;
    std::optional<std::int64_t> sent_ms;
    std::optional<std::int32_t> sent_partition;
    std::optional<std::int64_t> sent_offset;
    std::optional<std::int64_t> parked_ms;  // set when the relay gave up on it
    std::string park_reason;
    // unsent() only: where a recovery scan found this dedup key on the topic
    // before the row existed (the store went back in time): never send it.
    std::optional<SentMark> published;
};

// A record's dedup key found by the relay's recovery scan.
struct ScannedKey {
    std::string dedup_key;
    std::int64_t offset = 0;
};

struct OutboxStats {
    std::int64_t unsent = 0;
    std::optional<std::int64_t> oldest_unsent_created_ms;
    std::int64_t parked = 0;  // unsent rows the relay gave up on (not in `unsent`)
};

// One open write transaction; rolled back on destruction unless committed.
// Methods throw StoreError; after a throw the transaction must be dropped.
class StoreTransaction {
public:
    virtual ~StoreTransaction() = default;

    // Fencing: moves the partition's offset to `next` only if it still holds
    // `expected` (nullopt = no row yet). False means another consumer moved it
    // since this one read it: the caller rolls back and re-seeks.
    virtual bool advance_offset(std::string_view topic, std::int32_t partition,
                                std::optional<std::int64_t> expected, std::int64_t next) = 0;
    virtual std::optional<TransferRow> find_transfer(std::string_view environment,
                                                     std::string_view transfer_id) = 0;
    virtual void put_transfer(const TransferRow& row) = 0;
    // False when a row with the same dedup key exists (nothing written).
    virtual bool add_outbox(const OutboxRecord& record, std::int64_t now_ms) = 0;
    virtual bool add_anomaly(const AnomalyRecord& record, std::int64_t now_ms) = 0;
    virtual void commit() = 0;
};

class Store {
public:
    virtual ~Store() = default;
    virtual std::string_view kind() const = 0;  // "sqlite" | "postgresql"
    virtual int schema_version() = 0;

    virtual std::unique_ptr<StoreTransaction> begin() = 0;
    // partition -> next offset to consume
    virtual std::map<std::int32_t, std::int64_t> offsets(std::string_view topic) = 0;
    // No history: no offset row and no outbox row (a new store, or one
    // replaced under a pipeline that has run: see --start-from).
    virtual bool empty() = 0;
    virtual std::optional<TransferRow> transfer(std::string_view environment,
                                                std::string_view transfer_id) = 0;
    // Reconciliation's look-ups: transfers of `environment` not final (status
    // rank below succeeded/failed, unknown statuses included) and quiet since
    // `quiet_before_ms` (last_seen_ms at or before it), ordered by
    // (last_seen_ms, transfer_id) and starting after `after` when given: a
    // caller pages through them all, `limit` at a time, across passes.
    struct StaleCursor {
        std::int64_t last_seen_ms = 0;
        std::string transfer_id;
    };
    virtual std::vector<TransferRow> stale_transfers(std::string_view environment,
                                                     std::int64_t quiet_before_ms,
                                                     const std::optional<StaleCursor>& after,
                                                     std::size_t limit) = 0;

    // Relay side. The relay's invariant (consumer/README.md, "No credit
    // twice"): every record below a partition's relay position is known to
    // the store, as a sent outbox row or a published key.
    //
    // Unsent, unparked rows in id order (with `published` set for those whose
    // key a scan already found on the topic).
    virtual std::vector<OutboxRow> unsent(std::size_t limit) = 0;
    // Marks rows sent and moves each (topic, partition)'s position past them.
    virtual void mark_sent(const std::vector<SentMark>& marks, std::int64_t now_ms) = 0;
    // What a recovery scan read from one partition up to `next_offset`, in one
    // transaction: rows with those keys are marked sent, keys without a row
    // are remembered, the position moves to `next_offset`. Returns rows marked.
    virtual std::size_t record_scan(std::string_view topic, std::int32_t partition,
                                    const std::vector<ScannedKey>& keys, std::int64_t next_offset,
                                    std::int64_t now_ms) = 0;
    // partition -> the next offset the relay has not accounted for
    virtual std::map<std::int32_t, std::int64_t> relay_positions(std::string_view topic) = 0;
    // A row the relay gives up on: not sent again (nor any later row with its
    // topic and key, to keep per-transfer order) until an operator clears its
    // parked_ms; an `outbox_row_parked` anomaly row records it, same transaction.
    virtual void park(const OutboxRow& row, std::string_view reason, std::int64_t now_ms) = 0;
    virtual OutboxStats outbox_stats() = 0;
    // Only one relay per store may run: PostgreSQL holds a session advisory
    // lock, SQLite an flock beside the database file. Both die with the process.
    virtual bool try_acquire_relay_lock() = 0;

    // For operators and tests: every outbox row in id order, and anomaly rows.
    virtual std::vector<OutboxRow> outbox_rows() = 0;
    virtual std::vector<AnomalyRecord> anomalies() = 0;
};

// "sqlite:///abs/path.db", "sqlite://relative.db" or "postgresql://..." /
// "postgres://..." (a libpq connection URL). Opens, migrates the schema and
// returns the store; throws StoreError with one line on failure.
std::unique_ptr<Store> open_store(std::string_view url);

// The URL with any password replaced by "***", for log lines.
std::string redact_store_url(std::string_view url);

}  // namespace meshhook::consumer
