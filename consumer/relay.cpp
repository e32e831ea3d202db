#include "consumer/relay.hpp"

#include <algorithm>
#include <map>
#include <utility>

#include "common/identifier.hpp"
#include "common/log.hpp"
#include "consumer/metrics.hpp"

namespace meshhook::consumer {

namespace {

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

constexpr auto kTransactionTimeout = std::chrono::seconds(30);
constexpr auto kInitTimeout = std::chrono::seconds(10);
constexpr auto kScanStall = std::chrono::seconds(30);  // no progress this long: retry later
constexpr auto kMetadataTimeout = std::chrono::seconds(5);
constexpr std::size_t kScanChunk = 1000;  // keys per store transaction
constexpr auto kParkAfterAtLeast = std::chrono::seconds(5);

}  // namespace

// One produced row's delivery report, written on the producer's poller thread.
class OutboxRelay::Delivery final : public common::DeliveryHandler {
public:
    void on_delivery(const common::DeliveryReport& report) noexcept override {
        error_ = report.error;  // librdkafka's static text
        partition_ = report.partition;
        offset_ = report.offset;
        done_.store(true, std::memory_order_release);
    }
    bool done() const { return done_.load(std::memory_order_acquire); }
    bool ok() const { return done() && !error_; }
    bool rejected() const {
        return done() && error_.kind() == common::RecordError::Kind::kRejected;
    }
    std::string_view error() const { return error_.message(); }
    std::int32_t partition() const { return partition_; }
    std::int64_t offset() const { return offset_; }

private:
    std::atomic<bool> done_{false};
    common::RecordError error_;
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
    beat();
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

void OutboxRelay::beat() {
    heartbeat_ms_.store(steady_ms());
}

void OutboxRelay::run() {
    beat();
    while (true) {
        try {
            auto store = open_store(options_.store_url);
            loop(*store);
            active_.store(false);
            drop_producer();
            return;
        } catch (const std::exception& e) {
            active_.store(false);
            common::log_warn(std::string("outbox relay: ") + e.what() + "; retrying");
        }
        // A store error may mean we lost the lock with our session: a new
        // holder fences us anyway, and we start over with a new producer.
        drop_producer();
        if (stopping_.load() && std::chrono::steady_clock::now() >= drain_deadline_) {
            return;
        }
        wait_for_work(std::chrono::milliseconds(1000));
    }
}

void OutboxRelay::drop_producer() {
    producer_.reset();  // its destructor serves every report still owed
    orphans_.clear();
    initialised_ = false;
}

bool OutboxRelay::ready_producer() {
    if (!producer_) {
        common::KafkaConfig config = options_.kafka;
        config.emplace_back("transactional.id", options_.transactional_id);
        config.emplace_back("transaction.timeout.ms", "60000");
        producer_ = std::make_unique<common::Producer>(config);
        initialised_ = false;
    }
    if (initialised_) {
        return true;
    }
    try {
        // Fences every earlier producer of this transactional.id and aborts
        // (or completes) its open transaction before returning.
        producer_->init_transactions(kInitTimeout);
        initialised_ = true;
        common::log_info("outbox relay: transactions initialised as " + options_.transactional_id +
                         " (earlier holders fenced)");
        return true;
    } catch (const common::TransactionError& e) {
        if (e.kind != common::TransactionError::Kind::kRetriable) {
            drop_producer();
        }
        common::log_warn(std::string("outbox relay: ") + e.what() + "; retrying");
        return false;
    }
}

void OutboxRelay::loop(Store& store) {
    bool need_scan = true;
    auto next_backlog_update = std::chrono::steady_clock::now();
    while (true) {
        beat();
        const bool stopping = stopping_.load();
        if (stopping && std::chrono::steady_clock::now() >= drain_deadline_) {
            return;
        }
        if (!store.try_acquire_relay_lock()) {
            if (active_.exchange(false)) {
                common::log_warn("outbox relay: lost the relay lock; stepping down");
            }
            drop_producer();
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
        if (!initialised_) {
            need_scan = true;
            if (!ready_producer()) {
                if (stopping) {
                    return;
                }
                wait_for_work(std::chrono::milliseconds(1000));
                continue;
            }
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
        std::vector<OutboxRow> rows = store.unsent(isolate_ > 0 ? 1 : options_.batch);
        // Rows whose key a scan found on the topic before the row existed
        // (the store went back in time): already sent, never again.
        std::vector<SentMark> found;
        std::erase_if(rows, [&](const OutboxRow& row) {
            if (!row.published) {
                return false;
            }
            found.push_back(*row.published);
            found.back().id = row.id;
            return true;
        });
        if (!found.empty()) {
            store.mark_sent(found, wall_ms());
            recovered_.fetch_add(found.size());
            if (metrics_ != nullptr) {
                metrics_->outbox_found_on_topic(found.size());
            }
            common::log_warn("outbox relay: " + std::to_string(found.size()) +
                             " new rows were already on their topics (the store is behind "
                             "them); marked sent, not sent again");
        }
        if (rows.empty()) {
            if (!found.empty()) {
                continue;
            }
            update_backlog(store);
            if (stopping) {
                return;
            }
            wait_for_work(options_.idle_wait);
            continue;
        }
        switch (send(store, rows)) {
            case SendResult::kSent:
                isolate_ = isolate_ > 0 ? isolate_ - 1 : 0;
                refusals_.erase(rows.front().id);
                break;
            case SendResult::kRejected:
                // A new producer (a new epoch) after any abort: one more
                // InitProducerId, only on failures, and no state carried
                // over from a transaction that went wrong.
                drop_producer();
                after_rejection(store, rows, last_refusal_);
                need_scan = true;
                break;
            case SendResult::kFenced:
            case SendResult::kFailed:
                drop_producer();
                need_scan = true;
                wait_for_work(std::chrono::milliseconds(500));
                break;
        }
    }
}

void OutboxRelay::after_rejection(Store& store, const std::vector<OutboxRow>& rows,
                                  const std::string& why) {
    if (rows.size() > 1) {
        // Find the refused row: one per transaction through this batch.
        isolate_ = rows.size();
        common::log_warn("outbox relay: Kafka refused a record of a batch of " +
                         std::to_string(rows.size()) + " (" + why + "); sending them one by one");
        return;
    }
    const OutboxRow& row = rows.front();
    // Parked only when refused alone park_after times over at least
    // kParkAfterAtLeast: a row is never parked on one bad moment.
    auto& [count, first] =
        refusals_.try_emplace(row.id, 0, std::chrono::steady_clock::now()).first->second;
    if (++count < options_.park_after ||
        std::chrono::steady_clock::now() - first < kParkAfterAtLeast) {
        wait_for_work(std::chrono::milliseconds(500));
        return;
    }
    store.park(row, why, wall_ms());
    refusals_.erase(row.id);
    isolate_ = isolate_ > 0 ? isolate_ - 1 : 0;
    common::log_error("outbox relay: parked outbox row " + std::to_string(row.id) + " to " +
                      row.topic + " (" + row.dedup_key + ") after " +
                      std::to_string(options_.park_after) + " refusals: " + why +
                      "; later rows with its key wait behind it; the others go on");
    update_backlog(store);
}

OutboxRelay::SendResult OutboxRelay::abort(const std::string& why) {
    common::log_warn("outbox relay: " + why + "; aborting the transaction");
    if (metrics_ != nullptr) {
        metrics_->relay_transaction_aborted();
    }
    try {
        producer_->abort_transaction(kTransactionTimeout);
        return SendResult::kFailed;
    } catch (const common::TransactionError& e) {
        common::log_warn(std::string("outbox relay: ") + e.what() + "; rebuilding the producer");
        return SendResult::kFenced;
    }
}

OutboxRelay::SendResult OutboxRelay::send(Store& store, const std::vector<OutboxRow>& rows) {
    using Kind = common::TransactionError::Kind;
    common::Producer& producer = *producer_;
    auto deliveries = std::make_unique<Delivery[]>(rows.size());
    Delivery* const reports = deliveries.get();
    orphans_.push_back(std::move(deliveries));  // kept until the reports are in
    const auto fenced = [&](const common::TransactionError& e) {
        common::log_warn(std::string("outbox relay: ") + e.what() +
                         (e.kind == Kind::kFenced
                              ? "; another relay took over: stepping down"
                              : "; the producer is unusable: building a new one"));
        if (e.kind == Kind::kFenced && metrics_ != nullptr) {
            metrics_->relay_fenced();
        }
        return SendResult::kFenced;
    };
    try {
        producer.begin_transaction();
    } catch (const common::TransactionError& e) {
        return fenced(e);
    }
    bool refused = false;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const OutboxRow& row = rows[i];
        const std::vector<common::Header> headers{{kDedupHeader, row.dedup_key}};
        common::ProduceStatus status =
            producer.produce(row.topic, row.key, row.payload, headers, &reports[i]);
        if (status == common::ProduceStatus::kQueueFull) {
            producer.flush(std::chrono::milliseconds(1000));
            status = producer.produce(row.topic, row.key, row.payload, headers, &reports[i]);
        }
        if (status == common::ProduceStatus::kEnqueued) {
            continue;
        }
        const std::string what =
            "produce to " + row.topic + ": " + std::string(common::to_string(status));
        if (status == common::ProduceStatus::kFatal) {
            return fenced(
                common::TransactionError(Kind::kFatal, what + " " + producer.fatal_error()));
        }
        if (status == common::ProduceStatus::kRejected) {
            last_refusal_ = what;
            refused = true;
        }
        const SendResult r = abort(what);
        return r == SendResult::kFenced ? r : (refused ? SendResult::kRejected : r);
    }
    beat();
    // Commits (flushing first). A timeout is retriable: the same commit again.
    while (true) {
        try {
            producer.commit_transaction(kTransactionTimeout);
            break;
        } catch (const common::TransactionError& e) {
            beat();
            if (e.kind == Kind::kRetriable && !stopping_.load()) {
                continue;
            }
            if (e.kind == Kind::kFenced || e.kind == Kind::kFatal) {
                return fenced(e);
            }
            for (std::size_t i = 0; i < rows.size(); ++i) {
                if (reports[i].rejected()) {
                    last_refusal_ = std::string(reports[i].error());
                    refused = true;
                }
            }
            if (e.kind == Kind::kRetriable) {  // shutting down: give up this batch
                return fenced(e);
            }
            const SendResult r = abort(e.what());
            return r == SendResult::kFenced ? r : (refused ? SendResult::kRejected : r);
        }
    }
    // Committed: every record is on its topic. Its report's handler may run
    // a moment after commit_transaction() returns, on the poller thread.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    std::vector<SentMark> marks;
    marks.reserve(rows.size());
    std::map<std::string_view, std::uint64_t> per_topic;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        while (!reports[i].done() && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::yield();
        }
        if (!reports[i].ok()) {
            // Committed but no report: the rows are on the topic; the scan
            // that follows finds them by key and marks them.
            common::log_warn("outbox relay: committed, but a report is missing; scanning");
            return SendResult::kFailed;
        }
        marks.push_back({rows[i].id, rows[i].topic, reports[i].partition(), reports[i].offset()});
        ++per_topic[rows[i].topic];
    }
    orphans_.pop_back();  // every report is in
    store.mark_sent(marks, wall_ms());
    sent_.fetch_add(marks.size());
    if (metrics_ != nullptr) {
        for (const auto& [topic, n] : per_topic) {
            metrics_->outbox_sent(topic, n);
        }
    }
    return SendResult::kSent;
}

bool OutboxRelay::recover(Store& store) {
    common::KafkaConfig config = options_.kafka;
    // Committed records only, and an end-of-partition event at the last
    // stable offset: a transaction marker or an aborted record at the tail
    // ends the scan as well as a record does.
    config.emplace_back("isolation.level", "read_committed");
    config.emplace_back("enable.partition.eof", "true");
    // librdkafka refuses assign() without a group.id; this consumer never
    // joins the group (no subscribe) and never commits.
    config.emplace_back("group.id", "meshhook-outbox-relay-scan");
    config.emplace_back("enable.auto.commit", "false");
    // Bounds what librdkafka prefetches (its default is 64 MiB): a scan of a
    // whole topic then holds a few MiB, not the topic's tail. librdkafka 2.0
    // waits fetch.error.backoff.ms (500) whenever that queue is full: short
    // here, or the scan runs at a third of its speed (benchmarks/RESULTS.md).
    config.emplace_back("queued.max.messages.kbytes", "32768");
    config.emplace_back("fetch.error.backoff.ms", "10");
    common::Consumer consumer(config);
    std::vector<common::TopicPartition> assignment;
    for (const std::string& topic : options_.topics) {
        const auto partitions = consumer.partition_count(topic, kMetadataTimeout);
        if (!partitions) {
            common::log_warn("outbox relay: no metadata for " + topic + "; scan postponed");
            return false;
        }
        const auto positions = store.relay_positions(topic);
        for (std::int32_t p = 0; p < *partitions; ++p) {
            const auto marks = consumer.watermarks(topic, p, kMetadataTimeout);
            if (!marks) {
                common::log_warn("outbox relay: no watermarks for " + topic + "; scan postponed");
                return false;
            }
            const auto [low, high] = *marks;
            const auto it = positions.find(p);
            if (it == positions.end()) {
                if (high > low) {
                    assignment.push_back({topic, p, common::kOffsetBeginning});
                }
                continue;
            }
            if (it->second > high) {
                // The topic was deleted and recreated (or lost its tail):
                // records below the position may now be on it unread, so a
                // scan from the position would miss their keys and the relay
                // would send them again. Nothing is sent until an operator
                // resets the position (consumer/README.md); a leader whose
                // high watermark lags for a moment passes at the next try.
                past_the_end(topic, p, it->second, high);
                return false;
            }
            if (it->second == high) {
                continue;
            }
            if (it->second < low) {
                common::log_warn("outbox relay: " + topic + "[" + std::to_string(p) +
                                 "] no longer holds offsets " + std::to_string(it->second) + ".." +
                                 std::to_string(low - 1) + " (retention); scanning what is left");
            }
            assignment.push_back({topic, p, std::max(it->second, low)});
        }
    }
    std::uint64_t marked = 0;
    std::uint64_t scanned = 0;
    const auto started = std::chrono::steady_clock::now();
    std::size_t open = assignment.size();
    if (!assignment.empty()) {
        std::map<std::pair<std::string, std::int32_t>, std::vector<ScannedKey>> found;
        std::map<std::pair<std::string, std::int32_t>, bool> done;
        consumer.assign(assignment);
        auto stall_deadline = std::chrono::steady_clock::now() + kScanStall;
        while (open > 0 && std::chrono::steady_clock::now() < stall_deadline) {
            beat();
            const common::Message m = consumer.poll(std::chrono::milliseconds(200));
            if (!m) {
                continue;
            }
            if (m.error() && !m.is_partition_eof()) {
                continue;
            }
            std::pair<std::string, std::int32_t> where{std::string(m.topic()), m.partition()};
            if (done[where]) {
                continue;
            }
            stall_deadline = std::chrono::steady_clock::now() + kScanStall;
            auto& keys = found[where];
            if (m.is_partition_eof()) {
                // The position is the end of what is committed now; anything
                // later is ours (the earlier holder is fenced).
                marked += store.record_scan(where.first, where.second, keys, m.offset(), wall_ms());
                keys.clear();
                done[where] = true;
                --open;
                continue;
            }
            ++scanned;
            if (const auto key = m.header(kDedupHeader)) {
                // Our keys are short UTF-8 text. A record with another kind
                // of key is no row of ours, and the store would refuse it:
                // skipped, so that it cannot stop the scan for good.
                if (key->size() <= 4 * common::kMaxIdentifierBytes && common::is_valid_utf8(*key) &&
                    key->find('\0') == std::string_view::npos) {
                    keys.push_back({std::string(*key), m.offset()});
                } else {
                    common::log_warn("outbox relay: " + where.first + "[" +
                                     std::to_string(where.second) + "]@" +
                                     std::to_string(m.offset()) +
                                     " has a dedup-key no row of ours can have; skipped");
                }
            }
            if (keys.size() >= kScanChunk) {
                marked +=
                    store.record_scan(where.first, where.second, keys, m.offset() + 1, wall_ms());
                keys.clear();
            }
        }
    }
    consumer.close();
    if (scanned > 0) {
        common::log_info("outbox relay: scanned " + std::to_string(scanned) + " records of " +
                         std::to_string(assignment.size()) + " partitions in " +
                         std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::steady_clock::now() - started)
                                            .count()) +
                         " ms");
    }
    recovered_.fetch_add(marked);
    if (marked > 0) {
        common::log_info("outbox relay: " + std::to_string(marked) +
                         " rows were already on their topics; marked sent");
        if (metrics_ != nullptr) {
            metrics_->outbox_found_on_topic(marked);
        }
    }
    if (open > 0) {
        common::log_warn("outbox relay: scan made no progress for " +
                         std::to_string(kScanStall.count()) + " s; retrying");
    }
    return open == 0;
}

void OutboxRelay::past_the_end(const std::string& topic, std::int32_t partition,
                               std::int64_t position, std::int64_t end) {
    if (metrics_ != nullptr) {
        metrics_->relay_position_past_end();
    }
    const auto now = std::chrono::steady_clock::now();
    if (last_past_the_end_log_ && now - *last_past_the_end_log_ < std::chrono::minutes(1)) {
        return;  // retried every second: one line a minute
    }
    last_past_the_end_log_ = now;
    common::log_error("outbox relay: the store's position in " + topic + "[" +
                      std::to_string(partition) + "] is " + std::to_string(position) +
                      ", past the partition's end " + std::to_string(end) +
                      ": the topic was deleted and recreated, and a scan from there would miss "
                      "what it holds; sending nothing. Once the topic is as it should be: "
                      "DELETE FROM relay_positions WHERE topic = '" +
                      topic + "' (the relay then scans it from its beginning)");
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
    metrics_->outbox_state(stats.unsent, age < 0 ? 0 : age, stats.parked);
}

}  // namespace meshhook::consumer
