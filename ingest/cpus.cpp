#include "ingest/cpus.hpp"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace meshhook::ingest {
namespace {

std::optional<std::uint64_t> number(std::string_view text) {
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

// The cgroup v2 path of this process ("0::/PATH" in /proc/self/cgroup).
std::optional<std::string> cgroup_v2_path() {
    std::ifstream in("/proc/self/cgroup");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with("0::")) return line.substr(3);
    }
    return std::nullopt;
}

}  // namespace

std::optional<unsigned> cpu_max_limit(std::string_view text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
    const auto space = text.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    const auto quota = number(text.substr(0, space));
    const auto period = number(text.substr(space + 1));
    if (!quota || !period || *period == 0) return std::nullopt;  // "max": no limit
    return static_cast<unsigned>(std::max<std::uint64_t>(1, (*quota + *period - 1) / *period));
}

unsigned usable_cpus() {
    unsigned cpus = std::max(1U, std::thread::hardware_concurrency());
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        cpus = static_cast<unsigned>(std::max(1, CPU_COUNT(&set)));
    }
    if (const auto path = cgroup_v2_path()) {
        // Every level's quota applies; the tightest wins.
        const std::filesystem::path root = "/sys/fs/cgroup";
        auto dir = root / std::filesystem::path(*path).relative_path();
        for (;;) {
            std::ifstream in(dir / "cpu.max");
            std::string text;
            if (in && std::getline(in, text)) {
                if (const auto limit = cpu_max_limit(text)) cpus = std::min(cpus, *limit);
            }
            if (dir == root || !dir.has_parent_path() || dir.parent_path() == dir) break;
            dir = dir.parent_path();
        }
    }
    return std::max(1U, cpus);
}

}  // namespace meshhook::ingest
