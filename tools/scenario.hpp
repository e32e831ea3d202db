#pragma once
// Generated delivery sequences for `meshhook send --scenario` and the demo.

#include <cstdint>
#include <string>
#include <vector>

#include "tools/sender.hpp"

namespace meshhook::tools {

struct ExpectedCredit {
    std::string transfer_id;
    std::string amount;  // DestinationAmount text, exactly as sent
};

struct Scenario {
    std::vector<Stream> streams;
    std::vector<ExpectedCredit> credits;  // one per transfer whose final status is succeeded
    std::size_t transfers = 0;
    std::size_t deliveries = 0;
};

// The fixture bodies 01..05 in order, one stream.
Scenario demo_scenario();

// `transfers` transfers, deterministic for a given seed. Each transfer runs
// pending -> (processing) -> succeeded | failed | still in flight, with what
// Mesh really does mixed in: retries of an event (same EventId, new Id and
// SentTimestamp), exact duplicates, statuses arriving out of order, PascalCase
// or camelCase field names, status text in any casing, and decimal amounts
// with up to 21 significant digits written as JSON numbers.
// A transfer never gets both succeeded and failed (that is an anomaly, not a
// credit, and would make the expectations ambiguous).
Scenario random_scenario(std::size_t transfers, std::uint64_t seed);

}  // namespace meshhook::tools
