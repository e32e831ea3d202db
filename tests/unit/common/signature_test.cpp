#include "common/signature.hpp"

#include <gtest/gtest.h>

#include <map>

#include "tests/support/process.hpp"

namespace meshhook::common {
namespace {

const std::string kSecret = "whsec_test_fixture_secret";

// The signatures listed in tests/fixtures/README.md, computed by Mesh's
// documented scheme with `openssl dgst -sha256 -hmac ... | base64`.
const std::map<std::string, std::string> kFixtureSignatures = {
    {"01-pending.json", "mUideJ7JQkpT/VX8GG9cnKV9ExazKGHBk7kzTHeYObI="},
    {"02-processing.json", "AHqNVI2Y3YASv+PI3WiSbKvhw53DpAeOnr4h495PhEs="},
    {"03-succeeded.json", "+USHqMn1BKTQbXdliClRAc/TzIa8hxuzELNeZzBGd38="},
    {"04-succeeded-retry.json", "UseW3+VKHLbBFIhxo3mljVdaDQEI1ZuzADepEInFmKQ="},
    {"05-failed-other-transfer.json", "TopAAueBRsTnoUVPVqvGLch3QBw6CQvc1Jpe+tfotvk="},
    {"06-camelcase-succeeded.json", "yKev10I8YA9FB8XhcbDsKvV80jgkReFUQxgxEXm7Qho="},
    {"90-malformed-truncated.json", "PvmXY6U0yEHqTaF9sEMkJjwhVxy6j1WJbSGUN8rd0U0="},
    {"91-missing-transfer-id.json", "viUTKHcGZQwwOIYtbwcOSEp1Vl1iOZD0YclWepWh2N4="},
};

TEST(Signature, EveryFixtureVerifiesWithItsListedSignature) {
    SignatureVerifier verifier({kSecret});
    for (const auto& [name, sig] : kFixtureSignatures) {
        const auto body = testing::fixture(name);
        EXPECT_TRUE(verifier.verify(sig, body).ok()) << name;
        EXPECT_EQ(sign(kSecret, body), sig) << name;
    }
}

TEST(Signature, OneChangedByteFails) {
    SignatureVerifier verifier({kSecret});
    auto body = testing::fixture("03-succeeded.json");
    const auto& sig = kFixtureSignatures.at("03-succeeded.json");
    for (std::size_t pos : {std::size_t{0}, body.size() / 2, body.size() - 1}) {
        auto changed = body;
        changed[pos] = static_cast<char>(changed[pos] ^ 0x01);
        EXPECT_EQ(verifier.verify(sig, changed).error, SignatureError::kMismatch) << pos;
    }
    EXPECT_EQ(verifier.verify(sig, body + " ").error, SignatureError::kMismatch);
}

TEST(Signature, AcceptsEveryActiveSecretDuringRotationAndReportsWhichMatched) {
    SignatureVerifier verifier({"whsec_new_secret", kSecret});
    const auto body = testing::fixture("01-pending.json");
    auto r = verifier.verify(kFixtureSignatures.at("01-pending.json"), body);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.secret_index, 1u);
    r = verifier.verify(sign("whsec_new_secret", body), body);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.secret_index, 0u);
}

TEST(Signature, RejectsBodySignedWithRotatedOutSecret) {
    SignatureVerifier verifier({"whsec_new_secret"});
    const auto body = testing::fixture("01-pending.json");
    EXPECT_EQ(verifier.verify(kFixtureSignatures.at("01-pending.json"), body).error,
              SignatureError::kMismatch);
}

TEST(Signature, BothHeaderNamesWorkAndTheNewOnePrevails) {
    SignatureVerifier verifier({kSecret});
    const auto body = testing::fixture("02-processing.json");
    const std::string sig = kFixtureSignatures.at("02-processing.json");
    EXPECT_TRUE(verifier.verify(sig, std::nullopt, body).ok());
    EXPECT_TRUE(verifier.verify(std::nullopt, sig, body).ok());
    EXPECT_EQ(verifier.verify(sign("other", body), sig, body).error, SignatureError::kMismatch);
    EXPECT_EQ(verifier.verify(std::nullopt, std::nullopt, body).error,
              SignatureError::kMissingHeader);
}

TEST(Signature, DistinguishesMissingUndecodableAndMismatch) {
    SignatureVerifier verifier({kSecret});
    const std::string body = "{}";
    EXPECT_EQ(verifier.verify(std::nullopt, body).error, SignatureError::kMissingHeader);
    EXPECT_EQ(verifier.verify("", body).error, SignatureError::kMissingHeader);
    EXPECT_EQ(verifier.verify("   ", body).error, SignatureError::kMissingHeader);
    EXPECT_EQ(verifier.verify("not base64!", body).error, SignatureError::kUndecodable);
    EXPECT_EQ(verifier.verify("c2hvcnQ=", body).error, SignatureError::kUndecodable);  // 5 bytes
    EXPECT_EQ(verifier.verify(std::string(44, '*'), body).error, SignatureError::kUndecodable);
    // sha256=<hex> (another provider's format) is not Mesh's.
    EXPECT_EQ(verifier.verify("sha256=" + std::string(64, 'a'), body).error,
              SignatureError::kUndecodable);
    EXPECT_EQ(verifier.verify(sign("wrong", body), body).error, SignatureError::kMismatch);
    EXPECT_TRUE(verifier.verify(" " + sign(kSecret, body) + " ", body).ok());
    EXPECT_EQ(to_string(SignatureError::kMismatch), "mismatch");
}

TEST(Signature, RefusesNonCanonicalBase64OfTheRightDigest) {
    SignatureVerifier verifier({kSecret});
    const auto body = testing::fixture("90-malformed-truncated.json");
    // Canonical: ...d0U0=. The last data character's two low bits are padding;
    // ...d0U1= decodes to the same bytes but is not what Mesh sends.
    EXPECT_TRUE(verifier.verify("PvmXY6U0yEHqTaF9sEMkJjwhVxy6j1WJbSGUN8rd0U0=", body).ok());
    EXPECT_EQ(verifier.verify("PvmXY6U0yEHqTaF9sEMkJjwhVxy6j1WJbSGUN8rd0U1=", body).error,
              SignatureError::kUndecodable);
}

TEST(Signature, RefusesEmptySecretLists) {
    EXPECT_THROW(SignatureVerifier({}), std::invalid_argument);
    EXPECT_THROW(SignatureVerifier({""}), std::invalid_argument);
}

TEST(Signature, VerifiesTheEmptyBody) {
    SignatureVerifier verifier({kSecret});
    EXPECT_TRUE(verifier.verify(sign(kSecret, ""), "").ok());
}

}  // namespace
}  // namespace meshhook::common
