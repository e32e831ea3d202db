#pragma once
// meshhook-ingest settings: declared once (for --help and the start-up line),
// then converted into a typed, validated IngestConfig.

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/config.hpp"
#include "common/log.hpp"
#include "common/wire.hpp"
#include "ingest/ip_filter.hpp"

namespace meshhook::ingest {

inline constexpr std::string_view kProgram = "meshhook-ingest";
inline constexpr std::string_view kProductionEnvironment = "production";
// MESH_WEBHOOK_SECRET holds production's secrets; MESH_WEBHOOK_SECRET_<ENV>
// those of /webhooks/mesh/<env>.
inline constexpr std::string_view kSecretEnv = "MESH_WEBHOOK_SECRET";
inline constexpr std::string_view kSecretEnvPrefix = "MESH_WEBHOOK_SECRET_";

struct EnvironmentSecrets {
    std::string name;                  // lower case, e.g. "production", "sandbox"
    std::vector<std::string> secrets;  // every active secret (rotation)
};

struct IngestConfig {
    common::HostPort listen{"0.0.0.0", 8080};
    common::HostPort admin_listen{"0.0.0.0", 9090};  // /healthz, /readyz, /metrics
    std::string brokers;
    std::vector<std::pair<std::string, std::string>> kafka_properties;  // --kafka-config-file
    std::vector<EnvironmentSecrets> environments;  // production first when configured
    std::string topic{wire::kTransferEventsTopic};
    std::string dlq_topic{wire::kDeadLetterTopic};
    unsigned threads = 1;
    std::size_t max_body_bytes = std::size_t{64} * 1024;
    std::chrono::milliseconds ack_timeout{150};
    std::size_t max_connections = 10000;
    // Per client address (the TCP peer; trusted proxies are exempt): a few
    // sources opening connections fast cannot hold every slot.
    std::size_t max_connections_per_source = 256;
    std::vector<IpNetwork> allow_ips;                  // empty: every client address is allowed
    std::vector<IpNetwork> trusted_proxies;            // whose X-Forwarded-For is believed
    std::optional<std::chrono::seconds> max_sent_age;  // replay window; nullopt = off
    std::string tls_cert;
    std::string tls_key;
    std::string ready_file;  // --ready-file: bound address for supervisors and tests
    common::LogFormat log_format = common::LogFormat::kText;
    std::string log_level = "info";
    std::chrono::milliseconds read_timeout{5000};   // first byte of a request to its last
    std::chrono::milliseconds idle_timeout{60000};  // keep-alive wait for the next request
    std::chrono::milliseconds first_byte_timeout{
        3000};  // a new connection's wait for its first byte
    std::chrono::milliseconds drain_timeout{10000};
    std::chrono::milliseconds kafka_message_timeout{10000};
    std::chrono::milliseconds kafka_linger{1};  // librdkafka linger.ms: batching against latency
    std::size_t max_queued_messages = 100000;   // producer queue; beyond it: 503 queue_full

    bool tls() const { return !tls_cert.empty(); }
    // Index of `name` in environments, or nullopt.
    std::optional<std::size_t> environment_index(std::string_view name) const;
};

// Declares every setting of meshhook-ingest on `settings`.
void declare_settings(common::Settings& settings);

// Builds and validates the config from parsed settings plus the
// MESH_WEBHOOK_SECRET_<ENV> variables (as from common::env_with_prefix).
// Throws common::ConfigError with one line naming the bad setting.
IngestConfig load_config(const common::Settings& settings,
                         const std::vector<std::pair<std::string, std::string>>& env_secrets);

}  // namespace meshhook::ingest
