// `meshhook dev` with the real services: the demo, the random scenario, and
// that nothing outlives it (Ctrl-C, a crashed child).
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "tests/integration/tools/cli_harness.hpp"
#include "tests/support/process.hpp"
#include "tools/http_client.hpp"
#include "tools/json_field.hpp"
#include "tools/scenario.hpp"
#include "tools/topic_reader.hpp"
#include "tools/util.hpp"

namespace meshhook::testing {
namespace {

std::vector<int> child_pids(const std::string& out) {
    std::vector<int> pids;
    const std::regex started(R"(started meshhook-(ingest|consumer) \(pid ([0-9]+)\))");
    for (std::sregex_iterator it(out.begin(), out.end(), started), end; it != end; ++it) {
        pids.push_back(std::stoi((*it)[2].str()));
    }
    return pids;
}

std::size_t count(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
        ++n;
    return n;
}

// `meshhook dev` running in the background, its stdout drained by a thread
// (a full pipe would block it).
class Dev {
public:
    explicit Dev(std::vector<std::string> args) {
        args.insert(args.begin(), {binary_path("meshhook").string(), "dev"});
        process_ = std::make_unique<Process>(args);
        reader_ = std::thread([this] {
            while (!stop_) {
                auto line = process_->read_line(100ms);
                if (!line) {
                    if (!process_->running()) {
                        // Drain what is left, then stop.
                        while ((line = process_->read_line(100ms))) add(*line);
                        return;
                    }
                    continue;
                }
                add(*line);
            }
        });
    }
    ~Dev() {
        stop_ = true;
        reader_.join();
    }

    // The first line matching `pattern` (its first capture group), waiting up to `timeout`.
    std::optional<std::string> find(const std::string& pattern, std::chrono::milliseconds timeout) {
        const std::regex re(pattern);
        std::optional<std::string> found;
        wait_until(
            [&] {
                std::lock_guard lock(mutex_);
                for (const auto& l : lines_) {
                    std::smatch m;
                    if (std::regex_search(l, m, re)) {
                        found = m.size() > 1 ? m[1].str() : l;
                        return true;
                    }
                }
                return false;
            },
            timeout);
        return found;
    }

    std::string output() {
        std::lock_guard lock(mutex_);
        std::string out;
        for (const auto& l : lines_) out += l + "\n";
        return out;
    }
    Process& process() { return *process_; }

private:
    void add(const std::string& line) {
        std::lock_guard lock(mutex_);
        lines_.push_back(line);
    }

    std::unique_ptr<Process> process_;
    std::thread reader_;
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::vector<std::string> lines_;
};

TEST(DevDemo,
     DroppedSucceededIsRecoveredByReconciliationExactlyOnceAmountUnchangedNothingLeftRunning) {
    const auto r = run_meshhook({"dev", "--demo"}, {}, "", 180s);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("credit commands on ledger.credit-commands: 1\n"), std::string::npos)
        << r.out;
    EXPECT_EQ(count(r.out, "\"transferId\": \"4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01\""), 1U)
        << r.out;
    EXPECT_EQ(count(r.out, "\"amount\": \"250.000000000000000001\""), 1U) << r.out;
    EXPECT_EQ(count(r.out, "\"transferId\": \""), 1U) << r.out;
    EXPECT_NE(r.out.find("demo: ok"), std::string::npos);
    // The succeeded webhooks were dropped on purpose: the credit came from
    // reconciliation with the in-process Mesh simulator.
    EXPECT_NE(r.out.find("the succeeded one and Mesh's retry of it are dropped"), std::string::npos)
        << r.out;
    EXPECT_EQ(r.out.find("03-succeeded.json: 200"), std::string::npos) << r.out;
    EXPECT_EQ(count(r.out,
                    "\"eventId\": \"reconcile:4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01:"
                    "succeeded\""),
              1U)
        << r.out;
    EXPECT_NE(r.out.find("recovered by reconciliation"), std::string::npos) << r.out;
    const auto pids = child_pids(r.out);
    ASSERT_EQ(pids.size(), 2U) << r.out;
    for (int pid : pids) EXPECT_FALSE(process_alive(pid)) << pid;
    // The temporary store directory goes with it.
    const std::regex store(R"(sqlite://(/[^ ]*)/meshhook\.db)");
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, store)) << r.out;
    EXPECT_FALSE(std::filesystem::exists(m[1].str())) << m[1].str();
}

TEST(DevDemo, MissingServiceBinaryIsSaidPlainlyInOneLine) {
    const auto empty =
        std::filesystem::temp_directory_path() / ("meshhook-nobin-" + std::to_string(::getpid()));
    std::filesystem::create_directories(empty);
    const auto r = run_meshhook({"dev", "--demo", "--bin-dir", empty.string()});
    std::filesystem::remove_all(empty);
    EXPECT_EQ(r.code, 1);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("meshhook-ingest not found in " + empty.string()), std::string::npos)
        << r.err;
}

TEST(Dev, CtrlCStopsEveryChildAndExitsZero) {
    Dev dev({});
    ASSERT_TRUE(dev.find("meshhook dev: ready", 90s))
        << dev.output() << dev.process().stderr_text();
    const auto pids = child_pids(dev.output());
    ASSERT_EQ(pids.size(), 2U);
    dev.process().signal(SIGINT);
    EXPECT_EQ(dev.process().wait(30s), 0) << dev.output() << dev.process().stderr_text();
    for (int pid : pids) EXPECT_FALSE(process_alive(pid)) << pid;
}

TEST(Dev, ACrashedChildStopsTheOtherAndExitsNonZeroSayingWhich) {
    Dev dev({});
    ASSERT_TRUE(dev.find("meshhook dev: ready", 90s)) << dev.output();
    const auto consumer = dev.find(R"(started meshhook-consumer \(pid ([0-9]+)\))", 1s);
    const auto ingest = dev.find(R"(started meshhook-ingest \(pid ([0-9]+)\))", 1s);
    ASSERT_TRUE(consumer && ingest);
    ::kill(std::stoi(*consumer), SIGKILL);
    EXPECT_EQ(dev.process().wait(30s), 1) << dev.output();
    EXPECT_NE(dev.process().stderr_text().find(
                  "meshhook-consumer exited unexpectedly (killed by signal 9"),
              std::string::npos)
        << dev.process().stderr_text();
    EXPECT_FALSE(process_alive(std::stoi(*ingest)));
    EXPECT_FALSE(process_alive(std::stoi(*consumer)));
}

TEST(DevRandom, ThousandTransfersEndWithEverySucceededTransferCreditedOnce) {
    constexpr std::size_t kTransfers = 1000;
    constexpr std::uint64_t kSeed = 20261128;
    Dev dev({"--color", "never"});
    ASSERT_TRUE(dev.find("meshhook dev: ready", 90s)) << dev.output();
    const auto url = dev.find(R"(webhook URL +(\S+))", 1s);
    const auto secret = dev.find(R"(secret +(\S+))", 1s);
    const auto brokers = dev.find(R"(brokers +(\S+))", 1s);
    const auto metrics_port = dev.find(R"(http://127\.0\.0\.1:([0-9]+)/metrics \(consumer\))", 1s);
    const auto ingest_port = dev.find(R"(http://127\.0\.0\.1:([0-9]+)/metrics \(ingest\))", 1s);
    ASSERT_TRUE(url && secret && brokers && metrics_port && ingest_port) << dev.output();

    const auto send = run_meshhook(
        {"send", "--url", *url, "--secret", *secret, "--scenario", "random", "--transfers",
         std::to_string(kTransfers), "--seed", std::to_string(kSeed), "--concurrency", "8"},
        {}, "", 300s);
    ASSERT_EQ(send.code, 0) << send.out << send.err;
    // The same generator, linked in: what should have been credited.
    const auto scenario = tools::random_scenario(kTransfers, kSeed);
    std::map<std::string, std::string> expected;
    for (const auto& c : scenario.credits) expected[c.transfer_id] = c.amount;
    ASSERT_GT(expected.size(), kTransfers / 2);

    // The scenario's exact duplicates (same delivery Id) that came after the
    // first copy's 200 were answered by ingest without a second record.
    const auto ingest_metrics = tools::http_get(
        "127.0.0.1", static_cast<std::uint16_t>(std::stoi(*ingest_port)), "/metrics", 2s);
    ASSERT_TRUE(ingest_metrics.response);
    const double repeated = tools::prometheus_sum(ingest_metrics.response->body,
                                                  "meshhook_ingest_repeated_deliveries_total")
                                .value_or(0);
    const double produced = static_cast<double>(scenario.deliveries) - repeated;

    // Settled: every produced delivery consumed and every credit written to the
    // outbox acknowledged by the broker; only then is the credit topic
    // complete, so "once" covers late duplicates too.
    const auto port = static_cast<std::uint16_t>(std::stoi(*metrics_port));
    double events = 0;
    double credits = 0;
    double sent = 0;
    // The backlog gauge is sampled once a second; the counters are exact.
    ASSERT_TRUE(wait_until(
        [&] {
            const auto r = tools::http_get("127.0.0.1", port, "/metrics", 2s);
            if (!r.response) return false;
            const auto& text = r.response->body;
            events = tools::prometheus_sum(text, "meshhook_consumer_events_total").value_or(0);
            credits = tools::prometheus_sum(text, "meshhook_consumer_credits_total").value_or(0);
            sent = tools::prometheus_sum(text, "meshhook_consumer_outbox_sent_total",
                                         "topic=\"ledger.credit-commands\"")
                       .value_or(0);
            return events >= produced && credits > 0 && sent >= credits;
        },
        180s))
        << "events " << events << " of " << produced << " (" << repeated
        << " repeats not produced), credits " << credits << ", sent " << sent;
    EXPECT_EQ(credits, static_cast<double>(expected.size()));

    std::map<std::string, std::vector<std::string>> credited;  // transferId -> amounts
    tools::TopicReader reader(*brokers, "ledger.credit-commands", false);
    ASSERT_TRUE(wait_until(
        [&] {
            for (auto msg = reader.next(100ms); msg; msg = reader.next(0ms)) {
                const auto value = std::string(msg.value());
                credited[tools::json_field(value, "transferId").value_or("?")].push_back(
                    tools::json_field(value, "amount").value_or("?"));
            }
            return reader.caught_up();
        },
        60s));
    if (credited.size() != expected.size()) {
        common::Consumer probe(tools::reader_config(*brokers));
        for (int p = 0; p < 4; ++p) {
            const auto w = probe.watermarks("ledger.credit-commands", p, 5s);
            std::cerr << "partition " << p << ": "
                      << (w ? std::to_string(w->first) + ".." + std::to_string(w->second) : "?")
                      << "\n";
        }
    }
    ASSERT_EQ(credited.size(), expected.size())
        << "brokers " << *brokers << ", " << reader.partitions()
        << " partitions, last error: " << reader.last_error();
    for (const auto& [transfer, amount] : expected) {
        const auto it = credited.find(transfer);
        ASSERT_NE(it, credited.end()) << "never credited: " << transfer;
        ASSERT_EQ(it->second.size(), 1U)
            << "credited " << it->second.size() << " times: " << transfer;
        EXPECT_EQ(it->second.front(), amount) << transfer;
    }
    for (const auto& [transfer, amounts] : credited) {
        EXPECT_TRUE(expected.contains(transfer)) << "credited but not succeeded: " << transfer;
    }

    // The real ingest refuses a wrong secret with 401; send says so in one line.
    const auto refused = run_meshhook({"send", "--url", *url, "--secret", "whsec_wrong",
                                       "--max-attempts", "1", "--scenario", "demo"});
    EXPECT_EQ(refused.code, 1);
    EXPECT_NE(refused.out.find("401 x5"), std::string::npos) << refused.out;
    ASSERT_EQ(lines_of(refused.err).size(), 1U) << refused.err;
    EXPECT_NE(refused.err.find("check --secret"), std::string::npos) << refused.err;

    dev.process().signal(SIGINT);
    EXPECT_EQ(dev.process().wait(30s), 0);
}

}  // namespace
}  // namespace meshhook::testing
