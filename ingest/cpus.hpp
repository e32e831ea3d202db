#pragma once
// How many CPUs this process may actually use: the default of --threads.
// std::thread::hardware_concurrency() counts the machine's cores, ignoring
// CPU affinity (taskset, cpusets) and container CPU quotas: a pod limited to
// 1 CPU on a 64-core node would get 64 I/O threads.

#include <optional>
#include <string_view>

namespace meshhook::ingest {

// The affinity mask's CPU count, capped by every cgroup v2 `cpu.max` quota
// from this process's cgroup up to the root; at least 1.
unsigned usable_cpus();

// A cgroup v2 `cpu.max` ("QUOTA PERIOD", or "max PERIOD") as whole CPUs,
// rounded up (150000 100000 -> 2); nullopt for no limit or unreadable text.
std::optional<unsigned> cpu_max_limit(std::string_view text);

}  // namespace meshhook::ingest
