#pragma once
// Posting deliveries the way Mesh does: each body signed, each transfer's
// deliveries in order, non-200 answers retried with back-off. Used by
// `meshhook send` and `meshhook dev --demo`.

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "tools/http_client.hpp"

namespace meshhook::tools {

struct Delivery {
    std::string name;  // for messages: a file name or "transfer 3 succeeded (retry)"
    std::string body;  // exact bytes, signed as they are
};

// One transfer's deliveries, sent strictly in this order (a delivery starts
// only after the previous one was answered 200 or given up on). Different
// streams go out concurrently.
using Stream = std::vector<Delivery>;

struct SendOptions {
    Url url;
    std::string secret;
    unsigned concurrency = 4;
    double rate = 0;            // deliveries per second over all workers; 0 = unpaced
    unsigned max_attempts = 6;  // per delivery, the first included
    std::chrono::milliseconds initial_backoff{200};
    std::chrono::milliseconds max_backoff{5000};
    std::chrono::milliseconds timeout{5000};  // per request
    bool verbose = false;                     // one line per attempt on the log stream
    // Each attempt's SentTimestamp set to its send time (common::restamp_sent_timestamp),
    // as Mesh does; false sends the stored bytes exactly (`meshhook send --exact`).
    bool restamp = true;
};

struct SendSummary {
    std::uint64_t deliveries = 0;  // distinct deliveries attempted
    std::uint64_t delivered = 0;   // answered 200, possibly after retries
    std::uint64_t gave_up = 0;     // never answered 200 within max_attempts
    std::uint64_t attempts = 0;
    std::map<std::string, std::uint64_t> answers;  // per attempt: "200", "503", "error"
    std::vector<double> latencies_ms;              // per answered attempt
    double elapsed_s = 0;
    std::vector<std::string> failures;  // the first few, one line each
    bool ok() const { return gave_up == 0; }
};

SendSummary send_streams(const std::vector<Stream>& streams, const SendOptions& options,
                         std::ostream& log);

// "deliveries 5: 5 delivered, 0 given up; attempts 5 (200 x5); latency ms p50 .. max ..".
std::string format_summary(const SendSummary& summary);

// Groups deliveries by TransferId (parsed from each body), keeping the given
// order inside each group; bodies without one each form their own stream.
std::vector<Stream> group_by_transfer(std::vector<Delivery> deliveries);

}  // namespace meshhook::tools
