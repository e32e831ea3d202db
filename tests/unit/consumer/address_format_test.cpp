// Address formats with real addresses of each family, valid and invalid:
// EIP-55's own vectors and well-known contracts (EVM), well-known program and
// mint accounts (Solana), Bitcoin's genesis and BIP-13 addresses and the
// BIP-173 / BIP-350 test vectors (bech32, bech32m, segwit).

#include "consumer/address_format.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <string>
#include <vector>

namespace meshhook::consumer {
namespace {

std::string hex(const std::array<std::uint8_t, 32>& bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (const std::uint8_t b : bytes) {
        out += kHex[b >> 4U];
        out += kHex[b & 0x0fU];
    }
    return out;
}

const std::vector<BitcoinNet> kMain = {BitcoinNet::kMain};
const std::vector<BitcoinNet> kBoth = {BitcoinNet::kMain, BitcoinNet::kTest};

// `address` is refused by its family's check (main-net forms for Bitcoin),
// with a reason that contains `why`.
void expect_refused(AddressFamily family, const std::string& address, const std::string& why) {
    const auto problem = check_address(family, address, kMain);
    ASSERT_TRUE(problem.has_value()) << address;
    EXPECT_NE(problem->find(why), std::string::npos) << address << ": " << *problem;
}

// ---------------------------------------------------------------- Keccak-256

TEST(Keccak256, KnownAnswersDifferFromSha3) {
    EXPECT_EQ(hex(keccak256("")),
              "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470");
    EXPECT_EQ(hex(keccak256("abc")),
              "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45");
    // ERC-20's Transfer event topic: keccak256 of its signature.
    EXPECT_EQ(hex(keccak256("Transfer(address,address,uint256)")),
              "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");
}

// The sponge with SHA3's padding must give OpenSSL's SHA3-256 for every
// length around the 136-byte block boundary: the permutation and the
// absorbing of several blocks are then right, and Keccak-256 differs only
// in its padding byte.
TEST(Keccak256, SpongeWithSha3PaddingMatchesOpenSslAcrossBlockBoundaries) {
    for (const std::size_t n : {0UL, 1UL, 55UL, 135UL, 136UL, 137UL, 271UL, 272UL, 273UL, 1000UL}) {
        std::string input(n, '\0');
        for (std::size_t i = 0; i < n; ++i) input[i] = static_cast<char>((i * 31 + 7) & 0xff);
        std::array<std::uint8_t, 32> expected{};
        unsigned int len = 0;
        ASSERT_EQ(
            EVP_Digest(input.data(), input.size(), expected.data(), &len, EVP_sha3_256(), nullptr),
            1);
        ASSERT_EQ(len, 32U);
        EXPECT_EQ(hex(keccak_sponge_256(input, 0x06)), hex(expected)) << "length " << n;
        EXPECT_NE(hex(keccak256(input)), hex(expected)) << "length " << n;
    }
}

// ---------------------------------------------------------------- EVM

TEST(EvmAddress, AcceptsEip55VectorsAllLowerAndAllUpper) {
    for (const char* a : {// EIP-55's vectors
                          "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                          "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
                          "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
                          "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
                          "0x52908400098527886E0F7030069857D2E4169EE7",
                          "0x8617E340B3D01FA5F11F306F4090FD50E238070D",
                          "0xde709f2102306220921060314715629080e2fb77",
                          "0x27b1fdb04752bbc536007a920d24acb045561c26",
                          // USDC and USDT on Ethereum
                          "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48",
                          "0xdAC17F958D2ee523a2206206994597C13D831ec7",
                          // the same, without checksum
                          "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"}) {
        EXPECT_EQ(check_evm_address(a), std::nullopt) << a;
    }
}

TEST(EvmAddress, RefusesWrongChecksumLengthAlphabetAndPrefix) {
    const auto refused = [](const std::string& a, const std::string& why) {
        expect_refused(AddressFamily::kEvm, a, why);
    };
    // One letter's case flipped: the checksum no longer holds.
    refused("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", "checksum");
    refused("0xA0b86991C6218b36c1d19D4a2e9Eb0cE3606eB48", "checksum");
    refused("0xa0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "checksum");
    refused("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB4", "39 hex digits");
    refused("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB481", "41 hex digits");
    refused("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eBg8", "not a hex digit");
    refused("A0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "no 0x prefix");
    refused("0XA0B86991C6218B36C1D19D4A2E9EB0CE3606EB48", "no 0x prefix");
    refused("", "no 0x prefix");
}

// ---------------------------------------------------------------- Solana

TEST(SolanaAddress, AcceptsBase58ThatDecodesTo32Bytes) {
    for (const char* a : {"EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",  // USDC mint
                          "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",   // SPL Token program
                          "So11111111111111111111111111111111111111112",   // wrapped SOL mint
                          "11111111111111111111111111111111"}) {           // System program
        EXPECT_EQ(check_solana_address(a), std::nullopt) << a;
    }
    const auto zeros = base58_decode("11111111111111111111111111111111");
    ASSERT_TRUE(zeros.has_value());
    EXPECT_EQ(*zeros, std::vector<std::uint8_t>(32, 0));
}

TEST(SolanaAddress, RefusesWrongAlphabetAndLength) {
    const auto refused = [](const std::string& a, const std::string& why) {
        expect_refused(AddressFamily::kSolana, a, why);
    };
    // 0, O, I and l are not in base58.
    refused("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt10", "not base58");
    refused("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDtOv", "not base58");
    refused("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDtlv", "not base58");
    // Too long or too short to be 32 bytes. (A Solana address has no
    // checksum: the USDC mint without its last character is 43 characters
    // that still decode to 32 bytes, another valid key. Only the format is
    // checked.)
    refused("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1vA", "45 characters");
    refused("zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "33 bytes, not 32");
    refused("EPjFWdd5AufqSSqeM2qN1xzybapC8G4w", "bytes, not 32");
    refused("1111111111111111111111111111111", "31 characters");
    // An EVM address is not a Solana one.
    refused("0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "not base58");
}

// ---------------------------------------------------------------- Bitcoin

TEST(BitcoinAddress, AcceptsBase58CheckP2pkhAndP2sh) {
    EXPECT_EQ(check_bitcoin_address("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", kMain), std::nullopt);
    EXPECT_EQ(check_bitcoin_address("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", kMain), std::nullopt);
}

TEST(BitcoinAddress, AcceptsBip350SegwitVectorsOfItsNet) {
    for (const char* a :
         {"BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
          "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
          "BC1SW50QGDZ25J", "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs",
          "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0"}) {
        EXPECT_EQ(check_bitcoin_address(a, kMain), std::nullopt) << a;
    }
    for (const char* a : {"tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
                          "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
                          "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c"}) {
        EXPECT_EQ(check_bitcoin_address(a, kBoth), std::nullopt) << a;
        // A test-net address where only main net is accepted (production).
        EXPECT_NE(check_bitcoin_address(a, kMain), std::nullopt) << a;
    }
}

TEST(BitcoinAddress, RefusesBip350InvalidSegwitVectors) {
    for (const char* a :
         {"tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut",
          "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd",
          "tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf",
          "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL",
          "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh",
          "tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47",
          "bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4",
          "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R", "bc1pw5dgrnzv",
          "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav",
          "BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P",
          "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq",
          "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf",
          "tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j", "bc1gmk9yu"}) {
        EXPECT_NE(check_bitcoin_address(a, kBoth), std::nullopt) << a;
    }
}

TEST(BitcoinAddress, RefusesWrongChecksumLengthAlphabetAndPrefix) {
    const auto refused = [](const std::string& a, const std::string& why) {
        expect_refused(AddressFamily::kBitcoin, a, why);
    };
    refused("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", "wrong checksum");
    refused("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLz", "wrong checksum");
    refused("1A1zP1eP5QGefi2DMPTfTL5SLmv7Divf", "bytes, not 25");
    refused("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfN0", "not base58");
    // Tron's USDT contract: valid base58check, version byte 0x41.
    refused("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", "version byte 65");
    // A segwit vector with one character changed.
    refused("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", "wrong checksum");
    refused("", "0 characters");
}

TEST(Bech32, DecodesBip173AndBip350StringVectorsWithTheirEncoding) {
    std::string error;
    for (const char* s :
         {"A12UEL5L", "a12uel5l", "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
          "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w", "?1ezyfcl"}) {
        const auto d = bech32_decode(s, error);
        ASSERT_TRUE(d.has_value()) << s << ": " << error;
        EXPECT_EQ(d->encoding, Bech32Decoded::Encoding::kBech32) << s;
    }
    for (const char* s :
         {"A1LQFN3A", "a1lqfn3a", "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
          "split1checkupstagehandshakeupstreamerranterredcaperredlc445v", "?1v759aa"}) {
        const auto d = bech32_decode(s, error);
        ASSERT_TRUE(d.has_value()) << s << ": " << error;
        EXPECT_EQ(d->encoding, Bech32Decoded::Encoding::kBech32m) << s;
    }
    for (const char* s : {"qyrz8wqd2c9m", "1qyrz8wqd2c9m", "y1b0jsk6g", "lt1igcx5c0", "in1muywd",
                          "mm1crxm3i", "au1s5cgom", "M1VUXWEZ", "16plkw9", "1p2gdwpf"}) {
        EXPECT_FALSE(bech32_decode(s, error).has_value()) << s;
    }
}

TEST(AddressFamily, FromMeshNetworkType) {
    EXPECT_EQ(address_family("evm"), AddressFamily::kEvm);
    EXPECT_EQ(address_family("EVM"), AddressFamily::kEvm);
    EXPECT_EQ(address_family("solana"), AddressFamily::kSolana);
    EXPECT_EQ(address_family("bitcoin"), AddressFamily::kBitcoin);
    EXPECT_EQ(address_family("tron"), AddressFamily::kUnknown);
    EXPECT_EQ(check_address(AddressFamily::kUnknown, "anything", kMain), std::nullopt);
    EXPECT_NE(check_address(AddressFamily::kEvm, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", kMain),
              std::nullopt);
}

}  // namespace
}  // namespace meshhook::consumer
