#include "common/signature.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <array>
#include <stdexcept>

namespace meshhook::common {
namespace {

constexpr std::size_t kDigestSize = 32;
// base64 of 32 bytes: 44 characters, the last one '='.
constexpr std::size_t kEncodedSize = 44;

struct MacDeleter {
    void operator()(EVP_MAC* m) const { EVP_MAC_free(m); }
};
struct MacCtxDeleter {
    void operator()(EVP_MAC_CTX* c) const { EVP_MAC_CTX_free(c); }
};

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// Decodes exactly one base64-encoded 32-byte digest. EVP_DecodeBlock does not
// reject every malformed input on its own (it returns padded lengths), so the
// shape is checked first.
bool decode_digest(std::string_view text, std::array<unsigned char, kDigestSize>& out) {
    if (text.size() != kEncodedSize || text[43] != '=' || text[42] == '=') return false;
    std::array<unsigned char, 33> buf{};
    const int n = EVP_DecodeBlock(buf.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                  static_cast<int>(text.size()));
    if (n != 33) return false;  // 44 chars decode to 33 bytes, the last from padding
    std::copy_n(buf.begin(), kDigestSize, out.begin());
    // Only the canonical encoding is accepted: the last data character carries
    // two padding bits that must be zero, else one signature would have four
    // spellings (found by fuzz_signature). Re-encoding is cheap at this size.
    std::array<unsigned char, kEncodedSize + 1> again{};
    EVP_EncodeBlock(again.data(), out.data(), static_cast<int>(kDigestSize));
    return std::equal(text.begin(), text.end(), again.begin(),
                      [](char a, unsigned char b) { return static_cast<unsigned char>(a) == b; });
}

}  // namespace

std::string_view to_string(SignatureError e) {
    switch (e) {
        case SignatureError::kNone: return "ok";
        case SignatureError::kMissingHeader: return "missing_header";
        case SignatureError::kUndecodable: return "undecodable";
        case SignatureError::kMismatch: return "mismatch";
    }
    return "unknown";
}

struct SignatureVerifier::Impl {
    std::unique_ptr<EVP_MAC, MacDeleter> mac;
    // One context per secret, keyed once. EVP_MAC_init with a null key reuses
    // the key schedule already in the context (OpenSSL 3 HMAC semantics).
    std::vector<std::unique_ptr<EVP_MAC_CTX, MacCtxDeleter>> contexts;
};

SignatureVerifier::SignatureVerifier(const std::vector<std::string>& secrets)
    : impl_(std::make_unique<Impl>()) {
    if (secrets.empty()) throw std::invalid_argument("no webhook secret configured");
    impl_->mac.reset(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    if (!impl_->mac) throw std::runtime_error("OpenSSL: HMAC unavailable");
    for (const auto& secret : secrets) {
        if (secret.empty()) throw std::invalid_argument("empty webhook secret");
        std::unique_ptr<EVP_MAC_CTX, MacCtxDeleter> ctx(EVP_MAC_CTX_new(impl_->mac.get()));
        if (!ctx) throw std::runtime_error("OpenSSL: EVP_MAC_CTX_new failed");
        char digest_name[] = "SHA256";
        const OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
            OSSL_PARAM_construct_end()};
        if (EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(secret.data()),
                         secret.size(), params) != 1) {
            throw std::runtime_error("OpenSSL: EVP_MAC_init failed");
        }
        impl_->contexts.push_back(std::move(ctx));
    }
}

SignatureVerifier::~SignatureVerifier() = default;
SignatureVerifier::SignatureVerifier(SignatureVerifier&&) noexcept = default;
SignatureVerifier& SignatureVerifier::operator=(SignatureVerifier&&) noexcept = default;

std::size_t SignatureVerifier::secret_count() const {
    return impl_->contexts.size();
}

SignatureResult SignatureVerifier::verify(std::optional<std::string_view> signature,
                                          std::string_view body) {
    if (!signature) return {SignatureError::kMissingHeader, 0};
    const std::string_view value = trim(*signature);
    if (value.empty()) return {SignatureError::kMissingHeader, 0};
    std::array<unsigned char, kDigestSize> expected{};
    if (!decode_digest(value, expected)) return {SignatureError::kUndecodable, 0};

    // Every secret is tried even after a match would be found early, so the
    // time taken does not tell which secret is active.
    bool matched = false;
    std::size_t matched_index = 0;
    for (std::size_t i = 0; i < impl_->contexts.size(); ++i) {
        EVP_MAC_CTX* ctx = impl_->contexts[i].get();
        std::array<unsigned char, kDigestSize> actual{};
        std::size_t len = 0;
        if (EVP_MAC_init(ctx, nullptr, 0, nullptr) != 1 ||
            EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(body.data()), body.size()) !=
                1 ||
            EVP_MAC_final(ctx, actual.data(), &len, actual.size()) != 1 || len != kDigestSize) {
            continue;
        }
        if (CRYPTO_memcmp(actual.data(), expected.data(), kDigestSize) == 0 && !matched) {
            matched = true;
            matched_index = i;
        }
    }
    if (!matched) return {SignatureError::kMismatch, 0};
    return {SignatureError::kNone, matched_index};
}

SignatureResult SignatureVerifier::verify(std::optional<std::string_view> signature_256,
                                          std::optional<std::string_view> legacy_signature,
                                          std::string_view body) {
    if (signature_256 && !trim(*signature_256).empty()) return verify(signature_256, body);
    return verify(legacy_signature, body);
}

std::string sign(std::string_view secret, std::string_view body) {
    std::array<unsigned char, kDigestSize> digest{};
    std::size_t len = 0;
    std::unique_ptr<EVP_MAC, MacDeleter> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    std::unique_ptr<EVP_MAC_CTX, MacCtxDeleter> ctx(EVP_MAC_CTX_new(mac.get()));
    char digest_name[] = "SHA256";
    const OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
        OSSL_PARAM_construct_end()};
    if (!ctx ||
        EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(secret.data()),
                     secret.size(), params) != 1 ||
        EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(body.data()),
                       body.size()) != 1 ||
        EVP_MAC_final(ctx.get(), digest.data(), &len, digest.size()) != 1) {
        throw std::runtime_error("OpenSSL: HMAC-SHA256 failed");
    }
    std::array<unsigned char, kEncodedSize + 1> out{};
    const int n = EVP_EncodeBlock(out.data(), digest.data(), static_cast<int>(len));
    return std::string(reinterpret_cast<const char*>(out.data()), static_cast<std::size_t>(n));
}

}  // namespace meshhook::common
