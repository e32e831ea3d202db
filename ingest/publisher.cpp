#include "ingest/publisher.hpp"

#include <boost/asio/dispatch.hpp>

#include "common/log.hpp"

namespace meshhook::ingest {

AckWaiter::AckWaiter(boost::asio::io_context::executor_type executor, Callback callback,
                     common::Histogram& ack_duration)
    : executor_(std::move(executor)), callback_(std::move(callback)), ack_duration_(ack_duration) {}

void AckWaiter::await_report() {
    produced_at_ = std::chrono::steady_clock::now();
    self_ = shared_from_this();
}

void AckWaiter::on_delivery(const common::DeliveryReport& report) noexcept {
    ack_duration_.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - produced_at_).count());
    // Moved out first: from here on the posted handler is what keeps us alive.
    auto self = std::move(self_);
    if (!self) return;
    const auto outcome =
        report.ok() ? PublishOutcome::kAcknowledged : PublishOutcome::kDeliveryFailed;
    try {
        boost::asio::dispatch(executor_, [self, outcome] { self->complete(outcome); });
    } catch (...) {
        // Only allocation can fail here. Nobody will answer from this report;
        // the session's deadline still does, as 503.
    }
}

void AckWaiter::complete(PublishOutcome outcome) {
    if (claim()) {
        callback_(outcome);
    } else if (outcome == PublishOutcome::kAcknowledged) {
        common::log_debug("delivery report after the ack timeout: stored, answered 503 earlier");
    }
    // The session reference dies with the waiter, not before: release it now
    // so a closed connection is freed even while this handler is still queued.
    callback_ = nullptr;
}

common::KafkaConfig producer_config(const IngestConfig& config) {
    common::KafkaConfig kafka{
        {"bootstrap.servers", config.brokers},
        {"client.id", "meshhook-ingest"},
        // A 200 means the record survives a broker loss, and retries never duplicate it.
        {"enable.idempotence", "true"},
        {"acks", "all"},
        // Each request waits for its own ack, so batching only adds latency
        // under load; 1 ms still coalesces concurrent requests.
        {"linger.ms", std::to_string(config.kafka_linger.count())},
        // Bounds how long a record answered 503 may still be delivered late.
        {"message.timeout.ms", std::to_string(config.kafka_message_timeout.count())},
        // librdkafka backs off up to 10 s between reconnects by default: after a
        // broker outage that is 10 s of 503s with the broker already back.
        {"reconnect.backoff.max.ms", "1000"},
        // Bounds memory and the backlog during an outage; a full queue is
        // back-pressure, answered 503 at once rather than after the ack timeout.
        {"queue.buffering.max.messages", std::to_string(config.max_queued_messages)},
        {"queue.buffering.max.kbytes", std::to_string(config.max_queued_kbytes)},
    };
    // Connection and security properties only (load_client_properties refuses
    // the rest), so none of the settings above can be overridden.
    kafka.insert(kafka.end(), config.kafka_properties.begin(), config.kafka_properties.end());
    return kafka;
}

Publisher::Publisher(const IngestConfig& config, IngestMetrics& metrics,
                     common::Producer::ReportsReady reports_ready)
    : producer_(producer_config(config), std::move(reports_ready)),
      topics_{config.topic, config.dlq_topic} {
    metrics.registry().add_collector(
        [this, &metrics] { metrics.producer_queue_depth().set(producer_.queue_depth()); });
}

std::optional<PublishOutcome> Publisher::publish(const Publication& pub,
                                                 const std::shared_ptr<AckWaiter>& waiter) {
#ifdef MESHHOOK_BENCH_IMMEDIATE_ACK
    // Benchmarks only (bench_ingest_immediate_ack, benchmarks/per_core.sh):
    // answers 200 for nothing stored. Never built into meshhook-ingest.
    return PublishOutcome::kAcknowledged;
#endif
    if (closed_.load(std::memory_order_acquire)) return PublishOutcome::kDraining;
    std::vector<common::Header> headers;
    headers.reserve(pub.headers.size());
    for (const auto& [k, v] : pub.headers) headers.push_back({k, v});
    waiter->await_report();
    const auto status = producer_.produce(pub.topic, pub.key, pub.value, headers, waiter.get());
    if (status == common::ProduceStatus::kEnqueued) return std::nullopt;
    waiter->cancel_report();
    // The 503 that follows is logged with its reason; this says which refusal it was.
    common::log_debug(std::string("produce refused: ").append(common::to_string(status)));
    return status == common::ProduceStatus::kQueueFull ? PublishOutcome::kQueueFull
                                                       : PublishOutcome::kDeliveryFailed;
}

int Publisher::flush_and_purge(std::chrono::milliseconds timeout) {
    const int left = producer_.flush(timeout);
    if (left > 0) {
        // Producer's destructor would wait another 5 s; these were answered 503
        // already (Mesh retries them), so there is nothing to wait for.
        producer_.purge();
        producer_.flush(std::chrono::milliseconds(100));
    }
    return left;
}

}  // namespace meshhook::ingest
