#pragma once
// Every metric of meshhook-ingest, declared once. Names and labels are part of
// the interface (README.md "Metrics": dashboards and alerts use them).
// Series on the hot path are created up front so an update is one atomic op.

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/metrics.hpp"
#include "common/signature.hpp"

namespace meshhook::ingest {

enum class Route : std::uint8_t { kWebhook, kHealthz, kReadyz, kMetrics, kOther };
inline constexpr std::size_t kRouteCount = 5;
std::string_view to_string(Route r);

// Why a webhook was answered 503 (label `reason` of unavailable_total).
enum class Unavailable : std::uint8_t { kQueueFull, kAckTimeout, kDeliveryFailed, kDraining };
inline constexpr std::size_t kUnavailableCount = 4;
std::string_view to_string(Unavailable u);

class IngestMetrics {
public:
    IngestMetrics(common::Registry& registry, const std::vector<std::string>& environments);

    void request_answered(Route route, unsigned status, double seconds);
    void signature_failure(std::size_t environment, common::SignatureError reason);
    void published(std::size_t environment);
    void repeated(std::size_t environment);  // answered from RecentDeliveries
    void dlq_write(std::size_t environment, std::string_view reason);
    void unavailable(Unavailable reason);

    common::Histogram& kafka_ack_duration() { return kafka_ack_; }
    common::Gauge& in_flight() { return in_flight_; }
    common::Gauge& producer_queue_depth() { return queue_depth_; }
    common::Gauge& ready() { return ready_; }
    common::Registry& registry() { return registry_; }

private:
    static constexpr std::array<unsigned, 12> kStatuses = {200, 400, 401, 403, 404, 405,
                                                           408, 413, 431, 500, 503, 505};
    struct PerEnvironment {
        std::string name;
        common::Counter* published = nullptr;
        common::Counter* repeated = nullptr;
        std::array<common::Counter*, 3> signature_failures{};  // missing, undecodable, mismatch
    };

    common::Registry& registry_;
    std::array<std::array<common::Counter*, kStatuses.size()>, kRouteCount> requests_{};
    std::array<common::Histogram*, kRouteCount> durations_{};
    std::array<common::Counter*, kUnavailableCount> unavailable_{};
    std::vector<PerEnvironment> environments_;
    common::Histogram& kafka_ack_;
    common::Gauge& in_flight_;
    common::Gauge& queue_depth_;
    common::Gauge& ready_;
};

}  // namespace meshhook::ingest
