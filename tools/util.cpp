#include "tools/util.hpp"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

namespace meshhook::tools {

namespace {
volatile sig_atomic_t g_control_stop = 0;
extern "C" void on_control_signal(int /*sig*/) {
    g_control_stop = 1;
}
}  // namespace

void catch_stop_signals() {
    struct sigaction sa {};
    sa.sa_handler = on_control_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}

void control_loop(
    const std::function<std::string(const std::string& verb, std::istream& args)>& command) {
    catch_stop_signals();
    std::string pending;
    bool quit = false;
    while (!quit && g_control_stop == 0) {
        pollfd pfd{STDIN_FILENO, POLLIN, 0};
        const int r = ::poll(&pfd, 1, 200);
        if (r <= 0) continue;  // timeout or EINTR: re-check the signal flag
        char buf[4096];
        const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
        if (n <= 0) break;
        pending.append(buf, static_cast<std::size_t>(n));
        std::size_t pos = 0;
        while (!quit && (pos = pending.find('\n')) != std::string::npos) {
            std::istringstream in(pending.substr(0, pos));
            pending.erase(0, pos + 1);
            std::string verb;
            in >> verb;
            if (verb.empty()) continue;
            quit = verb == "quit";
            const std::string reply = quit ? "ok" : command(verb, in);
            if (!reply.empty()) std::cout << reply << std::endl;
        }
    }
}

int fail(std::string_view program, std::string_view message) {
    std::cerr << program << ": " << message << std::endl;
    return 1;
}

std::optional<std::string> read_input(const std::string& path, std::string& error) {
    if (path == "-") {
        std::string out((std::istreambuf_iterator<char>(std::cin)),
                        std::istreambuf_iterator<char>());
        if (std::cin.bad()) {
            error = "cannot read stdin";
            return std::nullopt;
        }
        return out;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = "cannot read " + path + ": " + std::strerror(errno);
        return std::nullopt;
    }
    std::ostringstream buf;
    buf << in.rdbuf();
    if (in.bad()) {
        error = "cannot read " + path + ": " + std::strerror(errno);
        return std::nullopt;
    }
    return std::move(buf).str();
}

std::optional<int> parse_or_exit(common::Settings& settings, std::string_view program, int argc,
                                 const char* const* argv) {
    try {
        if (settings.parse(argc, argv) == common::Settings::Outcome::kHelp) {
            std::cout << settings.help_text();
            return 0;
        }
    } catch (const common::ConfigError& e) {
        std::cerr << program << ": " << e.what() << std::endl;
        return 2;
    }
    return std::nullopt;
}

std::string first_secret(std::string_view list) {
    auto secrets = common::split_list(list);
    return secrets.empty() ? std::string() : secrets.front();
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string format_utc_ms(std::int64_t ms) {
    const auto secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms % 1000));
    return buf;
}

std::optional<std::int64_t> parse_time_ms(std::string_view text) {
    if (text.empty()) return std::nullopt;
    std::int64_t value = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc() && p == text.data() + text.size()) return value;

    std::tm tm{};
    const std::string s(text);
    const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == nullptr) return std::nullopt;
    std::int64_t millis = 0;
    if (*rest == '.') {
        ++rest;
        int digits = 0;
        while (*rest >= '0' && *rest <= '9') {
            if (digits < 3) millis = millis * 10 + (*rest - '0');
            ++digits;
            ++rest;
        }
        if (digits == 0) return std::nullopt;
        for (int d = digits; d < 3; ++d) millis *= 10;
    }
    if (std::string_view(rest) != "Z") return std::nullopt;
    return static_cast<std::int64_t>(timegm(&tm)) * 1000 + millis;
}

std::string pretty_json(std::string_view json) {
    // A token-level re-indenter: strings are copied verbatim (escapes
    // included), numbers keep their text. Validity is checked only as far as
    // bracket balance; anything odd returns the input untouched.
    const auto start = json.find_first_not_of(" \t\r\n");
    if (start == std::string_view::npos || (json[start] != '{' && json[start] != '[')) {
        return std::string(json);
    }
    std::string out;
    out.reserve(json.size() * 2);
    int depth = 0;
    bool in_string = false;
    bool escaped = false;
    const auto newline = [&](int d) {
        out += '\n';
        out.append(static_cast<std::size_t>(d) * 2, ' ');
    };
    for (std::size_t i = 0; i < json.size(); ++i) {
        const char c = json[i];
        if (in_string) {
            out += c;
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        switch (c) {
            case '"':
                in_string = true;
                out += c;
                break;
            case '{':
            case '[': {
                // Keep empty containers on one line.
                std::size_t j = i + 1;
                while (j < json.size() && std::isspace(static_cast<unsigned char>(json[j]))) ++j;
                if (j < json.size() && (json[j] == '}' || json[j] == ']')) {
                    out += c;
                    out += json[j];
                    i = j;
                    break;
                }
                out += c;
                ++depth;
                newline(depth);
                break;
            }
            case '}':
            case ']':
                --depth;
                if (depth < 0) return std::string(json);
                newline(depth);
                out += c;
                break;
            case ',':
                out += c;
                newline(depth);
                break;
            case ':': out += ": "; break;
            case ' ':
            case '\t':
            case '\n':
            case '\r': break;
            default: out += c;
        }
    }
    if (depth != 0 || in_string) return std::string(json);
    return out;
}

std::optional<double> prometheus_sum(std::string_view text, std::string_view name,
                                     std::string_view label) {
    std::optional<double> sum;
    while (!text.empty()) {
        const auto eol = text.find('\n');
        const std::string_view line = text.substr(0, eol);
        text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
        if (line.empty() || line[0] == '#' || !line.starts_with(name) ||
            line.size() <= name.size()) {
            continue;
        }
        const char next = line[name.size()];
        if (next != '{' && next != ' ') continue;
        const auto space = line.rfind(' ');
        if (!label.empty() && line.substr(0, space).find(label) == std::string_view::npos) continue;
        try {
            sum = sum.value_or(0) + std::stod(std::string(line.substr(space + 1)));
        } catch (const std::exception&) {
        }
    }
    return sum;
}

bool stdout_is_tty() {
    return ::isatty(STDOUT_FILENO) == 1;
}

}  // namespace meshhook::tools
