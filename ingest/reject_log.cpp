#include "ingest/reject_log.hpp"

#include <string>

#include "common/log.hpp"

namespace meshhook::ingest {
namespace {

constexpr std::array<unsigned, 9> kStatuses = {400, 401, 403, 404, 405, 408, 413, 431, 503};

std::int64_t second_of(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

unsigned status_at(std::size_t i) {
    return i < kStatuses.size() ? kStatuses[i] : 0;
}

}  // namespace

RejectLog& RejectLog::instance() {
    static RejectLog log;
    return log;
}

std::size_t RejectLog::index(unsigned status) noexcept {
    for (std::size_t i = 0; i < kStatuses.size(); ++i) {
        if (kStatuses[i] == status) return i;
    }
    return kStatuses.size();
}

// The thread that moves a bucket to a new second writes the summary of the
// old one; the others see the new second and carry on. A line counted by a
// thread that raced the move may land in either second's count: the total
// is what matters.
void RejectLog::roll(Bucket& bucket, unsigned status, std::int64_t second) {
    auto seen = bucket.second.load(std::memory_order_acquire);
    if (seen >= second) return;
    if (!bucket.second.compare_exchange_strong(seen, second, std::memory_order_acq_rel)) return;
    bucket.written.store(0, std::memory_order_release);
    const auto suppressed = bucket.suppressed.exchange(0, std::memory_order_acq_rel);
    if (suppressed == 0) return;
    std::string line = "suppressed " + std::to_string(suppressed) + " similar warnings (";
    line += status == 0 ? std::string("refused connections") : "status=" + std::to_string(status);
    line += ", more than " + std::to_string(kLinesPerSecond) + " a second)";
    common::log_warn(line);
}

bool RejectLog::should_log(unsigned status, std::chrono::steady_clock::time_point now) noexcept {
    auto& bucket = buckets_[index(status)];
    try {
        roll(bucket, status_at(index(status)), second_of(now));
    } catch (...) {
        // Only the summary's allocation can fail; the count is kept for the next one.
    }
    if (bucket.written.fetch_add(1, std::memory_order_acq_rel) < kLinesPerSecond) return true;
    bucket.suppressed.fetch_add(1, std::memory_order_acq_rel);
    return false;
}

void RejectLog::flush(std::chrono::steady_clock::time_point now) {
    const auto second = second_of(now);
    for (std::size_t i = 0; i < buckets_.size(); ++i) {
        auto& bucket = buckets_[i];
        if (bucket.suppressed.load(std::memory_order_acquire) == 0) continue;
        roll(bucket, status_at(i), second);
    }
}

std::uint64_t RejectLog::pending_suppressed(unsigned status) const noexcept {
    return buckets_[index(status)].suppressed.load(std::memory_order_acquire);
}

}  // namespace meshhook::ingest
