// `meshhook dev`: the whole pipeline on this machine, in one command.
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <random>
#include <sstream>

#include "common/transfer_event.hpp"
#include "common/wire.hpp"
#include "tools/apache_cluster.hpp"
#include "tools/broker.hpp"
#include "tools/child.hpp"
#include "tools/commands.hpp"
#include "tools/fixtures.hpp"
#include "tools/http_client.hpp"
#include "tools/json_field.hpp"
#include "tools/mesh_sim.hpp"
#include "tools/scenario.hpp"
#include "tools/sender.hpp"
#include "tools/topic_reader.hpp"
#include "tools/util.hpp"

namespace meshhook::tools {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kProgram = "meshhook dev";
constexpr const char* kIngestColor = "36";    // cyan
constexpr const char* kConsumerColor = "35";  // magenta
constexpr std::string_view kCreditTopic = wire::kCreditCommandsTopic;

std::string random_secret() {
    std::random_device rd;
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s = "whsec_dev_";
    for (int i = 0; i < 32; ++i) s += kHex[rd() % 16];
    return s;
}

class Dev {
public:
    Dev(int signal_fd, bool color) : signal_fd_(signal_fd), sink_(color) {}

    // Whether to go on: no Ctrl-C, no child gone. Sets failure_ on a child exit.
    bool healthy() {
        signalfd_siginfo info{};
        while (::read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
            if (!interrupted_) {
                interrupted_ = true;
                const char* name = sigdescr_np(static_cast<int>(info.ssi_signo));
                say(std::string("stopping (") + (name != nullptr ? name : "signal") + ")");
            }
        }
        for (auto* child : {ingest_.get(), consumer_.get()}) {
            if (child == nullptr) continue;
            if (auto status = child->poll_exit(); status && failure_.empty()) {
                failure_ = "meshhook-" + child->name() + " exited unexpectedly (" + *status + ")";
            }
        }
        return !interrupted_ && failure_.empty();
    }

    // Polls `condition` until it holds, the deadline passes (failure_ =
    // `what`), or the pipeline is stopping.
    bool wait_for(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                  const std::string& what) {
        const auto deadline = Clock::now() + timeout;
        while (healthy()) {
            if (condition()) return true;
            if (Clock::now() >= deadline) {
                failure_ = what;
                return false;
            }
            std::this_thread::sleep_for(50ms);
        }
        return false;
    }

    void say(const std::string& line) { sink_.print(std::string(kProgram) + ": " + line); }

    int run(const common::Settings& settings, const fs::path& bin_dir);

private:
    bool demo(const std::string& bootstrap, const Url& url, const std::string& secret);
    int finish(bool ok);

    int signal_fd_;
    LineSink sink_;
    std::unique_ptr<Child> ingest_;
    std::unique_ptr<Child> consumer_;
    // Mesh's API for the consumer's reconciliation, in this process.
    std::unique_ptr<MeshSim> mesh_;
    std::atomic<int> ingest_port_{0};
    std::atomic<int> consumer_port_{0};  // from its ready file
    std::uint16_t metrics_port_ = 0;
    bool interrupted_ = false;
    bool demo_mode_ = false;
    std::string failure_;
};

int Dev::run(const common::Settings& settings, const fs::path& bin_dir) {
    const fs::path ingest_bin = bin_dir / "meshhook-ingest";
    const fs::path consumer_bin = bin_dir / "meshhook-consumer";
    for (const auto& bin : {ingest_bin, consumer_bin}) {
        if (::access(bin.c_str(), X_OK) != 0) {
            return fail(kProgram, bin.filename().string() + " not found in " + bin_dir.string() +
                                      ": build it first (cmake --build --preset dev --target "
                                      "meshhook-ingest meshhook-consumer)");
        }
    }

    const bool demo_mode = settings.is_set("demo");
    demo_mode_ = demo_mode;
    std::string secret = first_secret(settings.get("secret"));
    if (secret.empty()) secret = random_secret();

    // The store: a given directory is kept; a temporary one goes at exit.
    fs::path data_dir;
    bool remove_data_dir = false;
    if (settings.is_set("data-dir")) {
        data_dir = settings.get("data-dir");
        std::error_code ec;
        fs::create_directories(data_dir, ec);
        if (ec) return fail(kProgram, "--data-dir " + data_dir.string() + ": " + ec.message());
    } else {
        std::string tmpl = (fs::temp_directory_path() / "meshhook-dev-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) {
            return fail(kProgram, "cannot create a temporary directory: " +
                                      std::string(std::strerror(errno)));
        }
        data_dir = tmpl;
        remove_data_dir = true;
    }
    struct DirCleanup {
        fs::path dir;
        bool remove;
        ~DirCleanup() {
            std::error_code ec;
            if (remove) fs::remove_all(dir, ec);
        }
    } cleanup{data_dir, remove_data_dir};
    const std::string store_url = "sqlite://" + fs::absolute(data_dir / "meshhook.db").string();

    // The mock: one in-process broker, ready at once. Apache Kafka: three
    // KRaft JVMs with replication 3 and min.insync.replicas 2, as deployed.
    const std::string& engine = settings.get("engine");
    BrokerOptions broker_options;
    broker_options.brokers = engine == "apache" ? 3 : 1;
    broker_options.replication_factor = broker_options.brokers;
    broker_options.partitions = 4;
    broker_options.topics = default_topics();
    std::unique_ptr<TestCluster> cluster;
    try {
        if (engine == "apache") say("starting Apache Kafka (3 KRaft brokers)...");
        cluster = make_cluster(engine, broker_options, settings.get("kafka-libs"));
    } catch (const std::exception& e) {
        return fail(kProgram, std::string("cannot start the embedded broker: ") + e.what());
    }
    const std::string bootstrap = cluster->bootstrap();
    say(engine == "apache" ? "Apache Kafka cluster at " + bootstrap
                           : "embedded Kafka-protocol broker at " + bootstrap);

    // Both services bind port 0 and write the address they got to a ready
    // file (--ready-file): no window in which another process can take a
    // port picked for them, and no parsing of log lines.
    const fs::path ingest_ready = data_dir / "ingest.ready";
    const fs::path consumer_ready = data_dir / "consumer.ready";
    for (const auto& f : {ingest_ready, consumer_ready}) {
        std::error_code ec;
        fs::remove(f, ec);  // a kept --data-dir may hold the last run's
    }
    std::string mesh_url;
    try {
        ingest_ = std::make_unique<Child>(
            "ingest",
            std::vector<std::string>{ingest_bin.string(), "--listen", "127.0.0.1:0",
                                     "--admin-listen", "127.0.0.1:0", "--brokers", bootstrap,
                                     "--ready-file", ingest_ready.string()},
            std::map<std::string, std::string>{{"MESH_WEBHOOK_SECRET", secret}}, sink_,
            kIngestColor, nullptr);
        say("started meshhook-ingest (pid " + std::to_string(ingest_->pid()) + ")");
        MeshSim::Options mesh_options;
        mesh_options.client_id = "meshhook-dev";
        mesh_options.client_secret = random_secret();
        mesh_ = std::make_unique<MeshSim>(mesh_options);
        mesh_url = "http://127.0.0.1:" + std::to_string(mesh_->port());
        // The demo wants a pass every second and acts at once; plain dev
        // leaves a webhook in flight half a minute.
        consumer_ = std::make_unique<Child>(
            "consumer",
            std::vector<std::string>{consumer_bin.string(), "--brokers", bootstrap, "--store",
                                     store_url, "--group-id", "meshhook-dev", "--metrics-listen",
                                     "127.0.0.1:0", "--ready-file", consumer_ready.string(),
                                     "--reconcile-interval-s", demo_mode ? "1" : "10",
                                     "--reconcile-stale-after-s", demo_mode ? "0" : "30"},
            std::map<std::string, std::string>{{"MESH_CLIENT_ID", mesh_options.client_id},
                                               {"MESH_CLIENT_SECRET", mesh_options.client_secret},
                                               {"MESH_API_URL", mesh_url}},
            sink_, kConsumerColor, nullptr);
        say("started meshhook-consumer (pid " + std::to_string(consumer_->pid()) + ")");
    } catch (const std::exception& e) {
        failure_ = e.what();
        return finish(false);
    }

    const auto ready = [](std::uint16_t port) {
        const auto r = http_get("127.0.0.1", port, "/readyz", 1000ms);
        return r.response && r.response->status == 200;
    };
    // The port of `key` (HOST:PORT) in a service's ready file, 0 until written.
    const auto ready_port = [](const fs::path& file, const std::string& key) -> int {
        std::ifstream in(file);
        std::string line;
        while (std::getline(in, line)) {
            if (line.rfind(key + "=", 0) == 0) {
                const auto colon = line.rfind(':');
                try {
                    return colon == std::string::npos ? 0 : std::stoi(line.substr(colon + 1));
                } catch (const std::exception&) {
                    return 0;
                }
            }
        }
        return 0;
    };
    // The ready file is written whole (atomically): once it names the
    // webhook listener it names the admin listener too.
    int ingest_admin_port = 0;
    if (!wait_for([&] { return (ingest_port_ = ready_port(ingest_ready, "listen")) != 0; }, 30s,
                  "meshhook-ingest did not write its ready file within 30 s") ||
        (ingest_admin_port = ready_port(ingest_ready, "admin")) == 0 ||
        !wait_for([&] { return ready(static_cast<std::uint16_t>(ingest_admin_port)); }, 30s,
                  "meshhook-ingest was not ready (GET /readyz) within 30 s") ||
        !wait_for(
            [&] { return (consumer_port_ = ready_port(consumer_ready, "metrics_listen")) != 0; },
            60s, "meshhook-consumer did not write its ready file within 60 s") ||
        !wait_for([&] { return ready(static_cast<std::uint16_t>(consumer_port_.load())); }, 60s,
                  "meshhook-consumer was not ready (GET /readyz on port " +
                      std::to_string(consumer_port_.load()) + ") within 60 s")) {
        return finish(false);
    }
    metrics_port_ = static_cast<std::uint16_t>(consumer_port_.load());

    Url url{"127.0.0.1", static_cast<std::uint16_t>(ingest_port_.load()), "/webhooks/mesh"};
    const auto self = fs::read_symlink("/proc/self/exe").string();
    say("ready");
    say("  webhook URL   " + url.text());
    say("  secret        " + secret);
    say("  store         " + store_url + (remove_data_dir ? " (removed at exit)" : ""));
    say("  brokers       " + bootstrap);
    say("  Mesh API      " + mesh_url +
        " (simulator, client id meshhook-dev; the consumer "
        "reconciles with it)");
    say("  metrics       http://127.0.0.1:" + std::to_string(metrics_port_) +
        "/metrics (consumer), http://127.0.0.1:" + std::to_string(ingest_admin_port) +
        "/metrics (ingest)");
    say("  try:  " + self + " send --url " + url.text() + " --secret " + secret +
        " --scenario demo");

    if (demo_mode) return finish(demo(bootstrap, url, secret));

    say("Ctrl-C stops everything");
    while (healthy()) std::this_thread::sleep_for(100ms);
    return finish(failure_.empty());
}

bool Dev::demo(const std::string& bootstrap, const Url& url, const std::string& secret) {
    const auto scenario = demo_scenario();
    // The succeeded deliveries are dropped on purpose, as if Mesh's webhook
    // never arrived: reconciliation must recover the credit, once.
    std::vector<Stream> streams;
    std::vector<std::string> bodies;
    std::size_t sent_deliveries = 0;
    common::TransferEventParser parser;
    for (const Stream& stream : scenario.streams) {
        Stream kept;
        for (const Delivery& d : stream) {
            bodies.push_back(d.body);
            if (parser.parse(d.body).event.status != common::TransferStatus::kSucceeded) {
                kept.push_back(d);
            }
        }
        sent_deliveries += kept.size();
        if (!kept.empty()) streams.push_back(std::move(kept));
    }
    say("demo: sending " + std::to_string(sent_deliveries) + " of " +
        std::to_string(scenario.deliveries) +
        " deliveries (pending, processing, a failed transfer); the succeeded one and Mesh's "
        "retry of it are dropped on purpose, as if lost");
    SendOptions options;
    options.url = url;
    options.secret = secret;
    options.concurrency = 1;
    options.verbose = true;
    std::ostringstream send_log;
    auto sending =
        std::async(std::launch::async, [&] { return send_streams(streams, options, send_log); });
    if (!wait_for([&] { return sending.wait_for(0ms) == std::future_status::ready; }, 120s,
                  "sending the demo deliveries did not finish within 120 s")) {
        return false;  // the future joins once the children are gone and requests fail fast
    }
    const auto summary = sending.get();
    std::istringstream lines(send_log.str());
    for (std::string line; std::getline(lines, line);) say("  " + line);
    say("demo: " + format_summary(summary));
    if (!summary.ok()) {
        failure_ = "not every demo delivery was accepted: " +
                   (summary.failures.empty() ? std::string("?") : summary.failures.front());
        return false;
    }

    mesh_->put_from_webhooks(bodies);
    say("demo: Mesh's transfer list now says transfer " + std::string(kDemoTransferId) +
        " succeeded; the consumer's reconciliation (a pass a second) finds it");

    // Wait for the credit, then for the consumer to have applied the sent
    // events and the reconciled one and to have every credit it wrote to its outbox acknowledged by
    // the broker (its backlog gauge is only sampled every second, so the
    // counters are compared instead): after that, the credit topic
    // holds everything the demo will ever produce, and "exactly one" is a
    // statement about the whole topic, not about the first record seen.
    say("demo: waiting for the credit command on " + std::string(kCreditTopic));
    std::unique_ptr<TopicReader> reader;
    try {
        reader = std::make_unique<TopicReader>(bootstrap, std::string(kCreditTopic), false);
    } catch (const std::exception& e) {
        failure_ = e.what();
        return false;
    }
    bool seen = false;
    if (!wait_for(
            [&] {
                for (auto msg = reader->next(0ms); msg; msg = reader->next(0ms)) {
                    if (json_field(msg.value(), "transferId") == std::string(kDemoTransferId))
                        seen = true;
                }
                return seen;
            },
            30s,
            "no credit command for transfer " + std::string(kDemoTransferId) + " within 30 s")) {
        return false;
    }
    const auto settled = [&] {
        const auto r = http_get("127.0.0.1", metrics_port_, "/metrics", 1000ms);
        if (!r.response || r.response->status != 200) return false;
        const auto& text = r.response->body;
        const auto events = prometheus_sum(text, "meshhook_consumer_events_total");
        const auto credits = prometheus_sum(text, "meshhook_consumer_credits_total");
        const auto sent = prometheus_sum(text, "meshhook_consumer_outbox_sent_total",
                                         "topic=\"" + std::string(kCreditTopic) + "\"");
        return events && *events >= static_cast<double>(sent_deliveries + 1) && credits &&
               sent.value_or(0) >= *credits;
    };
    if (!wait_for(settled, 15s,
                  "the consumer did not report all " + std::to_string(sent_deliveries + 1) +
                      " events applied and every credit sent within 15 s")) {
        return false;
    }

    std::vector<std::string> credits;
    try {
        TopicReader all(bootstrap, std::string(kCreditTopic), false);
        const auto deadline = Clock::now() + 10s;
        while (!all.caught_up()) {
            if (Clock::now() >= deadline || !healthy()) {
                failure_ =
                    "could not read " + std::string(kCreditTopic) + " to its end within 10 s";
                return false;
            }
            if (auto msg = all.next(200ms)) credits.emplace_back(msg.value());
        }
    } catch (const std::exception& e) {
        failure_ = e.what();
        return false;
    }

    say("demo: credit commands on " + std::string(kCreditTopic) + ": " +
        std::to_string(credits.size()));
    int for_demo = 0;
    std::string amount;
    std::string event_id;
    for (const auto& c : credits) {
        std::istringstream pretty(pretty_json(c));
        for (std::string line; std::getline(pretty, line);) say("  " + line);
        if (json_field(c, "transferId") == std::string(kDemoTransferId)) {
            ++for_demo;
            amount = json_field(c, "amount").value_or("<none>");
            event_id = json_field(c, "eventId").value_or("<none>");
        }
    }
    if (credits.size() != 1 || for_demo != 1) {
        failure_ = "expected exactly one credit command (for transfer " +
                   std::string(kDemoTransferId) + "), found " + std::to_string(credits.size()) +
                   " (" + std::to_string(for_demo) + " for that transfer)";
        return false;
    }
    if (amount != kDemoAmount) {
        failure_ = "the credit's amount is " + amount + ", expected " + std::string(kDemoAmount) +
                   " unchanged";
        return false;
    }
    if (!event_id.starts_with("reconcile:")) {
        failure_ = "the credit came from event " + event_id + ", not from reconciliation";
        return false;
    }
    say("demo: ok: exactly one credit command for transfer " + std::string(kDemoTransferId) +
        ", amount " + amount + " (unchanged), recovered by reconciliation (event " + event_id +
        ")");
    return true;
}

int Dev::finish(bool ok) {
    // Another Ctrl-C while the children drain means: now.
    bool hurried = false;
    const auto hurry = [this, &hurried] {
        signalfd_siginfo info{};
        while (::read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
            if (!hurried) say("stopping now (SIGKILL)");
            hurried = true;
        }
        return hurried;
    };
    // Ingest first: it stops accepting and drains before the consumer goes.
    for (auto* child : {ingest_.get(), consumer_.get()}) {
        if (child == nullptr) continue;
        const bool was_running = !child->poll_exit();
        const auto status = child->stop(10s, hurry);
        if (was_running) say("stopped meshhook-" + child->name() + " (" + status + ")");
    }
    ingest_.reset();
    consumer_.reset();
    mesh_.reset();
    if (!failure_.empty()) return fail(kProgram, failure_);
    if (ok) return 0;
    // Ctrl-C is how a plain `dev` ends; an interrupted demo did not show its result.
    if (interrupted_) return demo_mode_ ? (fail(kProgram, "demo interrupted"), 130) : 0;
    return 1;
}

}  // namespace

int dev_main(int argc, const char* const* argv) {
    common::Settings settings(
        std::string(kProgram),
        "runs the whole pipeline on this machine: an embedded Kafka broker (--engine)\n"
        "with every topic, meshhook-ingest and meshhook-consumer (SQLite store), their\n"
        "logs prefixed and coloured. Prints the webhook URL, the secret and a ready\n"
        "`meshhook send` line. Ctrl-C stops everything; no process is left behind.\n\n"
        "The consumer reconciles with a Mesh API simulator in this process (as `meshhook\n"
        "mesh` serves it).\n\n"
        "--demo: waits until both are ready, sends the demo sequence (pending,\n"
        "processing, a failed transfer) but drops the succeeded delivery and Mesh's retry\n"
        "of it, as if lost; then Mesh's list says the transfer succeeded and the\n"
        "consumer's reconciliation recovers it. Prints the credit commands that came\n"
        "out, checks there is exactly one, from reconciliation, with its amount text\n"
        "unchanged, stops and exits 0 (1 when anything failed).\n\n"
        "meshhook-ingest and meshhook-consumer are taken from the directory of this\n"
        "binary, or --bin-dir.");
    settings.add({"demo", "", "", "send the demo sequence, print the credit, stop", false, true})
        .add({"secret", "MESHHOOK_DEV_SECRET", "",
              "webhook secret (default: a random one, printed)", true})
        .add({"data-dir", "", "",
              "directory of the SQLite store, kept (default: a temporary one, removed)"})
        .add({"bin-dir", "", "",
              "where meshhook-ingest and meshhook-consumer are (default: beside meshhook)"})
        .add({"color", "", "auto",
              "coloured prefixes: auto | always | never (NO_COLOR is honoured)"})
        .add({"engine", "MESHHOOK_BROKER_ENGINE", "mock",
              "Kafka engine: mock (librdkafka's mock cluster, instant) or apache (Apache "
              "Kafka, 3 KRaft JVMs, ~10 s to start)"})
        .add({"kafka-libs", "MESHHOOK_KAFKA_LIBS", default_kafka_libs().string(),
              "directory of the Apache Kafka jars (`make kafka`)"});
    if (auto code = parse_or_exit(settings, kProgram, argc, argv)) return *code;
    if (!settings.positional().empty()) {
        std::cerr << kProgram << ": unexpected argument '" << settings.positional().front()
                  << "'\n";
        return 2;
    }
    if (settings.get("engine") != "mock" && settings.get("engine") != "apache") {
        std::cerr << kProgram << ": --engine: expected mock or apache\n";
        return 2;
    }
    const auto& color_mode = settings.get("color");
    if (color_mode != "auto" && color_mode != "always" && color_mode != "never") {
        std::cerr << kProgram << ": --color: expected auto, always or never\n";
        return 2;
    }
    const bool color = color_mode == "always" || (color_mode == "auto" && stdout_is_tty() &&
                                                  std::getenv("NO_COLOR") == nullptr);

    fs::path bin_dir;
    if (settings.is_set("bin-dir")) {
        bin_dir = settings.get("bin-dir");
    } else {
        std::error_code ec;
        bin_dir = fs::read_symlink("/proc/self/exe", ec).parent_path();
        if (ec) return fail(kProgram, "cannot find my own binary: " + ec.message());
    }

    // Signals are read from a signalfd, so they must be blocked before any
    // thread starts (the embedded broker's included); children unblock them.
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    const int sfd = ::signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0) return fail(kProgram, "signalfd: " + std::string(std::strerror(errno)));
    int code;
    {
        Dev dev(sfd, color);
        code = dev.run(settings, bin_dir);
    }
    ::close(sfd);
    return code;
}

}  // namespace meshhook::tools
