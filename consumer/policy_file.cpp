#include "consumer/policy_file.hpp"

#include <cctype>
#include <fstream>
#include <sstream>

#include "common/config.hpp"

namespace meshhook::consumer {

namespace {

std::string trim(std::string_view text) {
    std::size_t b = 0;
    std::size_t e = text.size();
    while (b < e && std::isspace(static_cast<unsigned char>(text[b])) != 0) {
        ++b;
    }
    while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1])) != 0) {
        --e;
    }
    return std::string(text.substr(b, e - b));
}

}  // namespace

void parse_allowed_assets(Policy& policy, std::string_view setting, std::string_view text) {
    for (const std::string& item : common::split_list(text, ',')) {
        const auto colon = item.find(':');
        if (colon == std::string::npos || item.find(':', colon + 1) != std::string::npos) {
            throw common::ConfigError(std::string(setting) + ": '" + item + "' is not TOKEN:CHAIN");
        }
        const std::string token = trim(std::string_view(item).substr(0, colon));
        const std::string chain = trim(std::string_view(item).substr(colon + 1));
        if (token.empty() || chain.empty()) {
            throw common::ConfigError(std::string(setting) + ": '" + item + "' is not TOKEN:CHAIN");
        }
        policy.allow_asset(token, chain);
    }
}

void load_destination_file(Policy& policy, std::string_view setting, const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        throw common::ConfigError(std::string(setting) + ": cannot read '" + path + "'");
    }
    policy.require_destination_list();
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
        ++number;
        const auto hash = line.find('#');
        const std::string content = trim(std::string_view(line).substr(0, hash));
        if (content.empty()) {
            continue;
        }
        std::istringstream fields(content);
        std::string environment;
        std::string address;
        std::string extra;
        if (!(fields >> environment >> address) || (fields >> extra)) {
            throw common::ConfigError(std::string(setting) + ": line " + std::to_string(number) +
                                      " of '" + path + "' is not '<environment> <address>'");
        }
        policy.allow_destination(environment, address);
    }
}

}  // namespace meshhook::consumer
