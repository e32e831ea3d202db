#include "ingest/ip_filter.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include "common/config.hpp"

namespace meshhook::ingest {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool is_v4_mapped(const std::array<std::uint8_t, 16>& b) {
    for (std::size_t i = 0; i < 10; ++i) {
        if (b[i] != 0) return false;
    }
    return b[10] == 0xff && b[11] == 0xff;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
    text = trim(text);
    // inet_pton wants a C string; addresses are short, so a stack copy does.
    char buf[64];
    if (text.empty() || text.size() >= sizeof buf) return std::nullopt;
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    IpAddress out;
    if (inet_pton(AF_INET, buf, out.bytes.data() + 12) == 1) {
        out.bytes[10] = 0xff;
        out.bytes[11] = 0xff;
        out.v4 = true;
        return out;
    }
    if (inet_pton(AF_INET6, buf, out.bytes.data()) == 1) {
        out.v4 = is_v4_mapped(out.bytes);
        return out;
    }
    return std::nullopt;
}

std::string IpAddress::to_string() const {
    char buf[INET6_ADDRSTRLEN];
    const char* s = v4 ? inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof buf)
                       : inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
    return s != nullptr ? std::string(s) : std::string("?");
}

std::optional<IpNetwork> IpNetwork::parse(std::string_view text) {
    text = trim(text);
    const auto slash = text.find('/');
    auto address = IpAddress::parse(text.substr(0, slash));
    if (!address) return std::nullopt;
    const unsigned width = address->v4 ? 32U : 128U;
    unsigned prefix = width;
    if (slash != std::string_view::npos) {
        const auto digits = text.substr(slash + 1);
        const auto* end = digits.data() + digits.size();
        const auto [ptr, ec] = std::from_chars(digits.data(), end, prefix);
        if (digits.empty() || ec != std::errc{} || ptr != end || prefix > width) {
            return std::nullopt;
        }
    }
    IpNetwork net;
    net.prefix = prefix;
    net.base = *address;
    // Host bits are cleared so that "10.1.2.3/8" means 10.0.0.0/8.
    const unsigned total = (address->v4 ? 96U : 0U) + prefix;
    for (unsigned i = total; i < 128; ++i) {
        net.base.bytes[i / 8] =
            static_cast<std::uint8_t>(net.base.bytes[i / 8] & ~(0x80U >> (i % 8)));
    }
    return net;
}

bool IpNetwork::contains(const IpAddress& address) const {
    if (address.v4 != base.v4) return false;
    const unsigned total = (base.v4 ? 96U : 0U) + prefix;
    const unsigned full = total / 8;
    if (std::memcmp(address.bytes.data(), base.bytes.data(), full) != 0) return false;
    const unsigned rest = total % 8;
    if (rest == 0) return true;
    const auto mask = static_cast<std::uint8_t>(0xFFU << (8 - rest));
    return (address.bytes[full] & mask) == base.bytes[full];
}

std::string IpNetwork::to_string() const {
    return base.to_string() + "/" + std::to_string(prefix);
}

std::vector<IpNetwork> parse_networks(std::string_view setting, std::string_view text) {
    std::vector<IpNetwork> out;
    for (const auto& item : common::split_list(text)) {
        auto net = IpNetwork::parse(item);
        if (!net) {
            throw common::ConfigError(std::string(setting) +
                                      ": expected IP addresses or CIDR blocks "
                                      "(e.g. 20.22.113.37/32,10.0.0.0/8), got \"" +
                                      item + "\"");
        }
        out.push_back(*net);
    }
    return out;
}

bool contains_any(const std::vector<IpNetwork>& networks, const IpAddress& address) {
    for (const auto& n : networks) {
        if (n.contains(address)) return true;
    }
    return false;
}

std::optional<IpAddress> client_address(const IpAddress& peer,
                                        const std::vector<std::string_view>& forwarded_for,
                                        const std::vector<IpNetwork>& trusted_proxies) {
    if (forwarded_for.empty() || !contains_any(trusted_proxies, peer)) return peer;
    IpAddress leftmost = peer;
    // From the last field back (an index loop: clang 14 cannot compile
    // std::views::reverse over libstdc++ 12's ranges).
    for (std::size_t field = forwarded_for.size(); field-- > 0;) {
        std::string_view rest = forwarded_for[field];
        while (!rest.empty()) {
            const auto comma = rest.rfind(',');
            const auto hop = trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
            rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(0, comma);
            if (hop.empty()) continue;
            auto address = IpAddress::parse(hop);
            if (!address) return std::nullopt;
            if (!contains_any(trusted_proxies, *address)) return address;
            leftmost = *address;
        }
    }
    // Every hop was a trusted proxy: the left-most one is as far as we can see.
    return leftmost;
}

}  // namespace meshhook::ingest
