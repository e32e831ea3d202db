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

// Every field with a setting gets its value, default included, from the one
// declaration of that setting in declare_settings(): load_config() sets them
// all, and code without a command line (tests, the fuzzer) starts from
// default_config(). So the fields carry no default of their own.
struct IngestConfig {
    common::HostPort listen;
    common::HostPort admin_listen;  // /healthz, /readyz, /metrics
    std::string brokers;
    std::vector<std::pair<std::string, std::string>> kafka_properties;  // --kafka-config-file
    std::vector<EnvironmentSecrets> environments;  // production first when configured
    std::string topic;
    std::string dlq_topic;
    unsigned threads{};
    std::size_t max_body_bytes{};
    std::chrono::milliseconds ack_timeout{};
    std::size_t max_connections{};
    // Per client address (the TCP peer; trusted proxies are exempt): a few
    // sources opening connections fast cannot hold every slot.
    std::size_t max_connections_per_source{};
    std::vector<IpNetwork> allow_ips;                  // empty: every client address is allowed
    std::vector<IpNetwork> trusted_proxies;            // whose X-Forwarded-For is believed
    std::optional<std::chrono::seconds> max_sent_age;  // replay window; nullopt = off
    std::size_t remembered_deliveries{};  // acknowledged Ids kept per environment; 0 = none
    std::string tls_cert;
    std::string tls_key;
    std::string ready_file;  // --ready-file: bound address for supervisors and tests
    common::LogFormat log_format{};
    std::string log_level;
    std::chrono::milliseconds read_timeout{};        // first byte of a request to its last
    std::chrono::milliseconds idle_timeout{};        // keep-alive wait for the next request
    std::chrono::milliseconds first_byte_timeout{};  // a new connection's wait for its first byte
    std::chrono::milliseconds drain_timeout{};
    std::chrono::milliseconds kafka_message_timeout{};
    std::chrono::milliseconds kafka_linger{};  // librdkafka linger.ms: batching against latency
    std::size_t max_queued_messages{};         // producer queue; beyond it: 503 queue_full
    std::size_t max_queued_kbytes{};           // idem, in KiB of records

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

// Every setting at its declared default, with the two that have none given:
// the configuration the binary runs with when nothing else is set.
IngestConfig default_config(const std::string& brokers, const std::string& production_secret);

}  // namespace meshhook::ingest
