#pragma once
// Warnings for rejected requests and refused connections, rate-limited: a
// flood of bad requests or a 503 storm must not make logging (synchronous,
// one write per line) the bottleneck. Per HTTP status, at most
// kLinesPerSecond lines a second are written; the rest are counted and
// reported in one summary line per status once its second is over.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

namespace meshhook::ingest {

class RejectLog {
public:
    static constexpr std::uint32_t kLinesPerSecond = 10;

    // The process's one instance (sessions and handlers on every I/O thread).
    static RejectLog& instance();

    // Whether a warning for `status` may be written now; when not, it is
    // counted for the summary. Lock-free. The caller builds its line only
    // when this said yes, which is the point under a flood.
    bool should_log(unsigned status, std::chrono::steady_clock::time_point now) noexcept;

    // Writes the summary line of every status whose second is over and that
    // suppressed something. Called on a timer, so a flood that stopped is
    // still summed up.
    void flush(std::chrono::steady_clock::time_point now);

    // Lines suppressed so far and not yet summed up (tests).
    std::uint64_t pending_suppressed(unsigned status) const noexcept;

private:
    struct Bucket {
        std::atomic<std::int64_t> second{0};  // steady seconds of the current window
        std::atomic<std::uint32_t> written{0};
        std::atomic<std::uint64_t> suppressed{0};
    };
    static std::size_t index(unsigned status) noexcept;
    void roll(Bucket& bucket, unsigned status, std::int64_t second);

    // 400, 401, 403, 404, 405, 408, 413, 431, 503, and one for the rest
    // (refused connections are logged as status 0).
    std::array<Bucket, 10> buckets_{};
};

}  // namespace meshhook::ingest
