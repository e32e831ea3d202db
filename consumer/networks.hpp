#pragma once
// Mesh's network list (`GET /api/v1/transfers/managed/networks`) and the
// check it makes possible before a credit: a succeeded transfer whose Chain
// is not one of Mesh's networks, whose Token that network does not support,
// or whose DestinationAddress does not fit the network's format goes to
// review with its reason instead of being credited.
//
// Three parts:
// - pure functions: parsing an answer, checking one event against a list
//   (tests feed them bodies and events, no sockets);
// - NetworkScreen: the TransferScreen the pure decision consults (Policy in
//   consumer/policy.hpp); it only reads the last good list per
//   environment from memory, never does I/O;
// - NetworkDirectory: the thread that fetches the list at start and every
//   `refresh`, per environment with API credentials, keeping the last good
//   list when a fetch fails (logged and counted).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "consumer/address_format.hpp"
#include "consumer/policy.hpp"
#include "consumer/reconcile.hpp"

namespace meshhook::common {
class Registry;
class Settings;
}  // namespace meshhook::common

namespace meshhook::consumer {

// After a failed fetch of the network list, the next one (not a setting).
inline constexpr std::chrono::seconds kNetworksRetry{30};

struct ApiResult;

inline constexpr std::string_view kNetworksPath = "/api/v1/transfers/managed/networks";

// Review reasons of the network check (metric labels, the record's `reason`).
inline constexpr std::string_view kReasonNetworkUnknown = "network_unknown";
inline constexpr std::string_view kReasonTokenNotSupported = "token_not_supported_on_network";
inline constexpr std::string_view kReasonDestinationAddressInvalid = "destination_address_invalid";
// The environment has API credentials but no list was ever fetched.
inline constexpr std::string_view kReasonNetworkListUnavailable = "network_list_unavailable";

struct CompiledPattern;  // std::regex, kept out of this header

// One entry of Mesh's list.
struct Network {
    std::string id;
    std::string name;  // matched against the webhook's `Chain`, case-insensitively
    std::string chain_id;
    std::string native_symbol;
    std::string network_type;                        // "evm", "solana", "bitcoin", ...
    std::set<std::string> tokens;                    // upper case; the native symbol included
    std::string address_pattern;                     // Mesh's, "" when it gives none
    std::shared_ptr<const CompiledPattern> pattern;  // compiled once; null when none
    std::string pattern_error;  // why Mesh's pattern did not compile ("" when it did)
    AddressFamily family = AddressFamily::kUnknown;
};

// An immutable list, looked up by name.
class NetworkCatalog {
public:
    NetworkCatalog(std::vector<Network> networks, std::chrono::steady_clock::time_point fetched);
    const Network* find(std::string_view chain) const;
    const std::vector<Network>& networks() const { return networks_; }
    std::chrono::steady_clock::time_point fetched() const { return fetched_; }

private:
    std::vector<Network> networks_;
    std::map<std::string, std::size_t, std::less<>> by_name_;  // upper-cased name -> index
    std::chrono::steady_clock::time_point fetched_;
};

// Parses an answer body: the envelope `{status, content: {networks: [...]}}`
// (a bare `content` array of networks is accepted too). nullopt and `error`
// set when it is not an `ok` envelope holding a list. Mesh's address pattern
// is read from `addressPattern` or `addressRegex`; a pattern that does not
// compile is kept in `pattern_error` and not used (the family check still is).
std::optional<std::vector<Network>> parse_networks(std::string_view body, std::string& error);

// The network check of one succeeded event against a list: nullopt when the
// chain, token and address fit. The address must match Mesh's pattern when it
// gives one, and the format of the network's family (checksums included)
// when that family is known here: the pattern is a shape, the family check
// also catches a mistyped EIP-55 or base58check address.
std::optional<std::string_view> network_review_reason(const NetworkCatalog& catalog,
                                                      const TransferEvent& event,
                                                      const std::vector<BitcoinNet>& bitcoin_nets);
// Same, with the address problem spelled out (for logs and tests); "" when none.
std::string network_problem(const NetworkCatalog& catalog, const TransferEvent& event,
                            const std::vector<BitcoinNet>& bitcoin_nets);

// Bitcoin address forms accepted per environment: production takes main-net
// forms only; other environments (sandbox) take main and test net.
std::vector<BitcoinNet> bitcoin_nets_for(std::string_view environment);

// What decide() consults: the last good list of each environment that has API
// credentials. Environments without credentials are not screened here
// (--allowed-assets alone applies, as before); one with credentials but no
// list yet sends succeeded transfers to review (`network_list_unavailable`):
// nothing is credited unchecked, and the review record holds every field.
class NetworkScreen final : public TransferScreen {
public:
    explicit NetworkScreen(const std::vector<std::string>& environments);
    std::optional<std::string_view> review_reason(const TransferEvent& event) const override;

    void update(std::string_view environment, std::shared_ptr<const NetworkCatalog> catalog);
    // nullptr before the first good list (or for an environment not screened).
    std::shared_ptr<const NetworkCatalog> catalog(std::string_view environment) const;
    std::vector<std::string> environments() const;

private:
    mutable std::mutex mutex_;
    std::map<std::string, std::shared_ptr<const NetworkCatalog>, std::less<>> catalogs_;
};

// The settings' defaults are declared once, in declare_network_settings();
// load_networks_config() sets the fields without a default here.
struct NetworksConfig {
    bool enabled{};                  // --network-checks off: not fetched, nothing screened
    std::chrono::seconds refresh{};  // between good fetches
    std::chrono::seconds retry{kNetworksRetry};  // after a failed one (at most `refresh`)
    std::chrono::seconds start_wait{};           // at start, before consuming
    std::chrono::milliseconds call_timeout{10000};
};

// --network-checks, --networks-refresh-s, --networks-start-wait-s
// (CONSUMER_NETWORK*), and what they load into; load throws
// common::ConfigError naming the setting.
void declare_network_settings(common::Settings& settings);
NetworksConfig load_networks_config(const common::Settings& settings);
// The declared defaults, for code without a command line (tests).
NetworksConfig default_networks_config();

class NetworkDirectory {
public:
    // One GET of `target` for `env`, with its credentials. The default is
    // MeshClient over the environment's base URL; tests pass their own.
    using Fetch = std::function<ApiResult(const MeshEnvironment& env, const std::string& target)>;

    NetworkDirectory(std::vector<MeshEnvironment> environments, NetworksConfig config,
                     std::shared_ptr<NetworkScreen> screen, common::Registry* registry,
                     Fetch fetch = {});
    ~NetworkDirectory();
    NetworkDirectory(const NetworkDirectory&) = delete;
    NetworkDirectory& operator=(const NetworkDirectory&) = delete;

    enum class FetchOutcome : std::uint8_t {
        kOk,
        kUnauthorized,  // 401, 403
        kRateLimited,   // 429
        kServerError,   // 5xx
        kClientError,   // any other status but 200
        kFailureEnvelope,
        kTransportError,
        kBadResponse
    };
    // One fetch for `env`: a good list replaces the screen's; anything else
    // keeps the previous list, is logged and counted.
    FetchOutcome refresh(const MeshEnvironment& env);

    // Before consuming: fetches every environment until each has a list or an
    // answer that waiting will not change (401/403, another 4xx, a body that
    // is not a list), for at most `start_wait` (or until `stop`). Transport
    // errors, 429, 5xx and failure envelopes are retried every second.
    void fetch_first(const std::atomic<bool>& stop);
    // The periodic refresh, on its own thread.
    void start();
    void stop();

    const std::vector<MeshEnvironment>& environments() const { return environments_; }

private:
    void run();

    std::vector<MeshEnvironment> environments_;
    NetworksConfig config_;
    std::shared_ptr<NetworkScreen> screen_;
    common::Registry* registry_;
    Fetch fetch_;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
};

std::string_view to_string(NetworkDirectory::FetchOutcome outcome);

}  // namespace meshhook::consumer
