// Mesh's network list: parsing its answer, the decision with a list (a
// succeeded transfer on an unknown network, with an unsupported token or an
// address that does not fit goes to review, with its reason), and the
// directory that keeps the last good list when a fetch fails.

#include "consumer/networks.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/metrics.hpp"
#include "consumer/mesh_client.hpp"
#include "consumer/policy_file.hpp"
#include "consumer/state_machine.hpp"
#include "tests/support/process.hpp"

namespace meshhook::consumer {
namespace {

constexpr std::int64_t kNow = 1764317200000;
const Topics kTopics;

// Mesh's shape (MESH.md): content.networks[] with id, name, chainId,
// nativeSymbol, networkType, supportedTokens; one with an address pattern.
const std::string kList = R"({"status":"ok","message":"","displayMessage":null,"errorType":null,
 "errorData":null,"content":{"networks":[
  {"id":"e3c7fdd8-b1fc-4e51-85ae-bb276e075611","name":"Ethereum","chainId":"1",
   "nativeSymbol":"ETH","networkType":"evm","supportedTokens":["ETH","USDC","usdt"]},
  {"id":"0291810a-5947-424d-9a59-e88bb33e999d","name":"Solana","chainId":"101",
   "nativeSymbol":"SOL","networkType":"solana","supportedTokens":["SOL","USDC"]},
  {"id":"a2a6ab44-8e6b-4d3a-9c46-5b8e1f2b6c11","name":"Bitcoin","chainId":"000000000019d6689c085ae165831e93",
   "nativeSymbol":"BTC","networkType":"bitcoin","supportedTokens":[]},
  {"id":"7436e9d0-ba42-4d2b-b4c0-8e4e606b2c12","name":"Tron","chainId":"728126428",
   "nativeSymbol":"TRX","networkType":"tron","supportedTokens":[{"symbol":"USDT"}],
   "addressPattern":"^T[1-9A-HJ-NP-Za-km-z]{33}$"}]}})";

const std::string kUsdcMint = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
const std::string kEvmGood = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";
const std::string kEvmBadChecksum = "0xA0b86991C6218b36c1d19D4a2e9Eb0cE3606eB48";

std::shared_ptr<const NetworkCatalog> catalog(const std::string& body = kList) {
    std::string error;
    auto networks = parse_networks(body, error);
    EXPECT_TRUE(networks.has_value()) << error;
    return std::make_shared<const NetworkCatalog>(networks.value_or(std::vector<Network>{}),
                                                  std::chrono::steady_clock::now());
}

TransferEvent succeeded(std::string token, std::string chain, std::string address,
                        std::string environment = "production") {
    TransferEvent e;
    e.environment = std::move(environment);
    e.transfer_id = "t-" + token + "-" + chain;
    e.event_id = "ev-1";
    e.status_text = "Succeeded";
    e.status = common::TransferStatus::kSucceeded;
    e.token = std::move(token);
    e.chain = std::move(chain);
    e.destination_address = std::move(address);
    e.destination_amount = "250.000000000000000001";
    e.tx_hash = "0xhash";
    e.user_id = "user-1";  // a complete credit command needs its user
    return e;
}

TEST(ParseNetworks, ReadsMeshsShapeUpperCasesTokensAndAddsTheNativeSymbol) {
    std::string error;
    const auto networks = parse_networks(kList, error);
    ASSERT_TRUE(networks.has_value()) << error;
    ASSERT_EQ(networks->size(), 4U);
    const Network& eth = (*networks)[0];
    EXPECT_EQ(eth.id, "e3c7fdd8-b1fc-4e51-85ae-bb276e075611");
    EXPECT_EQ(eth.chain_id, "1");
    EXPECT_EQ(eth.family, AddressFamily::kEvm);
    EXPECT_EQ(eth.tokens, (std::set<std::string>{"ETH", "USDC", "USDT"}));
    const Network& btc = (*networks)[2];
    EXPECT_EQ(btc.tokens, std::set<std::string>{"BTC"});  // the native symbol
    const Network& tron = (*networks)[3];
    EXPECT_EQ(tron.family, AddressFamily::kUnknown);
    EXPECT_EQ(tron.tokens, (std::set<std::string>{"TRX", "USDT"}));
    EXPECT_NE(tron.pattern, nullptr);
    EXPECT_TRUE(tron.pattern_error.empty());
}

TEST(ParseNetworks, RefusesFailureEnvelopesEmptyListsAndOtherShapes) {
    std::string error;
    EXPECT_FALSE(parse_networks(
        R"({"status":"serverFailure","message":"try later","content":null})", error));
    EXPECT_EQ(error, "envelope status serverFailure: try later");
    EXPECT_FALSE(parse_networks(R"({"status":"ok","content":{"networks":[]}})", error));
    EXPECT_EQ(error, "an empty list");
    EXPECT_FALSE(parse_networks(R"({"status":"ok","content":{"items":[]}})", error));
    EXPECT_EQ(error, "no content.networks");
    EXPECT_FALSE(parse_networks(R"({"status":"ok","content":{"networks":{}}})", error));
    EXPECT_FALSE(parse_networks(R"({"status":"ok","content":{"networks":[1]}})", error));
    EXPECT_FALSE(parse_networks("<html>", error));
    EXPECT_FALSE(parse_networks(R"({"content":{"networks":[{"name":"Ethereum"}]}})", error));
    EXPECT_EQ(error, "no envelope status");
    // A bare array as content is accepted too.
    EXPECT_TRUE(parse_networks(R"({"status":"OK","content":[{"name":"Ethereum"}]})", error));
}

TEST(ParseNetworks, APatternThatDoesNotCompileIsReportedAndTheFamilyCheckRemains) {
    std::string error;
    const auto networks = parse_networks(
        R"({"status":"ok","content":{"networks":[{"name":"Ethereum","networkType":"evm",
            "supportedTokens":["USDC"],"addressRegex":"^0x[0-9a-f{40}$("}]}})",
        error);
    ASSERT_TRUE(networks.has_value()) << error;
    EXPECT_EQ((*networks)[0].pattern, nullptr);
    EXPECT_FALSE((*networks)[0].pattern_error.empty());
    const NetworkCatalog list(*networks, std::chrono::steady_clock::now());
    const std::vector<BitcoinNet> main = {BitcoinNet::kMain};
    EXPECT_EQ(network_review_reason(list, succeeded("USDC", "Ethereum", kEvmGood), main),
              std::nullopt);
    EXPECT_EQ(network_review_reason(list, succeeded("USDC", "Ethereum", kEvmBadChecksum), main),
              kReasonDestinationAddressInvalid);
}

class NetworkDecision : public ::testing::Test {
protected:
    void SetUp() override {
        screen_ =
            std::make_shared<NetworkScreen>(std::vector<std::string>{"production", "sandbox"});
        screen_->update("production", catalog());
        screen_->update("sandbox", catalog());
        policy_.set_screen(screen_);
    }
    Decision decide_one(const TransferEvent& e) const {
        return decide(std::nullopt, e, policy_, kTopics, kNow);
    }
    std::string reason(const TransferEvent& e) const {
        const Decision d = decide_one(e);
        EXPECT_EQ(d.outcome, Outcome::kApplied);
        if (d.credit) {
            EXPECT_EQ(d.outbox.size(), 1U);
            EXPECT_EQ(d.outbox.at(0).topic, kTopics.credits);
            return "credit";
        }
        EXPECT_EQ(d.outbox.size(), 1U);
        EXPECT_EQ(d.outbox.at(0).topic, kTopics.reviews);
        EXPECT_NE(
            d.outbox.at(0).payload.find("\"reason\":\"" + std::string(d.review_reason) + "\""),
            std::string::npos);
        EXPECT_EQ(d.row->review_reason, d.review_reason);
        EXPECT_FALSE(d.row->credited);
        return std::string(d.review_reason);
    }

    std::shared_ptr<NetworkScreen> screen_;
    Policy policy_;
};

TEST_F(NetworkDecision, GoodTransfersOfEachFamilyAreCredited) {
    EXPECT_EQ(reason(succeeded("USDC", "Ethereum", kEvmGood)), "credit");
    EXPECT_EQ(reason(succeeded("usdt", "ethereum", "0xdac17f958d2ee523a2206206994597c13d831ec7")),
              "credit");
    EXPECT_EQ(reason(succeeded("ETH", "Ethereum", kEvmGood)), "credit");
    EXPECT_EQ(reason(succeeded("USDC", "Solana", kUsdcMint)), "credit");
    EXPECT_EQ(reason(succeeded("BTC", "Bitcoin", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa")), "credit");
    EXPECT_EQ(reason(succeeded("BTC", "Bitcoin",
                               "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0")),
              "credit");
    EXPECT_EQ(reason(succeeded("USDT", "Tron", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t")), "credit");
}

TEST_F(NetworkDecision, UnknownNetworkUnsupportedTokenAndBadAddressGoToReviewWithTheirReason) {
    EXPECT_EQ(reason(succeeded("USDC", "Narnia", kEvmGood)), kReasonNetworkUnknown);
    TransferEvent no_chain = succeeded("USDC", "Ethereum", kEvmGood);
    no_chain.chain.reset();
    // A missing or oversized field is the completeness check's, which runs first.
    EXPECT_EQ(reason(no_chain), "chain_missing");
    EXPECT_EQ(reason(succeeded("DOGE", "Ethereum", kEvmGood)), kReasonTokenNotSupported);
    // USDC on Ethereum is not USDC on Bitcoin.
    EXPECT_EQ(reason(succeeded("USDC", "Bitcoin", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa")),
              kReasonTokenNotSupported);
    TransferEvent no_token = succeeded("USDC", "Ethereum", kEvmGood);
    no_token.token.reset();
    EXPECT_EQ(reason(no_token), "asset_missing");
    EXPECT_EQ(reason(succeeded("USDC", "Ethereum", kEvmBadChecksum)),
              kReasonDestinationAddressInvalid);
    EXPECT_EQ(reason(succeeded("USDC", "Ethereum", kUsdcMint)), kReasonDestinationAddressInvalid);
    EXPECT_EQ(reason(succeeded("USDC", "Solana", kEvmGood)), kReasonDestinationAddressInvalid);
    EXPECT_EQ(reason(succeeded("BTC", "Bitcoin", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb")),
              kReasonDestinationAddressInvalid);
    // Mesh's pattern: a Tron address one character short.
    EXPECT_EQ(reason(succeeded("USDT", "Tron", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6")),
              kReasonDestinationAddressInvalid);
    TransferEvent no_address = succeeded("USDC", "Ethereum", kEvmGood);
    no_address.destination_address.reset();
    EXPECT_EQ(reason(no_address), "destination_missing");
    EXPECT_EQ(reason(succeeded("USDC", "Ethereum", "0x" + std::string(100000, 'a'))),
              "destination_malformed");
    EXPECT_EQ(reason(succeeded("USDC", "Ethereum", "0x" + std::string(100, 'a'))),
              kReasonDestinationAddressInvalid);
}

TEST_F(NetworkDecision, TheDetailSaysWhatIsWrongWithTheAddress) {
    const auto list = screen_->catalog("production");
    const auto main = bitcoin_nets_for("production");
    EXPECT_EQ(network_problem(*list, succeeded("USDC", "Ethereum", kEvmBadChecksum), main),
              "evm: wrong EIP-55 checksum (letter case)");
    EXPECT_EQ(network_problem(*list, succeeded("USDC", "Ethereum", kEvmGood), main), "");
}

TEST_F(NetworkDecision, TestNetBitcoinAddressesOnlyOutsideProduction) {
    const std::string tb1 = "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7";
    EXPECT_EQ(reason(succeeded("BTC", "Bitcoin", tb1)), kReasonDestinationAddressInvalid);
    EXPECT_EQ(reason(succeeded("BTC", "Bitcoin", tb1, "sandbox")), "credit");
}

TEST_F(NetworkDecision, EnvironmentWithoutCredentialsKeepsTheStaticPolicyAlone) {
    // "staging" has no API credentials: not screened, as before the list existed.
    EXPECT_EQ(reason(succeeded("DOGE", "Narnia", "anything", "staging")), "credit");
    Policy with_assets;
    parse_allowed_assets(with_assets, "--allowed-assets", "USDC:Ethereum");
    with_assets.set_screen(screen_);
    const Decision d = decide(std::nullopt, succeeded("DOGE", "Narnia", "anything", "staging"),
                              with_assets, kTopics, kNow);
    EXPECT_EQ(d.review_reason, kReasonAssetNotAllowed);
}

TEST_F(NetworkDecision, AllowedAssetsStillApplyWithAList) {
    Policy both;
    parse_allowed_assets(both, "--allowed-assets", "USDC:Ethereum");
    both.set_screen(screen_);
    EXPECT_EQ(decide(std::nullopt, succeeded("USDC", "Solana", kUsdcMint), both, kTopics, kNow)
                  .review_reason,
              kReasonAssetNotAllowed);
    EXPECT_TRUE(
        decide(std::nullopt, succeeded("USDC", "Ethereum", kEvmGood), both, kTopics, kNow).credit);
}

TEST_F(NetworkDecision, WithCredentialsButNoListYetSucceededTransfersGoToReview) {
    auto empty = std::make_shared<NetworkScreen>(std::vector<std::string>{"production"});
    Policy policy;
    policy.set_screen(empty);
    const Decision d =
        decide(std::nullopt, succeeded("USDC", "Ethereum", kEvmGood), policy, kTopics, kNow);
    EXPECT_FALSE(d.credit);
    EXPECT_EQ(d.review_reason, kReasonNetworkListUnavailable);
    // Once a list arrives, the same transfer would be credited.
    empty->update("production", catalog());
    EXPECT_TRUE(decide(std::nullopt, succeeded("USDC", "Ethereum", kEvmGood), policy, kTopics, kNow)
                    .credit);
}

TEST_F(NetworkDecision, OnlySucceededTransfersAreChecked) {
    TransferEvent pending = succeeded("DOGE", "Narnia", "x");
    pending.status_text = "Pending";
    pending.status = common::TransferStatus::kPending;
    const Decision d = decide_one(pending);
    EXPECT_EQ(d.outcome, Outcome::kApplied);
    EXPECT_TRUE(d.outbox.empty());
}

// ---------------------------------------------------------------- NetworkDirectory

double sample(const common::Registry& registry, const std::string& name,
              const std::string& labels) {
    std::istringstream in(registry.render());
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with(name + "{") && line.find(labels) != std::string::npos) {
            return std::stod(line.substr(line.rfind(' ') + 1));
        }
    }
    return -1000;
}

// Answers from a script, one per fetch; the last repeats. Called from the
// directory's thread in the periodic test, hence the lock.
struct ScriptedMesh {
    std::mutex mutex;
    std::deque<ApiResult> answers;
    std::atomic<int> calls{0};
    NetworkDirectory::Fetch fetch() {
        return [this](const MeshEnvironment&, const std::string& target) {
            EXPECT_EQ(target, kNetworksPath);
            std::lock_guard lock(mutex);
            ++calls;
            ApiResult r = answers.front();
            if (answers.size() > 1) answers.pop_front();
            return r;
        };
    }
};

ApiResult answer(int status, std::string body) {
    ApiResult r;
    r.response = ApiResponse{status, std::move(body), std::nullopt};
    return r;
}

// NetworksConfig carries no second spelling of its settings' defaults: code
// without a command line gets the declared ones, and a bad value stops the
// start naming the setting.
TEST(NetworksSettings, DefaultConfigInCodeIsTheDeclaredDefaults) {
    const NetworksConfig in_code = default_networks_config();
    common::Settings declared("meshhook-consumer", "test");
    declare_network_settings(declared);
    EXPECT_EQ(in_code.enabled, declared.get("network-checks") == "on");
    EXPECT_EQ(std::to_string(in_code.refresh.count()), declared.get("networks-refresh-s"));
    EXPECT_EQ(std::to_string(in_code.start_wait.count()), declared.get("networks-start-wait-s"));
    EXPECT_EQ(in_code.retry, std::min(kNetworksRetry, in_code.refresh));
}

TEST(NetworksSettings, LoadsWhatIsSetAndRefusesABadValueNamingTheSetting) {
    common::Settings s("meshhook-consumer", "test");
    declare_network_settings(s);
    s.set("network-checks", "off").set("networks-refresh-s", "5").set("networks-start-wait-s", "0");
    const NetworksConfig c = load_networks_config(s);
    EXPECT_FALSE(c.enabled);
    EXPECT_EQ(c.refresh, std::chrono::seconds(5));
    EXPECT_EQ(c.retry, std::chrono::seconds(5));  // never longer than the refresh
    EXPECT_EQ(c.start_wait, std::chrono::seconds(0));

    s.set("network-checks", "maybe");
    try {
        (void)load_networks_config(s);
        ADD_FAILURE() << "--network-checks maybe was accepted";
    } catch (const common::ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("--network-checks"), std::string::npos) << e.what();
    }
}

TEST(NetworkDirectory, AFailedFetchKeepsTheLastGoodListAndIsCounted) {
    common::Registry registry;
    auto screen = std::make_shared<NetworkScreen>(std::vector<std::string>{"production"});
    ScriptedMesh mesh;
    const MeshEnvironment env{"production", "id", "secret", "http://127.0.0.1:1"};
    NetworkDirectory directory({env}, default_networks_config(), screen, &registry, mesh.fetch());
    EXPECT_EQ(sample(registry, "meshhook_consumer_networks_list_age_seconds", "production"), -1);
    EXPECT_EQ(sample(registry, "meshhook_consumer_networks_known", "production"), 0);

    using O = NetworkDirectory::FetchOutcome;
    mesh.answers = {answer(200, kList)};
    EXPECT_EQ(directory.refresh(env), O::kOk);
    const auto first = screen->catalog("production");
    ASSERT_NE(first, nullptr);
    EXPECT_EQ(first->networks().size(), 4U);

    mesh.answers = {answer(503, "busy"),
                    answer(200, R"({"status":"serverFailure","message":"x","content":null})"),
                    answer(200, "not json"),
                    answer(200, R"({"status":"ok","content":{"networks":[]}})"),
                    ApiResult{std::nullopt, "connection refused"},
                    answer(429, ""),
                    answer(404, ""),
                    answer(401, "")};
    EXPECT_EQ(directory.refresh(env), O::kServerError);
    EXPECT_EQ(directory.refresh(env), O::kFailureEnvelope);
    EXPECT_EQ(directory.refresh(env), O::kBadResponse);
    EXPECT_EQ(directory.refresh(env), O::kBadResponse);
    EXPECT_EQ(directory.refresh(env), O::kTransportError);
    EXPECT_EQ(directory.refresh(env), O::kRateLimited);
    EXPECT_EQ(directory.refresh(env), O::kClientError);
    EXPECT_EQ(directory.refresh(env), O::kUnauthorized);
    EXPECT_EQ(screen->catalog("production"), first);  // the same list, untouched

    const std::string env_label = "environment=\"production\"";
    auto fetches = [&](const std::string& outcome) {
        return sample(registry, "meshhook_consumer_networks_fetches_total",
                      env_label + ",outcome=\"" + outcome + "\"");
    };
    EXPECT_EQ(fetches("ok"), 1);
    EXPECT_EQ(fetches("server_error"), 1);
    EXPECT_EQ(fetches("rate_limited"), 1);
    EXPECT_EQ(fetches("client_error"), 1);
    EXPECT_EQ(fetches("failure_envelope"), 1);
    EXPECT_EQ(fetches("bad_response"), 2);
    EXPECT_EQ(fetches("transport_error"), 1);
    EXPECT_EQ(fetches("unauthorized"), 1);
    EXPECT_EQ(sample(registry, "meshhook_consumer_networks_known", "production"), 4);
    const double age =
        sample(registry, "meshhook_consumer_networks_list_age_seconds", "production");
    EXPECT_GE(age, 0);
    EXPECT_LT(age, 60);
    EXPECT_EQ(sample(registry, "meshhook_consumer_reviews_total", "network_unknown"), 0);

    // A changed list replaces the old one.
    mesh.answers = {answer(200, R"({"status":"ok","content":{"networks":[{"name":"Polygon",
        "networkType":"evm","supportedTokens":["USDC"]}]}})")};
    EXPECT_EQ(directory.refresh(env), O::kOk);
    EXPECT_EQ(screen->catalog("production")->networks().size(), 1U);
    EXPECT_EQ(screen->catalog("production")->find("Ethereum"), nullptr);
}

TEST(NetworkDirectory, FetchFirstRetriesTransientFailuresAndGivesUpAtOnceOnFinalAnswers) {
    auto screen = std::make_shared<NetworkScreen>(std::vector<std::string>{"production"});
    const MeshEnvironment env{"production", "id", "secret", "http://127.0.0.1:1"};
    NetworksConfig config = default_networks_config();
    config.start_wait = std::chrono::seconds(30);
    {
        ScriptedMesh mesh;
        mesh.answers = {ApiResult{std::nullopt, "refused"}, answer(500, ""), answer(429, ""),
                        answer(200, kList)};
        NetworkDirectory directory({env}, config, screen, nullptr, mesh.fetch());
        const std::atomic<bool> stop{false};
        directory.fetch_first(stop);
        EXPECT_EQ(mesh.calls, 4);
        EXPECT_NE(screen->catalog("production"), nullptr);
    }
    // Answers that waiting will not change end the wait at once: a refused
    // key, a route that is not there, a body that is not a list.
    for (const ApiResult& final_answer :
         {answer(401, ""), answer(404, ""),
          answer(200, R"({"status":"ok","content":{"items":[]}})")}) {
        auto fresh = std::make_shared<NetworkScreen>(std::vector<std::string>{"production"});
        ScriptedMesh mesh;
        mesh.answers = {final_answer};
        NetworkDirectory directory({env}, config, fresh, nullptr, mesh.fetch());
        const std::atomic<bool> stop{false};
        const auto started = std::chrono::steady_clock::now();
        directory.fetch_first(stop);
        EXPECT_EQ(mesh.calls, 1) << final_answer.response->status;
        EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
        EXPECT_EQ(fresh->catalog("production"), nullptr);
    }
    {
        // Mesh never answers: the wait is bounded.
        auto fresh = std::make_shared<NetworkScreen>(std::vector<std::string>{"production"});
        ScriptedMesh mesh;
        mesh.answers = {ApiResult{std::nullopt, "refused"}};
        NetworksConfig short_wait = config;
        short_wait.start_wait = std::chrono::seconds(2);
        NetworkDirectory directory({env}, short_wait, fresh, nullptr, mesh.fetch());
        const std::atomic<bool> stop{false};
        directory.fetch_first(stop);
        EXPECT_GE(mesh.calls, 2);
        EXPECT_LE(mesh.calls, 4);
        EXPECT_EQ(fresh->catalog("production"), nullptr);
    }
}

TEST(NetworkDirectory, ItsThreadRefreshesPeriodicallyAndAFailureInBetweenKeepsTheList) {
    auto screen = std::make_shared<NetworkScreen>(std::vector<std::string>{"production"});
    const MeshEnvironment env{"production", "id", "secret", "http://127.0.0.1:1"};
    NetworksConfig config = default_networks_config();
    config.refresh = std::chrono::seconds(1);
    config.retry = std::chrono::seconds(1);
    ScriptedMesh mesh;
    mesh.answers = {answer(200, kList), answer(502, ""),
                    answer(200, R"({"status":"ok","content":{"networks":[{"name":"Polygon",
                        "networkType":"evm","supportedTokens":["USDC"]}]}})")};
    NetworkDirectory directory({env}, config, screen, nullptr, mesh.fetch());
    const std::atomic<bool> stop{false};
    directory.fetch_first(stop);
    const auto first = screen->catalog("production");
    ASSERT_NE(first, nullptr);
    directory.start();
    // The 502 leaves the first list in place; the next refresh replaces it.
    ASSERT_TRUE(
        testing::wait_until([&] { return mesh.calls.load() >= 2; }, std::chrono::seconds(30)));
    ASSERT_TRUE(testing::wait_until(
        [&] { return screen->catalog("production")->find("Polygon") != nullptr; },
        std::chrono::seconds(30)));
    directory.stop();
    const int calls = mesh.calls.load();
    EXPECT_GE(calls, 3);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    EXPECT_EQ(mesh.calls.load(), calls) << "fetched after stop()";
}

}  // namespace
}  // namespace meshhook::consumer
