// Rejected-request warnings under a flood: a few lines a second per status,
// the rest counted and summed up once the second is over.
#include "ingest/reject_log.hpp"

#include <gtest/gtest.h>

namespace meshhook::ingest {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(RejectLog, AFloodWritesAFewLinesASecondPerStatusAndCountsTheRest) {
    RejectLog log;
    const auto t0 = Clock::time_point(1000s);
    int written = 0;
    for (int i = 0; i < 1000; ++i) written += log.should_log(401, t0 + 100ms) ? 1 : 0;
    EXPECT_EQ(written, static_cast<int>(RejectLog::kLinesPerSecond));
    EXPECT_EQ(log.pending_suppressed(401), 1000u - RejectLog::kLinesPerSecond);
    // Another status has its own allowance.
    EXPECT_TRUE(log.should_log(503, t0 + 200ms));
    EXPECT_EQ(log.pending_suppressed(503), 0u);

    // The next second: the summary is written (the count starts over) and
    // lines are allowed again.
    EXPECT_TRUE(log.should_log(401, t0 + 1100ms));
    EXPECT_EQ(log.pending_suppressed(401), 0u);
}

TEST(RejectLog, FlushSumsUpAFloodThatHasStopped) {
    RejectLog log;
    const auto t0 = Clock::time_point(2000s);
    for (int i = 0; i < 50; ++i) (void)log.should_log(0, t0);  // refused connections
    EXPECT_EQ(log.pending_suppressed(0), 40u);
    log.flush(t0 + 500ms);  // the same second: nothing to sum up yet
    EXPECT_EQ(log.pending_suppressed(0), 40u);
    log.flush(t0 + 1s);
    EXPECT_EQ(log.pending_suppressed(0), 0u);
}

}  // namespace
}  // namespace meshhook::ingest
