#include "consumer/address_format.hpp"

#include <boost/algorithm/string/case_conv.hpp>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <locale>

namespace meshhook::consumer {

namespace {

// Case folding of ASCII only, whatever the global locale.
std::string lower(std::string_view s) {
    return boost::algorithm::to_lower_copy(std::string(s), std::locale::classic());
}

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// ------------------------------------------------------------------ Keccak-256
//
// Ethereum's Keccak-256 is the Keccak submission (padding byte 0x01), not
// FIPS 202 SHA3-256 (padding 0x06): the digests differ. OpenSSL 3.0, Debian
// 12's, offers SHA3-256 and KMAC's cSHAKE-padded Keccak only (a plain
// KECCAK-256 digest came in 3.2), so the permutation is here: Keccak-f[1600],
// 24 rounds, rate 136 bytes, in the compact form of the Keccak team's
// reference. Known-answer tests in tests/unit/consumer/address_format_test.cpp.

constexpr std::array<std::uint64_t, 24> kRoundConstants = {
    0x0000000000000001ULL, 0x0000000000008082ULL, 0x800000000000808aULL, 0x8000000080008000ULL,
    0x000000000000808bULL, 0x0000000080000001ULL, 0x8000000080008081ULL, 0x8000000000008009ULL,
    0x000000000000008aULL, 0x0000000000000088ULL, 0x0000000080008009ULL, 0x000000008000000aULL,
    0x000000008000808bULL, 0x800000000000008bULL, 0x8000000000008089ULL, 0x8000000000008003ULL,
    0x8000000000008002ULL, 0x8000000000000080ULL, 0x000000000000800aULL, 0x800000008000000aULL,
    0x8000000080008081ULL, 0x8000000000008080ULL, 0x0000000080000001ULL, 0x8000000080008008ULL};
// rho rotations and pi lane order, visited along the pi cycle from lane 1.
constexpr std::array<unsigned, 24> kRho = {1,  3,  6,  10, 15, 21, 28, 36, 45, 55, 2,  14,
                                           27, 41, 56, 8,  25, 43, 62, 18, 39, 61, 20, 44};
constexpr std::array<std::size_t, 24> kPi = {10, 7,  11, 17, 18, 3, 5,  16, 8,  21, 24, 4,
                                             15, 23, 19, 13, 12, 2, 20, 14, 22, 9,  6,  1};

std::uint64_t rotl(std::uint64_t x, unsigned n) {
    return (x << n) | (x >> (64U - n));
}

void keccak_f1600(std::array<std::uint64_t, 25>& st) {
    std::array<std::uint64_t, 5> bc{};
    for (const std::uint64_t rc : kRoundConstants) {
        for (std::size_t i = 0; i < 5; ++i) {
            bc[i] = st[i] ^ st[i + 5] ^ st[i + 10] ^ st[i + 15] ^ st[i + 20];
        }
        for (std::size_t i = 0; i < 5; ++i) {
            const std::uint64_t t = bc[(i + 4) % 5] ^ rotl(bc[(i + 1) % 5], 1);
            for (std::size_t j = 0; j < 25; j += 5) st[j + i] ^= t;
        }
        std::uint64_t t = st[1];
        for (std::size_t i = 0; i < 24; ++i) {
            const std::size_t j = kPi[i];
            const std::uint64_t next = st[j];
            st[j] = rotl(t, kRho[i]);
            t = next;
        }
        for (std::size_t j = 0; j < 25; j += 5) {
            for (std::size_t i = 0; i < 5; ++i) bc[i] = st[j + i];
            for (std::size_t i = 0; i < 5; ++i) st[j + i] ^= ~bc[(i + 1) % 5] & bc[(i + 2) % 5];
        }
        st[0] ^= rc;
    }
}

// ------------------------------------------------------------------ bech32

constexpr std::string_view kBech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";
constexpr std::uint32_t kBech32Const = 1;
constexpr std::uint32_t kBech32mConst = 0x2bc830a3;

std::uint32_t bech32_polymod(const std::vector<std::uint8_t>& values) {
    constexpr std::array<std::uint32_t, 5> kGen = {0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd,
                                                   0x2a1462b3};
    std::uint32_t chk = 1;
    for (const std::uint8_t v : values) {
        const std::uint32_t top = chk >> 25U;
        chk = ((chk & 0x1ffffffU) << 5U) ^ v;
        for (unsigned i = 0; i < 5; ++i) {
            if (((top >> i) & 1U) != 0) chk ^= kGen[i];
        }
    }
    return chk;
}

// 5-bit groups to bytes, BIP-173's convertbits without padding: at most 4
// bits of zero padding are allowed.
std::optional<std::vector<std::uint8_t>> five_to_eight(const std::uint8_t* data, std::size_t n) {
    std::uint32_t acc = 0;
    unsigned bits = 0;
    std::vector<std::uint8_t> out;
    for (std::size_t i = 0; i < n; ++i) {
        acc = ((acc << 5U) | data[i]) & 0xfffU;
        bits += 5;
        while (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<std::uint8_t>((acc >> bits) & 0xffU));
        }
    }
    if (bits >= 5 || ((acc << (8 - bits)) & 0xffU) != 0) return std::nullopt;
    return out;
}

std::optional<std::string> check_segwit(std::string_view address, std::string_view hrp) {
    std::string error;
    const auto decoded = bech32_decode(address, error);
    if (!decoded) return "not bech32: " + error;
    if (decoded->hrp != hrp) return "human-readable part \"" + decoded->hrp + "\"";
    if (decoded->data.empty()) return "no witness version";
    const std::uint8_t version = decoded->data[0];
    if (version > 16) return "witness version " + std::to_string(version);
    const auto program = five_to_eight(decoded->data.data() + 1, decoded->data.size() - 1);
    if (!program) return "bad padding in the witness program";
    if (program->size() < 2 || program->size() > 40) {
        return "witness program of " + std::to_string(program->size()) + " bytes";
    }
    if (version == 0 && program->size() != 20 && program->size() != 32) {
        return "v0 witness program of " + std::to_string(program->size()) + " bytes";
    }
    const auto want =
        version == 0 ? Bech32Decoded::Encoding::kBech32 : Bech32Decoded::Encoding::kBech32m;
    if (decoded->encoding != want) {
        return version == 0 ? "v0 address with a bech32m checksum (BIP-350 wants bech32)"
                            : "v1+ address with a bech32 checksum (BIP-350 wants bech32m)";
    }
    return std::nullopt;
}

std::optional<std::string> check_base58check(std::string_view address,
                                             const std::vector<BitcoinNet>& nets) {
    const auto bytes = base58_decode(address);
    if (!bytes) return std::string("not base58");
    if (bytes->size() != 25) {
        return "decodes to " + std::to_string(bytes->size()) + " bytes, not 25";
    }
    std::array<unsigned char, SHA256_DIGEST_LENGTH> once{};
    std::array<unsigned char, SHA256_DIGEST_LENGTH> twice{};
    SHA256(bytes->data(), 21, once.data());
    SHA256(once.data(), once.size(), twice.data());
    if (std::memcmp(twice.data(), bytes->data() + 21, 4) != 0) return std::string("wrong checksum");
    const std::uint8_t version = (*bytes)[0];
    for (const BitcoinNet net : nets) {
        const bool main = net == BitcoinNet::kMain;
        if (version == (main ? 0x00 : 0x6f) || version == (main ? 0x05 : 0xc4)) {
            return std::nullopt;
        }
    }
    return "version byte " + std::to_string(version) + " is not a P2PKH/P2SH address here";
}

}  // namespace

AddressFamily address_family(std::string_view network_type) {
    const std::string t = lower(network_type);
    if (t == "evm") return AddressFamily::kEvm;
    if (t == "solana") return AddressFamily::kSolana;
    if (t == "bitcoin") return AddressFamily::kBitcoin;
    return AddressFamily::kUnknown;
}

std::string_view to_string(AddressFamily family) {
    switch (family) {
        case AddressFamily::kEvm: return "evm";
        case AddressFamily::kSolana: return "solana";
        case AddressFamily::kBitcoin: return "bitcoin";
        case AddressFamily::kUnknown: return "unknown";
    }
    return "unknown";
}

std::array<std::uint8_t, 32> keccak256(std::string_view bytes) {
    return keccak_sponge_256(bytes, 0x01);  // Keccak's padding; SHA3 has 0x06
}

std::array<std::uint8_t, 32> keccak_sponge_256(std::string_view bytes, std::uint8_t pad) {
    constexpr std::size_t kRate = 136;
    std::array<std::uint64_t, 25> st{};
    auto absorb = [&st](const std::uint8_t* block) {
        for (std::size_t i = 0; i < kRate / 8; ++i) {
            std::uint64_t lane = 0;
            for (unsigned b = 0; b < 8; ++b) {
                lane |= static_cast<std::uint64_t>(block[i * 8 + b]) << (8U * b);
            }
            st[i] ^= lane;
        }
        keccak_f1600(st);
    };
    const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
    std::size_t n = bytes.size();
    for (; n >= kRate; n -= kRate, p += kRate) absorb(p);
    std::array<std::uint8_t, kRate> last{};
    std::copy(p, p + n, last.begin());
    last[n] ^= pad;
    last[kRate - 1] ^= 0x80;
    absorb(last.data());
    std::array<std::uint8_t, 32> out{};
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<std::uint8_t>(st[i / 8] >> (8U * (i % 8)));
    }
    return out;
}

std::optional<std::vector<std::uint8_t>> base58_decode(std::string_view text) {
    static constexpr std::string_view kAlphabet =
        "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    std::size_t zeros = 0;
    while (zeros < text.size() && text[zeros] == '1') ++zeros;
    std::vector<std::uint8_t> value;  // little-endian, without the leading zeros
    for (std::size_t i = zeros; i < text.size(); ++i) {
        const auto digit = kAlphabet.find(text[i]);
        if (digit == std::string_view::npos) return std::nullopt;
        auto carry = static_cast<std::uint32_t>(digit);
        for (std::uint8_t& byte : value) {
            carry += static_cast<std::uint32_t>(byte) * 58U;
            byte = static_cast<std::uint8_t>(carry & 0xffU);
            carry >>= 8U;
        }
        for (; carry > 0; carry >>= 8U) value.push_back(static_cast<std::uint8_t>(carry & 0xffU));
    }
    std::vector<std::uint8_t> out(zeros, 0);
    out.insert(out.end(), value.rbegin(), value.rend());
    return out;
}

std::optional<Bech32Decoded> bech32_decode(std::string_view text, std::string& error) {
    if (text.size() > 90) {
        error = "longer than 90 characters";
        return std::nullopt;
    }
    bool has_lower = false;
    bool has_upper = false;
    for (const char c : text) {
        if (c < 33 || c > 126) {
            error = "character out of range";
            return std::nullopt;
        }
        has_lower = has_lower || (c >= 'a' && c <= 'z');
        has_upper = has_upper || (c >= 'A' && c <= 'Z');
    }
    if (has_lower && has_upper) {
        error = "mixed case";
        return std::nullopt;
    }
    const std::string s = lower(text);
    const auto sep = s.rfind('1');
    if (sep == std::string::npos || sep == 0 || sep + 7 > s.size()) {
        error = "no separator, an empty human-readable part or a checksum under 6 characters";
        return std::nullopt;
    }
    Bech32Decoded out;
    out.hrp = s.substr(0, sep);
    std::vector<std::uint8_t> values;
    for (const char c : out.hrp) values.push_back(static_cast<std::uint8_t>(c >> 5U));
    values.push_back(0);
    for (const char c : out.hrp) values.push_back(static_cast<std::uint8_t>(c & 31));
    const std::size_t hrp_part = values.size();
    for (std::size_t i = sep + 1; i < s.size(); ++i) {
        const auto v = kBech32Charset.find(s[i]);
        if (v == std::string_view::npos) {
            error = std::string("character '") + s[i] + "' outside the bech32 alphabet";
            return std::nullopt;
        }
        values.push_back(static_cast<std::uint8_t>(v));
    }
    const std::uint32_t residue = bech32_polymod(values);
    if (residue == kBech32Const) {
        out.encoding = Bech32Decoded::Encoding::kBech32;
    } else if (residue == kBech32mConst) {
        out.encoding = Bech32Decoded::Encoding::kBech32m;
    } else {
        error = "wrong checksum";
        return std::nullopt;
    }
    out.data.assign(values.begin() + static_cast<std::ptrdiff_t>(hrp_part), values.end() - 6);
    return out;
}

std::optional<std::string> check_evm_address(std::string_view address) {
    if (!address.starts_with("0x")) return std::string("no 0x prefix");
    const std::string_view hex = address.substr(2);
    if (hex.size() != 40) {
        return std::to_string(hex.size()) + " hex digits after 0x, not 40";
    }
    bool has_lower = false;
    bool has_upper = false;
    for (const char c : hex) {
        if (!is_hex(c)) return std::string("'") + c + "' is not a hex digit";
        has_lower = has_lower || (c >= 'a' && c <= 'f');
        has_upper = has_upper || (c >= 'A' && c <= 'F');
    }
    if (!(has_lower && has_upper)) return std::nullopt;  // no EIP-55 checksum to verify
    const std::array<std::uint8_t, 32> hash = keccak256(lower(hex));
    for (std::size_t i = 0; i < hex.size(); ++i) {
        const char c = hex[i];
        if (c >= '0' && c <= '9') continue;
        const unsigned nibble = (i % 2 == 0) ? (hash[i / 2] >> 4U) : (hash[i / 2] & 0x0fU);
        const bool upper = c >= 'A' && c <= 'F';
        if (upper != (nibble >= 8)) return std::string("wrong EIP-55 checksum (letter case)");
    }
    return std::nullopt;
}

std::optional<std::string> check_solana_address(std::string_view address) {
    if (address.size() < 32 || address.size() > 44) {
        return std::to_string(address.size()) + " characters, not 32 to 44";
    }
    const auto bytes = base58_decode(address);
    if (!bytes) return std::string("not base58");
    if (bytes->size() != 32) {
        return "decodes to " + std::to_string(bytes->size()) + " bytes, not 32";
    }
    return std::nullopt;
}

std::optional<std::string> check_bitcoin_address(std::string_view address,
                                                 const std::vector<BitcoinNet>& nets) {
    if (address.empty() || address.size() > 90) {
        return std::to_string(address.size()) + " characters";
    }
    const std::string head = lower(address.substr(0, 3));
    if (head == "bc1" || head == "tb1") {
        const BitcoinNet net = head == "bc1" ? BitcoinNet::kMain : BitcoinNet::kTest;
        if (std::find(nets.begin(), nets.end(), net) == nets.end()) {
            return net == BitcoinNet::kMain ? std::string("a main-net address here")
                                            : std::string("a test-net address here");
        }
        return check_segwit(address, head.substr(0, 2));
    }
    return check_base58check(address, nets);
}

std::optional<std::string> check_address(AddressFamily family, std::string_view address,
                                         const std::vector<BitcoinNet>& bitcoin_nets) {
    switch (family) {
        case AddressFamily::kEvm: return check_evm_address(address);
        case AddressFamily::kSolana: return check_solana_address(address);
        case AddressFamily::kBitcoin: return check_bitcoin_address(address, bitcoin_nets);
        case AddressFamily::kUnknown: return std::nullopt;
    }
    return std::nullopt;
}

}  // namespace meshhook::consumer
