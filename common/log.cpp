#include "common/log.hpp"

#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>

#include "common/config.hpp"

namespace meshhook::common {

namespace {

constexpr char kHex[] = "0123456789abcdef";

std::string_view level_name(spdlog::level::level_enum level) {
    switch (level) {
        case spdlog::level::trace: return "trace";
        case spdlog::level::debug: return "debug";
        case spdlog::level::info: return "info";
        case spdlog::level::warn: return "warn";
        case spdlog::level::err: return "error";
        case spdlog::level::critical: return "critical";
        default: return "off";
    }
}

// 2026-11-28T10:00:00.123Z: UTC, so lines from several hosts sort together.
void append_timestamp(std::string& out, spdlog::log_clock::time_point time) {
    const auto since_epoch = time.time_since_epoch();
    const auto seconds = std::chrono::floor<std::chrono::seconds>(since_epoch);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - seconds).count();
    const auto t = static_cast<std::time_t>(seconds.count());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    const auto n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    out.append(buf, n);
    out += '.';
    out += static_cast<char>('0' + millis / 100);
    out += static_cast<char>('0' + millis / 10 % 10);
    out += static_cast<char>('0' + millis % 10);
    out += 'Z';
}

// Text lines stay one line each: a rejected request's reason may carry
// client-supplied bytes, and a raw newline there would forge a log line.
void append_text_escaped(std::string& out, std::string_view text) {
    for (char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (u < 0x20 && c != '\t') {
            out += "\\x";
            out += kHex[u >> 4];
            out += kHex[u & 0xf];
        } else {
            out += c;
        }
    }
}

class LineFormatter final : public spdlog::formatter {
public:
    LineFormatter(std::string program, LogFormat format)
        : program_(std::move(program)), format_(format) {}

    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        std::string line;
        line.reserve(96 + msg.payload.size());
        const std::string_view payload(msg.payload.data(), msg.payload.size());
        if (format_ == LogFormat::kJson) {
            line += "{\"ts\":\"";
            append_timestamp(line, msg.time);
            line += "\",\"level\":\"";
            line += level_name(msg.level);
            line += "\",\"program\":\"";
            append_json_escaped(line, program_);
            line += "\",\"msg\":\"";
            append_json_escaped(line, payload);
            line += "\"}\n";
        } else {
            append_timestamp(line, msg.time);
            line += ' ';
            line += level_name(msg.level);
            line += ' ';
            line += program_;
            line += ": ";
            append_text_escaped(line, payload);
            line += '\n';
        }
        dest.append(line.data(), line.data() + line.size());
    }

    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<LineFormatter>(program_, format_);
    }

private:
    std::string program_;
    LogFormat format_;
};

spdlog::level::level_enum parse_level(std::string_view text) {
    if (text == "trace") return spdlog::level::trace;
    if (text == "debug") return spdlog::level::debug;
    if (text == "info") return spdlog::level::info;
    if (text == "warn") return spdlog::level::warn;
    if (text == "error") return spdlog::level::err;
    throw ConfigError("log level: expected trace, debug, info, warn or error, got \"" +
                      std::string(text) + "\"");
}

void log_at(spdlog::level::level_enum level, std::string_view message) {
    // The string_view_t overload logs the text as is; the templated one would
    // run it through fmt and choke on braces in client-supplied text.
    spdlog::default_logger_raw()->log(level, spdlog::string_view_t(message.data(), message.size()));
}

}  // namespace

void init_logging(std::string_view program, LogFormat format, std::string_view level) {
    const auto parsed = parse_level(level);
    auto logger = std::make_shared<spdlog::logger>(
        std::string(program), std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger->set_formatter(std::make_unique<LineFormatter>(std::string(program), format));
    logger->set_level(parsed);
    spdlog::set_default_logger(std::move(logger));
}

LogFormat parse_log_format(std::string_view text) {
    if (text == "text") return LogFormat::kText;
    if (text == "json") return LogFormat::kJson;
    throw ConfigError("log format: expected \"text\" or \"json\", got \"" + std::string(text) +
                      "\"");
}

void declare_log_settings(Settings& settings) {
    settings.add({"log-format", "LOG_FORMAT", "text", "text or json"})
        .add({"log-level", "LOG_LEVEL", "info", "trace, debug, info, warn or error"});
}

LogSettings log_settings(const Settings& settings) {
    LogSettings out;
    try {
        out.format = parse_log_format(settings.get("log-format"));
    } catch (const ConfigError& e) {
        throw ConfigError(settings.describe("log-format") + ": " + e.what());
    }
    out.level = settings.get("log-level");
    try {
        parse_level(out.level);
    } catch (const ConfigError& e) {
        throw ConfigError(settings.describe("log-level") + ": " + e.what());
    }
    return out;
}

void log_debug(std::string_view message) {
    log_at(spdlog::level::debug, message);
}
void log_info(std::string_view message) {
    log_at(spdlog::level::info, message);
}
void log_warn(std::string_view message) {
    log_at(spdlog::level::warn, message);
}
void log_error(std::string_view message) {
    log_at(spdlog::level::err, message);
}

void append_json_escaped(std::string& out, std::string_view text) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* end = p + text.size();
    while (p < end) {
        const unsigned char c = *p;
        if (c == '"') {
            out += "\\\"";
            ++p;
        } else if (c == '\\') {
            out += "\\\\";
            ++p;
        } else if (c == '\n') {
            out += "\\n";
            ++p;
        } else if (c == '\r') {
            out += "\\r";
            ++p;
        } else if (c == '\t') {
            out += "\\t";
            ++p;
        } else if (c < 0x20 || c == 0x7f) {
            out += "\\u00";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
            ++p;
        } else if (c < 0x80) {
            out += static_cast<char>(c);
            ++p;
        } else {
            // Copy a well-formed UTF-8 sequence; anything else becomes U+FFFD so
            // the line stays valid JSON whatever bytes a client sent.
            std::size_t len = 0;
            std::uint32_t min = 0;
            if (c >= 0xc2 && c <= 0xdf) {
                len = 2;
                min = 0x80;
            } else if (c >= 0xe0 && c <= 0xef) {
                len = 3;
                min = 0x800;
            } else if (c >= 0xf0 && c <= 0xf4) {
                len = 4;
                min = 0x10000;
            }
            bool ok = len != 0 && static_cast<std::size_t>(end - p) >= len;
            std::uint32_t cp = 0;
            if (ok) {
                cp = c & (0xffu >> (len + 1));
                for (std::size_t i = 1; i < len; ++i) {
                    if ((p[i] & 0xc0) != 0x80) {
                        ok = false;
                        break;
                    }
                    cp = (cp << 6) | (p[i] & 0x3fu);
                }
            }
            ok = ok && cp >= min && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
            if (ok) {
                out.append(reinterpret_cast<const char*>(p), len);
                p += len;
            } else {
                out += "\\ufffd";
                ++p;
            }
        }
    }
}

}  // namespace meshhook::common
