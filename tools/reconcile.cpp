// `meshhook reconcile`: one reconciliation pass on demand, for operators. It
// is the consumer's pass (consumer/reconcile.hpp): the same list, look-ups,
// classification and, with --apply, the same synthesized events.
#include "consumer/reconcile.hpp"

#include <iostream>

#include "common/kafka.hpp"
#include "common/log.hpp"
#include "common/wire.hpp"
#include "consumer/store.hpp"
#include "tools/commands.hpp"
#include "tools/util.hpp"

namespace meshhook::tools {
namespace {

constexpr std::string_view kProgram = "meshhook reconcile";

std::string or_dash(const std::string& s) {
    return s.empty() ? "-" : s;
}

// "missing  <id>  mesh: succeeded 250.01 USDC/Ethereum  store: -"
void print_entry(const consumer::PassEntry& e) {
    std::cout << std::string(consumer::to_string(e.finding)) << "  " << e.mesh.id
              << "  mesh: " << or_dash(e.mesh.status) << " " << or_dash(e.mesh.destination_amount)
              << " " << or_dash(e.mesh.symbol) << "/" << or_dash(e.mesh.network_name)
              << "  store: ";
    if (!e.store) {
        std::cout << "-\n";
        return;
    }
    std::cout << or_dash(e.store->status) << " " << or_dash(e.store->amount)
              << (e.store->credited ? " credited" : " not credited") << "\n";
}

}  // namespace

int reconcile_main(int argc, const char* const* argv) {
    common::Settings settings(
        std::string(kProgram),
        "one reconciliation pass against Mesh's managed-transfers API, as the consumer runs\n"
        "them, for one environment (its MESH_CLIENT_ID[_<ENV>], MESH_CLIENT_SECRET[_<ENV>],\n"
        "MESH_API_URL[_<ENV>] from the environment).\n\n"
        "  meshhook reconcile --store URL --environment ENV [--since TIME] [--apply]\n"
        "                     [--brokers HOST:PORT]\n\n"
        "Prints one line per transfer where Mesh and the store disagree:\n"
        "  missing         Mesh has it, the store never heard of it\n"
        "  stale           final at Mesh, not final here (quiet for the stale-after time)\n"
        "  amount_differs  credited here with another amount than Mesh's\n"
        "  failed_at_mesh  credited here, failed at Mesh\n"
        "then the totals. A dry run by default: nothing is written anywhere. --apply\n"
        "produces to the input topic the events the consumer would for missing and stale\n"
        "transfers (a running consumer applies them; a credit is never made twice); the\n"
        "other two are for a human (docs/RUNBOOK.md). Exit 0 when the pass completed, 1\n"
        "when it did not (Mesh refused or failed, Kafka did not acknowledge), 2 on bad\n"
        "flags. TIME is RFC 3339 UTC (2026-11-28T10:00:00Z) or epoch milliseconds; without\n"
        "--since the window is --reconcile-lookback-s.");
    settings.add({"store", "CONSUMER_STORE", "", "the consumer's store URL; required"})
        .add({"environment", "", "", "the Mesh environment (production, sandbox, ...); required"})
        .add({"since", "", "", "list the transfers Mesh created from this time"})
        .add({"apply", "", "", "produce the events (needs --brokers)", false, true})
        .add({"brokers", "KAFKA_BROKERS", "", "Kafka bootstrap servers, for --apply"})
        .add({"input-topic", "CONSUMER_INPUT_TOPIC", std::string(wire::kTransferEventsTopic),
              "where --apply produces"});
    consumer::declare_reconcile_settings(settings, false);
    common::declare_client_properties(settings);
    if (auto code = parse_or_exit(settings, kProgram, argc, argv)) return *code;

    consumer::ReconcilerOptions options;
    std::optional<std::int64_t> since;
    const bool apply = settings.is_set("apply");
    const std::string& environment = settings.get("environment");
    try {
        if (!settings.positional().empty()) {
            throw common::ConfigError("unexpected argument '" + settings.positional().front() +
                                      "'");
        }
        for (const char* flag : {"store", "environment"}) {
            if (settings.get(flag).empty()) {
                throw common::ConfigError(settings.describe(flag) + ": required");
            }
        }
        if (apply && settings.get("brokers").empty()) {
            throw common::ConfigError(settings.describe("brokers") + ": required with --apply");
        }
        if (!settings.get("since").empty()) {
            since = parse_time_ms(settings.get("since"));
            if (!since) {
                throw common::ConfigError(
                    "--since: expected RFC 3339 UTC (2026-11-28T10:00:00Z) or epoch ms, got \"" +
                    settings.get("since") + "\"");
            }
        }
        options.config = consumer::load_reconcile_config(settings, false);
        options.store_url = settings.get("store");
        options.input_topic = settings.get("input-topic");
        options.max_lookups = 0;  // every quiet non-final transfer
        options.kafka = {{"bootstrap.servers", settings.get("brokers")},
                         {"message.timeout.ms", "30000"},
                         {"log_level", "0"}};
        const common::KafkaConfig extra = common::client_properties(settings);
        options.kafka.insert(options.kafka.end(), extra.begin(), extra.end());
    } catch (const common::ConfigError& e) {
        std::cerr << kProgram << ": " << e.what() << std::endl;
        return 2;
    }
    for (const std::string& warning : options.config.warnings) common::log_warn(warning);

    consumer::PassReport report;
    try {
        consumer::Reconciler reconciler(options, nullptr, [] { return true; });
        report = reconciler.run_once(environment, since, apply);
    } catch (const common::ConfigError& e) {
        std::cerr << kProgram << ": " << e.what() << std::endl;
        return 2;
    } catch (const std::exception& e) {
        return fail(kProgram, e.what());
    }
    std::map<consumer::Finding, std::size_t> counts;
    for (const consumer::PassEntry& e : report.entries) {
        print_entry(e);
        ++counts[e.finding];
    }
    std::size_t actionable = 0;
    for (const consumer::Finding f : {consumer::Finding::kMissing, consumer::Finding::kStale}) {
        actionable += counts[f];
    }
    std::cout << "listed " << report.listed << ", looked up " << report.looked_up << ", "
              << report.calls << " API calls; missing " << counts[consumer::Finding::kMissing]
              << ", stale " << counts[consumer::Finding::kStale] << ", amount_differs "
              << counts[consumer::Finding::kAmountDiffers] << ", failed_at_mesh "
              << counts[consumer::Finding::kFailedAtMesh] << "; ";
    if (apply) {
        std::cout << report.produced << " of " << actionable << " events produced\n";
    } else {
        std::cout << "dry run: nothing produced (--apply would produce " << actionable
                  << " events)\n";
    }
    if (report.result != consumer::PassReport::Result::kOk) {
        return fail(kProgram, "the pass did not complete (see the lines above)");
    }
    return 0;
}

}  // namespace meshhook::tools
