#include "tests/support/process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "common/transfer_event.hpp"
#include "common/wire.hpp"

extern char** environ;

namespace meshhook::testing {

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        if (condition()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return condition();
        std::this_thread::sleep_for(5ms);  // polling interval of the condition, not synchronisation
    }
}

std::filesystem::path binary_path(const std::string& name) {
    return std::filesystem::path(MESHHOOK_BINARY_DIR) / name;
}

std::filesystem::path fixture_path(const std::string& name) {
    return std::filesystem::path(MESHHOOK_FIXTURE_DIR) / name;
}

std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path.string());
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

std::string fixture(const std::string& name) {
    return read_file(fixture_path(name));
}

std::string fresh_fixture(const std::string& name) {
    return common::restamp_sent_timestamp(fixture(name), std::chrono::system_clock::now());
}

std::uint16_t free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        throw std::runtime_error("free_port: bind failed");
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

int connect_loopback(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        const int err = errno;
        ::close(fd);
        throw std::runtime_error(std::string("connect: ") + std::strerror(err));
    }
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

bool send_all(int fd, std::string_view bytes) {
    while (!bytes.empty()) {
        const auto n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

// ------------------------------------------------------------------ Process

namespace {

// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not
// the process. Tests start children from worker threads (a fault loop
// restarting a killed server), so every fork happens on this one thread,
// which lives as long as the test process.
class Spawner {
public:
    static Spawner& instance() {
        static Spawner* spawner = new Spawner();  // never destroyed: outlives every Process
        return *spawner;
    }
    pid_t run(const std::function<pid_t()>& fork_child) {
        std::packaged_task<pid_t()> task(fork_child);
        auto result = task.get_future();
        {
            std::lock_guard lock(mutex_);
            tasks_.push_back(std::move(task));
        }
        cv_.notify_one();
        return result.get();
    }

private:
    Spawner() {
        std::thread([this] {
            while (true) {
                std::unique_lock lock(mutex_);
                cv_.wait(lock, [this] { return !tasks_.empty(); });
                auto task = std::move(tasks_.front());
                tasks_.pop_front();
                lock.unlock();
                task();
            }
        }).detach();
    }
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<std::packaged_task<pid_t()>> tasks_;
};

}  // namespace

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> extra_env,
                 std::optional<std::filesystem::path> cwd) {
    int in_pipe[2];
    int out_pipe[2];
    if (::pipe2(in_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) {
        throw std::runtime_error("pipe failed");
    }
    char tmpl[] = "/tmp/meshhook-test-stderr-XXXXXX";
    const int err_fd = ::mkstemp(tmpl);
    stderr_path_ = tmpl;

    // Prepare everything that allocates before fork.
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
        std::string_view kv(*e);
        const auto eq = kv.find('=');
        if (eq != std::string_view::npos && extra_env.count(std::string(kv.substr(0, eq))))
            continue;
        env_strings.emplace_back(kv);
    }
    for (const auto& [k, v] : extra_env) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const pid_t parent = ::getpid();

    const int child_in = in_pipe[0];
    const int child_out = out_pipe[1];
    const char* workdir = cwd ? cwd->c_str() : nullptr;
    pid_ = Spawner::instance().run([&]() -> pid_t {
        const pid_t pid = ::fork();
        if (pid == 0) {
            // Die with the test process: no orphan brokers or servers.
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(127);
            ::setpgid(0, 0);
            ::dup2(child_in, STDIN_FILENO);
            ::dup2(child_out, STDOUT_FILENO);
            ::dup2(err_fd, STDERR_FILENO);
            if (workdir != nullptr && ::chdir(workdir) != 0) ::_exit(127);
            ::execve(args[0], args.data(), envp.data());
            ::_exit(127);
        }
        return pid;
    });
    if (pid_ < 0) throw std::runtime_error("fork failed");
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    ::close(err_fd);
    stdin_fd_ = in_pipe[1];
    stdout_fd_ = out_pipe[0];
}

Process::~Process() {
    if (running()) {
        ::kill(pid_, SIGKILL);
        wait(5s);
    }
    if (stdin_fd_ >= 0) ::close(stdin_fd_);
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
    std::error_code ec;
    std::filesystem::remove(stderr_path_, ec);
}

bool Process::running() {
    // Without the lock, two threads could both call waitpid: one reaps the
    // child, the other gets ECHILD and reports "not running, no exit code"
    // (seen: Dev.ACrashedChildStopsTheOther... got nullopt from wait()).
    std::lock_guard lock(reap_mutex_);
    if (exit_code_) return false;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return false;
    }
    return r == 0;
}

void Process::signal(int sig) {
    if (running()) ::kill(pid_, sig);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
    wait_until([this] { return !running(); }, timeout);
    std::lock_guard lock(reap_mutex_);
    return exit_code_;
}

void Process::write_line(const std::string& line) {
    std::string data = line + "\n";
    std::size_t off = 0;
    while (off < data.size()) {
        const ssize_t n = ::write(stdin_fd_, data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::runtime_error("write to child stdin failed");
        }
        off += static_cast<std::size_t>(n);
    }
}

void Process::close_stdin() {
    if (stdin_fd_ >= 0) ::close(stdin_fd_);
    stdin_fd_ = -1;
}

std::optional<std::string> Process::read_line(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        const auto pos = buffer_.find('\n');
        if (pos != std::string::npos) {
            std::string line = buffer_.substr(0, pos);
            buffer_.erase(0, pos + 1);
            return line;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || stdout_fd_ < 0) return std::nullopt;
        pollfd pfd{stdout_fd_, POLLIN, 0};
        const int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return std::nullopt;
        char buf[4096];
        const ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
        if (n <= 0) return std::nullopt;
        buffer_.append(buf, static_cast<std::size_t>(n));
    }
}

std::string Process::read_all(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (stdout_fd_ >= 0) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        pollfd pfd{stdout_fd_, POLLIN, 0};
        const int r = ::poll(&pfd, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        char buf[4096];
        const ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
        if (n <= 0) break;
        buffer_.append(buf, static_cast<std::size_t>(n));
    }
    return std::exchange(buffer_, {});
}

std::string Process::stderr_text() const {
    try {
        return read_file(stderr_path_);
    } catch (const std::exception&) {
        return {};
    }
}

// ------------------------------------------------------------ BrokerProcess

BrokerProcess::BrokerProcess() : BrokerProcess(Options{}) {}

std::vector<std::string> pipeline_topics() {
    std::vector<std::string> topics;
    for (const auto& spec : wire::kPipelineTopics) topics.emplace_back(spec.name);
    return topics;
}

std::string kafka_engine() {
    const char* engine = std::getenv("MESHHOOK_TEST_KAFKA_ENGINE");
    return engine != nullptr && *engine != '\0' ? engine : "mock";
}

bool apache_engine() {
    return kafka_engine() == "apache";
}

namespace {

std::string topic_list(const BrokerProcess::Options& options) {
    std::string topics;
    for (const auto& t : options.topics) topics += (topics.empty() ? "" : ",") + t;
    return topics;
}

// The apache engine's cluster, started by the first BrokerProcess of this
// test binary; at exit its stdin closes and it stops every JVM.
struct SharedApacheCluster {
    std::shared_ptr<Process> process;
    std::string bootstrap;
    std::optional<BrokerProcess::SaslSsl> sasl_ssl;
    ~SharedApacheCluster() {
        if (process && process->running()) {
            process->close_stdin();
            if (!process->wait(30s)) process->signal(SIGKILL);
        }
    }
};

SharedApacheCluster& shared_apache_cluster() {
    static SharedApacheCluster cluster;
    return cluster;
}

std::string read_bootstrap(Process& process, std::chrono::milliseconds timeout) {
    auto line = process.read_line(timeout);
    if (!line || line->rfind("bootstrap=", 0) != 0) {
        throw std::runtime_error("meshhook broker did not start: " + process.stderr_text());
    }
    return line->substr(std::strlen("bootstrap="));
}

std::vector<std::string> broker_argv(const std::string& engine, int brokers, int partitions,
                                     const std::string& topics) {
    std::vector<std::string> argv = {binary_path("meshhook").string(),
                                     "broker",
                                     "--engine",
                                     engine,
                                     "--brokers",
                                     std::to_string(brokers),
                                     "--partitions",
                                     std::to_string(partitions),
                                     "--no-default-topics"};
    if (!topics.empty()) {
        argv.push_back("--topics");
        argv.push_back(topics);
    }
    return argv;
}

}  // namespace

BrokerProcess::BrokerProcess(Options options) {
    const std::string topics = topic_list(options);
    if (apache_engine()) {
        auto& shared = shared_apache_cluster();
        shared_ = true;
        brokers_ = 3;
        if (shared.process && shared.process->running()) {
            process_ = shared.process;
            bootstrap_ = shared.bootstrap;
            sasl_ssl_ = shared.sasl_ssl;
            command("reset " + std::to_string(options.partitions) + " " + topics);
            return;
        }
        auto argv = broker_argv("apache", 3, options.partitions, topics);
        argv.push_back("--sasl-ssl");
        shared.process = std::make_shared<Process>(argv);
        // A cold JVM on a loaded two-core machine: give it time.
        shared.bootstrap = read_bootstrap(*shared.process, 240s);
        // sasl_ssl=HOST:PORT,... ca=PEM username=U password=P
        const auto line = shared.process->read_line(10s);
        if (!line || line->rfind("sasl_ssl=", 0) != 0) {
            throw std::runtime_error("meshhook broker printed no sasl_ssl line: " +
                                     line.value_or("<none>"));
        }
        std::istringstream fields(*line);
        std::string field;
        SaslSsl sasl;
        while (fields >> field) {
            const auto eq = field.find('=');
            const auto key = field.substr(0, eq);
            const auto value = field.substr(eq + 1);
            if (key == "sasl_ssl") sasl.bootstrap = value;
            if (key == "ca") sasl.ca_file = value;
            if (key == "username") sasl.username = value;
            if (key == "password") sasl.password = value;
        }
        shared.sasl_ssl = sasl;
        process_ = shared.process;
        bootstrap_ = shared.bootstrap;
        sasl_ssl_ = shared.sasl_ssl;
        return;
    }
    brokers_ = options.brokers;
    const auto argv = broker_argv("mock", options.brokers, options.partitions, topics);
    process_ = std::make_shared<Process>(argv);
    bootstrap_ = read_bootstrap(*process_, 30s);
}

BrokerProcess::~BrokerProcess() {
    if (shared_) return;  // the next test resets it; it stops at exit
    if (process_ && process_->running()) {
        process_->close_stdin();
        if (!process_->wait(10s)) process_->signal(SIGKILL);
    }
}

void BrokerProcess::command(const std::string& line) {
    process_->write_line(line);
    // The apache engine's commands wait for the cluster (a restarted broker,
    // deleted and re-created topics with leaders).
    auto reply = process_->read_line(shared_ ? 180s : 10s);
    if (!reply || *reply != "ok") {
        throw std::runtime_error("broker command '" + line +
                                 "' failed: " + reply.value_or("<no reply>"));
    }
}

void BrokerProcess::create_topic(const std::string& name, int partitions) {
    command("topic " + name + " " + std::to_string(partitions));
}
void BrokerProcess::broker_down(int broker_id) {
    command("down " + std::to_string(broker_id));
}
void BrokerProcess::broker_up(int broker_id) {
    command("up " + std::to_string(broker_id));
}
void BrokerProcess::alter_topic_config(const std::string& topic, const std::string& key_value) {
    command("config " + topic + " " + key_value);
}

}  // namespace meshhook::testing
