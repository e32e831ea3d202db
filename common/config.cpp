#include "common/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <system_error>

namespace meshhook::common {

namespace {

std::string quoted(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out += c;
        }
    }
    out += '"';
    return out;
}

std::string_view trim(std::string_view text) {
    constexpr std::string_view kSpace = " \t\r\n";
    const auto first = text.find_first_not_of(kSpace);
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(kSpace);
    return text.substr(first, last - first + 1);
}

bool equals_ignore_case(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               const auto lower = [](char c) {
                   return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
               };
               return lower(x) == lower(y);
           });
}

bool all_digits(std::string_view text) {
    return !text.empty() &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

Settings::Settings(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

Settings& Settings::add(SettingSpec spec) {
    // Declaring settings is code, not input: a bad declaration is a programming error.
    if (spec.flag.empty() || spec.flag.starts_with('-') || spec.flag == "help") {
        throw std::invalid_argument("Settings::add: bad flag name \"" + spec.flag + "\"");
    }
    for (const auto& e : entries_) {
        if (e.spec.flag == spec.flag) {
            throw std::invalid_argument("Settings::add: flag --" + spec.flag + " added twice");
        }
    }
    Entry e;
    e.value = spec.default_value;
    e.spec = std::move(spec);
    entries_.push_back(std::move(e));
    return *this;
}

Settings& Settings::set(std::string_view flag, std::string value) {
    for (auto& e : entries_) {
        if (e.spec.flag == flag) {
            e.value = std::move(value);
            e.set = true;
            return *this;
        }
    }
    throw std::invalid_argument("Settings::set: no flag --" + std::string(flag));
}

Settings::Outcome Settings::parse(int argc, const char* const* argv) {
    // An empty variable counts as unset: container runtimes and compose files
    // commonly define `FOO=` to mean "not configured".
    for (auto& e : entries_) {
        if (e.spec.env.empty()) {
            continue;
        }
        const char* value = std::getenv(e.spec.env.c_str());
        if (value != nullptr && *value != '\0') {
            e.value = value;
            e.set = true;
        }
    }

    const auto find = [this](std::string_view flag) -> Entry* {
        for (auto& e : entries_) {
            if (e.spec.flag == flag) {
                return &e;
            }
        }
        return nullptr;
    };

    bool only_positional = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (only_positional) {
            positional_.emplace_back(arg);
            continue;
        }
        if (arg == "--") {
            only_positional = true;
            continue;
        }
        if (arg == "--help" || arg == "-h") {
            return Outcome::kHelp;
        }
        if (!arg.starts_with("--")) {
            // A single-dash word is almost always a mistyped flag ("-listen");
            // silently treating it as positional would hide that.
            if (arg.size() > 1 && arg.starts_with('-')) {
                throw ConfigError("unknown flag " + quoted(arg) + " (see --help)");
            }
            positional_.emplace_back(arg);
            continue;
        }
        const std::string_view body = arg.substr(2);
        const auto eq = body.find('=');
        const std::string_view name = body.substr(0, eq);
        Entry* e = find(name);
        if (e == nullptr) {
            throw ConfigError("unknown flag " + quoted(std::string("--").append(name)) +
                              " (see --help)");
        }
        if (eq != std::string_view::npos) {
            e->value = std::string(body.substr(eq + 1));
        } else if (e->spec.is_switch) {
            e->value = "true";
        } else {
            // "--listen --port 1" means the value was forgotten, not that it is "--port".
            if (i + 1 >= argc || std::string_view(argv[i + 1]).starts_with("--")) {
                throw ConfigError(describe(name) + ": missing value");
            }
            e->value = argv[++i];
        }
        e->set = true;
    }
    return Outcome::kRun;
}

const Settings::Entry& Settings::entry(std::string_view flag) const {
    for (const auto& e : entries_) {
        if (e.spec.flag == flag) {
            return e;
        }
    }
    throw std::invalid_argument("Settings: no setting --" + std::string(flag) + " was added");
}

const std::string& Settings::get(std::string_view flag) const {
    return entry(flag).value;
}

bool Settings::is_set(std::string_view flag) const {
    return entry(flag).set;
}

std::string Settings::describe(std::string_view flag) const {
    const auto& e = entry(flag);
    std::string out = "--" + e.spec.flag;
    if (!e.spec.env.empty()) {
        out += " (" + e.spec.env + ")";
    }
    return out;
}

std::string Settings::help_text() const {
    std::string out =
        program_ + ": " + summary_ + "\n\nUsage: " + program_ + " [options]\n\n" +
        "Each setting is read from its environment variable; a flag overrides it.\n\n";
    for (const auto& e : entries_) {
        out += "  --" + e.spec.flag;
        if (!e.spec.is_switch) {
            out += " VALUE";
        }
        if (!e.spec.env.empty()) {
            out += "  (env " + e.spec.env + ")";
        }
        out += "\n      " + e.spec.help;
        if (e.spec.secret) {
            out += " [secret, no default]";
        } else if (e.spec.is_switch && e.spec.default_value.empty()) {
            out += " [default: false]";
        } else {
            out += " [default: " +
                   (e.spec.default_value.empty() ? std::string("none") : e.spec.default_value) +
                   "]";
        }
        out += "\n";
    }
    out += "  --help, -h\n      Print this help and exit.\n";
    return out;
}

std::string Settings::summary_line() const {
    std::string out;
    for (const auto& e : entries_) {
        if (!out.empty()) {
            out += ' ';
        }
        out += e.spec.flag + "=";
        if (e.spec.secret) {
            out += e.value.empty() ? "<unset>" : "<set>";
        } else if (e.value.empty() || e.value.find_first_of(" \t\n\"\\") != std::string::npos) {
            out += quoted(e.value);
        } else {
            out += e.value;
        }
    }
    return out;
}

std::string environment_name(std::string_view variable, std::string_view suffix) {
    std::string name;
    for (const char ch : suffix) {
        if (ch >= 'A' && ch <= 'Z') {
            name += static_cast<char>(ch - 'A' + 'a');
        } else if ((ch >= '0' && ch <= '9') || ch == '_') {
            name += ch;
        } else {
            throw ConfigError(std::string(variable) + ": environment names use A-Z, 0-9 and _");
        }
    }
    return name;
}

std::vector<std::pair<std::string, std::string>> env_with_prefix(std::string_view prefix) {
    std::vector<std::pair<std::string, std::string>> out;
    for (char** var = environ; var != nullptr && *var != nullptr; ++var) {
        const std::string_view entry = *var;
        const auto eq = entry.find('=');
        if (eq == std::string_view::npos) {
            continue;
        }
        const std::string_view name = entry.substr(0, eq);
        // The bare prefix has no suffix to key on; it is not one of the family.
        if (name.size() > prefix.size() && name.starts_with(prefix)) {
            out.emplace_back(std::string(name.substr(prefix.size())),
                             std::string(entry.substr(eq + 1)));
        }
    }
    // environ's order is whatever the parent process produced; callers want a stable one.
    std::sort(out.begin(), out.end());
    return out;
}

std::uint64_t parse_uint(std::string_view setting, std::string_view text, std::uint64_t min,
                         std::uint64_t max) {
    std::uint64_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (!all_digits(text) || ec != std::errc{} || ptr != end || value < min || value > max) {
        throw ConfigError(std::string(setting) + ": expected an integer between " +
                          std::to_string(min) + " and " + std::to_string(max) + ", got " +
                          quoted(text));
    }
    return value;
}

bool parse_bool(std::string_view setting, std::string_view text) {
    for (std::string_view yes : {"true", "1", "yes", "on"}) {
        if (equals_ignore_case(text, yes)) {
            return true;
        }
    }
    for (std::string_view no : {"false", "0", "no", "off"}) {
        if (equals_ignore_case(text, no)) {
            return false;
        }
    }
    throw ConfigError(std::string(setting) + ": expected true or false, got " + quoted(text));
}

std::vector<std::string> split_list(std::string_view text, char sep) {
    std::vector<std::string> out;
    while (true) {
        const auto pos = text.find(sep);
        const auto item = trim(text.substr(0, pos));
        if (!item.empty()) {
            out.emplace_back(item);
        }
        if (pos == std::string_view::npos) {
            break;
        }
        text.remove_prefix(pos + 1);
    }
    return out;
}

HostPort parse_host_port(std::string_view setting, std::string_view text) {
    const auto fail = [&]() -> ConfigError {
        return ConfigError(std::string(setting) +
                           ": expected host:port (e.g. 0.0.0.0:8080 or [::1]:8080), got " +
                           quoted(text));
    };
    HostPort out;
    std::string_view port_text;
    if (text.starts_with('[')) {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close == 1 || close + 1 >= text.size() ||
            text[close + 1] != ':') {
            throw fail();
        }
        out.host = std::string(text.substr(1, close - 1));
        port_text = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            throw fail();
        }
        const auto host = text.substr(0, colon);
        // An unbracketed IPv6 address cannot be told apart from its port.
        if (host.find(':') != std::string_view::npos ||
            host.find_first_of(" \t[]") != std::string_view::npos) {
            throw fail();
        }
        out.host = host.empty() ? "0.0.0.0" : std::string(host);
        port_text = text.substr(colon + 1);
    }
    std::uint64_t port = 0;
    const auto* end = port_text.data() + port_text.size();
    const auto [ptr, ec] = std::from_chars(port_text.data(), end, port);
    if (!all_digits(port_text) || ec != std::errc{} || ptr != end ||
        port > std::numeric_limits<std::uint16_t>::max()) {
        throw fail();
    }
    out.port = static_cast<std::uint16_t>(port);
    return out;
}

void write_ready_file(std::string_view setting, const std::string& path,
                      const std::vector<std::pair<std::string, std::string>>& fields) {
    const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
    {
        std::ofstream out(tmp, std::ios::trunc);
        for (const auto& [key, value] : fields) out << key << '=' << value << '\n';
        out.flush();
        if (!out) {
            std::remove(tmp.c_str());
            throw ConfigError(std::string(setting) + ": cannot write " + path + ": " +
                              std::strerror(errno));
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        std::remove(tmp.c_str());
        throw ConfigError(std::string(setting) + ": cannot write " + path + ": " +
                          std::strerror(err));
    }
}

void fail_config(std::string_view program, const std::exception& e) {
    std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(program.size()), program.data(), e.what());
    std::fflush(stderr);
    std::exit(2);
}

}  // namespace meshhook::common
