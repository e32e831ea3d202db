#pragma once
// What the consumer's integration and e2e tests share: feeding the input
// topic, reading output topics to their end, running meshhook-consumer as a
// child process, and waiting until it has applied and sent everything.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/kafka.hpp"
#include "common/wire.hpp"
#include "consumer/store.hpp"
#include "tests/support/process.hpp"

namespace meshhook::testing {

inline const std::string kInputTopic{wire::kTransferEventsTopic};
inline const std::string kCreditTopic{wire::kCreditCommandsTopic};
inline const std::string kReviewTopic{wire::kCreditReviewTopic};
inline const std::string kAnomalyTopic{wire::kAnomaliesTopic};

struct TopicRecord {
    std::string key;
    std::string value;
    std::string dedup_key;  // the `dedup-key` header
    std::int32_t partition = 0;
    std::int64_t offset = 0;
};

// Produces to the input topic as meshhook-ingest does: key = TransferId,
// value = the raw body, optional `environment` header.
class Feeder {
public:
    explicit Feeder(const std::string& bootstrap);
    void send(const std::string& key, const std::string& body, const std::string& environment = "");
    // Waits for every delivery report; fails the test if one is missing.
    void flush();

private:
    common::Producer producer_;
};

// Reads partitions of one cluster to their current end.
class TopicReader {
public:
    explicit TopicReader(const std::string& bootstrap);
    std::vector<TopicRecord> read_all(const std::string& topic);
    // Sum over partitions of the high watermark.
    std::int64_t end_offset_sum(const std::string& topic);

private:
    std::string bootstrap_;
    common::Consumer meta_;
};

// A topic's record values by key, read to its end: credits by TransferId.
std::map<std::string, std::vector<std::string>> values_by_key(const std::string& bootstrap,
                                                              const std::string& topic);

struct ConsumerRun {
    std::string bootstrap;
    std::string store_url;
    std::string group_id;
    std::vector<std::string> extra_args;
    std::uint16_t metrics_port = 0;          // 0: a free port is picked
    std::map<std::string, std::string> env;  // added to the process environment
};

// Starts meshhook-consumer and waits for its "ready" line (fails the test
// otherwise). `run.metrics_port` is filled in.
std::unique_ptr<Process> start_consumer(ConsumerRun& run);

// True once the store holds offsets up to the end of the input topic and
// its outbox has nothing unsent.
bool caught_up(consumer::Store& store, TopicReader& reader);

// GET over a real socket; returns the status line's code and the body.
std::pair<int, std::string> http_get(std::uint16_t port, const std::string& path);

// The sum of a metric's samples on /metrics whose line contains `labels`
// (e.g. `outcome="ok"`); -1 when /metrics does not answer.
double metric_sum(std::uint16_t port, const std::string& name, const std::string& labels = "");

std::string unique_name(const std::string& prefix);

}  // namespace meshhook::testing
