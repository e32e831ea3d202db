// `meshhook mesh`: a Mesh API simulator over real HTTP, for development and
// tests of reconciliation (tools/mesh_sim.hpp). Transfers are set through a
// control channel on stdin (like `meshhook broker`), or come from a scenario
// whose signed webhooks it sends to a URL the way Mesh does, dropping a
// fraction on purpose.
#include <signal.h>

#include <iostream>
#include <random>
#include <sstream>

#include "common/config.hpp"
#include "tools/commands.hpp"
#include "tools/mesh_sim.hpp"
#include "tools/scenario.hpp"
#include "tools/sender.hpp"
#include "tools/util.hpp"

namespace meshhook::tools {
namespace {

constexpr std::string_view kProgram = "meshhook mesh";

// The scenario's webhooks minus those dropped (each with probability `drop`,
// seeded): what Mesh's delivery would bring. Mesh's list knows them all.
std::vector<Stream> without_dropped(const std::vector<Stream>& streams, double drop,
                                    std::uint64_t seed, std::size_t& dropped) {
    std::mt19937_64 rng(seed ^ 0x6d657368ULL);
    std::bernoulli_distribution lose(drop);
    std::vector<Stream> kept;
    for (const Stream& stream : streams) {
        Stream s;
        for (const Delivery& d : stream) {
            if (lose(rng)) {
                ++dropped;
            } else {
                s.push_back(d);
            }
        }
        if (!s.empty()) kept.push_back(std::move(s));
    }
    return kept;
}

}  // namespace

int mesh_main(int argc, const char* const* argv) {
    common::Settings settings(
        std::string(kProgram),
        "A Mesh API simulator over HTTP: GET /api/v1/transfers/managed/mesh with Mesh's\n"
        "envelope {status, message, displayMessage, errorType, errorData, content:{items,\n"
        "total, hasMorePages}}, paging (Count, Offset), the Id filter and the\n"
        "X-Client-Id / X-Client-Secret check (401 otherwise); GET\n"
        "/api/v1/transfers/managed/networks (a fixed list: Ethereum, Polygon, Solana,\n"
        "Bitcoin, Tron). Prints listen=HOST:PORT\n"
        "once it accepts connections.\n\n"
        "With --webhook-url it also drives a scenario (--scenario demo | random): its\n"
        "transfers appear in the list with their final status, and their signed webhooks\n"
        "go to the URL the way Mesh sends them (retries of an event with the same EventId,\n"
        "duplicates, statuses out of order, non-200 answers retried with back-off), each\n"
        "delivery dropped with probability --drop. Prints webhooks=<summary> dropped=N when\n"
        "done; the list is served until stdin closes.\n\n" +
            std::string(kMeshControlHelp));
    settings.add({"listen", "MESHHOOK_MESH_LISTEN", "127.0.0.1:0", "address (port 0 picks one)"})
        .add({"client-id", "MESHHOOK_MESH_CLIENT_ID", "meshhook-dev", "the client id it accepts"})
        .add({"client-secret", "MESHHOOK_MESH_CLIENT_SECRET", "meshhook-dev-secret",
              "the client secret it accepts"})
        .add({"rate-limit-every", "MESHHOOK_MESH_RATE_LIMIT_EVERY", "0",
              "answer every Nth request 429 tooManyRequest (0: never)"})
        .add({"max-count", "MESHHOOK_MESH_MAX_COUNT", "100", "largest page it serves"})
        .add({"webhook-url", "", "", "send the scenario's webhooks here (http://...)"})
        .add({"webhook-secret", "MESH_WEBHOOK_SECRET", "",
              "signs the webhooks (the first of a comma-separated list)"})
        .add({"scenario", "", "random", "demo | random"})
        .add({"transfers", "", "20", "transfers of --scenario random"})
        .add({"seed", "", "1", "seed of the scenario and of the drops"})
        .add({"drop", "", "0", "fraction of webhook deliveries never sent (0 to 1)"});
    if (auto code = parse_or_exit(settings, kProgram, argc, argv)) return *code;
    MeshSim::Options options;
    std::optional<Url> webhook_url;
    Scenario scenario;
    double drop = 0;
    std::uint64_t seed = 1;
    try {
        const auto listen =
            common::parse_host_port(settings.describe("listen"), settings.get("listen"));
        options.host = listen.host;
        options.port = listen.port;
        options.client_id = settings.get("client-id");
        options.client_secret = settings.get("client-secret");
        options.rate_limit_every = common::parse_uint(settings.describe("rate-limit-every"),
                                                      settings.get("rate-limit-every"), 0, 1000000);
        options.max_count = static_cast<std::size_t>(common::parse_uint(
            settings.describe("max-count"), settings.get("max-count"), 1, 100000));
        if (!settings.get("webhook-url").empty()) {
            std::string error;
            webhook_url = parse_url(settings.get("webhook-url"), error);
            if (!webhook_url) throw common::ConfigError("--webhook-url: " + error);
            if (first_secret(settings.get("webhook-secret")).empty()) {
                throw common::ConfigError(settings.describe("webhook-secret") +
                                          ": required with --webhook-url");
            }
            seed = common::parse_uint("--seed", settings.get("seed"), 0, UINT64_MAX);
            const std::string& name = settings.get("scenario");
            if (name == "demo") {
                scenario = demo_scenario();
            } else if (name == "random") {
                scenario =
                    random_scenario(static_cast<std::size_t>(common::parse_uint(
                                        "--transfers", settings.get("transfers"), 1, 1000000)),
                                    seed);
            } else {
                throw common::ConfigError("--scenario: expected demo or random, got \"" + name +
                                          "\"");
            }
            const std::string& d = settings.get("drop");
            std::size_t used = 0;
            try {
                drop = std::stod(d, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used != d.size() || !(drop >= 0 && drop <= 1)) {
                throw common::ConfigError("--drop: expected a fraction from 0 to 1, got \"" + d +
                                          "\"");
            }
        }
    } catch (const common::ConfigError& e) {
        common::fail_config(kProgram, e);
    }
    try {
        catch_stop_signals();
        ::signal(SIGPIPE, SIG_IGN);
        MeshSim sim(options);
        std::cout << "listen=" << options.host << ":" << sim.port() << std::endl;
        if (webhook_url) {
            std::vector<std::string> bodies;
            for (const Stream& s : scenario.streams) {
                for (const Delivery& d : s) bodies.push_back(d.body);
            }
            sim.put_from_webhooks(bodies);
            std::size_t dropped = 0;
            const auto kept = without_dropped(scenario.streams, drop, seed, dropped);
            SendOptions send;
            send.url = *webhook_url;
            send.secret = first_secret(settings.get("webhook-secret"));
            std::ostringstream log;
            const SendSummary summary = send_streams(kept, send, log);
            std::cerr << log.str();
            std::cout << "webhooks=" << format_summary(summary) << " dropped=" << dropped
                      << std::endl;
        }
        control_loop([&sim](const std::string& verb, std::istream& args) {
            return sim.command(verb, args);
        });
        return 0;
    } catch (const common::ConfigError& e) {
        common::fail_config(kProgram, e);
    } catch (const std::exception& e) {
        std::cerr << kProgram << ": " << e.what() << "\n";
        return 1;
    }
}

}  // namespace meshhook::tools
