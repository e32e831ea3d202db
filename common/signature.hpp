#pragma once
// Mesh webhook signature: base64(HMAC-SHA256(secret, raw body)) in the
// X-Mesh-Signature-256 header (older integrations: X-Mesh-Signature).

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshhook::common {

inline constexpr std::string_view kSignatureHeader = "X-Mesh-Signature-256";
inline constexpr std::string_view kLegacySignatureHeader = "X-Mesh-Signature";

enum class SignatureError {
    kNone,
    kMissingHeader,  // neither header present (or present but empty)
    kUndecodable,    // not base64 of a 32-byte digest
    kMismatch,       // well-formed, but no active secret produced it
};

std::string_view to_string(SignatureError e);

struct SignatureResult {
    SignatureError error = SignatureError::kNone;
    std::size_t secret_index = 0;  // which active secret matched (rotation visibility)
    bool ok() const { return error == SignatureError::kNone; }
};

// Verifies deliveries against every active secret of one environment.
//
// Not thread-safe by design, like a simdjson parser: each I/O thread owns one.
// The HMAC contexts are keyed once at construction, so a verify() call does
// no heap allocation and no key schedule work.
class SignatureVerifier {
public:
    // Throws std::invalid_argument if the list is empty or a secret is empty.
    explicit SignatureVerifier(const std::vector<std::string>& secrets);
    ~SignatureVerifier();
    SignatureVerifier(const SignatureVerifier&) = delete;
    SignatureVerifier& operator=(const SignatureVerifier&) = delete;
    SignatureVerifier(SignatureVerifier&&) noexcept;
    SignatureVerifier& operator=(SignatureVerifier&&) noexcept;

    // `signature` is the header value, nullopt when the header is absent.
    SignatureResult verify(std::optional<std::string_view> signature, std::string_view body);

    // Prefers X-Mesh-Signature-256 when present, else X-Mesh-Signature.
    SignatureResult verify(std::optional<std::string_view> signature_256,
                           std::optional<std::string_view> legacy_signature,
                           std::string_view body);

    std::size_t secret_count() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// base64(HMAC-SHA256(secret, body)): what Mesh puts in the header. For senders
// and tests; allocates.
std::string sign(std::string_view secret, std::string_view body);

}  // namespace meshhook::common
