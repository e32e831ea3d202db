#pragma once
// What makes an identifier usable (a TransferId, an EventId, an environment,
// a record key): both stores must hold it byte for byte and agree on it.
// PostgreSQL text cannot hold a NUL byte nor invalid UTF-8 (libpq would even
// cut a parameter at its first NUL, aliasing another transfer), SQLite holds
// both: rather than let the two stores disagree, such an identifier is refused
// before it reaches either (ingest dead-letters it, the consumer records an
// anomaly). The length bound keeps one id from failing an index (PostgreSQL's
// B-tree entries stop at about 2.7 KB) and from bloating every row and log line.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace meshhook::common {

inline constexpr std::size_t kMaxIdentifierBytes = 256;

enum class IdentifierProblem : std::uint8_t {
    kNone,
    kTooLong,           // over kMaxIdentifierBytes bytes
    kInvalidUtf8,       // not well-formed UTF-8 (overlong, surrogate, truncated, > U+10FFFF)
    kControlCharacter,  // NUL or any other C0/C1 control character, or DEL
};

std::string_view to_string(IdentifierProblem p);  // "too_long", "invalid_utf8", "control_character"

// An empty text is usable here: whether an id may be absent is the caller's rule.
IdentifierProblem check_identifier(std::string_view text);

// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing over U+10FFFF.
bool is_valid_utf8(std::string_view text);

}  // namespace meshhook::common
