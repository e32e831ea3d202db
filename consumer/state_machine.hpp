#pragma once
// The pure transfer state machine: (current row, event, policy) -> decision.
// No I/O, no clock: the caller passes `now_ms`, so every ordering of events
// can be replayed in a unit test and the decision compared byte for byte.
// The records' bytes and keys are consumer/encoding.hpp's; loading a Policy
// from settings is consumer/policy_file.hpp's.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "consumer/event.hpp"
#include "consumer/policy.hpp"
#include "consumer/records.hpp"
#include "consumer/topics.hpp"

namespace meshhook::consumer {

// Numbered from 0 without gaps (arrays are indexed by it): leave the values implicit.
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

// The metric label: applied, duplicate, ... (-Wswitch makes every outcome a case).
constexpr std::string_view to_string(Outcome o) {
    switch (o) {
        case Outcome::kApplied: return "applied";
        case Outcome::kDuplicate: return "duplicate";
        case Outcome::kStale: return "stale";
        case Outcome::kUnknownStatus: return "unknown_status";
        case Outcome::kConflict: return "conflict";
        case Outcome::kUnparseable: return "unparseable";
        case Outcome::kUnusableIdentifier: return "unusable_identifier";
        case Outcome::kUnapplicable: return "unapplicable";
    }
    return "unknown";
}

// The number of outcomes, for arrays indexed by Outcome (batch stats, metrics).
inline constexpr std::size_t kOutcomeCount = 8;

// Every value below kOutcomeCount is an outcome, and the next one is not: an
// outcome added to the enum (and so to to_string) without raising the count,
// or a count raised alone, stops the build.
constexpr bool outcome_count_matches_enum() {
    for (std::size_t i = 0; i < kOutcomeCount; ++i) {
        if (to_string(static_cast<Outcome>(i)) == "unknown") return false;
    }
    return to_string(static_cast<Outcome>(kOutcomeCount)) == "unknown";
}
static_assert(outcome_count_matches_enum(), "kOutcomeCount must equal the number of Outcomes");

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

}  // namespace meshhook::consumer
