#include "consumer/batch.hpp"

#include <chrono>
#include <set>
#include <utility>

namespace meshhook::consumer {

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

}  // namespace meshhook::consumer
