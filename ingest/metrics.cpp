#include "ingest/metrics.hpp"

namespace meshhook::ingest {
namespace {

constexpr std::string_view kRequests = "meshhook_ingest_requests_total";
constexpr std::string_view kRequestsHelp = "HTTP requests answered, by route and status";
constexpr std::string_view kSignatureFailures = "meshhook_ingest_signature_failures_total";
constexpr std::string_view kSignatureFailuresHelp = "Webhooks refused with 401, by reason";
constexpr std::string_view kDuration = "meshhook_ingest_request_duration_seconds";
constexpr std::string_view kDurationHelp = "Request received to response written";
constexpr std::string_view kPublished = "meshhook_ingest_published_total";
constexpr std::string_view kPublishedHelp = "Events acknowledged by Kafka and answered 200";
constexpr std::string_view kRepeated = "meshhook_ingest_repeated_deliveries_total";
constexpr std::string_view kRepeatedHelp =
    "Deliveries whose Id was acknowledged before, answered 200 without a second record";
constexpr std::string_view kDlq = "meshhook_ingest_dlq_writes_total";
constexpr std::string_view kDlqHelp = "Signed but unusable bodies written to the DLQ";
constexpr std::string_view kUnavailableName = "meshhook_ingest_unavailable_total";
constexpr std::string_view kUnavailableHelp = "Webhooks answered 503, by reason";

constexpr std::array<common::SignatureError, 3> kSignatureReasons = {
    common::SignatureError::kMissingHeader, common::SignatureError::kUndecodable,
    common::SignatureError::kMismatch};

}  // namespace

std::string_view to_string(Route r) {
    switch (r) {
        case Route::kWebhook: return "webhook";
        case Route::kHealthz: return "healthz";
        case Route::kReadyz: return "readyz";
        case Route::kMetrics: return "metrics";
        case Route::kOther: return "other";
    }
    return "other";
}

std::string_view to_string(Unavailable u) {
    switch (u) {
        case Unavailable::kQueueFull: return "queue_full";
        case Unavailable::kAckTimeout: return "ack_timeout";
        case Unavailable::kDeliveryFailed: return "delivery_failed";
        case Unavailable::kDraining: return "draining";
    }
    return "delivery_failed";
}

IngestMetrics::IngestMetrics(common::Registry& registry,
                             const std::vector<std::string>& environments)
    : registry_(registry),
      kafka_ack_(registry.histogram("meshhook_ingest_kafka_ack_duration_seconds",
                                    "Produce to delivery report")),
      in_flight_(registry.gauge("meshhook_ingest_in_flight_requests",
                                "Webhook requests waiting for Kafka")),
      queue_depth_(registry.gauge("meshhook_ingest_producer_queue_depth",
                                  "Messages awaiting a delivery report")),
      ready_(registry.gauge("meshhook_ingest_ready", "1 when /readyz answers 200")) {
    for (std::size_t r = 0; r < kRouteCount; ++r) {
        const std::string route(to_string(static_cast<Route>(r)));
        for (std::size_t i = 0; i < kStatuses.size(); ++i) {
            requests_[r][i] =
                &registry.counter(kRequests, kRequestsHelp,
                                  {{"route", route}, {"status", std::to_string(kStatuses[i])}});
        }
        durations_[r] = &registry.histogram(kDuration, kDurationHelp, {{"route", route}});
    }
    for (std::size_t u = 0; u < kUnavailableCount; ++u) {
        unavailable_[u] =
            &registry.counter(kUnavailableName, kUnavailableHelp,
                              {{"reason", std::string(to_string(static_cast<Unavailable>(u)))}});
    }
    for (const auto& name : environments) {
        PerEnvironment e;
        e.name = name;
        e.published = &registry.counter(kPublished, kPublishedHelp, {{"environment", name}});
        e.repeated = &registry.counter(kRepeated, kRepeatedHelp, {{"environment", name}});
        for (std::size_t i = 0; i < kSignatureReasons.size(); ++i) {
            e.signature_failures[i] = &registry.counter(
                kSignatureFailures, kSignatureFailuresHelp,
                {{"environment", name},
                 {"reason", std::string(common::to_string(kSignatureReasons[i]))}});
        }
        environments_.push_back(std::move(e));
    }
}

void IngestMetrics::request_answered(Route route, unsigned status, double seconds) {
    const auto r = static_cast<std::size_t>(route);
    durations_[r]->observe(seconds);
    for (std::size_t i = 0; i < kStatuses.size(); ++i) {
        if (kStatuses[i] == status) {
            requests_[r][i]->inc();
            return;
        }
    }
    // A status outside the usual set: rare, so the registry's lookup (a lock) is fine.
    registry_
        .counter(kRequests, kRequestsHelp,
                 {{"route", std::string(to_string(route))}, {"status", std::to_string(status)}})
        .inc();
}

void IngestMetrics::signature_failure(std::size_t environment, common::SignatureError reason) {
    for (std::size_t i = 0; i < kSignatureReasons.size(); ++i) {
        if (kSignatureReasons[i] == reason)
            environments_.at(environment).signature_failures[i]->inc();
    }
}

void IngestMetrics::published(std::size_t environment) {
    environments_.at(environment).published->inc();
}

void IngestMetrics::repeated(std::size_t environment) {
    environments_.at(environment).repeated->inc();
}

void IngestMetrics::dlq_write(std::size_t environment, std::string_view reason) {
    // Dead letters are rare and their reasons open-ended: looked up when they happen.
    registry_
        .counter(
            kDlq, kDlqHelp,
            {{"environment", environments_.at(environment).name}, {"reason", std::string(reason)}})
        .inc();
}

void IngestMetrics::unavailable(Unavailable reason) {
    unavailable_[static_cast<std::size_t>(reason)]->inc();
}

}  // namespace meshhook::ingest
