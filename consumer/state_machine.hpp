#pragma once
// The pure transfer state machine: (current row, event, policy) -> decision.
// No I/O, no clock: the caller passes `now_ms`, so every ordering of events
// can be replayed in a unit test and the decision compared byte for byte.

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/transfer_event.hpp"
#include "common/wire.hpp"

namespace meshhook::consumer {

inline constexpr std::string_view kDefaultEnvironment = "production";

struct Topics {
    std::string input{wire::kTransferEventsTopic};
    std::string credits{wire::kCreditCommandsTopic};
    std::string reviews{wire::kCreditReviewTopic};
    std::string anomalies{wire::kAnomaliesTopic};
};

enum class Outcome : std::uint8_t {
    kApplied,
    kDuplicate,
    kStale,
    kUnknownStatus,
    kConflict,
    kUnparseable,
    kUnusableIdentifier,  // a key, environment, TransferId or EventId neither store can hold
    kUnapplicable,        // the store refused the record itself (found by bisecting its batch)
};
std::string_view to_string(Outcome o);  // the metric label: applied, duplicate, ...

// An owned copy of what the consumer needs from one event: the parser's views
// die with its next parse, and a batch holds many events.
struct TransferEvent {
    std::string environment{kDefaultEnvironment};
    std::string transfer_id;
    std::string event_id;
    std::string status_text;  // as sent, e.g. "Succeeded" or "RefundPending"
    common::TransferStatus status = common::TransferStatus::kUnknown;
    std::optional<std::string> user_id;
    std::optional<std::string> transaction_id;
    std::optional<std::string> token;
    std::optional<std::string> chain;
    std::optional<std::string> destination_amount;  // exact JSON number text
    std::optional<std::string> destination_address;
    std::optional<std::string> tx_hash;
    std::optional<std::string> source_account_provider;
    // As sent; the unit of each is decided by common::unix_ms_by_magnitude.
    std::optional<std::int64_t> timestamp_ms;    // when the status changed
    std::optional<std::int64_t> sent_timestamp;  // when this delivery was sent

    // `environment` is the record's header; empty means production.
    static TransferEvent from_view(const common::TransferEventView& view,
                                   std::string_view environment);
};

// One row of the transfers table. Empty strings are stored as NULL.
struct TransferRow {
    std::string environment;
    std::string transfer_id;
    std::string status;  // canonical lower-case of the highest-ranked status; "" before one
    int rank = 0;
    bool credited = false;        // a credit command went to the outbox
    std::string review_reason;    // set when the succeeded event went to review instead
    std::string conflict_status;  // the terminal status that contradicted `status`, if any
    // Fields of the event that made the transfer succeed (the credit's fields).
    std::string user_id;
    std::string transaction_id;
    std::string token;
    std::string chain;
    std::string amount;
    std::string destination_address;
    std::string tx_hash;
    std::string source_account_provider;
    std::string credit_event_id;
    std::string last_event_id;
    std::string last_unknown_status;
    std::int64_t first_seen_ms = 0;
    std::int64_t last_seen_ms = 0;

    friend bool operator==(const TransferRow&, const TransferRow&) = default;
};

// A record for the relay to produce; `dedup_key` is unique in the outbox, so
// a second decision to emit the same record is a no-op.
struct OutboxRecord {
    std::string topic;
    std::string key;
    std::string payload;
    std::string dedup_key;
    friend bool operator==(const OutboxRecord&, const OutboxRecord&) = default;
};

// A row of the anomalies table (operators query it; its twin goes to the topic).
struct AnomalyRecord {
    std::string kind;  // conflict, unparseable, unusable_identifier, unapplicable_record, ...
    std::string environment;
    std::string transfer_id;
    std::string detail;  // the JSON payload sent to the anomaly topic
    std::string dedup_key;
    friend bool operator==(const AnomalyRecord&, const AnomalyRecord&) = default;
};

// Review reasons (metric labels and the `reason` field of review records).
inline constexpr std::string_view kReasonAssetNotAllowed = "asset_not_allowed";
inline constexpr std::string_view kReasonDestinationNotAllowed = "destination_not_allowed";
inline constexpr std::string_view kReasonAmountMissing = "amount_missing";
inline constexpr std::string_view kReasonAmountNotPositive = "amount_not_positive";
// A credit command must be complete: every field the ledger books with is
// present (not absent, null or empty) and well-formed (see credit_field_reason).
inline constexpr std::string_view kReasonUserMissing = "user_missing";
inline constexpr std::string_view kReasonUserMalformed = "user_malformed";
inline constexpr std::string_view kReasonAssetMissing = "asset_missing";
inline constexpr std::string_view kReasonAssetMalformed = "asset_malformed";
inline constexpr std::string_view kReasonChainMissing = "chain_missing";
inline constexpr std::string_view kReasonChainMalformed = "chain_malformed";
inline constexpr std::string_view kReasonAmountMalformed = "amount_malformed";
inline constexpr std::string_view kReasonDestinationMissing = "destination_missing";
inline constexpr std::string_view kReasonDestinationMalformed = "destination_malformed";
// Not a first decision: a later succeeded delivery for a transfer already in
// review that adds or changes a credit field (the review topic hears of it;
// nothing is credited automatically).
inline constexpr std::string_view kReasonReviewUpdate = "review_update";
// A status beyond the four (e.g. RefundSucceeded) for a transfer already credited.
inline constexpr std::string_view kReasonRefundAfterCredit = "refund_after_credit";
inline constexpr std::string_view kReasonUnknownStatusAfterCredit = "unknown_status_after_credit";

// Every review reason, for the metric's series at zero.
inline constexpr std::string_view kReviewReasons[] = {
    kReasonAssetNotAllowed,      kReasonDestinationNotAllowed,
    kReasonAmountMissing,        kReasonAmountNotPositive,
    kReasonUserMissing,          kReasonUserMalformed,
    kReasonAssetMissing,         kReasonAssetMalformed,
    kReasonChainMissing,         kReasonChainMalformed,
    kReasonAmountMalformed,      kReasonDestinationMissing,
    kReasonDestinationMalformed, kReasonReviewUpdate,
    kReasonRefundAfterCredit,    kReasonUnknownStatusAfterCredit};

// The completeness rule alone (no policy): the first missing or malformed
// credit field in the order user, asset (token), chain, amount, destination,
// or nullopt when the event could be booked. Only the event's own fields
// count (consumer/README.md, "A credit command is complete").
std::optional<std::string_view> credit_field_reason(const TransferEvent& event);

// A check of a succeeded transfer against facts kept outside the decision
// (Mesh's network list: consumer/networks.hpp). It answers from memory, with
// no I/O, so decide() stays pure; the returned reason has static storage.
class TransferScreen {
public:
    virtual ~TransferScreen() = default;
    virtual std::optional<std::string_view> review_reason(const TransferEvent& event) const = 0;
};

// What may be credited: (token, chain) pairs compared case-insensitively
// (empty = every pair), and, when a destination list was configured,
// per-environment destination addresses (exact match: Solana addresses are
// case-sensitive; an environment without entries gets no credit at all).
class Policy {
public:
    void allow_asset(std::string_view token, std::string_view chain);
    void allow_destination(std::string_view environment, std::string_view address);
    void require_destination_list() { destinations_configured_ = true; }
    // Consulted after the (token, chain) pairs, before the destination list.
    void set_screen(std::shared_ptr<const TransferScreen> screen) { screen_ = std::move(screen); }

    // "USDC:Ethereum,ETH:Ethereum"; throws common::ConfigError naming `setting`.
    void parse_allowed_assets(std::string_view setting, std::string_view text);
    // Lines "<environment> <address>", '#' starts a comment; throws ConfigError.
    void load_destination_file(std::string_view setting, const std::string& path);

    // The review reason for a succeeded event, or nullopt when it may be credited.
    std::optional<std::string_view> review_reason(const TransferEvent& event) const;

private:
    std::set<std::pair<std::string, std::string>> assets_;  // upper-cased
    std::set<std::pair<std::string, std::string>> destinations_;
    bool destinations_configured_ = false;
    std::shared_ptr<const TransferScreen> screen_;  // null: no screen
};

struct Decision {
    Outcome outcome = Outcome::kDuplicate;
    std::optional<TransferRow> row;  // the row to write; nullopt = unchanged
    std::vector<OutboxRecord> outbox;
    std::optional<AnomalyRecord> anomaly;
    bool credit = false;             // a credit command is in `outbox`
    std::string_view review_reason;  // non-empty when a review record is in `outbox`
};

Decision decide(const std::optional<TransferRow>& current, const TransferEvent& event,
                const Policy& policy, const Topics& topics, std::int64_t now_ms);

// The ledger's credit command (fields in DESIGN.md), and the review record.
std::string credit_idempotency_key(std::string_view environment, std::string_view transfer_id);
std::string encode_credit_command(const TransferEvent& event);
std::string encode_review_record(const TransferEvent& event, std::string_view reason);
// A deterministic UUID (SHA-256 of `name`, version 8 layout): the same
// command always carries the same commandId, even when re-derived.
std::string name_uuid(std::string_view name);
// 1764317099000 -> "2025-11-28T08:04:59.000Z"
std::string iso8601_utc_ms(std::int64_t ms);

// Anomaly for a record that could not be parsed: the raw bytes travel in
// base64 so that any byte sequence survives JSON.
AnomalyRecord unparseable_anomaly(std::string_view environment, std::string_view topic,
                                  std::int32_t partition, std::int64_t offset,
                                  std::string_view reason, std::string_view raw);
std::string base64_encode(std::string_view bytes);

// Anomaly kinds (metric labels, the `kind` column and field).
inline constexpr std::string_view kAnomalyConflict = "conflict";
inline constexpr std::string_view kAnomalyUnparseable = "unparseable";
inline constexpr std::string_view kAnomalyUnusableIdentifier = "unusable_identifier";
inline constexpr std::string_view kAnomalyUnapplicableRecord = "unapplicable_record";
// A second succeeded whose credit fields contradict the first (both values).
inline constexpr std::string_view kAnomalySucceededFieldsDisagree = "succeeded_fields_disagree";
inline constexpr std::string_view kAnomalyRefundAfterCredit = kReasonRefundAfterCredit;
inline constexpr std::string_view kAnomalyUnknownStatusAfterCredit =
    kReasonUnknownStatusAfterCredit;

// Anomaly for a record whose `field` (key, environment, TransferId, EventId)
// fails common::check_identifier with `problem`. Nothing of the record travels
// as text but `environment` (pass it only when usable) and the problem: the
// key and the value go in base64, so the anomaly itself is always storable.
AnomalyRecord unusable_identifier_anomaly(std::string_view environment, std::string_view topic,
                                          std::int32_t partition, std::int64_t offset,
                                          std::string_view field, std::string_view problem,
                                          std::string_view key, std::string_view raw);
// Anomaly for a record the store refused on its own (a statement error when
// applied alone): `error` is the store's message, cut to printable ASCII.
AnomalyRecord unapplicable_anomaly(std::string_view environment, std::string_view transfer_id,
                                   std::string_view topic, std::int32_t partition,
                                   std::int64_t offset, std::string_view error,
                                   std::string_view key, std::string_view raw);

}  // namespace meshhook::consumer
