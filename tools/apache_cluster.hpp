#pragma once
// A real Apache Kafka cluster (KRaft) on loopback, for tests and `meshhook
// dev --engine apache`: N JVMs, each a combined broker+controller (a quorum
// of N voters), data in a temporary directory removed on destruction. The
// Kafka jars come from `make kafka` (tools/kafka/pom.xml).

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tools/broker.hpp"

namespace meshhook::tools {

// Where the jars are unless --kafka-libs / MESHHOOK_KAFKA_LIBS say otherwise.
std::filesystem::path default_kafka_libs();

class ApacheCluster final : public TestCluster {
public:
    // Throws std::runtime_error with one line (no JVM, no jars, a node that
    // did not come up) after stopping whatever it had started.
    ApacheCluster(const BrokerOptions& options, std::filesystem::path kafka_libs);
    ~ApacheCluster() override;

    const std::string& bootstrap() const override { return bootstrap_; }
    std::string create_topic(const std::string& name, int partitions,
                             int replication_factor) override;
    std::string broker_down(int broker_id) override;
    std::string broker_up(int broker_id) override;
    std::string alter_topic_config(const std::string& topic, const std::string& key,
                                   const std::string& value) override;
    std::string reset(const std::vector<std::string>& topics, int partitions) override;
    int broker_count() const override { return static_cast<int>(nodes_.size()); }
    const char* engine() const override { return "apache"; }
    SaslSslListener sasl_ssl() const override { return sasl_; }

private:
    struct Node {
        int id = 0;
        std::uint16_t port = 0;             // PLAINTEXT, what clients use
        std::uint16_t controller_port = 0;  // CONTROLLER
        std::uint16_t sasl_ssl_port = 0;    // SASL_SSL, when asked for
        std::filesystem::path config;
        std::filesystem::path log;
        pid_t pid = -1;
    };
    void make_tls_material();
    void write_configs(int partitions);
    void format_storage();
    void start_node(Node& node);
    void stop_node(Node& node);
    void stop_all();
    std::vector<std::string> java_command(const std::string& main_class,
                                          const std::vector<std::string>& args) const;
    // Empty on success, else the reason (with the tail of a failed node's log).
    std::string wait_until_registered(int expected_brokers, int timeout_s);
    std::string wait_for_leaders(const std::vector<std::string>& topics, int timeout_s);
    std::string warm_up();
    std::string create_topic_with_configs(const std::string& name, int partitions);
    std::string node_log_tail(const Node& node) const;

    std::filesystem::path java_;
    std::filesystem::path libs_;
    std::filesystem::path dir_;
    std::vector<Node> nodes_;
    std::string bootstrap_;
    std::string cluster_id_;
    int replication_ = 1;
    int min_insync_ = 1;
    SaslSslListener sasl_;
    rd_kafka_s* admin_ = nullptr;
};

}  // namespace meshhook::tools
