// Header values and bodies from the fuzzer: decoding must never crash, and a
// body must verify only with its own signature.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/signature.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static meshhook::common::SignatureVerifier verifier({"whsec_test_fixture_secret", "second"});
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    // First line: the header value; the rest: the body.
    const auto nl = input.find('\n');
    const std::string_view header = input.substr(0, nl);
    const std::string_view body =
        nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);
    const auto r = verifier.verify(header, body);
    const std::string good = meshhook::common::sign("whsec_test_fixture_secret", body);
    if (r.ok() && header.find(good) == std::string_view::npos &&
        header.find(meshhook::common::sign("second", body)) == std::string_view::npos) {
        std::abort();  // accepted a signature that is not the body's
    }
    if (!verifier.verify(good, body).ok()) std::abort();
    return 0;
}
