#include "ingest/server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <unistd.h>

#include <condition_variable>
#include <functional>
#include <iterator>
#include <mutex>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "common/log.hpp"
#include "ingest/deadline.hpp"
#include "ingest/handler.hpp"
#include "ingest/metrics.hpp"
#include "ingest/publisher.hpp"
#include "ingest/reject_log.hpp"
#include "ingest/response_text.hpp"

namespace meshhook::ingest {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using Executor = asio::io_context::executor_type;
// Sockets bound to their io_context's executor type: no type-erased executor
// (any_io_executor) on every operation and handler.
using Socket = asio::basic_stream_socket<tcp, Executor>;
using TlsStream = ssl::stream<Socket>;

using boost::system::error_code;

constexpr std::size_t kHeaderLimit = std::size_t{16} * 1024;
// The most unparsed input a session holds. Beast's parser needs a whole
// header, chunk-size line or trailer section in the buffer before it consumes
// any of it, and 1.81 bounds only the header: without this cap one chunk line
// that never ends grows the buffer until the read timeout (hundreds of MiB on
// loopback). Above the header limit, so an oversized header still gets 431.
constexpr std::size_t kReadBufferLimit = 2 * kHeaderLimit;
// Chunk extensions: Mesh sends none, and HTTP gives them no meaning we use.
// A few bytes are tolerated (";" plus a short token), longer ones get 400.
constexpr std::size_t kMaxChunkExtension = 16;
constexpr std::size_t kReadChunk = 4096;
// Probes and Prometheus need a handful; the cap keeps the admin port bounded
// without sharing --max-connections, so a flood of webhook connections
// cannot fail the probes.
constexpr std::size_t kMaxAdminConnections = 64;
// After an error response the connection is closed: the client gets this
// long to read the response before the socket goes (a close with unread
// input would reset the connection and could destroy the response in flight).
constexpr std::chrono::milliseconds kLingerTimeout{1000};
constexpr std::chrono::milliseconds kCancelRetry{5};
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

// A server context with --tls-cert and --tls-key read now: at start, and again
// on SIGHUP. Throws common::ConfigError naming the setting.
std::shared_ptr<ssl::context> make_tls_context(const IngestConfig& config) {
    auto tls = std::make_shared<ssl::context>(ssl::context::tls_server);
    tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                     ssl::context::single_dh_use);
    SSL_CTX* native = tls->native_handle();
    // TLS 1.2 at least; for 1.2, forward-secret AEAD suites only (Mozilla
    // "intermediate" without DHE); 1.3's suites are all of that kind.
    // Each connection's read and write buffers (about 34 KiB) are freed
    // while it is idle: keep-alive connections wait mostly idle.
    if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1) {
        throw common::ConfigError("--tls-cert (INGEST_TLS_CERT): OpenSSL refused the TLS settings");
    }
    SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
    error_code ec;
    tls->use_certificate_chain_file(config.tls_cert, ec);
    if (ec) throw common::ConfigError("--tls-cert (INGEST_TLS_CERT): " + ec.message());
    tls->use_private_key_file(config.tls_key, ssl::context::pem, ec);
    if (ec) throw common::ConfigError("--tls-key (INGEST_TLS_KEY): " + ec.message());
    // A certificate and key from different pairs (a reload that caught one
    // file replaced and not the other) would fail every handshake.
    if (SSL_CTX_check_private_key(native) != 1) {
        throw common::ConfigError("--tls-key (INGEST_TLS_KEY): does not match --tls-cert");
    }
    return tls;
}
constexpr std::chrono::milliseconds kReadinessTimeout{1000};
constexpr std::chrono::milliseconds kReadinessPeriodHealthy{2000};
constexpr std::chrono::milliseconds kReadinessPeriodUnhealthy{250};

std::string host_name() {
    char buf[256] = {};
    if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
    return buf;
}

// Rejected requests and refused connections (status 0) are logged through
// the rate limit: a flood must not make logging the bottleneck.
bool may_warn(unsigned status) {
    return RejectLog::instance().should_log(status, Clock::now());
}

IpAddress to_ip(const tcp::endpoint& ep) {
    return IpAddress::parse(ep.address().to_string()).value_or(IpAddress{});
}

struct IpAddressHash {
    std::size_t operator()(const IpAddress& a) const noexcept {
        return std::hash<std::string_view>{}(
            std::string_view(reinterpret_cast<const char*>(a.bytes.data()), a.bytes.size()));
    }
};

class SessionBase {
public:
    virtual ~SessionBase() = default;
    // Both post to the session's own executor; callable from any thread.
    virtual void drain() = 0;
    virtual void force_close() = 0;
};

struct ThreadContext {
    // Declared before the io_context: sessions destroyed with the context's
    // pending handlers still reach their handler.
    std::unique_ptr<RequestHandler> handler;
    asio::io_context ioc{1};
};

}  // namespace

struct ServerImpl {
    explicit ServerImpl(IngestConfig cfg);

    void do_accept();
    void do_accept_admin();
    void readiness_loop();
    void schedule_reports() noexcept;
    void sweep_reports();
    // `source`: the peer whose per-source slot the session held, if any.
    void session_ended(const IpAddress* source, bool admin);
    // Takes a per-source slot for `peer`; false when its cap is reached.
    bool admit_source(const IpAddress& peer);
    template <class Stream>
    void start_session(Socket socket, ThreadContext& thread, const IpAddress& peer,
                       bool counted_source, bool admin);

    IngestConfig config;
    common::Registry registry;
    IngestMetrics metrics;
    std::atomic<bool> ready{false};
    RecentDeliveries recent;
    HandlerContext handler_context;
    std::atomic<std::size_t> connections{0};
    std::atomic<std::size_t> admin_connections{0};
    std::mutex sources_mutex;  // taken at accept and at a session's end, not per request
    std::unordered_map<IpAddress, std::size_t, IpAddressHash> sources;
    std::atomic<bool> draining{false};

    std::mutex sessions_mutex;
    std::vector<std::weak_ptr<SessionBase>> sessions;
    std::condition_variable sessions_cv;  // with sessions_mutex: a session ended

    // TLS: the context new connections get; replaced whole on SIGHUP
    // (reload_tls), each session keeping the one it started with.
    std::shared_ptr<ssl::context> tls;
    std::mutex tls_mutex;
    std::shared_ptr<ssl::context> current_tls() {
        const std::lock_guard lock(tls_mutex);
        return tls;
    }
    void reload_tls();
    void wait_reload() {
        reload_signals->async_wait([this](error_code ec, int) {
            if (ec) return;
            reload_tls();
            wait_reload();
        });
    }
    // Sessions hold references into these: they outlive the io_contexts.
    std::vector<std::unique_ptr<ThreadContext>> threads;
    std::size_t next_thread = 0;
    // After the io_contexts: destroyed first, so the producer (whose flush
    // may still post delivery reports) is gone before the contexts it posts to.
    std::unique_ptr<Publisher> publisher;
    // A serve_reports() is queued on the first I/O thread and has not started.
    std::atomic<bool> reports_scheduled{false};
    std::optional<asio::steady_timer> report_sweep;
    std::optional<tcp::acceptor> acceptor;
    std::optional<tcp::acceptor> admin_acceptor;  // /healthz, /readyz, /metrics
    std::size_t next_admin_thread = 0;
    std::optional<asio::signal_set> signals;
    // After `threads`, like every I/O object here: destroyed before the
    // io_context it was made on.
    std::optional<asio::signal_set> reload_signals;  // SIGHUP
    std::optional<asio::steady_timer> accept_retry;
    std::optional<asio::steady_timer> admin_retry;

    std::mutex stop_mutex;
    std::condition_variable stop_cv;
    bool stop_requested = false;
};

namespace {

template <class Stream>
constexpr bool kIsTls = std::is_same_v<Stream, TlsStream>;

// One connection: wait for a request, read it, publish it, answer, again.
// Every phase has one deadline (Deadline: a lazy timer), whose expiry the
// phase decides: cancel the read and answer 408, answer the ack timeout as
// 503, give up a write or a linger. The parser is fed from the session's
// buffer; the socket is read only when the parser needs more.
template <class Stream>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
public:
    Session(ServerImpl& server, ThreadContext& thread, Socket socket, const IpAddress& peer,
            bool counted_source, bool admin)
        : server_(server),
          thread_(thread),
          tls_(kIsTls<Stream> ? server.current_tls() : nullptr),
          stream_(make_stream(tls_.get(), std::move(socket))),
          deadline_(thread.ioc.get_executor()),
          peer_(peer),
          peer_text_(peer.to_string()),
          admin_(admin),
          counted_source_(counted_source) {}

    ~Session() override { server_.session_ended(counted_source_ ? &peer_ : nullptr, admin_); }

    void start() {
        deadline_.on_expiry(this->weak_from_this(), [this] { on_deadline(); });
        asio::dispatch(executor(), [self = this->shared_from_this()] { self->on_start(); });
    }

    void drain() override {
        asio::post(executor(), [self = this->shared_from_this()] { self->on_drain(); });
    }

    void force_close() override {
        asio::post(executor(), [self = this->shared_from_this()] {
            error_code ec;
            self->socket().close(ec);
        });
    }

private:
    enum class State : std::uint8_t {
        kHandshake,
        kIdle,
        kReading,
        kPublishing,
        kWriting,
        kClosing
    };

    static Stream make_stream(ssl::context* tls, Socket socket) {
        if constexpr (kIsTls<Stream>) {
            return Stream(std::move(socket), *tls);
        } else {
            return socket;
        }
    }

    Executor executor() { return thread_.ioc.get_executor(); }
    Socket& socket() {
        if constexpr (kIsTls<Stream>) {
            return stream_.next_layer();
        } else {
            return stream_;
        }
    }
    template <class Fn>
    auto bind(Fn fn) {  // a completion handler that holds the session
        return [self = this->shared_from_this(), fn](auto&&... args) {
            (self.get()->*fn)(std::forward<decltype(args)>(args)...);
        };
    }

    // ---- deadlines

    void enter(State state, Clock::time_point deadline) {
        state_ = state;
        timed_out_ = false;
        deadline_.set(deadline);
    }

    void on_deadline() {
        if (state_ == State::kPublishing) return on_ack_timeout();
        if (state_ == State::kClosing) return close_now();
        timed_out_ = true;
        error_code ec;
        socket().cancel(ec);  // the pending operation completes with operation_aborted
        // cancel() reaches only an operation pending at this moment. A TLS
        // handshake, read or write is composed of several, and between two
        // none is pending: cancel again shortly until the operation's handler
        // has run and moved the session on (a client trickling bytes must not
        // escape the timeout).
        deadline_.set(Clock::now() + kCancelRetry);
    }

    // ---- starting and waiting

    void on_start() {
        if constexpr (kIsTls<Stream>) {
            enter(State::kHandshake, Clock::now() + server_.config.read_timeout);
            stream_.async_handshake(ssl::stream_base::server, bind(&Session::on_handshake));
        } else {
            wait_request(Clock::now());
        }
    }

    void on_handshake(error_code ec) {
        if (ec) {
            common::log_debug("TLS handshake failed: " + ec.message());
            return close_now();
        }
        wait_request(Clock::now());
    }

    void on_drain() {
        close_after_ = true;
        // Idle keep-alive connections go now; one mid-request finishes it first.
        if (state_ == State::kIdle) {
            error_code ec;
            socket().cancel(ec);
        }
    }

    void wait_request(Clock::time_point now) {
        if (close_after_ || server_.draining.load(std::memory_order_acquire))
            return do_close(false);
        if (buffer_.size() > 0) return begin_request();  // pipelined: already here
        // A new connection gets a short wait for its first byte (a client
        // that connects and sends nothing holds a slot for free); a
        // keep-alive connection between requests the longer idle timeout.
        // The read timeout starts with the first byte of a request.
        enter(State::kIdle, now + (served_any_ ? server_.config.idle_timeout
                                               : server_.config.first_byte_timeout));
        stream_.async_read_some(buffer_.prepare(kReadChunk), bind(&Session::on_first_bytes));
    }

    void on_first_bytes(error_code ec, std::size_t n) {
        if (ec) return close_now();  // idle timeout, drain, or the client left
        buffer_.commit(n);
        begin_request();
    }

    // ---- reading

    void begin_request() {
        started_ = Clock::now();
        enter(State::kReading, started_ + server_.config.read_timeout);
        parser_.emplace();
        parser_->body_limit(server_.config.max_body_bytes);
        parser_->header_limit(kHeaderLimit);
        header_seen_ = false;
        parse();
    }

    // Feeds the parser what the buffer holds; reads when it needs more.
    void parse() {
        while (buffer_.size() > 0) {
            error_code ec;
            const std::size_t n = parser_->put(buffer_.data(), ec);
            buffer_.consume(n);
            if (ec == http::error::need_more) break;
            if (ec) return on_read_error(ec);
            if (!header_seen_ && parser_->is_header_done()) {
                header_seen_ = true;
                if (!on_header()) return;  // answered, or a 100 Continue on its way
            }
            if (parser_->is_done()) return on_request();
            if (n == 0) break;
        }
        const std::size_t room = buffer_.max_size() - buffer_.size();
        if (room == 0) return on_read_error(http::error::buffer_overflow);
        stream_.async_read_some(buffer_.prepare(std::min(room, kReadChunk)),
                                bind(&Session::on_more_bytes));
    }

    void on_more_bytes(error_code ec, std::size_t n) {
        if (ec) return on_read_error(ec);
        buffer_.commit(n);
        parse();
    }

    // The header is parsed, the body not yet. False when this took over:
    // answered from the header, or writing 100 Continue (which parses on).
    bool on_header() {
        const auto& req = parser_->get();
        if (admin_) {
            auto action = thread_.handler->admin(req, ClientInfo{peer_, !close_after_, peer_text_});
            route_ = action.route;
            answer_early(std::move(action.response()));
            return false;
        }
        // RFC 9112 6.3: a request whose Transfer-Encoding does not end in
        // chunked has no reliable length: 400 and close. Beast would read
        // it as bodiless and parse the body as the next request (smuggling).
        // Codings other than chunked are not supported at all.
        if (req.count(http::field::transfer_encoding) > 0 &&
            (!parser_->chunked() ||
             !beast::iequals(req[http::field::transfer_encoding], "chunked"))) {
            route_ = req.target().starts_with("/webhooks/") ? Route::kWebhook : Route::kOther;
            if (may_warn(400))
                common::log_warn(
                    "rejected request status=400 reason=unsupported_transfer_encoding client=" +
                    peer_text_);
            write_error(400, "bad_request", "Transfer-Encoding must be chunked");
            return false;
        }
        // Route, allow-list, method, signature header: decided from the
        // header alone, so a refused request costs no body read.
        admission_ = thread_.handler->admit(req, ClientInfo{peer_, !close_after_, peer_text_});
        route_ = admission_.route;
        if (admission_.answer) {
            answer_early(std::move(*admission_.answer));
            return false;
        }
        if (parser_->chunked()) {
            // Trailer fields land among the header fields: counted now,
            // compared once the body is read (see on_request).
            header_fields_ = static_cast<std::size_t>(std::distance(req.begin(), req.end()));
            parser_->on_chunk_header(on_chunk_header_);
        }
        parser_->eager(true);  // the body in one put() from here
        if (beast::iequals(req[http::field::expect], "100-continue")) {
            // curl and others wait for this before sending a body; the body
            // limit was already checked against Content-Length.
            static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
            asio::async_write(stream_, asio::buffer(kContinue.data(), kContinue.size()),
                              bind(&Session::on_continue_sent));
            return false;
        }
        return true;
    }

    void on_continue_sent(error_code ec, std::size_t) {
        if (ec) return on_read_error(ec);
        if (parser_->is_done()) return on_request();
        parse();
    }

    // An answer decided from the header. A body the client may still send is
    // never read: then the connection closes after the answer (lingering so
    // the client sees it); a bodiless request keeps the connection.
    void answer_early(Response res) {
        if (!parser_->is_done()) {
            close_after_ = true;
            linger_ = true;
        }
        parser_.reset();
        write(std::move(res));
    }

    void on_read_error(error_code ec);

    // ---- handling

    void on_request() {
        if (parser_->chunked() &&
            static_cast<std::size_t>(std::distance(parser_->get().begin(), parser_->get().end())) !=
                header_fields_) {
            if (may_warn(400))
                common::log_warn(
                    "rejected request status=400 reason=chunk_line_or_trailer client=" +
                    peer_text_);
            return write_error(400, "bad_request",
                               "chunk extensions and trailers are not accepted");
        }
        request_ = parser_->release();
        parser_.reset();
        const ClientInfo info{peer_, !close_after_, peer_text_};
        Action action =
            thread_.handler->handle(request_, admission_, info, std::chrono::system_clock::now());
        route_ = action.route;
        if (action.is_response()) return write(std::move(action.response()));
        publication_.emplace(std::move(action.publication()));
        do_publish();
    }

    void do_publish() {
        // The budget runs from the request's first byte, as Mesh's 200 ms does.
        enter(State::kPublishing, started_ + server_.config.ack_timeout);
        waiter_ = std::make_shared<AckWaiter>(
            executor(),
            [self = this->shared_from_this()](PublishOutcome outcome) {
                self->finish_publication(outcome);
            },
            server_.metrics.kafka_ack_duration());
        if (const auto immediate = server_.publisher->publish(*publication_, waiter_)) {
            waiter_->claim();
            return finish_publication(*immediate);
        }
        in_flight_ = true;
        server_.metrics.in_flight().inc();
    }

    // The deadline of the publishing phase: no report in time. The report
    // may have claimed first (its answer is then queued for this session).
    void on_ack_timeout() {
        if (!waiter_ || !waiter_->claim()) return;
        waiter_->abandon();
        finish_publication(PublishOutcome::kAckTimeout);
    }

    // On this session's executor, for whoever claimed the waiter first.
    void finish_publication(PublishOutcome outcome) {
        waiter_.reset();
        if (in_flight_) {
            in_flight_ = false;
            server_.metrics.in_flight().dec();
        }
        auto res = thread_.handler->complete(*publication_, outcome, request_.version(),
                                             request_.keep_alive() && !close_after_);
        publication_.reset();
        write(std::move(res));
    }

    // ---- writing

    void write_error(unsigned status, std::string_view error, std::string_view message) {
        parser_.reset();
        close_after_ = true;
        // Whatever else the client sent is not read: linger so it sees the answer.
        linger_ = true;
        write(error_response(status, error, message, 11, false));
    }

    void write(Response res) {
        if (close_after_ || server_.draining.load(std::memory_order_acquire)) res.keep_alive(false);
        close_after_write_ = res.need_eof();
        status_ = res.result_int();
        serialize_response(res, out_);
        enter(State::kWriting, Clock::now() + server_.config.read_timeout);
        asio::async_write(stream_, asio::buffer(out_), bind(&Session::on_write));
    }

    void on_write(error_code ec, std::size_t) {
        const auto now = Clock::now();
        served_any_ = true;
        server_.metrics.request_answered(route_, status_,
                                         std::chrono::duration<double>(now - started_).count());
        request_ = {};
        if (ec) return close_now();
        if (close_after_write_) return do_close(linger_);
        wait_request(now);
    }

    // ---- closing

    void do_close(bool linger) {
        if constexpr (kIsTls<Stream>) {
            (void)linger;
            enter(State::kClosing, Clock::now() + kLingerTimeout);
            stream_.async_shutdown(
                [self = this->shared_from_this()](error_code) { self->close_now(); });
        } else {
            error_code ec;
            socket().shutdown(tcp::socket::shutdown_send, ec);
            if (!linger || ec) return close_now();
            enter(State::kClosing, Clock::now() + kLingerTimeout);
            do_linger();
        }
    }

    void do_linger() {
        // Discard input until the client closes its side or the deadline passes.
        socket().async_read_some(asio::buffer(linger_buffer_),
                                 [self = this->shared_from_this()](error_code ec, std::size_t) {
                                     if (ec) return self->close_now();
                                     self->do_linger();
                                 });
    }

    void close_now() {
        state_ = State::kClosing;
        deadline_.cancel();
        error_code ec;
        socket().close(ec);
    }

    ServerImpl& server_;
    ThreadContext& thread_;
    // The certificate this connection was accepted with; a SIGHUP reload
    // swaps the server's for new connections only. Declared before the stream,
    // which uses it, so it outlives it.
    std::shared_ptr<ssl::context> tls_;
    Stream stream_;
    Deadline deadline_;
    beast::flat_buffer buffer_{kReadBufferLimit};
    std::optional<http::request_parser<http::string_body>> parser_;
    Admission admission_;
    // Beast keeps a reference to this callback, so it lives as long as the session.
    std::function<void(std::uint64_t, std::string_view, error_code&)> on_chunk_header_ =
        [](std::uint64_t, std::string_view extension, error_code& ec) {
            if (extension.size() > kMaxChunkExtension) ec = http::error::bad_chunk_extension;
        };
    std::size_t header_fields_ = 0;
    Request request_;
    std::string out_;  // the answer being written; its capacity is reused
    std::optional<Publication> publication_;
    std::shared_ptr<AckWaiter> waiter_;
    IpAddress peer_;
    std::string peer_text_;  // for log lines, formatted once per connection
    Clock::time_point started_ = Clock::now();
    Route route_ = Route::kOther;
    State state_ = State::kIdle;
    unsigned status_ = 0;
    bool header_seen_ = false;
    bool timed_out_ = false;  // the deadline cancelled the pending operation
    bool close_after_ = false;
    bool close_after_write_ = false;
    bool linger_ = false;
    bool in_flight_ = false;
    bool served_any_ = false;
    bool admin_ = false;           // a connection of the admin listener
    bool counted_source_ = false;  // holds a slot of --max-connections-per-source
    std::array<char, 1024> linger_buffer_{};
};

// A request that could not be read: 408 when the deadline cut it, 4xx for
// what the client sent; nothing when the client went away.
template <class Stream>
void Session<Stream>::on_read_error(error_code ec) {
    if (parser_ && parser_->is_header_done()) {
        route_ =
            parser_->get().target().starts_with("/webhooks/") ? Route::kWebhook : Route::kOther;
    } else {
        route_ = Route::kOther;
    }
    const std::string& client = peer_text_;
    if (timed_out_) {
        if (may_warn(408))
            common::log_warn("rejected request status=408 reason=read_timeout client=" + client);
        return write_error(408, "request_timeout", "request not received in time");
    }
    if (ec == http::error::body_limit) {
        if (may_warn(413))
            common::log_warn("rejected request status=413 reason=body_too_large client=" + client);
        return write_error(413, "payload_too_large", "body over the limit");
    }
    if (ec == http::error::header_limit) {
        if (may_warn(431))
            common::log_warn("rejected request status=431 reason=header_too_large client=" +
                             client);
        return write_error(431, "header_too_large", "request header over the limit");
    }
    if (ec == http::error::buffer_overflow || ec == http::error::bad_chunk_extension) {
        if (may_warn(400))
            common::log_warn("rejected request status=400 reason=chunk_line_or_trailer client=" +
                             client);
        return write_error(400, "bad_request", "chunk extensions and trailers are not accepted");
    }
    if (ec.category() == http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
        if (may_warn(400))
            common::log_warn("rejected request status=400 reason=malformed_http client=" + client +
                             " detail=" + ec.message());
        return write_error(400, "bad_request", "malformed HTTP request");
    }
    // The client went away mid-request: nobody to answer.
    close_now();
}

}  // namespace

ServerImpl::ServerImpl(IngestConfig cfg)
    : config(std::move(cfg)),
      metrics(registry,
              [this] {
                  std::vector<std::string> names;
                  for (const auto& e : config.environments) names.push_back(e.name);
                  return names;
              }()),
      recent(config.environments.size(), config.remembered_deliveries),
      handler_context{config, metrics, ready, host_name(), &recent} {
    if (config.tls()) tls = make_tls_context(config);
    for (unsigned i = 0; i < config.threads; ++i) {
        auto t = std::make_unique<ThreadContext>();
        t->handler = std::make_unique<RequestHandler>(handler_context);
        threads.push_back(std::move(t));
    }
    try {
        publisher = std::make_unique<Publisher>(config, metrics, [this] { schedule_reports(); });
    } catch (const common::KafkaError& e) {
        throw common::ConfigError(std::string("--brokers (KAFKA_BROKERS): ") + e.what());
    }
    metrics.ready().set(0);
    // Registered now, not in run(): a SIGTERM right after "listening" must drain, not kill.
    signals.emplace(threads.front()->ioc, SIGTERM, SIGINT);
    // SIGHUP's default action ends the process: handled always, TLS or not.
    reload_signals.emplace(threads.front()->ioc, SIGHUP);
}

// SIGHUP: --tls-cert and --tls-key read again. New handshakes get the new
// pair; open connections keep theirs (each session holds its context). A
// pair that does not load is logged and the current one kept serving.
void ServerImpl::reload_tls() {
    if (!config.tls()) {
        common::log_info("received SIGHUP: no TLS certificate to reload");
        return;
    }
    try {
        auto fresh = make_tls_context(config);
        {
            const std::lock_guard lock(tls_mutex);
            tls = std::move(fresh);
        }
        common::log_info("received SIGHUP: TLS certificate and key reloaded from " +
                         config.tls_cert);
    } catch (const common::ConfigError& e) {
        common::log_error(std::string("received SIGHUP: TLS reload failed, the previous "
                                      "certificate stays in use: ") +
                          e.what());
    }
}

// Delivery reports are served on the first I/O thread, not a poller thread
// of the producer's: one wake-up per batch of reports instead of a thread hop
// plus a post per report, and sessions on that thread are answered inline.
// Called from librdkafka's thread when reports start waiting; the flag keeps
// it to one queued serve_reports() however often librdkafka calls.
void ServerImpl::schedule_reports() noexcept {
    if (reports_scheduled.exchange(true, std::memory_order_acq_rel)) return;
    try {
        asio::post(threads.front()->ioc, [this] {
            // Cleared before serving: reports that land during the poll call
            // again and are served by the next run.
            reports_scheduled.store(false, std::memory_order_release);
            publisher->serve_reports();
        });
    } catch (...) {
        // Only allocation can fail; the sweep serves the reports instead.
        reports_scheduled.store(false, std::memory_order_release);
    }
}

// A safety net, not the path: serves reports every 100 ms in case a wake-up
// was ever missed (the session's deadline would otherwise answer 503).
void ServerImpl::sweep_reports() {
    report_sweep->expires_after(std::chrono::milliseconds(100));
    report_sweep->async_wait([this](error_code ec) {
        if (ec) return;
        publisher->serve_reports();
        // The summary of suppressed warnings, also once a flood has stopped.
        RejectLog::instance().flush(Clock::now());
        sweep_reports();
    });
}

bool ServerImpl::admit_source(const IpAddress& peer) {
    std::lock_guard lock(sources_mutex);
    auto& n = sources[peer];
    if (n >= config.max_connections_per_source) {
        if (n == 0) sources.erase(peer);
        return false;
    }
    ++n;
    return true;
}

void ServerImpl::session_ended(const IpAddress* source, bool admin) {
    if (source != nullptr) {
        std::lock_guard lock(sources_mutex);
        const auto it = sources.find(*source);
        if (it != sources.end() && --it->second == 0) sources.erase(it);
    }
    (admin ? admin_connections : connections).fetch_sub(1, std::memory_order_acq_rel);
    std::lock_guard lock(sessions_mutex);
    sessions_cv.notify_all();
}

template <class Stream>
void ServerImpl::start_session(Socket socket, ThreadContext& thread, const IpAddress& peer,
                               bool counted_source, bool admin) {
    (admin ? admin_connections : connections).fetch_add(1, std::memory_order_acq_rel);
    auto session = std::make_shared<Session<Stream>>(*this, thread, std::move(socket), peer,
                                                     counted_source, admin);
    {
        std::lock_guard lock(sessions_mutex);
        // Pruned as it grows, so the list stays proportional to live connections.
        if (sessions.size() >= 64 && sessions.size() >= 2 * connections.load()) {
            std::erase_if(sessions, [](const auto& w) { return w.expired(); });
        }
        sessions.push_back(session);
    }
    session->start();
}

void ServerImpl::do_accept() {
    auto& thread = *threads[next_thread];
    next_thread = (next_thread + 1) % threads.size();
    acceptor->async_accept(thread.ioc, [this, &thread](error_code ec, Socket socket) {
        if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
        if (ec) {
            // Typically EMFILE: back off briefly instead of spinning on accept.
            common::log_warn("accept failed: " + ec.message());
            accept_retry->expires_after(std::chrono::milliseconds(50));
            accept_retry->async_wait([this](error_code tec) {
                if (!tec && acceptor->is_open()) do_accept();
            });
            return;
        }
        if (connections.load(std::memory_order_acquire) >= config.max_connections) {
            if (may_warn(0))
                common::log_warn("connection refused: --max-connections (" +
                                 std::to_string(config.max_connections) + ") reached");
            error_code ignored;
            socket.close(ignored);
            return do_accept();
        }
        error_code ignored;
        const auto endpoint = socket.remote_endpoint(ignored);
        const IpAddress peer = to_ip(endpoint);
        // Without a trusted proxy the peer is the client: one not on the
        // allow-list is closed here, before a byte is read. (Behind a proxy
        // the client is only known from the header: the handler checks it.)
        if (!config.allow_ips.empty() && config.trusted_proxies.empty() &&
            !contains_any(config.allow_ips, peer)) {
            if (may_warn(403)) {
                common::log_warn("connection refused: not in --allow-ips client=" +
                                 peer.to_string());
            }
            socket.close(ignored);
            return do_accept();
        }
        // Behind a load balancer every connection comes from a trusted proxy:
        // the per-source cap would cap the proxy, so it is exempt.
        const bool counted = !contains_any(config.trusted_proxies, peer);
        if (counted && !admit_source(peer)) {
            if (may_warn(0))
                common::log_warn("connection refused: --max-connections-per-source (" +
                                 std::to_string(config.max_connections_per_source) +
                                 ") reached client=" + peer.to_string());
            socket.close(ignored);
            return do_accept();
        }
        // Responses are one write each; without this, Nagle holds a
        // pipelined request's response until the previous one is acked.
        socket.set_option(tcp::no_delay(true), ignored);
        if (config.tls()) {
            start_session<TlsStream>(std::move(socket), thread, peer, counted, false);
        } else {
            start_session<Socket>(std::move(socket), thread, peer, counted, false);
        }
        do_accept();
    });
}

// The admin listener: plain HTTP for probes and Prometheus, no allow-list
// (it belongs on an internal address), its own small connection cap.
void ServerImpl::do_accept_admin() {
    auto& thread = *threads[next_admin_thread];
    next_admin_thread = (next_admin_thread + 1) % threads.size();
    admin_acceptor->async_accept(thread.ioc, [this, &thread](error_code ec, Socket socket) {
        if (ec == asio::error::operation_aborted || !admin_acceptor->is_open()) return;
        if (ec) {
            common::log_warn("admin accept failed: " + ec.message());
            admin_retry->expires_after(std::chrono::milliseconds(50));
            admin_retry->async_wait([this](error_code tec) {
                if (!tec && admin_acceptor->is_open()) do_accept_admin();
            });
            return;
        }
        error_code ignored;
        if (admin_connections.load(std::memory_order_acquire) >= kMaxAdminConnections) {
            socket.close(ignored);
            return do_accept_admin();
        }
        const IpAddress peer = to_ip(socket.remote_endpoint(ignored));
        start_session<Socket>(std::move(socket), thread, peer, false, true);
        do_accept_admin();
    });
}

void ServerImpl::readiness_loop() {
    std::unique_lock lock(stop_mutex);
    while (!stop_requested) {
        lock.unlock();
        // May block up to kReadinessTimeout: that is why this is not an I/O thread.
        const auto problem = publisher->unready(kReadinessTimeout);
        const bool ok = !problem;
        if (ok != ready.load()) {
            common::log_info(ok ? "ready: Kafka reachable, topics have leaders"
                                : "not ready: " + *problem);
        }
        ready.store(ok, std::memory_order_release);
        metrics.ready().set(ok ? 1 : 0);
        lock.lock();
        stop_cv.wait_for(lock, ok ? kReadinessPeriodHealthy : kReadinessPeriodUnhealthy,
                         [this] { return stop_requested; });
    }
}

Server::Server(IngestConfig config) : impl_(std::make_unique<ServerImpl>(std::move(config))) {}

Server::~Server() = default;

namespace {

// Binds and listens on `where`; throws common::ConfigError naming `setting`.
std::string listen_on(std::optional<tcp::acceptor>& acceptor, asio::io_context& ioc,
                      const common::HostPort& where, std::string_view setting) {
    error_code ec;
    const auto address = asio::ip::make_address(where.host, ec);
    if (ec) throw common::ConfigError(std::string(setting) + ": not an IP address: " + where.host);
    const tcp::endpoint endpoint(address, where.port);
    acceptor.emplace(ioc);
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        throw common::ConfigError(std::string(setting) + ": cannot listen on " + where.host + ":" +
                                  std::to_string(where.port) + ": " + ec.message());
    }
    const auto bound = acceptor->local_endpoint();
    const auto host = bound.address().is_v6() ? "[" + bound.address().to_string() + "]"
                                              : bound.address().to_string();
    return host + ":" + std::to_string(bound.port());
}

}  // namespace

Server::Bound Server::bind() {
    auto& impl = *impl_;
    auto& ioc = impl.threads.front()->ioc;
    Bound out;
    out.listen = listen_on(impl.acceptor, ioc, impl.config.listen, "--listen (INGEST_LISTEN)");
    out.admin = listen_on(impl.admin_acceptor, ioc, impl.config.admin_listen,
                          "--admin-listen (INGEST_ADMIN_LISTEN)");
    return out;
}

int Server::run() {
    auto& impl = *impl_;
    auto& ioc0 = impl.threads.front()->ioc;
    impl.accept_retry.emplace(ioc0);
    impl.admin_retry.emplace(ioc0);
    impl.report_sweep.emplace(ioc0);
    impl.sweep_reports();
    impl.signals->async_wait([this](error_code ec, int sig) {
        if (ec) return;
        common::log_info(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") +
                         ": draining");
        stop();
    });
    impl.wait_reload();
    impl.do_accept();
    impl.do_accept_admin();

    std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
    std::vector<std::thread> io_threads;
    for (auto& t : impl.threads) {
        guards.push_back(asio::make_work_guard(t->ioc));
        io_threads.emplace_back([ctx = t.get()] {
            // Handlers do not throw (the request path returns errors); if one
            // ever does, the process must not continue half-alive.
            ctx->ioc.run();
        });
    }
    std::thread readiness([&impl] { impl.readiness_loop(); });

    {
        std::unique_lock lock(impl.stop_mutex);
        impl.stop_cv.wait(lock, [&impl] { return impl.stop_requested; });
    }
    const auto drain_deadline = Clock::now() + impl.config.drain_timeout;

    // 1. Stop accepting; 2. idle connections close, busy ones finish their request.
    impl.draining.store(true, std::memory_order_release);
    asio::post(ioc0, [&impl] {
        error_code ec;
        impl.acceptor->close(ec);
        impl.admin_acceptor->close(ec);
        impl.admin_retry->cancel();
        impl.accept_retry->cancel();
        impl.signals->cancel();
        impl.reload_signals->cancel();
    });
    std::vector<std::shared_ptr<SessionBase>> live;
    {
        std::lock_guard lock(impl.sessions_mutex);
        for (auto& w : impl.sessions) {
            if (auto s = w.lock()) live.push_back(std::move(s));
        }
    }
    for (auto& s : live) s->drain();
    // Released before waiting: the last reference may be ours, and a session's
    // destructor takes sessions_mutex.
    live.clear();
    const auto all_closed = [&impl] {
        return impl.connections.load() == 0 && impl.admin_connections.load() == 0;
    };
    bool drained = false;
    {
        std::unique_lock lock(impl.sessions_mutex);
        drained = impl.sessions_cv.wait_until(lock, drain_deadline, all_closed);
        if (!drained) {
            for (auto& w : impl.sessions) {
                if (auto s = w.lock()) live.push_back(std::move(s));
            }
        }
    }
    if (!drained) {
        common::log_warn("drain timeout: closing " + std::to_string(impl.connections.load()) +
                         " connections");
        for (auto& s : live) s->force_close();
        live.clear();
        std::unique_lock lock(impl.sessions_mutex);
        impl.sessions_cv.wait_for(lock, std::chrono::milliseconds(500), all_closed);
    }
    impl.publisher->close();
    readiness.join();
    guards.clear();
    for (auto& t : impl.threads) t->ioc.stop();
    for (auto& t : io_threads) t.join();

    // 3. What is still queued was answered 503 (ack timeout): deliver it if we can.
    const auto remaining = std::max(
        std::chrono::milliseconds(100),
        std::chrono::duration_cast<std::chrono::milliseconds>(drain_deadline - Clock::now()));
    const int left = impl.publisher->flush_and_purge(remaining);
    if (left > 0) {
        common::log_warn("stopped with " + std::to_string(left) +
                         " records undelivered (each was answered 503)");
    }
    common::log_info("stopped");
    return 0;
}

void Server::stop() {
    {
        std::lock_guard lock(impl_->stop_mutex);
        impl_->stop_requested = true;
    }
    impl_->stop_cv.notify_all();
}

}  // namespace meshhook::ingest
