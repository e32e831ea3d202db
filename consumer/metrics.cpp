#include "consumer/metrics.hpp"

#include <array>

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
constexpr std::string_view kPasses = "meshhook_consumer_reconcile_passes_total";
constexpr std::string_view kPassesHelp = "Reconciliation passes, by environment and outcome.";
constexpr std::string_view kApiCalls = "meshhook_consumer_reconcile_api_calls_total";
constexpr std::string_view kApiCallsHelp =
    "Calls to Mesh's API by environment and outcome: ok, rate_limited, server_error, "
    "failure_envelope, unauthorized, client_error, transport_error, bad_response.";
constexpr std::string_view kFound = "meshhook_consumer_reconcile_transfers_found_total";
constexpr std::string_view kFoundHelp =
    "Transfers where Mesh and the store disagree: missing (never heard of) or stale (not final "
    "here, final at Mesh), both acted on; amount_differs and failed_at_mesh (credited here), "
    "for a human.";
constexpr std::string_view kSynthesized = "meshhook_consumer_reconcile_events_synthesized_total";
constexpr std::string_view kSynthesizedHelp =
    "Synthesized events acknowledged by Kafka on the input topic.";
constexpr std::string_view kLastSuccess =
    "meshhook_consumer_reconcile_last_success_timestamp_seconds";
constexpr std::string_view kLastSuccessHelp =
    "Unix time of the last reconciliation pass that completed (0 before one).";
constexpr std::array<std::string_view, 8> kApiOutcomes = {
    "ok",           "rate_limited", "server_error",    "failure_envelope",
    "unauthorized", "client_error", "transport_error", "bad_response"};
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
      past_end_(registry.counter(
          "meshhook_consumer_relay_positions_past_end_total",
          "Recovery scans refused because a relay position was past its partition's end (an "
          "output topic was recreated); nothing is sent until an operator resets it.")),
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
    for (const std::string_view reason : kReviewReasons) {
        registry.counter(kReviews, kReviewsHelp, {{"reason", std::string(reason)}});
    }
    for (const std::string_view kind :
         {kAnomalyConflict, kAnomalyUnparseable, kAnomalyUnusableIdentifier,
          kAnomalyUnapplicableRecord, kAnomalySucceededFieldsDisagree, kAnomalyRefundAfterCredit,
          kAnomalyUnknownStatusAfterCredit}) {
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

void ConsumerMetrics::reconcile_environment(std::string_view environment) {
    const std::string env(environment);
    for (const std::string_view outcome : {"ok", "failed"}) {
        registry_.counter(kPasses, kPassesHelp,
                          {{"environment", env}, {"outcome", std::string(outcome)}});
    }
    for (const std::string_view outcome : kApiOutcomes) {
        registry_.counter(kApiCalls, kApiCallsHelp,
                          {{"environment", env}, {"outcome", std::string(outcome)}});
    }
    for (const std::string_view kind : {"missing", "stale", "amount_differs", "failed_at_mesh"}) {
        registry_.counter(kFound, kFoundHelp, {{"environment", env}, {"kind", std::string(kind)}});
    }
    registry_.counter(kSynthesized, kSynthesizedHelp, {{"environment", env}});
    registry_.gauge(kLastSuccess, kLastSuccessHelp, {{"environment", env}});
}

void ConsumerMetrics::reconcile_pass(std::string_view environment, bool ok) {
    registry_
        .counter(kPasses, kPassesHelp,
                 {{"environment", std::string(environment)}, {"outcome", ok ? "ok" : "failed"}})
        .inc();
}

void ConsumerMetrics::reconcile_api_call(std::string_view environment, std::string_view outcome) {
    registry_
        .counter(kApiCalls, kApiCallsHelp,
                 {{"environment", std::string(environment)}, {"outcome", std::string(outcome)}})
        .inc();
}

void ConsumerMetrics::reconcile_found(std::string_view environment, std::string_view kind,
                                      std::uint64_t n) {
    registry_
        .counter(kFound, kFoundHelp,
                 {{"environment", std::string(environment)}, {"kind", std::string(kind)}})
        .inc(n);
}

void ConsumerMetrics::reconcile_synthesized(std::string_view environment, std::uint64_t n) {
    registry_.counter(kSynthesized, kSynthesizedHelp, {{"environment", std::string(environment)}})
        .inc(n);
}

void ConsumerMetrics::reconcile_succeeded(std::string_view environment, double unix_seconds) {
    registry_.gauge(kLastSuccess, kLastSuccessHelp, {{"environment", std::string(environment)}})
        .set(unix_seconds);
}

}  // namespace meshhook::consumer
