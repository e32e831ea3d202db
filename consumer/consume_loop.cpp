#include "consumer/consume_loop.hpp"

#include <algorithm>
#include <set>
#include <thread>
#include <utility>

#include "common/log.hpp"
#include "common/wire.hpp"
#include "consumer/metrics.hpp"
#include "consumer/start_from.hpp"

namespace meshhook::consumer {

namespace {

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

constexpr std::string_view kEnvironmentHeader = wire::kHeaderEnvironment;
constexpr auto kWatermarkTimeout = std::chrono::seconds(5);
constexpr std::string_view kStartFromSetting = "--start-from (CONSUMER_START_FROM)";

}  // namespace

ConsumeLoop::ConsumeLoop(LoopOptions options, Store& store, BatchApplier& applier,
                         ConsumerMetrics* metrics, std::function<void()> on_commit)
    : options_(std::move(options)),
      store_(store),
      applier_(applier),
      metrics_(metrics),
      on_commit_(std::move(on_commit)) {
    beat();
    // An offset the partition does not hold is reported, not silently reset:
    // a recreated topic must stop the loop (out_of_range), not be skipped.
    common::KafkaConfig kafka = options_.kafka;
    kafka.emplace_back("auto.offset.reset", "error");
    consumer_ = std::make_unique<common::Consumer>(kafka, this);
}

ConsumeLoop::~ConsumeLoop() {
    try {
        close();
    } catch (...) {
        // closing is best effort in a destructor
    }
}

void ConsumeLoop::subscribe() {
    consumer_->subscribe({options_.topics.input});
}

void ConsumeLoop::close() {
    if (consumer_) {
        consumer_->close();
    }
}

void ConsumeLoop::assign_from_store(common::Consumer& consumer,
                                    const std::vector<common::TopicPartition>& partitions) {
    const auto stored = store_.offsets(options_.topics.input);
    std::vector<common::TopicPartition> seek;
    expected_.clear();
    for (const common::TopicPartition& tp : partitions) {
        if (tp.topic != options_.topics.input) {
            continue;
        }
        common::TopicPartition at = tp;
        if (const auto it = stored.find(tp.partition); it != stored.end()) {
            at.offset = it->second;
            expected_[tp.partition] = it->second;
        } else {
            at.offset = common::kOffsetBeginning;
            expected_[tp.partition] = std::nullopt;
        }
        seek.push_back(at);
    }
    // assign() with explicit offsets also drops anything fetched before.
    consumer.assign(seek);
}

void ConsumeLoop::on_assign(common::Consumer& consumer,
                            const std::vector<common::TopicPartition>& partitions) {
    // Called from inside librdkafka's C code: nothing may propagate out.
    batch_.clear();
    try {
        assign_from_store(consumer, partitions);
        needs_reseek_ = false;
        std::string list;
        for (const auto& [p, offset] : expected_) {
            list += " " + std::to_string(p) + "@" + (offset ? std::to_string(*offset) : "start");
        }
        common::log_info("assigned " + options_.topics.input + ":" + list);
        return;
    } catch (const std::exception& e) {
        common::log_warn(std::string("seek to the store's offsets failed on assignment: ") +
                         e.what());
        store_ok_.store(false);
    }
    // Assign anyway so the group stays stable; nothing is applied until the
    // store answers and the partitions are re-seeked.
    expected_.clear();
    needs_reseek_ = true;
    try {
        consumer.assign(partitions);
    } catch (const std::exception& e) {
        common::log_warn(std::string("assign failed: ") + e.what());
    }
}

void ConsumeLoop::on_revoke(common::Consumer& consumer,
                            const std::vector<common::TopicPartition>& partitions) {
    // The batch in hand is not applied: the next owner reads it again from
    // the store's offsets.
    for (const common::TopicPartition& tp : partitions) {
        expected_.erase(tp.partition);
    }
    std::erase_if(batch_,
                  [this](const common::Message& m) { return !expected_.contains(m.partition()); });
    try {
        consumer.unassign();
    } catch (const std::exception& e) {  // called from librdkafka's C code
        common::log_warn(std::string("unassign failed: ") + e.what());
    }
}

bool ConsumeLoop::reseek() {
    try {
        assign_from_store(*consumer_, consumer_->assignment());
        needs_reseek_ = false;
        return true;
    } catch (const std::exception& e) {
        common::log_warn(std::string("re-seek failed: ") + e.what());
        store_ok_.store(false);
        return false;
    }
}

void ConsumeLoop::out_of_range(std::int32_t partition) {
    const auto it = expected_.find(partition);
    if (it == expected_.end()) {
        return;  // revoked meanwhile
    }
    const std::string where = options_.topics.input + "[" + std::to_string(partition) + "]";
    const auto marks = consumer_->watermarks(options_.topics.input, partition, kWatermarkTimeout);
    if (!marks) {
        common::log_warn(where + ": offset out of range and no watermarks; re-seeking");
        needs_reseek_ = true;
        return;
    }
    const std::int64_t at = it->second.value_or(0);
    if (at > marks->second) {
        stop_reason_ = past_the_end_message(std::string(kStartFromSetting), options_.topics.input,
                                            {{partition, at, marks->first, marks->second}});
        return;
    }
    std::int64_t from = at;
    if (at < marks->first) {
        // Below the low watermark: retention deleted records before they
        // were applied (a consumer stopped for longer than the topic keeps
        // them). They cannot be read any more; the loop goes on from what is
        // left, as it always did, and says what was lost.
        common::log_error(where + ": offsets " + std::to_string(at) + ".." +
                          std::to_string(marks->first - 1) +
                          " were deleted by retention before they were applied; going on from " +
                          std::to_string(marks->first));
        from = marks->first;
    } else {
        common::log_warn(where + ": offset " + std::to_string(at) +
                         " was out of range and is in range now; fetching it again");
    }
    try {
        consumer_->seek({options_.topics.input, partition, from}, kWatermarkTimeout);
    } catch (const common::KafkaError& e) {
        common::log_warn(where + ": " + e.what() + "; re-seeking");
        needs_reseek_ = true;
    }
}

void ConsumeLoop::beat() {
    heartbeat_ms_.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now().time_since_epoch())
                            .count());
}

void ConsumeLoop::run(const std::atomic<bool>& stop) {
    while (!stop.load()) {
        beat();
        if (!stop_reason_.empty()) {
            throw PastTheEndError(stop_reason_);
        }
        if (needs_reseek_ && !reseek()) {
            // Store down: keep polling (heartbeats, rebalances) without applying.
            consumer_->poll(std::chrono::milliseconds(500));
            continue;
        }
        collect(stop);
        if (!stop_reason_.empty()) {
            throw PastTheEndError(stop_reason_);
        }
        if (!batch_.empty()) {
            apply();
        }
    }
    if (!batch_.empty() && !needs_reseek_) {
        apply();  // finish the batch in hand
    }
}

void ConsumeLoop::collect(const std::atomic<bool>& stop) {
    std::optional<std::chrono::steady_clock::time_point> deadline;
    while (!stop.load() && batch_.size() < options_.batch_max && !needs_reseek_ &&
           stop_reason_.empty()) {
        auto timeout = std::chrono::milliseconds(100);
        if (deadline) {
            const auto now = std::chrono::steady_clock::now();
            if (now >= *deadline) {
                break;
            }
            timeout = std::min(
                timeout, std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - now));
        }
        common::Message m = consumer_->poll(timeout);
        beat();
        if (!m) {
            if (!batch_.empty()) {
                break;  // nothing more right now: apply what is in hand
            }
            continue;
        }
        if (m.is_offset_out_of_range()) {
            out_of_range(m.partition());
            continue;
        }
        if (const auto error = m.error()) {
            if (!m.is_partition_eof()) {
                common::log_warn("consume: " + std::string(error.message()));
            }
            continue;
        }
        if (m.topic() != options_.topics.input) {
            continue;
        }
        const auto it = expected_.find(m.partition());
        if (it == expected_.end()) {
            continue;  // revoked meanwhile
        }
        if (it->second && m.offset() < *it->second) {
            continue;  // fetched before a re-seek
        }
        if (batch_.empty()) {
            deadline = std::chrono::steady_clock::now() + options_.batch_wait;
        }
        batch_.push_back(std::move(m));
    }
}

void ConsumeLoop::apply() {
    const auto started = std::chrono::steady_clock::now();
    std::vector<InputRecord> records;
    records.reserve(batch_.size());
    std::set<std::int32_t> partitions;
    for (const common::Message& m : batch_) {
        records.push_back({m.topic(), m.partition(), m.offset(), m.key().value_or(""), m.value(),
                           m.header(kEnvironmentHeader).value_or("")});
        partitions.insert(m.partition());
    }
    BatchResult result;
    try {
        // A record the store refuses is isolated there and recorded as an
        // anomaly; only an unavailable store comes back here.
        result = applier_.apply_isolating(store_, records, expected_, wall_ms());
    } catch (const StoreError& e) {
        common::log_warn(std::string("batch rolled back: ") + e.what());
        store_ok_.store(false);
        batch_.clear();
        needs_reseek_ = true;
        // Back off before retrying against a failing store.
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        return;
    }
    batch_.clear();
    if (result.status == BatchStatus::kFenced) {
        // Another consumer moved an offset since we read it: its state wins.
        fenced_.fetch_add(1);
        common::log_warn("batch fenced: another consumer advanced a partition; re-seeking");
        needs_reseek_ = true;
        return;
    }
    store_ok_.store(true);
    committed_.fetch_add(1);
    std::vector<common::TopicPartition> commit;
    for (const std::int32_t partition : partitions) {
        if (const auto& next = expected_[partition]) {
            commit.push_back({options_.topics.input, partition, *next});
        }
    }
    if (metrics_ != nullptr) {
        metrics_->record(
            result.stats,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
    if (result.stats.outbox_rows > 0 && on_commit_) {
        on_commit_();
    }
    try {
        consumer_->commit(commit, true);
    } catch (const common::KafkaError& e) {
        // Only lag tools read these; the store holds the real offsets.
        common::log_debug(std::string("kafka offset commit: ") + e.what());
    }
    update_lag();
}

void ConsumeLoop::update_lag() {
    if (metrics_ == nullptr) {
        return;
    }
    for (const auto& [partition, offset] : expected_) {
        // Cached from fetch responses: no broker round trip on the hot path.
        const auto marks = consumer_->cached_watermarks(options_.topics.input, partition);
        if (!marks || !offset) continue;
        metrics_->lag(options_.topics.input, partition,
                      std::max<std::int64_t>(0, marks->second - *offset));
    }
}

}  // namespace meshhook::consumer
