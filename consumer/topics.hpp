#pragma once
// The consumer's topics: the one it reads and the three its outbox feeds.
// Defaults from the record contract (common/wire.hpp); settings in app.cpp.

#include <string>

#include "common/wire.hpp"

namespace meshhook::consumer {

struct Topics {
    std::string input{wire::kTransferEventsTopic};
    std::string credits{wire::kCreditCommandsTopic};
    std::string reviews{wire::kCreditReviewTopic};
    std::string anomalies{wire::kAnomaliesTopic};
};

}  // namespace meshhook::consumer
