#pragma once
// The decision's input: an owned copy of what the consumer needs from one
// transfer event.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/transfer_event.hpp"
#include "consumer/records.hpp"

namespace meshhook::consumer {

// An owned copy of what the consumer needs from one event: the parser's views
// die with its next parse, and a batch holds many events.
struct TransferEvent {
    std::string environment{kDefaultEnvironment};
    std::string transfer_id;
    std::string event_id;
    std::string status_text;  // as sent, e.g. "Succeeded" or "RefundPending"
    common::TransferStatus status = common::TransferStatus::kUnknown;
    std::optional<std::string> user_id;
    std::optional<std::string> transaction_id;
    std::optional<std::string> token;
    std::optional<std::string> chain;
    std::optional<std::string> destination_amount;  // exact JSON number text
    std::optional<std::string> destination_address;
    std::optional<std::string> tx_hash;
    std::optional<std::string> source_account_provider;
    // As sent; the unit of each is decided by common::unix_ms_by_magnitude.
    std::optional<std::int64_t> timestamp_ms;    // when the status changed
    std::optional<std::int64_t> sent_timestamp;  // when this delivery was sent

    // `environment` is the record's header; empty means production.
    static TransferEvent from_view(const common::TransferEventView& view,
                                   std::string_view environment);
};

}  // namespace meshhook::consumer
