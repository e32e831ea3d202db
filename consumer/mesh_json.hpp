#pragma once
// Reading Mesh's API answers with simdjson On-Demand: the envelope
// `{status, message, displayMessage, errorType, errorData, content}` every
// answer has, and members Mesh writes as a string or as a number. Included
// by the .cpp files that parse those answers only (it brings simdjson).

#include <simdjson.h>

#include <functional>
#include <string>
#include <string_view>

namespace meshhook::consumer {

// A string member's text, or a number's exact JSON text (never through a
// double); null and other types leave `into` as it is. False on malformed
// JSON or a number that is not valid JSON number text. `was_number` (when
// given) is set for a number.
bool json_text(simdjson::ondemand::value value, std::string& into, bool* was_number = nullptr);

// Calls `on_member` for each member of `object`, in order; false when the
// JSON is malformed or `on_member` returns false.
bool for_each_member(
    simdjson::ondemand::object object,
    const std::function<bool(std::string_view key, simdjson::ondemand::value value)>& on_member);

struct Envelope {
    std::string status;  // "ok" or a failure kind, as Mesh wrote it
    std::string message;
};

// Parses `body` as Mesh's envelope, calling `on_content` with the `content`
// member (any type: null in failure envelopes) while the document is alive.
// False, with `error` set, when the body is not an envelope with a status
// or `on_content` returned false (it sets `error` itself).
bool read_envelope(std::string_view body, Envelope& envelope,
                   const std::function<bool(simdjson::ondemand::value content)>& on_content,
                   std::string& error);

}  // namespace meshhook::consumer
