// The store, written once over sql::Connection: the same schema and the same
// statements run on SQLite and PostgreSQL. Only the identity column differs.

#include "consumer/store.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <limits>
#include <map>
#include <utility>

#include "common/identifier.hpp"
#include "common/transfer_event.hpp"
#include "consumer/sql.hpp"

namespace meshhook::consumer {

namespace {

using sql::Param;

// Migration N brings the schema from version N-1 to N. Append only: a
// released migration is never edited. "{ID}" is the dialect's identity column.
constexpr std::array<std::string_view, kSchemaVersion> kMigrations = {
    R"sql(
CREATE TABLE transfers (
    environment             TEXT    NOT NULL,
    transfer_id             TEXT    NOT NULL,
    status                  TEXT,
    status_rank             INTEGER NOT NULL,
    credited                INTEGER NOT NULL,
    review_reason           TEXT,
    conflict_status         TEXT,
    user_id                 TEXT,
    transaction_id          TEXT,
    token                   TEXT,
    chain                   TEXT,
    amount                  TEXT,
    destination_address     TEXT,
    tx_hash                 TEXT,
    source_account_provider TEXT,
    credit_event_id         TEXT,
    last_event_id           TEXT,
    last_unknown_status     TEXT,
    first_seen_ms           BIGINT  NOT NULL,
    last_seen_ms            BIGINT  NOT NULL,
    PRIMARY KEY (environment, transfer_id)
);
CREATE TABLE outbox (
    id             {ID},
    topic          TEXT   NOT NULL,
    record_key     TEXT   NOT NULL,
    payload        TEXT   NOT NULL,
    dedup_key      TEXT   NOT NULL UNIQUE,
    created_ms     BIGINT NOT NULL,
    sent_ms        BIGINT,
    sent_partition INTEGER,
    sent_offset    BIGINT
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_ms IS NULL;
CREATE INDEX outbox_delivered ON outbox (topic, sent_partition, sent_offset);
CREATE TABLE partition_offsets (
    topic        TEXT    NOT NULL,
    partition_id INTEGER NOT NULL,
    next_offset  BIGINT  NOT NULL,
    updated_ms   BIGINT  NOT NULL,
    PRIMARY KEY (topic, partition_id)
);
CREATE TABLE anomalies (
    id          {ID},
    kind        TEXT   NOT NULL,
    environment TEXT,
    transfer_id TEXT,
    detail      TEXT   NOT NULL,
    dedup_key   TEXT   NOT NULL UNIQUE,
    created_ms  BIGINT NOT NULL
);
)sql",
    // 2: the relay's index of what is on its topics (see consumer/README.md,
    // "No credit twice"), and rows parked because they can never be produced.
    R"sql(
ALTER TABLE outbox ADD COLUMN parked_ms BIGINT;
ALTER TABLE outbox ADD COLUMN park_reason TEXT;
CREATE INDEX outbox_parked ON outbox (topic, record_key) WHERE parked_ms IS NOT NULL;
CREATE TABLE relay_positions (
    topic        TEXT    NOT NULL,
    partition_id INTEGER NOT NULL,
    next_offset  BIGINT  NOT NULL,
    updated_ms   BIGINT  NOT NULL,
    PRIMARY KEY (topic, partition_id)
);
INSERT INTO relay_positions (topic, partition_id, next_offset, updated_ms)
    SELECT topic, sent_partition, MAX(sent_offset) + 1, 0 FROM outbox
    WHERE sent_offset IS NOT NULL GROUP BY topic, sent_partition;
CREATE TABLE published_keys (
    dedup_key      TEXT    NOT NULL PRIMARY KEY,
    topic          TEXT    NOT NULL,
    sent_partition INTEGER NOT NULL,
    sent_offset    BIGINT  NOT NULL,
    seen_ms        BIGINT  NOT NULL
);
)sql",
};

// Every statement is one constexpr literal that reads whole in a log or a
// profiler; a row's column list, which its decoder below reads by position,
// is spelled once (literal concatenation).
#define MESHHOOK_TRANSFER_COLUMNS                                                               \
    "environment, transfer_id, status, status_rank, credited, review_reason, conflict_status, " \
    "user_id, transaction_id, token, chain, amount, destination_address, tx_hash, "             \
    "source_account_provider, credit_event_id, last_event_id, last_unknown_status, "            \
    "first_seen_ms, last_seen_ms "
#define MESHHOOK_OUTBOX_COLUMNS                                                        \
    "id, topic, record_key, payload, dedup_key, created_ms, sent_ms, sent_partition, " \
    "sent_offset, parked_ms, park_reason "
#define MESHHOOK_ANOMALY_COLUMNS \
    "id, kind, environment, transfer_id, detail, dedup_key, created_ms "

constexpr std::string_view kSelectTransfer = "SELECT " MESHHOOK_TRANSFER_COLUMNS
                                             "FROM transfers WHERE environment = $1 AND "
                                             "transfer_id = $2";

// No index serves it: a pass reads the table once per interval (minutes),
// and the non-final rows it looks for are few.
constexpr std::string_view kSelectStaleTransfers =
    "SELECT " MESHHOOK_TRANSFER_COLUMNS
    "FROM transfers WHERE environment = $1 AND status_rank < $2 AND last_seen_ms <= $3 "
    "AND (last_seen_ms > $4 OR (last_seen_ms = $4 AND transfer_id > $5)) "
    "ORDER BY last_seen_ms, transfer_id LIMIT $6";

constexpr std::string_view kUpsertTransfer =
    "INSERT INTO transfers (" MESHHOOK_TRANSFER_COLUMNS
    ") "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, "
    "$19, $20) ON CONFLICT (environment, transfer_id) DO UPDATE SET status = excluded.status, "
    "status_rank = excluded.status_rank, credited = excluded.credited, "
    "review_reason = excluded.review_reason, conflict_status = excluded.conflict_status, "
    "user_id = excluded.user_id, transaction_id = excluded.transaction_id, "
    "token = excluded.token, chain = excluded.chain, amount = excluded.amount, "
    "destination_address = excluded.destination_address, tx_hash = excluded.tx_hash, "
    "source_account_provider = excluded.source_account_provider, "
    "credit_event_id = excluded.credit_event_id, last_event_id = excluded.last_event_id, "
    "last_unknown_status = excluded.last_unknown_status, last_seen_ms = excluded.last_seen_ms";

constexpr std::string_view kAdvanceOffset =
    "UPDATE partition_offsets SET next_offset = $1, updated_ms = $2 "
    "WHERE topic = $3 AND partition_id = $4 AND next_offset = $5";
constexpr std::string_view kInsertOffset =
    "INSERT INTO partition_offsets (topic, partition_id, next_offset, updated_ms) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT (topic, partition_id) DO NOTHING";
constexpr std::string_view kSelectOffsets =
    "SELECT partition_id, next_offset FROM partition_offsets WHERE topic = $1";
// CASE rather than a bare EXISTS: PostgreSQL answers a boolean, SQLite an integer.
constexpr std::string_view kHasHistory =
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM partition_offsets) "
    "OR EXISTS (SELECT 1 FROM outbox) THEN 1 ELSE 0 END";

constexpr std::string_view kInsertOutbox =
    "INSERT INTO outbox (topic, record_key, payload, dedup_key, created_ms) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dedup_key) DO NOTHING";
constexpr std::string_view kInsertAnomaly =
    "INSERT INTO anomalies (kind, environment, transfer_id, detail, dedup_key, created_ms) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedup_key) DO NOTHING";

// Unsent, unparked rows, each with where its dedup key was found on the topic
// by a recovery scan when the store had no row for it then (see published_keys).
constexpr std::string_view kSelectUnsent =
    "SELECT o.id, o.topic, o.record_key, o.payload, o.dedup_key, o.created_ms, o.sent_ms, "
    "o.sent_partition, o.sent_offset, o.parked_ms, o.park_reason, k.sent_partition, "
    "k.sent_offset "
    "FROM outbox o LEFT JOIN published_keys k ON k.dedup_key = o.dedup_key "
    "WHERE o.sent_ms IS NULL AND o.parked_ms IS NULL AND NOT EXISTS (SELECT 1 FROM outbox p "
    "WHERE p.parked_ms IS NOT NULL AND p.sent_ms IS NULL AND p.topic = o.topic "
    "AND p.record_key = o.record_key) ORDER BY o.id LIMIT $1";
constexpr std::string_view kSelectOutbox =
    "SELECT " MESHHOOK_OUTBOX_COLUMNS "FROM outbox ORDER BY id";
constexpr std::string_view kMarkSent =
    "UPDATE outbox SET sent_ms = $1, sent_partition = $2, sent_offset = $3 "
    "WHERE id = $4 AND sent_ms IS NULL";
constexpr std::string_view kMarkSentByKey =
    "UPDATE outbox SET sent_ms = $1, sent_partition = $2, sent_offset = $3 "
    "WHERE dedup_key = $4 AND sent_ms IS NULL";
constexpr std::string_view kSelectPositions =
    "SELECT partition_id, next_offset FROM relay_positions WHERE topic = $1";
constexpr std::string_view kAdvancePosition =
    "INSERT INTO relay_positions (topic, partition_id, next_offset, updated_ms) "
    "VALUES ($1, $2, $3, $4) ON CONFLICT (topic, partition_id) DO UPDATE SET "
    "next_offset = excluded.next_offset, updated_ms = excluded.updated_ms "
    "WHERE relay_positions.next_offset < excluded.next_offset";
// A key found on a topic with no outbox row for it: remembered, so that a row
// the consumer creates for it later is never sent.
constexpr std::string_view kInsertPublished =
    "INSERT INTO published_keys (dedup_key, topic, sent_partition, sent_offset, seen_ms) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (dedup_key) DO NOTHING";
constexpr std::string_view kPark =
    "UPDATE outbox SET parked_ms = $1, park_reason = $2 WHERE id = $3 AND sent_ms IS NULL";
constexpr std::string_view kOutboxStats =
    "SELECT COALESCE(SUM(CASE WHEN parked_ms IS NULL THEN 1 ELSE 0 END), 0), "
    "MIN(CASE WHEN parked_ms IS NULL THEN created_ms END), "
    "COALESCE(SUM(CASE WHEN parked_ms IS NULL THEN 0 ELSE 1 END), 0) "
    "FROM outbox WHERE sent_ms IS NULL";
constexpr std::string_view kSelectAnomalies =
    "SELECT " MESHHOOK_ANOMALY_COLUMNS "FROM anomalies ORDER BY id";

// Read-only queries (StoreReader): what operators and tests read.
constexpr std::string_view kSelectSchemaVersion = "SELECT version FROM meshhook_schema";
constexpr std::string_view kSelectTransfers =
    "SELECT " MESHHOOK_TRANSFER_COLUMNS "FROM transfers ORDER BY environment, transfer_id";
constexpr std::string_view kSelectTransfersById = "SELECT " MESHHOOK_TRANSFER_COLUMNS
                                                  "FROM transfers WHERE transfer_id = $1 "
                                                  "ORDER BY environment";
constexpr std::string_view kSelectOutboxByKey =
    "SELECT " MESHHOOK_OUTBOX_COLUMNS "FROM outbox WHERE record_key = $1 ORDER BY id";
constexpr std::string_view kSelectAnomaliesByTransfer = "SELECT " MESHHOOK_ANOMALY_COLUMNS
                                                        "FROM anomalies WHERE transfer_id = $1 "
                                                        "ORDER BY id";
constexpr std::string_view kCountByStatus =
    "SELECT environment, COALESCE(status, ''), COUNT(*), SUM(credited) FROM transfers "
    "GROUP BY environment, status ORDER BY 1, 2";  // '' first on both stores (NULL is not)
constexpr std::string_view kCountTransferFlags =
    "SELECT COALESCE(SUM(CASE WHEN review_reason IS NOT NULL AND review_reason <> '' "
    "THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN conflict_status IS NOT NULL AND conflict_status <> '' "
    "THEN 1 ELSE 0 END), 0), "
    "COALESCE(SUM(CASE WHEN status_rank < 3 AND last_seen_ms < $1 THEN 1 ELSE 0 END), 0) "
    "FROM transfers";
constexpr std::string_view kSelectSilent = "SELECT " MESHHOOK_TRANSFER_COLUMNS
                                           "FROM transfers WHERE status_rank < 3 AND "
                                           "last_seen_ms < $1 ORDER BY last_seen_ms LIMIT $2";
constexpr std::string_view kOutboxByTopic =
    "SELECT topic, COUNT(*), SUM(CASE WHEN sent_ms IS NULL THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN sent_ms IS NULL AND parked_ms IS NOT NULL THEN 1 ELSE 0 END), "
    "MIN(CASE WHEN sent_ms IS NULL THEN created_ms END) "
    "FROM outbox GROUP BY topic ORDER BY topic";
constexpr std::string_view kAnomaliesByKind =
    "SELECT kind, COUNT(*) FROM anomalies GROUP BY kind ORDER BY kind";
constexpr std::string_view kSelectAllOffsets =
    "SELECT topic, partition_id, next_offset FROM partition_offsets ORDER BY topic, partition_id";
constexpr std::string_view kSelectAllPositions =
    "SELECT topic, partition_id, next_offset FROM relay_positions ORDER BY topic, partition_id";

#undef MESHHOOK_TRANSFER_COLUMNS
#undef MESHHOOK_OUTBOX_COLUMNS
#undef MESHHOOK_ANOMALY_COLUMNS

// Empty strings are stored as NULL: operators see "no value", not "".
Param text(const std::string& s) {
    if (s.empty()) {
        return std::monostate{};
    }
    return std::string_view(s);
}

std::string str(const sql::Cell& cell) {
    return cell.value_or("");
}

std::int64_t integer(const sql::Cell& cell) {
    if (!cell) {
        return 0;
    }
    std::int64_t value = 0;
    const auto* end = cell->data() + cell->size();
    if (std::from_chars(cell->data(), end, value).ec != std::errc{}) {
        throw StoreError("store returned a non-integer: '" + *cell + "'");
    }
    return value;
}

std::optional<std::int64_t> opt_integer(const sql::Cell& cell) {
    if (!cell) {
        return std::nullopt;
    }
    return integer(cell);
}

TransferRow to_transfer(const std::vector<sql::Cell>& c) {
    TransferRow row;
    row.environment = str(c[0]);
    row.transfer_id = str(c[1]);
    row.status = str(c[2]);
    row.rank = static_cast<int>(integer(c[3]));
    row.credited = integer(c[4]) != 0;
    row.review_reason = str(c[5]);
    row.conflict_status = str(c[6]);
    row.user_id = str(c[7]);
    row.transaction_id = str(c[8]);
    row.token = str(c[9]);
    row.chain = str(c[10]);
    row.amount = str(c[11]);
    row.destination_address = str(c[12]);
    row.tx_hash = str(c[13]);
    row.source_account_provider = str(c[14]);
    row.credit_event_id = str(c[15]);
    row.last_event_id = str(c[16]);
    row.last_unknown_status = str(c[17]);
    row.first_seen_ms = integer(c[18]);
    row.last_seen_ms = integer(c[19]);
    return row;
}

OutboxRow to_outbox(const std::vector<sql::Cell>& c) {
    OutboxRow row;
    row.id = integer(c[0]);
    row.topic = str(c[1]);
    row.key = str(c[2]);
    row.payload = str(c[3]);
    row.dedup_key = str(c[4]);
    row.created_ms = integer(c[5]);
    row.sent_ms = opt_integer(c[6]);
    if (const auto p = opt_integer(c[7])) {
        row.sent_partition = static_cast<std::int32_t>(*p);
    }
    row.sent_offset = opt_integer(c[8]);
    if (c.size() > 10) {
        row.parked_ms = opt_integer(c[9]);
        row.park_reason = str(c[10]);
    }
    if (c.size() > 12 && c[11] && c[12]) {
        row.published =
            SentMark{row.id, row.topic, static_cast<std::int32_t>(integer(c[11])), integer(c[12])};
    }
    return row;
}

AnomalyRow to_anomaly(const std::vector<sql::Cell>& c) {
    return {integer(c[0]), {str(c[1]), str(c[2]), str(c[3]), str(c[4]), str(c[5])}, integer(c[6])};
}

PartitionPosition to_position(const std::vector<sql::Cell>& c) {
    return {str(c[0]), static_cast<std::int32_t>(integer(c[1])), integer(c[2])};
}

template <typename Decode>
auto decode_all(const sql::Result& r, Decode decode) {
    std::vector<decltype(decode(r.rows.front()))> out;
    out.reserve(r.rows.size());
    for (const auto& row : r.rows) {
        out.push_back(decode(row));
    }
    return out;
}

std::map<std::int32_t, std::int64_t> partition_map(const sql::Result& r) {
    std::map<std::int32_t, std::int64_t> out;
    for (const auto& row : r.rows) {
        out[static_cast<std::int32_t>(integer(row[0]))] = integer(row[1]);
    }
    return out;
}

class SqlStore;

class SqlTransaction final : public StoreTransaction {
public:
    explicit SqlTransaction(sql::Connection& conn) : conn_(conn) { conn_.begin(); }
    ~SqlTransaction() override {
        if (!done_) {
            conn_.rollback();
        }
    }
    SqlTransaction(const SqlTransaction&) = delete;
    SqlTransaction& operator=(const SqlTransaction&) = delete;

    bool advance_offset(std::string_view topic, std::int32_t partition,
                        std::optional<std::int64_t> expected, std::int64_t next) override {
        const std::int64_t now = next_now_;
        if (expected) {
            const std::array<Param, 5> p{next, now, topic, std::int64_t{partition}, *expected};
            return conn_.query(kAdvanceOffset, p).affected == 1;
        }
        const std::array<Param, 4> p{topic, std::int64_t{partition}, next, now};
        return conn_.query(kInsertOffset, p).affected == 1;
    }

    std::optional<TransferRow> find_transfer(std::string_view environment,
                                             std::string_view transfer_id) override {
        const std::array<Param, 2> p{environment, transfer_id};
        const sql::Result r = conn_.query(kSelectTransfer, p);
        if (r.rows.empty()) {
            return std::nullopt;
        }
        return to_transfer(r.rows[0]);
    }

    void put_transfer(const TransferRow& row) override {
        const std::array<Param, 20> p{
            std::string_view(row.environment),
            std::string_view(row.transfer_id),
            text(row.status),
            std::int64_t{row.rank},
            std::int64_t{row.credited ? 1 : 0},
            text(row.review_reason),
            text(row.conflict_status),
            text(row.user_id),
            text(row.transaction_id),
            text(row.token),
            text(row.chain),
            text(row.amount),
            text(row.destination_address),
            text(row.tx_hash),
            text(row.source_account_provider),
            text(row.credit_event_id),
            text(row.last_event_id),
            text(row.last_unknown_status),
            row.first_seen_ms,
            row.last_seen_ms,
        };
        conn_.query(kUpsertTransfer, p);
    }

    bool add_outbox(const OutboxRecord& record, std::int64_t now_ms) override {
        const std::array<Param, 5> p{std::string_view(record.topic), std::string_view(record.key),
                                     std::string_view(record.payload),
                                     std::string_view(record.dedup_key), now_ms};
        return conn_.query(kInsertOutbox, p).affected == 1;
    }

    bool add_anomaly(const AnomalyRecord& record, std::int64_t now_ms) override {
        const std::array<Param, 6> p{
            std::string_view(record.kind),      text(record.environment),
            text(record.transfer_id),           std::string_view(record.detail),
            std::string_view(record.dedup_key), now_ms};
        return conn_.query(kInsertAnomaly, p).affected == 1;
    }

    void commit() override {
        conn_.commit();
        done_ = true;
    }

    void set_now(std::int64_t now_ms) { next_now_ = now_ms; }

private:
    sql::Connection& conn_;
    bool done_ = false;
    std::int64_t next_now_ = 0;
};

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

class SqlStore final : public Store {
public:
    // kReadWrite migrates the schema to this binary's version; kReadOnly
    // only checks that it is this binary's version.
    SqlStore(std::unique_ptr<sql::Connection> conn, sql::Access access, std::string_view url)
        : conn_(std::move(conn)) {
        if (access == sql::Access::kReadWrite) {
            migrate();
        } else {
            check_version(url);
        }
    }

    std::string_view kind() const override { return conn_->kind(); }

    int schema_version() override {
        const sql::Result r = conn_->query(kSelectSchemaVersion, {});
        return r.rows.empty() ? 0 : static_cast<int>(integer(r.rows[0][0]));
    }

    std::unique_ptr<StoreTransaction> begin() override {
        auto tx = std::make_unique<SqlTransaction>(*conn_);
        tx->set_now(wall_ms());
        return tx;
    }

    std::map<std::int32_t, std::int64_t> offsets(std::string_view topic) override {
        const std::array<Param, 1> p{topic};
        return partition_map(conn_->query(kSelectOffsets, p));
    }

    bool empty() override {
        const sql::Result r = conn_->query(kHasHistory, {});
        return r.rows.empty() || integer(r.rows[0][0]) == 0;
    }

    std::optional<TransferRow> transfer(std::string_view environment,
                                        std::string_view transfer_id) override {
        const std::array<Param, 2> p{environment, transfer_id};
        const sql::Result r = conn_->query(kSelectTransfer, p);
        if (r.rows.empty()) {
            return std::nullopt;
        }
        return to_transfer(r.rows[0]);
    }

    std::vector<TransferRow> stale_transfers(std::string_view environment,
                                             std::int64_t quiet_before_ms,
                                             const std::optional<StaleCursor>& after,
                                             std::size_t limit) override {
        const std::int64_t terminal = common::status_rank(common::TransferStatus::kSucceeded);
        // Without a cursor: from before any row ("" sorts first).
        const std::int64_t from_ms =
            after ? after->last_seen_ms : std::numeric_limits<std::int64_t>::min();
        const std::string_view from_id = after ? std::string_view(after->transfer_id) : "";
        const std::array<Param, 6> p{environment, terminal, quiet_before_ms,
                                     from_ms,     from_id,  static_cast<std::int64_t>(limit)};
        return decode_all(conn_->query(kSelectStaleTransfers, p), to_transfer);
    }

    std::vector<OutboxRow> unsent(std::size_t limit) override {
        const std::array<Param, 1> p{static_cast<std::int64_t>(limit)};
        return decode_all(conn_->query(kSelectUnsent, p), to_outbox);
    }

    void mark_sent(const std::vector<SentMark>& marks, std::int64_t now_ms) override {
        if (marks.empty()) {
            return;
        }
        conn_->begin();
        try {
            std::map<std::pair<std::string_view, std::int32_t>, std::int64_t> next;
            for (const SentMark& m : marks) {
                const std::array<Param, 4> p{now_ms, std::int64_t{m.partition}, m.offset, m.id};
                conn_->query(kMarkSent, p);
                auto& n = next[{m.topic, m.partition}];
                n = std::max(n, m.offset + 1);
            }
            for (const auto& [where, offset] : next) {
                advance_position(where.first, where.second, offset, now_ms);
            }
            conn_->commit();
        } catch (...) {
            conn_->rollback();
            throw;
        }
    }

    std::size_t record_scan(std::string_view topic, std::int32_t partition,
                            const std::vector<ScannedKey>& keys, std::int64_t next_offset,
                            std::int64_t now_ms) override {
        std::size_t marked = 0;
        conn_->begin();
        try {
            for (const ScannedKey& k : keys) {
                const std::array<Param, 4> p{now_ms, std::int64_t{partition}, k.offset,
                                             std::string_view(k.dedup_key)};
                if (conn_->query(kMarkSentByKey, p).affected == 1) {
                    ++marked;
                    continue;
                }
                // No unsent row has the key now. Remember it whether or not
                // a sent row has it: a row the consumer commits meanwhile
                // (PostgreSQL reads each statement's own snapshot) must
                // still find it, through unsent()'s join.
                const std::array<Param, 5> ins{std::string_view(k.dedup_key), topic,
                                               std::int64_t{partition}, k.offset, now_ms};
                conn_->query(kInsertPublished, ins);
            }
            advance_position(topic, partition, next_offset, now_ms);
            conn_->commit();
        } catch (...) {
            conn_->rollback();
            throw;
        }
        return marked;
    }

    std::map<std::int32_t, std::int64_t> relay_positions(std::string_view topic) override {
        const std::array<Param, 1> p{topic};
        return partition_map(conn_->query(kSelectPositions, p));
    }

    void park(const OutboxRow& row, std::string_view reason, std::int64_t now_ms) override {
        conn_->begin();
        try {
            const std::array<Param, 3> p{now_ms, reason, row.id};
            conn_->query(kPark, p);
            const std::string detail = "outbox row " + std::to_string(row.id) + " to " + row.topic +
                                       " (key " + row.key + ", " + row.dedup_key +
                                       ") parked: " + std::string(reason);
            const std::string key = "parked:" + row.dedup_key;
            const std::array<Param, 6> a{std::string_view("outbox_row_parked"),
                                         std::monostate{},
                                         std::monostate{},
                                         std::string_view(detail),
                                         std::string_view(key),
                                         now_ms};
            conn_->query(kInsertAnomaly, a);
            conn_->commit();
        } catch (...) {
            conn_->rollback();
            throw;
        }
    }

    OutboxStats outbox_stats() override {
        const sql::Result r = conn_->query(kOutboxStats, {});
        OutboxStats stats;
        if (!r.rows.empty()) {
            stats.unsent = integer(r.rows[0][0]);
            stats.oldest_unsent_created_ms = opt_integer(r.rows[0][1]);
            stats.parked = integer(r.rows[0][2]);
        }
        return stats;
    }

    bool try_acquire_relay_lock() override { return conn_->try_relay_lock(); }

    std::vector<OutboxRow> outbox_rows() override {
        return decode_all(conn_->query(kSelectOutbox, {}), to_outbox);
    }

    std::vector<AnomalyRecord> anomalies() override {
        std::vector<AnomalyRecord> out;
        for (const auto& c : conn_->query(kSelectAnomalies, {}).rows) {
            out.push_back(to_anomaly(c).record);
        }
        return out;
    }

    std::vector<TransferRow> transfers() override {
        return decode_all(conn_->query(kSelectTransfers, {}), to_transfer);
    }

    TransferHistory history(std::string_view transfer_id, std::string_view environment) override {
        TransferHistory h;
        const std::array<Param, 1> id{transfer_id};
        if (environment.empty()) {
            h.transfers = decode_all(conn_->query(kSelectTransfersById, id), to_transfer);
        } else if (auto row = transfer(environment, transfer_id)) {
            h.transfers.push_back(std::move(*row));
        }
        h.outbox = decode_all(conn_->query(kSelectOutboxByKey, id), to_outbox);
        h.anomalies = decode_all(conn_->query(kSelectAnomaliesByTransfer, id), to_anomaly);
        return h;
    }

    StoreSummary summary(std::int64_t silent_before_ms, std::size_t silent_limit) override {
        StoreSummary s;
        for (const auto& c : conn_->query(kCountByStatus, {}).rows) {
            s.by_status.push_back({str(c[0]), str(c[1]), integer(c[2]), integer(c[3])});
        }
        const std::array<Param, 1> cutoff{silent_before_ms};
        if (const auto r = conn_->query(kCountTransferFlags, cutoff); !r.rows.empty()) {
            s.in_review = integer(r.rows[0][0]);
            s.conflicts = integer(r.rows[0][1]);
            s.silent = integer(r.rows[0][2]);
        }
        const std::array<Param, 2> silent{silent_before_ms,
                                          static_cast<std::int64_t>(silent_limit)};
        s.silent_oldest = decode_all(conn_->query(kSelectSilent, silent), to_transfer);
        for (const auto& c : conn_->query(kOutboxByTopic, {}).rows) {
            s.outbox.push_back(
                {str(c[0]), integer(c[1]), integer(c[2]), integer(c[3]), opt_integer(c[4])});
        }
        for (const auto& c : conn_->query(kAnomaliesByKind, {}).rows) {
            s.anomalies.push_back({str(c[0]), integer(c[1])});
        }
        s.offsets = decode_all(conn_->query(kSelectAllOffsets, {}), to_position);
        s.relay_positions = decode_all(conn_->query(kSelectAllPositions, {}), to_position);
        return s;
    }

private:
    void advance_position(std::string_view topic, std::int32_t partition, std::int64_t next,
                          std::int64_t now_ms) {
        const std::array<Param, 4> p{topic, std::int64_t{partition}, next, now_ms};
        conn_->query(kAdvancePosition, p);
    }

    void check_version(std::string_view url) {
        const std::string where = redact_store_url(url);
        sql::Result r;
        try {
            r = conn_->query(kSelectSchemaVersion, {});
        } catch (const StoreError&) {
            throw StoreError(where + " is not a meshhook store (no meshhook_schema table)");
        }
        if (r.rows.empty() || !r.rows[0][0]) {
            throw StoreError(where + " is not a meshhook store (empty meshhook_schema)");
        }
        const std::int64_t version = integer(r.rows[0][0]);
        if (version > kSchemaVersion) {
            throw StoreError(where + " has schema version " + std::to_string(version) +
                             ", newer than this binary's (" + std::to_string(kSchemaVersion) +
                             "): run a newer meshhook");
        }
        if (version < kSchemaVersion) {
            throw StoreError(where + " has schema version " + std::to_string(version) +
                             ", older than this binary's (" + std::to_string(kSchemaVersion) +
                             "): start meshhook-consumer of this release on it to migrate");
        }
    }

    void migrate() {
        conn_->begin();
        try {
            conn_->lock_migrations();
            conn_->exec_script(
                "CREATE TABLE IF NOT EXISTS meshhook_schema (version INTEGER NOT NULL)");
            const sql::Result r = conn_->query(kSelectSchemaVersion, {});
            const int current = r.rows.empty() ? 0 : static_cast<int>(integer(r.rows[0][0]));
            if (current > kSchemaVersion) {
                throw StoreError("store schema version " + std::to_string(current) +
                                 " is newer than this binary's (" + std::to_string(kSchemaVersion) +
                                 "): run a newer meshhook-consumer");
            }
            for (int v = current + 1; v <= kSchemaVersion; ++v) {
                std::string script(kMigrations[static_cast<std::size_t>(v - 1)]);
                const std::string id = conn_->identity_column();
                for (auto pos = script.find("{ID}"); pos != std::string::npos;
                     pos = script.find("{ID}", pos)) {
                    script.replace(pos, 4, id);
                }
                conn_->exec_script(script);
            }
            const std::array<Param, 1> p{std::int64_t{kSchemaVersion}};
            if (r.rows.empty()) {
                conn_->query("INSERT INTO meshhook_schema (version) VALUES ($1)", p);
            } else if (current != kSchemaVersion) {
                conn_->query("UPDATE meshhook_schema SET version = $1", p);
            }
            conn_->commit();
        } catch (...) {
            conn_->rollback();
            throw;
        }
    }

    std::unique_ptr<sql::Connection> conn_;
};

}  // namespace

namespace {

// sqlite://PATH or postgresql:// / postgres:// (a libpq URL), one way for both
// accesses.
std::unique_ptr<SqlStore> open_sql_store(std::string_view url, sql::Access access) {
    if (url.starts_with("sqlite://")) {
        const std::string path(url.substr(9));
        if (path.empty()) {
            throw StoreError("store URL 'sqlite://' names no file");
        }
        if (access == sql::Access::kReadOnly) {
            std::error_code ec;
            if (!std::filesystem::is_regular_file(path, ec)) {
                throw StoreError("no SQLite store at " + path + " (" +
                                 (ec ? ec.message() : std::string("no such file")) + ")");
            }
        }
        return std::make_unique<SqlStore>(sql::open_sqlite(path, access), access, url);
    }
    if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
        return std::make_unique<SqlStore>(sql::open_postgres(std::string(url), access), access,
                                          url);
    }
    throw StoreError("store URL must start with sqlite:// or postgresql://, got '" +
                     redact_store_url(url) + "'");
}

}  // namespace

std::unique_ptr<Store> open_store(std::string_view url) {
    return open_sql_store(url, sql::Access::kReadWrite);
}

std::unique_ptr<StoreReader> open_store_reader(std::string_view url) {
    return open_sql_store(url, sql::Access::kReadOnly);
}

std::string redact_store_url(std::string_view url) {
    std::string out(url);
    if (const auto scheme = out.find("://"); scheme != std::string::npos) {
        const auto at = out.find('@', scheme + 3);
        const auto colon = out.find(':', scheme + 3);
        if (at != std::string::npos && colon != std::string::npos && colon < at) {
            out.replace(colon + 1, at - colon - 1, "***");
        }
    }
    // password=... in the query string
    if (const auto pw = out.find("password="); pw != std::string::npos) {
        const auto end = out.find('&', pw);
        out.replace(pw + 9, (end == std::string::npos ? out.size() : end) - pw - 9, "***");
    }
    return out;
}

}  // namespace meshhook::consumer

namespace meshhook::consumer::sql {

const char* unstorable_text(std::string_view text) {
    if (text.find('\0') != std::string_view::npos) {
        return "a NUL byte in a text value";
    }
    if (!common::is_valid_utf8(text)) {
        return "invalid UTF-8 in a text value";
    }
    return nullptr;
}

}  // namespace meshhook::consumer::sql
