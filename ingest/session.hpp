#pragma once
// One connection of meshhook-ingest (server.cpp includes it, nothing else):
// wait for a request, read it, publish it, answer, again.

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "common/log.hpp"
#include "ingest/deadline.hpp"
#include "ingest/reject_log.hpp"
#include "ingest/response_text.hpp"
#include "ingest/server_impl.hpp"

namespace meshhook::ingest {

namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;

inline constexpr std::size_t kHeaderLimit = std::size_t{16} * 1024;
// The most unparsed input a session holds. Beast's parser needs a whole
// header, chunk-size line or trailer section in the buffer before it consumes
// any of it, and 1.81 bounds only the header: without this cap one chunk line
// that never ends grows the buffer until the read timeout (hundreds of MiB on
// loopback). Above the header limit, so an oversized header still gets 431.
inline constexpr std::size_t kReadBufferLimit = 2 * kHeaderLimit;
// Chunk extensions: Mesh sends none, and HTTP gives them no meaning we use.
// A few bytes are tolerated (";" plus a short token), longer ones get 400.
inline constexpr std::size_t kMaxChunkExtension = 16;
inline constexpr std::size_t kReadChunk = 4096;
// After an error response the connection is closed: the client gets this
// long to read the response before the socket goes (a close with unread
// input would reset the connection and could destroy the response in flight).
inline constexpr std::chrono::milliseconds kLingerTimeout{1000};
inline constexpr std::chrono::milliseconds kCancelRetry{5};

// Rejected requests and refused connections (status 0) are logged through
// the rate limit: a flood must not make logging the bottleneck.
inline bool may_warn(unsigned status) {
    return RejectLog::instance().should_log(status, Clock::now());
}

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

}  // namespace meshhook::ingest
