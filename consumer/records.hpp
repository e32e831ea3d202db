#pragma once
// The rows the store keeps and the vocabulary they carry (review reasons,
// anomaly kinds). The store owns these types; the decision fills them.

#include <cstdint>
#include <string>
#include <string_view>

namespace meshhook::consumer {

// The environment of a record without the header.
inline constexpr std::string_view kDefaultEnvironment = "production";

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

}  // namespace meshhook::consumer
