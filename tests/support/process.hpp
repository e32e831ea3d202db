#pragma once
// Test support: child processes the tests own (no orphans), the Kafka-protocol
// test broker in its own process, a throwaway PostgreSQL server, and waiting
// on conditions with deadlines instead of sleeping.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshhook::testing {

using namespace std::chrono_literals;

// Polls `condition` every few milliseconds until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// Path of a binary built by this project (e.g. "meshhook-ingest", "meshhook").
std::filesystem::path binary_path(const std::string& name);
// Path of a fixture body in tests/fixtures/ (e.g. "03-succeeded.json").
std::filesystem::path fixture_path(const std::string& name);
std::string read_file(const std::filesystem::path& path);
std::string fixture(const std::string& name);  // its exact bytes
// The fixture as Mesh would send it now: SentTimestamp set to the present
// (common::restamp_sent_timestamp). ingest's replay window is on by default
// and the fixtures were sent in November 2025.
std::string fresh_fixture(const std::string& name);

// A TCP port on 127.0.0.1 that was free a moment ago.
std::uint16_t free_port();

// A blocking TCP socket connected to 127.0.0.1:`port`, with TCP_NODELAY (test
// clients write requests in pieces on purpose). Throws with errno's text.
int connect_loopback(std::uint16_t port);
// Writes all of `bytes` (no SIGPIPE); false once the peer is gone.
bool send_all(int fd, std::string_view bytes);

// A child process with piped stdin/stdout; stderr goes to a log file (kept
// for failure messages). Killed with SIGKILL if still running on destruction,
// and it dies with the test process (PR_SET_PDEATHSIG).
class Process {
public:
    Process(std::vector<std::string> argv, std::map<std::string, std::string> extra_env = {},
            std::optional<std::filesystem::path> cwd = std::nullopt);
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    // running(), signal() and wait() may be called from several threads (a
    // reader thread polling running() while the test waits): the child is
    // reaped once, under a lock, and every caller sees its exit code.
    bool running();
    void signal(int sig);
    // Waits for exit; returns the exit code (128+signal when killed), nullopt on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout);
    void write_line(const std::string& line);
    // Next line of stdout, nullopt on EOF or timeout.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout);
    // Everything on stdout so far / until EOF within timeout.
    std::string read_all(std::chrono::milliseconds timeout);
    std::string stderr_text() const;  // contents of the stderr log so far
    void close_stdin();

private:
    pid_t pid_ = -1;
    int stdin_fd_ = -1;
    int stdout_fd_ = -1;
    std::string buffer_;
    std::filesystem::path stderr_path_;
    std::mutex reap_mutex_;
    std::optional<int> exit_code_;  // guarded by reap_mutex_
};

// The pipeline's five topics (common/wire.hpp).
std::vector<std::string> pipeline_topics();

// The Kafka engine under test: "mock" (librdkafka's mock cluster, the default)
// or "apache" (Apache Kafka in KRaft mode), from MESHHOOK_TEST_KAFKA_ENGINE.
// CTest runs the guarantee suites once per engine (labels kafka-mock and
// kafka-apache).
std::string kafka_engine();
bool apache_engine();

// `meshhook broker` in its own process, speaking the Kafka protocol over TCP.
// Control goes through its stdin (see tools/broker.cpp). On the mock engine
// each BrokerProcess is a cluster of its own; on the apache engine one
// cluster (three brokers, whatever `brokers` says) serves every test of the
// binary, and each new BrokerProcess resets it: every broker up, every topic
// deleted, `topics` created anew.
class BrokerProcess {
public:
    struct Options {
        int brokers = 3;
        int partitions = 4;
        std::vector<std::string> topics = pipeline_topics();
    };
    BrokerProcess();
    explicit BrokerProcess(Options options);
    ~BrokerProcess();

    const std::string& bootstrap() const { return bootstrap_; }
    // The apache cluster's SASL_SSL listener (PLAIN and SCRAM-SHA-512, one
    // user, a throwaway CA); nullopt on the mock.
    struct SaslSsl {
        std::string bootstrap;
        std::string ca_file;
        std::string username;
        std::string password;
    };
    const std::optional<SaslSsl>& sasl_ssl() const { return sasl_ssl_; }
    void create_topic(const std::string& name, int partitions);
    void broker_down(int broker_id);  // broker ids are 1..brokers
    void broker_up(int broker_id);
    // Alters a topic config through Kafka's admin API (apache engine only).
    void alter_topic_config(const std::string& topic, const std::string& key_value);
    int broker_count() const { return brokers_; }
    Process& process() { return *process_; }

private:
    void command(const std::string& line);
    std::shared_ptr<Process> process_;
    std::optional<SaslSsl> sasl_ssl_;
    bool shared_ = false;
    int brokers_ = 0;
    std::string bootstrap_;
};

// A PostgreSQL 15 server in a temporary directory on a free port, started
// with initdb/pg_ctl (as the `postgres` user when running as root, since
// PostgreSQL refuses root). Stopped and removed on destruction.
class PostgresServer {
public:
    PostgresServer();
    ~PostgresServer();
    // libpq URL, e.g. postgresql://meshhook@127.0.0.1:PORT/meshhook
    const std::string& url() const { return url_; }
    // A fresh database on this server; returns its URL.
    std::string create_database(const std::string& name);

private:
    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    std::string url_;
};

}  // namespace meshhook::testing
