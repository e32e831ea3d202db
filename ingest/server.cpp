#include "ingest/server.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "common/log.hpp"
#include "ingest/reject_log.hpp"
#include "ingest/server_impl.hpp"
#include "ingest/session.hpp"

namespace meshhook::ingest {
namespace {

// Probes and Prometheus need a handful; the cap keeps the admin port bounded
// without sharing --max-connections, so a flood of webhook connections
// cannot fail the probes.
constexpr std::size_t kMaxAdminConnections = 64;
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

IpAddress to_ip(const tcp::endpoint& ep) {
    return IpAddress::parse(ep.address().to_string()).value_or(IpAddress{});
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
