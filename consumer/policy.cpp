#include "consumer/policy.hpp"

#include <cctype>

#include "common/identifier.hpp"
#include "common/transfer_event.hpp"

namespace meshhook::consumer {

namespace {

std::string upper(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

// A field the ledger books with: present, and text a ledger can key on
// (usable as an identifier: UTF-8, no control characters, at most 256 bytes,
// no surrounding whitespace, which would name another account or asset).
std::optional<std::string_view> field_reason(const std::optional<std::string>& value,
                                             std::string_view missing, std::string_view malformed) {
    if (!value || value->empty()) {
        return missing;
    }
    const auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
    if (common::check_identifier(*value) != common::IdentifierProblem::kNone ||
        space(value->front()) || space(value->back())) {
        return malformed;
    }
    return std::nullopt;
}

}  // namespace

void Policy::allow_asset(std::string_view token, std::string_view chain) {
    assets_.emplace(upper(token), upper(chain));
}

void Policy::allow_destination(std::string_view environment, std::string_view address) {
    destinations_configured_ = true;
    destinations_.emplace(std::string(environment), std::string(address));
}

std::optional<std::string_view> credit_field_reason(const TransferEvent& event) {
    if (auto r = field_reason(event.user_id, kReasonUserMissing, kReasonUserMalformed)) {
        return r;
    }
    if (auto r = field_reason(event.token, kReasonAssetMissing, kReasonAssetMalformed)) {
        return r;
    }
    if (auto r = field_reason(event.chain, kReasonChainMissing, kReasonChainMalformed)) {
        return r;
    }
    if (!event.destination_amount || event.destination_amount->empty()) {
        return kReasonAmountMissing;
    }
    // The command carries a decimal string: exponent forms (1e3) are JSON
    // numbers, not what a ledger parses as an amount.
    if (!common::is_json_number(*event.destination_amount) ||
        event.destination_amount->find_first_of("eE") != std::string::npos) {
        return kReasonAmountMalformed;
    }
    return field_reason(event.destination_address, kReasonDestinationMissing,
                        kReasonDestinationMalformed);
}

std::optional<std::string_view> Policy::review_reason(const TransferEvent& event) const {
    if (auto incomplete = credit_field_reason(event)) {
        return incomplete;
    }
    if (!assets_.empty()) {
        if (!event.token || !event.chain ||
            !assets_.contains({upper(*event.token), upper(*event.chain)})) {
            return kReasonAssetNotAllowed;
        }
    }
    if (screen_) {
        if (const auto reason = screen_->review_reason(event)) return reason;
    }
    if (destinations_configured_) {
        if (!event.destination_address ||
            !destinations_.contains({event.environment, *event.destination_address})) {
            return kReasonDestinationNotAllowed;
        }
    }
    if (!common::is_positive_decimal(*event.destination_amount)) {
        return kReasonAmountNotPositive;
    }
    return std::nullopt;
}

}  // namespace meshhook::consumer
