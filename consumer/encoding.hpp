#pragma once
// What the consumer writes: the JSON of credit commands, review records and
// anomalies, and their dedup keys. The decision (consumer/state_machine.hpp)
// chooses which records to emit; this file owns their bytes. Every key a
// record is deduplicated by is spelled here, once.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "consumer/event.hpp"
#include "consumer/records.hpp"

namespace meshhook::consumer {

// `credit:<environment>:<TransferId>`: the credit command's idempotency key.
std::string credit_idempotency_key(std::string_view environment, std::string_view transfer_id);
// `review:<environment>:<TransferId>`, the key of the first decision's review
// record; with `which`, `review:<environment>:<TransferId>:<which>` (a status
// after a credit: `<kind>:<EventId>`).
std::string review_key(std::string_view environment, std::string_view transfer_id,
                       std::string_view which = {});

// A credit field whose value a later succeeded delivery changes.
struct FieldChange {
    std::string_view name;
    std::string first;  // "" = the first succeeded did not carry it
    std::string later;
};

// `review-update:<environment>:<TransferId>:<digest>`: one review update per
// distinct later delivery (its EventId and the values it changed), so a
// retry is one record and anything else a new one.
std::string review_update_key(const TransferEvent& event, const std::vector<FieldChange>& changes);

// The ledger's credit command (fields in DESIGN.md), and the review record.
std::string encode_credit_command(const TransferEvent& event);
std::string encode_review_record(const TransferEvent& event, std::string_view reason);
// A review update under `key` (review_update_key): the event's fields, the
// first decision's reason, the event's own verdict ("" = none) and the changes.
std::string encode_review_update(const TransferEvent& event, std::string_view key,
                                 std::string_view first_reason, std::string_view event_reason,
                                 const std::vector<FieldChange>& changes);
// A review record about a status of `kind` after `current`'s credit.
std::string encode_after_credit_review(const TransferEvent& event, std::string_view key,
                                       std::string_view kind, const TransferRow& current);

// Anomalies about one transfer, keyed `anomaly:<kind>:<environment>:<TransferId>:<which>`.
// Equal rank, another status (succeeded vs failed); `which` is the EventId.
AnomalyRecord conflict_anomaly(const TransferRow& current, const TransferEvent& event);
// A second succeeded whose credit fields contradict the first (both values).
AnomalyRecord fields_disagree_anomaly(const TransferRow& current, const TransferEvent& event,
                                      const std::vector<FieldChange>& contradictions);
// A status of `kind` (refund or unknown) after a credit; one per `which`.
AnomalyRecord after_credit_anomaly(std::string_view kind, const TransferRow& current,
                                   const TransferEvent& event, std::string_view which);

// Anomaly for a record that could not be parsed: the raw bytes travel in
// base64 so that any byte sequence survives JSON.
AnomalyRecord unparseable_anomaly(std::string_view environment, std::string_view topic,
                                  std::int32_t partition, std::int64_t offset,
                                  std::string_view reason, std::string_view raw);
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

// A deterministic UUID (SHA-256 of `name`, version 8 layout): the same
// command always carries the same commandId, even when re-derived.
std::string name_uuid(std::string_view name);
// 1764317099000 -> "2025-11-28T08:04:59.000Z"
std::string iso8601_utc_ms(std::int64_t ms);
std::string base64_encode(std::string_view bytes);

}  // namespace meshhook::consumer
