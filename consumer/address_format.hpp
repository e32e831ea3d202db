#pragma once
// Address formats of the network families Mesh serves, as pure functions:
// does a destination address fit its network? Used by the network check
// (consumer/networks.hpp) before a succeeded transfer is credited. Each check
// returns nullopt when the address fits, else a short reason for the review
// record ("wrong checksum", "decodes to 31 bytes, not 32", ...).
//
// What is checked, per family:
// - EVM: "0x" + 40 hex digits; a mixed-case address must carry a valid
//   EIP-55 checksum (Keccak-256 of the lower-case hex); all lower or all
//   upper case carries none and is accepted.
// - Solana: base58 (Bitcoin alphabet) that decodes to exactly 32 bytes.
// - Bitcoin: base58check P2PKH / P2SH (double SHA-256 checksum) and segwit
//   bech32 (v0, BIP-173) / bech32m (v1-v16, BIP-350) with the BIP-141
//   program lengths. Main net: version bytes 0x00 / 0x05 and hrp "bc";
//   test net: 0x6f / 0xc4 and "tb".

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshhook::consumer {

enum class AddressFamily : std::uint8_t { kUnknown, kEvm, kSolana, kBitcoin };

// Mesh's `networkType` ("evm", "solana", "bitcoin", ...; case-insensitive).
// kUnknown for the types without a check here (tron, ripple, ...).
AddressFamily address_family(std::string_view network_type);
std::string_view to_string(AddressFamily family);

enum class BitcoinNet : std::uint8_t { kMain, kTest };

std::optional<std::string> check_evm_address(std::string_view address);
std::optional<std::string> check_solana_address(std::string_view address);
// `nets`: the networks whose address forms are accepted.
std::optional<std::string> check_bitcoin_address(std::string_view address,
                                                 const std::vector<BitcoinNet>& nets);

// The family's check; kUnknown accepts every address (nothing to check).
std::optional<std::string> check_address(AddressFamily family, std::string_view address,
                                         const std::vector<BitcoinNet>& bitcoin_nets);

// The primitives, exposed for their unit tests.
std::array<std::uint8_t, 32> keccak256(std::string_view bytes);
// The same sponge (rate 136 bytes) with another first padding byte: with
// 0x06 it is FIPS 202 SHA3-256, which the tests compare with OpenSSL's.
std::array<std::uint8_t, 32> keccak_sponge_256(std::string_view bytes, std::uint8_t pad);
// Base58 (Bitcoin alphabet) to bytes, leading '1's as zero bytes; nullopt on
// a character outside the alphabet.
std::optional<std::vector<std::uint8_t>> base58_decode(std::string_view text);

struct Bech32Decoded {
    enum class Encoding : std::uint8_t { kBech32, kBech32m };
    Encoding encoding = Encoding::kBech32;
    std::string hrp;                 // lower case
    std::vector<std::uint8_t> data;  // 5-bit values, checksum removed
};
// BIP-173 / BIP-350 string decoding (either checksum constant); nullopt and
// `error` set when the string is not valid bech32 or bech32m.
std::optional<Bech32Decoded> bech32_decode(std::string_view text, std::string& error);

}  // namespace meshhook::consumer
