#include "consumer/http_server.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace meshhook::consumer {

namespace {

std::string_view reason(unsigned status) {
    switch (status) {
        case 200: return "OK";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 400: return "Bad Request";
        case 503: return "Service Unavailable";
        default: return "Status";
    }
}

void write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
}

}  // namespace

HttpServer::HttpServer(std::string_view setting, const common::HostPort& listen, Handler handler)
    : handler_(std::move(handler)) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* result = nullptr;
    const std::string port = std::to_string(listen.port);
    const char* host = listen.host.empty() ? nullptr : listen.host.c_str();
    if (::getaddrinfo(host, port.c_str(), &hints, &result) != 0 || result == nullptr) {
        throw common::ConfigError(std::string(setting) + ": cannot resolve '" + listen.host + "'");
    }
    const int fd = ::socket(result->ai_family, result->ai_socktype | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const bool bound =
        fd >= 0 && ::bind(fd, result->ai_addr, result->ai_addrlen) == 0 && ::listen(fd, 64) == 0;
    const int bind_errno = errno;
    ::freeaddrinfo(result);
    if (!bound) {
        if (fd >= 0) {
            ::close(fd);
        }
        throw common::ConfigError(std::string(setting) + ": cannot listen on " + listen.host + ":" +
                                  port + ": " + std::strerror(bind_errno));
    }
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                       : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    listen_fd_ = fd;
    thread_ = std::thread([this] { run(); });
}

HttpServer::~HttpServer() {
    stop_.store(true);
    thread_.join();
    ::close(listen_fd_);
}

void HttpServer::run() {
    while (!stop_.load()) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (::poll(&p, 1, 200) <= 0) {
            continue;
        }
        const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        serve(fd);
        ::close(fd);
    }
}

void HttpServer::serve(int fd) {
    // A slow client cannot hold the only thread for long.
    timeval timeout{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    std::string request;
    char buf[2048];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 16384) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            return;
        }
        request.append(buf, static_cast<std::size_t>(n));
    }
    HttpResponse response;
    const auto line_end = request.find("\r\n");
    const std::string_view line = std::string_view(request).substr(0, line_end);
    const auto sp1 = line.find(' ');
    const auto sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) {
        response = {400, "text/plain; charset=utf-8", "bad request\n"};
    } else {
        const std::string_view method = line.substr(0, sp1);
        std::string_view path = line.substr(sp1 + 1, sp2 - sp1 - 1);
        if (const auto q = path.find('?'); q != std::string_view::npos) {
            path = path.substr(0, q);
        }
        response = handler_(method, path);
    }
    std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " +
                      std::string(reason(response.status)) +
                      "\r\nContent-Type: " + response.content_type +
                      "\r\nContent-Length: " + std::to_string(response.body.size()) +
                      "\r\nConnection: close\r\n\r\n";
    out += response.body;
    write_all(fd, out);
}

}  // namespace meshhook::consumer
