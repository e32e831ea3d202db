#pragma once
// The outbox relay: produces unsent outbox rows in id order with an
// idempotent acks=all producer, then marks them sent with the partition and
// offset of their delivery reports. Only one relay per store is active (the
// store's relay lock). Before its first send, and after any failed delivery,
// it reads its topics from the last marked offsets to the end and marks the
// rows whose `dedup-key` header is already there: a crash between the
// broker's ack and the mark does not write a command twice.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/kafka.hpp"
#include "common/wire.hpp"
#include "consumer/store.hpp"

namespace meshhook::consumer {

class ConsumerMetrics;

inline constexpr std::string_view kDedupHeader = wire::kHeaderDedupKey;

struct RelayOptions {
    std::string store_url;
    common::KafkaConfig kafka;        // bootstrap.servers and any client settings
    std::vector<std::string> topics;  // every topic the outbox writes to
    std::size_t batch = 500;
    std::chrono::milliseconds idle_wait{50};
    std::chrono::milliseconds lock_retry{500};
};

class OutboxRelay {
public:
    OutboxRelay(RelayOptions options, ConsumerMetrics* metrics);
    ~OutboxRelay();  // stop(0) if still running
    OutboxRelay(const OutboxRelay&) = delete;
    OutboxRelay& operator=(const OutboxRelay&) = delete;

    void start();
    // New rows were committed: look now rather than at the next idle tick.
    void notify();
    // Sends what is unsent (up to `drain`), then stops and joins.
    void stop(std::chrono::milliseconds drain);

    bool active() const { return active_.load(); }  // holds the relay lock
    std::uint64_t sent() const { return sent_.load(); }
    std::uint64_t recovered() const { return recovered_.load(); }  // marked by the scan

private:
    class Delivery;

    void run();
    void loop(Store& store, common::Producer& producer);
    // True when every topic was read to its end.
    bool recover(Store& store);
    // True when every row was delivered and marked.
    bool send(Store& store, common::Producer& producer, const std::vector<OutboxRow>& rows);
    void wait_for_work(std::chrono::milliseconds timeout);
    void update_backlog(Store& store);

    RelayOptions options_;
    ConsumerMetrics* metrics_;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool pending_ = false;
    std::atomic<bool> stopping_{false};
    std::chrono::steady_clock::time_point drain_deadline_{};
    std::atomic<bool> active_{false};
    std::atomic<std::uint64_t> sent_{0};
    std::atomic<std::uint64_t> recovered_{0};
    // Deliveries whose reports did not arrive before a flush deadline stay
    // alive until the producer that may still report them is gone.
    std::vector<std::unique_ptr<Delivery[]>> orphans_;
};

}  // namespace meshhook::consumer
