#include "tools/broker.hpp"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "common/config.hpp"
#include "common/wire.hpp"
#include "tools/apache_cluster.hpp"
#include "tools/util.hpp"

namespace meshhook::tools {
namespace {

rd_kafka_mock_cluster_t* as_cluster(void* p) {
    return static_cast<rd_kafka_mock_cluster_t*>(p);
}

std::string err_text(rd_kafka_resp_err_t err) {
    return err == RD_KAFKA_RESP_ERR_NO_ERROR ? std::string() : std::string(rd_kafka_err2str(err));
}

}  // namespace

std::vector<std::string> default_topics() {
    std::vector<std::string> topics;
    topics.reserve(wire::kPipelineTopics.size());
    for (const auto& spec : wire::kPipelineTopics) topics.emplace_back(spec.name);
    return topics;
}

MockCluster::MockCluster(const BrokerOptions& options) : brokers_(options.brokers) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    // The mock's own log lines are noise for users of the broker; errors still
    // surface through the control channel's replies.
    if (rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(err);
    }
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk_ == nullptr) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error(std::string("mock cluster: ") + err);
    }
    cluster_ = rd_kafka_mock_cluster_new(rk_, options.brokers);
    if (cluster_ == nullptr) {
        rd_kafka_destroy(rk_);
        throw std::runtime_error("mock cluster: could not start");
    }
    bootstrap_ = rd_kafka_mock_cluster_bootstraps(as_cluster(cluster_));
    const int rf = std::min(options.replication_factor, options.brokers);
    for (const auto& topic : options.topics) {
        if (auto e = create_topic(topic, options.partitions, rf); !e.empty()) {
            throw std::runtime_error("topic " + topic + ": " + e);
        }
    }
}

MockCluster::~MockCluster() {
    if (cluster_ != nullptr) rd_kafka_mock_cluster_destroy(as_cluster(cluster_));
    if (rk_ != nullptr) rd_kafka_destroy(rk_);
}

std::string MockCluster::create_topic(const std::string& name, int partitions,
                                      int replication_factor) {
    if (partitions < 1) return "partitions must be at least 1";
    return err_text(rd_kafka_mock_topic_create(as_cluster(cluster_), name.c_str(), partitions,
                                               std::min(replication_factor, brokers_)));
}

std::string MockCluster::broker_down(int broker_id) {
    if (broker_id < 1 || broker_id > brokers_) return "no broker " + std::to_string(broker_id);
    return err_text(rd_kafka_mock_broker_set_down(as_cluster(cluster_), broker_id));
}

std::string MockCluster::broker_up(int broker_id) {
    if (broker_id < 1 || broker_id > brokers_) return "no broker " + std::to_string(broker_id);
    return err_text(rd_kafka_mock_broker_set_up(as_cluster(cluster_), broker_id));
}

std::unique_ptr<TestCluster> make_cluster(const std::string& engine, const BrokerOptions& options,
                                          const std::filesystem::path& kafka_libs) {
    if (engine == "mock") return std::make_unique<MockCluster>(options);
    if (engine == "apache") return std::make_unique<ApacheCluster>(options, kafka_libs);
    throw std::invalid_argument("unknown engine '" + engine + "' (mock or apache)");
}

namespace {

constexpr const char* kControlHelp =
    "Control channel (stdin, one command per line; each answered on stdout by\n"
    "\"ok\" or \"error <reason>\"):\n"
    "  topic NAME PARTITIONS   create a topic\n"
    "  down ID | up ID         stop / start broker ID (1..N): its connections drop\n"
    "                          (apache: SIGKILL of its JVM / restart on the same\n"
    "                          port and log directory)\n"
    "  down all | up all       every broker\n"
    "  config TOPIC KEY=VALUE  alter a topic config (apache only; the mock answers\n"
    "                          \"error unsupported\")\n"
    "  reset PARTITIONS [T,..] every broker up, every topic deleted, these topics\n"
    "                          created anew (apache only)\n"
    "  quit                    stop (so does closing stdin, SIGINT or SIGTERM)\n";

std::string run_command(TestCluster& cluster, const std::string& verb, std::istream& in) {
    if (verb == "topic") {
        std::string name;
        int partitions = 0;
        if (!(in >> name >> partitions)) return "error usage: topic NAME PARTITIONS";
        auto e = cluster.create_topic(name, partitions, 3);
        return e.empty() ? "ok" : "error " + e;
    }
    if (verb == "down" || verb == "up") {
        std::string which;
        in >> which;
        std::vector<int> ids;
        if (which == "all") {
            for (int i = 1; i <= cluster.broker_count(); ++i) ids.push_back(i);
        } else {
            try {
                ids.push_back(std::stoi(which));
            } catch (const std::exception&) {
                return "error usage: " + verb + " ID|all";
            }
        }
        for (int id : ids) {
            auto e = verb == "down" ? cluster.broker_down(id) : cluster.broker_up(id);
            if (!e.empty()) return "error " + e;
        }
        return "ok";
    }
    if (verb == "config") {
        std::string topic;
        std::string assignment;
        if (!(in >> topic >> assignment) || assignment.find('=') == std::string::npos) {
            return "error usage: config TOPIC KEY=VALUE";
        }
        const auto eq = assignment.find('=');
        auto e =
            cluster.alter_topic_config(topic, assignment.substr(0, eq), assignment.substr(eq + 1));
        return e.empty() ? "ok" : "error " + e;
    }
    if (verb == "reset") {
        int partitions = 0;
        std::string topics;
        if (!(in >> partitions)) return "error usage: reset PARTITIONS [TOPIC,...]";
        in >> topics;
        auto e = cluster.reset(common::split_list(topics), partitions);
        return e.empty() ? "ok" : "error " + e;
    }
    return "error unknown command: " + verb;
}

}  // namespace

int broker_main(int argc, const char* const* argv) {
    common::Settings settings(
        "meshhook broker",
        "Runs a Kafka test cluster on 127.0.0.1 and, once every broker is registered\n"
        "and every topic has a leader, prints its bootstrap address as the first\n"
        "line: bootstrap=HOST:PORT,...\n"
        "Engines: mock (librdkafka's mock cluster, in this process, starts at once;\n"
        "keeps about 5 MiB per partition, no compaction, no transactions, no\n"
        "replication) and apache (Apache Kafka itself in KRaft mode: one JVM per\n"
        "broker, each also a controller voter; data in a temporary directory removed\n"
        "at exit; topics with replication min(3, N) and min.insync.replicas 2 when\n"
        "N >= 3; needs Java 17 and the jars of `make kafka`).\n\n" +
            std::string(kControlHelp));
    settings.add({"engine", "MESHHOOK_BROKER_ENGINE", "mock", "mock or apache"})
        .add({"kafka-libs", "MESHHOOK_KAFKA_LIBS", default_kafka_libs().string(),
              "directory of the Apache Kafka jars (engine apache)"})
        .add({"brokers", "MESHHOOK_BROKER_COUNT", "3", "number of brokers"})
        .add({"partitions", "MESHHOOK_BROKER_PARTITIONS", "4",
              "partitions of each topic created at start"})
        .add({"topics", "MESHHOOK_BROKER_TOPICS", "",
              "comma-separated topics to create at start (default: the pipeline's five topics)"})
        .add({"no-default-topics", "", "", "create only --topics", false, true})
        .add({"sasl-ssl", "", "",
              "apache: also open a SASL_SSL listener (PLAIN and SCRAM-SHA-512, one user, a "
              "throwaway CA) and print, after the bootstrap line: sasl_ssl=HOST:PORT,... "
              "ca=PEM username=U password=P",
              false, true});
    try {
        if (settings.parse(argc, argv) == common::Settings::Outcome::kHelp) {
            std::cout << settings.help_text();
            return 0;
        }
        BrokerOptions options;
        options.brokers = static_cast<int>(
            common::parse_uint(settings.describe("brokers"), settings.get("brokers"), 1, 16));
        options.partitions = static_cast<int>(common::parse_uint(
            settings.describe("partitions"), settings.get("partitions"), 1, 256));
        if (!settings.is_set("no-default-topics")) options.topics = default_topics();
        options.sasl_ssl = settings.is_set("sasl-ssl");
        for (auto& t : common::split_list(settings.get("topics"))) options.topics.push_back(t);

        const std::string engine = settings.get("engine");
        if (engine != "mock" && engine != "apache") {
            throw common::ConfigError(settings.describe("engine") + ": '" + engine +
                                      "' is not mock or apache");
        }
        if (options.sasl_ssl && engine != "apache") {
            throw common::ConfigError(
                "--sasl-ssl: the mock has no SASL or TLS (use --engine apache)");
        }
        // SIGTERM during the apache engine's start still stops every JVM.
        catch_stop_signals();
        auto cluster_ptr = make_cluster(engine, options, settings.get("kafka-libs"));
        TestCluster& cluster = *cluster_ptr;
        std::cout << "bootstrap=" << cluster.bootstrap() << std::endl;
        if (const auto sasl = cluster.sasl_ssl(); !sasl.bootstrap.empty()) {
            std::cout << "sasl_ssl=" << sasl.bootstrap << " ca=" << sasl.ca_file
                      << " username=" << sasl.username << " password=" << sasl.password
                      << std::endl;
        }

        // Control loop on stdin. EOF means the owner is gone: stop, so a test
        // that dies never leaves a broker behind.
        control_loop([&cluster](const std::string& verb, std::istream& args) {
            return run_command(cluster, verb, args);
        });
        return 0;
    } catch (const common::ConfigError& e) {
        common::fail_config("meshhook broker", e);
    } catch (const std::exception& e) {
        std::cerr << "meshhook broker: " << e.what() << "\n";
        return 1;
    }
}

}  // namespace meshhook::tools
