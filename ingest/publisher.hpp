#pragma once
// The Kafka side of a webhook: produce a Publication and learn, on the
// session's executor, whether the broker has it.

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>

#include "common/kafka.hpp"
#include "common/metrics.hpp"
#include "ingest/config.hpp"
#include "ingest/handler.hpp"

namespace meshhook::ingest {

// Waits for one delivery report. The producer calls on_delivery() where its
// reports are served (an I/O thread, see Publisher); the outcome is
// dispatched to the session's executor: run at once when that is the thread
// serving the report, posted otherwise. Whoever
// claims first answers the client: the report, or the session's deadline.
// A report after the timer is then only counted, never answered twice.
//
// Lifetime: the waiter holds itself alive from produce until its report; its
// callback holds the session until the session answers (see abandon()).
class AckWaiter final : public common::DeliveryHandler,
                        public std::enable_shared_from_this<AckWaiter> {
public:
    using Callback = std::function<void(PublishOutcome)>;

    AckWaiter(boost::asio::io_context::executor_type executor, Callback callback,
              common::Histogram& ack_duration);

    // True for exactly one caller.
    bool claim() noexcept { return !claimed_.exchange(true, std::memory_order_acq_rel); }

    // Before produce(): a report is owed from now on (the waiter keeps itself
    // alive until it comes). The report may arrive before produce() returns.
    void await_report();
    // produce() refused the record: no report will come.
    void cancel_report() { self_.reset(); }
    // The session answered without the report (its deadline claimed first):
    // drop the callback and the session it holds, so a closed connection is
    // freed now, not when the report comes (up to message.timeout.ms later).
    // On the session's executor, where complete() runs too.
    void abandon() noexcept { callback_ = nullptr; }

    void on_delivery(const common::DeliveryReport& report) noexcept override;

private:
    void complete(PublishOutcome outcome);

    boost::asio::io_context::executor_type executor_;
    Callback callback_;
    common::Histogram& ack_duration_;
    std::chrono::steady_clock::time_point produced_at_;
    std::shared_ptr<AckWaiter> self_;  // set while a report is owed
    std::atomic<bool> claimed_{false};
};

class Publisher {
public:
    // `reports_ready` is called from a librdkafka thread when delivery
    // reports are waiting; it must schedule serve_reports() on an I/O thread
    // and return at once (see common::Producer).
    Publisher(const IngestConfig& config, IngestMetrics& metrics,
              common::Producer::ReportsReady reports_ready);

    // Runs the waiting delivery reports' handlers on the calling thread.
    void serve_reports() { producer_.poll(); }

    // An immediate outcome (queue full, refused, draining), or nullopt when
    // the record is enqueued and `waiter` will hear the delivery report.
    std::optional<PublishOutcome> publish(const Publication& publication,
                                          const std::shared_ptr<AckWaiter>& waiter);

    // Refuse new records from now on (shutdown); answers are kDraining.
    void close() { closed_.store(true, std::memory_order_release); }

    // nullopt when Kafka is reachable and both topics exist with a leader
    // for every partition; else what is wrong, in one line.
    std::optional<std::string> unready(std::chrono::milliseconds timeout) {
        return producer_.unready(topics_, timeout);
    }
    int queue_depth() const { return producer_.queue_depth(); }
    // Waits up to `timeout`; then drops what is left (each still gets a
    // failed report). Returns how many records were left.
    int flush_and_purge(std::chrono::milliseconds timeout);

private:
    common::Producer producer_;
    std::vector<std::string> topics_;  // --topic and --dlq-topic
    std::atomic<bool> closed_{false};
};

common::KafkaConfig producer_config(const IngestConfig& config);

}  // namespace meshhook::ingest
