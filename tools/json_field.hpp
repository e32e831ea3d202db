#pragma once
// Reading one top-level field of a JSON object as text, for the CLI's checks
// and filters (credit commands, anomaly records).

#include <optional>
#include <string>
#include <string_view>

namespace meshhook::tools {

// The string contents (unescaped), or the exact token text of a number,
// bool or null. nullopt when `json` is not an object or has no such field.
std::optional<std::string> json_field(std::string_view json, std::string_view field);

}  // namespace meshhook::tools
