// Events/s applied by the consumer's store alone: the same BatchApplier the
// consume loop runs (parse, state machine, outbox, transfer rows, offsets,
// one transaction per batch), without Kafka.
//
// usage: bench_consumer_store STORE_URL EVENTS BATCH [BATCH...]
//   e.g. bench_consumer_store sqlite:///tmp/b.db 1000000 500 5000
// Each batch size gets a fresh schema (the SQLite file is removed; on
// PostgreSQL the tables are dropped). Four events per transfer, in order:
// pending, processing, succeeded, Mesh's retry of succeeded.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "consumer/batch.hpp"
#include "consumer/store.hpp"

using namespace meshhook;

namespace {

std::string event(std::size_t transfer, int step) {
    static const char* kStatus[] = {"Pending", "Processing", "Succeeded", "Succeeded"};
    char tid[40];
    std::snprintf(tid, sizeof tid, "%08zx-0000-4000-8000-%012zx", transfer, transfer);
    std::string b =
        "{\"Id\":\"d-" + std::to_string(transfer) + "-" + std::to_string(step) +
        "\",\"EventId\":\"e-" + std::to_string(transfer) + "-" +
        std::to_string(step == 3 ? 2 : step) +
        "\",\"SentTimestamp\":1764316800,\"UserId\":\"user-42\",\"TransactionId\":\"order-" +
        std::to_string(transfer) + "\",\"TransferId\":\"" + tid + "\",\"TransferStatus\":\"" +
        kStatus[step] + "\",\"TxHash\":" +
        (step >= 2 ? "\"0x5c1e0f2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e\""
                   : "null") +
        ",\"Chain\":\"Ethereum\",\"Token\":\"USDC\",\"DestinationAddress\":"
        "\"0x9f2b6A1c3d4E5F60718293A4B5c6d7e8f9012345\",\"SourceAccountProvider\":"
        "\"Coinbase\",\"SourceAmount\":250.75,\"DestinationAmount\":" +
        (step >= 2 ? "250.000000000000000001" : "null") +
        ",\"RefundAddress\":null,\"Timestamp\":1764317099000}";
    return b;
}

void reset(const std::string& url) {
    if (url.rfind("sqlite://", 0) == 0) {
        std::string path = url.substr(std::string("sqlite://").size());
        for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
    } else {
        const std::string cmd = "psql -q '" + url +
                                "' -c 'DROP TABLE IF EXISTS transfers, outbox, partition_offsets, "
                                "anomalies, meshhook_schema' >/dev/null 2>&1";
        if (std::system(cmd.c_str()) != 0)
            std::fprintf(stderr, "warning: could not reset %s\n", url.c_str());
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: bench_consumer_store STORE_URL EVENTS BATCH [BATCH...]\n");
        return 2;
    }
    const std::string url = argv[1];
    const std::size_t events = std::strtoull(argv[2], nullptr, 10);
    const std::size_t transfers = events / 4;

    // Records are built once, outside the timing: what is measured is the store.
    std::vector<std::string> bodies;
    bodies.reserve(transfers * 4);
    // Interleave transfers the way a partition sees them: many in flight.
    constexpr std::size_t kWindow = 1000;
    for (std::size_t base = 0; base < transfers; base += kWindow) {
        const std::size_t end = std::min(transfers, base + kWindow);
        for (int step = 0; step < 4; ++step) {
            for (std::size_t t = base; t < end; ++t) bodies.push_back(event(t, step));
        }
    }
    std::vector<std::string> keys;  // TransferId per record, for the Kafka key
    keys.reserve(bodies.size());
    for (const auto& b : bodies) keys.push_back(b.substr(b.find("TransferId\":\"") + 13, 36));

    for (int a = 3; a < argc; ++a) {
        const std::size_t batch = std::strtoull(argv[a], nullptr, 10);
        reset(url);
        auto store = consumer::open_store(url);
        consumer::BatchApplier applier(consumer::Policy{}, consumer::Topics{});
        std::vector<consumer::InputRecord> records;
        std::optional<std::int64_t> expected;
        std::uint64_t credits = 0;
        const auto start = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < bodies.size(); i += batch) {
            const std::size_t end = std::min(bodies.size(), i + batch);
            records.clear();
            for (std::size_t j = i; j < end; ++j) {
                records.push_back({"mesh.transfer-events", 0, static_cast<std::int64_t>(j), keys[j],
                                   bodies[j], ""});
            }
            const consumer::PartitionAdvance advance{"mesh.transfer-events", 0, expected,
                                                     static_cast<std::int64_t>(end)};
            const auto r = applier.apply(*store, records, {&advance, 1}, 1764316800000);
            if (r.status != consumer::BatchStatus::kCommitted) {
                std::fprintf(stderr, "batch fenced unexpectedly\n");
                return 1;
            }
            credits += r.stats.credits;
            expected = static_cast<std::int64_t>(end);
        }
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::printf(
            "RESULT store=%s events=%zu batch=%zu seconds=%.3f events_per_s=%.0f credits=%llu\n",
            url.substr(0, url.find(':')).c_str(), bodies.size(), batch, seconds,
            static_cast<double>(bodies.size()) / seconds, static_cast<unsigned long long>(credits));
        if (credits != transfers) {
            std::fprintf(stderr, "expected %zu credits, got %llu\n", transfers,
                         static_cast<unsigned long long>(credits));
            return 1;
        }
    }
    return 0;
}
