// `meshhook sign` and `meshhook verify` as a user runs them.
#include <gtest/gtest.h>

#include "tests/integration/tools/cli_harness.hpp"
#include "tests/support/process.hpp"

namespace meshhook::testing {
namespace {

const std::string kSecret = "whsec_test_fixture_secret";
const std::string kSucceededSignature = "+USHqMn1BKTQbXdliClRAc/TzIa8hxuzELNeZzBGd38=";

TEST(CliSign, PrintsTheDocumentedSignatureOfAFixture) {
    const auto r =
        run_meshhook({"sign", fixture_path("03-succeeded.json").string(), "--secret", kSecret});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(r.out, kSucceededSignature + "\n");
}

TEST(CliSign, ReadsTheSecretFromTheEnvironmentAndTheBodyFromStdin) {
    // "abc\n" signed exactly, newline included.
    const auto r = run_meshhook({"sign", "--header"}, {{"MESH_WEBHOOK_SECRET", "k1,k0"}}, "abc\n");
    EXPECT_EQ(r.code, 0) << r.err;
    const auto expected = run_meshhook({"sign", "-", "--secret", "k1"}, {}, "abc\n");
    EXPECT_EQ(r.out, "X-Mesh-Signature-256: " + expected.out);
    const auto other = run_meshhook({"sign", "-", "--secret", "k0"}, {}, "abc\n");
    EXPECT_NE(expected.out, other.out);
}

TEST(CliSign, UnreadableFileIsOneLineAndExitOne) {
    const auto r = run_meshhook({"sign", "/nonexistent/body.json", "--secret", kSecret});
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("cannot read /nonexistent/body.json"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty());
}

TEST(CliSign, MissingSecretNamesTheSetting) {
    const auto r = run_meshhook({"sign", fixture_path("03-succeeded.json").string()},
                                {{"MESH_WEBHOOK_SECRET", ""}});
    EXPECT_NE(r.code, 0);
    EXPECT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("--secret (MESH_WEBHOOK_SECRET)"), std::string::npos) << r.err;
}

TEST(CliVerify, AcceptsTheDocumentedSignatureWithAnyActiveSecret) {
    const auto r =
        run_meshhook({"verify", fixture_path("03-succeeded.json").string(), "--signature",
                      kSucceededSignature, "--secret", "rotated_in," + kSecret});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("ok: signature matches secret #2"), std::string::npos) << r.out;
}

TEST(CliVerify, WrongSecretIsOneLineSayingWhyAndExitOne) {
    const auto r = run_meshhook({"verify", fixture_path("03-succeeded.json").string(),
                                 "--signature", kSucceededSignature, "--secret", "whsec_wrong"});
    EXPECT_EQ(r.code, 1);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("does not match"), std::string::npos) << r.err;
}

TEST(CliVerify, SaysWhenOnlyATrailingNewlineWasAdded) {
    const auto body = read_file(fixture_path("03-succeeded.json")) + "\n";
    const auto r =
        run_meshhook({"verify", "--signature", kSucceededSignature, "--secret", kSecret}, {}, body);
    EXPECT_EQ(r.code, 1);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("trailing newline"), std::string::npos) << r.err;
}

TEST(CliVerify, SaysWhenTheSignatureIsNotBase64OfADigest) {
    const auto r = run_meshhook({"verify", fixture_path("03-succeeded.json").string(),
                                 "--signature", "3b5c1e0f2a9b8d7c", "--secret", kSecret});
    EXPECT_EQ(r.code, 1);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("not base64 of a 32-byte"), std::string::npos) << r.err;
}

TEST(CliVerify, UnreadableFileIsOneLineAndExitOne) {
    const auto r = run_meshhook(
        {"verify", "/nonexistent.json", "--signature", kSucceededSignature, "--secret", kSecret});
    EXPECT_EQ(r.code, 1);
    ASSERT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("cannot read /nonexistent.json"), std::string::npos) << r.err;
}

TEST(CliHelp, EverySubcommandHasHelp) {
    for (const std::string sub : {"sign", "verify", "send", "dev", "tail", "replay", "state"}) {
        const auto r = run_meshhook({sub, "--help"});
        EXPECT_EQ(r.code, 0) << sub << ": " << r.err;
        EXPECT_NE(r.out.find("meshhook " + sub), std::string::npos) << sub << ": " << r.out;
    }
}

TEST(CliHelp, UnknownFlagIsOneLineAndExitTwo) {
    const auto r = run_meshhook({"sign", "--sekret", "x"});
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(lines_of(r.err).size(), 1U) << r.err;
    EXPECT_NE(r.err.find("--sekret"), std::string::npos);
}

}  // namespace
}  // namespace meshhook::testing
