#pragma once
// meshhook-consumer's settings and process wiring (main.cpp only calls run()).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/config.hpp"
#include "common/kafka.hpp"
#include "common/log.hpp"
#include "consumer/networks.hpp"
#include "consumer/policy.hpp"
#include "consumer/reconcile.hpp"
#include "consumer/start_from.hpp"
#include "consumer/topics.hpp"

namespace meshhook::consumer {

inline constexpr std::string_view kProgram = "meshhook-consumer";

struct ConsumerConfig {
    std::string brokers;
    common::KafkaConfig kafka_properties;  // --kafka-config-file: TLS/SASL for every client
    std::string group_id;
    Topics topics;
    std::string store_url;
    // Settings' defaults are declared once, in declare_settings(); every field
    // below is set by load_config().
    std::size_t batch_max{};
    std::chrono::milliseconds batch_wait{};
    Policy policy;
    common::HostPort metrics_listen;
    std::chrono::milliseconds session_timeout{};
    std::chrono::milliseconds drain_timeout{};
    std::string relay_transactional_id;  // default: meshhook-relay.<group>.<credit topic>
    std::chrono::seconds stall_after{};  // /healthz fails past this without a heartbeat
    int park_after{};                    // refusals of one record alone before the relay parks it
    common::LogFormat log_format{};
    std::string log_level;
    std::string ready_file;  // --ready-file: bound addresses for supervisors and tests
    // --start-from: where an empty store starts; unset = refuse when the
    // output topics already hold records.
    std::optional<StartFrom> start_from;
    // Reconciliation with Mesh's API: on when MESH_CLIENT_ID[_<ENV>] is set.
    ReconcileConfig reconcile;
    // Mesh's network list, fetched where reconciliation has credentials.
    NetworksConfig networks;
};

void declare_settings(common::Settings& settings);
// Throws common::ConfigError naming the bad setting.
ConsumerConfig load_config(const common::Settings& settings);

// The whole program; returns the exit code (0 after SIGTERM/SIGINT, 2 on a
// bad setting or an unreachable store, 1 on a fatal runtime error).
int run(int argc, char** argv);

}  // namespace meshhook::consumer
