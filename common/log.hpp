#pragma once
// Logging at boundaries (start, stop, config, rejected requests), never per
// message on the hot path. Backed by spdlog; the header stays light.

#include <string>
#include <string_view>

namespace meshhook::common {

enum class LogFormat { kText, kJson };

// Sets up the default logger on stderr. `level`: trace|debug|info|warn|error.
// Throws ConfigError on a bad level.
void init_logging(std::string_view program, LogFormat format, std::string_view level = "info");
LogFormat parse_log_format(std::string_view text);  // "text" | "json"; throws ConfigError

class Settings;
// --log-format (LOG_FORMAT) and --log-level (LOG_LEVEL), declared once for
// every service; log_settings() reads and checks them, throwing ConfigError
// with one line naming the setting.
void declare_log_settings(Settings& settings);
struct LogSettings {
    LogFormat format = LogFormat::kText;
    std::string level;
};
LogSettings log_settings(const Settings& settings);

void log_debug(std::string_view message);
void log_info(std::string_view message);
void log_warn(std::string_view message);
void log_error(std::string_view message);

// Escapes a string for a JSON string literal (no surrounding quotes).
void append_json_escaped(std::string& out, std::string_view text);

}  // namespace meshhook::common
