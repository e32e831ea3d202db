#pragma once
// What may be credited: the completeness rule, the allowed (token, chain)
// pairs, an optional screen and the destination list. Pure: no I/O. Reading
// the policy from settings and files is consumer/policy_file.hpp.

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "consumer/event.hpp"

namespace meshhook::consumer {

// The completeness rule alone (no policy): the first missing or malformed
// credit field in the order user, asset (token), chain, amount, destination,
// or nullopt when the event could be booked. Only the event's own fields
// count (consumer/README.md, "A credit command is complete").
std::optional<std::string_view> credit_field_reason(const TransferEvent& event);

// A check of a succeeded transfer against facts kept outside the decision
// (Mesh's network list: consumer/networks.hpp). It answers from memory, with
// no I/O, so decide() stays pure; the returned reason has static storage.
class TransferScreen {
public:
    virtual ~TransferScreen() = default;
    virtual std::optional<std::string_view> review_reason(const TransferEvent& event) const = 0;
};

// What may be credited: (token, chain) pairs compared case-insensitively
// (empty = every pair), and, when a destination list was configured,
// per-environment destination addresses (exact match: Solana addresses are
// case-sensitive; an environment without entries gets no credit at all).
class Policy {
public:
    void allow_asset(std::string_view token, std::string_view chain);
    void allow_destination(std::string_view environment, std::string_view address);
    void require_destination_list() { destinations_configured_ = true; }
    // Consulted after the (token, chain) pairs, before the destination list.
    void set_screen(std::shared_ptr<const TransferScreen> screen) { screen_ = std::move(screen); }

    // The review reason for a succeeded event, or nullopt when it may be credited.
    std::optional<std::string_view> review_reason(const TransferEvent& event) const;

private:
    std::set<std::pair<std::string, std::string>> assets_;  // upper-cased
    std::set<std::pair<std::string, std::string>> destinations_;
    bool destinations_configured_ = false;
    std::shared_ptr<const TransferScreen> screen_;  // null: no screen
};

}  // namespace meshhook::consumer
