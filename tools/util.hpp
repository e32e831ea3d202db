#pragma once
// Small helpers shared by the `meshhook` subcommands.

#include <chrono>
#include <cstdint>
#include <functional>
#include <istream>
#include <optional>
#include <string>
#include <string_view>

#include "common/config.hpp"

namespace meshhook::tools {

// The control channel of `meshhook broker` and `meshhook mesh`: reads stdin
// line by line; `quit` and empty lines are handled here, any other line goes
// to `command` as its first word and the stream of the rest, and its answer
// is printed on its own line. Returns on `quit`, when stdin closes (the owner
// is gone: a test that dies leaves nothing behind) or on SIGINT/SIGTERM
// (see catch_stop_signals()).
void control_loop(
    const std::function<std::string(const std::string& verb, std::istream& args)>& command);

// SIGINT and SIGTERM from now on end control_loop() (at once if it runs
// later) instead of the process: a broker still stops its JVMs on the way out.
void catch_stop_signals();

// Prints "<program>: <message>" on stderr and returns 1: the one-line error
// every subcommand ends with when its input is bad.
int fail(std::string_view program, std::string_view message);

// The exact bytes of `path`, or of stdin when `path` is "-". On failure,
// nullopt and `error` says why in one line.
std::optional<std::string> read_input(const std::string& path, std::string& error);

// Parses `settings`; prints --help and returns 0, or a ConfigError line and
// returns 2. nullopt means: go on.
std::optional<int> parse_or_exit(common::Settings& settings, std::string_view program, int argc,
                                 const char* const* argv);

// The first secret of a comma-separated list (MESH_WEBHOOK_SECRET may hold
// several during a rotation; a sender signs with the newest, listed first).
std::string first_secret(std::string_view list);

// Milliseconds since the Unix epoch, and the same as RFC 3339 UTC text.
std::int64_t now_ms();
std::string format_utc_ms(std::int64_t ms);
// Parses RFC 3339 UTC ("2026-11-28T10:00:00Z", optional fraction) or a bare
// integer of milliseconds since the epoch; nullopt when neither.
std::optional<std::int64_t> parse_time_ms(std::string_view text);

// Pretty-prints JSON text (2-space indent); returns the input unchanged when
// it is not valid JSON. Number text is copied as is (amounts stay exact).
std::string pretty_json(std::string_view json);

// Sum of the samples of metric family `name` in Prometheus text format whose
// label set contains `label` (e.g. `topic="ledger.credit-commands"`; empty:
// every sample). nullopt when there is no such sample.
std::optional<double> prometheus_sum(std::string_view text, std::string_view name,
                                     std::string_view label = {});

// Whether stdout is a terminal (for colours).
bool stdout_is_tty();

}  // namespace meshhook::tools
