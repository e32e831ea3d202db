// End-to-end events/s of meshhook-consumer: transfer events produced to
// mesh.transfer-events, credit commands read back from ledger.credit-commands,
// with the consumer and `meshhook broker` in their own processes.
//
// usage: bench_consumer_e2e BIN_DIR STORE_URL EVENTS
//   BIN_DIR holds `meshhook` and `meshhook-consumer`; EVENTS is a multiple of 4
//   (four events per transfer: pending, processing, succeeded, Mesh's retry).
// Prints: RESULT store=<sqlite|postgresql> events=N seconds=S events_per_s=R credits=C
// Exits 1 unless exactly one credit command per transfer came back.
//
// The events are fed while the consumer works, with the backlog of produced
// but not yet credited events capped: the test broker keeps only a few MiB per
// partition, so producing everything first would lose the oldest records.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/kafka.hpp"

using namespace meshhook;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

constexpr const char* kInputTopic = "mesh.transfer-events";
constexpr const char* kCreditTopic = "ledger.credit-commands";
// Produced-but-not-credited events allowed in flight (about 1 KiB each).
constexpr std::size_t kBacklogCap = 20000;
// Transfers interleaved at a time, as a partition sees many in flight.
constexpr std::size_t kWindow = 1000;
// No new credit for this long means the pipeline is stuck.
constexpr auto kStallTimeout = 60s;

struct Failure : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A child with piped stdin/stdout and stderr to a file; dies with us
// (PR_SET_PDEATHSIG) and is stopped (SIGTERM, then SIGKILL) on destruction.
class Child {
public:
    Child(const std::vector<std::string>& argv, const std::filesystem::path& stderr_path)
        : name_(argv.front()), stderr_path_(stderr_path) {
        int in[2];
        int out[2];
        if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
            throw Failure(std::string("pipe: ") + std::strerror(errno));
        }
        const pid_t parent = getpid();
        pid_ = fork();
        if (pid_ < 0) throw Failure(std::string("fork: ") + std::strerror(errno));
        if (pid_ == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(127);  // the parent died before prctl
            const int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || err < 0 || dup2(err, 2) < 0) {
                _exit(127);
            }
            std::vector<char*> args;
            for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            execv(args[0], args.data());
            _exit(127);
        }
        close(in[0]);
        close(out[1]);
        stdin_fd_ = in[1];
        stdout_fd_ = out[0];
        fcntl(stdout_fd_, F_SETFL, fcntl(stdout_fd_, F_GETFL) | O_NONBLOCK);
    }

    ~Child() { stop(); }
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    // Next stdout line within `timeout`; nullopt on EOF or timeout.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout) {
        const auto deadline = Clock::now() + timeout;
        for (;;) {
            if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
                std::string line = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                return line;
            }
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left <= 0ms) return std::nullopt;
            pollfd p{stdout_fd_, POLLIN, 0};
            if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
            if (!fill()) return std::nullopt;
        }
    }

    // Reads whatever stdout holds, so a chatty child never blocks on a full pipe.
    void drain() {
        fill();
        if (buffer_.size() > 65536) buffer_.clear();
    }

    bool running() {
        if (pid_ <= 0) return false;
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_) {
            pid_ = -1;
            return false;
        }
        return true;
    }

    std::string stderr_tail() const {
        std::FILE* f = std::fopen(stderr_path_.c_str(), "r");
        if (f == nullptr) return {};
        std::string text;
        char buf[4096];
        std::size_t n = 0;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
        std::fclose(f);
        return text.size() > 2000 ? text.substr(text.size() - 2000) : text;
    }

    const std::string& name() const { return name_; }

    void stop() {
        if (stdin_fd_ >= 0) {
            close(stdin_fd_);  // the broker exits when its stdin closes
            stdin_fd_ = -1;
        }
        if (pid_ > 0) {
            kill(pid_, SIGTERM);
            const auto deadline = Clock::now() + 5s;
            int status = 0;
            while (waitpid(pid_, &status, WNOHANG) == 0) {
                if (Clock::now() > deadline) {
                    kill(pid_, SIGKILL);
                    waitpid(pid_, &status, 0);
                    break;
                }
                pollfd none{-1, 0, 0};
                poll(&none, 0, 10);
            }
            pid_ = -1;
        }
        if (stdout_fd_ >= 0) {
            close(stdout_fd_);
            stdout_fd_ = -1;
        }
    }

private:
    bool fill() {
        char buf[4096];
        for (;;) {
            const ssize_t n = read(stdout_fd_, buf, sizeof buf);
            if (n > 0) {
                buffer_.append(buf, static_cast<std::size_t>(n));
                continue;
            }
            return n < 0 && (errno == EAGAIN || errno == EINTR);
        }
    }

    std::string name_;
    std::filesystem::path stderr_path_;
    pid_t pid_ = -1;
    int stdin_fd_ = -1;
    int stdout_fd_ = -1;
    std::string buffer_;
};

// Fixture 03's shape with a unique TransferId and EventId per transfer; the
// retry (step 3) repeats the succeeded EventId under a new delivery Id.
std::string transfer_id(const std::string& run, std::size_t transfer) {
    char tid[64];
    std::snprintf(tid, sizeof tid, "%s-%08zx-4000-8000-%012zx", run.c_str(), transfer, transfer);
    return tid;
}

std::string event(const std::string& tid, std::size_t transfer, int step) {
    static const char* const kStatus[] = {"Pending", "Processing", "Succeeded", "Succeeded"};
    const bool done = step >= 2;
    return "{\"Id\":\"d-" + tid + "-" + std::to_string(step) + "\",\"EventId\":\"e-" + tid + "-" +
           std::to_string(step == 3 ? 2 : step) +
           "\",\"SentTimestamp\":1764316800,\"UserId\":\"user-42\",\"TransactionId\":\"order-" +
           std::to_string(transfer) + "\",\"TransferId\":\"" + tid + "\",\"TransferStatus\":\"" +
           kStatus[step] + "\",\"TxHash\":" +
           (done ? "\"0x5c1e0f2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e\""
                 : "null") +
           ",\"Chain\":\"Ethereum\",\"Token\":\"USDC\",\"DestinationAddress\":"
           "\"0x9f2b6A1c3d4E5F60718293A4B5c6d7e8f9012345\",\"SourceAccountProvider\":"
           "\"Coinbase\",\"SourceAmount\":250.75,\"DestinationAmount\":" +
           (done ? "250.000000000000000001" : "null") +
           ",\"RefundAddress\":null,\"Timestamp\":1764317099000}";
}

class Bench {
public:
    Bench(std::filesystem::path bin_dir, std::string store_url, std::size_t events,
          std::filesystem::path tmp)
        : bin_dir_(std::move(bin_dir)),
          store_url_(std::move(store_url)),
          events_(events),
          tmp_(std::move(tmp)),
          run_id_("b" + std::to_string(getpid())) {}

    int run() {
        start_broker();
        start_consumer();

        common::Producer producer({{"bootstrap.servers", bootstrap_}, {"linger.ms", "5"}});
        // librdkafka's assign() wants a group.id; with assign() it never joins
        // that group and nothing is committed.
        common::Consumer credits({{"bootstrap.servers", bootstrap_},
                                  {"group.id", run_id_ + "-reader"},
                                  {"fetch.wait.max.ms", "10"}});
        const auto parts = credits.partition_count(kCreditTopic, 10s);
        if (!parts) throw Failure(std::string("no partition count for ") + kCreditTopic);
        std::vector<common::TopicPartition> assignment;
        for (int p = 0; p < *parts; ++p)
            assignment.push_back({kCreditTopic, p, common::kOffsetBeginning});
        credits.assign(assignment);

        // Warm-up: one transfer through the whole path proves the consumer
        // holds its partitions, so the group join is not timed.
        const std::string warm = run_id_ + "-warmup";
        for (int step = 0; step < 4; ++step) produce(producer, warm, event(warm, 0, step), credits);
        const auto warm_deadline = Clock::now() + 60s;
        while (!seen_.contains(warm)) {
            read_credits(credits, 100ms);
            if (Clock::now() > warm_deadline) {
                // The usual cause: a store reused from an earlier run holds
                // offsets past this fresh broker's, so the records are skipped.
                throw Failure(
                    "warm-up transfer not credited within 60 s (consumer never assigned, or the "
                    "store is not fresh: use a new database / SQLite file per run): " +
                    consumer_->stderr_tail());
            }
        }

        const std::size_t transfers = events_ / 4;
        std::size_t window = 0;
        std::size_t step = 0;
        std::size_t in_window = 0;
        std::size_t produced = 0;
        const auto start = Clock::now();
        auto last_progress = start;
        std::size_t last_count = bench_credits_;
        while (bench_credits_ < transfers) {
            // Feed up to the backlog cap, then read credits back.
            while (produced < events_ &&
                   produced - 4 * std::min(bench_credits_, produced / 4) < kBacklogCap) {
                const std::size_t base = window * kWindow;
                const std::size_t size = std::min(kWindow, transfers - base);
                const std::size_t t = base + in_window;
                const std::string tid = transfer_id(run_id_, t);
                produce(producer, tid, event(tid, t, static_cast<int>(step)), credits);
                ++produced;
                if (++in_window == size) {
                    in_window = 0;
                    if (++step == 4) {
                        step = 0;
                        ++window;
                    }
                }
            }
            read_credits(credits, 20ms);
            if (bench_credits_ != last_count) {
                last_count = bench_credits_;
                last_progress = Clock::now();
            } else if (Clock::now() - last_progress > kStallTimeout) {
                throw Failure("stalled: " + std::to_string(bench_credits_) + " of " +
                              std::to_string(transfers) + " credits after " +
                              std::to_string(produced) + " events produced; no new credit for " +
                              std::to_string(kStallTimeout.count()) + " s");
            }
        }
        const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

        // Untimed: a duplicate credit arriving just after the last one still fails the run.
        const auto grace = Clock::now() + 1s;
        while (Clock::now() < grace) read_credits(credits, 50ms);

        const std::string store = store_url_.starts_with("sqlite://") ? "sqlite" : "postgresql";
        std::printf("RESULT store=%s events=%zu seconds=%.3f events_per_s=%.0f credits=%zu\n",
                    store.c_str(), events_, seconds, static_cast<double>(events_) / seconds,
                    bench_credits_ + duplicates_);
        std::fflush(stdout);
        if (duplicates_ != 0 || bench_credits_ != transfers) {
            std::fprintf(stderr,
                         "bench_consumer_e2e: %zu credits for %zu transfers (%zu duplicates)\n",
                         bench_credits_ + duplicates_, transfers, duplicates_);
            return 1;
        }
        return 0;
    }

private:
    void start_broker() {
        broker_.emplace(std::vector<std::string>{(bin_dir_ / "meshhook").string(), "broker",
                                                 "--brokers", "3", "--partitions", "4"},
                        tmp_ / "broker.err");
        const auto line = broker_->read_line(30s);
        if (!line || !line->starts_with("bootstrap=")) {
            throw Failure("meshhook broker did not print bootstrap=: " + broker_->stderr_tail());
        }
        bootstrap_ = line->substr(std::string("bootstrap=").size());
    }

    void start_consumer() {
        consumer_.emplace(
            std::vector<std::string>{(bin_dir_ / "meshhook-consumer").string(), "--brokers",
                                     bootstrap_, "--store", store_url_, "--group-id",
                                     "bench-" + std::to_string(getpid()), "--metrics-listen",
                                     "127.0.0.1:0", "--session-timeout-ms", "6000", "--batch-max",
                                     "5000", "--batch-ms", "20", "--log-level", "warn"},
            tmp_ / "consumer.err");
        const auto deadline = Clock::now() + 60s;
        while (Clock::now() < deadline) {
            const auto line = consumer_->read_line(1s);
            if (line && line->find("ready") != std::string::npos) return;
            if (!line && !consumer_->running()) break;
        }
        throw Failure("meshhook-consumer not ready: " + consumer_->stderr_tail());
    }

    void produce(common::Producer& producer, const std::string& key, const std::string& body,
                 common::Consumer& credits) {
        static const std::vector<common::Header> kHeaders{{"environment", "production"}};
        for (;;) {
            const auto s = producer.produce(kInputTopic, key, body, kHeaders, nullptr);
            if (s == common::ProduceStatus::kEnqueued) return;
            if (s != common::ProduceStatus::kQueueFull) {
                throw Failure("produce: " + std::string(common::to_string(s)));
            }
            read_credits(credits, 10ms);  // the producer's queue drains meanwhile
        }
    }

    void read_credits(common::Consumer& credits, std::chrono::milliseconds timeout) {
        auto msg = credits.poll(timeout);
        for (int n = 0; msg && n < 10000; ++n) {
            if (msg.error()) {
                if (!msg.is_partition_eof()) {
                    std::fprintf(stderr, "bench_consumer_e2e: credit topic: %s\n",
                                 std::string(msg.error().message()).c_str());
                }
            } else if (const auto key = msg.key()) {
                const bool warm = key->ends_with("-warmup");
                if (!seen_.emplace(*key).second) {
                    ++duplicates_;
                } else if (!warm && key->starts_with(run_id_)) {
                    ++bench_credits_;
                }
            }
            msg = credits.poll(0ms);
        }
        consumer_->drain();
        broker_->drain();
        if (!consumer_->running())
            throw Failure("meshhook-consumer exited: " + consumer_->stderr_tail());
        if (!broker_->running()) throw Failure("meshhook broker exited: " + broker_->stderr_tail());
    }

    std::filesystem::path bin_dir_;
    std::string store_url_;
    std::size_t events_;
    std::filesystem::path tmp_;
    std::string run_id_;
    std::string bootstrap_;
    // The consumer is declared after the broker, so it stops first.
    std::optional<Child> broker_;
    std::optional<Child> consumer_;
    std::unordered_set<std::string> seen_;
    std::size_t bench_credits_ = 0;
    std::size_t duplicates_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: bench_consumer_e2e BIN_DIR STORE_URL EVENTS\n");
        return 2;
    }
    const std::size_t events = std::strtoull(argv[3], nullptr, 10);
    if (events < 4 || events % 4 != 0) {
        std::fprintf(stderr, "bench_consumer_e2e: EVENTS must be a positive multiple of 4\n");
        return 2;
    }
    for (const char* name : {"meshhook", "meshhook-consumer"}) {
        const std::string path = std::string(argv[1]) + "/" + name;
        if (access(path.c_str(), X_OK) != 0) {
            std::fprintf(stderr, "bench_consumer_e2e: BIN_DIR: %s is not an executable\n",
                         path.c_str());
            return 2;
        }
    }
    // Our own temp dir for child logs (and the SQLite file when the URL says
    // sqlite://tmp, i.e. the caller lets us choose).
    char tmpl[] = "/tmp/meshhook-e2e.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
        std::perror("mkdtemp");
        return 1;
    }
    const std::filesystem::path tmp = tmpl;
    std::string url = argv[2];
    if (url == "sqlite" || url == "sqlite://") url = "sqlite://" + (tmp / "meshhook.db").string();
    int rc = 1;
    try {
        Bench bench(argv[1], url, events, tmp);
        rc = bench.run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_consumer_e2e: FAILED: %s\n", e.what());
        rc = 1;
    }
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
    return rc;
}
