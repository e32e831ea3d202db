#include "consumer/state_machine.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/transfer_event.hpp"
#include "consumer/encoding.hpp"
#include "consumer/policy_file.hpp"
#include "tests/support/process.hpp"

namespace meshhook::consumer {
namespace {

using common::TransferStatus;

constexpr std::int64_t kNow = 1764317200000;
const Topics kTopics;

TransferEvent parse_fixture(const std::string& name, std::string_view environment = "") {
    common::TransferEventParser parser;
    const std::string body = testing::fixture(name);
    const common::ParseResult r = parser.parse(body);
    EXPECT_TRUE(r.ok()) << name << ": " << r.error.message();
    return TransferEvent::from_view(r.event, environment);
}

// A transfer's event with every credit field set; `status` as Mesh writes it.
TransferEvent event(std::string_view status, std::string transfer_id = "t-1") {
    TransferEvent e;
    e.transfer_id = std::move(transfer_id);
    e.status_text = std::string(status);
    e.status = common::parse_status(status);
    e.event_id = "ev-" + std::string(status);
    e.user_id = "user-1";
    e.transaction_id = "order-1";
    e.token = "USDC";
    e.chain = "Ethereum";
    e.destination_address = "0xabc";
    e.source_account_provider = "Coinbase";
    e.timestamp_ms = 1764317099000;
    if (e.status == TransferStatus::kSucceeded) {
        e.destination_amount = "250.000000000000000001";
        e.tx_hash = "0xhash";
    }
    return e;
}

struct Replay {
    std::optional<TransferRow> row;
    std::vector<Outcome> outcomes;
    std::vector<OutboxRecord> records;           // as emitted, before outbox dedup
    std::map<std::string, OutboxRecord> unique;  // after dedup
};

Replay replay(const std::vector<TransferEvent>& events, const Policy& policy = {}) {
    Replay r;
    std::int64_t now = kNow;
    for (const TransferEvent& e : events) {
        Decision d = decide(r.row, e, policy, kTopics, now++);
        r.outcomes.push_back(d.outcome);
        for (const OutboxRecord& rec : d.outbox) {
            r.records.push_back(rec);
            r.unique.emplace(rec.dedup_key, rec);
        }
        if (d.row) {
            r.row = *d.row;
        }
    }
    return r;
}

std::vector<OutboxRecord> on_topic(const Replay& r, const std::string& topic) {
    std::vector<OutboxRecord> out;
    for (const OutboxRecord& rec : r.records) {
        if (rec.topic == topic) {
            out.push_back(rec);
        }
    }
    return out;
}

// ---------------------------------------------------------------- orderings

using Ordering = std::vector<std::string>;

std::vector<Ordering> permutations_of(Ordering statuses) {
    std::sort(statuses.begin(), statuses.end());
    std::vector<Ordering> out;
    do {
        out.push_back(statuses);
    } while (std::next_permutation(statuses.begin(), statuses.end()));
    return out;
}

std::string ordering_name(const ::testing::TestParamInfo<Ordering>& info) {
    std::string name;
    for (const std::string& s : info.param) {
        name += s;
    }
    return name;
}

class AllFourStatusesInAnyOrder : public ::testing::TestWithParam<Ordering> {};

// pending/processing/succeeded/failed, every one of the 24 orders: the first
// terminal status wins; succeeded first means exactly one credit (the failed
// that follows is a conflict); failed first means no credit at all.
TEST_P(AllFourStatusesInAnyOrder, FirstTerminalStatusWinsAndConflictIsAnAnomaly) {
    std::vector<TransferEvent> events;
    for (const std::string& s : GetParam()) {
        events.push_back(event(s));
    }
    const Replay r = replay(events);
    const auto succeeded_at = std::find(GetParam().begin(), GetParam().end(), "Succeeded");
    const auto failed_at = std::find(GetParam().begin(), GetParam().end(), "Failed");
    const bool succeeded_first = succeeded_at < failed_at;

    ASSERT_TRUE(r.row.has_value());
    EXPECT_EQ(r.row->status, succeeded_first ? "succeeded" : "failed");
    EXPECT_EQ(r.row->rank, 3);
    EXPECT_EQ(r.row->credited, succeeded_first);
    EXPECT_EQ(r.row->conflict_status, succeeded_first ? "failed" : "succeeded");

    const auto credits = on_topic(r, kTopics.credits);
    if (succeeded_first) {
        ASSERT_EQ(credits.size(), 1U);
        EXPECT_EQ(credits[0].payload, encode_credit_command(event("Succeeded")));
        EXPECT_EQ(credits[0].dedup_key, "credit:production:t-1");
        EXPECT_EQ(credits[0].key, "t-1");
    } else {
        EXPECT_TRUE(credits.empty());
    }
    EXPECT_TRUE(on_topic(r, kTopics.reviews).empty());
    const auto anomalies = on_topic(r, kTopics.anomalies);
    ASSERT_EQ(anomalies.size(), 1U);
    EXPECT_NE(anomalies[0].payload.find("\"kind\":\"conflict\""), std::string::npos);

    // Independent oracle for each outcome: rank against the highest seen so far.
    int highest = 0;
    std::string terminal;
    for (std::size_t i = 0; i < events.size(); ++i) {
        const int rank = common::status_rank(events[i].status);
        Outcome expected = Outcome::kApplied;
        if (rank < highest) {
            expected = Outcome::kStale;
        } else if (rank == 3 && highest == 3) {
            expected = Outcome::kConflict;
        }
        if (rank == 3 && terminal.empty()) {
            terminal = events[i].status_text;
        }
        highest = std::max(highest, rank);
        EXPECT_EQ(r.outcomes[i], expected) << "event " << i << " " << events[i].status_text;
    }
}

// Every event delivered twice in a row, then the whole sequence again (Mesh
// retries): the same unique records, and the credit is still emitted once.
TEST_P(AllFourStatusesInAnyOrder, DuplicatesChangeNothing) {
    std::vector<TransferEvent> once;
    std::vector<TransferEvent> twice;
    for (const std::string& s : GetParam()) {
        once.push_back(event(s));
        twice.push_back(event(s));
        twice.push_back(event(s));
    }
    twice.insert(twice.end(), once.begin(), once.end());
    const Replay a = replay(once);
    const Replay b = replay(twice);
    EXPECT_EQ(on_topic(a, kTopics.credits), on_topic(b, kTopics.credits));
    ASSERT_EQ(a.unique.size(), b.unique.size());
    for (const auto& [key, rec] : a.unique) {
        ASSERT_TRUE(b.unique.contains(key)) << key;
        EXPECT_EQ(b.unique.at(key), rec);
    }
    ASSERT_TRUE(b.row.has_value());
    EXPECT_EQ(b.row->status, a.row->status);
    EXPECT_EQ(b.row->credited, a.row->credited);
    for (std::size_t i = 1; i < 2 * once.size(); i += 2) {
        const Outcome o = b.outcomes[i];
        EXPECT_TRUE(o == Outcome::kDuplicate || o == Outcome::kStale || o == Outcome::kConflict)
            << "second delivery of event " << i / 2 << " was " << to_string(o);
    }
}

INSTANTIATE_TEST_SUITE_P(Permutations, AllFourStatusesInAnyOrder,
                         ::testing::ValuesIn(permutations_of({"Pending", "Processing", "Succeeded",
                                                              "Failed"})),
                         ordering_name);

class SucceededPathInAnyOrder : public ::testing::TestWithParam<Ordering> {};

TEST_P(SucceededPathInAnyOrder, ExactlyOneCreditAndEndsSucceeded) {
    std::vector<TransferEvent> events;
    for (const std::string& s : GetParam()) {
        events.push_back(event(s));
        events.push_back(event(s));
    }
    const Replay r = replay(events);
    ASSERT_EQ(r.records.size(), 1U);
    EXPECT_EQ(r.records[0].topic, kTopics.credits);
    EXPECT_EQ(r.row->status, "succeeded");
    EXPECT_TRUE(r.row->credited);
    EXPECT_EQ(r.row->amount, "250.000000000000000001");
}

INSTANTIATE_TEST_SUITE_P(
    Permutations, SucceededPathInAnyOrder,
    ::testing::ValuesIn(permutations_of({"Pending", "Processing", "Succeeded"})), ordering_name);

class FailedPathInAnyOrder : public ::testing::TestWithParam<Ordering> {};

TEST_P(FailedPathInAnyOrder, EmitsNothingAndEndsFailed) {
    std::vector<TransferEvent> events;
    for (const std::string& s : GetParam()) {
        events.push_back(event(s));
        events.push_back(event(s));
    }
    const Replay r = replay(events);
    EXPECT_TRUE(r.records.empty());
    EXPECT_EQ(r.row->status, "failed");
    EXPECT_FALSE(r.row->credited);
}

INSTANTIATE_TEST_SUITE_P(Permutations, FailedPathInAnyOrder,
                         ::testing::ValuesIn(permutations_of({"Pending", "Processing", "Failed"})),
                         ordering_name);

// ------------------------------------------------------------- fixtures

TEST(StateMachine, CreditCommandFromFixtureCarriesExactAmountTextAndEveryField) {
    const TransferEvent e = parse_fixture("03-succeeded.json");
    const Decision d = decide(std::nullopt, e, Policy{}, kTopics, kNow);
    ASSERT_TRUE(d.credit);
    ASSERT_EQ(d.outbox.size(), 1U);
    const std::string key = "credit:production:4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01";
    const std::string expected =
        "{\"commandId\":\"" + name_uuid(key) + "\",\"idempotencyKey\":\"" + key +
        "\",\"transferId\":\"4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01\",\"environment\":"
        "\"production\",\"userId\":\"user-42\",\"transactionId\":\"order-88213\",\"token\":"
        "\"USDC\",\"chain\":\"Ethereum\",\"amount\":\"250.000000000000000001\","
        "\"destinationAddress\":\"0x9f2b6A1c3d4E5F60718293A4B5c6d7e8f9012345\",\"txHash\":"
        "\"0x5c1e0f2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e\","
        "\"sourceAccountProvider\":\"Coinbase\",\"eventId\":"
        "\"7d3e5f10-1111-4a2b-9c3d-000000000003\",\"occurredAt\":\"2025-11-28T08:04:59.000Z\"}";
    EXPECT_EQ(d.outbox[0].payload, expected);
    EXPECT_EQ(d.outbox[0].topic, "ledger.credit-commands");
    EXPECT_EQ(d.outbox[0].key, "4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01");
    EXPECT_EQ(d.outbox[0].dedup_key, key);
}

TEST(StateMachine, FixtureLifeWithMeshRetryCreditsOnce) {
    const Replay r =
        replay({parse_fixture("01-pending.json"), parse_fixture("02-processing.json"),
                parse_fixture("03-succeeded.json"), parse_fixture("04-succeeded-retry.json")});
    EXPECT_EQ(r.outcomes, (std::vector<Outcome>{Outcome::kApplied, Outcome::kApplied,
                                                Outcome::kApplied, Outcome::kDuplicate}));
    ASSERT_EQ(r.records.size(), 1U);
    EXPECT_NE(r.records[0].payload.find("\"amount\":\"250.000000000000000001\""),
              std::string::npos);
}

TEST(StateMachine, FailedFixtureEmitsNothing) {
    const Decision d =
        decide(std::nullopt, parse_fixture("05-failed-other-transfer.json"), {}, kTopics, kNow);
    EXPECT_EQ(d.outcome, Outcome::kApplied);
    EXPECT_TRUE(d.outbox.empty());
    EXPECT_FALSE(d.credit);
    ASSERT_TRUE(d.row);
    EXPECT_EQ(d.row->status, "failed");
}

TEST(StateMachine, CamelCaseFixtureCreditsItsAmount) {
    const Decision d =
        decide(std::nullopt, parse_fixture("06-camelcase-succeeded.json"), {}, kTopics, kNow);
    ASSERT_TRUE(d.credit);
    EXPECT_NE(d.outbox[0].payload.find("\"amount\":\"10.49\""), std::string::npos);
    EXPECT_NE(d.outbox[0].payload.find("\"chain\":\"Solana\""), std::string::npos);
}

TEST(StateMachine, EnvironmentHeaderNamesTheCreditIdentity) {
    const TransferEvent e = parse_fixture("03-succeeded.json", "sandbox");
    const Decision d = decide(std::nullopt, e, {}, kTopics, kNow);
    ASSERT_EQ(d.outbox.size(), 1U);
    EXPECT_EQ(d.outbox[0].dedup_key, "credit:sandbox:4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01");
    EXPECT_NE(d.outbox[0].payload.find("\"environment\":\"sandbox\""), std::string::npos);
    EXPECT_EQ(d.row->environment, "sandbox");
}

// ------------------------------------------------------------- unknown statuses

TEST(StateMachine, UnknownStatusIsKeptOnTheRowAndNeverCredits) {
    TransferEvent refund = event("RefundPending");
    ASSERT_EQ(refund.status, TransferStatus::kUnknown);
    refund.destination_amount = "5";
    const Decision d = decide(std::nullopt, refund, {}, kTopics, kNow);
    EXPECT_EQ(d.outcome, Outcome::kUnknownStatus);
    EXPECT_TRUE(d.outbox.empty());
    ASSERT_TRUE(d.row);
    EXPECT_EQ(d.row->rank, 0);
    EXPECT_EQ(d.row->status, "");
    EXPECT_EQ(d.row->last_unknown_status, "RefundPending");
    EXPECT_FALSE(d.row->credited);

    // A known status after it still applies normally.
    const Decision next = decide(d.row, event("Succeeded"), {}, kTopics, kNow + 1);
    EXPECT_EQ(next.outcome, Outcome::kApplied);
    EXPECT_TRUE(next.credit);
    EXPECT_EQ(next.row->last_unknown_status, "RefundPending");
}

TEST(StateMachine, UnknownStatusAfterSucceededDoesNotMoveTheTransfer) {
    const Replay r = replay({event("Succeeded"), event("RefundSucceeded"), event("Succeeded")});
    EXPECT_EQ(r.outcomes, (std::vector<Outcome>{Outcome::kApplied, Outcome::kUnknownStatus,
                                                Outcome::kDuplicate}));
    EXPECT_EQ(r.row->status, "succeeded");
    EXPECT_EQ(r.row->last_unknown_status, "RefundSucceeded");
    EXPECT_EQ(on_topic(r, kTopics.credits).size(), 1U);  // plus its anomaly and review (below)
    EXPECT_EQ(r.records.size(), 3U);
}

TEST(StateMachine, StatusesCompareCaseInsensitively) {
    const Replay r = replay({event("SUCCEEDED"), event("succeeded"), event("Succeeded")});
    EXPECT_EQ(r.outcomes,
              (std::vector<Outcome>{Outcome::kApplied, Outcome::kDuplicate, Outcome::kDuplicate}));
    EXPECT_EQ(r.records.size(), 1U);
}

// ------------------------------------------------------------- policy

Policy assets(std::string_view list) {
    Policy p;
    parse_allowed_assets(p, "--allowed-assets", list);
    return p;
}

TEST(Policy, AllowedAssetPairIsCreditedCaseInsensitively) {
    const Decision d = decide(std::nullopt, event("Succeeded"),
                              assets("usdc:ETHEREUM, ETH:Ethereum"), kTopics, kNow);
    EXPECT_TRUE(d.credit);
    EXPECT_EQ(d.outbox.at(0).topic, kTopics.credits);
}

TEST(Policy, SameTokenOnAnotherChainGoesToReview) {
    const Decision d =
        decide(std::nullopt, event("Succeeded"), assets("USDC:Solana"), kTopics, kNow);
    EXPECT_FALSE(d.credit);
    EXPECT_EQ(d.review_reason, kReasonAssetNotAllowed);
    ASSERT_EQ(d.outbox.size(), 1U);
    EXPECT_EQ(d.outbox[0].topic, "ledger.credit-review");
    EXPECT_EQ(d.outbox[0].dedup_key, "review:production:t-1");
    EXPECT_NE(d.outbox[0].payload.find("\"reason\":\"asset_not_allowed\""), std::string::npos);
    EXPECT_NE(d.outbox[0].payload.find("\"amount\":\"250.000000000000000001\""), std::string::npos);
    EXPECT_FALSE(d.row->credited);
    EXPECT_EQ(d.row->review_reason, "asset_not_allowed");
    EXPECT_EQ(d.row->status, "succeeded");
}

TEST(Policy, MissingTokenIsAnIncompleteCreditEvenWithAnAssetList) {
    TransferEvent e = event("Succeeded");
    e.token.reset();
    const Decision d = decide(std::nullopt, e, assets("USDC:Ethereum"), kTopics, kNow);
    EXPECT_EQ(d.review_reason, kReasonAssetMissing);
}

// ------------------------------------------------------------- complete credits

// Under the default policy (no asset list, no destination list) every field
// the ledger books with must be there: absent, null (nullopt) or empty each
// go to review with a reason naming the field, and nothing is credited.
TEST(CompleteCredit, EachMissingFieldGoesToReviewNamingIt) {
    struct Case {
        std::optional<std::string> TransferEvent::*field;
        std::string_view reason;
    };
    const std::array<Case, 5> cases{
        {{&TransferEvent::user_id, kReasonUserMissing},
         {&TransferEvent::token, kReasonAssetMissing},
         {&TransferEvent::chain, kReasonChainMissing},
         {&TransferEvent::destination_amount, kReasonAmountMissing},
         {&TransferEvent::destination_address, kReasonDestinationMissing}}};
    for (const Case& c : cases) {
        for (const bool empty : {false, true}) {
            TransferEvent e = event("Succeeded");
            if (empty) {
                e.*(c.field) = "";
            } else {
                (e.*(c.field)).reset();
            }
            const Decision d = decide(std::nullopt, e, Policy{}, kTopics, kNow);
            EXPECT_FALSE(d.credit) << c.reason;
            EXPECT_EQ(d.review_reason, c.reason) << "empty=" << empty;
            ASSERT_EQ(d.outbox.size(), 1U) << c.reason;
            EXPECT_EQ(d.outbox[0].topic, kTopics.reviews);
            EXPECT_NE(d.outbox[0].payload.find("\"reason\":\"" + std::string(c.reason) + "\""),
                      std::string::npos)
                << d.outbox[0].payload;
            ASSERT_TRUE(d.row);
            EXPECT_EQ(d.row->review_reason, c.reason);
            EXPECT_FALSE(d.row->credited);
            EXPECT_EQ(d.row->status, "succeeded");
        }
    }
}

TEST(CompleteCredit, MalformedFieldsGoToReviewNamingThem) {
    struct Case {
        std::optional<std::string> TransferEvent::*field;
        std::string value;
        std::string_view reason;
    };
    const std::vector<Case> cases{
        {&TransferEvent::user_id, " user-1", kReasonUserMalformed},
        {&TransferEvent::user_id, std::string("user\0001", 6), kReasonUserMalformed},
        {&TransferEvent::token, "USDC ", kReasonAssetMalformed},
        {&TransferEvent::token, "US\nDC", kReasonAssetMalformed},
        {&TransferEvent::chain, "\xff\xfe", kReasonChainMalformed},
        {&TransferEvent::destination_address, std::string(300, 'a'), kReasonDestinationMalformed},
        {&TransferEvent::destination_address, "\t0xabc", kReasonDestinationMalformed},
        {&TransferEvent::destination_amount, "1e3", kReasonAmountMalformed},
        {&TransferEvent::destination_amount, "2.5E-1", kReasonAmountMalformed},
        {&TransferEvent::destination_amount, "0e10", kReasonAmountMalformed},
        {&TransferEvent::destination_amount, "12,5", kReasonAmountMalformed},
    };
    for (const Case& c : cases) {
        TransferEvent e = event("Succeeded");
        e.*(c.field) = c.value;
        const Decision d = decide(std::nullopt, e, Policy{}, kTopics, kNow);
        EXPECT_FALSE(d.credit) << c.reason;
        EXPECT_EQ(d.review_reason, c.reason) << "value " << c.value;
    }
}

TEST(CompleteCredit, FirstIncompleteFieldIsNamedBeforeAnyPolicyReason) {
    TransferEvent e = event("Succeeded");
    e.user_id.reset();
    e.destination_address.reset();
    e.token = "DOGE";
    EXPECT_EQ(credit_field_reason(e), kReasonUserMissing);
    EXPECT_EQ(decide(std::nullopt, e, assets("USDC:Ethereum"), kTopics, kNow).review_reason,
              kReasonUserMissing);
    EXPECT_EQ(credit_field_reason(event("Succeeded")), std::nullopt);
}

// Earlier events of the same transfer never complete a later succeeded one:
// a pending that carried every field does not turn an incomplete succeeded
// into a credit (the outcome would otherwise depend on delivery order).
TEST(CompleteCredit, FieldsFromEarlierEventsDoNotCompleteASucceededOne) {
    TransferEvent incomplete = event("Succeeded");
    incomplete.destination_address.reset();
    const Replay r = replay({event("Pending"), event("Processing"), incomplete});
    EXPECT_TRUE(on_topic(r, kTopics.credits).empty());
    ASSERT_EQ(on_topic(r, kTopics.reviews).size(), 1U);
    EXPECT_EQ(r.row->review_reason, kReasonDestinationMissing);
}

// ------------------------------------------------- a second succeeded delivery

TEST(SecondSucceeded, DisagreeingAmountIsAnAnomalyWithBothValuesAndTheCreditStands) {
    TransferEvent second = event("Succeeded");
    second.event_id = "ev-Succeeded-2";
    second.destination_amount = "251";
    second.destination_address = "0xdef";
    const Replay r = replay({event("Succeeded"), second});
    EXPECT_EQ(r.outcomes, (std::vector<Outcome>{Outcome::kApplied, Outcome::kDuplicate}));
    const auto credits = on_topic(r, kTopics.credits);
    ASSERT_EQ(credits.size(), 1U);
    EXPECT_EQ(credits[0].payload, encode_credit_command(event("Succeeded")));
    EXPECT_EQ(r.row->amount, "250.000000000000000001");
    EXPECT_EQ(r.row->destination_address, "0xabc");
    EXPECT_EQ(r.row->credit_event_id, "ev-Succeeded");

    const auto anomalies = on_topic(r, kTopics.anomalies);
    ASSERT_EQ(anomalies.size(), 1U);
    const std::string& a = anomalies[0].payload;
    EXPECT_NE(a.find("\"kind\":\"succeeded_fields_disagree\""), std::string::npos) << a;
    EXPECT_NE(a.find(R"({"field":"amount","first":"250.000000000000000001","later":"251"})"),
              std::string::npos)
        << a;
    EXPECT_NE(a.find(R"({"field":"destinationAddress","first":"0xabc","later":"0xdef"})"),
              std::string::npos)
        << a;
    EXPECT_NE(a.find(R"("firstEventId":"ev-Succeeded","eventId":"ev-Succeeded-2")"),
              std::string::npos)
        << a;
    EXPECT_TRUE(on_topic(r, kTopics.reviews).empty());

    const Decision d = decide(r.row, second, Policy{}, kTopics, kNow + 10);
    ASSERT_TRUE(d.anomaly);
    EXPECT_EQ(d.anomaly->kind, kAnomalySucceededFieldsDisagree);
    EXPECT_EQ(d.anomaly->transfer_id, "t-1");
    EXPECT_FALSE(d.credit);
    EXPECT_FALSE(d.row);  // the first decision stands: the row is not touched
}

TEST(SecondSucceeded, EachCreditFieldIsCompared) {
    const std::array<std::optional<std::string> TransferEvent::*, 5> fields{
        &TransferEvent::user_id, &TransferEvent::token, &TransferEvent::chain,
        &TransferEvent::destination_amount, &TransferEvent::destination_address};
    for (const auto field : fields) {
        TransferEvent second = event("Succeeded");
        second.*field = "other";
        const Replay r = replay({event("Succeeded"), second});
        EXPECT_EQ(on_topic(r, kTopics.anomalies).size(), 1U);
        EXPECT_EQ(on_topic(r, kTopics.credits).size(), 1U);
    }
}

TEST(SecondSucceeded, RetriesOfTheSameDisagreementAreOneAnomalyAndAgreementIsNone) {
    TransferEvent second = event("Succeeded");
    second.destination_amount = "251";
    TransferEvent third = second;
    third.destination_amount = "252";  // the same EventId saying something else again
    TransferEvent fewer = event("Succeeded");
    fewer.user_id.reset();  // carries less: not a contradiction
    const Replay r = replay({event("Succeeded"), event("Succeeded"), fewer, second, second, third});
    EXPECT_EQ(on_topic(r, kTopics.anomalies).size(), 3U);  // emitted per delivery
    EXPECT_EQ(r.unique.size(), 3U);                        // credit + 2 distinct anomalies
}

TEST(SecondSucceeded, AnAmountArrivingAfterAReviewUpdatesTheReviewAndCreditsNothing) {
    TransferEvent first = event("Succeeded");
    first.destination_amount.reset();
    TransferEvent later = event("Succeeded");
    later.event_id = "ev-Succeeded-2";
    const Replay r = replay({first, later, later});
    EXPECT_TRUE(on_topic(r, kTopics.credits).empty());
    EXPECT_FALSE(r.row->credited);
    EXPECT_EQ(r.row->review_reason, kReasonAmountMissing);
    EXPECT_EQ(r.row->amount, "");
    EXPECT_TRUE(on_topic(r, kTopics.anomalies).empty());  // filled in, not contradicted

    const auto reviews = on_topic(r, kTopics.reviews);
    ASSERT_EQ(reviews.size(), 3U);
    EXPECT_EQ(reviews[0].dedup_key, "review:production:t-1");
    EXPECT_EQ(reviews[1].dedup_key, reviews[2].dedup_key);  // Mesh's retry: one update
    EXPECT_EQ(r.unique.size(), 2U);
    const std::string& u = reviews[1].payload;
    EXPECT_TRUE(reviews[1].dedup_key.starts_with("review-update:production:t-1:"));
    EXPECT_NE(u.find(R"("reason":"review_update")"), std::string::npos) << u;
    EXPECT_NE(u.find(R"("amount":"250.000000000000000001")"), std::string::npos) << u;
    EXPECT_NE(u.find(R"("updateOf":"review:production:t-1","firstReason":"amount_missing")"),
              std::string::npos)
        << u;
    EXPECT_NE(u.find(R"("eventReason":null)"), std::string::npos) << u;  // it alone would credit
    EXPECT_NE(u.find(R"({"field":"amount","first":null,"later":"250.000000000000000001"})"),
              std::string::npos)
        << u;
    const Decision d = decide(r.row, later, Policy{}, kTopics, kNow + 10);
    EXPECT_EQ(d.review_reason, kReasonReviewUpdate);
    EXPECT_FALSE(d.credit);
}

TEST(SecondSucceeded, AnIdenticalRetryOfAReviewedTransferSendsNoUpdate) {
    const Replay r = replay({event("Succeeded"), event("Succeeded")}, assets("ETH:Ethereum"));
    ASSERT_EQ(r.records.size(), 1U);
    EXPECT_EQ(r.records[0].dedup_key, "review:production:t-1");
}

// ------------------------------------------------- statuses beyond the four

TEST(StatusAfterCredit, RefundAfterACreditIsAnAnomalyAndAReviewNeverADebit) {
    TransferEvent refund = event("RefundSucceeded");
    refund.destination_amount = "250.000000000000000001";
    const Replay r = replay({event("Succeeded"), refund, refund, event("RefundPending")});
    EXPECT_EQ(r.outcomes, (std::vector<Outcome>{Outcome::kApplied, Outcome::kUnknownStatus,
                                                Outcome::kUnknownStatus, Outcome::kUnknownStatus}));
    // The credit is untouched: one command, the row still credited with its amount.
    ASSERT_EQ(on_topic(r, kTopics.credits).size(), 1U);
    EXPECT_TRUE(r.row->credited);
    EXPECT_EQ(r.row->status, "succeeded");
    EXPECT_EQ(r.row->amount, "250.000000000000000001");
    EXPECT_EQ(r.row->last_unknown_status, "RefundPending");

    const auto anomalies = on_topic(r, kTopics.anomalies);
    ASSERT_EQ(anomalies.size(), 3U);
    EXPECT_NE(anomalies[0].payload.find(R"("kind":"refund_after_credit")"), std::string::npos);
    EXPECT_NE(anomalies[0].payload.find(R"("eventStatus":"RefundSucceeded")"), std::string::npos);
    EXPECT_NE(anomalies[0].payload.find(R"("creditedAmount":"250.000000000000000001")"),
              std::string::npos);
    const auto reviews = on_topic(r, kTopics.reviews);
    ASSERT_EQ(reviews.size(), 3U);
    EXPECT_NE(reviews[0].payload.find(R"("reason":"refund_after_credit")"), std::string::npos);
    // Mesh's retry of RefundSucceeded (same EventId) is one anomaly and one review;
    // RefundPending (another EventId) is one more of each.
    EXPECT_EQ(r.unique.size(), 5U);
    for (const auto& [key, rec] : r.unique) {
        EXPECT_EQ(rec.payload.find("debit"), std::string::npos) << rec.payload;
    }

    const Decision d = decide(r.row, refund, Policy{}, kTopics, kNow + 10);
    ASSERT_TRUE(d.anomaly);
    EXPECT_EQ(d.anomaly->kind, kAnomalyRefundAfterCredit);
    EXPECT_EQ(d.review_reason, kReasonRefundAfterCredit);
    EXPECT_FALSE(d.credit);
}

// The review after a credit is keyed under the transfer's review key (one
// helper spells every review key), one per kind and EventId, and carries that
// key as its idempotencyKey; its anomaly twin is keyed the same way.
TEST(StatusAfterCredit, ItsReviewAndAnomalyAreKeyedPerKindAndEventId) {
    const Replay credited = replay({event("Succeeded")});
    const TransferEvent refund = event("RefundSucceeded");
    const Decision d = decide(credited.row, refund, Policy{}, kTopics, kNow + 10);
    const std::string key = "review:production:t-1:refund_after_credit:" + refund.event_id;
    EXPECT_EQ(review_key("production", "t-1", "refund_after_credit:" + refund.event_id), key);
    EXPECT_EQ(review_key("production", "t-1"), "review:production:t-1");
    ASSERT_TRUE(d.anomaly);
    EXPECT_EQ(d.anomaly->dedup_key,
              "anomaly:refund_after_credit:production:t-1:" + refund.event_id);
    bool reviewed = false;
    for (const OutboxRecord& rec : d.outbox) {
        if (rec.topic != kTopics.reviews) continue;
        reviewed = true;
        EXPECT_EQ(rec.dedup_key, key);
        EXPECT_NE(rec.payload.find(R"("idempotencyKey":")" + key + "\""), std::string::npos)
            << rec.payload;
    }
    EXPECT_TRUE(reviewed);
}

TEST(StatusAfterCredit, AnyOtherUnknownStatusAfterACreditIsItsOwnKind) {
    const Replay r = replay({event("Succeeded"), event("Reversed")});
    const auto anomalies = on_topic(r, kTopics.anomalies);
    ASSERT_EQ(anomalies.size(), 1U);
    EXPECT_NE(anomalies[0].payload.find(R"("kind":"unknown_status_after_credit")"),
              std::string::npos);
    EXPECT_EQ(on_topic(r, kTopics.reviews).size(), 1U);
}

TEST(StatusAfterCredit, UnknownStatusesWithoutACreditAreOnlyRecorded) {
    const Replay before =
        replay({event("RefundPending"), event("Failed"), event("RefundSucceeded")});
    EXPECT_TRUE(before.records.empty());
    EXPECT_EQ(before.row->last_unknown_status, "RefundSucceeded");
    const Replay reviewed =
        replay({event("Succeeded"), event("RefundSucceeded")}, assets("ETH:Ethereum"));
    EXPECT_EQ(reviewed.records.size(), 1U);  // the first review only: nothing was credited
}

TEST(Policy, EmptyAssetListAllowsEveryPair) {
    TransferEvent e = event("Succeeded");
    e.token = "DOGE";
    e.chain = "Dogechain";
    EXPECT_TRUE(decide(std::nullopt, e, assets(""), kTopics, kNow).credit);
}

TEST(Policy, MissingDestinationAmountGoesToReview) {
    TransferEvent e = event("Succeeded");
    e.destination_amount.reset();
    const Decision d = decide(std::nullopt, e, {}, kTopics, kNow);
    EXPECT_EQ(d.review_reason, kReasonAmountMissing);
    EXPECT_NE(d.outbox.at(0).payload.find("\"amount\":null"), std::string::npos);
}

TEST(Policy, ZeroAndNegativeAmountsGoToReview) {
    for (const char* amount : {"0", "0.000", "-1", "-0.5", "-0"}) {
        TransferEvent e = event("Succeeded");
        e.destination_amount = amount;
        const Decision d = decide(std::nullopt, e, {}, kTopics, kNow);
        EXPECT_EQ(d.review_reason, kReasonAmountNotPositive) << amount;
        EXPECT_FALSE(d.credit) << amount;
    }
}

TEST(Policy, ReviewIsNotRepeatedByDuplicates) {
    const Policy p = assets("ETH:Ethereum");
    const Replay r = replay({event("Succeeded"), event("Succeeded"), event("Pending")}, p);
    ASSERT_EQ(r.records.size(), 1U);
    EXPECT_EQ(r.records[0].topic, kTopics.reviews);
}

std::filesystem::path write_temp(const std::string& name, const std::string& text) {
    const auto path =
        std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
    std::ofstream(path) << text;
    return path;
}

TEST(Policy, DestinationListIsPerEnvironment) {
    const auto path = write_temp("destinations",
                                 "# allowed deposit addresses\n"
                                 "production 0xabc   # hot wallet\n"
                                 "\n"
                                 "sandbox 0xsandbox\n");
    Policy p;
    load_destination_file(p, "--destination-addresses-file", path.string());
    std::filesystem::remove(path);

    EXPECT_TRUE(decide(std::nullopt, event("Succeeded"), p, kTopics, kNow).credit);

    TransferEvent other = event("Succeeded");
    other.destination_address = "0xABC";  // exact match: Solana addresses are case-sensitive
    EXPECT_EQ(decide(std::nullopt, other, p, kTopics, kNow).review_reason,
              kReasonDestinationNotAllowed);

    TransferEvent sandbox = event("Succeeded");
    sandbox.environment = "sandbox";  // 0xabc is production's, not sandbox's
    EXPECT_EQ(decide(std::nullopt, sandbox, p, kTopics, kNow).review_reason,
              kReasonDestinationNotAllowed);

    TransferEvent staging = event("Succeeded");
    staging.environment = "staging";  // no entries at all: nothing is credited
    EXPECT_EQ(decide(std::nullopt, staging, p, kTopics, kNow).review_reason,
              kReasonDestinationNotAllowed);
}

TEST(Policy, BadAssetListNamesTheSetting) {
    for (const char* bad : {"USDC", "USDC:", ":Ethereum", "USDC:Ethereum:x"}) {
        Policy p;
        try {
            parse_allowed_assets(p, "--allowed-assets (CONSUMER_ALLOWED_ASSETS)", bad);
            ADD_FAILURE() << bad << " was accepted";
        } catch (const common::ConfigError& e) {
            EXPECT_NE(std::string(e.what()).find("--allowed-assets"), std::string::npos);
        }
    }
}

TEST(Policy, BadDestinationFileNamesTheLine) {
    const auto path = write_temp("bad-destinations", "production 0xabc\nproduction\n");
    Policy p;
    try {
        load_destination_file(p, "--destination-addresses-file", path.string());
        ADD_FAILURE() << "accepted";
    } catch (const common::ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
    }
    std::filesystem::remove(path);
    EXPECT_THROW(load_destination_file(p, "--destination-addresses-file", "/nonexistent/x"),
                 common::ConfigError);
}

// ------------------------------------------------------------- encoders

TEST(Encoding, StringsAreJsonEscaped) {
    TransferEvent e = event("Succeeded", "t\"1\\\n");
    e.user_id = "a\"b";
    const std::string json = encode_credit_command(e);
    EXPECT_NE(json.find("\"transferId\":\"t\\\"1\\\\\\n\""), std::string::npos) << json;
    EXPECT_NE(json.find("\"userId\":\"a\\\"b\""), std::string::npos) << json;
}

TEST(Encoding, CommandIdIsDeterministicAndUuidShaped) {
    const std::string a = name_uuid("credit:production:t-1");
    EXPECT_EQ(a, name_uuid("credit:production:t-1"));
    EXPECT_NE(a, name_uuid("credit:sandbox:t-1"));
    ASSERT_EQ(a.size(), 36U);
    EXPECT_EQ(a[14], '8');  // version nibble
    EXPECT_TRUE(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b');
}

TEST(Encoding, OccurredAtIsIsoUtcWithMilliseconds) {
    EXPECT_EQ(iso8601_utc_ms(1764317099000), "2025-11-28T08:04:59.000Z");
    EXPECT_EQ(iso8601_utc_ms(1764317099123), "2025-11-28T08:04:59.123Z");
    EXPECT_EQ(iso8601_utc_ms(0), "1970-01-01T00:00:00.000Z");
}

// occurredAt reads each timestamp in seconds or milliseconds by its magnitude
// (common::unix_ms_by_magnitude): SentTimestamp in milliseconds used to be
// multiplied by 1000 again (year 57,900), and a Timestamp in seconds read as
// milliseconds (1970).
TEST(Encoding, OccurredAtDecidesEachTimestampsUnitByMagnitude) {
    TransferEvent e = event("Succeeded");
    e.timestamp_ms.reset();
    e.sent_timestamp = 1764317100123;
    EXPECT_NE(encode_credit_command(e).find("\"occurredAt\":\"2025-11-28T08:05:00.123Z\""),
              std::string::npos)
        << encode_credit_command(e);
    e.timestamp_ms = 1764317099;
    EXPECT_NE(encode_credit_command(e).find("\"occurredAt\":\"2025-11-28T08:04:59.000Z\""),
              std::string::npos)
        << encode_credit_command(e);
    // Not a time: the next one is used, then null; never an overflow.
    e.timestamp_ms = std::numeric_limits<std::int64_t>::max();
    EXPECT_NE(encode_credit_command(e).find("\"occurredAt\":\"2025-11-28T08:05:00.123Z\""),
              std::string::npos);
    e.sent_timestamp = std::numeric_limits<std::int64_t>::min();
    EXPECT_NE(encode_credit_command(e).find("\"occurredAt\":null"), std::string::npos)
        << encode_credit_command(e);
}

TEST(Encoding, OccurredAtFallsBackToSentTimestampThenNull) {
    TransferEvent e = event("Succeeded");
    e.timestamp_ms.reset();
    e.sent_timestamp = 1764317100;
    EXPECT_NE(encode_credit_command(e).find("\"occurredAt\":\"2025-11-28T08:05:00.000Z\""),
              std::string::npos);
    e.sent_timestamp.reset();
    EXPECT_NE(encode_credit_command(e).find("\"occurredAt\":null"), std::string::npos);
}

TEST(Encoding, UnparseableAnomalyCarriesRawBytesInBase64) {
    const std::string raw("{\"Id\":\"x\",\xff\x00", 12);
    const AnomalyRecord a =
        unparseable_anomaly("", "mesh.transfer-events", 2, 41, "invalid_json", raw);
    EXPECT_EQ(a.kind, "unparseable");
    EXPECT_EQ(a.environment, "production");
    EXPECT_EQ(a.dedup_key, "anomaly:unparseable:mesh.transfer-events:2:41");
    EXPECT_NE(a.detail.find("\"rawBase64\":\"" + base64_encode(raw) + "\""), std::string::npos);
    EXPECT_EQ(base64_encode("Man"), "TWFu");
    EXPECT_EQ(base64_encode("Ma"), "TWE=");
    EXPECT_EQ(base64_encode("M"), "TQ==");
    EXPECT_EQ(base64_encode(""), "");
}

}  // namespace
}  // namespace meshhook::consumer
