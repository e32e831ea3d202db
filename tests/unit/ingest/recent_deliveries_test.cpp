#include "ingest/recent_deliveries.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace meshhook::ingest {
namespace {

TEST(RecentDeliveries, ForgetsTheOldestRememberedIdWhenFull) {
    RecentDeliveries recent(1, 2);
    recent.remember(0, "a");
    recent.remember(0, "b");
    recent.remember(0, "a");  // known already: nothing changes
    recent.remember(0, "c");  // a, the oldest, goes
    EXPECT_FALSE(recent.contains(0, "a"));
    EXPECT_TRUE(recent.contains(0, "b"));
    EXPECT_TRUE(recent.contains(0, "c"));
    EXPECT_EQ(recent.size(0), 2u);
}

// The index is an open-addressing table whose deletions shift entries back:
// after many rounds of the ring, every remembered Id is still found and no
// forgotten one is.
TEST(RecentDeliveries, AfterManyRoundsExactlyTheLastCapacityIdsAreKnown) {
    constexpr int kCapacity = 37;  // not a power of two: the ring and the table differ
    RecentDeliveries recent(1, kCapacity);
    constexpr int kTotal = 5000;
    for (int i = 0; i < kTotal; ++i) {
        recent.remember(0, "delivery-" + std::to_string(i));
        if (i % 97 == 0) {
            for (int j = 0; j <= i; ++j) {
                ASSERT_EQ(recent.contains(0, "delivery-" + std::to_string(j)), j > i - kCapacity)
                    << "after " << i << ", id " << j;
            }
        }
    }
    EXPECT_EQ(recent.size(0), static_cast<std::size_t>(kCapacity));
}

TEST(RecentDeliveries, EnvironmentsAreSeparateAndZeroCapacityRemembersNothing) {
    RecentDeliveries recent(2, 10);
    recent.remember(0, "id-1");
    EXPECT_TRUE(recent.contains(0, "id-1"));
    EXPECT_FALSE(recent.contains(1, "id-1"));
    EXPECT_FALSE(recent.contains(2, "id-1"));  // no such environment: nothing, no crash

    RecentDeliveries none(1, 0);
    none.remember(0, "id-1");
    EXPECT_FALSE(none.contains(0, "id-1"));
    EXPECT_EQ(none.size(0), 0u);
}

TEST(RecentDeliveries, StaysWithinItsCapacityUnderConcurrentUse) {
    RecentDeliveries recent(1, 1000);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&recent, t] {
            for (int i = 0; i < 5000; ++i) {
                const std::string id = std::to_string(t) + "-" + std::to_string(i);
                recent.remember(0, id);
                (void)recent.contains(0, id);
            }
        });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(recent.size(0), 1000u);
    // The index agrees with the order: exactly 1000 of the 20000 are known.
    std::size_t known = 0;
    for (int t = 0; t < 4; ++t) {
        for (int i = 0; i < 5000; ++i) {
            if (recent.contains(0, std::to_string(t) + "-" + std::to_string(i))) ++known;
        }
    }
    EXPECT_EQ(known, 1000u);
}

}  // namespace
}  // namespace meshhook::ingest
