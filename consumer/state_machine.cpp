#include "consumer/state_machine.hpp"

#include <array>
#include <cctype>
#include <string>
#include <utility>

#include "consumer/encoding.hpp"

namespace meshhook::consumer {

namespace {

using common::TransferStatus;

TransferRow new_row(const TransferEvent& event, std::int64_t now_ms) {
    TransferRow row;
    row.environment = event.environment;
    row.transfer_id = event.transfer_id;
    row.first_seen_ms = now_ms;
    row.last_seen_ms = now_ms;
    return row;
}

void copy_credit_fields(TransferRow& row, const TransferEvent& event) {
    row.user_id = event.user_id.value_or("");
    row.transaction_id = event.transaction_id.value_or("");
    row.token = event.token.value_or("");
    row.chain = event.chain.value_or("");
    row.amount = event.destination_amount.value_or("");
    row.destination_address = event.destination_address.value_or("");
    row.tx_hash = event.tx_hash.value_or("");
    row.source_account_provider = event.source_account_provider.value_or("");
    row.credit_event_id = event.event_id;
}

// The credit fields two succeeded deliveries of one transfer must agree on.
struct CreditField {
    std::string_view name;
    std::string TransferRow::*row;
    std::optional<std::string> TransferEvent::*event;
};
constexpr std::array<CreditField, 5> kCreditFields{{
    {"userId", &TransferRow::user_id, &TransferEvent::user_id},
    {"token", &TransferRow::token, &TransferEvent::token},
    {"chain", &TransferRow::chain, &TransferEvent::chain},
    {"amount", &TransferRow::amount, &TransferEvent::destination_amount},
    {"destinationAddress", &TransferRow::destination_address, &TransferEvent::destination_address},
}};

// Fields the later event carries with another value than the row's (the
// first succeeded's). Compared byte for byte: "250.0" and "250.00" differ,
// as they would to a ledger comparing text.
std::vector<FieldChange> changed_fields(const TransferRow& row, const TransferEvent& event) {
    std::vector<FieldChange> out;
    for (const CreditField& f : kCreditFields) {
        const std::optional<std::string>& later = event.*(f.event);
        if (later && !later->empty() && *later != row.*(f.row)) {
            out.push_back({f.name, row.*(f.row), *later});
        }
    }
    return out;
}

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

void emit_anomaly(Decision& d, AnomalyRecord a, const Topics& topics) {
    d.outbox.push_back({topics.anomalies, a.transfer_id, a.detail, a.dedup_key});
    d.anomaly = std::move(a);
}

// A second succeeded for a transfer whose first decision is made: that
// decision stands. Contradicting values are an anomaly; on a transfer in
// review, a delivery that adds or changes a field is sent to the review topic.
void later_succeeded(Decision& d, const TransferRow& current, const TransferEvent& event,
                     const Policy& policy, const Topics& topics) {
    const std::vector<FieldChange> changes = changed_fields(current, event);
    if (changes.empty()) {
        return;  // a retry, or a delivery that carries less: nothing new
    }
    std::vector<FieldChange> contradictions;
    for (const FieldChange& c : changes) {
        if (!c.first.empty()) {
            contradictions.push_back(c);
        }
    }
    if (!contradictions.empty()) {
        emit_anomaly(d, fields_disagree_anomaly(current, event, contradictions), topics);
    }
    if (!current.credited && !current.review_reason.empty()) {
        const std::string key = review_update_key(event, changes);
        const auto verdict = policy.review_reason(event);
        d.outbox.push_back({topics.reviews, event.transfer_id,
                            encode_review_update(event, key, current.review_reason,
                                                 verdict ? *verdict : std::string_view(), changes),
                            key});
        d.review_reason = kReasonReviewUpdate;
    }
}

// A status beyond the four for a transfer already credited: the credit
// stands (nothing here ever debits); a human hears of it twice over, as an
// anomaly and as a review record (one each per EventId).
void unknown_after_credit(Decision& d, const TransferRow& current, const TransferEvent& event,
                          const Topics& topics) {
    const bool refund = lower(event.status_text).starts_with("refund");
    const std::string_view kind =
        refund ? kAnomalyRefundAfterCredit : kAnomalyUnknownStatusAfterCredit;
    const std::string which =
        event.event_id.empty() ? name_uuid(event.status_text) : event.event_id;
    emit_anomaly(d, after_credit_anomaly(kind, current, event, which), topics);

    const std::string key =
        review_key(event.environment, event.transfer_id, std::string(kind) + ":" + which);
    d.outbox.push_back({topics.reviews, event.transfer_id,
                        encode_after_credit_review(event, key, kind, current), key});
    d.review_reason = kind;
}

}  // namespace

Decision decide(const std::optional<TransferRow>& current, const TransferEvent& event,
                const Policy& policy, const Topics& topics, std::int64_t now_ms) {
    Decision d;
    if (event.status == TransferStatus::kUnknown) {
        // Kept on the row for operators, counted, never credited, never advances.
        TransferRow row = current ? *current : new_row(event, now_ms);
        row.last_unknown_status = event.status_text;
        row.last_event_id = event.event_id;
        row.last_seen_ms = now_ms;
        d.outcome = Outcome::kUnknownStatus;
        if (current && current->credited) {
            unknown_after_credit(d, *current, event, topics);
        }
        d.row = std::move(row);
        return d;
    }

    const int rank = common::status_rank(event.status);
    const std::string_view status = common::to_string(event.status);
    if (current && current->rank > 0) {
        if (rank < current->rank) {
            d.outcome = Outcome::kStale;
            return d;
        }
        if (rank == current->rank) {
            if (current->status == status) {
                d.outcome = Outcome::kDuplicate;
                if (event.status == TransferStatus::kSucceeded) {
                    later_succeeded(d, *current, event, policy, topics);
                }
                return d;
            }
            // Equal rank and a different status: succeeded vs failed.
            d.outcome = Outcome::kConflict;
            emit_anomaly(d, conflict_anomaly(*current, event), topics);
            TransferRow row = *current;
            row.conflict_status = std::string(status);
            row.last_seen_ms = now_ms;
            d.row = std::move(row);
            return d;
        }
    }

    TransferRow row = current ? *current : new_row(event, now_ms);
    row.status = std::string(status);
    row.rank = rank;
    row.last_event_id = event.event_id;
    row.last_seen_ms = now_ms;
    d.outcome = Outcome::kApplied;
    if (event.status == TransferStatus::kSucceeded) {
        copy_credit_fields(row, event);
        if (const auto reason = policy.review_reason(event)) {
            row.review_reason = std::string(*reason);
            d.review_reason = *reason;
            d.outbox.push_back({topics.reviews, event.transfer_id,
                                encode_review_record(event, *reason),
                                review_key(event.environment, event.transfer_id)});
        } else {
            row.credited = true;
            d.credit = true;
            d.outbox.push_back({topics.credits, event.transfer_id, encode_credit_command(event),
                                credit_idempotency_key(event.environment, event.transfer_id)});
        }
    }
    d.row = std::move(row);
    return d;
}

}  // namespace meshhook::consumer
