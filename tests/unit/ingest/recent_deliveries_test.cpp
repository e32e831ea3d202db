#include "ingest/recent_deliveries.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace meshhook::ingest {
namespace {

TEST(RecentDeliveries, ForgetsTheLeastRecentlyRememberedIdWhenFull) {
    RecentDeliveries recent(1, 2);
    recent.remember(0, "a");
    recent.remember(0, "b");
    recent.remember(0, "a");  // a is now the most recent
    recent.remember(0, "c");  // b goes
    EXPECT_TRUE(recent.contains(0, "a"));
    EXPECT_FALSE(recent.contains(0, "b"));
    EXPECT_TRUE(recent.contains(0, "c"));
    EXPECT_EQ(recent.size(0), 2u);
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
