#pragma once
// Loading a Policy from its settings: the allowed-assets list and the
// destination file. Start-up only; errors are common::ConfigError naming the
// setting, so a bad policy stops the consumer with one line.

#include <string>
#include <string_view>

#include "consumer/policy.hpp"

namespace meshhook::consumer {

// "USDC:Ethereum,ETH:Ethereum"; throws common::ConfigError naming `setting`.
void parse_allowed_assets(Policy& policy, std::string_view setting, std::string_view text);
// Lines "<environment> <address>", '#' starts a comment; throws ConfigError.
void load_destination_file(Policy& policy, std::string_view setting, const std::string& path);

}  // namespace meshhook::consumer
