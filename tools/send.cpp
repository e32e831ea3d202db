// `meshhook send`: post signed deliveries the way Mesh does.
#include <algorithm>
#include <filesystem>
#include <iostream>

#include "tools/commands.hpp"
#include "tools/scenario.hpp"
#include "tools/sender.hpp"
#include "tools/util.hpp"

namespace meshhook::tools {

namespace fs = std::filesystem;

int send_main(int argc, const char* const* argv) {
    constexpr std::string_view kProgram = "meshhook send";
    common::Settings settings(
        std::string(kProgram),
        "posts signed deliveries the way Mesh does.\n\n"
        "  meshhook send --url URL [FILE|DIR ...]        bodies from files (a DIR: its *.json, by "
        "name)\n"
        "  meshhook send --url URL --scenario demo       the fixture bodies 01..05, built in\n"
        "  meshhook send --url URL --scenario random --transfers N --seed S\n\n"
        "Each body is signed (X-Mesh-Signature-256) with the first secret of --secret.\n"
        "Like Mesh, each attempt's SentTimestamp is set to its send time first (seconds or\n"
        "milliseconds, as the body had it), so ingest's replay window accepts stored bodies;\n"
        "--exact sends the bytes as they are.\n"
        "Deliveries of one transfer go out in order; different transfers concurrently.\n"
        "A non-200 answer is retried with doubling back-off (Retry-After wins), up to\n"
        "--max-attempts. Prints a summary of answers and latencies; exit 0 only when\n"
        "every delivery was finally answered 200.");
    settings
        .add(
            {"url", "MESHHOOK_URL", "http://127.0.0.1:8080/webhooks/mesh", "webhook URL (http://)"})
        .add({"secret", "MESH_WEBHOOK_SECRET", "", "webhook secret (first of a comma list)", true})
        .add({"scenario", "", "", "generate deliveries instead of reading files: demo | random"})
        .add({"transfers", "", "100", "transfers in --scenario random"})
        .add({"seed", "", "1", "seed of --scenario random (same seed, same deliveries)"})
        .add({"concurrency", "", "4",
              "parallel connections (one transfer's deliveries stay in order)"})
        .add({"rate", "", "0",
              "deliveries per second over all connections; 0 = as fast as possible"})
        .add({"max-attempts", "", "6", "attempts per delivery, the first included"})
        .add({"backoff-ms", "", "200", "first retry delay; doubles per attempt, at most 5000"})
        .add({"timeout-ms", "", "5000", "per request"})
        .add({"exact", "", "",
              "send each body's bytes as they are (no fresh SentTimestamp): a stored body is "
              "refused by ingest's replay window",
              false, true})
        .add({"verbose", "", "", "one line per attempt", false, true});
    if (auto code = parse_or_exit(settings, kProgram, argc, argv)) return *code;

    SendOptions options;
    std::vector<Stream> streams;
    bool have_scenario = false;
    try {
        std::string error;
        const auto url = parse_url(settings.get("url"), error);
        if (!url) throw common::ConfigError(settings.describe("url") + ": " + error);
        options.url = *url;
        options.secret = first_secret(settings.get("secret"));
        if (options.secret.empty()) {
            throw common::ConfigError(settings.describe("secret") +
                                      ": missing value (the webhook secret to sign with)");
        }
        options.concurrency = static_cast<unsigned>(
            common::parse_uint("--concurrency", settings.get("concurrency"), 1, 1024));
        options.rate =
            static_cast<double>(common::parse_uint("--rate", settings.get("rate"), 0, 1000000));
        options.max_attempts = static_cast<unsigned>(
            common::parse_uint("--max-attempts", settings.get("max-attempts"), 1, 100));
        options.initial_backoff = std::chrono::milliseconds(
            common::parse_uint("--backoff-ms", settings.get("backoff-ms"), 0, 60000));
        options.timeout = std::chrono::milliseconds(
            common::parse_uint("--timeout-ms", settings.get("timeout-ms"), 1, 600000));
        options.verbose = settings.is_set("verbose");
        options.restamp = !settings.is_set("exact");

        const auto& scenario = settings.get("scenario");
        if (!scenario.empty()) {
            have_scenario = true;
            if (!settings.positional().empty()) {
                throw common::ConfigError("--scenario and FILE arguments exclude each other");
            }
            Scenario s;
            if (scenario == "demo") {
                s = demo_scenario();
            } else if (scenario == "random") {
                const auto transfers =
                    common::parse_uint("--transfers", settings.get("transfers"), 1, 10000000);
                const auto seed = common::parse_uint("--seed", settings.get("seed"), 0, UINT64_MAX);
                s = random_scenario(transfers, seed);
            } else {
                throw common::ConfigError("--scenario: expected demo or random, got \"" + scenario +
                                          "\"");
            }
            std::cout << "scenario " << scenario << ": " << s.transfers << " transfers, "
                      << s.deliveries << " deliveries, " << s.credits.size()
                      << " should be credited" << std::endl;
            streams = std::move(s.streams);
        } else if (settings.positional().empty()) {
            throw common::ConfigError(
                "nothing to send: give FILE or DIR arguments, or --scenario demo|random");
        }
    } catch (const common::ConfigError& e) {
        std::cerr << kProgram << ": " << e.what() << std::endl;
        return 2;
    }

    if (!have_scenario) {
        std::vector<Delivery> deliveries;
        for (const auto& arg : settings.positional()) {
            std::error_code ec;
            if (fs::is_directory(arg, ec)) {
                std::vector<fs::path> files;
                for (const auto& entry : fs::directory_iterator(arg, ec)) {
                    if (entry.path().extension() == ".json") files.push_back(entry.path());
                }
                if (ec) return fail(kProgram, "cannot list " + arg + ": " + ec.message());
                if (files.empty()) return fail(kProgram, "no *.json files in " + arg);
                std::sort(files.begin(), files.end());
                for (const auto& f : files) {
                    std::string error;
                    auto body = read_input(f.string(), error);
                    if (!body) return fail(kProgram, error);
                    deliveries.push_back({f.filename().string(), std::move(*body)});
                }
            } else {
                std::string error;
                auto body = read_input(arg, error);
                if (!body) return fail(kProgram, error);
                deliveries.push_back({fs::path(arg).filename().string(), std::move(*body)});
            }
        }
        streams = group_by_transfer(std::move(deliveries));
    }

    const auto summary = send_streams(streams, options, std::cout);
    std::cout << format_summary(summary) << std::endl;
    if (!summary.ok()) {
        if (options.verbose) {
            for (const auto& f : summary.failures) std::cerr << kProgram << ": " << f << "\n";
        }
        // One line: how many failed, the first failure, and the usual cause.
        std::string line = std::to_string(summary.gave_up) + " of " +
                           std::to_string(summary.deliveries) +
                           " deliveries were never answered 200";
        if (!summary.failures.empty()) line += "; first: " + summary.failures.front();
        if (summary.answers.contains("401")) line += " (401: signature rejected, check --secret)";
        return fail(kProgram, line);
    }
    return 0;
}

}  // namespace meshhook::tools
