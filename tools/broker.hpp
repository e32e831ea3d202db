#pragma once
// The Kafka-protocol test broker, run standalone (`meshhook broker`) or
// embedded (`meshhook dev`), on one of two engines: librdkafka's mock cluster
// (in-process, starts in milliseconds) or Apache Kafka itself (KRaft JVMs,
// tools/apache_cluster.hpp).

#include <filesystem>
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
    // apache only: also open a SASL_SSL listener (SCRAM-SHA-512 user, a
    // throwaway CA and broker certificate made with openssl at start).
    bool sasl_ssl = false;
};

// How to reach the SASL_SSL listener of a cluster started with sasl_ssl.
struct SaslSslListener {
    std::string bootstrap;  // HOST:PORT,...
    std::string ca_file;    // PEM of the CA that signed the brokers' certificate
    std::string username;
    std::string password;
};

// What tests and `meshhook dev` need of a cluster, whichever engine runs it.
// Each command returns an empty string on success, else the reason.
class TestCluster {
public:
    virtual ~TestCluster() = default;
    virtual const std::string& bootstrap() const = 0;
    virtual std::string create_topic(const std::string& name, int partitions,
                                     int replication_factor) = 0;
    virtual std::string broker_down(int broker_id) = 0;  // ids are 1..broker_count()
    virtual std::string broker_up(int broker_id) = 0;
    // Alters one topic config through Kafka's admin API (the mock has none).
    virtual std::string alter_topic_config(const std::string& topic, const std::string& key,
                                           const std::string& value) = 0;
    // Every broker up, every topic deleted, `topics` created anew: a clean
    // cluster for the next test without the cost of a new one.
    virtual std::string reset(const std::vector<std::string>& topics, int partitions) = 0;
    virtual int broker_count() const = 0;
    virtual const char* engine() const = 0;
    // Empty bootstrap when there is none (the mock; apache without sasl_ssl).
    virtual SaslSslListener sasl_ssl() const { return {}; }
};

// `engine` is "mock" or "apache" (else std::invalid_argument).
std::unique_ptr<TestCluster> make_cluster(const std::string& engine, const BrokerOptions& options,
                                          const std::filesystem::path& kafka_libs);

// An in-process mock cluster reachable over TCP on 127.0.0.1. Used by
// `meshhook broker` (standalone) and `meshhook dev` (embedded).
class MockCluster final : public TestCluster {
public:
    explicit MockCluster(const BrokerOptions& options);
    ~MockCluster() override;
    MockCluster(const MockCluster&) = delete;
    MockCluster& operator=(const MockCluster&) = delete;

    const std::string& bootstrap() const override { return bootstrap_; }
    std::string create_topic(const std::string& name, int partitions,
                             int replication_factor) override;
    std::string broker_down(int broker_id) override;
    std::string broker_up(int broker_id) override;
    std::string alter_topic_config(const std::string&, const std::string&,
                                   const std::string&) override {
        return "unsupported";
    }
    std::string reset(const std::vector<std::string>&, int) override { return "unsupported"; }
    int broker_count() const override { return brokers_; }
    const char* engine() const override { return "mock"; }

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
