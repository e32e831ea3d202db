#pragma once
// The Kafka-protocol test broker: librdkafka's mock cluster, run standalone.

#include <memory>
#include <string>
#include <vector>

struct rd_kafka_s;

namespace meshhook::tools {

struct BrokerOptions {
    int brokers = 3;
    int partitions = 4;          // for the topics created at start
    int replication_factor = 3;  // capped at `brokers`
    std::vector<std::string> topics;
};

// An in-process mock cluster reachable over TCP on 127.0.0.1. Used by
// `meshhook broker` (standalone) and `meshhook dev` (embedded).
class MockCluster {
public:
    explicit MockCluster(const BrokerOptions& options);
    ~MockCluster();
    MockCluster(const MockCluster&) = delete;
    MockCluster& operator=(const MockCluster&) = delete;

    const std::string& bootstrap() const { return bootstrap_; }
    // Each returns an empty string on success, else the reason.
    std::string create_topic(const std::string& name, int partitions, int replication_factor);
    std::string broker_down(int broker_id);
    std::string broker_up(int broker_id);
    int broker_count() const { return brokers_; }

private:
    rd_kafka_s* rk_ = nullptr;  // owns the cluster
    void* cluster_ = nullptr;
    std::string bootstrap_;
    int brokers_ = 0;
};

// Default topics of the pipeline, created by `meshhook broker` and `meshhook dev`.
std::vector<std::string> default_topics();

// `meshhook broker [flags]`: see --help. Returns the process exit code.
int broker_main(int argc, const char* const* argv);

}  // namespace meshhook::tools
