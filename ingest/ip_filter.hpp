#pragma once
// Client address checks: the CIDR allow-list (Mesh delivers from one static
// IP) and which X-Forwarded-For hop to believe behind a load balancer.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshhook::ingest {

// An address as 16 bytes; IPv4 (and IPv4-mapped IPv6) live in the last four,
// so "20.22.113.37" and "::ffff:20.22.113.37" are the same client.
struct IpAddress {
    std::array<std::uint8_t, 16> bytes{};
    bool v4 = false;

    static std::optional<IpAddress> parse(std::string_view text);
    std::string to_string() const;
    friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

struct IpNetwork {
    IpAddress base;       // with host bits cleared
    unsigned prefix = 0;  // in bits of the address family (0..32 or 0..128)

    // "20.22.113.37", "10.0.0.0/8", "2001:db8::/32"; nullopt when malformed.
    static std::optional<IpNetwork> parse(std::string_view text);
    bool contains(const IpAddress& address) const;
    std::string to_string() const;
};

// Parses a comma-separated CIDR list; throws common::ConfigError naming `setting`.
std::vector<IpNetwork> parse_networks(std::string_view setting, std::string_view text);

bool contains_any(const std::vector<IpNetwork>& networks, const IpAddress& address);

// The client address: the peer, unless the peer is a trusted proxy, then the
// right-most X-Forwarded-For entry that is not itself a trusted proxy (the
// left part of the header is whatever the client chose to send). An
// unparseable hop stops the walk: that hop is the client, and it is refused
// by an allow-list since it parses as no address (nullopt).
//
// `forwarded_for` holds every X-Forwarded-For field of the request in the
// order received: some proxies add a field of their own instead of appending
// to the last, so reading only the first would believe the client's own.
// They are one list (RFC 9110 5.3), walked from the right end of the last.
std::optional<IpAddress> client_address(const IpAddress& peer,
                                        const std::vector<std::string_view>& forwarded_for,
                                        const std::vector<IpNetwork>& trusted_proxies);

}  // namespace meshhook::ingest
