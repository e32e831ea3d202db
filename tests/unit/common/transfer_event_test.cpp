#include "common/transfer_event.hpp"

#include <gtest/gtest.h>

#include <limits>

#include "tests/support/process.hpp"

namespace meshhook::common {
namespace {

ParseResult parse(TransferEventParser& p, const std::string& body) {
    return p.parse(body);
}

TEST(TransferEvent, ParsesPendingFixtureWithEveryField) {
    TransferEventParser parser;
    const auto body = testing::fixture("01-pending.json");
    const auto r = parser.parse(body);
    ASSERT_TRUE(r.ok()) << r.error.message();
    const auto& e = r.event;
    EXPECT_EQ(e.id.value, "0b1f6c9e-2d4a-4e7b-8c3f-1a2b3c4d5e61");
    EXPECT_EQ(e.event_id.value, "7d3e5f10-1111-4a2b-9c3d-000000000001");
    EXPECT_EQ(e.transfer_id.value, "4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01");
    EXPECT_EQ(e.transfer_status.value, "Pending");
    EXPECT_EQ(e.status, TransferStatus::kPending);
    EXPECT_EQ(e.sent_timestamp_value, 1764316800);
    EXPECT_EQ(e.sent_timestamp.value, "1764316800");
    EXPECT_EQ(e.timestamp_value, 1764316799000);
    EXPECT_EQ(e.user_id.value, "user-42");
    EXPECT_EQ(e.transaction_id.value, "order-88213");
    EXPECT_TRUE(e.tx_hash.is_null());
    EXPECT_EQ(e.chain.value, "Ethereum");
    EXPECT_EQ(e.token.value, "USDC");
    EXPECT_EQ(e.destination_address.value, "0x9f2b6A1c3d4E5F60718293A4B5c6d7e8f9012345");
    EXPECT_EQ(e.source_account_provider.value, "Coinbase");
    EXPECT_EQ(e.source_amount.value, "250.75");
    EXPECT_TRUE(e.destination_amount.is_null());
    EXPECT_TRUE(e.refund_address.is_null());
}

TEST(TransferEvent, KeepsTheTwentyOneDigitAmountExactly) {
    TransferEventParser parser;
    const auto body = testing::fixture("03-succeeded.json");
    const auto r = parser.parse(body);
    ASSERT_TRUE(r.ok()) << r.error.message();
    EXPECT_EQ(r.event.status, TransferStatus::kSucceeded);
    EXPECT_EQ(r.event.destination_amount.value, "250.000000000000000001");
    EXPECT_EQ(r.event.tx_hash.value,
              "0x5c1e0f2a9b8d7c6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e");
}

TEST(TransferEvent, RetryHasSameEventIdAndNewDeliveryId) {
    TransferEventParser parser;
    const auto a_body = testing::fixture("03-succeeded.json");
    const auto b_body = testing::fixture("04-succeeded-retry.json");
    const auto a = parser.parse(a_body);
    ASSERT_TRUE(a.ok());
    const std::string a_event(a.event.event_id.value);
    const std::string a_id(a.event.id.value);
    const auto b = parser.parse(b_body);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b.event.event_id.value, a_event);
    EXPECT_NE(b.event.id.value, a_id);
}

TEST(TransferEvent, ParsesEveryUsableFixture) {
    TransferEventParser parser;
    for (const char* name :
         {"01-pending.json", "02-processing.json", "03-succeeded.json", "04-succeeded-retry.json",
          "05-failed-other-transfer.json", "06-camelcase-succeeded.json"}) {
        const auto body = testing::fixture(name);
        EXPECT_TRUE(parser.parse(body).ok()) << name;
    }
    const auto failed = testing::fixture("05-failed-other-transfer.json");
    const auto r = parser.parse(failed);
    EXPECT_EQ(r.event.status, TransferStatus::kFailed);
    EXPECT_EQ(r.event.source_amount.value, "40");
}

TEST(TransferEvent, AcceptsCamelCaseNamesAndLowerCaseStatus) {
    TransferEventParser parser;
    const auto body = testing::fixture("06-camelcase-succeeded.json");
    const auto r = parser.parse(body);
    ASSERT_TRUE(r.ok()) << r.error.message();
    EXPECT_EQ(r.event.status, TransferStatus::kSucceeded);
    EXPECT_EQ(r.event.transfer_id.value, "5e5e5e5e-0000-4000-8000-00000000aaaa");
    EXPECT_EQ(r.event.destination_amount.value, "10.49");
    EXPECT_EQ(r.event.chain.value, "Solana");
}

TEST(TransferEvent, TruncatedFixtureIsInvalidJson) {
    TransferEventParser parser;
    const auto body = testing::fixture("90-malformed-truncated.json");
    const auto r = parser.parse(body);
    EXPECT_EQ(r.error.code, ParseErrorCode::kInvalidJson);
    EXPECT_EQ(to_string(r.error.code), "invalid_json");
    EXPECT_NE(r.error.message().find("not valid JSON"), std::string::npos);
}

TEST(TransferEvent, MissingTransferIdFixtureSaysSo) {
    TransferEventParser parser;
    const auto body = testing::fixture("91-missing-transfer-id.json");
    const auto r = parser.parse(body);
    EXPECT_EQ(r.error.code, ParseErrorCode::kMissingTransferId);
    EXPECT_EQ(r.error.message(), "TransferId is missing");
}

TEST(TransferEvent, StatusesAreCaseInsensitiveAndUnknownTextIsKept) {
    EXPECT_EQ(parse_status("PENDING"), TransferStatus::kPending);
    EXPECT_EQ(parse_status("Processing"), TransferStatus::kProcessing);
    EXPECT_EQ(parse_status("sUcCeEdEd"), TransferStatus::kSucceeded);
    EXPECT_EQ(parse_status("failed"), TransferStatus::kFailed);
    EXPECT_EQ(parse_status("RefundPending"), TransferStatus::kUnknown);
    EXPECT_EQ(parse_status(""), TransferStatus::kUnknown);
    TransferEventParser parser;
    const auto r = parse(parser, R"({"TransferId":"t1","TransferStatus":"RefundSucceeded"})");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.event.status, TransferStatus::kUnknown);
    EXPECT_EQ(r.event.transfer_status.value, "RefundSucceeded");
    EXPECT_LT(status_rank(TransferStatus::kPending), status_rank(TransferStatus::kProcessing));
    EXPECT_LT(status_rank(TransferStatus::kProcessing), status_rank(TransferStatus::kSucceeded));
    EXPECT_EQ(status_rank(TransferStatus::kSucceeded), status_rank(TransferStatus::kFailed));
    EXPECT_EQ(status_rank(TransferStatus::kUnknown), 0);
}

TEST(TransferEvent, DistinguishesNullFromAbsent) {
    TransferEventParser parser;
    const auto r = parse(parser, R"({"TransferId":"t1","TransferStatus":"pending","TxHash":null})");
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r.event.tx_hash.is_null());
    EXPECT_TRUE(r.event.refund_address.is_absent());
    EXPECT_TRUE(r.event.destination_amount.is_absent());
}

TEST(TransferEvent, WrongTypesNameTheField) {
    TransferEventParser parser;
    struct Case {
        const char* body;
        const char* field;
    };
    for (const auto& c :
         {Case{R"({"TransferId":42,"TransferStatus":"pending"})", "TransferId"},
          Case{R"({"TransferId":"t","TransferStatus":true})", "TransferStatus"},
          Case{R"({"TransferId":"t","TransferStatus":"x","DestinationAmount":{}})",
               "DestinationAmount"},
          Case{R"({"TransferId":"t","TransferStatus":"x","DestinationAmount":"ten"})",
               "DestinationAmount"},
          Case{R"({"TransferId":"t","TransferStatus":"x","SentTimestamp":"now"})", "SentTimestamp"},
          Case{R"({"TransferId":"t","TransferStatus":"x","Timestamp":1.5})", "Timestamp"}}) {
        const auto r = parse(parser, c.body);
        EXPECT_EQ(r.error.code, ParseErrorCode::kWrongType) << c.body;
        EXPECT_EQ(r.error.field, c.field) << c.body;
        EXPECT_NE(r.error.message().find(c.field), std::string::npos);
    }
}

TEST(TransferEvent, RejectsMalformedInputWithSpecificErrors) {
    TransferEventParser parser;
    EXPECT_EQ(parse(parser, "").error.code, ParseErrorCode::kInvalidJson);
    EXPECT_EQ(parse(parser, "{").error.code, ParseErrorCode::kInvalidJson);
    EXPECT_EQ(parse(parser, R"({"TransferId":"t","TransferStatus":"x"} trailing)").error.code,
              ParseErrorCode::kInvalidJson);
    EXPECT_EQ(parse(parser, R"({"TransferId":"t","TransferStatus":"x","Other":[1,2)").error.code,
              ParseErrorCode::kInvalidJson);
    EXPECT_EQ(parse(parser, R"({"TransferId":"t","TransferStatus":"x","Other":tru})").error.code,
              ParseErrorCode::kInvalidJson);
    EXPECT_EQ(parse(parser, "[1,2]").error.code, ParseErrorCode::kNotAnObject);
    EXPECT_EQ(parse(parser, R"("text")").error.code, ParseErrorCode::kNotAnObject);
    EXPECT_EQ(parse(parser, R"({"TransferStatus":"pending"})").error.code,
              ParseErrorCode::kMissingTransferId);
    EXPECT_EQ(parse(parser, R"({"TransferId":null,"TransferStatus":"pending"})").error.code,
              ParseErrorCode::kMissingTransferId);
    EXPECT_EQ(parse(parser, R"({"TransferId":"","TransferStatus":"pending"})").error.code,
              ParseErrorCode::kMissingTransferId);
    EXPECT_EQ(parse(parser, R"({"TransferId":"t"})").error.code, ParseErrorCode::kMissingStatus);
    const auto dup = parse(parser, R"({"TransferId":"a","transferId":"b","TransferStatus":"x"})");
    EXPECT_EQ(dup.error.code, ParseErrorCode::kDuplicateField);
    EXPECT_EQ(dup.error.field, "TransferId");
}

TEST(TransferEvent, SkipsUnknownFieldsIncludingNestedOnes) {
    TransferEventParser parser;
    const auto r =
        parse(parser, R"({"Extra":{"a":[1,{"b":null}],"c":"d"},"TransferId":"t","Flag":false,)"
                      R"("TransferStatus":"failed","N":-1.5e3})");
    ASSERT_TRUE(r.ok()) << r.error.message();
    EXPECT_EQ(r.event.status, TransferStatus::kFailed);
}

TEST(TransferEvent, UnescapesStringsAndKeepsQuotedAmounts) {
    TransferEventParser parser;
    const auto r = parse(parser, R"({"TransferId":"t\u00e9\"x","TransferStatus":"pending",)"
                                 R"("DestinationAmount":"0.000000000000000000000001"})");
    ASSERT_TRUE(r.ok()) << r.error.message();
    EXPECT_EQ(r.event.transfer_id.value, "t\xc3\xa9\"x");
    EXPECT_EQ(r.event.destination_amount.value, "0.000000000000000000000001");
}

TEST(TransferEvent, ParserIsReusableAcrossBodiesOfDifferentSizes) {
    TransferEventParser parser;
    std::string big = R"({"TransferId":"big","TransferStatus":"pending","Pad":")" +
                      std::string(100000, 'x') + R"("})";
    EXPECT_TRUE(parser.parse(big).ok());
    const auto small = parse(parser, R"({"TransferId":"s","TransferStatus":"processing"})");
    ASSERT_TRUE(small.ok());
    EXPECT_EQ(small.event.transfer_id.value, "s");
}

TEST(TransferEvent, PositiveDecimalCheck) {
    EXPECT_TRUE(is_positive_decimal("250.000000000000000001"));
    EXPECT_TRUE(is_positive_decimal("0.1"));
    EXPECT_TRUE(is_positive_decimal("1e-3"));
    EXPECT_FALSE(is_positive_decimal("0"));
    EXPECT_FALSE(is_positive_decimal("0.000"));
    EXPECT_FALSE(is_positive_decimal("-1"));
    EXPECT_FALSE(is_positive_decimal("0e5"));
    EXPECT_FALSE(is_positive_decimal("abc"));
    EXPECT_FALSE(is_positive_decimal(""));
    EXPECT_FALSE(is_positive_decimal("01"));
}

}  // namespace
}  // namespace meshhook::common

namespace meshhook::common {
namespace {

TEST(TransferEvent, RefusesNestingDeeperThanDownstreamReadersAccept) {
    TransferEventParser parser;
    const std::string deep = R"({"TransferId":"t","TransferStatus":"pending","X":)" +
                             std::string(600, '[') + std::string(600, ']') + "}";
    EXPECT_EQ(parser.parse(deep).error.code, ParseErrorCode::kInvalidJson);
    const std::string fine = R"({"TransferId":"t","TransferStatus":"pending","X":)" +
                             std::string(100, '[') + std::string(100, ']') + "}";
    EXPECT_TRUE(parser.parse(fine).ok());
    // Brackets inside strings are text, not nesting.
    const std::string text =
        R"({"TransferId":"t","TransferStatus":"pending","X":")" + std::string(600, '[') + "\"}";
    EXPECT_TRUE(parser.parse(text).ok());
}

// The unit of a Mesh timestamp by its magnitude, for the consumer's
// occurredAt and ingest's replay window alike.
TEST(UnixMsByMagnitude, SecondsBelowTheThresholdMillisecondsFromIt) {
    EXPECT_EQ(unix_ms_by_magnitude(1764316800), 1764316800000);     // Mesh's SentTimestamp
    EXPECT_EQ(unix_ms_by_magnitude(1764316799000), 1764316799000);  // Mesh's Timestamp
    EXPECT_EQ(unix_ms_by_magnitude(0), 0);
    EXPECT_EQ(unix_ms_by_magnitude(1), 1000);
    EXPECT_EQ(unix_ms_by_magnitude(kSecondsBelow - 1), (kSecondsBelow - 1) * 1000);  // year 5138
    EXPECT_EQ(unix_ms_by_magnitude(kSecondsBelow), kSecondsBelow);  // 1973-03-03 in ms
    EXPECT_EQ(unix_ms_by_magnitude(kMaxUnixMs), kMaxUnixMs);
}

TEST(UnixMsByMagnitude, NegativeAndHugeSignedInputIsNotATimeAndNeverOverflows) {
    constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
    constexpr auto kMin = std::numeric_limits<std::int64_t>::min();
    for (const std::int64_t v : {std::int64_t{-1}, std::int64_t{-1764316800}, kMin, kMin + 1,
                                 kMaxUnixMs + 1, kMax / 1000, kMax / 1000 + 1, kMax - 1, kMax}) {
        EXPECT_EQ(unix_ms_by_magnitude(v), std::nullopt) << v;
    }
}

TEST(UnixMsByMagnitude, TheParserKeepsTheExtremesAsSignedValues) {
    TransferEventParser parser;
    const auto r = parser.parse(
        R"({"TransferId":"t","TransferStatus":"pending","SentTimestamp":-9223372036854775808})");
    ASSERT_TRUE(r.ok()) << r.error.message();
    EXPECT_EQ(r.event.sent_timestamp_value, std::numeric_limits<std::int64_t>::min());
    EXPECT_EQ(unix_ms_by_magnitude(r.event.sent_timestamp_value), std::nullopt);
}

TEST(RestampSentTimestamp, ReplacesOnlyTheSentTimestampInItsUnit) {
    const std::chrono::system_clock::time_point now{std::chrono::milliseconds(1'796'000'123'456)};
    const std::string fixture = testing::fixture("03-succeeded.json");
    const std::string restamped = restamp_sent_timestamp(fixture, now);
    std::string expected = fixture;
    const auto at = expected.find("1764317100");  // the fixture's SentTimestamp, in seconds
    ASSERT_NE(at, std::string::npos);
    expected.replace(at, 10, "1796000123");
    EXPECT_EQ(restamped, expected);  // Timestamp (the event's time) and the amounts kept

    EXPECT_EQ(restamp_sent_timestamp(R"({"sentTimestamp" : 1764317100000 ,"Id":"a"})", now),
              R"({"sentTimestamp" : 1796000123456 ,"Id":"a"})");
}

TEST(RestampSentTimestamp, LeavesBodiesWithoutAnIntegerSentTimestampAlone) {
    const std::chrono::system_clock::time_point now{std::chrono::seconds(1'796'000'000)};
    for (const std::string body :
         {R"({"TransferId":"t"})", R"({"SentTimestamp":"1764317100"})",
          R"({"Nested":{"SentTimestamp":1764317100}})", "not json", R"([1764317100])", ""}) {
        EXPECT_EQ(restamp_sent_timestamp(body, now), body) << body;
    }
}

}  // namespace
}  // namespace meshhook::common
