#include "common/identifier.hpp"

namespace meshhook::common {

namespace {

// Decodes one well-formed UTF-8 sequence at `i`; returns its length, 0 if malformed.
std::size_t decode(std::string_view s, std::size_t i, char32_t& cp) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char b0 = byte(i);
    std::size_t len = 0;
    char32_t min = 0;
    if (b0 < 0x80U) {
        cp = b0;
        return 1;
    }
    if ((b0 & 0xE0U) == 0xC0U) {
        len = 2;
        min = 0x80;
        cp = b0 & 0x1FU;
    } else if ((b0 & 0xF0U) == 0xE0U) {
        len = 3;
        min = 0x800;
        cp = b0 & 0x0FU;
    } else if ((b0 & 0xF8U) == 0xF0U) {
        len = 4;
        min = 0x10000;
        cp = b0 & 0x07U;
    } else {
        return 0;
    }
    if (s.size() - i < len) {
        return 0;
    }
    for (std::size_t k = 1; k < len; ++k) {
        const unsigned char b = byte(i + k);
        if ((b & 0xC0U) != 0x80U) {
            return 0;
        }
        cp = (cp << 6U) | (b & 0x3FU);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

bool is_control(char32_t cp) {
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F);
}

}  // namespace

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
    IdentifierProblem found = IdentifierProblem::kNone;
    for (std::size_t i = 0; i < text.size();) {
        char32_t cp = 0;
        const std::size_t len = decode(text, i, cp);
        if (len == 0) {
            return IdentifierProblem::kInvalidUtf8;  // the stronger verdict: the bytes are not text
        }
        if (is_control(cp)) {
            found = IdentifierProblem::kControlCharacter;
        }
        i += len;
    }
    return found;
}

bool is_valid_utf8(std::string_view text) {
    for (std::size_t i = 0; i < text.size();) {
        char32_t cp = 0;
        const std::size_t len = decode(text, i, cp);
        if (len == 0) {
            return false;
        }
        i += len;
    }
    return true;
}

}  // namespace meshhook::common
