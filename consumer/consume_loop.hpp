#pragma once
// The consume loop: polls mesh.transfer-events in a consumer group, applies
// each batch to the store in one transaction, and keeps the store (not
// Kafka) as the authority on offsets: on assignment it seeks to the store's
// offsets; after each store commit it commits the same offsets to Kafka
// (async) so that ordinary lag tools keep working.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/kafka.hpp"
#include "consumer/batch.hpp"
#include "consumer/store.hpp"

namespace meshhook::consumer {

class ConsumerMetrics;

// Thrown by ConsumeLoop::run when an assigned partition's stored offset is
// past its end (the input topic was recreated): one line saying so and what
// to do. Consuming on would skip every record below the stored offset.
class PastTheEndError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct LoopOptions {
    common::KafkaConfig kafka;  // bootstrap.servers, group.id, session.timeout.ms, ...
    Topics topics;
    std::size_t batch_max = 500;
    std::chrono::milliseconds batch_wait{100};
};

class ConsumeLoop final : public common::RebalanceHandler {
public:
    // `on_commit` runs after every committed batch that wrote outbox rows.
    ConsumeLoop(LoopOptions options, Store& store, BatchApplier& applier, ConsumerMetrics* metrics,
                std::function<void()> on_commit);
    ~ConsumeLoop();
    ConsumeLoop(const ConsumeLoop&) = delete;
    ConsumeLoop& operator=(const ConsumeLoop&) = delete;

    void subscribe();
    // Until `stop` is set; the batch in hand is applied before returning.
    void run(const std::atomic<bool>& stop);
    // Leaves the group cleanly.
    void close();

    bool store_healthy() const { return store_ok_.load(); }
    // Steady-clock milliseconds of the loop's last poll or applied batch.
    std::int64_t heartbeat_ms() const { return heartbeat_ms_.load(); }
    std::uint64_t committed_batches() const { return committed_.load(); }
    std::uint64_t fenced_batches() const { return fenced_.load(); }

    void on_assign(common::Consumer& consumer,
                   const std::vector<common::TopicPartition>& partitions) override;
    void on_revoke(common::Consumer& consumer,
                   const std::vector<common::TopicPartition>& partitions) override;

private:
    void beat();
    void collect(const std::atomic<bool>& stop);
    void apply();
    // Re-reads the store's offsets and seeks every assigned partition to them.
    bool reseek();
    void assign_from_store(common::Consumer& consumer,
                           const std::vector<common::TopicPartition>& partitions);
    void update_lag();
    // A fetch offset the partition does not hold (reported, since the loop's
    // consumer runs with auto.offset.reset=error; Kafka answers so only past
    // the log end, never for a high watermark that lags after a leader
    // change): past the partition's end stops the loop (stop_reason_); below
    // its start (retention) seeks to the start.
    void out_of_range(std::int32_t partition);

    LoopOptions options_;
    Store& store_;
    BatchApplier& applier_;
    ConsumerMetrics* metrics_;
    std::function<void()> on_commit_;
    std::unique_ptr<common::Consumer> consumer_;
    // Input partition -> the next offset the store holds (nullopt = no row).
    std::map<std::int32_t, std::optional<std::int64_t>> expected_;
    std::vector<common::Message> batch_;
    bool needs_reseek_ = false;
    std::string stop_reason_;  // non-empty: run() throws PastTheEndError with it
    std::atomic<bool> store_ok_{true};
    std::atomic<std::int64_t> heartbeat_ms_{0};
    std::atomic<std::uint64_t> committed_{0};
    std::atomic<std::uint64_t> fenced_{0};
};

}  // namespace meshhook::consumer
