#pragma once
// The Mesh API simulator behind `meshhook mesh` and `meshhook dev`: GET
// /api/v1/transfers/managed/mesh over real HTTP with Mesh's envelope, paging,
// the Id filter and the client-credential check, on its own thread. Beast
// stays in the .cpp.

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace meshhook::tools {

// The control commands, for `meshhook mesh`'s stdin.
inline constexpr std::string_view kMeshControlHelp =
    "Control channel (stdin, one command per line; each answered on stdout by\n"
    "\"ok\" or \"error <reason>\"):\n"
    "  transfer ID STATUS AMOUNT [KEY=VALUE...]\n"
    "                 add or update a transfer. AMOUNT is JSON number text, served\n"
    "                 verbatim (\"null\" for none). Keys: symbol, networkName, hash,\n"
    "                 destinationAddress, userId, clientTransactionId, created\n"
    "                 (unix seconds; default now), executed (unix seconds)\n"
    "  stats          prints requests=N lookups=N (with the Id filter) and\n"
    "                 answers=STATUS:N,...\n"
    "  quit           stop (so does closing stdin, SIGINT or SIGTERM)\n";

class MeshSim {
public:
    struct Options {
        std::string host = "127.0.0.1";
        std::uint16_t port = 0;  // 0 picks one
        std::string client_id;
        std::string client_secret;
        std::uint64_t rate_limit_every = 0;  // answer every Nth request 429 (0: never)
        std::size_t max_count = 100;         // largest page served
    };
    // Binds and serves at once; throws common::ConfigError when it cannot bind.
    explicit MeshSim(Options options);
    ~MeshSim();
    MeshSim(const MeshSim&) = delete;
    MeshSim& operator=(const MeshSim&) = delete;

    std::uint16_t port() const;
    // One control command (kMeshControlHelp): "ok", an answer, or "error <reason>".
    std::string command(const std::string& verb, std::istream& args);
    // What Mesh's list shows for the transfers these webhook bodies describe:
    // each transfer's highest-ranked status with that event's fields.
    void put_from_webhooks(const std::vector<std::string>& bodies);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace meshhook::tools
