#pragma once
// Every metric of meshhook-consumer, declared once. Names and labels are part
// of the interface (README.md "Metrics": dashboards and alerts use them).

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/metrics.hpp"
#include "consumer/batch.hpp"

namespace meshhook::consumer {

class ConsumerMetrics {
public:
    explicit ConsumerMetrics(common::Registry& registry);

    // Counts a committed batch (never a rolled-back one: no double counting).
    void record(const BatchStats& stats, double apply_seconds);
    void outbox_sent(std::string_view topic, std::uint64_t n);
    void outbox_state(std::int64_t backlog, double oldest_age_seconds, std::int64_t parked);
    // The relay's own events: rows found already on their topic (not sent
    // again), takeovers that fenced an earlier producer, and being fenced.
    void outbox_found_on_topic(std::uint64_t n) { found_on_topic_.inc(n); }
    void relay_fenced() { fenced_.inc(); }
    void relay_transaction_aborted() { aborted_.inc(); }
    // A recovery scan that found a relay position past its partition's end.
    void relay_position_past_end() { past_end_.inc(); }
    void lag(std::string_view topic, std::int32_t partition, std::int64_t lag);

    // Reconciliation with Mesh's API, per environment (consumer/reconcile.hpp).
    void reconcile_environment(std::string_view environment);  // series at zero
    void reconcile_pass(std::string_view environment, bool ok);
    void reconcile_api_call(std::string_view environment, std::string_view outcome);
    void reconcile_found(std::string_view environment, std::string_view kind, std::uint64_t n);
    void reconcile_synthesized(std::string_view environment, std::uint64_t n);
    void reconcile_succeeded(std::string_view environment, double unix_seconds);

    common::Gauge& ready() { return ready_; }
    common::Registry& registry() { return registry_; }

private:
    common::Registry& registry_;
    common::Counter& credits_;
    common::Gauge& backlog_;
    common::Gauge& oldest_age_;
    common::Gauge& parked_;
    common::Counter& found_on_topic_;
    common::Counter& fenced_;
    common::Counter& aborted_;
    common::Counter& past_end_;
    common::Histogram& apply_duration_;
    common::Histogram& commit_duration_;
    common::Gauge& ready_;
};

}  // namespace meshhook::consumer
