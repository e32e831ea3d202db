#include "common/log.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/config.hpp"

namespace meshhook::common {
namespace {

// Points fd 2 at a temporary file for the capture's lifetime, so the test sees
// exactly the bytes the real stderr sink writes.
class StderrCapture {
public:
    StderrCapture() {
        std::fflush(stderr);
        char name[] = "/tmp/meshhook-log-test-XXXXXX";
        const int fd = ::mkstemp(name);
        if (fd < 0) {
            throw std::runtime_error("mkstemp failed");
        }
        path_ = name;
        saved_ = ::dup(2);
        ::dup2(fd, 2);
        ::close(fd);
    }
    ~StderrCapture() {
        restore();
        std::filesystem::remove(path_);
    }
    std::string finish() {
        restore();
        std::ifstream in(path_, std::ios::binary);
        std::ostringstream text;
        text << in.rdbuf();
        return text.str();
    }

private:
    void restore() {
        if (saved_ >= 0) {
            std::fflush(stderr);
            ::dup2(saved_, 2);
            ::close(saved_);
            saved_ = -1;
        }
    }
    std::filesystem::path path_;
    int saved_ = -1;
};

std::string capture_one(LogFormat format, std::string_view level, void (*log)(std::string_view),
                        std::string_view message) {
    init_logging("meshhook-test", format, level);
    StderrCapture capture;
    log(message);
    return capture.finish();
}

std::chrono::system_clock::time_point parse_ts(const std::string& ts) {
    std::tm tm{};
    int millis = 0;
    EXPECT_EQ(std::sscanf(ts.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                          &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &millis),
              7)
        << ts;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return std::chrono::system_clock::from_time_t(::timegm(&tm)) +
           std::chrono::milliseconds(millis);
}

TEST(Log, TextLineHasUtcTimestampLevelProgramAndMessage) {
    const auto before = std::chrono::system_clock::now();
    const auto line = capture_one(LogFormat::kText, "info", log_info, "listening on 0.0.0.0:8080");
    const auto after = std::chrono::system_clock::now();
    // std::regex trips GCC 12's -Wmaybe-uninitialized under sanitizers; a
    // digit mask says the same thing.
    constexpr std::string_view kMask = "dddd-dd-ddTdd:dd:dd.dddZ";
    ASSERT_GT(line.size(), kMask.size()) << line;
    for (std::size_t i = 0; i < kMask.size(); ++i) {
        const bool ok = kMask[i] == 'd' ? (line[i] >= '0' && line[i] <= '9') : line[i] == kMask[i];
        ASSERT_TRUE(ok) << "position " << i << " of " << line;
    }
    EXPECT_EQ(line.substr(kMask.size()), " info meshhook-test: listening on 0.0.0.0:8080\n");
    const auto ts = parse_ts(line.substr(0, kMask.size()));
    EXPECT_GE(ts, std::chrono::floor<std::chrono::milliseconds>(before));
    EXPECT_LE(ts, after);
}

TEST(Log, TextLineEscapesNewlinesSoOneRecordIsOneLine) {
    const auto line =
        capture_one(LogFormat::kText, "info", log_warn, "bad header\nFAKE error line\r\x01");
    EXPECT_NE(line.find(" warn meshhook-test: bad header\\nFAKE error line\\r\\x01\n"),
              std::string::npos)
        << line;
    EXPECT_EQ(line.find('\n'), line.size() - 1);
}

TEST(Log, JsonLineIsValidJsonWithEscapedContent) {
    const std::string message =
        "rejected: \"sig\" mismatch \\ {} \n\t\x01\x1f caf\xc3\xa9 \xe2\x82\xac end";
    const auto before = std::chrono::system_clock::now();
    const auto line = capture_one(LogFormat::kJson, "info", log_error, message);
    ASSERT_FALSE(line.empty());
    EXPECT_EQ(line.back(), '\n');
    EXPECT_EQ(line.find('\n'), line.size() - 1) << "one record, one line: " << line;

    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(line).get(doc), simdjson::SUCCESS) << line;
    std::string_view ts, level, program, msg;
    ASSERT_EQ(doc["ts"].get(ts), simdjson::SUCCESS);
    ASSERT_EQ(doc["level"].get(level), simdjson::SUCCESS);
    ASSERT_EQ(doc["program"].get(program), simdjson::SUCCESS);
    ASSERT_EQ(doc["msg"].get(msg), simdjson::SUCCESS);
    EXPECT_EQ(level, "error");
    EXPECT_EQ(program, "meshhook-test");
    EXPECT_EQ(msg, message);
    EXPECT_GE(parse_ts(std::string(ts)), std::chrono::floor<std::chrono::milliseconds>(before));
    EXPECT_TRUE(line.starts_with("{\"ts\":\"")) << line;
    EXPECT_NE(line.find("\"msg\":\"rejected: \\\"sig\\\" mismatch \\\\ {} \\n\\t\\u0001\\u001f"),
              std::string::npos)
        << line;
}

TEST(Log, MessagesBelowTheLevelAreDropped) {
    EXPECT_EQ(capture_one(LogFormat::kJson, "warn", log_info, "quiet"), "");
    EXPECT_EQ(capture_one(LogFormat::kJson, "info", log_debug, "quiet"), "");
    EXPECT_NE(capture_one(LogFormat::kJson, "debug", log_debug, "loud").find("\"level\":\"debug\""),
              std::string::npos);
    EXPECT_NE(capture_one(LogFormat::kJson, "warn", log_warn, "loud").find("\"level\":\"warn\""),
              std::string::npos);
}

TEST(Log, BadLevelAndFormatThrowConfigError) {
    EXPECT_THROW(init_logging("meshhook-test", LogFormat::kText, "verbose"), ConfigError);
    EXPECT_THROW(init_logging("meshhook-test", LogFormat::kText, "INFO"), ConfigError);
    EXPECT_EQ(parse_log_format("text"), LogFormat::kText);
    EXPECT_EQ(parse_log_format("json"), LogFormat::kJson);
    try {
        parse_log_format("xml");
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_STREQ(e.what(), "log format: expected \"text\" or \"json\", got \"xml\"");
    }
}

// Both services declare their log settings through declare_log_settings():
// one flag, variable, default and check, and a bad value names its setting.
TEST(Log, LogSettingsAreCheckedAndABadOneNamesItsSetting) {
    const auto settings_with = [](std::vector<std::string> args) {
        Settings s("meshhook-test", "");
        declare_log_settings(s);
        for (std::size_t i = 0; i + 1 < args.size(); i += 2) s.set(args[i], args[i + 1]);
        return s;
    };
    const LogSettings defaults = log_settings(settings_with({}));
    EXPECT_EQ(defaults.format, LogFormat::kText);
    EXPECT_EQ(defaults.level, "info");
    const LogSettings json =
        log_settings(settings_with({"log-format", "json", "log-level", "warn"}));
    EXPECT_EQ(json.format, LogFormat::kJson);
    EXPECT_EQ(json.level, "warn");
    for (const auto& [args, named] : std::vector<std::pair<std::vector<std::string>, std::string>>{
             {{"log-level", "loud"}, "--log-level (LOG_LEVEL): "},
             {{"log-format", "xml"}, "--log-format (LOG_FORMAT): "}}) {
        try {
            log_settings(settings_with(args));
            ADD_FAILURE() << "accepted " << args[1];
        } catch (const ConfigError& e) {
            EXPECT_EQ(std::string(e.what()).rfind(named, 0), 0U) << e.what();
            EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
        }
    }
}

std::string escaped(std::string_view text) {
    std::string out;
    append_json_escaped(out, text);
    return out;
}

TEST(AppendJsonEscaped, EscapesQuotesBackslashesAndControlCharacters) {
    EXPECT_EQ(escaped("plain text"), "plain text");
    EXPECT_EQ(escaped("a\"b\\c"), "a\\\"b\\\\c");
    EXPECT_EQ(escaped("\n\r\t"), "\\n\\r\\t");
    EXPECT_EQ(escaped(std::string_view("\x00\x01\x1f\x7f", 4)), "\\u0000\\u0001\\u001f\\u007f");
    std::string out = "prefix:";
    append_json_escaped(out, "x");
    EXPECT_EQ(out, "prefix:x");
}

TEST(AppendJsonEscaped, KeepsValidUtf8AndReplacesInvalidBytes) {
    EXPECT_EQ(escaped("caf\xc3\xa9 \xf0\x9f\x92\xb8"), "caf\xc3\xa9 \xf0\x9f\x92\xb8");
    EXPECT_EQ(escaped("a\xff"
                      "b"),
              "a\\ufffdb");
    EXPECT_EQ(escaped("\xc3"), "\\ufffd");                        // truncated sequence
    EXPECT_EQ(escaped("\xc0\xaf"), "\\ufffd\\ufffd");             // overlong '/'
    EXPECT_EQ(escaped("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");  // UTF-16 surrogate
}

}  // namespace
}  // namespace meshhook::common
