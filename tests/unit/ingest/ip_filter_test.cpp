#include "ingest/ip_filter.hpp"

#include <gtest/gtest.h>

#include "common/config.hpp"

namespace meshhook::ingest {
namespace {

IpAddress ip(std::string_view s) {
    return IpAddress::parse(s).value();
}

TEST(IpNetwork, ContainsAddressesUnderItsPrefixOnly) {
    const auto net = IpNetwork::parse("10.1.2.3/8").value();
    EXPECT_EQ(net.to_string(), "10.0.0.0/8");
    EXPECT_TRUE(net.contains(ip("10.255.0.1")));
    EXPECT_FALSE(net.contains(ip("11.0.0.1")));
    const auto odd = IpNetwork::parse("192.168.1.128/25").value();
    EXPECT_TRUE(odd.contains(ip("192.168.1.200")));
    EXPECT_FALSE(odd.contains(ip("192.168.1.127")));
}

TEST(IpNetwork, BareAddressIsASingleHost) {
    const auto net = IpNetwork::parse("20.22.113.37").value();
    EXPECT_TRUE(net.contains(ip("20.22.113.37")));
    EXPECT_FALSE(net.contains(ip("20.22.113.38")));
}

TEST(IpNetwork, Ipv4MappedIpv6IsTheSameClient) {
    const auto net = IpNetwork::parse("20.22.113.37/32").value();
    EXPECT_TRUE(net.contains(ip("::ffff:20.22.113.37")));
}

TEST(IpNetwork, Ipv6Prefixes) {
    const auto net = IpNetwork::parse("2001:db8::/32").value();
    EXPECT_TRUE(net.contains(ip("2001:db8:1::5")));
    EXPECT_FALSE(net.contains(ip("2001:db9::1")));
    EXPECT_FALSE(net.contains(ip("10.0.0.1")));
    EXPECT_TRUE(IpNetwork::parse("::/0").value().contains(ip("2001:db9::1")));
}

TEST(IpNetwork, RejectsMalformedInput) {
    for (const char* bad :
         {"", "10.0.0.0/", "10.0.0.0/33", "10.0.0/8", "::/129", "host", "1.2.3.4/x"}) {
        EXPECT_FALSE(IpNetwork::parse(bad)) << bad;
    }
}

TEST(IpNetwork, ListErrorNamesTheSetting) {
    try {
        parse_networks("--allow-ips (INGEST_ALLOW_IPS)", "10.0.0.0/8, nonsense");
        FAIL();
    } catch (const common::ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("--allow-ips (INGEST_ALLOW_IPS)"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("nonsense"), std::string::npos);
    }
    EXPECT_EQ(parse_networks("x", " 10.0.0.0/8 , ,1.2.3.4").size(), 2u);
}

TEST(ClientAddress, PeerUnlessThePeerIsATrustedProxy) {
    const auto proxies = parse_networks("p", "10.0.0.0/8");
    EXPECT_EQ(client_address(ip("198.51.100.1"), {"20.22.113.37"}, proxies), ip("198.51.100.1"));
    EXPECT_EQ(client_address(ip("10.0.0.5"), {}, proxies), ip("10.0.0.5"));
    EXPECT_EQ(client_address(ip("10.0.0.5"), {"20.22.113.37"}, proxies), ip("20.22.113.37"));
}

TEST(ClientAddress, RightMostUntrustedHopWins) {
    const auto proxies = parse_networks("p", "10.0.0.0/8");
    // client-chosen, real client, inner proxy
    EXPECT_EQ(client_address(ip("10.0.0.5"), {"1.1.1.1, 20.22.113.37, 10.0.0.9"}, proxies),
              ip("20.22.113.37"));
    EXPECT_EQ(client_address(ip("10.0.0.5"), {"10.0.0.7,10.0.0.9"}, proxies), ip("10.0.0.7"));
    EXPECT_FALSE(client_address(ip("10.0.0.5"), {"garbage, 10.0.0.9"}, proxies));
}

// A proxy that adds its own X-Forwarded-For field instead of appending: the
// client's forged first field must not be the one believed.
TEST(ClientAddress, EveryForwardedForFieldIsReadInOrderAndWalkedFromTheRight) {
    const auto proxies = parse_networks("p", "10.0.0.0/8");
    EXPECT_EQ(client_address(ip("10.0.0.5"), {"20.22.113.37", "198.51.100.7"}, proxies),
              ip("198.51.100.7"));
    EXPECT_EQ(client_address(ip("10.0.0.5"), {"20.22.113.37", "198.51.100.7, 10.0.0.9"}, proxies),
              ip("198.51.100.7"));
    // Trusted hops in the last field: the walk goes on into the earlier one.
    EXPECT_EQ(
        client_address(ip("10.0.0.5"), {"1.1.1.1, 20.22.113.37", "10.0.0.8", "10.0.0.9"}, proxies),
        ip("20.22.113.37"));
    EXPECT_FALSE(client_address(ip("10.0.0.5"), {"20.22.113.37", "junk"}, proxies));
}

}  // namespace
}  // namespace meshhook::ingest
