// What the outbox relay's recovery scan costs on an empty store: N credit
// commands already on ledger.credit-commands (as after a lost store, or a
// first start of `--start-from earliest`), and the relay reads every one of
// them into the store before it sends anything (consumer/README.md, "No
// credit twice").
//
// usage: bench_relay_scan BOOTSTRAP STORE_URL N
//   BOOTSTRAP: a cluster whose ledger.credit-commands exists and is empty
//   (benchmarks/relay_scan.sh starts one on the Apache engine: the mock keeps
//   only a few MiB per partition). STORE_URL: an empty store.
// Prints: RESULT records=N produce_s=P scan_s=S keys_per_s=R rss_growth_mib=M
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>

#include "common/kafka.hpp"
#include "common/wire.hpp"
#include "consumer/relay.hpp"
#include "consumer/store.hpp"

using namespace meshhook;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

// Peak resident set of this process, in KiB (VmHWM).
long peak_rss_kib() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    }
    return 0;
}

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: bench_relay_scan BOOTSTRAP STORE_URL N\n");
        return 2;
    }
    const std::string bootstrap = argv[1];
    const std::string topic(wire::kCreditCommandsTopic);
    const long n = std::strtol(argv[3], nullptr, 10);
    try {
        // A credit command's size and shape (~400 bytes), key = TransferId.
        const auto produce_start = Clock::now();
        {
            common::Producer producer({{"bootstrap.servers", bootstrap}, {"linger.ms", "20"}});
            std::string payload(400, 'x');
            for (long i = 0; i < n; ++i) {
                const std::string id = "bench-transfer-" + std::to_string(i);
                const std::string key = "credit:production:" + id;
                const std::vector<common::Header> headers{{wire::kHeaderDedupKey, key}};
                while (producer.produce(topic, id, payload, headers, nullptr) ==
                       common::ProduceStatus::kQueueFull) {
                    producer.flush(100ms);
                }
            }
            if (producer.flush(300s) != 0) throw std::runtime_error("produce did not finish");
        }
        const double produce_s = seconds_since(produce_start);

        auto store = consumer::open_store(argv[2]);
        const long rss_before = peak_rss_kib();
        consumer::RelayOptions options;
        options.store_url = argv[2];
        options.kafka = {{"bootstrap.servers", bootstrap}};
        options.topics = {topic};
        options.transactional_id = "bench-relay-scan";
        const auto scan_start = Clock::now();
        consumer::OutboxRelay relay(options, nullptr);
        relay.start();
        // Done when the positions cover every record produced.
        long covered = 0;
        while (covered < n) {
            if (seconds_since(scan_start) > 1800) throw std::runtime_error("scan did not finish");
            std::this_thread::sleep_for(50ms);  // polling the store, not synchronising
            covered = 0;
            for (const auto& [partition, next] : store->relay_positions(topic)) covered += next;
        }
        const double scan_s = seconds_since(scan_start);
        relay.stop(0ms);
        std::printf(
            "RESULT records=%ld produce_s=%.1f scan_s=%.1f keys_per_s=%.0f rss_growth_mib=%.1f\n",
            n, produce_s, scan_s, static_cast<double>(n) / scan_s,
            static_cast<double>(peak_rss_kib() - rss_before) / 1024.0);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_relay_scan: FAILED: %s\n", e.what());
        return 1;
    }
}
