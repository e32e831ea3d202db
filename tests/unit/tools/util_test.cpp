#include "tools/util.hpp"

#include <gtest/gtest.h>

#include "tools/fixtures.hpp"
#include "tools/http_client.hpp"
#include "tools/json_field.hpp"
#include "tools/sender.hpp"

namespace meshhook::tools {
namespace {

TEST(PrettyJson, IndentsAndKeepsNumberAndStringTextExactly) {
    const std::string in =
        R"({"amount":250.000000000000000001,"s":"a,b:{c}\"","n":null,"a":[1,{}],"e":[]})";
    const auto out = pretty_json(in);
    EXPECT_NE(out.find("\"amount\": 250.000000000000000001,\n"), std::string::npos) << out;
    EXPECT_NE(out.find(R"("s": "a,b:{c}\"")"), std::string::npos) << out;
    EXPECT_NE(out.find("\"e\": []"), std::string::npos) << out;
    EXPECT_EQ(out.substr(0, 4), "{\n  ");
}

TEST(PrettyJson, ReturnsNonJsonUnchanged) {
    EXPECT_EQ(pretty_json(R"({"Id":"x","Transf)"), R"({"Id":"x","Transf)");
    EXPECT_EQ(pretty_json("plain text"), "plain text");
}

TEST(Time, ParsesRfc3339AndEpochMilliseconds) {
    EXPECT_EQ(parse_time_ms("1764317100000"), 1764317100000);
    EXPECT_EQ(parse_time_ms("2025-11-28T08:05:00Z"), 1764317100000);
    EXPECT_EQ(parse_time_ms("2025-11-28T08:05:00.25Z"), 1764317100250);
    EXPECT_FALSE(parse_time_ms("yesterday"));
    EXPECT_FALSE(parse_time_ms("2025-11-28T08:05:00+02:00"));
    EXPECT_EQ(format_utc_ms(1764317100250), "2025-11-28T08:05:00.250Z");
}

TEST(Url, ParsesHostPortAndTarget) {
    std::string error;
    auto u = parse_url("http://127.0.0.1:8080/webhooks/mesh", error);
    ASSERT_TRUE(u);
    EXPECT_EQ(u->host, "127.0.0.1");
    EXPECT_EQ(u->port, 8080);
    EXPECT_EQ(u->target, "/webhooks/mesh");
    u = parse_url("http://[::1]:9/x", error);
    ASSERT_TRUE(u);
    EXPECT_EQ(u->host, "::1");
    EXPECT_EQ(u->text(), "http://[::1]:9/x");
    u = parse_url("http://example.com", error);
    ASSERT_TRUE(u);
    EXPECT_EQ(u->port, 80);
    EXPECT_EQ(u->target, "/");
}

TEST(Url, RejectsHttpsAndBadPorts) {
    std::string error;
    EXPECT_FALSE(parse_url("https://example.com/", error));
    EXPECT_NE(error.find("http://"), std::string::npos);
    EXPECT_FALSE(parse_url("http://host:99999/", error));
    EXPECT_FALSE(parse_url("http://:80/", error));
}

TEST(JsonField, ReadsStringsAndExactNumberText) {
    const std::string json = R"({"a":"x\"y","amount":250.000000000000000001 ,"n":null})";
    EXPECT_EQ(json_field(json, "a"), "x\"y");
    EXPECT_EQ(json_field(json, "amount"), "250.000000000000000001");
    EXPECT_EQ(json_field(json, "n"), "null");
    EXPECT_FALSE(json_field(json, "missing"));
    EXPECT_FALSE(json_field("[1]", "a"));
    EXPECT_FALSE(json_field("{\"a\":", "a"));
}

TEST(GroupByTransfer, KeepsOrderWithinATransferAndIsolatesUnparseableBodies) {
    std::vector<Delivery> in;
    for (const auto& f : embedded_fixtures())
        in.push_back({std::string(f.name), std::string(f.body)});
    const auto streams = group_by_transfer(in);
    // 01-04 one transfer, 05 another, 06 its own, 90 and 91 alone each.
    ASSERT_EQ(streams.size(), 5U);
    ASSERT_EQ(streams[0].size(), 4U);
    EXPECT_EQ(streams[0][0].name, "01-pending.json");
    EXPECT_EQ(streams[0][3].name, "04-succeeded-retry.json");
    EXPECT_EQ(streams[3][0].name, "90-malformed-truncated.json");
}

TEST(FirstSecret, TakesTheFirstOfARotationList) {
    EXPECT_EQ(first_secret(" new , old"), "new");
    EXPECT_EQ(first_secret(""), "");
}

}  // namespace
}  // namespace meshhook::tools
