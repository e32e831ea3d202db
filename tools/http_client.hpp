#pragma once
// A blocking HTTP/1.1 client over one keep-alive connection, for `meshhook
// send` and `meshhook dev`. Beast stays inside the .cpp.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshhook::tools {

struct Url {
    std::string host;
    std::uint16_t port = 80;
    std::string target = "/";  // path and query
    std::string text() const;
};

// Only http:// (TLS terminates in front of ingest, or use a plain listener
// for tests). nullopt and `error` set when the text is not such a URL.
std::optional<Url> parse_url(std::string_view text, std::string& error);

struct HttpResponse {
    int status = 0;
    std::string body;
    std::optional<std::string> retry_after;
};

struct HttpResult {
    std::optional<HttpResponse> response;  // nullopt: transport error
    std::string error;                     // connect/read/write failure or timeout
};

// Not thread-safe: one per worker thread. Reconnects when the server closed
// the connection or a request failed.
class HttpClient {
public:
    HttpClient(std::string host, std::uint16_t port, std::chrono::milliseconds timeout);
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    using Headers = std::vector<std::pair<std::string, std::string>>;
    HttpResult request(std::string_view method, std::string_view target, std::string_view body,
                       const Headers& headers);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// One GET on a fresh connection; for readiness probes.
HttpResult http_get(const std::string& host, std::uint16_t port, std::string_view target,
                    std::chrono::milliseconds timeout);

}  // namespace meshhook::tools
