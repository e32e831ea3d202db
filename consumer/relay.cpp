#include "consumer/relay.hpp"

#include <map>
#include <utility>

#include "common/log.hpp"
#include "consumer/metrics.hpp"

namespace meshhook::consumer {

namespace {

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

constexpr auto kFlushTimeout = std::chrono::seconds(30);
constexpr auto kScanTimeout = std::chrono::seconds(60);
constexpr auto kMetadataTimeout = std::chrono::seconds(5);

}  // namespace

// One produced row's delivery report, written on the producer's poller thread.
class OutboxRelay::Delivery final : public common::DeliveryHandler {
public:
    void on_delivery(const common::DeliveryReport& report) noexcept override {
        error_ = report.error_code;
        partition_ = report.partition;
        offset_ = report.offset;
        done_.store(true, std::memory_order_release);
    }
    bool done() const { return done_.load(std::memory_order_acquire); }
    bool ok() const { return done() && error_ == 0; }
    std::int32_t partition() const { return partition_; }
    std::int64_t offset() const { return offset_; }

private:
    std::atomic<bool> done_{false};
    int error_ = 0;
    std::int32_t partition_ = -1;
    std::int64_t offset_ = -1;
};

OutboxRelay::OutboxRelay(RelayOptions options, ConsumerMetrics* metrics)
    : options_(std::move(options)), metrics_(metrics) {}

OutboxRelay::~OutboxRelay() {
    if (thread_.joinable()) {
        stop(std::chrono::milliseconds(0));
    }
}

void OutboxRelay::start() {
    thread_ = std::thread([this] { run(); });
}

void OutboxRelay::notify() {
    {
        std::lock_guard lock(mutex_);
        pending_ = true;
    }
    wake_.notify_one();
}

void OutboxRelay::stop(std::chrono::milliseconds drain) {
    {
        std::lock_guard lock(mutex_);
        drain_deadline_ = std::chrono::steady_clock::now() + drain;
        stopping_.store(true);
        pending_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) {
        thread_.join();
    }
}

void OutboxRelay::wait_for_work(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, timeout, [this] { return pending_; });
    pending_ = false;
}

void OutboxRelay::run() {
    while (true) {
        try {
            auto store = open_store(options_.store_url);
            common::Producer producer(options_.kafka);
            loop(*store, producer);
            active_.store(false);
            return;
        } catch (const std::exception& e) {
            active_.store(false);
            common::log_warn(std::string("outbox relay: ") + e.what() + "; retrying");
        }
        if (stopping_.load() && std::chrono::steady_clock::now() >= drain_deadline_) {
            return;
        }
        wait_for_work(std::chrono::milliseconds(1000));
    }
}

void OutboxRelay::loop(Store& store, common::Producer& producer) {
    bool need_scan = true;
    auto next_backlog_update = std::chrono::steady_clock::now();
    while (true) {
        const bool stopping = stopping_.load();
        if (stopping && std::chrono::steady_clock::now() >= drain_deadline_) {
            return;
        }
        if (!store.try_acquire_relay_lock()) {
            if (active_.exchange(false)) {
                common::log_warn("outbox relay: lost the relay lock");
            }
            if (stopping) {
                return;
            }
            wait_for_work(options_.lock_retry);
            continue;
        }
        if (!active_.exchange(true)) {
            common::log_info("outbox relay: active");
            need_scan = true;
        }
        if (need_scan) {
            if (!recover(store)) {
                if (stopping) {
                    return;
                }
                wait_for_work(std::chrono::milliseconds(1000));
                continue;
            }
            need_scan = false;
        }
        if (std::chrono::steady_clock::now() >= next_backlog_update) {
            update_backlog(store);
            next_backlog_update = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        }
        const std::vector<OutboxRow> rows = store.unsent(options_.batch);
        if (rows.empty()) {
            update_backlog(store);
            if (stopping) {
                return;
            }
            wait_for_work(options_.idle_wait);
            continue;
        }
        if (!send(store, producer, rows)) {
            need_scan = true;  // some may be on the topic without a report: look first
            wait_for_work(std::chrono::milliseconds(500));
        }
    }
}

bool OutboxRelay::send(Store& store, common::Producer& producer,
                       const std::vector<OutboxRow>& rows) {
    auto deliveries = std::make_unique<Delivery[]>(rows.size());
    std::size_t enqueued = 0;
    for (; enqueued < rows.size(); ++enqueued) {
        const OutboxRow& row = rows[enqueued];
        const std::vector<common::Header> headers{{kDedupHeader, row.dedup_key}};
        common::ProduceStatus status =
            producer.produce(row.topic, row.key, row.payload, headers, &deliveries[enqueued]);
        if (status == common::ProduceStatus::kQueueFull) {
            producer.flush(std::chrono::milliseconds(1000));
            status =
                producer.produce(row.topic, row.key, row.payload, headers, &deliveries[enqueued]);
        }
        if (status != common::ProduceStatus::kEnqueued) {
            common::log_warn("outbox relay: produce to " + row.topic +
                             " failed: " + std::string(common::to_string(status)));
            break;
        }
    }
    int remaining = producer.flush(kFlushTimeout);
    // Never scan or resend while a send of ours may still land: wait for
    // every report (message.timeout.ms bounds it), unless shutting down.
    while (remaining > 0 && !stopping_.load()) {
        remaining = producer.flush(std::chrono::seconds(5));
    }
    // flush() returns when the queue is empty, which can be a moment before
    // the last report's handler has run on the poller thread.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    for (std::size_t i = 0; i < enqueued && remaining == 0; ++i) {
        while (!deliveries[i].done() && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::yield();
        }
    }
    bool all_ok = enqueued == rows.size() && remaining == 0;
    for (std::size_t i = 0; i < enqueued && all_ok; ++i) {
        all_ok = deliveries[i].ok();
    }
    std::vector<SentMark> marks;
    std::map<std::string_view, std::uint64_t> per_topic;
    if (all_ok) {
        for (std::size_t i = 0; i < rows.size(); ++i) {
            marks.push_back({rows[i].id, deliveries[i].partition(), deliveries[i].offset()});
            ++per_topic[rows[i].topic];
        }
    } else {
        if (remaining > 0) {
            orphans_.push_back(std::move(deliveries));  // reports may still come
        }
        // Mark nothing from a batch with a failure: the scan that follows
        // starts at the last marked offsets and so finds every row of this
        // batch that did land, whatever its partition.
        common::log_warn("outbox relay: a delivery of " + std::to_string(rows.size()) +
                         " rows failed; scanning the topics before retrying");
        return false;
    }
    store.mark_sent(marks, wall_ms());
    sent_.fetch_add(marks.size());
    if (metrics_ != nullptr) {
        for (const auto& [topic, n] : per_topic) {
            metrics_->outbox_sent(topic, n);
        }
    }
    return true;
}

bool OutboxRelay::recover(Store& store) {
    common::KafkaConfig config = options_.kafka;
    config.emplace_back("enable.partition.eof", "false");
    // librdkafka refuses assign() without a group.id; this consumer never
    // joins the group (no subscribe) and never commits.
    config.emplace_back("group.id", "meshhook-outbox-relay-scan");
    common::Consumer consumer(config);
    std::vector<common::TopicPartition> assignment;
    std::map<std::pair<std::string, std::int32_t>, std::int64_t> ends;
    for (const std::string& topic : options_.topics) {
        const auto partitions = consumer.partition_count(topic, kMetadataTimeout);
        if (!partitions) {
            common::log_warn("outbox relay: no metadata for " + topic + "; scan postponed");
            return false;
        }
        const auto last = store.last_sent_offsets(topic);
        for (std::int32_t p = 0; p < *partitions; ++p) {
            const auto marks = consumer.watermarks(topic, p, kMetadataTimeout);
            if (!marks) {
                common::log_warn("outbox relay: no watermarks for " + topic + "; scan postponed");
                return false;
            }
            const auto [low, high] = *marks;
            std::int64_t start = common::kOffsetBeginning;
            if (const auto it = last.find(p); it != last.end()) {
                start = it->second + 1;
                if (start >= high) {
                    continue;
                }
            }
            if (high <= low) {
                continue;
            }
            assignment.push_back({topic, p, start});
            ends[{topic, p}] = high;
        }
    }
    std::uint64_t marked = 0;
    if (!assignment.empty()) {
        consumer.assign(assignment);
        const auto deadline = std::chrono::steady_clock::now() + kScanTimeout;
        while (!ends.empty() && std::chrono::steady_clock::now() < deadline) {
            const common::Message m = consumer.poll(std::chrono::milliseconds(200));
            if (!m || m.error_code() != 0) {
                continue;
            }
            const auto it = ends.find({std::string(m.topic()), m.partition()});
            if (it == ends.end()) {
                continue;
            }
            if (const auto key = m.header(kDedupHeader)) {
                if (store.mark_sent_by_dedup_key(*key, m.partition(), m.offset(), wall_ms())) {
                    ++marked;
                }
            }
            if (m.offset() + 1 >= it->second) {
                ends.erase(it);
            }
        }
    }
    consumer.close();
    recovered_.fetch_add(marked);
    if (marked > 0) {
        common::log_info("outbox relay: " + std::to_string(marked) +
                         " rows were already on their topics; marked sent");
    }
    if (!ends.empty()) {
        common::log_warn("outbox relay: scan did not reach the end of every partition; retrying");
    }
    return ends.empty();
}

void OutboxRelay::update_backlog(Store& store) {
    if (metrics_ == nullptr) {
        return;
    }
    const OutboxStats stats = store.outbox_stats();
    double age = 0;
    if (stats.oldest_unsent_created_ms) {
        age = static_cast<double>(wall_ms() - *stats.oldest_unsent_created_ms) / 1000.0;
    }
    metrics_->outbox_state(stats.unsent, age < 0 ? 0 : age);
}

}  // namespace meshhook::consumer
