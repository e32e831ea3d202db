#pragma once
// Test helpers for meshhook-ingest over real sockets: a raw HTTP/1.1 client
// (so tests control every byte: partial requests, pipelining, stalls), the
// ingest binary as a child process, and a reader for what landed in a topic.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/kafka.hpp"
#include "tests/support/process.hpp"

namespace meshhook::testing::ingest {

inline constexpr std::string_view kFixtureSecret = "whsec_test_fixture_secret";

struct HttpResponse {
    unsigned status = 0;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
    bool keep_alive = true;
    std::chrono::milliseconds elapsed{0};  // request sent to response complete

    std::string header(const std::string& lower_name) const {
        const auto it = headers.find(lower_name);
        return it == headers.end() ? std::string() : it->second;
    }
};

// A blocking TCP connection to 127.0.0.1:port with deadlines on every read.
class HttpConnection {
public:
    explicit HttpConnection(std::uint16_t port);
    ~HttpConnection();
    HttpConnection(const HttpConnection&) = delete;
    HttpConnection& operator=(const HttpConnection&) = delete;

    bool send(std::string_view bytes);  // false when the peer is gone
    // The next response, or nullopt on timeout / connection closed first.
    std::optional<HttpResponse> read_response(
        std::chrono::milliseconds timeout = std::chrono::seconds(5));
    // True when the server closes the connection (EOF or reset) within `timeout`.
    bool wait_closed(std::chrono::milliseconds timeout);
    // sends + reads, with `elapsed` measured from the send.
    std::optional<HttpResponse> round_trip(
        std::string_view request, std::chrono::milliseconds timeout = std::chrono::seconds(5));

private:
    int fd_ = -1;
    std::string buffer_;
};

// A POST of `body` with the given headers (Host and Content-Length are added).
std::string post_request(std::string_view path, std::string_view body,
                         const std::vector<std::pair<std::string, std::string>>& headers,
                         bool keep_alive = true);
// A POST signed with `secret` in X-Mesh-Signature-256.
std::string signed_post(std::string_view path, std::string_view body, std::string_view secret,
                        bool keep_alive = true);
std::string get_request(std::string_view path, bool keep_alive = true);

// One request on a fresh connection.
std::optional<HttpResponse> request_once(
    std::uint16_t port, std::string_view request,
    std::chrono::milliseconds timeout = std::chrono::seconds(5));

// A transfer event like the fixtures but with fresh ids (unique per call),
// so a test can tell every delivery apart in the topic.
struct UniqueEvent {
    std::string event_id;
    std::string transfer_id;
    std::string body;
};
UniqueEvent unique_event(std::string_view status = "Succeeded",
                         std::optional<std::int64_t> sent_timestamp = std::nullopt);

// meshhook-ingest in its own process on 127.0.0.1:<some free port>.
class IngestProcess {
public:
    struct Options {
        std::vector<std::string> args;                     // extra flags
        std::map<std::string, std::string> env;            // extra variables
        std::string secret = std::string(kFixtureSecret);  // MESH_WEBHOOK_SECRET; empty: unset
        bool wait_ready = true;
    };
    IngestProcess(const std::string& bootstrap, Options options);
    explicit IngestProcess(const std::string& bootstrap) : IngestProcess(bootstrap, Options{}) {}

    std::uint16_t port() const { return port_; }              // webhooks
    std::uint16_t admin_port() const { return admin_port_; }  // /healthz, /readyz, /metrics
    Process& process() { return *process_; }
    std::string metrics();  // GET /metrics body, from the admin listener

private:
    std::unique_ptr<Process> process_;
    std::uint16_t port_ = 0;
    std::uint16_t admin_port_ = 0;
};

inline IngestProcess::Options with_args(std::vector<std::string> args) {
    IngestProcess::Options o;
    o.args = std::move(args);
    return o;
}

struct Record {
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    std::optional<std::string> key;
    std::string value;
    std::map<std::string, std::string> headers;
};

// Everything currently in `topic` (all partitions, low to high watermark),
// read by assignment: no consumer group, so no 3 s join.
std::vector<Record> read_topic(const std::string& bootstrap, const std::string& topic,
                               int partitions = 4);

// A self-signed P-256 certificate for 127.0.0.1 and its key, as PEM files in
// a temporary directory removed on destruction.
class SelfSignedCert {
public:
    SelfSignedCert();
    ~SelfSignedCert();
    SelfSignedCert(const SelfSignedCert&) = delete;
    SelfSignedCert& operator=(const SelfSignedCert&) = delete;
    std::string cert_path() const { return (dir_ / "cert.pem").string(); }
    std::string key_path() const { return (dir_ / "key.pem").string(); }

private:
    std::filesystem::path dir_;
};

// A keep-alive TLS connection to 127.0.0.1:port that trusts only
// `ca_cert_path`; the handshake happens in the constructor.
class TlsConnection {
public:
    TlsConnection(std::uint16_t port, const std::string& ca_cert_path);
    ~TlsConnection();
    TlsConnection(const TlsConnection&) = delete;
    TlsConnection& operator=(const TlsConnection&) = delete;
    bool handshaken() const;
    // One request and its response on this connection; nullopt when it fails.
    std::optional<HttpResponse> request(std::string_view request);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// One request over TLS, verifying the server against `ca_cert_path`.
// nullopt when the handshake or the exchange fails.
std::optional<HttpResponse> https_request(std::uint16_t port, std::string_view request,
                                          const std::string& ca_cert_path);

// Whether a TLS handshake with 127.0.0.1:port succeeds for a client that
// trusts `ca_cert_path` and whose context `configure` (an SSL_CTX*) has
// narrowed to given versions or ciphers.
bool tls_handshake_succeeds(std::uint16_t port, const std::string& ca_cert_path,
                            const std::function<void(void* ssl_ctx)>& configure);

// Value of a sample line "name{labels} value" in Prometheus text, or nullopt.
std::optional<double> metric_value(const std::string& text, const std::string& series);

}  // namespace meshhook::testing::ingest
