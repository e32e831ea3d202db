#include "consumer/app.hpp"

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <memory>
#include <thread>

#include "common/kafka.hpp"
#include "common/metrics.hpp"
#include "common/wire.hpp"
#include "consumer/batch.hpp"
#include "consumer/consume_loop.hpp"
#include "consumer/http_server.hpp"
#include "consumer/metrics.hpp"
#include "consumer/policy_file.hpp"
#include "consumer/reconcile.hpp"
#include "consumer/relay.hpp"
#include "consumer/store.hpp"

namespace meshhook::consumer {

namespace {

using common::ConfigError;

std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free, "set from a signal handler");

extern "C" void on_stop_signal(int /*sig*/) {
    g_stop.store(true);
}

std::chrono::milliseconds millis(const common::Settings& s, std::string_view flag,
                                 std::uint64_t min, std::uint64_t max) {
    return std::chrono::milliseconds(
        static_cast<std::int64_t>(common::parse_uint(s.describe(flag), s.get(flag), min, max)));
}

std::int64_t steady_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

// --start-from, decided before consuming. Kafka not answering is waited out
// (the consumer would wait for it anyway); a refusal ends the process.
std::string prepare_start_or_exit(const common::Settings& settings, const ConsumerConfig& config,
                                  Store& store, const common::KafkaConfig& group_client) {
    std::unique_ptr<common::Consumer> probe;
    try {
        probe = std::make_unique<common::Consumer>(group_client);
    } catch (const common::KafkaError& e) {
        common::fail_config(kProgram, ConfigError(settings.describe("brokers") + ": " + e.what()));
    }
    for (;;) {
        try {
            return prepare_start(store, *probe, config.topics, config.start_from,
                                 settings.describe("start-from"), std::chrono::seconds(10));
        } catch (const ConfigError& e) {
            common::fail_config(kProgram, e);
        } catch (const StoreError& e) {
            common::fail_config(kProgram,
                                ConfigError(settings.describe("store") + ": " + e.what()));
        } catch (const common::KafkaError& e) {
            common::log_warn(std::string("cannot tell yet where an empty store starts: ") +
                             e.what() + "; retrying");
        }
        // Serves the client's queued errors: a refused login ends the
        // process there with its one line (common/kafka.cpp), as it would in
        // the consume loop, instead of a retry forever.
        (void)probe->poll(std::chrono::milliseconds(0));
        for (int i = 0; i < 10 && !g_stop.load(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        if (g_stop.load()) {
            return {};
        }
    }
}

// The reconciler runs where the relay holds the store's lock; nullptr when
// no Mesh API credentials are set.
std::unique_ptr<Reconciler> start_reconciler(const ConsumerConfig& config,
                                             const common::KafkaConfig& client,
                                             ConsumerMetrics& metrics, const OutboxRelay& relay) {
    for (const std::string& warning : config.reconcile.warnings) {
        common::log_warn(warning);
    }
    if (!config.reconcile.enabled()) {
        common::log_info("reconciliation: off (no MESH_CLIENT_ID[_<ENV>])");
        return nullptr;
    }
    ReconcilerOptions options;
    options.config = config.reconcile;
    options.store_url = config.store_url;
    options.kafka = client;
    // Bounded, so a pass's final flush ends even with Kafka away.
    options.kafka.emplace_back("message.timeout.ms", "30000");
    options.input_topic = config.topics.input;
    std::string names;
    for (const auto& env : config.reconcile.environments) {
        names += (names.empty() ? "" : ",") + env.name + "=" + env.api_url;
    }
    common::log_info("reconciliation: " + names + " every " +
                     std::to_string(config.reconcile.interval.count()) + " s, look-back " +
                     std::to_string(config.reconcile.lookback.count()) + " s");
    auto reconciler =
        std::make_unique<Reconciler>(options, &metrics, [&relay] { return relay.active(); });
    reconciler->start();
    return reconciler;
}

// Mesh's network list (consumer/networks.hpp) screens succeeded transfers of
// every environment with API credentials; fetched before the first batch,
// then every --networks-refresh-s. nullptr without credentials.
std::unique_ptr<NetworkDirectory> start_networks(ConsumerConfig& config,
                                                 common::Registry& registry) {
    if (!config.reconcile.enabled() || !config.networks.enabled) {
        common::log_info(
            std::string("network checks: off (") +
            (config.networks.enabled ? "no MESH_CLIENT_ID[_<ENV>]" : "--network-checks off") +
            "); --allowed-assets alone applies");
        return nullptr;
    }
    std::vector<std::string> names;
    for (const auto& env : config.reconcile.environments) names.push_back(env.name);
    auto screen = std::make_shared<NetworkScreen>(names);
    config.policy.set_screen(screen);
    auto directory = std::make_unique<NetworkDirectory>(config.reconcile.environments,
                                                        config.networks, screen, &registry);
    directory->fetch_first(g_stop);
    directory->start();
    return directory;
}

}  // namespace

void declare_settings(common::Settings& s) {
    common::declare_brokers(s)
        .add({"group-id", "CONSUMER_GROUP_ID", "meshhook-consumer", "Kafka consumer group"})
        .add({"input-topic", "CONSUMER_INPUT_TOPIC", std::string(wire::kTransferEventsTopic),
              "Topic of transfer-status events"})
        .add({"credit-topic", "CONSUMER_CREDIT_TOPIC", std::string(wire::kCreditCommandsTopic),
              "Topic for ledger credit commands"})
        .add({"review-topic", "CONSUMER_REVIEW_TOPIC", std::string(wire::kCreditReviewTopic),
              "Topic for succeeded transfers that policy sends to review"})
        .add({"anomaly-topic", "CONSUMER_ANOMALY_TOPIC", std::string(wire::kAnomaliesTopic),
              "Topic for conflicts and unparseable records"})
        .add({"store", "CONSUMER_STORE", "sqlite://meshhook.db",
              "State store: sqlite:///abs/path.db, sqlite://relative.db or postgresql://..."})
        .add({"batch-max", "CONSUMER_BATCH_MAX", "500", "Most records applied per transaction"})
        .add({"batch-ms", "CONSUMER_BATCH_MS", "100",
              "Longest wait for a batch to fill once it has a record"})
        .add({"allowed-assets", "CONSUMER_ALLOWED_ASSETS", "",
              "TOKEN:CHAIN pairs that may be credited, e.g. USDC:Ethereum,USDC:Solana "
              "(case-insensitive; empty = all)"})
        .add({"destination-addresses-file", "CONSUMER_DESTINATION_ADDRESSES_FILE", "",
              "Optional file of '<environment> <address>' lines; when set, only those "
              "destinations are credited"})
        .add({"metrics-listen", "CONSUMER_METRICS_LISTEN", "0.0.0.0:9091",
              "Address for /metrics, /healthz and /readyz (port 0 picks one)"})
        .add({"session-timeout-ms", "KAFKA_SESSION_TIMEOUT_MS", "10000",
              "Consumer group session timeout"})
        .add({"drain-timeout-ms", "CONSUMER_DRAIN_TIMEOUT_MS", "10000",
              "On SIGTERM, longest wait for the outbox relay to send what is committed"})
        .add({"relay-transactional-id", "CONSUMER_RELAY_TRANSACTIONAL_ID", "",
              "transactional.id of the outbox relay, the same for every instance on one store "
              "(default meshhook-relay.<group-id>.<credit-topic>); Kafka fences all but the "
              "latest holder"})
        .add({"park-after", "CONSUMER_PARK_AFTER", "3",
              "Times Kafka may refuse one outbox record itself (too large, topic missing, not "
              "authorised) before the relay parks it and goes on with the others"})
        .add({"stall-after-s", "CONSUMER_STALL_AFTER_S", "120",
              "/healthz fails when the consume loop or the outbox relay has shown no sign of "
              "life for this long (a hung thread: restart it)"})
        .add({"start-from", "CONSUMER_START_FROM", "",
              "Where a store with no offsets starts reading: earliest, latest or committed "
              "(the group's offsets); unset, it refuses to start when the output topics already "
              "hold records. Ignored once the store has offsets"});
    declare_reconcile_settings(s, true);
    declare_network_settings(s);
    s.add({"ready-file", "CONSUMER_READY_FILE", "",
           "once ready, write metrics_listen=HOST:PORT and pid=N here (atomically)"});
    common::declare_log_settings(s);
    common::declare_client_properties(s);
}

ConsumerConfig load_config(const common::Settings& s) {
    ConsumerConfig c;
    c.brokers = common::bootstrap_servers(s);
    c.kafka_properties = common::client_properties(s);
    c.group_id = s.get("group-id");
    if (c.group_id.empty()) {
        throw ConfigError(s.describe("group-id") + ": must not be empty");
    }
    c.topics.input = common::topic_name(s, "input-topic");
    c.topics.credits = common::topic_name(s, "credit-topic");
    c.topics.reviews = common::topic_name(s, "review-topic");
    c.topics.anomalies = common::topic_name(s, "anomaly-topic");
    c.store_url = s.get("store");
    if (!c.store_url.starts_with("sqlite://") && !c.store_url.starts_with("postgresql://") &&
        !c.store_url.starts_with("postgres://")) {
        throw ConfigError(s.describe("store") +
                          ": must start with sqlite:// or postgresql://, got \"" +
                          redact_store_url(c.store_url) + "\"");
    }
    c.batch_max = static_cast<std::size_t>(
        common::parse_uint(s.describe("batch-max"), s.get("batch-max"), 1, 100000));
    c.batch_wait = millis(s, "batch-ms", 0, 60000);
    parse_allowed_assets(c.policy, s.describe("allowed-assets"), s.get("allowed-assets"));
    if (!s.get("destination-addresses-file").empty()) {
        load_destination_file(c.policy, s.describe("destination-addresses-file"),
                              s.get("destination-addresses-file"));
    }
    c.metrics_listen =
        common::parse_host_port(s.describe("metrics-listen"), s.get("metrics-listen"));
    c.session_timeout = millis(s, "session-timeout-ms", 1000, 3600000);
    c.drain_timeout = millis(s, "drain-timeout-ms", 0, 600000);
    c.relay_transactional_id = s.get("relay-transactional-id");
    if (c.relay_transactional_id.empty()) {
        c.relay_transactional_id = "meshhook-relay." + c.group_id + "." + c.topics.credits;
    }
    c.park_after = static_cast<int>(
        common::parse_uint(s.describe("park-after"), s.get("park-after"), 1, 1000));
    c.stall_after = std::chrono::seconds(
        common::parse_uint(s.describe("stall-after-s"), s.get("stall-after-s"), 5, 86400));
    const auto log = common::log_settings(s);
    c.log_format = log.format;
    c.log_level = log.level;
    c.ready_file = s.get("ready-file");
    if (const std::string& from = s.get("start-from"); !from.empty()) {
        c.start_from = parse_start_from(from);
        if (!c.start_from) {
            throw ConfigError(s.describe("start-from") +
                              ": expected earliest, latest or committed, got \"" + from + "\"");
        }
    }
    c.reconcile = load_reconcile_config(s, true);
    c.networks = load_networks_config(s);
    return c;
}

int run(int argc, char** argv) {
    common::Settings settings(std::string(kProgram),
                              "applies Mesh transfer events exactly once and emits ledger credit "
                              "commands");
    declare_settings(settings);
    ConsumerConfig config;
    try {
        if (settings.parse(argc, argv) == common::Settings::Outcome::kHelp) {
            std::cout << settings.help_text();
            return 0;
        }
        if (!settings.positional().empty()) {
            throw ConfigError("unexpected argument \"" + settings.positional().front() +
                              "\" (see --help)");
        }
        config = load_config(settings);
        common::init_logging(kProgram, config.log_format, config.log_level);
    } catch (const std::exception& e) {
        common::fail_config(kProgram, e);
    }
    std::signal(SIGPIPE, SIG_IGN);
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, nullptr);
    sigaction(SIGINT, &action, nullptr);

    std::unique_ptr<Store> store;
    try {
        store = open_store(config.store_url);
    } catch (const StoreError& e) {
        common::fail_config(kProgram, ConfigError(settings.describe("store") + ": " + e.what()));
    }
    common::KafkaConfig client{{"bootstrap.servers", config.brokers},
                               {"client.id", std::string(kProgram)}};
    client.insert(client.end(), config.kafka_properties.begin(), config.kafka_properties.end());
    common::KafkaConfig group_client = client;
    group_client.emplace_back("group.id", config.group_id);

    // Before anything is logged, so that a refusal is the process's one line.
    const std::string start_note = prepare_start_or_exit(settings, config, *store, group_client);
    if (g_stop.load()) {
        return 0;
    }
    common::log_info(
        "starting: brokers=" + config.brokers + " group=" + config.group_id +
        " input=" + config.topics.input + " store=" + redact_store_url(config.store_url) + " (" +
        std::string(store->kind()) + ", schema v" + std::to_string(store->schema_version()) + ")");
    if (!start_note.empty()) {
        common::log_info(start_note);
    }

    common::Registry registry;
    ConsumerMetrics metrics(registry);
    std::atomic<bool> ready{false};
    std::atomic<ConsumeLoop*> loop_ref{nullptr};
    std::atomic<const OutboxRelay*> relay_ref{nullptr};
    std::unique_ptr<HttpServer> http;
    try {
        http = std::make_unique<HttpServer>(
            settings.describe("metrics-listen"), config.metrics_listen,
            [&](std::string_view method, std::string_view path) -> HttpResponse {
                if (method != "GET" && method != "HEAD") {
                    return {405, "text/plain; charset=utf-8", "method not allowed\n"};
                }
                if (path == "/metrics") {
                    return {200, "text/plain; version=0.0.4; charset=utf-8", registry.render()};
                }
                if (path == "/healthz") {
                    // Live unless a thread is hung: both beat at least every
                    // few seconds, and each of their calls has a deadline.
                    const std::int64_t now = steady_now_ms();
                    const std::int64_t limit = config.stall_after.count() * 1000;
                    const ConsumeLoop* loop = loop_ref.load();
                    std::string stalled;
                    if (loop != nullptr && now - loop->heartbeat_ms() > limit) {
                        stalled += "consume loop stalled\n";
                    }
                    if (relay_ref.load() != nullptr &&
                        now - relay_ref.load()->heartbeat_ms() > limit) {
                        stalled += "outbox relay stalled\n";
                    }
                    if (!stalled.empty()) {
                        return {503, "text/plain; charset=utf-8", stalled};
                    }
                    return {200, "text/plain; charset=utf-8", "ok\n"};
                }
                if (path == "/readyz") {
                    const ConsumeLoop* loop = loop_ref.load();
                    const bool ok = ready.load() && loop != nullptr && loop->store_healthy();
                    metrics.ready().set(ok ? 1 : 0);
                    return {ok ? 200U : 503U, "text/plain; charset=utf-8",
                            ok ? "ready\n" : "not ready\n"};
                }
                return {404, "text/plain; charset=utf-8", "not found\n"};
            });
    } catch (const ConfigError& e) {
        common::fail_config(kProgram, e);
    }
    common::log_info("metrics on port " + std::to_string(http->port()));

    RelayOptions relay_options;
    relay_options.store_url = config.store_url;
    relay_options.kafka = client;
    relay_options.topics = {config.topics.credits, config.topics.reviews, config.topics.anomalies};
    relay_options.transactional_id = config.relay_transactional_id;
    relay_options.park_after = config.park_after;
    OutboxRelay relay(relay_options, &metrics);

    LoopOptions loop_options;
    loop_options.kafka = group_client;
    loop_options.kafka.emplace_back("session.timeout.ms",
                                    std::to_string(config.session_timeout.count()));
    loop_options.kafka.emplace_back(
        "heartbeat.interval.ms",
        std::to_string(std::max<std::int64_t>(100, config.session_timeout.count() / 3)));
    loop_options.topics = config.topics;
    loop_options.batch_max = config.batch_max;
    loop_options.batch_wait = config.batch_wait;
    const std::unique_ptr<NetworkDirectory> networks = start_networks(config, registry);
    BatchApplier applier(config.policy, config.topics);

    std::unique_ptr<ConsumeLoop> loop;
    try {
        loop = std::make_unique<ConsumeLoop>(loop_options, *store, applier, &metrics,
                                             [&relay] { relay.notify(); });
        loop->subscribe();
    } catch (const common::KafkaError& e) {
        common::fail_config(kProgram, ConfigError(settings.describe("brokers") + ": " + e.what()));
    }
    relay.start();
    relay_ref.store(&relay);
    std::unique_ptr<Reconciler> reconciler = start_reconciler(config, client, metrics, relay);
    loop_ref.store(loop.get());
    ready.store(true);
    metrics.ready().set(1);
    if (!config.ready_file.empty()) {
        try {
            common::write_ready_file(settings.describe("ready-file"), config.ready_file,
                                     {{"metrics_listen", config.metrics_listen.host + ":" +
                                                             std::to_string(http->port())},
                                      {"pid", std::to_string(::getpid())}});
        } catch (const ConfigError& e) {
            common::fail_config(kProgram, e);
        }
    }
    std::printf("%s: ready\n", kProgram.data());
    std::fflush(stdout);
    common::log_info("ready");

    try {
        loop->run(g_stop);
    } catch (const std::exception& e) {
        common::log_error(std::string("fatal: ") + e.what());
        ready.store(false);
        reconciler.reset();
        relay.stop(std::chrono::milliseconds(0));
        relay_ref.store(nullptr);
        loop_ref.store(nullptr);
        return 1;
    }
    ready.store(false);
    metrics.ready().set(0);
    common::log_info("stopping: sending what is committed, then leaving the group");
    reconciler.reset();
    relay.stop(config.drain_timeout);
    relay_ref.store(nullptr);
    loop->close();
    common::log_info("stopped: " + std::to_string(relay.sent()) + " outbox rows sent");
    return 0;
}

}  // namespace meshhook::consumer
