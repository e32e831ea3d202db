#include "common/identifier.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace meshhook::common {
namespace {

using P = IdentifierProblem;

TEST(Identifier, OrdinaryIdsAndNonAsciiTextAreUsable) {
    EXPECT_EQ(check_identifier("4f8c2d1e-7a3b-4c9d-9e21-5b6a7c8d9e01"), P::kNone);
    EXPECT_EQ(check_identifier(""), P::kNone);
    EXPECT_EQ(check_identifier("caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x92\xb8"), P::kNone);
    EXPECT_EQ(check_identifier(std::string(kMaxIdentifierBytes, 'x')), P::kNone);
}

TEST(Identifier, OverTheBoundIsTooLong) {
    EXPECT_EQ(check_identifier(std::string(kMaxIdentifierBytes + 1, 'x')), P::kTooLong);
    EXPECT_EQ(check_identifier(std::string(5 * 1024, 'x')), P::kTooLong);
}

TEST(Identifier, NulAndOtherControlCharactersAreRefused) {
    EXPECT_EQ(check_identifier(std::string("t-1\0x", 5)), P::kControlCharacter);
    EXPECT_EQ(check_identifier("t-1\n"), P::kControlCharacter);
    EXPECT_EQ(check_identifier("t\x7f"), P::kControlCharacter);
    EXPECT_EQ(check_identifier("t\xc2\x85"), P::kControlCharacter);  // U+0085, C1
}

TEST(Identifier, MalformedUtf8IsRefused) {
    for (const std::string_view bad : {"\xff", "t\xc3", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
                                       "\xf4\x90\x80\x80", "\x80", "\xf8\x88\x80\x80\x80"}) {
        EXPECT_EQ(check_identifier(bad), P::kInvalidUtf8) << testing::PrintToString(bad);
        EXPECT_FALSE(is_valid_utf8(bad)) << testing::PrintToString(bad);
    }
    EXPECT_TRUE(is_valid_utf8(std::string("a\0b", 3)));  // NUL is UTF-8; the stores refuse it
    EXPECT_EQ(to_string(P::kInvalidUtf8), "invalid_utf8");
}

}  // namespace
}  // namespace meshhook::common
