#include "tools/apache_cluster.hpp"

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "common/wire.hpp"

namespace meshhook::tools {
namespace {

using Clock = std::chrono::steady_clock;

// Retention of the pipeline's topics, as deploy/kafka/create-topics.sh sets
// them in production; empty for other topics.
std::string retention_ms(const std::string& topic) {
    constexpr long long kDayMs = 86400000;
    for (const auto& spec : wire::kPipelineTopics) {
        if (spec.name == topic) return std::to_string(spec.retention_days * kDayMs);
    }
    return {};
}

std::uint16_t free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) throw std::runtime_error("socket() failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        ::close(fd);
        throw std::runtime_error("no free port on 127.0.0.1");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
}

// A KRaft cluster id: 16 random bytes in URL-safe base64 without padding.
std::string random_cluster_id() {
    unsigned char bytes[16];
    if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("RAND_bytes failed");
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    unsigned bits = 0;
    int nbits = 0;
    for (unsigned char b : bytes) {
        bits = (bits << 8) | b;
        nbits += 8;
        while (nbits >= 6) {
            out += kAlphabet[(bits >> (nbits - 6)) & 63];
            nbits -= 6;
        }
    }
    if (nbits > 0) out += kAlphabet[(bits << (6 - nbits)) & 63];
    return out;  // 22 characters
}

std::optional<std::filesystem::path> find_on_path(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        const auto candidate = std::filesystem::path(dir.empty() ? "." : dir) / name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return std::nullopt;
}

std::filesystem::path java_binary() {
    if (const char* home = std::getenv("JAVA_HOME"); home != nullptr && *home != '\0') {
        auto java = std::filesystem::path(home) / "bin" / "java";
        if (::access(java.c_str(), X_OK) == 0) return java;
    }
    if (auto java = find_on_path("java")) return *java;
    throw std::runtime_error(
        "--engine apache needs a Java 17+ runtime: no java on PATH or in JAVA_HOME "
        "(apt-get install openjdk-17-jre-headless, or make deps)");
}

// fork/exec with stdout and stderr appended to `log`; the child dies with
// this process (PR_SET_PDEATHSIG), so a killed test leaves no JVM behind.
pid_t spawn(const std::vector<std::string>& argv, const std::filesystem::path& log) {
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot open " + log.string());
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        ::close(fd);
        throw std::runtime_error("fork failed");
    }
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127);
        const int devnull = ::open("/dev/null", O_RDONLY);
        ::dup2(devnull, STDIN_FILENO);
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(fd);
    return pid;
}

std::string read_tail(const std::filesystem::path& path, std::size_t max_bytes) {
    std::ifstream in(path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.size() > max_bytes) text = text.substr(text.size() - max_bytes);
    // One line for the error message: the first that names an exception (a
    // Java stack trace ends in "at ..." lines that say nothing), else the last.
    std::size_t at = 0;
    while (at < text.size()) {
        const auto end = std::min(text.find('\n', at), text.size());
        const std::string_view line(text.data() + at, end - at);
        if (!line.starts_with('\t') && (line.find("Exception") != std::string_view::npos ||
                                        line.find("Error") != std::string_view::npos)) {
            return std::string(line);
        }
        at = end + 1;
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    const auto nl = text.rfind('\n');
    return nl == std::string::npos ? text : text.substr(nl + 1);
}

struct Metadata {
    std::set<int> brokers;
    // topic -> partitions without a leader (or the topic's own error)
    std::map<std::string, int> leaderless;
    std::set<std::string> topics;
};

std::optional<Metadata> fetch_metadata(rd_kafka_t* rk, int timeout_ms) {
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return std::nullopt;
    }
    Metadata out;
    for (int i = 0; i < md->broker_cnt; ++i) out.brokers.insert(md->brokers[i].id);
    for (int i = 0; i < md->topic_cnt; ++i) {
        const auto& t = md->topics[i];
        const std::string name = t.topic;
        out.topics.insert(name);
        int missing = t.err != RD_KAFKA_RESP_ERR_NO_ERROR || t.partition_cnt == 0 ? 1 : 0;
        for (int p = 0; p < t.partition_cnt; ++p) {
            if (t.partitions[p].leader < 0 || t.partitions[p].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                ++missing;
            }
        }
        out.leaderless[name] = missing;
    }
    rd_kafka_metadata_destroy(md);
    return out;
}

// Runs one admin request and waits for its result event. Returns the event
// (caller destroys) or nullptr on timeout.
rd_kafka_event_t* await_admin(rd_kafka_queue_t* queue, int timeout_ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    while (Clock::now() < deadline) {
        rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, 200);
        if (ev == nullptr) continue;
        const auto type = rd_kafka_event_type(ev);
        if (type == RD_KAFKA_EVENT_CREATETOPICS_RESULT ||
            type == RD_KAFKA_EVENT_DELETETOPICS_RESULT ||
            type == RD_KAFKA_EVENT_ALTERCONFIGS_RESULT ||
            type == RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT) {
            return ev;
        }
        rd_kafka_event_destroy(ev);
    }
    return nullptr;
}

class AdminQueue {
public:
    explicit AdminQueue(rd_kafka_t* rk) : q_(rd_kafka_queue_new(rk)) {}
    ~AdminQueue() { rd_kafka_queue_destroy(q_); }
    AdminQueue(const AdminQueue&) = delete;
    AdminQueue& operator=(const AdminQueue&) = delete;
    rd_kafka_queue_t* get() const { return q_; }

private:
    rd_kafka_queue_t* q_;
};

std::string event_error(rd_kafka_event_t* ev) {
    if (ev == nullptr) return "admin request timed out";
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return rd_kafka_event_error_string(ev);
    }
    return {};
}

}  // namespace

std::filesystem::path default_kafka_libs() {
#ifdef MESHHOOK_KAFKA_LIBS_DIR
    return MESHHOOK_KAFKA_LIBS_DIR;
#else
    return "build/kafka/libs";
#endif
}

ApacheCluster::ApacheCluster(const BrokerOptions& options, std::filesystem::path kafka_libs)
    : libs_(std::move(kafka_libs)) {
    java_ = java_binary();  // fails first, with the clearest line
    if (!std::filesystem::is_directory(libs_)) {
        throw std::runtime_error("no Apache Kafka jars in " + libs_.string() +
                                 ": run `make kafka` (Maven fetches them), or point "
                                 "--kafka-libs / MESHHOOK_KAFKA_LIBS at them");
    }
    bool has_server = false;
    for (const auto& entry : std::filesystem::directory_iterator(libs_)) {
        if (entry.path().filename().string().rfind("kafka_2.13-", 0) == 0) has_server = true;
    }
    if (!has_server) {
        throw std::runtime_error("no kafka_2.13 jar in " + libs_.string() +
                                 ": run `make kafka` (Maven fetches the jars)");
    }
    char tmpl[] = "/tmp/meshhook-kafka-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    try {
        const int n = options.brokers;
        replication_ = std::min(3, n);
        min_insync_ = n >= 3 ? 2 : 1;
        cluster_id_ = random_cluster_id();
        for (int i = 1; i <= n; ++i) {
            Node node;
            node.id = i;
            node.port = free_loopback_port();
            node.controller_port = free_loopback_port();
            if (options.sasl_ssl) node.sasl_ssl_port = free_loopback_port();
            node.config = dir_ / ("node-" + std::to_string(i) + ".properties");
            node.log = dir_ / ("node-" + std::to_string(i) + ".log");
            nodes_.push_back(node);
        }
        if (options.sasl_ssl) make_tls_material();
        write_configs(options.partitions);
        format_storage();
        for (auto& node : nodes_) start_node(node);
        for (const auto& node : nodes_) {
            bootstrap_ += (bootstrap_.empty() ? "" : ",") + std::string("127.0.0.1:") +
                          std::to_string(node.port);
            if (options.sasl_ssl) {
                sasl_.bootstrap += (sasl_.bootstrap.empty() ? "" : ",") +
                                   std::string("127.0.0.1:") + std::to_string(node.sasl_ssl_port);
            }
        }
        char err[512];
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap_.c_str(), err, sizeof err);
        rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
        admin_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        if (admin_ == nullptr) {
            rd_kafka_conf_destroy(conf);
            throw std::runtime_error(std::string("admin client: ") + err);
        }
        if (auto e = wait_until_registered(n, 120); !e.empty()) throw std::runtime_error(e);
        if (auto e = warm_up(); !e.empty()) throw std::runtime_error(e);
        if (auto e = reset(options.topics, options.partitions); !e.empty()) {
            throw std::runtime_error(e);
        }
    } catch (...) {
        stop_all();
        if (admin_ != nullptr) rd_kafka_destroy(admin_);
        admin_ = nullptr;
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
        throw;
    }
}

ApacheCluster::~ApacheCluster() {
    stop_all();
    if (admin_ != nullptr) rd_kafka_destroy(admin_);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

void ApacheCluster::make_tls_material() {
    // A throwaway CA and one broker certificate for 127.0.0.1/localhost,
    // made with the openssl command; gone with the temporary directory.
    const auto tls = dir_ / "tls";
    std::filesystem::create_directories(tls);
    const std::string d = tls.string();
    const std::string script =
        "set -e; cd '" + d +
        "'; "
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
        "-subj '/CN=meshhook test CA' 2>/dev/null; "
        "openssl req -newkey rsa:2048 -nodes -keyout broker.key -out broker.csr "
        "-subj '/CN=localhost' 2>/dev/null; "
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext; "
        "openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
        "-out broker.pem -days 2 -extfile san.ext 2>/dev/null; "
        "cat broker.key broker.pem > broker-keystore.pem";
    const auto log = dir_ / "tls.log";
    const pid_t pid = spawn({"/bin/sh", "-c", script}, log);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        throw std::runtime_error(
            "making the SASL_SSL listener's certificates with openssl "
            "failed (apt-get install openssl): " +
            read_tail(log, 2048));
    }
    unsigned char secret[12];
    if (RAND_bytes(secret, sizeof secret) != 1) throw std::runtime_error("RAND_bytes failed");
    static constexpr char kHex[] = "0123456789abcdef";
    sasl_.password.clear();
    for (unsigned char b : secret) {
        sasl_.password += kHex[b >> 4];
        sasl_.password += kHex[b & 15];
    }
    sasl_.username = "meshhook";
    sasl_.ca_file = (tls / "ca.pem").string();
}

void ApacheCluster::write_configs(int partitions) {
    std::string voters;
    for (const auto& node : nodes_) {
        voters += (voters.empty() ? "" : ",") + std::to_string(node.id) +
                  "@127.0.0.1:" + std::to_string(node.controller_port);
    }
    for (const auto& node : nodes_) {
        const std::string sasl_listener =
            node.sasl_ssl_port == 0 ? std::string()
                                    : ",SASL_SSL://127.0.0.1:" + std::to_string(node.sasl_ssl_port);
        std::ofstream out(node.config);
        if (node.sasl_ssl_port != 0) {
            // Clients authenticate with SCRAM-SHA-512 over TLS; the brokers
            // talk to each other in plaintext.
            const auto tls = dir_ / "tls";
            // PLAIN as well as SCRAM-SHA-512: librdkafka before 2.6.1 (Debian
            // 12 ships 2.0.2) cannot complete SCRAM with Kafka >= 3.8.1, which
            // checks the client's nonce strictly (CVE-2024-56128).
            out << "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512\n"
                << "listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512\n"
                << "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
                   "org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
                << "listener.name.sasl_ssl.plain.sasl.jaas.config="
                   "org.apache.kafka.common.security.plain.PlainLoginModule required user_"
                << sasl_.username << "=\"" << sasl_.password << "\";\n"
                << "listener.name.sasl_ssl.ssl.keystore.type=PEM\n"
                << "listener.name.sasl_ssl.ssl.keystore.location="
                << (tls / "broker-keystore.pem").string() << "\n";
        }
        out << "# Written by meshhook broker --engine apache.\n"
            << "process.roles=broker,controller\n"
            << "node.id=" << node.id << "\n"
            << "controller.quorum.voters=" << voters << "\n"
            << "listeners=PLAINTEXT://127.0.0.1:" << node.port
            << ",CONTROLLER://127.0.0.1:" << node.controller_port << sasl_listener << "\n"
            << "advertised.listeners=PLAINTEXT://127.0.0.1:" << node.port << sasl_listener << "\n"
            << "controller.listener.names=CONTROLLER\n"
            << "inter.broker.listener.name=PLAINTEXT\n"
            << "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
            << (node.sasl_ssl_port == 0 ? "" : ",SASL_SSL:SASL_SSL") << "\n"
            << "log.dirs=" << (dir_ / ("data-" + std::to_string(node.id))).string() << "\n"
            << "num.partitions=" << partitions << "\n"
            << "default.replication.factor=" << replication_ << "\n"
            << "min.insync.replicas=" << min_insync_ << "\n"
            << "unclean.leader.election.enable=false\n"
            << "offsets.topic.replication.factor=" << replication_ << "\n"
            << "offsets.topic.num.partitions=4\n"
            << "transaction.state.log.replication.factor=" << replication_ << "\n"
            << "transaction.state.log.min.isr=" << min_insync_ << "\n"
            << "transaction.state.log.num.partitions=4\n"
            << "share.coordinator.state.topic.replication.factor=" << replication_ << "\n"
            << "share.coordinator.state.topic.min.isr=" << min_insync_
            << "\n"
            // Tests start a new group per consumer incarnation: no 3 s wait
            // for more members.
            << "group.initial.rebalance.delay.ms=0\n"
            // A killed node is noticed in seconds, not the 9 s default, so
            // leader elections happen inside a test's deadlines.
            << "broker.heartbeat.interval.ms=500\n"
            << "broker.session.timeout.ms=4000\n"
            // Two cores: few threads per node.
            << "num.network.threads=2\n"
            << "num.io.threads=2\n"
            << "background.threads=2\n"
            << "num.replica.fetchers=1\n"
            << "num.recovery.threads.per.data.dir=1\n"
            << "log.cleaner.threads=1\n"
            << "log.cleaner.dedupe.buffer.size=4194304\n"
            << "delete.topic.enable=true\n";
    }
    std::ofstream log4j(dir_ / "log4j2.properties");
    log4j << "status = error\n"
          << "appender.out.type = Console\n"
          << "appender.out.name = OUT\n"
          << "appender.out.layout.type = PatternLayout\n"
          << "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
          << "rootLogger.level = WARN\n"
          << "rootLogger.appenderRef.out.ref = OUT\n";
}

std::vector<std::string> ApacheCluster::java_command(const std::string& main_class,
                                                     const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {
        java_.string(),
        // Small heaps and a GC that suits them; C1 only: a short-lived test
        // cluster gains more from a cheap start than from peak JIT code.
        "-Xms64m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
        "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
        "-Dlog4j2.configurationFile=" + (dir_ / "log4j2.properties").string(), "-cp",
        (libs_ / "*").string(), main_class};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

void ApacheCluster::format_storage() {
    // SCRAM credentials live in the cluster metadata: KRaft takes them at
    // format time.
    const auto format_args = [this](const Node& node) {
        // "=": an id may start with '-', which would read as an option.
        std::vector<std::string> args = {"format", "--cluster-id=" + cluster_id_, "-c",
                                         node.config.string()};
        if (node.sasl_ssl_port != 0) {
            args.emplace_back("--add-scram");
            args.push_back("SCRAM-SHA-512=[name=" + sasl_.username + ",password=" + sasl_.password +
                           "]");
        }
        return args;
    };
    // One StorageTool JVM per node, in parallel. A node whose format failed
    // is tried once more (seen once on a loaded machine, cause not logged):
    // --ignore-formatted keeps a half-done first attempt from failing it.
    std::vector<const Node*> todo;
    for (const auto& node : nodes_) todo.push_back(&node);
    std::string failure;
    for (int attempt = 0; attempt < 2 && !todo.empty(); ++attempt) {
        std::vector<std::pair<pid_t, const Node*>> running;
        for (const Node* node : todo) {
            auto args = format_args(*node);
            if (attempt > 0) args.emplace_back("--ignore-formatted");
            const auto log = dir_ / ("format-" + std::to_string(node->id) + ".log");
            running.emplace_back(spawn(java_command("kafka.tools.StorageTool", args), log), node);
        }
        todo.clear();
        for (const auto& [pid, node] : running) {
            int status = 0;
            while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
            }
            if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
                todo.push_back(node);
                failure = "formatting node " + std::to_string(node->id) + "'s storage failed: " +
                          read_tail(dir_ / ("format-" + std::to_string(node->id) + ".log"), 8192);
                std::fprintf(stderr, "meshhook broker: %s%s\n", failure.c_str(),
                             attempt == 0 ? "; trying again" : "");
            }
        }
    }
    if (!todo.empty()) throw std::runtime_error(failure);
}

void ApacheCluster::start_node(Node& node) {
    node.pid = spawn(java_command("kafka.Kafka", {node.config.string()}), node.log);
}

void ApacheCluster::stop_node(Node& node) {
    if (node.pid <= 0) return;
    ::kill(node.pid, SIGKILL);
    int status = 0;
    while (::waitpid(node.pid, &status, 0) < 0 && errno == EINTR) {
    }
    node.pid = -1;
}

void ApacheCluster::stop_all() {
    for (auto& node : nodes_) {
        if (node.pid > 0) ::kill(node.pid, SIGKILL);
    }
    for (auto& node : nodes_) stop_node(node);
}

std::string ApacheCluster::node_log_tail(const Node& node) const {
    return "node " + std::to_string(node.id) + ": " + read_tail(node.log, 4096);
}

std::string ApacheCluster::wait_until_registered(int expected_brokers, int timeout_s) {
    const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
    while (Clock::now() < deadline) {
        for (auto& node : nodes_) {
            int status = 0;
            if (node.pid > 0 && ::waitpid(node.pid, &status, WNOHANG) == node.pid) {
                node.pid = -1;
                return "Apache Kafka node " + std::to_string(node.id) +
                       " exited at start: " + node_log_tail(node);
            }
        }
        if (auto md = fetch_metadata(admin_, 2000);
            md && static_cast<int>(md->brokers.size()) >= expected_brokers) {
            return {};
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    std::string tails;
    for (const auto& node : nodes_) tails += " | " + node_log_tail(node);
    return "Apache Kafka: not every broker registered within " + std::to_string(timeout_s) + " s" +
           tails;
}

std::string ApacheCluster::wait_for_leaders(const std::vector<std::string>& topics, int timeout_s) {
    const auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
    std::string missing;
    while (Clock::now() < deadline) {
        missing.clear();
        if (auto md = fetch_metadata(admin_, 2000)) {
            for (const auto& t : topics) {
                const auto it = md->leaderless.find(t);
                if (it == md->leaderless.end() || it->second > 0) missing = t;
            }
            if (missing.empty()) return {};
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return "topic " + missing + " has no leader for every partition after " +
           std::to_string(timeout_s) + " s";
}

std::string ApacheCluster::create_topic_with_configs(const std::string& name, int partitions) {
    char err[512];
    rd_kafka_NewTopic_t* topic =
        rd_kafka_NewTopic_new(name.c_str(), partitions, replication_, err, sizeof err);
    if (topic == nullptr) return err;
    const std::string min_isr = std::to_string(min_insync_);
    rd_kafka_NewTopic_set_config(topic, "min.insync.replicas", min_isr.c_str());
    rd_kafka_NewTopic_set_config(topic, "unclean.leader.election.enable", "false");
    rd_kafka_NewTopic_set_config(topic, "cleanup.policy", "delete");
    if (const auto retention = retention_ms(name); !retention.empty()) {
        rd_kafka_NewTopic_set_config(topic, "retention.ms", retention.c_str());
    }
    AdminQueue queue(admin_);
    rd_kafka_CreateTopics(admin_, &topic, 1, nullptr, queue.get());
    rd_kafka_NewTopic_destroy(topic);
    rd_kafka_event_t* ev = await_admin(queue.get(), 30000);
    std::string error = event_error(ev);
    if (error.empty()) {
        size_t n = 0;
        const auto* res = rd_kafka_event_CreateTopics_result(ev);
        const auto** results = rd_kafka_CreateTopics_result_topics(res, &n);
        for (size_t i = 0; i < n; ++i) {
            const auto code = rd_kafka_topic_result_error(results[i]);
            if (code != RD_KAFKA_RESP_ERR_NO_ERROR) {
                error = code == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS
                            ? "already exists"
                            : std::string(rd_kafka_err2str(code));
            }
        }
    }
    if (ev != nullptr) rd_kafka_event_destroy(ev);
    return error;
}

std::string ApacheCluster::create_topic(const std::string& name, int partitions,
                                        int /*replication_factor: min(3, brokers)*/) {
    if (partitions < 1) return "partitions must be at least 1";
    if (auto e = create_topic_with_configs(name, partitions); !e.empty()) return e;
    return wait_for_leaders({name}, 60);
}

std::string ApacheCluster::broker_down(int broker_id) {
    if (broker_id < 1 || broker_id > broker_count()) {
        return "no broker " + std::to_string(broker_id);
    }
    stop_node(nodes_[static_cast<std::size_t>(broker_id - 1)]);
    return {};
}

std::string ApacheCluster::broker_up(int broker_id) {
    if (broker_id < 1 || broker_id > broker_count()) {
        return "no broker " + std::to_string(broker_id);
    }
    Node& node = nodes_[static_cast<std::size_t>(broker_id - 1)];
    // A JVM that died on its own (out of memory, a crash) is restarted too.
    int status = 0;
    if (node.pid > 0 && ::waitpid(node.pid, &status, WNOHANG) == node.pid) node.pid = -1;
    if (node.pid > 0) return {};  // already up
    start_node(node);
    return {};
}

std::string ApacheCluster::alter_topic_config(const std::string& topic, const std::string& key,
                                              const std::string& value) {
    // librdkafka 2.0 has only the non-incremental AlterConfigs, which
    // replaces a topic's whole dynamic config: read it, change one key,
    // write it all back.
    std::map<std::string, std::string> dynamic;
    {
        AdminQueue queue(admin_);
        rd_kafka_ConfigResource_t* res =
            rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
        rd_kafka_DescribeConfigs(admin_, &res, 1, nullptr, queue.get());
        rd_kafka_ConfigResource_destroy(res);
        rd_kafka_event_t* ev = await_admin(queue.get(), 30000);
        std::string error = event_error(ev);
        if (error.empty()) {
            size_t n = 0;
            const auto** resources = rd_kafka_DescribeConfigs_result_resources(
                rd_kafka_event_DescribeConfigs_result(ev), &n);
            for (size_t i = 0; i < n && error.empty(); ++i) {
                if (rd_kafka_ConfigResource_error(resources[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                    error = rd_kafka_ConfigResource_error_string(resources[i]);
                    break;
                }
                size_t m = 0;
                const auto** entries = rd_kafka_ConfigResource_configs(resources[i], &m);
                for (size_t j = 0; j < m; ++j) {
                    if (rd_kafka_ConfigEntry_source(entries[j]) ==
                            RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG &&
                        rd_kafka_ConfigEntry_value(entries[j]) != nullptr) {
                        dynamic[rd_kafka_ConfigEntry_name(entries[j])] =
                            rd_kafka_ConfigEntry_value(entries[j]);
                    }
                }
            }
        }
        if (ev != nullptr) rd_kafka_event_destroy(ev);
        if (!error.empty()) return error;
    }
    dynamic[key] = value;
    AdminQueue queue(admin_);
    rd_kafka_ConfigResource_t* res =
        rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic.c_str());
    for (const auto& [k, v] : dynamic) {
        if (rd_kafka_ConfigResource_set_config(res, k.c_str(), v.c_str()) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            rd_kafka_ConfigResource_destroy(res);
            return "bad config " + k;
        }
    }
    rd_kafka_AlterConfigs(admin_, &res, 1, nullptr, queue.get());
    rd_kafka_ConfigResource_destroy(res);
    rd_kafka_event_t* ev = await_admin(queue.get(), 30000);
    std::string error = event_error(ev);
    if (error.empty()) {
        size_t n = 0;
        const auto** resources =
            rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &n);
        for (size_t i = 0; i < n; ++i) {
            if (rd_kafka_ConfigResource_error(resources[i]) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                error = rd_kafka_ConfigResource_error_string(resources[i]);
            }
        }
    }
    if (ev != nullptr) rd_kafka_event_destroy(ev);
    return error;
}

std::string ApacheCluster::warm_up() {
    // A new cluster creates __transaction_state on the first idempotent
    // producer's InitProducerId and __consumer_offsets on the first group's
    // FindCoordinator, and answers "coordinator load in progress" meanwhile:
    // seconds in which a fresh meshhook-ingest would answer 503 to every
    // delivery. Clusters in production have both; so does this one before it
    // says it is ready.
    const std::string topic = "meshhook.warm-up";
    if (auto e = create_topic_with_configs(topic, 1); !e.empty() && e != "already exists") {
        return "warm-up topic: " + e;
    }
    if (auto e = wait_for_leaders({topic}, 60); !e.empty()) return e;
    char err[512];
    const auto set = [&err](rd_kafka_conf_t* conf, const char* key, const std::string& value) {
        rd_kafka_conf_set(conf, key, value.c_str(), err, sizeof err);
    };
    {
        rd_kafka_conf_t* conf = rd_kafka_conf_new();
        set(conf, "bootstrap.servers", bootstrap_);
        set(conf, "enable.idempotence", "true");
        set(conf, "acks", "all");
        set(conf, "message.timeout.ms", "120000");
        set(conf, "log_level", "0");
        rd_kafka_t* producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
        if (producer == nullptr) {
            rd_kafka_conf_destroy(conf);
            return std::string("warm-up producer: ") + err;
        }
        char value[] = "warm-up";
        rd_kafka_topic_t* handle = rd_kafka_topic_new(producer, topic.c_str(), nullptr);
        rd_kafka_produce(handle, 0, RD_KAFKA_MSG_F_COPY, value, sizeof value - 1, nullptr, 0,
                         nullptr);
        rd_kafka_topic_destroy(handle);
        rd_kafka_flush(producer, 120000);
        const int left = rd_kafka_outq_len(producer);
        rd_kafka_destroy(producer);
        if (left > 0) return "warm-up: the idempotent producer could not deliver in 120 s";
    }
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", bootstrap_);
    set(conf, "group.id", "meshhook-warm-up");
    set(conf, "log_level", "0");
    rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (consumer == nullptr) {
        rd_kafka_conf_destroy(conf);
        return std::string("warm-up consumer: ") + err;
    }
    const auto deadline = Clock::now() + std::chrono::seconds(120);
    rd_kafka_resp_err_t code = RD_KAFKA_RESP_ERR__TIMED_OUT;
    while (Clock::now() < deadline) {
        rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(parts, topic.c_str(), 0);
        code = rd_kafka_committed(consumer, parts, 10000);
        if (code == RD_KAFKA_RESP_ERR_NO_ERROR) code = parts->elems[0].err;
        rd_kafka_topic_partition_list_destroy(parts);
        if (code == RD_KAFKA_RESP_ERR_NO_ERROR) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    rd_kafka_destroy(consumer);
    if (code != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return std::string("warm-up: no group coordinator: ") + rd_kafka_err2str(code);
    }
    return {};
}

std::string ApacheCluster::reset(const std::vector<std::string>& topics, int partitions) {
    if (partitions < 1) return "partitions must be at least 1";
    for (int id = 1; id <= broker_count(); ++id) {
        if (auto e = broker_up(id); !e.empty()) return e;
    }
    if (auto e = wait_until_registered(broker_count(), 120); !e.empty()) return e;
    // Delete every topic of ours (not Kafka's internal ones).
    const auto md = fetch_metadata(admin_, 10000);
    if (!md) return "no metadata from the cluster";
    std::vector<std::string> doomed;
    for (const auto& t : md->topics) {
        if (t.rfind("__", 0) != 0) doomed.push_back(t);
    }
    const auto delete_topics = [this](const std::vector<std::string>& names) -> std::string {
        std::vector<rd_kafka_DeleteTopic_t*> requests;
        requests.reserve(names.size());
        for (const auto& t : names) requests.push_back(rd_kafka_DeleteTopic_new(t.c_str()));
        AdminQueue queue(admin_);
        rd_kafka_DeleteTopics(admin_, requests.data(), requests.size(), nullptr, queue.get());
        for (auto* r : requests) rd_kafka_DeleteTopic_destroy(r);
        rd_kafka_event_t* ev = await_admin(queue.get(), 30000);
        std::string error = event_error(ev);
        if (ev != nullptr) rd_kafka_event_destroy(ev);
        return error;
    };
    if (!doomed.empty()) {
        if (auto error = delete_topics(doomed); !error.empty()) return "deleting topics: " + error;
    }
    // Re-create; a topic still being deleted answers "already exists" for a
    // moment. One that keeps answering it was created again since: Kafka's
    // auto.create.topics.enable (on by default) re-creates a deleted topic
    // for any client still asking for its metadata (a process of the previous
    // test on its way out). It is deleted again until the client is gone.
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    for (const auto& t : topics) {
        auto deleted_at = Clock::now();
        while (true) {
            const auto e = create_topic_with_configs(t, partitions);
            if (e.empty()) break;
            if (e != "already exists" || Clock::now() > deadline) return "topic " + t + ": " + e;
            if (Clock::now() - deleted_at > std::chrono::seconds(3)) {
                (void)delete_topics({t});  // a failure shows as the next "already exists"
                deleted_at = Clock::now();
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
    }
    return wait_for_leaders(topics, 60);
}

}  // namespace meshhook::tools
