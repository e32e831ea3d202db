#include "tools/scenario.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "common/signature.hpp"
#include "common/transfer_event.hpp"
#include "consumer/address_format.hpp"
#include "tests/support/process.hpp"
#include "tools/fixtures.hpp"

namespace meshhook::tools {
namespace {

TEST(Fixtures, EmbeddedBodiesAreTheFixtureFilesByteForByte) {
    ASSERT_FALSE(embedded_fixtures().empty());
    for (const auto& f : embedded_fixtures()) {
        EXPECT_EQ(f.body, testing::fixture(std::string(f.name))) << f.name;
    }
    EXPECT_EQ(common::sign("whsec_test_fixture_secret", embedded_fixture("03-succeeded.json")),
              "+USHqMn1BKTQbXdliClRAc/TzIa8hxuzELNeZzBGd38=");
}

TEST(Scenario, DemoIsFixturesOneToFiveInOrderInOneStream) {
    const auto s = demo_scenario();
    ASSERT_EQ(s.streams.size(), 1U);
    ASSERT_EQ(s.streams[0].size(), 5U);
    EXPECT_EQ(s.streams[0][0].name, "01-pending.json");
    EXPECT_EQ(s.streams[0][4].name, "05-failed-other-transfer.json");
    EXPECT_EQ(s.streams[0][2].body, testing::fixture("03-succeeded.json"));
    ASSERT_EQ(s.credits.size(), 1U);
    EXPECT_EQ(s.credits[0].amount, "250.000000000000000001");
}

TEST(Scenario, SameSeedGivesSameDeliveriesAndOtherSeedDiffers) {
    const auto a = random_scenario(50, 7);
    const auto b = random_scenario(50, 7);
    const auto c = random_scenario(50, 8);
    ASSERT_EQ(a.streams.size(), b.streams.size());
    // Timestamps follow the clock; everything else is the seed's.
    ASSERT_EQ(a.credits.size(), b.credits.size());
    for (std::size_t i = 0; i < a.credits.size(); ++i) {
        EXPECT_EQ(a.credits[i].transfer_id, b.credits[i].transfer_id);
        EXPECT_EQ(a.credits[i].amount, b.credits[i].amount);
    }
    EXPECT_NE(a.credits.front().transfer_id, c.credits.front().transfer_id);
}

TEST(Scenario, RandomBodiesParseAndCreditsMatchTheSucceededTransfers) {
    const auto s = random_scenario(500, 42);
    EXPECT_EQ(s.streams.size(), 500U);
    common::TransferEventParser parser;
    std::map<std::string, std::set<common::TransferStatus>> statuses;
    std::map<std::string, std::string> succeeded_amount;
    std::set<std::string> status_spellings;
    std::size_t camel = 0;
    std::size_t retries = 0;
    std::size_t duplicates = 0;
    std::size_t out_of_order = 0;
    std::size_t deliveries = 0;
    for (const auto& stream : s.streams) {
        std::map<std::string, std::string> event_of_delivery;  // delivery Id -> EventId
        std::set<std::string> bodies;
        std::set<std::string> events;
        int last_rank = 0;
        bool saw_lower_rank = false;
        for (const auto& d : stream) {
            ++deliveries;
            const auto r = parser.parse(d.body);
            ASSERT_TRUE(r.ok()) << r.error.message() << "\n" << d.body;
            const std::string transfer(r.event.transfer_id.value);
            statuses[transfer].insert(r.event.status);
            status_spellings.insert(std::string(r.event.transfer_status.value));
            if (d.body.find("\"transferId\"") != std::string::npos) ++camel;
            if (!bodies.insert(d.body).second) ++duplicates;
            const std::string event_id(r.event.event_id.value);
            if (!events.insert(event_id).second && d.name.find("retry") != std::string::npos)
                ++retries;
            const int rank = common::status_rank(r.event.status);
            if (rank < last_rank) saw_lower_rank = true;
            last_rank = std::max(last_rank, rank);
            if (r.event.status == common::TransferStatus::kSucceeded) {
                ASSERT_TRUE(r.event.destination_amount.has_value());
                EXPECT_TRUE(common::is_positive_decimal(r.event.destination_amount.value))
                    << r.event.destination_amount.value;
                succeeded_amount[transfer] = std::string(r.event.destination_amount.value);
            }
        }
        if (saw_lower_rank) ++out_of_order;
    }
    EXPECT_EQ(deliveries, s.deliveries);
    for (const auto& [transfer, set] : statuses) {
        EXPECT_FALSE(set.contains(common::TransferStatus::kSucceeded) &&
                     set.contains(common::TransferStatus::kFailed))
            << transfer;
    }
    ASSERT_EQ(s.credits.size(), succeeded_amount.size());
    for (const auto& c : s.credits) EXPECT_EQ(succeeded_amount.at(c.transfer_id), c.amount);
    // Each of Mesh's habits shows up in a scenario this size.
    EXPECT_GT(camel, 0U);
    EXPECT_GT(retries, 0U);
    EXPECT_GT(duplicates, 0U);
    EXPECT_GT(out_of_order, 0U);
    EXPECT_TRUE(status_spellings.contains("Succeeded") || status_spellings.contains("SUCCEEDED"));
    EXPECT_TRUE(status_spellings.contains("succeeded"));
}

TEST(Scenario, AmountsKeepMoreDigitsThanADoubleHolds) {
    const auto s = random_scenario(300, 3);
    bool long_amount = false;
    for (const auto& c : s.credits) {
        EXPECT_EQ(c.amount.find_first_of("eE+-"), std::string::npos) << c.amount;
        if (c.amount.size() > 17 + 1) long_amount = true;
    }
    EXPECT_TRUE(long_amount);
}

}  // namespace
}  // namespace meshhook::tools

namespace meshhook::tools {
namespace {

// The consumer's network check (consumer/networks.hpp) reviews an address
// that does not fit its chain: generated transfers carry real-shaped ones,
// so a scenario run against `meshhook mesh`'s network list credits them.
TEST(Scenario, RandomAddressesFitTheirChainsFormat) {
    const auto s = random_scenario(300, 3);
    common::TransferEventParser parser;
    std::set<std::string> chains;
    for (const auto& stream : s.streams) {
        for (const auto& delivery : stream) {
            const common::ParseResult r = parser.parse(delivery.body);
            ASSERT_TRUE(r.ok()) << delivery.body;
            const std::string chain(r.event.chain.value);
            const auto family = chain == "Solana" ? consumer::AddressFamily::kSolana
                                                  : consumer::AddressFamily::kEvm;
            const std::string address(r.event.destination_address.value);
            EXPECT_EQ(consumer::check_address(family, address, {consumer::BitcoinNet::kMain}),
                      std::nullopt)
                << chain << " " << address;
            chains.insert(chain);
        }
    }
    EXPECT_TRUE(chains.contains("Solana"));
    EXPECT_TRUE(chains.contains("Ethereum"));
}

}  // namespace
}  // namespace meshhook::tools
