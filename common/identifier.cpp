#include "common/identifier.hpp"

#include <simdjson.h>

namespace meshhook::common {

std::string_view to_string(IdentifierProblem p) {
    switch (p) {
        case IdentifierProblem::kNone: return "none";
        case IdentifierProblem::kTooLong: return "too_long";
        case IdentifierProblem::kInvalidUtf8: return "invalid_utf8";
        case IdentifierProblem::kControlCharacter: return "control_character";
    }
    return "unknown";
}

IdentifierProblem check_identifier(std::string_view text) {
    if (text.size() > kMaxIdentifierBytes) {
        return IdentifierProblem::kTooLong;
    }
    if (!is_valid_utf8(text)) {
        return IdentifierProblem::kInvalidUtf8;  // the stronger verdict: the bytes are not text
    }
    // Well-formed, so a control character is a C0 byte, DEL, or a C1 code
    // point (U+0080..U+009F), which UTF-8 writes as 0xC2 0x80..0x9F.
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto b = static_cast<unsigned char>(text[i]);
        if (b < 0x20U || b == 0x7FU ||
            (b == 0xC2U && i + 1 < text.size() &&
             static_cast<unsigned char>(text[i + 1]) <= 0x9FU)) {
            return IdentifierProblem::kControlCharacter;
        }
    }
    return IdentifierProblem::kNone;
}

// simdjson's validator (RFC 3629: no overlong forms, no surrogates, nothing
// over U+10FFFF), already a dependency, rather than a decoder of our own.
bool is_valid_utf8(std::string_view text) {
    return simdjson::validate_utf8(text.data(), text.size());
}

}  // namespace meshhook::common
