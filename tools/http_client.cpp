#include "tools/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <charconv>

namespace meshhook::tools {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string Url::text() const {
    const bool v6 = host.find(':') != std::string::npos;
    return "http://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + target;
}

std::optional<Url> parse_url(std::string_view text, std::string& error) {
    constexpr std::string_view kScheme = "http://";
    if (!text.starts_with(kScheme)) {
        error = "URL must start with http:// (got \"" + std::string(text) + "\")";
        return std::nullopt;
    }
    std::string_view rest = text.substr(kScheme.size());
    const auto slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    Url url;
    url.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    std::string_view host = authority;
    std::string_view port;
    if (authority.starts_with('[')) {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) {
            error = "bad URL host in \"" + std::string(text) + "\"";
            return std::nullopt;
        }
        host = authority.substr(1, close - 1);
        if (close + 1 < authority.size() && authority[close + 1] == ':') {
            port = authority.substr(close + 2);
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty()) {
        error = "URL has no host: \"" + std::string(text) + "\"";
        return std::nullopt;
    }
    url.host = std::string(host);
    if (!port.empty()) {
        unsigned value = 0;
        auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
        if (ec != std::errc() || p != port.data() + port.size() || value == 0 || value > 65535) {
            error = "bad URL port in \"" + std::string(text) + "\"";
            return std::nullopt;
        }
        url.port = static_cast<std::uint16_t>(value);
    }
    return url;
}

struct HttpClient::Impl {
    std::string host;
    std::uint16_t port;
    std::chrono::milliseconds timeout;
    asio::io_context ioc;
    std::optional<beast::tcp_stream> stream;
    beast::flat_buffer buffer;
    bool timed_out = false;

    // Runs the queued async operations to completion. Async with a stream
    // deadline, because Asio's blocking calls cannot time out.
    void run() {
        ioc.restart();
        ioc.run();
    }

    std::string connect() {
        stream.emplace(ioc);
        buffer.clear();
        tcp::resolver resolver(ioc);
        boost::system::error_code ec;
        const auto endpoints = resolver.resolve(host, std::to_string(port), ec);
        if (ec) return "cannot resolve " + host + ": " + ec.message();
        stream->expires_after(timeout);
        boost::system::error_code result;
        stream->async_connect(endpoints, [&](const boost::system::error_code& e,
                                             const tcp::endpoint&) { result = e; });
        run();
        if (result) {
            stream.reset();
            return "cannot connect to " + host + ":" + std::to_string(port) + ": " +
                   result.message();
        }
        return {};
    }

    HttpResult exchange(std::string_view method, std::string_view target, std::string_view body,
                        const Headers& headers) {
        http::request<http::string_body> req{http::string_to_verb(method), std::string(target), 11};
        req.set(http::field::host, host + ":" + std::to_string(port));
        req.set(http::field::user_agent, "meshhook-send");
        for (const auto& [k, v] : headers) req.set(k, v);
        if (method == "POST") {
            req.body() = std::string(body);
            req.prepare_payload();
        }
        req.keep_alive(true);

        boost::system::error_code result;
        stream->expires_after(timeout);
        http::async_write(*stream, req,
                          [&](const boost::system::error_code& e, std::size_t) { result = e; });
        run();
        if (result) return {std::nullopt, "write failed: " + result.message()};

        http::response<http::string_body> res;
        stream->expires_after(timeout);
        http::async_read(*stream, buffer, res,
                         [&](const boost::system::error_code& e, std::size_t) { result = e; });
        run();
        if (result) {
            timed_out = result == beast::error::timeout;
            return {std::nullopt,
                    timed_out ? "no answer within " + std::to_string(timeout.count()) + " ms"
                              : "read failed: " + result.message()};
        }
        HttpResponse out;
        out.status = static_cast<int>(res.result_int());
        out.body = std::move(res.body());
        if (auto it = res.find(http::field::retry_after); it != res.end()) {
            out.retry_after = std::string(it->value());
        }
        if (!res.keep_alive()) close();
        return {std::move(out), {}};
    }

    void close() {
        if (!stream) return;
        boost::system::error_code ignored;
        stream->socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream->socket().close(ignored);
        stream.reset();
    }
};

HttpClient::HttpClient(std::string host, std::uint16_t port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
    impl_->host = std::move(host);
    impl_->port = port;
    impl_->timeout = timeout;
}

HttpClient::~HttpClient() {
    impl_->close();
}

HttpResult HttpClient::request(std::string_view method, std::string_view target,
                               std::string_view body, const Headers& headers) {
    // A kept-alive connection may have been closed by the server since the
    // last request (idle timeout): on failure over a reused connection, try
    // once more on a fresh one. A POST retried this way is at worst a
    // duplicate delivery, which Mesh itself produces and the pipeline absorbs.
    const bool reused = impl_->stream.has_value();
    impl_->timed_out = false;
    if (!reused) {
        if (auto e = impl_->connect(); !e.empty()) return {std::nullopt, e};
    }
    auto result = impl_->exchange(method, target, body, headers);
    if (!result.response) {
        impl_->close();
        // A timeout is the server being slow, not a stale connection: the
        // caller's retry policy decides about that one.
        if (reused && !impl_->timed_out) {
            if (auto e = impl_->connect(); !e.empty()) return {std::nullopt, e};
            result = impl_->exchange(method, target, body, headers);
            if (!result.response) impl_->close();
        }
    }
    return result;
}

HttpResult http_get(const std::string& host, std::uint16_t port, std::string_view target,
                    std::chrono::milliseconds timeout) {
    HttpClient client(host, port, timeout);
    return client.request("GET", target, {}, {});
}

}  // namespace meshhook::tools
