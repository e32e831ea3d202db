// The default of --threads: CPUs this process may use, not the machine's.
#include "ingest/cpus.hpp"

#include <gtest/gtest.h>
#include <sched.h>

#include <thread>

namespace meshhook::ingest {
namespace {

TEST(Cpus, CgroupCpuMaxIsWholeCpusRoundedUp) {
    EXPECT_EQ(cpu_max_limit("100000 100000\n"), 1u);
    EXPECT_EQ(cpu_max_limit("150000 100000"), 2u);
    EXPECT_EQ(cpu_max_limit("50000 100000"), 1u);
    EXPECT_EQ(cpu_max_limit("400000 100000"), 4u);
    EXPECT_FALSE(cpu_max_limit("max 100000"));
    EXPECT_FALSE(cpu_max_limit(""));
    EXPECT_FALSE(cpu_max_limit("100000 0"));
    EXPECT_FALSE(cpu_max_limit("1x 100000"));
}

TEST(Cpus, UsableCpusFollowTheAffinityMask) {
    cpu_set_t set;
    CPU_ZERO(&set);
    ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
    const auto usable = usable_cpus();
    EXPECT_GE(usable, 1u);
    EXPECT_LE(usable, static_cast<unsigned>(CPU_COUNT(&set)));
    // Pinned to one CPU, the same process may use one.
    cpu_set_t one;
    CPU_ZERO(&one);
    for (std::size_t cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (CPU_ISSET(cpu, &set)) {
            CPU_SET(cpu, &one);
            break;
        }
    }
    ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
    EXPECT_EQ(usable_cpus(), 1u);
    ASSERT_EQ(sched_setaffinity(0, sizeof set, &set), 0);
}

}  // namespace
}  // namespace meshhook::ingest
