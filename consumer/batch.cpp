#include "consumer/batch.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <set>
#include <utility>
#include <vector>

#include "common/identifier.hpp"
#include "common/log.hpp"
#include "consumer/encoding.hpp"

namespace meshhook::consumer {

namespace {

void merge(BatchStats& into, const BatchStats& from) {
    for (const auto& [status, n] : from.events_by_status) {
        into.events_by_status[status] += n;
    }
    for (std::size_t i = 0; i < kOutcomeCount; ++i) {
        into.outcomes[i] += from.outcomes[i];
    }
    into.credits += from.credits;
    for (const auto& [reason, n] : from.reviews) {
        into.reviews[reason] += n;
    }
    for (const auto& [kind, n] : from.anomalies) {
        into.anomalies[kind] += n;
    }
    into.outbox_rows += from.outbox_rows;
    into.commit_seconds += from.commit_seconds;
}

bool usable(std::string_view identifier) {
    return common::check_identifier(identifier) == common::IdentifierProblem::kNone;
}

}  // namespace

BatchApplier::BatchApplier(Policy policy, Topics topics)
    : policy_(std::move(policy)), topics_(std::move(topics)) {}

BatchResult BatchApplier::apply(Store& store, std::span<const InputRecord> records,
                                std::span<const PartitionAdvance> advances, std::int64_t now_ms) {
    BatchResult result;
    BatchStats& stats = result.stats;
    auto tx = store.begin();
    for (const PartitionAdvance& a : advances) {
        if (!tx->advance_offset(a.topic, a.partition, a.expected, a.next)) {
            result.status = BatchStatus::kFenced;
            return result;  // tx rolls back on destruction
        }
    }

    using Key = std::pair<std::string, std::string>;
    std::map<Key, std::optional<TransferRow>> rows;
    std::set<Key> dirty;
    for (const InputRecord& record : records) {
        const common::ParseResult parsed = parser_.parse(record.value);
        if (const auto anomaly = check_identifiers(record, parsed)) {
            ++stats.outcomes[static_cast<std::size_t>(Outcome::kUnusableIdentifier)];
            tx->add_anomaly(*anomaly, now_ms);
            const std::string key(usable(record.key) ? record.key : "");
            if (tx->add_outbox({topics_.anomalies, key, anomaly->detail, anomaly->dedup_key},
                               now_ms)) {
                ++stats.outbox_rows;
                ++stats.anomalies[anomaly->kind];
            }
            continue;
        }
        if (!parsed.ok()) {
            ++stats.outcomes[static_cast<std::size_t>(Outcome::kUnparseable)];
            const AnomalyRecord anomaly =
                unparseable_anomaly(record.environment, record.topic, record.partition,
                                    record.offset, parsed.error.message(), record.value);
            tx->add_anomaly(anomaly, now_ms);
            if (tx->add_outbox(
                    {topics_.anomalies, std::string(record.key), anomaly.detail, anomaly.dedup_key},
                    now_ms)) {
                ++stats.outbox_rows;
                ++stats.anomalies[anomaly.kind];
            }
            continue;
        }
        const TransferEvent event = TransferEvent::from_view(parsed.event, record.environment);
        ++stats.events_by_status[std::string(common::to_string(event.status))];
        Key key{event.environment, event.transfer_id};
        auto it = rows.find(key);
        if (it == rows.end()) {
            it = rows.emplace(key, tx->find_transfer(event.environment, event.transfer_id)).first;
        }
        Decision d = decide(it->second, event, policy_, topics_, now_ms);
        ++stats.outcomes[static_cast<std::size_t>(d.outcome)];
        if (d.anomaly) {
            tx->add_anomaly(*d.anomaly, now_ms);
        }
        for (const OutboxRecord& r : d.outbox) {
            if (!tx->add_outbox(r, now_ms)) {
                continue;  // already decided once (dedup key): nothing new
            }
            ++stats.outbox_rows;
            if (r.topic == topics_.credits && d.credit) {
                ++stats.credits;
            } else if (r.topic == topics_.reviews && !d.review_reason.empty()) {
                ++stats.reviews[std::string(d.review_reason)];
            } else if (d.anomaly) {
                ++stats.anomalies[d.anomaly->kind];
            }
        }
        if (d.row) {
            it->second = std::move(*d.row);
            dirty.insert(std::move(key));
        }
    }
    for (const Key& key : dirty) {
        tx->put_transfer(*rows.at(key));
    }
    const auto started = std::chrono::steady_clock::now();
    tx->commit();
    stats.commit_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return result;
}

std::optional<AnomalyRecord> BatchApplier::check_identifiers(
    const InputRecord& record, const common::ParseResult& parsed) const {
    struct Field {
        std::string_view name;
        std::string_view value;
    };
    const std::array<Field, 4> fields{{{"key", record.key},
                                       {"environment", record.environment},
                                       {"TransferId", parsed.event.transfer_id.value},
                                       {"EventId", parsed.event.event_id.value}}};
    // The body's ids only when it parsed (an unparseable body is its own anomaly).
    for (const Field& f : std::span(fields).first(parsed.ok() ? 4 : 2)) {
        const common::IdentifierProblem problem = common::check_identifier(f.value);
        if (problem != common::IdentifierProblem::kNone) {
            // An unusable environment is not repeated (the anomaly says null).
            std::string_view environment;
            if (usable(record.environment)) {
                environment = record.environment.empty() ? kDefaultEnvironment : record.environment;
            }
            return unusable_identifier_anomaly(environment, record.topic, record.partition,
                                               record.offset, f.name, common::to_string(problem),
                                               record.key, record.value);
        }
    }
    return std::nullopt;
}

BatchResult BatchApplier::apply_part(Store& store, std::span<const InputRecord> records,
                                     Expected& expected, std::int64_t now_ms) {
    std::map<std::pair<std::string_view, std::int32_t>, std::int64_t> next;
    for (const InputRecord& r : records) {
        auto& n = next[{r.topic, r.partition}];
        n = std::max(n, r.offset + 1);
    }
    std::vector<PartitionAdvance> advances;
    advances.reserve(next.size());
    for (const auto& [tp, offset] : next) {
        advances.push_back({std::string(tp.first), tp.second, expected[tp.second], offset});
    }
    BatchResult result = apply(store, records, advances, now_ms);
    if (result.status == BatchStatus::kCommitted) {
        for (const PartitionAdvance& a : advances) {
            expected[a.partition] = a.next;
        }
    }
    return result;
}

BatchResult BatchApplier::apply_isolating(Store& store, std::span<const InputRecord> records,
                                          Expected& expected, std::int64_t now_ms) {
    std::optional<StoreError> refused;
    // The whole batch, then once more: a refusal can be transient in a way
    // the store's code does not say (e.g. a constraint raced by an operator).
    for (int attempt = 0; attempt < 2; ++attempt) {
        try {
            return apply_part(store, records, expected, now_ms);
        } catch (const StoreError& e) {
            if (e.kind() != StoreError::Kind::kStatement) {
                throw;
            }
            common::log_warn(std::string("batch refused by the store: ") + e.what());
            refused = e;
        }
    }
    common::log_warn("bisecting a batch of " + std::to_string(records.size()) +
                     " records to find the one the store refuses");
    BatchResult result;
    if (!bisect(store, records, expected, now_ms, *refused, result.stats)) {
        result.status = BatchStatus::kFenced;
    }
    return result;
}

bool BatchApplier::bisect(Store& store, std::span<const InputRecord> records, Expected& expected,
                          std::int64_t now_ms, const StoreError& error, BatchStats& total) {
    if (records.size() == 1) {
        return record_unapplicable(store, records.front(), expected, now_ms, error, total);
    }
    // In poll order: a partition's records in the first half all come before
    // its records in the second, so each half moves its offsets forward.
    const std::size_t mid = records.size() / 2;
    for (const auto half : {records.first(mid), records.subspan(mid)}) {
        try {
            const BatchResult r = apply_part(store, half, expected, now_ms);
            if (r.status == BatchStatus::kFenced) {
                return false;
            }
            merge(total, r.stats);
        } catch (const StoreError& e) {
            if (e.kind() != StoreError::Kind::kStatement) {
                throw;
            }
            if (!bisect(store, half, expected, now_ms, e, total)) {
                return false;
            }
        }
    }
    return true;
}

bool BatchApplier::record_unapplicable(Store& store, const InputRecord& record, Expected& expected,
                                       std::int64_t now_ms, const StoreError& error,
                                       BatchStats& total) {
    std::string_view environment = usable(record.environment) ? record.environment : "";
    std::string transfer_id;
    const common::ParseResult parsed = parser_.parse(record.value);
    if (parsed.ok() && usable(parsed.event.transfer_id.value)) {
        transfer_id = std::string(parsed.event.transfer_id.value);
    }
    const AnomalyRecord anomaly =
        unapplicable_anomaly(environment, transfer_id, record.topic, record.partition,
                             record.offset, error.what(), record.key, record.value);
    common::log_warn("record " + std::string(record.topic) + ":" +
                     std::to_string(record.partition) + "@" + std::to_string(record.offset) +
                     " refused by the store on its own: recorded as " + anomaly.kind);
    // If the store refuses even this (our own, storable) row, the error goes
    // up as it is and the loop retries: nothing is passed unrecorded.
    auto tx = store.begin();
    if (!tx->advance_offset(record.topic, record.partition, expected[record.partition],
                            record.offset + 1)) {
        return false;
    }
    tx->add_anomaly(anomaly, now_ms);
    const std::string key(usable(record.key) ? record.key : "");
    const bool added =
        tx->add_outbox({topics_.anomalies, key, anomaly.detail, anomaly.dedup_key}, now_ms);
    tx->commit();
    expected[record.partition] = record.offset + 1;
    ++total.outcomes[static_cast<std::size_t>(Outcome::kUnapplicable)];
    if (added) {
        ++total.outbox_rows;
        ++total.anomalies[anomaly.kind];
    }
    return true;
}

}  // namespace meshhook::consumer
