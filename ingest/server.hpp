#pragma once
// The HTTP(S) server: a listener, one Beast session per connection on
// --threads I/O threads (one io_context each), the Kafka publisher, the
// readiness checker and the SIGTERM drain. Beast stays in server.cpp.

#include <memory>
#include <string>

#include "ingest/config.hpp"

namespace meshhook::ingest {

struct ServerImpl;

class Server {
public:
    // Creates the producer and loads TLS material; throws common::ConfigError
    // naming the setting when that fails.
    explicit Server(IngestConfig config);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // The bound addresses as "host:port" (the real port when 0 was asked for).
    struct Bound {
        std::string listen;  // webhooks
        std::string admin;   // /healthz, /readyz, /metrics
    };
    // Binds and listens on both; throws common::ConfigError naming
    // --listen or --admin-listen on failure.
    Bound bind();

    // Serves until SIGTERM/SIGINT (or stop()), then drains: stop accepting,
    // answer what is in flight, flush the producer. Returns the exit code.
    int run();

    // Thread-safe; what the signal handler calls.
    void stop();

private:
    std::unique_ptr<ServerImpl> impl_;
};

}  // namespace meshhook::ingest
