// The network check end to end: meshhook-consumer with Mesh API credentials
// fetches `GET /api/v1/transfers/managed/networks` from `meshhook mesh` (over
// HTTP) before consuming, then credits a succeeded transfer only when its
// chain, token and destination address fit the list; the others go to the
// review topic with their reason. Without a list (Mesh unreachable) nothing
// is credited unchecked.

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <sstream>

#include "consumer/store.hpp"
#include "tests/integration/consumer/harness.hpp"
#include "tests/support/process.hpp"

namespace meshhook::testing {
namespace {

const std::string kClientId = "networks-client";
const std::string kClientSecret = "networks-secret";

std::string succeeded(const std::string& transfer, const std::string& token,
                      const std::string& chain, const std::string& address) {
    return R"({"Id":"d-)" + transfer + R"(","EventId":"e-)" + transfer + R"(","TransferId":")" +
           transfer +
           R"(","TransferStatus":"Succeeded","Timestamp":1764316800000,"UserId":"user-n","Token":")" +
           token + R"(","Chain":")" + chain +
           R"(","DestinationAmount":12.500000000000000001,"DestinationAddress":")" + address +
           R"(","TxHash":"0xfeed"})";
}

// The value of one sample of `name` whose labels contain `labels`; -1000 when absent.
double sample(std::uint16_t port, const std::string& name, const std::string& labels) {
    const auto [status, body] = http_get(port, "/metrics");
    std::istringstream in(body);
    std::string line;
    while (status == 200 && std::getline(in, line)) {
        if (line.starts_with(name + "{") && line.find(labels) != std::string::npos) {
            return std::stod(line.substr(line.rfind(' ') + 1));
        }
    }
    return -1000;
}

// The `reason` field of a review record.
std::string reason_of(const std::string& payload) {
    const std::string key = R"("reason":")";
    const auto at = payload.find(key);
    if (at == std::string::npos) return "";
    const auto from = at + key.size();
    return payload.substr(from, payload.find('"', from) - from);
}

class Networks : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() / unique_name("meshhook-networks-it");
        std::filesystem::create_directories(dir_);
        run_.bootstrap = broker_.bootstrap();
        run_.store_url = "sqlite://" + (dir_ / "meshhook.db").string();
        run_.group_id = unique_name("networks-group");
        // Reconciliation runs too (same credentials); the simulator lists no
        // transfers, so it adds nothing.
        run_.extra_args = {"--reconcile-interval-s", "3600"};
    }
    void TearDown() override {
        consumer_.reset();
        std::filesystem::remove_all(dir_);
    }
    void start(const std::string& api_url, const std::string& start_wait_s) {
        run_.env = {{"MESH_CLIENT_ID", kClientId},
                    {"MESH_CLIENT_SECRET", kClientSecret},
                    {"MESH_API_URL", api_url}};
        run_.extra_args.insert(run_.extra_args.end(), {"--networks-start-wait-s", start_wait_s});
        consumer_ = start_consumer(run_);
    }
    // TransferId -> payload, for one output topic.
    std::map<std::string, std::string> records(const std::string& topic) {
        TopicReader reader(broker_.bootstrap());
        std::map<std::string, std::string> out;
        for (const TopicRecord& r : reader.read_all(topic)) {
            EXPECT_FALSE(out.contains(r.key)) << "two records for " << r.key << " on " << topic;
            out[r.key] = r.value;
        }
        return out;
    }

    BrokerProcess broker_;
    std::filesystem::path dir_;
    ConsumerRun run_;
    std::unique_ptr<Process> consumer_;
};

TEST_F(Networks, BadAddressUnknownNetworkAndUnsupportedTokenGoToReviewGoodOnesAreCredited) {
    Process mesh({binary_path("meshhook").string(), "mesh", "--client-id", kClientId,
                  "--client-secret", kClientSecret});
    const auto listen = mesh.read_line(10s);
    ASSERT_TRUE(listen && listen->starts_with("listen=")) << mesh.stderr_text();
    start("http://" + listen->substr(7), "30");

    // TransferId -> (event, expected outcome): "credit" or the review reason.
    const std::map<std::string, std::pair<std::string, std::string>> cases = {
        {"n-eth-good",
         {succeeded("n-eth-good", "USDC", "Ethereum", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"),
          "credit"}},
        {"n-eth-checksum",  // one letter's case flipped: EIP-55 fails
         {succeeded("n-eth-checksum", "USDC", "Ethereum",
                    "0xA0b86991C6218b36c1d19D4a2e9Eb0cE3606eB48"),
          "destination_address_invalid"}},
        {"n-sol-evm-address",
         {succeeded("n-sol-evm-address", "USDC", "Solana",
                    "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"),
          "destination_address_invalid"}},
        {"n-sol-good",
         {succeeded("n-sol-good", "usdc", "solana", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"),
          "credit"}},
        {"n-btc-good",
         {succeeded("n-btc-good", "BTC", "Bitcoin", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
          "credit"}},
        {"n-tron-pattern",  // one character short of Mesh's pattern
         {succeeded("n-tron-pattern", "USDT", "Tron", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6"),
          "destination_address_invalid"}},
        {"n-unknown-chain",
         {succeeded("n-unknown-chain", "USDC", "Narnia",
                    "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"),
          "network_unknown"}},
        {"n-token",
         {succeeded("n-token", "BTC", "Ethereum", "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"),
          "token_not_supported_on_network"}},
    };
    {
        Feeder feeder(broker_.bootstrap());
        for (const auto& [id, c] : cases) feeder.send(id, c.first);
        feeder.flush();
    }
    auto store = consumer::open_store(run_.store_url);
    TopicReader reader(broker_.bootstrap());
    ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader); }, 60s))
        << consumer_->stderr_text();

    const auto credits = records(kCreditTopic);
    const auto reviews = records(kReviewTopic);
    for (const auto& [id, c] : cases) {
        const std::string& expected = c.second;
        const auto row = store->transfer("production", id);
        ASSERT_TRUE(row.has_value()) << id;
        if (expected == "credit") {
            ASSERT_TRUE(credits.contains(id)) << id << "\n" << consumer_->stderr_text();
            EXPECT_NE(credits.at(id).find(R"("amount":"12.500000000000000001")"),
                      std::string::npos);
            EXPECT_FALSE(reviews.contains(id)) << id << ": " << reviews.at(id);
            EXPECT_TRUE(row->credited) << id;
        } else {
            EXPECT_FALSE(credits.contains(id)) << id;
            ASSERT_TRUE(reviews.contains(id)) << id << "\n" << consumer_->stderr_text();
            EXPECT_EQ(reason_of(reviews.at(id)), expected) << reviews.at(id);
            // The review record keeps every field for the human who decides.
            EXPECT_NE(reviews.at(id).find(R"("amount":"12.500000000000000001")"),
                      std::string::npos);
            EXPECT_EQ(row->review_reason, expected) << id;
            EXPECT_FALSE(row->credited) << id;
        }
    }
    EXPECT_EQ(credits.size(), 3U);
    EXPECT_EQ(reviews.size(), 5U);

    const std::uint16_t port = run_.metrics_port;
    EXPECT_EQ(sample(port, "meshhook_consumer_networks_known", "environment=\"production\""), 5);
    EXPECT_GE(sample(port, "meshhook_consumer_networks_fetches_total", "outcome=\"ok\""), 1);
    EXPECT_GE(sample(port, "meshhook_consumer_networks_list_age_seconds", "production"), 0);
    EXPECT_EQ(
        sample(port, "meshhook_consumer_reviews_total", "reason=\"destination_address_invalid\""),
        3);
    EXPECT_EQ(sample(port, "meshhook_consumer_reviews_total", "reason=\"network_unknown\""), 1);
    EXPECT_EQ(sample(port, "meshhook_consumer_reviews_total",
                     "reason=\"token_not_supported_on_network\""),
              1);
}

TEST_F(Networks, WithoutAListNothingIsCreditedUncheckedAndTheFailuresAreCounted) {
    // Nothing listens there: every fetch fails; the consumer starts after
    // --networks-start-wait-s anyway.
    start("http://127.0.0.1:" + std::to_string(free_port()), "1");
    {
        Feeder feeder(broker_.bootstrap());
        feeder.send("n-no-list", succeeded("n-no-list", "USDC", "Ethereum",
                                           "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"));
        feeder.flush();
    }
    auto store = consumer::open_store(run_.store_url);
    TopicReader reader(broker_.bootstrap());
    ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader); }, 60s))
        << consumer_->stderr_text();
    EXPECT_TRUE(records(kCreditTopic).empty());
    const auto reviews = records(kReviewTopic);
    ASSERT_TRUE(reviews.contains("n-no-list")) << consumer_->stderr_text();
    EXPECT_EQ(reason_of(reviews.at("n-no-list")), "network_list_unavailable");
    const std::uint16_t port = run_.metrics_port;
    EXPECT_GE(sample(port, "meshhook_consumer_networks_fetches_total", "transport_error"), 1);
    EXPECT_EQ(sample(port, "meshhook_consumer_networks_list_age_seconds", "production"), -1);
    EXPECT_EQ(sample(port, "meshhook_consumer_networks_known", "production"), 0);
    EXPECT_NE(consumer_->stderr_text().find("no list yet"), std::string::npos);
}

TEST_F(Networks, NetworkChecksOffLeavesTheStaticPolicyAlone) {
    Process mesh({binary_path("meshhook").string(), "mesh", "--client-id", kClientId,
                  "--client-secret", kClientSecret});
    const auto listen = mesh.read_line(10s);
    ASSERT_TRUE(listen && listen->starts_with("listen=")) << mesh.stderr_text();
    run_.extra_args.insert(run_.extra_args.end(), {"--network-checks", "off"});
    start("http://" + listen->substr(7), "30");
    {
        Feeder feeder(broker_.bootstrap());
        feeder.send("n-off", succeeded("n-off", "USDC", "Narnia", "not-an-address"));
        feeder.flush();
    }
    auto store = consumer::open_store(run_.store_url);
    TopicReader reader(broker_.bootstrap());
    ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader); }, 60s))
        << consumer_->stderr_text();
    EXPECT_TRUE(records(kCreditTopic).contains("n-off"));
    EXPECT_TRUE(records(kReviewTopic).empty());
    EXPECT_EQ(sample(run_.metrics_port, "meshhook_consumer_networks_fetches_total", "outcome"),
              -1000);  // never fetched
}

}  // namespace
}  // namespace meshhook::testing
