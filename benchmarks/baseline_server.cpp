// The ceiling for meshhook-ingest's per-core throughput: a bare Beast
// keep-alive HTTP/1.1 server on one io_context thread that reads the same POST
// (same body limit, same parser) and answers 200 doing nothing else. The load
// test runs both side by side on the same pinned core.
//
// usage: bench_baseline_server HOST PORT
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

class Session : public std::enable_shared_from_this<Session> {
public:
    explicit Session(tcp::socket socket) : stream_(std::move(socket)) {}
    void start() { do_read(); }

private:
    void do_read() {
        parser_.emplace();
        parser_->body_limit(64 * 1024);
        http::async_read(
            stream_, buffer_, *parser_,
            [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
    }
    void on_read(beast::error_code ec) {
        if (ec) return;
        const auto& req = parser_->get();
        response_.emplace(http::status::ok, req.version());
        response_->set(http::field::content_type, "application/json");
        response_->keep_alive(req.keep_alive());
        response_->body() = R"({"status":"accepted"})";
        response_->prepare_payload();
        http::async_write(stream_, *response_,
                          [self = shared_from_this()](beast::error_code wec, std::size_t) {
                              if (!wec && self->response_->keep_alive()) self->do_read();
                          });
    }

    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    std::optional<http::request_parser<http::string_body>> parser_;
    std::optional<http::response<http::string_body>> response_;
};

void do_accept(tcp::acceptor& acceptor) {
    acceptor.async_accept([&acceptor](beast::error_code ec, tcp::socket socket) {
        if (!ec) {
            socket.set_option(tcp::no_delay(true));
            std::make_shared<Session>(std::move(socket))->start();
        }
        if (acceptor.is_open()) do_accept(acceptor);
    });
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: bench_baseline_server HOST PORT\n";
        return 2;
    }
    asio::io_context ioc(1);
    tcp::endpoint endpoint(asio::ip::make_address(argv[1]),
                           static_cast<unsigned short>(std::atoi(argv[2])));
    tcp::acceptor acceptor(ioc, endpoint);
    asio::signal_set signals(ioc, SIGINT, SIGTERM);
    signals.async_wait([&](beast::error_code, int) { ioc.stop(); });
    do_accept(acceptor);
    std::cout << "bench_baseline_server: listening on " << acceptor.local_endpoint() << std::endl;
    ioc.run();
    return 0;
}
