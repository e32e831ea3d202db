#include "tests/integration/consumer/harness.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <set>
#include <sstream>

namespace meshhook::testing {

Feeder::Feeder(const std::string& bootstrap)
    : producer_({{"bootstrap.servers", bootstrap}, {"linger.ms", "5"}}) {}

void Feeder::send(const std::string& key, const std::string& body, const std::string& environment) {
    std::vector<common::Header> headers;
    if (!environment.empty()) {
        headers.push_back({"environment", environment});
    }
    common::ProduceStatus status = producer_.produce(kInputTopic, key, body, headers, nullptr);
    for (int attempt = 0; status == common::ProduceStatus::kQueueFull && attempt < 100; ++attempt) {
        producer_.flush(std::chrono::milliseconds(100));
        status = producer_.produce(kInputTopic, key, body, headers, nullptr);
    }
    ASSERT_EQ(status, common::ProduceStatus::kEnqueued) << common::to_string(status);
}

void Feeder::flush() {
    ASSERT_EQ(producer_.flush(std::chrono::seconds(30)), 0);
}

// Ends are log ends (read_uncommitted): a read_committed read reaches them
// only once every transaction below is decided and its markers are written.
// A relay's commit returns before its markers land, so an end taken at the
// last stable offset could leave a just-committed credit out of the read.
TopicReader::TopicReader(const std::string& bootstrap)
    : bootstrap_(bootstrap),
      meta_({{"bootstrap.servers", bootstrap}, {"isolation.level", "read_uncommitted"}}) {}

std::int64_t TopicReader::end_offset_sum(const std::string& topic) {
    const auto partitions = meta_.partition_count(topic, std::chrono::seconds(5));
    if (!partitions) {
        return -1;
    }
    std::int64_t sum = 0;
    for (std::int32_t p = 0; p < *partitions; ++p) {
        const auto marks = meta_.watermarks(topic, p, std::chrono::seconds(5));
        if (!marks) {
            return -1;
        }
        sum += marks->second;
    }
    return sum;
}

std::vector<TopicRecord> TopicReader::read_all(const std::string& topic) {
    std::vector<TopicRecord> out;
    const auto partitions = meta_.partition_count(topic, std::chrono::seconds(5));
    EXPECT_TRUE(partitions.has_value()) << topic;
    if (!partitions) {
        return out;
    }
    // A group.id is needed for assign(); the group is never joined. Reads as
    // a ledger must (read_committed), and ends each partition at its
    // end-of-partition event: the last offset may be a transaction marker.
    common::Consumer reader({{"bootstrap.servers", bootstrap_},
                             {"group.id", "test-reader"},
                             {"isolation.level", "read_committed"},
                             {"enable.partition.eof", "true"}});
    std::vector<common::TopicPartition> assignment;
    std::map<std::int32_t, std::int64_t> ends;
    for (std::int32_t p = 0; p < *partitions; ++p) {
        const auto marks = meta_.watermarks(topic, p, std::chrono::seconds(5));
        EXPECT_TRUE(marks.has_value());
        if (marks && marks->second > marks->first) {
            assignment.push_back({topic, p, common::kOffsetBeginning});
            ends[p] = marks->second;
        }
    }
    if (assignment.empty()) {
        return out;
    }
    reader.assign(assignment);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!ends.empty() && std::chrono::steady_clock::now() < deadline) {
        const common::Message m = reader.poll(std::chrono::milliseconds(200));
        if (!m || (m.error() && !m.is_partition_eof())) {
            continue;
        }
        const auto it = ends.find(m.partition());
        if (it == ends.end()) {
            continue;
        }
        if (m.is_partition_eof()) {
            if (m.offset() >= it->second) {
                ends.erase(it);
            }
            continue;
        }
        if (m.offset() >= it->second) {
            continue;
        }
        out.push_back({std::string(m.key().value_or("")), std::string(m.value()),
                       std::string(m.header("dedup-key").value_or("")), m.partition(), m.offset()});
    }
    EXPECT_TRUE(ends.empty()) << "could not read " << topic << " to its end";
    reader.close();
    return out;
}

std::map<std::string, std::vector<std::string>> values_by_key(const std::string& bootstrap,
                                                              const std::string& topic) {
    TopicReader reader(bootstrap);
    std::map<std::string, std::vector<std::string>> out;
    for (const TopicRecord& r : reader.read_all(topic)) out[r.key].push_back(r.value);
    return out;
}

std::unique_ptr<Process> start_consumer(ConsumerRun& run) {
    if (run.metrics_port == 0) {
        run.metrics_port = free_port();
    }
    std::vector<std::string> argv{binary_path("meshhook-consumer").string(),
                                  "--brokers",
                                  run.bootstrap,
                                  "--store",
                                  run.store_url,
                                  "--group-id",
                                  run.group_id,
                                  "--session-timeout-ms",
                                  "6000",
                                  "--batch-ms",
                                  "20",
                                  "--metrics-listen",
                                  "127.0.0.1:" + std::to_string(run.metrics_port)};
    argv.insert(argv.end(), run.extra_args.begin(), run.extra_args.end());
    auto process = std::make_unique<Process>(argv, run.env);
    const auto line = process->read_line(std::chrono::seconds(20));
    EXPECT_EQ(line, std::optional<std::string>("meshhook-consumer: ready"))
        << process->stderr_text();
    return process;
}

bool caught_up(consumer::Store& store, TopicReader& reader) {
    const std::int64_t end = reader.end_offset_sum(kInputTopic);
    if (end < 0) {
        return false;
    }
    std::int64_t applied = 0;
    for (const auto& [partition, offset] : store.offsets(kInputTopic)) {
        applied += offset;
    }
    return applied == end && store.outbox_stats().unsent == 0;
}

// Sum of a metric's samples whose line contains every one of `labels`.
double metric_sum(std::uint16_t port, const std::string& name, const std::string& labels) {
    const auto [status, body] = http_get(port, "/metrics");
    if (status != 200) return -1;
    double sum = 0;
    std::istringstream in(body);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.starts_with(name) || line.starts_with("#")) continue;
        const char next = line.size() > name.size() ? line[name.size()] : ' ';
        if (next != '{' && next != ' ') continue;
        if (!labels.empty() && line.find(labels) == std::string::npos) continue;
        sum += std::stod(line.substr(line.rfind(' ') + 1));
    }
    return sum;
}

std::pair<int, std::string> http_get(std::uint16_t port, const std::string& path) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval timeout{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return {0, {}};
    }
    const std::string request = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
    ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string response;
    char buf[4096];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            break;
        }
        response.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    if (response.size() < 12) {
        return {0, response};
    }
    const int status = std::stoi(response.substr(9, 3));
    const auto body = response.find("\r\n\r\n");
    return {status, body == std::string::npos ? std::string() : response.substr(body + 4)};
}

std::string unique_name(const std::string& prefix) {
    static std::atomic<int> counter{0};
    std::random_device random;
    return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) +
           "-" + std::to_string(random() % 100000);
}

}  // namespace meshhook::testing
