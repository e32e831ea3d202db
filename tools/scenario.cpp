#include "tools/scenario.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <random>
#include <string_view>

#include "tools/fixtures.hpp"

namespace meshhook::tools {
namespace {

// The standard distributions differ between standard libraries; the engine
// does not, so a seed means the same scenario everywhere.
class Rng {
public:
    explicit Rng(std::uint64_t seed) : engine_(seed) {}
    std::uint64_t below(std::uint64_t n) { return engine_() % n; }
    bool chance(unsigned percent) { return below(100) < percent; }
    std::uint64_t next() { return engine_(); }

private:
    std::mt19937_64 engine_;
};

std::string uuid(Rng& rng) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    const std::uint64_t a = rng.next();
    const std::uint64_t b = rng.next();
    for (int i = 0; i < 32; ++i) {
        const std::uint64_t word = i < 16 ? a : b;
        const int shift = (i % 16) * 4;
        char c = kHex[(word >> shift) & 0xF];
        if (i == 12) c = '4';  // version 4
        if (i == 16) c = kHex[8 + ((word >> shift) & 0x3)];
        if (i == 8 || i == 12 || i == 16 || i == 20) out += '-';
        out += c;
    }
    return out;
}

std::string hex_string(Rng& rng, std::size_t n) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out = "0x";
    for (std::size_t i = 0; i < n; ++i) out += kHex[rng.below(16)];
    return out;
}

// A Solana address (base58 text of a 32-byte key, what the consumer's
// network check wants) from one uuid's randomness, so that a seed gives the
// same scenario as before: 43 base58 digits whose first is at least '5'
// always decode to exactly 32 bytes.
std::string solana_address(Rng& rng) {
    static constexpr std::string_view kBase58 =
        "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    std::string out;
    for (const char c : uuid(rng)) {
        if (c == '-') continue;
        const auto v = static_cast<std::size_t>(c <= '9' ? c - '0' : c - 'a' + 10);
        out += kBase58[(out.empty() ? 4 : 20) + v];
    }
    return out + "xKXtg2CW87d";  // 32 + 11 digits
}

// A positive decimal as JSON number text: "1234.5", "0.000000000000000001",
// "250.000000000000000001", "17". Never exponent notation.
std::string amount(Rng& rng) {
    std::string integer =
        std::to_string(rng.chance(20) ? 0 : rng.below(rng.chance(50) ? 1000 : 1000000));
    const auto fraction_digits = static_cast<std::size_t>(
        rng.chance(15) ? 0 : (rng.chance(30) ? 18 + rng.below(4) : 1 + rng.below(8)));
    std::string fraction;
    for (std::size_t i = 0; i < fraction_digits; ++i)
        fraction += static_cast<char>('0' + rng.below(10));
    while (!fraction.empty() && fraction.back() == '0')
        fraction.back() = static_cast<char>('1' + rng.below(9));
    if (integer == "0" && fraction.empty()) fraction = "1";
    return fraction.empty() ? integer : integer + "." + fraction;
}

std::string status_text(Rng& rng, std::string_view lower) {
    std::string s(lower);
    switch (rng.below(4)) {
        case 0:
        case 1:  // Mesh's example: "Pending"
            s[0] = static_cast<char>(s[0] - 'a' + 'A');
            break;
        case 2: break;
        default:
            for (auto& c : s) c = static_cast<char>(c - 'a' + 'A');
    }
    return s;
}

struct Asset {
    std::string_view token;
    std::string_view chain;
};
constexpr std::array<Asset, 5> kAssets = {{{"USDC", "Ethereum"},
                                           {"USDC", "Solana"},
                                           {"USDT", "Ethereum"},
                                           {"ETH", "Ethereum"},
                                           {"USDC", "Polygon"}}};
constexpr std::array<std::string_view, 4> kProviders = {"Coinbase", "Binance", "Kraken",
                                                        "Robinhood"};

struct Transfer {
    std::string id;
    std::string user_id;
    std::string transaction_id;
    Asset asset;
    std::string provider;
    std::string address;
    std::string source_amount;
    std::string destination_amount;
    std::string tx_hash;
    bool camel = false;
};

struct Event {
    std::string event_id;
    std::string status;  // lower case
    std::int64_t timestamp_ms = 0;
};

std::string json_str(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

std::string body(const Transfer& t, const Event& e, std::string_view status,
                 std::string_view delivery_id, std::int64_t sent_s) {
    // Field order as in Mesh's example; names in one casing per transfer
    // (an integration sees one or the other).
    const auto name = [&](std::string_view pascal) {
        std::string n(pascal);
        if (t.camel) n[0] = static_cast<char>(n[0] - 'A' + 'a');
        return json_str(n);
    };
    const bool succeeded = e.status == "succeeded";
    std::string out = "{";
    out += name("Id") + ":" + json_str(delivery_id);
    out += "," + name("EventId") + ":" + json_str(e.event_id);
    out += "," + name("SentTimestamp") + ":" + std::to_string(sent_s);
    out += "," + name("UserId") + ":" + json_str(t.user_id);
    out += "," + name("TransactionId") + ":" + json_str(t.transaction_id);
    out += "," + name("TransferId") + ":" + json_str(t.id);
    out += "," + name("TransferStatus") + ":" + json_str(status);
    out += "," + name("TxHash") + ":" + (succeeded ? json_str(t.tx_hash) : "null");
    out += "," + name("Chain") + ":" + json_str(t.asset.chain);
    out += "," + name("Token") + ":" + json_str(t.asset.token);
    out += "," + name("DestinationAddress") + ":" + json_str(t.address);
    out += "," + name("SourceAccountProvider") + ":" + json_str(t.provider);
    out += "," + name("SourceAmount") + ":" + t.source_amount;
    out += "," + name("DestinationAmount") + ":" +
           (e.status == "failed" ? std::string("null") : t.destination_amount);
    out += "," + name("RefundAddress") + ":null";
    out += "," + name("Timestamp") + ":" + std::to_string(e.timestamp_ms);
    out += "}";
    return out;
}

}  // namespace

Scenario demo_scenario() {
    Scenario s;
    Stream stream;
    for (const auto& f : demo_fixtures())
        stream.push_back({std::string(f.name), std::string(f.body)});
    s.deliveries = stream.size();
    s.transfers = 2;
    s.credits.push_back({std::string(kDemoTransferId), std::string(kDemoAmount)});
    s.streams.push_back(std::move(stream));
    return s;
}

Scenario random_scenario(std::size_t transfers, std::uint64_t seed) {
    Rng rng(seed);
    Scenario s;
    s.transfers = transfers;
    // Timestamps near the present so a receiver's replay window accepts them.
    const std::int64_t base_s = std::chrono::duration_cast<std::chrono::seconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
    for (std::size_t i = 0; i < transfers; ++i) {
        Transfer t;
        t.id = uuid(rng);
        t.user_id = "user-" + std::to_string(rng.below(100000));
        t.transaction_id = "order-" + std::to_string(100000 + i);
        t.asset = kAssets[rng.below(kAssets.size())];
        t.provider = std::string(kProviders[rng.below(kProviders.size())]);
        t.address = t.asset.chain == "Solana" ? solana_address(rng) : hex_string(rng, 40);
        t.destination_amount = amount(rng);
        t.source_amount = amount(rng);
        t.tx_hash = hex_string(rng, 64);
        t.camel = rng.chance(25);

        std::vector<std::string> statuses = {"pending"};
        if (rng.chance(70)) statuses.emplace_back("processing");
        const auto outcome = rng.below(100);
        if (outcome < 70) {
            statuses.emplace_back("succeeded");
            s.credits.push_back({t.id, t.destination_amount});
        } else if (outcome < 90) {
            statuses.emplace_back("failed");
        }  // else: still in flight when the scenario ends

        const std::int64_t start_ms =
            (base_s - 600) * 1000 + static_cast<std::int64_t>(rng.below(600000));
        std::vector<Event> events;
        for (std::size_t k = 0; k < statuses.size(); ++k) {
            events.push_back(
                {uuid(rng), statuses[k], start_ms + static_cast<std::int64_t>(k) * 20000});
        }

        std::int64_t sent_s = base_s - 300 + static_cast<std::int64_t>(rng.below(200));
        std::vector<Delivery> planned;
        std::vector<Delivery> late;  // retries that arrive after later events
        for (const auto& e : events) {
            const std::string label = "transfer " + std::to_string(i + 1) + " " + e.status;
            const std::string first = body(t, e, status_text(rng, e.status), uuid(rng), sent_s++);
            planned.push_back({label, first});
            if (rng.chance(10)) planned.push_back({label + " (duplicate)", first});
            // A retry is Mesh sending the same event again: same EventId, new
            // delivery Id and SentTimestamp, possibly after later events.
            if (rng.chance(20)) {
                Delivery retry{label + " (retry)",
                               body(t, e, status_text(rng, e.status), uuid(rng), sent_s++)};
                (rng.chance(50) ? planned : late).push_back(std::move(retry));
            }
        }
        for (auto& d : late) planned.push_back(std::move(d));
        // Out of order: swap a random adjacent pair now and then.
        if (planned.size() > 1 && rng.chance(20)) {
            const auto at = rng.below(planned.size() - 1);
            std::swap(planned[at], planned[at + 1]);
        }
        s.deliveries += planned.size();
        s.streams.push_back(std::move(planned));
    }
    return s;
}

}  // namespace meshhook::tools
