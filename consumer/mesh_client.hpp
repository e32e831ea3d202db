#pragma once
// A blocking HTTPS (or plain HTTP) GET for the reconciler, one connection per
// call, every step under one deadline. Beast and OpenSSL stay in the .cpp.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "consumer/reconcile.hpp"

namespace meshhook::consumer {

struct ApiResponse {
    int status = 0;
    std::string body;
    std::optional<std::string> retry_after;
};

struct ApiResult {
    std::optional<ApiResponse> response;  // nullopt: transport or TLS failure
    std::string error;
};

class MeshClient {
public:
    // https: certificates verified against the system's CA bundle (Debian's
    // ca-certificates) and the host name; SNI set.
    MeshClient(ApiUrl url, std::chrono::milliseconds timeout);
    ~MeshClient();
    MeshClient(const MeshClient&) = delete;
    MeshClient& operator=(const MeshClient&) = delete;

    using Headers = std::vector<std::pair<std::string, std::string>>;
    ApiResult get(std::string_view target, const Headers& headers);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace meshhook::consumer
