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

#include "consumer/records.hpp"

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

// A stored anomaly as an operator reads it.
struct AnomalyRow {
    std::int64_t id = 0;
    AnomalyRecord record;
    std::int64_t created_ms = 0;
};

// Everything the store holds about one TransferId ("what happened to transfer X?").
struct TransferHistory {
    std::vector<TransferRow> transfers;  // one per environment, by environment
    std::vector<OutboxRow> outbox;       // rows whose record key is the TransferId, by id
    std::vector<AnomalyRow> anomalies;   // by id
    bool empty() const { return transfers.empty() && outbox.empty() && anomalies.empty(); }
};

// A partition's next offset: consumed (partition_offsets) or accounted for by
// the relay (relay_positions).
struct PartitionPosition {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t next_offset = 0;
    friend bool operator==(const PartitionPosition&, const PartitionPosition&) = default;
};

// The whole store in counts (`meshhook state --summary`).
struct StoreSummary {
    struct StatusCount {
        std::string environment;
        std::string status;  // "" before a known status
        std::int64_t transfers = 0;
        std::int64_t credited = 0;
    };
    struct TopicOutbox {
        std::string topic;
        std::int64_t rows = 0;
        std::int64_t unsent = 0;  // parked rows included
        std::int64_t parked = 0;
        std::optional<std::int64_t> oldest_unsent_created_ms;
    };
    struct KindCount {
        std::string kind;
        std::int64_t count = 0;
    };
    std::vector<StatusCount> by_status;  // by environment, then status
    std::int64_t in_review = 0;
    std::int64_t conflicts = 0;
    std::int64_t silent = 0;                         // not final, last seen before the cutoff
    std::vector<TransferRow> silent_oldest;          // the longest silent first, up to the limit
    std::vector<TopicOutbox> outbox;                 // by topic
    std::vector<KindCount> anomalies;                // by kind
    std::vector<PartitionPosition> offsets;          // partition_offsets, by topic and partition
    std::vector<PartitionPosition> relay_positions;  // by topic and partition
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

// What can be read from a store: all a read-only store offers (operators'
// tools and tests open it with open_store_reader()); the consumer's Store adds
// the writes.
class StoreReader {
public:
    virtual ~StoreReader() = default;
    virtual std::string_view kind() const = 0;  // "sqlite" | "postgresql"
    virtual int schema_version() = 0;

    // partition -> next offset to consume
    virtual std::map<std::int32_t, std::int64_t> offsets(std::string_view topic) = 0;
    // No history: no offset row and no outbox row (a new store, or one
    // replaced under a pipeline that has run: see --start-from).
    virtual bool empty() = 0;
    virtual std::optional<TransferRow> transfer(std::string_view environment,
                                                std::string_view transfer_id) = 0;
    // Every transfer row, by environment and TransferId.
    virtual std::vector<TransferRow> transfers() = 0;
    // The transfer's rows (in `environment` only, unless empty), its outbox
    // rows and its anomalies.
    virtual TransferHistory history(std::string_view transfer_id, std::string_view environment) = 0;
    // Counts over the whole store; transfers not final and last seen before
    // `silent_before_ms` are counted, and the `silent_limit` oldest listed.
    virtual StoreSummary summary(std::int64_t silent_before_ms, std::size_t silent_limit) = 0;

    // partition -> the next offset the relay has not accounted for
    virtual std::map<std::int32_t, std::int64_t> relay_positions(std::string_view topic) = 0;
    virtual OutboxStats outbox_stats() = 0;
    // Every outbox row in id order (parked ones included), and anomaly rows.
    virtual std::vector<OutboxRow> outbox_rows() = 0;
    virtual std::vector<AnomalyRecord> anomalies() = 0;
};

class Store : public StoreReader {
public:
    virtual std::unique_ptr<StoreTransaction> begin() = 0;

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
    // A row the relay gives up on: not sent again (nor any later row with its
    // topic and key, to keep per-transfer order) until an operator clears its
    // parked_ms; an `outbox_row_parked` anomaly row records it, same transaction.
    virtual void park(const OutboxRow& row, std::string_view reason, std::int64_t now_ms) = 0;
    // Only one relay per store may run: PostgreSQL holds a session advisory
    // lock, SQLite an flock beside the database file. Both die with the process.
    virtual bool try_acquire_relay_lock() = 0;
};

// "sqlite:///abs/path.db", "sqlite://relative.db" or "postgresql://..." /
// "postgres://..." (a libpq connection URL). Opens, migrates the schema and
// returns the store; throws StoreError with one line on failure.
std::unique_ptr<Store> open_store(std::string_view url);

// The same URLs, read-only: nothing is created, migrated or locked (a SQLite
// file is opened read-only, a PostgreSQL session has read-only transactions),
// and a store at another schema version than this binary's is refused. Throws
// StoreError with one line naming the (redacted) URL.
std::unique_ptr<StoreReader> open_store_reader(std::string_view url);

// The URL with any password replaced by "***", for log lines.
std::string redact_store_url(std::string_view url);

}  // namespace meshhook::consumer
