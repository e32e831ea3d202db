// The session's one lazy deadline: it fires once at the deadline in force
// when it passes, whether that moved earlier or later since it was set, and
// moving it later arms no timer.
#include "ingest/deadline.hpp"

#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>

namespace meshhook::ingest {
namespace {

using namespace std::chrono_literals;
using Clock = Deadline::Clock;

struct Fixture {
    boost::asio::io_context ioc{1};
    std::shared_ptr<int> owner = std::make_shared<int>(0);
    Deadline deadline{ioc.get_executor()};
    int fired = 0;
    Clock::time_point fired_at{};

    Fixture() {
        deadline.on_expiry(owner, [this] {
            ++fired;
            fired_at = Clock::now();
        });
    }
    // Runs until no wait is pending: every handler has run.
    void run() { ioc.run(); }
};

TEST(Deadline, FiresOnceWhenItPasses) {
    Fixture f;
    const auto start = Clock::now();
    f.deadline.set(start + 20ms);
    f.run();
    EXPECT_EQ(f.fired, 1);
    EXPECT_GE(f.fired_at - start, 20ms);
    EXPECT_FALSE(f.deadline.is_set()) << "one expiry per set()";
}

TEST(Deadline, MovedLaterFiresAtTheLaterTimeWithoutArmingAgainUntilThen) {
    Fixture f;
    const auto start = Clock::now();
    f.deadline.set(start + 10ms);
    // What a keep-alive connection does per request: the deadline moves on.
    for (int i = 1; i <= 1000; ++i) f.deadline.set(start + 10ms + i * 50us);
    EXPECT_EQ(f.deadline.arms(), 1U) << "moving a deadline later must not touch the timer";
    f.run();
    EXPECT_EQ(f.fired, 1);
    EXPECT_GE(f.fired_at - start, 60ms) << "fired at the first deadline, which had moved";
    EXPECT_EQ(f.deadline.arms(), 2U) << "the early wake-up waited once more, for the last deadline";
}

TEST(Deadline, MovedEarlierFiresAtTheEarlierTime) {
    Fixture f;
    const auto start = Clock::now();
    f.deadline.set(start + 10s);
    f.deadline.set(start + 10ms);
    f.run();  // would take 10 s if the first wait were kept
    EXPECT_EQ(f.fired, 1);
    EXPECT_LT(f.fired_at - start, 5s);
    EXPECT_GE(f.fired_at - start, 10ms);
}

TEST(Deadline, ClearedDeadlineDoesNotFire) {
    Fixture f;
    f.deadline.set(Clock::now() + 10ms);
    f.deadline.clear();
    f.run();
    EXPECT_EQ(f.fired, 0);
}

TEST(Deadline, SetAgainFromItsOwnCallbackFiresAgain) {
    Fixture f;
    int calls = 0;
    f.deadline.on_expiry(f.owner, [&] {
        if (++calls < 3) f.deadline.set(Clock::now() + 1ms);  // the session's cancel retry
    });
    f.deadline.set(Clock::now() + 1ms);
    f.run();
    EXPECT_EQ(calls, 3);
}

TEST(Deadline, GoneOwnerIsNeverCalledAndNotKeptAlive) {
    Fixture f;
    f.deadline.set(Clock::now() + 10ms);
    std::weak_ptr<int> weak = f.owner;
    f.owner.reset();
    EXPECT_TRUE(weak.expired()) << "a pending wait must not hold its owner";
    f.run();
    EXPECT_EQ(f.fired, 0);
}

TEST(Deadline, CancelEndsThePendingWaitAtOnce) {
    Fixture f;
    const auto start = Clock::now();
    f.deadline.set(start + 10s);
    f.deadline.cancel();
    f.run();  // returns at once: nothing pending
    EXPECT_EQ(f.fired, 0);
    EXPECT_LT(Clock::now() - start, 5s);
}

TEST(Deadline, DestroyedWithAWaitPendingCallsNothing) {
    boost::asio::io_context ioc{1};
    auto owner = std::make_shared<int>(0);
    int fired = 0;
    {
        Deadline deadline{ioc.get_executor()};
        deadline.on_expiry(owner, [&] { ++fired; });
        deadline.set(Clock::now() + 1ms);
    }
    ioc.run();
    EXPECT_EQ(fired, 0);
}

}  // namespace
}  // namespace meshhook::ingest
