#pragma once
// Internal to meshhook-ingest's server (server.cpp and session.hpp include
// it, nothing else): what the listeners and every session share.

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/metrics.hpp"
#include "ingest/config.hpp"
#include "ingest/handler.hpp"
#include "ingest/ip_filter.hpp"
#include "ingest/metrics.hpp"
#include "ingest/publisher.hpp"
#include "ingest/recent_deliveries.hpp"

namespace meshhook::ingest {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Executor = asio::io_context::executor_type;
// Sockets bound to their io_context's executor type: no type-erased executor
// (any_io_executor) on every operation and handler.
using Socket = asio::basic_stream_socket<tcp, Executor>;
using TlsStream = ssl::stream<Socket>;
using boost::system::error_code;

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

}  // namespace meshhook::ingest
