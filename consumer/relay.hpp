#pragma once
// The outbox relay: produces unsent outbox rows in id order, in Kafka
// transactions, then marks them sent with the partition and offset of their
// delivery reports. Only one relay per store is active (the store's relay
// lock), and Kafka fences the rest: every relay of one role shares a stable
// transactional.id, so a relay taking over calls init_transactions(), which
// aborts a predecessor's open transaction and makes its later writes fail.
//
// No credit twice, whatever the store remembers (consumer/README.md): after
// init_transactions() and before any send, the relay reads its topics
// (read_committed) from the store's relay positions to their end and records
// every dedup key it finds; a row whose key is already on the topic is marked
// sent, never produced again, even if the consumer creates it only later (the
// store went back in time).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
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
    // Stable for the relay role (consumer group + credit topic by default):
    // what lets Kafka fence an earlier holder.
    std::string transactional_id = "meshhook-relay";
    // A row refused by Kafka this many times alone is parked.
    int park_after = 3;
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
    // Steady-clock milliseconds of the relay thread's last sign of life (it
    // beats between every step, and every call it makes has a deadline).
    std::int64_t heartbeat_ms() const { return heartbeat_ms_.load(); }
    std::uint64_t sent() const { return sent_.load(); }
    std::uint64_t recovered() const { return recovered_.load(); }  // marked by the scan

private:
    class Delivery;
    enum class SendResult { kSent, kFailed, kRejected, kFenced };

    void run();
    void loop(Store& store);
    // A producer whose transactions are initialised (the previous holder
    // fenced), or nullptr for now.
    bool ready_producer();
    // True when every topic was read to its end.
    bool recover(Store& store);
    SendResult send(Store& store, const std::vector<OutboxRow>& rows);
    // Settles a failed transaction; kFenced when the producer must go.
    SendResult abort(const std::string& why);
    void drop_producer();
    void after_rejection(Store& store, const std::vector<OutboxRow>& rows, const std::string& why);
    void wait_for_work(std::chrono::milliseconds timeout);
    void update_backlog(Store& store);
    void beat();
    // A relay position past its partition's end: logged (a line a minute), counted.
    void past_the_end(const std::string& topic, std::int32_t partition, std::int64_t position,
                      std::int64_t end);

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
    std::atomic<std::int64_t> heartbeat_ms_{0};
    // Relay thread only.
    std::unique_ptr<common::Producer> producer_;
    bool initialised_ = false;
    // Deliveries whose reports may still come stay alive as long as the
    // producer that may report them.
    std::vector<std::unique_ptr<Delivery[]>> orphans_;
    // After a batch with a refused record: rows go one per transaction until
    // this many have been settled, so the refused one is found and parked.
    std::size_t isolate_ = 0;
    // row id -> (refused attempts alone, when the first was)
    std::map<std::int64_t, std::pair<int, std::chrono::steady_clock::time_point>> refusals_;
    std::string last_refusal_;
    std::optional<std::chrono::steady_clock::time_point> last_past_the_end_log_;
};

}  // namespace meshhook::consumer
