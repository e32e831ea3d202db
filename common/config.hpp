#pragma once
// Settings from environment variables, overridden by command-line flags.
// Each binary declares its settings once; --help is generated from the list,
// and a bad value fails at start with one line naming the setting.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshhook::common {

// Thrown at start-up only; what() is the single line printed before exit(2).
class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct SettingSpec {
    std::string flag;             // without the leading "--", e.g. "listen"
    std::string env{};            // variable name, or empty when there is none
    std::string default_value{};  // shown in --help (never for secrets)
    std::string help{};
    bool secret = false;     // value never printed
    bool is_switch = false;  // a flag that takes no value ("true" when given)
};

class Settings {
public:
    Settings(std::string program, std::string summary);

    Settings& add(SettingSpec spec);

    enum class Outcome { kRun, kHelp };
    // Reads the environment (getenv), then argv. Throws ConfigError on unknown
    // flags or a flag missing its value. Arguments not starting with "--" are
    // collected in positional().
    Outcome parse(int argc, const char* const* argv);
    // As if given on the command line, without reading argv or the
    // environment: for a config built in code from the declared defaults
    // (tests, fuzzers). Throws std::invalid_argument if `flag` was never added.
    Settings& set(std::string_view flag, std::string value);

    // The effective value (flag > env > default). Throws if `flag` was never added.
    const std::string& get(std::string_view flag) const;
    bool is_set(std::string_view flag) const;  // given by flag or env (not default)
    // Where the value came from, for error lines: "--listen (INGEST_LISTEN)".
    std::string describe(std::string_view flag) const;

    const std::vector<std::string>& positional() const { return positional_; }
    std::string help_text() const;
    // Effective configuration for the start-up log line; secrets shown as "<set>".
    std::string summary_line() const;

private:
    struct Entry {
        SettingSpec spec;
        std::string value;
        bool set = false;
    };
    const Entry& entry(std::string_view flag) const;

    std::string program_;
    std::string summary_;
    std::vector<Entry> entries_;
    std::vector<std::string> positional_;
};

// Environment variables whose names start with `prefix`, as (suffix, value).
std::vector<std::pair<std::string, std::string>> env_with_prefix(std::string_view prefix);

// The environment a `<FAMILY>_<ENV>` variable names: ENV in lower case
// (MESH_WEBHOOK_SECRET_SANDBOX -> "sandbox"). Throws ConfigError naming
// `variable` unless ENV is A-Z, 0-9 and _.
std::string environment_name(std::string_view variable, std::string_view suffix);

// Typed conversions; `setting` names the setting in the error line.
std::uint64_t parse_uint(std::string_view setting, std::string_view text, std::uint64_t min,
                         std::uint64_t max);
bool parse_bool(std::string_view setting, std::string_view text);
std::vector<std::string> split_list(std::string_view text, char sep = ',');  // trims, drops empties

struct HostPort {
    std::string host;
    std::uint16_t port = 0;
};
// "0.0.0.0:8080", "127.0.0.1:0", "[::1]:8080", ":8080" (= 0.0.0.0).
HostPort parse_host_port(std::string_view setting, std::string_view text);

// Writes `fields` as KEY=VALUE lines to `path` atomically (a temporary file
// renamed over it), for a supervisor or a test to learn a service's bound
// addresses without reading its logs. `setting` names the flag in the error.
// Throws ConfigError when the file cannot be written.
void write_ready_file(std::string_view setting, const std::string& path,
                      const std::vector<std::pair<std::string, std::string>>& fields);

// Prints `ConfigError` the same way for every binary: "meshhook-ingest: <line>".
[[noreturn]] void fail_config(std::string_view program, const std::exception& e);

}  // namespace meshhook::common
