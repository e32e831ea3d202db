#pragma once
// A tiny HTTP/1.1 server for /metrics, /healthz and /readyz: one thread,
// blocking sockets, one request per connection. Scrapes are rare and small;
// Beast would add compile weight to the consumer for no gain here.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>

#include "common/config.hpp"

namespace meshhook::consumer {

struct HttpResponse {
    unsigned status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
};

class HttpServer {
public:
    using Handler = std::function<HttpResponse(std::string_view method, std::string_view path)>;

    // Binds at once: a taken port throws common::ConfigError naming `setting`.
    HttpServer(std::string_view setting, const common::HostPort& listen, Handler handler);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    std::uint16_t port() const { return port_; }

private:
    void run();
    void serve(int fd);

    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    Handler handler_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace meshhook::consumer
