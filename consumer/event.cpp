#include "consumer/event.hpp"

namespace meshhook::consumer {

namespace {

std::optional<std::string> owned(const common::Field& field) {
    if (!field.has_value()) {
        return std::nullopt;
    }
    return std::string(field.value);
}

}  // namespace

TransferEvent TransferEvent::from_view(const common::TransferEventView& view,
                                       std::string_view environment) {
    TransferEvent e;
    if (!environment.empty()) {
        e.environment = std::string(environment);
    }
    e.transfer_id = std::string(view.transfer_id.value);
    e.event_id = std::string(view.event_id.value);
    e.status_text = std::string(view.transfer_status.value);
    e.status = view.status;
    e.user_id = owned(view.user_id);
    e.transaction_id = owned(view.transaction_id);
    e.token = owned(view.token);
    e.chain = owned(view.chain);
    e.destination_amount = owned(view.destination_amount);
    e.destination_address = owned(view.destination_address);
    e.tx_hash = owned(view.tx_hash);
    e.source_account_provider = owned(view.source_account_provider);
    if (view.timestamp.has_value()) {
        e.timestamp_ms = view.timestamp_value;
    }
    if (view.sent_timestamp.has_value()) {
        e.sent_timestamp = view.sent_timestamp_value;
    }
    return e;
}

}  // namespace meshhook::consumer
