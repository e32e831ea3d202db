// `meshhook verify`: does a signature match a body, and if not, why not.
#include <iostream>

#include "common/signature.hpp"
#include "tools/commands.hpp"
#include "tools/util.hpp"

namespace meshhook::tools {

int verify_main(int argc, const char* const* argv) {
    constexpr std::string_view kProgram = "meshhook verify";
    common::Settings settings(
        std::string(kProgram),
        "checks a body against an X-Mesh-Signature-256 value and says why it does not\n"
        "match. Exit 0 when it matches one of the secrets, 1 when not.\n\n"
        "  meshhook verify [FILE|-] --signature VALUE --secret SECRET[,SECRET...]");
    settings.add({"signature", "", "", "the header value as received (base64)"})
        .add({"secret", "MESH_WEBHOOK_SECRET", "",
              "webhook secret(s), comma-separated (every active secret during a rotation)", true});
    if (auto code = parse_or_exit(settings, kProgram, argc, argv)) return *code;

    const auto secrets = common::split_list(settings.get("secret"));
    if (secrets.empty()) {
        return fail(kProgram, settings.describe("secret") + ": missing value (the webhook secret)");
    }
    if (!settings.is_set("signature")) {
        return fail(kProgram, "--signature: missing value (the X-Mesh-Signature-256 header value)");
    }
    const auto& args = settings.positional();
    if (args.size() > 1) return fail(kProgram, "expected one FILE (or '-' for stdin)");
    std::string error;
    const auto body = read_input(args.empty() ? "-" : args.front(), error);
    if (!body) return fail(kProgram, error);

    const std::string& signature = settings.get("signature");
    common::SignatureVerifier verifier(secrets);
    const auto result = verifier.verify(std::optional<std::string_view>(signature), *body);
    if (result.ok()) {
        std::cout << "ok: signature matches";
        if (secrets.size() > 1) std::cout << " secret #" << (result.secret_index + 1);
        std::cout << " (" << body->size() << " bytes)" << std::endl;
        return 0;
    }
    switch (result.error) {
        case common::SignatureError::kMissingHeader: return fail(kProgram, "signature is empty");
        case common::SignatureError::kUndecodable:
            return fail(kProgram,
                        "signature is not base64 of a 32-byte HMAC-SHA256 digest (wrong header, "
                        "or hex instead of base64?)");
        default: break;
    }
    // The usual causes of a mismatch, checked so the answer is actionable.
    std::string_view trimmed = *body;
    while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == '\r')) {
        trimmed.remove_suffix(1);
    }
    if (trimmed.size() != body->size() &&
        verifier.verify(std::optional<std::string_view>(signature), trimmed).ok()) {
        return fail(kProgram,
                    "signature does not match: it matches the body without its trailing newline "
                    "(the bytes were changed after signing)");
    }
    return fail(kProgram,
                "signature does not match the body with " +
                    std::string(secrets.size() > 1
                                    ? "any of the " + std::to_string(secrets.size()) + " secrets"
                                    : "this secret") +
                    " (wrong secret, or the body was altered)");
}

}  // namespace meshhook::tools
