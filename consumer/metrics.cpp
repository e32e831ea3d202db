#include "consumer/metrics.hpp"

namespace meshhook::consumer {

namespace {
constexpr std::string_view kEvents = "meshhook_consumer_events_total";
constexpr std::string_view kEventsHelp = "Events consumed, by transfer status.";
constexpr std::string_view kOutcomes = "meshhook_consumer_event_outcomes_total";
constexpr std::string_view kOutcomesHelp =
    "Events by what they did: applied, duplicate, stale, unknown_status, conflict, unparseable, "
    "unusable_identifier, unapplicable.";
constexpr std::string_view kReviews = "meshhook_consumer_reviews_total";
constexpr std::string_view kReviewsHelp = "Review records written, by reason.";
constexpr std::string_view kAnomalies = "meshhook_consumer_anomalies_total";
constexpr std::string_view kAnomaliesHelp = "Anomaly records written, by kind.";
constexpr std::string_view kSent = "meshhook_consumer_outbox_sent_total";
constexpr std::string_view kSentHelp = "Outbox rows delivered, by topic.";
constexpr std::string_view kLag = "meshhook_consumer_lag";
constexpr std::string_view kLagHelp =
    "Records between the consumer's position and the partition end.";
}  // namespace

ConsumerMetrics::ConsumerMetrics(common::Registry& registry)
    : registry_(registry),
      credits_(registry.counter("meshhook_consumer_credits_total",
                                "Credit commands written to the outbox.")),
      backlog_(registry.gauge("meshhook_consumer_outbox_backlog", "Unsent outbox rows.")),
      oldest_age_(registry.gauge("meshhook_consumer_outbox_oldest_unsent_age_seconds",
                                 "Age of the oldest unsent outbox row (0 when none).")),
      parked_(registry.gauge("meshhook_consumer_outbox_parked",
                             "Outbox rows the relay gave up on (an operator must act).")),
      found_on_topic_(registry.counter(
          "meshhook_consumer_outbox_found_on_topic_total",
          "Outbox rows not sent because their dedup key was already on the topic.")),
      fenced_(registry.counter("meshhook_consumer_relay_fenced_total",
                               "Times this relay's producer was fenced by another relay.")),
      aborted_(registry.counter("meshhook_consumer_relay_transactions_aborted_total",
                                "Relay transactions aborted (then scanned and sent again).")),
      apply_duration_(registry.histogram("meshhook_consumer_batch_apply_duration_seconds",
                                         "One batch applied, commit included.")),
      commit_duration_(registry.histogram("meshhook_consumer_store_commit_duration_seconds",
                                          "The store commit alone.")),
      ready_(registry.gauge("meshhook_consumer_ready", "1 when /readyz answers 200.")) {
    // Series that dashboards expect exist from the start, at zero.
    for (const std::string_view status :
         {"pending", "processing", "succeeded", "failed", "unknown"}) {
        registry.counter(kEvents, kEventsHelp, {{"status", std::string(status)}});
    }
    for (std::size_t i = 0; i < kOutcomeCount; ++i) {
        registry.counter(kOutcomes, kOutcomesHelp,
                         {{"outcome", std::string(to_string(static_cast<Outcome>(i)))}});
    }
    for (const std::string_view reason : {kReasonAssetNotAllowed, kReasonDestinationNotAllowed,
                                          kReasonAmountMissing, kReasonAmountNotPositive}) {
        registry.counter(kReviews, kReviewsHelp, {{"reason", std::string(reason)}});
    }
    for (const std::string_view kind : {kAnomalyConflict, kAnomalyUnparseable,
                                        kAnomalyUnusableIdentifier, kAnomalyUnapplicableRecord}) {
        registry.counter(kAnomalies, kAnomaliesHelp, {{"kind", std::string(kind)}});
    }
}

void ConsumerMetrics::record(const BatchStats& stats, double apply_seconds) {
    for (const auto& [status, n] : stats.events_by_status) {
        registry_.counter(kEvents, kEventsHelp, {{"status", status}}).inc(n);
    }
    for (std::size_t i = 0; i < kOutcomeCount; ++i) {
        if (stats.outcomes[i] != 0) {
            registry_
                .counter(kOutcomes, kOutcomesHelp,
                         {{"outcome", std::string(to_string(static_cast<Outcome>(i)))}})
                .inc(stats.outcomes[i]);
        }
    }
    credits_.inc(stats.credits);
    for (const auto& [reason, n] : stats.reviews) {
        registry_.counter(kReviews, kReviewsHelp, {{"reason", reason}}).inc(n);
    }
    for (const auto& [kind, n] : stats.anomalies) {
        registry_.counter(kAnomalies, kAnomaliesHelp, {{"kind", kind}}).inc(n);
    }
    apply_duration_.observe(apply_seconds);
    commit_duration_.observe(stats.commit_seconds);
}

void ConsumerMetrics::outbox_sent(std::string_view topic, std::uint64_t n) {
    registry_.counter(kSent, kSentHelp, {{"topic", std::string(topic)}}).inc(n);
}

void ConsumerMetrics::outbox_state(std::int64_t backlog, double oldest_age_seconds,
                                   std::int64_t parked) {
    backlog_.set(static_cast<double>(backlog));
    parked_.set(static_cast<double>(parked));
    oldest_age_.set(oldest_age_seconds);
}

void ConsumerMetrics::lag(std::string_view topic, std::int32_t partition, std::int64_t value) {
    registry_
        .gauge(kLag, kLagHelp,
               {{"topic", std::string(topic)}, {"partition", std::to_string(partition)}})
        .set(static_cast<double>(value));
}

}  // namespace meshhook::consumer
