#include "tests/integration/ingest/ingest_harness.hpp"

#include <arpa/inet.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>

#include "common/signature.hpp"

namespace meshhook::testing::ingest {
namespace {

using Clock = std::chrono::steady_clock;
namespace http = boost::beast::http;

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

std::string random_hex(std::size_t n) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += kHex[rng() % 16];
    return out;
}

std::string uuid_like() {
    return random_hex(8) + "-" + random_hex(4) + "-4" + random_hex(3) + "-a" + random_hex(3) + "-" +
           random_hex(12);
}

}  // namespace

HttpConnection::HttpConnection(std::uint16_t port) : fd_(connect_loopback(port)) {}

HttpConnection::~HttpConnection() {
    if (fd_ >= 0) ::close(fd_);
}

bool HttpConnection::send(std::string_view bytes) {
    return send_all(fd_, bytes);
}

std::optional<HttpResponse> HttpConnection::read_response(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    http::response_parser<http::string_body> parser;
    parser.eager(true);
    parser.body_limit(std::uint64_t{16} * 1024 * 1024);
    while (true) {
        // Feed what is buffered; keep what belongs to the next (pipelined) response.
        while (!buffer_.empty() && !parser.is_done()) {
            boost::system::error_code ec;
            const auto used = parser.put(boost::asio::buffer(buffer_.data(), buffer_.size()), ec);
            buffer_.erase(0, used);
            if (ec == http::error::need_more) break;
            if (ec) return std::nullopt;
            if (used == 0) break;
        }
        if (parser.is_done()) break;
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return std::nullopt;
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
        char chunk[16384];
        const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            // EOF: a body delimited by close is complete now.
            if (!parser.got_some()) return std::nullopt;
            boost::system::error_code ec;
            parser.put_eof(ec);
            if (ec || !parser.is_done()) return std::nullopt;
            break;
        }
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }
    auto msg = parser.release();
    HttpResponse out;
    out.status = msg.result_int();
    for (const auto& field : msg) {
        out.headers[lower(field.name_string())] = std::string(field.value());
    }
    out.body = std::move(msg.body());
    out.keep_alive = msg.keep_alive();
    return out;
}

bool HttpConnection::wait_closed(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
        char chunk[4096];
        const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n == 0) return true;
        if (n < 0) {
            if (errno == EINTR) continue;
            return true;  // reset
        }
    }
}

std::optional<HttpResponse> HttpConnection::round_trip(std::string_view request,
                                                       std::chrono::milliseconds timeout) {
    const auto start = Clock::now();
    if (!send(request)) return std::nullopt;
    auto res = read_response(timeout);
    if (res)
        res->elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    return res;
}

std::string post_request(std::string_view path, std::string_view body,
                         const std::vector<std::pair<std::string, std::string>>& headers,
                         bool keep_alive) {
    std::string out = "POST ";
    out.append(path).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n");
    for (const auto& [k, v] : headers) out.append(k).append(": ").append(v).append("\r\n");
    out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    if (!keep_alive) out.append("Connection: close\r\n");
    out.append("\r\n").append(body);
    return out;
}

std::string signed_post(std::string_view path, std::string_view body, std::string_view secret,
                        bool keep_alive) {
    return post_request(path, body, {{"X-Mesh-Signature-256", common::sign(secret, body)}},
                        keep_alive);
}

std::string get_request(std::string_view path, bool keep_alive) {
    std::string out = "GET ";
    out.append(path).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if (!keep_alive) out.append("Connection: close\r\n");
    out.append("\r\n");
    return out;
}

std::optional<HttpResponse> request_once(std::uint16_t port, std::string_view request,
                                         std::chrono::milliseconds timeout) {
    HttpConnection conn(port);
    return conn.round_trip(request, timeout);
}

UniqueEvent unique_event(std::string_view status, std::optional<std::int64_t> sent_timestamp) {
    UniqueEvent e;
    e.event_id = uuid_like();
    e.transfer_id = uuid_like();
    const auto sent =
        sent_timestamp.value_or(std::chrono::duration_cast<std::chrono::seconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count());
    e.body = R"({"Id":")" + uuid_like() + R"(","EventId":")" + e.event_id +
             R"(","SentTimestamp":)" + std::to_string(sent) + R"(,"TransferId":")" + e.transfer_id +
             R"(","Timestamp":1764321000000,"TransferStatus":")" + std::string(status) +
             R"(","TransactionId":"tx-1","TxHash":null,"UserId":"user-1","Token":"USDC",)"
             R"("Chain":"Ethereum","SourceAmount":250.000000000000000001,)"
             R"("DestinationAmount":250.000000000000000001,"SourceAccountProvider":"Coinbase",)"
             R"("DestinationAddress":"0xabc","RefundAddress":null})";
    return e;
}

IngestProcess::IngestProcess(const std::string& bootstrap, Options options) {
    // MESHHOOK_TEST_INGEST_BINARY runs these tests against another build of the
    // receiver (e.g. the TSan one) while the broker comes from this build.
    const char* override_binary = std::getenv("MESHHOOK_TEST_INGEST_BINARY");
    const std::string binary = override_binary != nullptr && *override_binary != '\0'
                                   ? std::string(override_binary)
                                   : binary_path("meshhook-ingest").string();
    std::vector<std::string> argv = {binary,      "--listen",       "127.0.0.1:0",
                                     "--brokers", bootstrap,        "--threads",
                                     "2",         "--admin-listen", "127.0.0.1:0"};
    // Apache Kafka: a fresh producer's first acks=all produce to a freshly
    // created topic (InitProducerId, topic metadata, leader connection, the
    // followers' first fetch) takes 150-600 ms on this two-core machine with
    // three JVMs, where the mock answers at once; the tests' topics are new
    // for every test. The budget is still what each test asserts against.
    const bool has_budget = std::find(options.args.begin(), options.args.end(),
                                      "--ack-timeout-ms") != options.args.end();
    if (apache_engine() && !has_budget) {
        argv.push_back("--ack-timeout-ms");
        argv.push_back("2000");
    }
    for (auto& a : options.args) argv.push_back(std::move(a));
    auto env = std::move(options.env);
    if (!options.secret.empty()) env.emplace("MESH_WEBHOOK_SECRET", options.secret);
    process_ = std::make_unique<Process>(argv, env);
    const auto line = process_->read_line(std::chrono::seconds(20));
    constexpr std::string_view kPrefix = "meshhook-ingest: listening on 127.0.0.1:";
    if (!line || !line->starts_with(kPrefix)) {
        throw std::runtime_error("meshhook-ingest did not start: " + line.value_or("<no line>") +
                                 "\n" + process_->stderr_text());
    }
    port_ = static_cast<std::uint16_t>(std::stoul(line->substr(kPrefix.size())));
    const auto admin = process_->read_line(std::chrono::seconds(20));
    constexpr std::string_view kAdminPrefix = "meshhook-ingest: admin on 127.0.0.1:";
    if (!admin || !admin->starts_with(kAdminPrefix)) {
        throw std::runtime_error("meshhook-ingest did not say its admin address: " +
                                 admin.value_or("<no line>") + "\n" + process_->stderr_text());
    }
    admin_port_ = static_cast<std::uint16_t>(std::stoul(admin->substr(kAdminPrefix.size())));
    if (options.wait_ready) {
        const bool ready = wait_until(
            [&] {
                const auto res = request_once(admin_port_, get_request("/readyz", false));
                return res && res->status == 200;
            },
            std::chrono::seconds(20));
        if (!ready)
            throw std::runtime_error("meshhook-ingest never ready: " + process_->stderr_text());
    }
}

std::string IngestProcess::metrics() {
    const auto res = request_once(admin_port_, get_request("/metrics", false));
    return res ? res->body : std::string();
}

std::vector<Record> read_topic(const std::string& bootstrap, const std::string& topic,
                               int partitions) {
    static std::atomic<int> counter{0};
    common::Consumer consumer({{"bootstrap.servers", bootstrap},
                               {"group.id", "ingest-test-reader-" + std::to_string(::getpid()) +
                                                "-" + std::to_string(counter++)},
                               {"enable.auto.commit", "false"}});
    std::vector<common::TopicPartition> assignment;
    std::map<std::int32_t, std::int64_t> end;  // partition -> high watermark
    std::size_t expected = 0;
    for (int p = 0; p < partitions; ++p) {
        const auto marks = consumer.watermarks(topic, p, std::chrono::seconds(10));
        if (!marks) throw std::runtime_error("no watermarks for " + topic);
        end[p] = marks->second;
        expected += static_cast<std::size_t>(marks->second - marks->first);
        assignment.push_back({topic, p, common::kOffsetBeginning});
    }
    std::vector<Record> out;
    if (expected == 0) return out;
    consumer.assign(assignment);
    wait_until(
        [&] {
            auto msg = consumer.poll(std::chrono::milliseconds(100));
            if (msg && !msg.error() && msg.offset() < end[msg.partition()]) {
                Record r;
                r.partition = msg.partition();
                r.offset = msg.offset();
                if (auto k = msg.key()) r.key = std::string(*k);
                r.value = std::string(msg.value());
                for (const auto& h : msg.headers())
                    r.headers[std::string(h.key)] = std::string(h.value);
                out.push_back(std::move(r));
            }
            return out.size() >= expected;
        },
        std::chrono::seconds(30));
    consumer.close();
    if (out.size() != expected) {
        throw std::runtime_error("read " + std::to_string(out.size()) + " of " +
                                 std::to_string(expected) + " records from " + topic);
    }
    return out;
}

namespace {

struct PkeyDeleter {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Deleter {
    void operator()(X509* x) const { X509_free(x); }
};
struct FileCloser {
    void operator()(FILE* f) const { std::fclose(f); }
};

HttpResponse to_response(http::response<http::string_body>&& msg) {
    HttpResponse out;
    out.status = msg.result_int();
    for (const auto& field : msg)
        out.headers[lower(field.name_string())] = std::string(field.value());
    out.body = std::move(msg.body());
    out.keep_alive = msg.keep_alive();
    return out;
}

}  // namespace

SelfSignedCert::SelfSignedCert() {
    char tmpl[] = "/tmp/meshhook-ingest-tls-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    std::unique_ptr<EVP_PKEY, PkeyDeleter> key(EVP_EC_gen("P-256"));
    std::unique_ptr<X509, X509Deleter> cert(X509_new());
    if (!key || !cert) throw std::runtime_error("OpenSSL: key or certificate allocation failed");
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);
    // Its own CA, so the client can trust exactly this certificate.
    for (const auto& [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                                     std::pair{NID_subject_alt_name, "IP:127.0.0.1"}}) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
        if (ext == nullptr) throw std::runtime_error("OpenSSL: extension failed");
        X509_add_ext(cert.get(), ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0)
        throw std::runtime_error("X509_sign failed");
    std::unique_ptr<FILE, FileCloser> kf(std::fopen(key_path().c_str(), "w"));
    std::unique_ptr<FILE, FileCloser> cf(std::fopen(cert_path().c_str(), "w"));
    if (!kf || !cf ||
        PEM_write_PrivateKey(kf.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
        PEM_write_X509(cf.get(), cert.get()) != 1) {
        throw std::runtime_error("writing PEM files failed");
    }
}

SelfSignedCert::~SelfSignedCert() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

struct TlsConnection::Impl {
    boost::asio::io_context ioc;
    boost::asio::ssl::context ctx{boost::asio::ssl::context::tls_client};
    std::optional<boost::beast::ssl_stream<boost::beast::tcp_stream>> stream;
    boost::beast::flat_buffer buffer;
    bool handshaken = false;
};

TlsConnection::TlsConnection(std::uint16_t port, const std::string& ca_cert_path)
    : impl_(std::make_unique<Impl>()) {
    namespace asio = boost::asio;
    namespace ssl = asio::ssl;
    impl_->ctx.load_verify_file(ca_cert_path);
    impl_->ctx.set_verify_mode(ssl::verify_peer);
    auto& stream = impl_->stream.emplace(impl_->ioc, impl_->ctx);
    boost::system::error_code ec;
    auto& socket = boost::beast::get_lowest_layer(stream).socket();
    socket.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
    if (ec) return;
    // Synchronous Asio reads honour no deadline; the socket's own timeout bounds them.
    timeval tv{5, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    stream.handshake(ssl::stream_base::client, ec);
    impl_->handshaken = !ec;
}

TlsConnection::~TlsConnection() = default;

bool TlsConnection::handshaken() const {
    return impl_->handshaken;
}

std::optional<HttpResponse> TlsConnection::request(std::string_view request) {
    if (!impl_->handshaken) return std::nullopt;
    boost::system::error_code ec;
    const auto start = Clock::now();
    boost::asio::write(*impl_->stream, boost::asio::buffer(request.data(), request.size()), ec);
    if (ec) return std::nullopt;
    http::response<http::string_body> msg;
    http::read(*impl_->stream, impl_->buffer, msg, ec);
    if (ec) return std::nullopt;
    auto out = to_response(std::move(msg));
    out.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    return out;
}

std::optional<HttpResponse> https_request(std::uint16_t port, std::string_view request,
                                          const std::string& ca_cert_path) {
    TlsConnection connection(port, ca_cert_path);
    return connection.request(request);
}

bool tls_handshake_succeeds(std::uint16_t port, const std::string& ca_cert_path,
                            const std::function<void(void* ssl_ctx)>& configure) {
    namespace asio = boost::asio;
    namespace ssl = asio::ssl;
    asio::io_context ioc;
    ssl::context ctx(ssl::context::tls_client);
    ctx.load_verify_file(ca_cert_path);
    ctx.set_verify_mode(ssl::verify_peer);
    configure(ctx.native_handle());
    boost::beast::ssl_stream<boost::beast::tcp_stream> stream(ioc, ctx);
    boost::system::error_code ec;
    auto& socket = boost::beast::get_lowest_layer(stream).socket();
    socket.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
    if (ec) return false;
    timeval tv{5, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    stream.handshake(ssl::stream_base::client, ec);
    return !ec;
}

std::optional<double> metric_value(const std::string& text, const std::string& series) {
    std::size_t pos = 0;
    while ((pos = text.find(series, pos)) != std::string::npos) {
        const bool line_start = pos == 0 || text[pos - 1] == '\n';
        const auto after = pos + series.size();
        if (line_start && after < text.size() && text[after] == ' ') {
            const auto eol = text.find('\n', after);
            return std::stod(text.substr(after + 1, eol - after - 1));
        }
        pos = after;
    }
    return std::nullopt;
}

}  // namespace meshhook::testing::ingest
