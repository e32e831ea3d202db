#include "ingest/config.hpp"

#include <algorithm>
#include <fstream>

#include "common/kafka.hpp"
#include "common/wire.hpp"
#include "ingest/cpus.hpp"

namespace meshhook::ingest {
namespace {

using common::ConfigError;

std::chrono::milliseconds millis(const common::Settings& s, std::string_view flag,
                                 std::uint64_t min, std::uint64_t max) {
    return std::chrono::milliseconds(
        static_cast<std::int64_t>(common::parse_uint(s.describe(flag), s.get(flag), min, max)));
}

void check_readable(const common::Settings& s, std::string_view flag) {
    std::ifstream in(s.get(flag));
    if (!in) throw ConfigError(s.describe(flag) + ": cannot read \"" + s.get(flag) + "\"");
}

std::vector<std::string> secrets_from(std::string_view setting, std::string_view text) {
    auto secrets = common::split_list(text);
    if (secrets.empty()) {
        throw ConfigError(std::string(setting) + ": no secret in the list");
    }
    return secrets;
}

}  // namespace

std::optional<std::size_t> IngestConfig::environment_index(std::string_view name) const {
    for (std::size_t i = 0; i < environments.size(); ++i) {
        if (environments[i].name == name) return i;
    }
    return std::nullopt;
}

void declare_settings(common::Settings& s) {
    // The CPUs this process may use (affinity, cgroup quota), not the machine's.
    const auto cores = std::min(usable_cpus(), 256U);
    s.add({"listen", "INGEST_LISTEN", "0.0.0.0:8080",
           "Address for webhooks (host:port; port 0 picks one)"})
        .add({"admin-listen", "INGEST_ADMIN_LISTEN", "0.0.0.0:9090",
              "Address for /healthz, /readyz and /metrics (keep it off the public network)"});
    common::declare_brokers(s)
        .add({"webhook-secret", std::string(kSecretEnv), "",
              "Comma-separated active secrets for /webhooks/mesh (environment production); "
              "prefer the variable. MESH_WEBHOOK_SECRET_<ENV> adds /webhooks/mesh/<env>",
              true})
        .add({"topic", "KAFKA_TOPIC", std::string(wire::kTransferEventsTopic),
              "Topic for accepted events"})
        .add({"dlq-topic", "KAFKA_DLQ_TOPIC", std::string(wire::kDeadLetterTopic),
              "Topic for signed deliveries that are not usable events"})
        .add({"threads", "INGEST_THREADS", std::to_string(cores),
              "I/O threads (default: the CPUs this process may use, by affinity and cgroup "
              "cpu.max)"})
        .add({"max-body-bytes", "INGEST_MAX_BODY_BYTES", "65536",
              "Largest request body (413 above)"})
        .add({"ack-timeout-ms", "INGEST_ACK_TIMEOUT_MS", "150",
              "Budget from request received to Kafka's delivery report (503 after it)"})
        .add({"max-connections", "INGEST_MAX_CONNECTIONS", "10000",
              "Concurrent connections; more are closed at accept"})
        .add({"max-connections-per-source", "INGEST_MAX_CONNECTIONS_PER_SOURCE", "256",
              "Concurrent connections from one client address (trusted proxies exempt); more "
              "are closed at accept"})
        .add({"allow-ips", "INGEST_ALLOW_IPS", "",
              "CIDR list of clients allowed to post webhooks (empty: any)"})
        .add({"trusted-proxies", "INGEST_TRUSTED_PROXIES", "",
              "CIDR list of proxies whose X-Forwarded-For is believed"})
        .add({"max-sent-age-s", "INGEST_MAX_SENT_AGE_S", "86400",
              "Replay window on the signed SentTimestamp, in seconds (0 or off: no window)"})
        .add({"remember-deliveries", "INGEST_REMEMBER_DELIVERIES", "100000",
              "Acknowledged delivery Ids remembered per environment: a repeat is answered 200 "
              "without a second record (0: none)"})
        .add({"tls-cert", "INGEST_TLS_CERT", "",
              "PEM certificate chain; enables TLS with --tls-key"})
        .add({"tls-key", "INGEST_TLS_KEY", "", "PEM private key for --tls-cert"})
        .add({"read-timeout-ms", "INGEST_READ_TIMEOUT_MS", "5000",
              "From a request's first byte to its last (408 after it)"})
        .add({"first-byte-timeout-ms", "INGEST_FIRST_BYTE_TIMEOUT_MS", "3000",
              "How long a new connection may wait before its first byte (closed after it)"})
        .add({"idle-timeout-ms", "INGEST_IDLE_TIMEOUT_MS", "60000",
              "How long a keep-alive connection may wait for its next request"})
        .add({"drain-timeout-ms", "INGEST_DRAIN_TIMEOUT_MS", "10000",
              "On SIGTERM: longest wait for in-flight requests, then for the producer flush"})
        .add({"kafka-message-timeout-ms", "INGEST_KAFKA_MESSAGE_TIMEOUT_MS", "10000",
              "How long the producer keeps retrying one message (late reports stop after it)"})
        .add({"kafka-linger-ms", "INGEST_KAFKA_LINGER_MS", "1",
              "How long the producer waits to batch records (librdkafka linger.ms)"})
        .add({"max-queued-messages", "INGEST_MAX_QUEUED_MESSAGES", "100000",
              "Records the producer may hold unacknowledged; beyond it webhooks get 503"})
        .add({"max-queued-kbytes", "INGEST_MAX_QUEUED_KBYTES", "65536",
              "KiB of records the producer may hold unacknowledged (queue.buffering.max.kbytes); "
              "beyond it webhooks get 503"})
        .add({"ready-file", "INGEST_READY_FILE", "",
              "once listening, write listen=HOST:PORT and pid=N here (atomically)"});
    common::declare_log_settings(s);
    common::declare_client_properties(s);
}

IngestConfig load_config(const common::Settings& s,
                         const std::vector<std::pair<std::string, std::string>>& env_secrets) {
    IngestConfig c;
    c.listen = common::parse_host_port(s.describe("listen"), s.get("listen"));
    c.admin_listen = common::parse_host_port(s.describe("admin-listen"), s.get("admin-listen"));
    if (c.admin_listen.port != 0 && c.admin_listen.port == c.listen.port) {
        throw ConfigError(s.describe("admin-listen") + ": must differ from --listen");
    }

    c.brokers = common::bootstrap_servers(s);

    if (s.is_set("webhook-secret")) {
        c.environments.push_back(
            {std::string(kProductionEnvironment),
             secrets_from(s.describe("webhook-secret"), s.get("webhook-secret"))});
    }
    for (const auto& [suffix, value] : env_secrets) {
        // Empty counts as unset, as for every other setting: deployments
        // commonly define `FOO=` to mean "not configured".
        if (value.empty()) continue;
        const std::string variable = std::string(kSecretEnvPrefix) + suffix;
        const std::string name = common::environment_name(variable, suffix);
        if (c.environment_index(name)) {
            std::string line = variable;
            line.append(": environment \"").append(name).append("\" already configured by ");
            line.append(kSecretEnv);
            throw ConfigError(line);
        }
        c.environments.push_back({name, secrets_from(variable, value)});
    }
    if (c.environments.empty()) {
        throw ConfigError(s.describe("webhook-secret") +
                          ": no webhook secret configured (set it or MESH_WEBHOOK_SECRET_<ENV>)");
    }

    c.kafka_properties = common::client_properties(s);

    c.topic = common::topic_name(s, "topic");
    c.dlq_topic = common::topic_name(s, "dlq-topic");
    if (c.topic == c.dlq_topic) {
        throw ConfigError(s.describe("dlq-topic") + ": must differ from --topic");
    }

    c.threads =
        static_cast<unsigned>(common::parse_uint(s.describe("threads"), s.get("threads"), 1, 256));
    c.max_body_bytes = common::parse_uint(s.describe("max-body-bytes"), s.get("max-body-bytes"), 64,
                                          64ULL * 1024 * 1024);
    c.ack_timeout = millis(s, "ack-timeout-ms", 1, 60000);
    c.max_connections =
        common::parse_uint(s.describe("max-connections"), s.get("max-connections"), 1, 1000000);
    c.max_connections_per_source = common::parse_uint(
        s.describe("max-connections-per-source"), s.get("max-connections-per-source"), 1, 1000000);
    c.allow_ips = parse_networks(s.describe("allow-ips"), s.get("allow-ips"));
    c.trusted_proxies = parse_networks(s.describe("trusted-proxies"), s.get("trusted-proxies"));
    if (!c.trusted_proxies.empty() && c.allow_ips.empty()) {
        // Without an allow-list nothing reads X-Forwarded-For: say so rather than ignore it.
        throw ConfigError(s.describe("trusted-proxies") + ": only meaningful with --allow-ips");
    }
    // 24 h by default: Mesh's retries of one event span hours, and each
    // attempt carries a fresh SentTimestamp, so only a replay is that old.
    const auto& max_age_text = s.get("max-sent-age-s");
    const auto max_age =
        max_age_text == "off"
            ? 0
            : common::parse_uint(s.describe("max-sent-age-s"), max_age_text, 0, 7ULL * 24 * 3600);
    if (max_age > 0) c.max_sent_age = std::chrono::seconds(static_cast<std::int64_t>(max_age));

    c.remembered_deliveries = common::parse_uint(s.describe("remember-deliveries"),
                                                 s.get("remember-deliveries"), 0, 10'000'000);

    c.tls_cert = s.get("tls-cert");
    c.tls_key = s.get("tls-key");
    if (c.tls_cert.empty() != c.tls_key.empty()) {
        throw ConfigError(s.describe(c.tls_cert.empty() ? "tls-cert" : "tls-key") +
                          ": TLS needs both --tls-cert and --tls-key");
    }
    if (c.tls()) {
        check_readable(s, "tls-cert");
        check_readable(s, "tls-key");
    }

    c.read_timeout = millis(s, "read-timeout-ms", 10, 600000);
    c.idle_timeout = millis(s, "idle-timeout-ms", 10, 3600000);
    c.first_byte_timeout = millis(s, "first-byte-timeout-ms", 10, 600000);
    c.drain_timeout = millis(s, "drain-timeout-ms", 0, 600000);
    c.kafka_message_timeout = millis(s, "kafka-message-timeout-ms", 100, 3600000);
    if (c.kafka_message_timeout < c.ack_timeout) {
        throw ConfigError(s.describe("kafka-message-timeout-ms") +
                          ": must not be shorter than --ack-timeout-ms");
    }
    c.kafka_linger = millis(s, "kafka-linger-ms", 0, 1000);
    if (c.kafka_linger >= c.ack_timeout) {
        throw ConfigError(s.describe("kafka-linger-ms") +
                          ": must be shorter than --ack-timeout-ms");
    }
    c.max_queued_messages = common::parse_uint(s.describe("max-queued-messages"),
                                               s.get("max-queued-messages"), 1, 10000000);
    // librdkafka's default is 1 GiB: the memory budget (ingest/README.md) needs a bound.
    c.max_queued_kbytes =
        common::parse_uint(s.describe("max-queued-kbytes"), s.get("max-queued-kbytes"), 1, 2097151);
    const auto log = common::log_settings(s);
    c.log_format = log.format;
    c.log_level = log.level;
    c.ready_file = s.get("ready-file");
    return c;
}

IngestConfig default_config(const std::string& brokers, const std::string& production_secret) {
    common::Settings s{std::string(kProgram), ""};
    declare_settings(s);
    s.set("brokers", brokers).set("webhook-secret", production_secret);
    return load_config(s, {});
}

}  // namespace meshhook::ingest
