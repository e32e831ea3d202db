#include "common/config.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace meshhook::common {
namespace {

// Variables are unique to this file so tests cannot see each other's or the
// runner's environment.
constexpr const char* kListenEnv = "CFGTEST_LISTEN";
constexpr const char* kLimitEnv = "CFGTEST_MAX_BODY_BYTES";
constexpr const char* kSecretEnv = "CFGTEST_SECRET";

class SettingsTest : public ::testing::Test {
protected:
    void SetUp() override {
        for (const char* name : {kListenEnv, kLimitEnv, kSecretEnv}) {
            ::unsetenv(name);
        }
        settings_
            .add({.flag = "listen",
                  .env = kListenEnv,
                  .default_value = "0.0.0.0:8080",
                  .help = "Address to accept webhooks on."})
            .add({.flag = "max-body-bytes",
                  .env = kLimitEnv,
                  .default_value = "1048576",
                  .help = "Largest request body accepted."})
            .add({.flag = "secret",
                  .env = kSecretEnv,
                  .default_value = "do-not-show-me",
                  .help = "Webhook signing secret.",
                  .secret = true})
            .add({.flag = "verbose",
                  .env = "",
                  .default_value = "",
                  .help = "More output.",
                  .is_switch = true});
    }
    void TearDown() override {
        for (const char* name : {kListenEnv, kLimitEnv, kSecretEnv}) {
            ::unsetenv(name);
        }
    }

    Settings::Outcome parse(std::vector<std::string> args) {
        args.insert(args.begin(), "meshhook-test");
        std::vector<const char*> argv;
        for (const auto& a : args) {
            argv.push_back(a.c_str());
        }
        return settings_.parse(static_cast<int>(argv.size()), argv.data());
    }

    std::string error_of(std::vector<std::string> args) {
        try {
            parse(std::move(args));
        } catch (const ConfigError& e) {
            return e.what();
        }
        return "(no error)";
    }

    Settings settings_{"meshhook-test", "A service under test."};
};

TEST_F(SettingsTest, UsesDefaultWhenNeitherEnvNorFlagGiven) {
    EXPECT_EQ(parse({}), Settings::Outcome::kRun);
    EXPECT_EQ(settings_.get("listen"), "0.0.0.0:8080");
    EXPECT_FALSE(settings_.is_set("listen"));
}

TEST_F(SettingsTest, EnvironmentOverridesDefault) {
    ::setenv(kListenEnv, "127.0.0.1:9000", 1);
    parse({});
    EXPECT_EQ(settings_.get("listen"), "127.0.0.1:9000");
    EXPECT_TRUE(settings_.is_set("listen"));
}

TEST_F(SettingsTest, FlagOverridesEnvironment) {
    ::setenv(kListenEnv, "127.0.0.1:9000", 1);
    parse({"--listen", "127.0.0.1:9001"});
    EXPECT_EQ(settings_.get("listen"), "127.0.0.1:9001");
}

TEST_F(SettingsTest, FlagWithEqualsSignOverridesEnvironment) {
    ::setenv(kLimitEnv, "10", 1);
    parse({"--max-body-bytes=20"});
    EXPECT_EQ(settings_.get("max-body-bytes"), "20");
}

TEST_F(SettingsTest, EqualsFormKeepsFurtherEqualsSignsInValue) {
    parse({"--secret=a=b=c"});
    EXPECT_EQ(settings_.get("secret"), "a=b=c");
}

TEST_F(SettingsTest, EmptyEnvironmentVariableCountsAsUnset) {
    ::setenv(kListenEnv, "", 1);
    parse({});
    EXPECT_EQ(settings_.get("listen"), "0.0.0.0:8080");
    EXPECT_FALSE(settings_.is_set("listen"));
}

TEST_F(SettingsTest, SwitchTakesNoValue) {
    parse({"--verbose", "extra"});
    EXPECT_EQ(settings_.get("verbose"), "true");
    EXPECT_TRUE(settings_.is_set("verbose"));
    EXPECT_EQ(settings_.positional(), std::vector<std::string>{"extra"});
}

TEST_F(SettingsTest, SwitchAcceptsExplicitValue) {
    parse({"--verbose=false"});
    EXPECT_EQ(settings_.get("verbose"), "false");
}

TEST_F(SettingsTest, CollectsPositionalArgumentsInOrder) {
    parse({"one", "--listen", ":1", "two", "--", "--not-a-flag"});
    EXPECT_EQ(settings_.positional(), (std::vector<std::string>{"one", "two", "--not-a-flag"}));
    EXPECT_EQ(settings_.get("listen"), ":1");
}

TEST_F(SettingsTest, UnknownFlagErrorNamesTheFlag) {
    EXPECT_EQ(error_of({"--lisen", "x"}), "unknown flag \"--lisen\" (see --help)");
    EXPECT_EQ(error_of({"--lisen=x"}), "unknown flag \"--lisen\" (see --help)");
}

TEST_F(SettingsTest, SingleDashWordIsRejectedAsUnknownFlag) {
    EXPECT_EQ(error_of({"-listen", "x"}), "unknown flag \"-listen\" (see --help)");
}

TEST_F(SettingsTest, MissingValueErrorNamesTheSetting) {
    EXPECT_EQ(error_of({"--listen"}), "--listen (CFGTEST_LISTEN): missing value");
    EXPECT_EQ(error_of({"--listen", "--verbose"}), "--listen (CFGTEST_LISTEN): missing value");
}

TEST_F(SettingsTest, HelpFlagsRequestHelp) {
    EXPECT_EQ(parse({"--help"}), Settings::Outcome::kHelp);
    EXPECT_EQ(parse({"--listen", ":1", "-h"}), Settings::Outcome::kHelp);
}

TEST_F(SettingsTest, HelpListsEveryFlagVariableAndDefault) {
    const auto help = settings_.help_text();
    EXPECT_NE(help.find("meshhook-test: A service under test."), std::string::npos) << help;
    for (const char* text : {"--listen VALUE", "CFGTEST_LISTEN", "[default: 0.0.0.0:8080]",
                             "Address to accept webhooks on.", "--max-body-bytes VALUE",
                             "CFGTEST_MAX_BODY_BYTES", "[default: 1048576]", "--secret VALUE",
                             "CFGTEST_SECRET", "--verbose\n", "[default: false]", "--help, -h"}) {
        EXPECT_NE(help.find(text), std::string::npos) << "missing " << text << " in\n" << help;
    }
}

TEST_F(SettingsTest, HelpNeverShowsSecretDefault) {
    const auto help = settings_.help_text();
    EXPECT_EQ(help.find("do-not-show-me"), std::string::npos) << help;
    EXPECT_NE(help.find("[secret, no default]"), std::string::npos) << help;
}

TEST_F(SettingsTest, SummaryMasksSecrets) {
    ::setenv(kSecretEnv, "hunter2-very-secret", 1);
    parse({"--listen", "127.0.0.1:1"});
    const auto line = settings_.summary_line();
    EXPECT_EQ(line, "listen=127.0.0.1:1 max-body-bytes=1048576 secret=<set> verbose=\"\"");
    EXPECT_EQ(line.find("hunter2"), std::string::npos);
}

TEST_F(SettingsTest, SummaryQuotesValuesWithSpaces) {
    parse({"--listen", "a b"});
    EXPECT_NE(settings_.summary_line().find("listen=\"a b\""), std::string::npos);
}

TEST_F(SettingsTest, DescribeNamesFlagAndVariable) {
    EXPECT_EQ(settings_.describe("listen"), "--listen (CFGTEST_LISTEN)");
    EXPECT_EQ(settings_.describe("verbose"), "--verbose");
}

TEST_F(SettingsTest, AskingForUndeclaredSettingIsAProgrammingError) {
    EXPECT_THROW(settings_.get("nope"), std::invalid_argument);
    EXPECT_THROW(settings_.add({.flag = "listen", .env = "", .default_value = "", .help = ""}),
                 std::invalid_argument);
}

TEST_F(SettingsTest, TypedErrorFromEnvironmentNamesTheSetting) {
    ::setenv(kLimitEnv, "abc", 1);
    parse({});
    try {
        parse_uint(settings_.describe("max-body-bytes"), settings_.get("max-body-bytes"), 1,
                   16777216);
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_STREQ(e.what(),
                     "--max-body-bytes (CFGTEST_MAX_BODY_BYTES): expected an integer between 1 "
                     "and 16777216, got \"abc\"");
    }
}

std::string parse_uint_error(std::string_view text) {
    try {
        parse_uint("--n (N)", text, 1, 100);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(ParseUint, AcceptsValuesWithinRange) {
    EXPECT_EQ(parse_uint("--n", "1", 1, 100), 1u);
    EXPECT_EQ(parse_uint("--n", "100", 1, 100), 100u);
    EXPECT_EQ(parse_uint("--n", "18446744073709551615", 0, UINT64_MAX), UINT64_MAX);
}

TEST(ParseUint, RejectsOutOfRangeAndNonNumbersNamingTheSetting) {
    const std::string expected = "--n (N): expected an integer between 1 and 100, got ";
    EXPECT_EQ(parse_uint_error("0"), expected + "\"0\"");
    EXPECT_EQ(parse_uint_error("101"), expected + "\"101\"");
    EXPECT_EQ(parse_uint_error(""), expected + "\"\"");
    EXPECT_EQ(parse_uint_error("-1"), expected + "\"-1\"");
    EXPECT_EQ(parse_uint_error("+5"), expected + "\"+5\"");
    EXPECT_EQ(parse_uint_error(" 5"), expected + "\" 5\"");
    EXPECT_EQ(parse_uint_error("5kb"), expected + "\"5kb\"");
    EXPECT_EQ(parse_uint_error("99999999999999999999999"),
              expected + "\"99999999999999999999999\"");
}

TEST(ParseBool, AcceptsCommonSpellings) {
    for (const char* yes : {"true", "TRUE", "1", "yes", "on"}) {
        EXPECT_TRUE(parse_bool("--b", yes)) << yes;
    }
    for (const char* no : {"false", "False", "0", "no", "OFF"}) {
        EXPECT_FALSE(parse_bool("--b", no)) << no;
    }
}

TEST(ParseBool, RejectsOtherWordsNamingTheSetting) {
    try {
        parse_bool("--tls (USE_TLS)", "maybe");
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_STREQ(e.what(), "--tls (USE_TLS): expected true or false, got \"maybe\"");
    }
}

TEST(SplitList, TrimsItemsAndDropsEmptyOnes) {
    EXPECT_EQ(split_list(" a, b ,,c ,"), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(split_list("x;y", ';'), (std::vector<std::string>{"x", "y"}));
    EXPECT_TRUE(split_list("").empty());
    EXPECT_TRUE(split_list(" , ").empty());
}

TEST(ParseHostPort, AcceptsIpv4Ipv6AndBarePort) {
    auto hp = parse_host_port("--listen", "0.0.0.0:8080");
    EXPECT_EQ(hp.host, "0.0.0.0");
    EXPECT_EQ(hp.port, 8080);
    hp = parse_host_port("--listen", "127.0.0.1:0");
    EXPECT_EQ(hp.host, "127.0.0.1");
    EXPECT_EQ(hp.port, 0);
    hp = parse_host_port("--listen", "[::1]:8080");
    EXPECT_EQ(hp.host, "::1");
    EXPECT_EQ(hp.port, 8080);
    hp = parse_host_port("--listen", ":65535");
    EXPECT_EQ(hp.host, "0.0.0.0");
    EXPECT_EQ(hp.port, 65535);
    hp = parse_host_port("--listen", "localhost:9092");
    EXPECT_EQ(hp.host, "localhost");
    EXPECT_EQ(hp.port, 9092);
}

TEST(ParseHostPort, RejectsMalformedAddressesNamingTheSetting) {
    for (const char* bad : {"8080", "host:", "host:port", "host:65536", "::1:8080", "[::1]8080",
                            "[::1]", "[]:1", "host:-1", ""}) {
        try {
            parse_host_port("--listen (INGEST_LISTEN)", bad);
            ADD_FAILURE() << "accepted " << bad;
        } catch (const ConfigError& e) {
            EXPECT_EQ(std::string(e.what()),
                      "--listen (INGEST_LISTEN): expected host:port (e.g. 0.0.0.0:8080 or "
                      "[::1]:8080), got \"" +
                          std::string(bad) + "\"");
        }
    }
}

TEST(EnvWithPrefix, ReturnsSuffixesSortedAndSkipsTheBarePrefix) {
    ::setenv("CFGTEST_SECRET_production", "p", 1);
    ::setenv("CFGTEST_SECRET_sandbox", "s", 1);
    ::setenv("CFGTEST_SECRET_", "bare", 1);
    ::setenv("CFGTEST_SECRETX", "other", 1);
    const auto found = env_with_prefix("CFGTEST_SECRET_");
    EXPECT_EQ(found, (std::vector<std::pair<std::string, std::string>>{{"production", "p"},
                                                                       {"sandbox", "s"}}));
    for (const char* name : {"CFGTEST_SECRET_production", "CFGTEST_SECRET_sandbox",
                             "CFGTEST_SECRET_", "CFGTEST_SECRETX"}) {
        ::unsetenv(name);
    }
}

TEST(FailConfig, PrintsProgramAndMessageThenExitsWithTwo) {
    EXPECT_EXIT(fail_config("meshhook-ingest", ConfigError("--listen (INGEST_LISTEN): bad")),
                ::testing::ExitedWithCode(2),
                "^meshhook-ingest: --listen \\(INGEST_LISTEN\\): bad\n$");
}

}  // namespace
}  // namespace meshhook::common
