#include "consumer/mesh_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <openssl/ssl.h>

#include <type_traits>

namespace meshhook::consumer {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {
// A list page is tens of KiB; anything near this is not Mesh.
constexpr std::uint64_t kBodyLimit = std::uint64_t{16} * 1024 * 1024;
}  // namespace

struct MeshClient::Impl {
    ApiUrl url;
    std::chrono::milliseconds timeout;
    asio::io_context ioc;
    std::optional<ssl::context> tls;
    std::chrono::steady_clock::time_point deadline;

    // Runs one asynchronous step until it completes or the call's deadline
    // passes; then `cancel` closes the socket and the aborted handler is run
    // out. Asio's blocking calls cannot time out, hence async + run_until.
    template <class Start, class Cancel>
    std::optional<error_code> step(Start start, Cancel cancel) {
        bool done = false;
        error_code result;
        start([&](error_code ec, auto&&...) {
            result = ec;
            done = true;
        });
        ioc.restart();
        ioc.run_until(deadline);
        if (!done) {
            cancel();
            ioc.restart();
            ioc.run();
            return std::nullopt;
        }
        return result;
    }

    template <class Stream>
    ApiResult exchange(Stream& stream, tcp::socket& socket, std::string_view target,
                       const Headers& headers) {
        auto cancel = [&socket] {
            error_code ignored;
            socket.close(ignored);
        };
        const std::string late = "no answer within " + std::to_string(timeout.count()) + " ms";
        tcp::resolver resolver(ioc);
        tcp::resolver::results_type endpoints;
        auto r = step(
            [&](auto handler) {
                resolver.async_resolve(url.host, std::to_string(url.port),
                                       [&, handler](error_code ec, tcp::resolver::results_type rs) {
                                           endpoints = std::move(rs);
                                           handler(ec);
                                       });
            },
            [&resolver] { resolver.cancel(); });
        if (!r) return {std::nullopt, late};
        if (*r) return {std::nullopt, "cannot resolve " + url.host + ": " + r->message()};
        r = step([&](auto handler) { asio::async_connect(socket, endpoints, handler); }, cancel);
        if (!r) return {std::nullopt, late};
        if (*r) {
            return {std::nullopt, "cannot connect to " + url.host + ":" + std::to_string(url.port) +
                                      ": " + r->message()};
        }
        if constexpr (!std::is_same_v<Stream, tcp::socket>) {
            r = step(
                [&](auto handler) { stream.async_handshake(ssl::stream_base::client, handler); },
                cancel);
            if (!r) return {std::nullopt, late};
            if (*r) return {std::nullopt, "TLS handshake with " + url.host + ": " + r->message()};
        }
        http::request<http::empty_body> req{http::verb::get, std::string(target), 11};
        req.set(http::field::host, url.host);
        req.set(http::field::user_agent, "meshhook-consumer");
        req.set(http::field::accept, "application/json");
        for (const auto& [k, v] : headers) req.set(k, v);
        req.keep_alive(false);
        r = step([&](auto handler) { http::async_write(stream, req, handler); }, cancel);
        if (!r) return {std::nullopt, late};
        if (*r) return {std::nullopt, "write failed: " + r->message()};
        beast::flat_buffer buffer;
        http::response_parser<http::string_body> parser;
        parser.body_limit(kBodyLimit);
        r = step([&](auto handler) { http::async_read(stream, buffer, parser, handler); }, cancel);
        if (!r) return {std::nullopt, late};
        if (*r) return {std::nullopt, "read failed: " + r->message()};
        auto res = parser.release();
        ApiResponse out;
        out.status = static_cast<int>(res.result_int());
        out.body = std::move(res.body());
        if (auto it = res.find(http::field::retry_after); it != res.end()) {
            out.retry_after = std::string(it->value());
        }
        cancel();
        return {std::move(out), {}};
    }
};

MeshClient::MeshClient(ApiUrl url, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
    impl_->url = std::move(url);
    impl_->timeout = timeout;
    if (impl_->url.tls) {
        impl_->tls.emplace(ssl::context::tls_client);
        impl_->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                                ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                                ssl::context::no_tlsv1_1);
        // Debian's OpenSSL looks in /usr/lib/ssl/certs, i.e. ca-certificates.
        impl_->tls->set_default_verify_paths();
        impl_->tls->set_verify_mode(ssl::verify_peer);
    }
}

MeshClient::~MeshClient() = default;

ApiResult MeshClient::get(std::string_view target, const Headers& headers) {
    Impl& i = *impl_;
    i.deadline = std::chrono::steady_clock::now() + i.timeout;
    if (!i.url.tls) {
        tcp::socket socket(i.ioc);
        return i.exchange(socket, socket, target, headers);
    }
    ssl::stream<tcp::socket> stream(i.ioc, *i.tls);
    // SSL_set_tlsext_host_name() is a macro with a C cast; this is its expansion.
    if (SSL_ctrl(stream.native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(i.url.host.c_str())) != 1) {
        return {std::nullopt, "TLS: cannot set the server name " + i.url.host};
    }
    stream.set_verify_callback(ssl::host_name_verification(i.url.host));
    return i.exchange(stream, stream.next_layer(), target, headers);
}

}  // namespace meshhook::consumer
