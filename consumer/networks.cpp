#include "consumer/networks.hpp"

#include <boost/algorithm/string/case_conv.hpp>

#include <algorithm>
#include <locale>
#include <regex>

#include "common/config.hpp"
#include "common/log.hpp"
#include "common/metrics.hpp"
#include "consumer/mesh_client.hpp"
#include "consumer/mesh_json.hpp"

namespace meshhook::consumer {

// Compiled once per network when the list is parsed: std::regex is slow to
// build, and decide() runs per event.
struct CompiledPattern {
    std::regex regex;
};

namespace {

constexpr std::string_view kFetches = "meshhook_consumer_networks_fetches_total";
constexpr std::string_view kFetchesHelp =
    "Fetches of Mesh's network list by environment and outcome: ok, unauthorized, rate_limited, "
    "server_error, client_error, failure_envelope, transport_error, bad_response.";
constexpr std::string_view kKnown = "meshhook_consumer_networks_known";
constexpr std::string_view kKnownHelp = "Networks in the last good list (0 before one).";
constexpr std::string_view kAge = "meshhook_consumer_networks_list_age_seconds";
constexpr std::string_view kAgeHelp =
    "Seconds since the list in use was fetched (-1 while there is none).";
constexpr std::string_view kReviews = "meshhook_consumer_reviews_total";
constexpr std::string_view kReviewsHelp = "Review records written, by reason.";

// Longer than any address of a family here (bech32: 90); also bounds the
// work of Mesh's pattern, which std::regex runs recursively.
constexpr std::size_t kMaxAddressLength = 128;

std::string upper(std::string_view s) {
    return boost::algorithm::to_upper_copy(std::string(s), std::locale::classic());
}

// Case folding of ASCII only, whatever the global locale.
std::string lower(std::string_view s) {
    return boost::algorithm::to_lower_copy(std::string(s), std::locale::classic());
}

using simdjson::ondemand::json_type;

// `supportedTokens`: symbols, or objects with a `symbol` (liberal).
bool read_tokens(simdjson::ondemand::value v, std::set<std::string>& tokens) {
    json_type type{};
    if (v.type().get(type) != simdjson::SUCCESS) return false;
    if (type == json_type::null) return true;
    simdjson::ondemand::array array;
    if (v.get_array().get(array) != simdjson::SUCCESS) return false;
    for (auto element : array) {
        simdjson::ondemand::value token;
        if (element.get(token) != simdjson::SUCCESS ||
            token.type().get(type) != simdjson::SUCCESS) {
            return false;
        }
        std::string symbol;
        if (type == json_type::object) {
            simdjson::ondemand::object object;
            simdjson::ondemand::value s;
            if (token.get_object().get(object) != simdjson::SUCCESS) return false;
            if (object.find_field_unordered("symbol").get(s) != simdjson::SUCCESS) continue;
            if (!json_text(s, symbol)) return false;
        } else if (!json_text(token, symbol)) {
            return false;
        }
        if (!symbol.empty()) tokens.insert(upper(symbol));
    }
    return true;
}

bool read_network(simdjson::ondemand::object object, Network& out) {
    const bool ok = for_each_member(object, [&out](std::string_view key, auto v) {
        std::string* into = nullptr;
        if (key == "id") into = &out.id;
        if (key == "name") into = &out.name;
        if (key == "chainId") into = &out.chain_id;
        if (key == "nativeSymbol") into = &out.native_symbol;
        if (key == "networkType") into = &out.network_type;
        if (key == "addressPattern" || key == "addressRegex") into = &out.address_pattern;
        if (into != nullptr) return json_text(v, *into);
        if (key == "supportedTokens") return read_tokens(v, out.tokens);
        return true;
    });
    if (!ok) return false;
    if (!out.native_symbol.empty()) out.tokens.insert(upper(out.native_symbol));
    out.family = address_family(out.network_type);
    if (!out.address_pattern.empty()) {
        try {
            auto compiled = std::make_shared<CompiledPattern>();
            compiled->regex =
                std::regex(out.address_pattern, std::regex::ECMAScript | std::regex::optimize);
            out.pattern = std::move(compiled);
        } catch (const std::regex_error& e) {
            out.pattern_error = e.what();
        }
    }
    return true;
}

bool read_list(simdjson::ondemand::value v, std::vector<Network>& networks, std::string& error) {
    simdjson::ondemand::array array;
    if (v.get_array().get(array) != simdjson::SUCCESS) {
        error = "networks is not an array";
        return false;
    }
    for (auto element : array) {
        simdjson::ondemand::object object;
        Network network;
        if (element.get_object().get(object) != simdjson::SUCCESS ||
            !read_network(object, network)) {
            error = "networks[" + std::to_string(networks.size()) + "] is not a network";
            return false;
        }
        if (!network.name.empty()) networks.push_back(std::move(network));
    }
    return true;
}

struct Verdict {
    std::string_view reason;
    std::string detail;
};

std::optional<Verdict> check(const NetworkCatalog& catalog, const TransferEvent& event,
                             const std::vector<BitcoinNet>& bitcoin_nets) {
    const Network* network = event.chain ? catalog.find(*event.chain) : nullptr;
    if (network == nullptr) {
        return Verdict{kReasonNetworkUnknown,
                       "chain \"" + event.chain.value_or("") + "\" is not in Mesh's list"};
    }
    if (!event.token || !network->tokens.contains(upper(*event.token))) {
        return Verdict{kReasonTokenNotSupported, "token \"" + event.token.value_or("") +
                                                     "\" is not supported on " + network->name};
    }
    const std::string address = event.destination_address.value_or("");
    if (address.empty()) return Verdict{kReasonDestinationAddressInvalid, "no destination address"};
    if (address.size() > kMaxAddressLength) {
        return Verdict{kReasonDestinationAddressInvalid,
                       std::to_string(address.size()) + " characters"};
    }
    if (network->pattern) {
        bool matched = false;
        try {
            // As JavaScript's RegExp.test(): Mesh's patterns carry their own anchors.
            matched = std::regex_search(address, network->pattern->regex);
        } catch (const std::regex_error&) {
            matched = false;  // too complex to evaluate: not shown to fit
        }
        if (!matched) {
            return Verdict{kReasonDestinationAddressInvalid,
                           "does not match Mesh's pattern " + network->address_pattern};
        }
    }
    if (auto problem = check_address(network->family, address, bitcoin_nets)) {
        return Verdict{kReasonDestinationAddressInvalid,
                       std::string(to_string(network->family)) + ": " + *problem};
    }
    return std::nullopt;
}

std::int64_t seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - t)
        .count();
}

}  // namespace

NetworkCatalog::NetworkCatalog(std::vector<Network> networks,
                               std::chrono::steady_clock::time_point fetched)
    : networks_(std::move(networks)), fetched_(fetched) {
    for (std::size_t i = 0; i < networks_.size(); ++i) {
        by_name_.emplace(upper(networks_[i].name), i);  // the first of a repeated name wins
    }
}

const Network* NetworkCatalog::find(std::string_view chain) const {
    const auto it = by_name_.find(upper(chain));
    return it == by_name_.end() ? nullptr : &networks_[it->second];
}

std::optional<std::vector<Network>> parse_networks(std::string_view body, std::string& error) {
    Envelope envelope;
    std::optional<std::vector<Network>> networks;
    const bool ok = read_envelope(
        body, envelope,
        [&](simdjson::ondemand::value content) {
            json_type type{};
            if (content.type().get(type) != simdjson::SUCCESS) {
                error = "malformed content";
                return false;
            }
            simdjson::ondemand::object object;
            simdjson::ondemand::value list = content;
            if (type == json_type::object) {
                if (content.get_object().get(object) != simdjson::SUCCESS) {
                    error = "malformed content";
                    return false;
                }
                if (object.find_field_unordered("networks").get(list) != simdjson::SUCCESS) {
                    return true;
                }
            } else if (type != json_type::array) {
                return true;  // null in failure envelopes
            }
            networks.emplace();
            return read_list(list, *networks, error);
        },
        error);
    if (!ok) return std::nullopt;
    const std::string& status = envelope.status;
    const std::string& message = envelope.message;
    if (lower(status) != "ok") {
        error = "envelope status " + status + (message.empty() ? "" : ": " + message);
        return std::nullopt;
    }
    if (!networks) {
        error = "no content.networks";
        return std::nullopt;
    }
    if (networks->empty()) {
        // Every transfer would go to review: taken for Mesh's mistake, not news.
        error = "an empty list";
        return std::nullopt;
    }
    return networks;
}

std::optional<std::string_view> network_review_reason(const NetworkCatalog& catalog,
                                                      const TransferEvent& event,
                                                      const std::vector<BitcoinNet>& bitcoin_nets) {
    if (auto verdict = check(catalog, event, bitcoin_nets)) return verdict->reason;
    return std::nullopt;
}

std::string network_problem(const NetworkCatalog& catalog, const TransferEvent& event,
                            const std::vector<BitcoinNet>& bitcoin_nets) {
    if (auto verdict = check(catalog, event, bitcoin_nets)) return std::move(verdict->detail);
    return {};
}

std::vector<BitcoinNet> bitcoin_nets_for(std::string_view environment) {
    if (environment == kDefaultEnvironment) return {BitcoinNet::kMain};
    return {BitcoinNet::kMain, BitcoinNet::kTest};
}

// ------------------------------------------------------------------ NetworkScreen

NetworkScreen::NetworkScreen(const std::vector<std::string>& environments) {
    for (const std::string& env : environments) catalogs_.emplace(env, nullptr);
}

std::optional<std::string_view> NetworkScreen::review_reason(const TransferEvent& event) const {
    std::shared_ptr<const NetworkCatalog> catalog;
    {
        std::lock_guard lock(mutex_);
        const auto it = catalogs_.find(event.environment);
        if (it == catalogs_.end()) return std::nullopt;  // no credentials: not screened here
        catalog = it->second;
    }
    if (!catalog) return kReasonNetworkListUnavailable;
    return network_review_reason(*catalog, event, bitcoin_nets_for(event.environment));
}

void NetworkScreen::update(std::string_view environment,
                           std::shared_ptr<const NetworkCatalog> catalog) {
    std::lock_guard lock(mutex_);
    const auto it = catalogs_.find(environment);
    if (it != catalogs_.end()) it->second = std::move(catalog);
}

std::shared_ptr<const NetworkCatalog> NetworkScreen::catalog(std::string_view environment) const {
    std::lock_guard lock(mutex_);
    const auto it = catalogs_.find(environment);
    return it == catalogs_.end() ? nullptr : it->second;
}

std::vector<std::string> NetworkScreen::environments() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    for (const auto& [env, catalog] : catalogs_) out.push_back(env);
    return out;
}

// ------------------------------------------------------------------ NetworkDirectory

std::string_view to_string(NetworkDirectory::FetchOutcome outcome) {
    using O = NetworkDirectory::FetchOutcome;
    switch (outcome) {
        case O::kOk: return "ok";
        case O::kUnauthorized: return "unauthorized";
        case O::kRateLimited: return "rate_limited";
        case O::kServerError: return "server_error";
        case O::kClientError: return "client_error";
        case O::kFailureEnvelope: return "failure_envelope";
        case O::kTransportError: return "transport_error";
        case O::kBadResponse: return "bad_response";
    }
    return "bad_response";
}

NetworkDirectory::NetworkDirectory(std::vector<MeshEnvironment> environments, NetworksConfig config,
                                   std::shared_ptr<NetworkScreen> screen,
                                   common::Registry* registry, Fetch fetch)
    : environments_(std::move(environments)),
      config_(config),
      screen_(std::move(screen)),
      registry_(registry),
      fetch_(std::move(fetch)) {
    if (!fetch_) {
        // One client per environment, used by one thread at a time (fetch_first
        // runs before start()).
        auto clients = std::make_shared<std::map<std::string, std::unique_ptr<MeshClient>>>();
        const auto timeout = config_.call_timeout;
        fetch_ = [clients, timeout](const MeshEnvironment& env, const std::string& target) {
            auto& client = (*clients)[env.name];
            std::string error;
            const auto url = parse_api_url(env.api_url, error);  // validated at start
            if (!url) return ApiResult{std::nullopt, "bad base URL: " + error};
            if (!client) client = std::make_unique<MeshClient>(*url, timeout);
            return client->get(
                url->base_path + std::string(target),
                {{"X-Client-Id", env.client_id}, {"X-Client-Secret", env.client_secret}});
        };
    }
    if (registry_ == nullptr) return;
    using O = FetchOutcome;
    for (const MeshEnvironment& env : environments_) {
        for (const O o :
             {O::kOk, O::kUnauthorized, O::kRateLimited, O::kServerError, O::kClientError,
              O::kFailureEnvelope, O::kTransportError, O::kBadResponse}) {
            registry_->counter(kFetches, kFetchesHelp,
                               {{"environment", env.name}, {"outcome", std::string(to_string(o))}});
        }
        common::Gauge& known = registry_->gauge(kKnown, kKnownHelp, {{"environment", env.name}});
        common::Gauge& age = registry_->gauge(kAge, kAgeHelp, {{"environment", env.name}});
        age.set(-1);
        // At scrape time, from the screen (which outlives no registry render:
        // the collector holds it).
        registry_->add_collector([screen = screen_, name = env.name, &known, &age] {
            const auto catalog = screen->catalog(name);
            known.set(catalog ? static_cast<double>(catalog->networks().size()) : 0.0);
            age.set(catalog ? static_cast<double>(seconds_since(catalog->fetched())) : -1.0);
        });
    }
    for (const std::string_view reason :
         {kReasonNetworkUnknown, kReasonTokenNotSupported, kReasonDestinationAddressInvalid,
          kReasonNetworkListUnavailable}) {
        registry_->counter(kReviews, kReviewsHelp, {{"reason", std::string(reason)}});
    }
}

NetworkDirectory::~NetworkDirectory() {
    stop();
}

NetworkDirectory::FetchOutcome NetworkDirectory::refresh(const MeshEnvironment& env) {
    const ApiResult result = fetch_(env, std::string(kNetworksPath));
    FetchOutcome outcome = FetchOutcome::kOk;
    std::string why;
    std::optional<std::vector<Network>> networks;
    if (!result.response) {
        outcome = FetchOutcome::kTransportError;
        why = result.error;
    } else if (result.response->status == 401 || result.response->status == 403) {
        outcome = FetchOutcome::kUnauthorized;
        why = "Mesh refused the API credentials (HTTP " + std::to_string(result.response->status) +
              "); check MESH_CLIENT_ID/MESH_CLIENT_SECRET for this environment";
    } else if (result.response->status != 200) {
        const int status = result.response->status;
        outcome = status == 429   ? FetchOutcome::kRateLimited
                  : status >= 500 ? FetchOutcome::kServerError
                                  : FetchOutcome::kClientError;
        why = "HTTP " + std::to_string(result.response->status);
    } else {
        networks = parse_networks(result.response->body, why);
        if (!networks) {
            outcome = why.starts_with("envelope status") ? FetchOutcome::kFailureEnvelope
                                                         : FetchOutcome::kBadResponse;
        }
    }
    if (registry_ != nullptr) {
        registry_
            ->counter(kFetches, kFetchesHelp,
                      {{"environment", env.name}, {"outcome", std::string(to_string(outcome))}})
            .inc();
    }
    if (outcome != FetchOutcome::kOk) {
        const auto previous = screen_->catalog(env.name);
        const std::string kept =
            previous ? "; keeping the list of " + std::to_string(previous->networks().size()) +
                           " networks fetched " +
                           std::to_string(seconds_since(previous->fetched())) + " s ago"
                     : "; no list yet: succeeded transfers of " + env.name + " go to review (" +
                           std::string(kReasonNetworkListUnavailable) + ")";
        common::log_warn("network list " + env.name + ": " + std::string(to_string(outcome)) +
                         " (" + why + ")" + kept);
        return outcome;
    }
    std::string names;
    for (const Network& n : *networks) {
        names += (names.empty() ? "" : ",") + n.name;
        if (!n.pattern_error.empty()) {
            common::log_warn("network list " + env.name + ": " + n.name +
                             "'s address pattern does not compile (" + n.pattern_error +
                             "); its family's format alone is checked");
        }
    }
    const auto previous = screen_->catalog(env.name);
    if (!previous || previous->networks().size() != networks->size()) {
        common::log_info("network list " + env.name + ": " + std::to_string(networks->size()) +
                         " networks (" + names + ")");
    }
    screen_->update(env.name, std::make_shared<const NetworkCatalog>(
                                  std::move(*networks), std::chrono::steady_clock::now()));
    return outcome;
}

void NetworkDirectory::fetch_first(const std::atomic<bool>& stop) {
    const auto deadline = std::chrono::steady_clock::now() + config_.start_wait;
    std::vector<const MeshEnvironment*> pending;
    for (const MeshEnvironment& env : environments_) pending.push_back(&env);
    while (!pending.empty() && !stop.load()) {
        std::erase_if(pending, [this](const MeshEnvironment* env) {
            const FetchOutcome o = refresh(*env);
            return o == FetchOutcome::kOk || o == FetchOutcome::kUnauthorized ||
                   o == FetchOutcome::kClientError || o == FetchOutcome::kBadResponse;
        });
        if (pending.empty() || std::chrono::steady_clock::now() >= deadline) break;
        for (int i = 0; i < 10 && !stop.load(); ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
}

void NetworkDirectory::start() {
    thread_ = std::thread([this] { run(); });
}

void NetworkDirectory::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void NetworkDirectory::run() {
    using clock = std::chrono::steady_clock;
    std::vector<clock::time_point> next;
    if (environments_.empty()) return;
    for (const MeshEnvironment& env : environments_) {
        next.push_back(clock::now() +
                       (screen_->catalog(env.name) ? config_.refresh : config_.retry));
    }
    std::unique_lock lock(mutex_);
    while (!stopping_) {
        const auto soonest = *std::min_element(next.begin(), next.end());
        if (wake_.wait_until(lock, soonest, [this] { return stopping_; })) return;
        for (std::size_t i = 0; i < environments_.size(); ++i) {
            if (clock::now() < next[i]) continue;
            lock.unlock();
            const bool ok = refresh(environments_[i]) == FetchOutcome::kOk;
            lock.lock();
            next[i] = clock::now() + (ok ? config_.refresh : config_.retry);
        }
    }
}

void declare_network_settings(common::Settings& settings) {
    settings
        .add({"network-checks", "CONSUMER_NETWORK_CHECKS", "on",
              "on: where Mesh API credentials are set, succeeded transfers are checked against "
              "Mesh's network list (chain, token, address format) before a credit; off: not "
              "fetched, --allowed-assets alone applies"})
        .add({"networks-refresh-s", "CONSUMER_NETWORKS_REFRESH_S", "600",
              "With Mesh API credentials: seconds between fetches of Mesh's network list (a "
              "failed fetch keeps the last good list and is retried after " +
                  std::to_string(kNetworksRetry.count()) + " s)"})
        .add({"networks-start-wait-s", "CONSUMER_NETWORKS_START_WAIT_S", "30",
              "At start, longest wait for Mesh's network list before consuming; without one, "
              "succeeded transfers of that environment go to review (network_list_unavailable)"});
}

NetworksConfig load_networks_config(const common::Settings& s) {
    NetworksConfig c;
    if (const std::string& checks = s.get("network-checks"); checks == "on") {
        c.enabled = true;
    } else if (checks != "off") {
        throw common::ConfigError(s.describe("network-checks") + ": expected on or off, got \"" +
                                  checks + "\"");
    }
    c.refresh = std::chrono::seconds(common::parse_uint(s.describe("networks-refresh-s"),
                                                        s.get("networks-refresh-s"), 1, 86400));
    c.retry = std::min(c.retry, c.refresh);
    c.start_wait = std::chrono::seconds(common::parse_uint(
        s.describe("networks-start-wait-s"), s.get("networks-start-wait-s"), 0, 3600));
    return c;
}

NetworksConfig default_networks_config() {
    common::Settings s{"meshhook-consumer", ""};
    declare_network_settings(s);
    return load_networks_config(s);
}

}  // namespace meshhook::consumer
