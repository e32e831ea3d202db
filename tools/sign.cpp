// `meshhook sign`: the X-Mesh-Signature-256 value Mesh would send for a body.
#include <iostream>

#include "common/signature.hpp"
#include "tools/commands.hpp"
#include "tools/util.hpp"

namespace meshhook::tools {

int sign_main(int argc, const char* const* argv) {
    constexpr std::string_view kProgram = "meshhook sign";
    common::Settings settings(
        std::string(kProgram),
        "prints the X-Mesh-Signature-256 header value for a body:\n"
        "base64(HMAC-SHA256(secret, exact body bytes)).\n\n"
        "  meshhook sign [FILE|-] --secret SECRET     (no FILE or '-': stdin)\n\n"
        "The body is signed byte for byte: a trailing newline added by an editor or\n"
        "by `echo` changes the signature.");
    settings
        .add({"secret", "MESH_WEBHOOK_SECRET", "",
              "webhook secret; from a comma-separated list the first is used", true})
        .add({"header", "", "", "print a whole header line: X-Mesh-Signature-256: VALUE", false,
              true});
    if (auto code = parse_or_exit(settings, kProgram, argc, argv)) return *code;

    const auto secret = first_secret(settings.get("secret"));
    if (secret.empty()) {
        return fail(kProgram, settings.describe("secret") + ": missing value (the webhook secret)");
    }
    const auto& args = settings.positional();
    if (args.size() > 1) return fail(kProgram, "expected one FILE (or '-' for stdin)");
    std::string error;
    const auto body = read_input(args.empty() ? "-" : args.front(), error);
    if (!body) return fail(kProgram, error);

    const auto value = common::sign(secret, *body);
    if (settings.is_set("header")) std::cout << common::kSignatureHeader << ": ";
    std::cout << value << std::endl;
    return 0;
}

}  // namespace meshhook::tools
