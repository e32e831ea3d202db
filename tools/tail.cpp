// `meshhook tail TOPIC`: print a topic's records (key, headers, value).
#include <signal.h>

#include <iostream>

#include "tools/commands.hpp"
#include "tools/topic_reader.hpp"
#include "tools/util.hpp"

namespace meshhook::tools {
namespace {

volatile sig_atomic_t g_stop = 0;
void on_stop(int) {
    g_stop = 1;
}

void print_record(const common::Message& msg, bool pretty) {
    std::cout << msg.topic() << "[" << msg.partition() << "]@" << msg.offset();
    if (msg.timestamp_ms() >= 0) std::cout << " " << format_utc_ms(msg.timestamp_ms());
    const auto key = msg.key();
    std::cout << " key=" << (key ? std::string(*key) : std::string("(null)")) << "\n";
    for (const auto& h : msg.headers()) std::cout << "  " << h.key << ": " << h.value << "\n";
    std::cout << (pretty ? pretty_json(msg.value()) : std::string(msg.value())) << "\n\n";
    std::cout.flush();
}

}  // namespace

int tail_main(int argc, const char* const* argv) {
    constexpr std::string_view kProgram = "meshhook tail";
    common::Settings settings(
        std::string(kProgram),
        "prints the records of a topic: partition, offset, time, key, headers, value.\n\n"
        "  meshhook tail TOPIC --brokers HOST:PORT [--from beginning|end] [--follow] [--pretty]\n"
        "                      [--read-uncommitted]\n\n"
        "Without --follow it stops at the end of every partition as it was at start.\n"
        "Reads without a consumer group: nothing is committed, nobody's offsets move.\n"
        "Reads committed records only (isolation.level=read_committed), as the ledger does:\n"
        "records of open or aborted transactions are not shown without --read-uncommitted.");
    common::declare_brokers(settings)
        .add({"from", "", "beginning", "where to start: beginning | end"})
        .add({"follow", "", "", "keep printing new records until Ctrl-C", false, true})
        .add({"pretty", "", "", "pretty-print JSON values (number text kept exactly)", false, true})
        .add({"read-uncommitted", "", "",
              "also show records of open and aborted transactions (isolation.level="
              "read_uncommitted)",
              false, true})
        .add({"max", "", "0", "stop after this many records (0: no limit)"})
        .add({"timeout-ms", "", "10000", "how long to wait for the brokers' metadata"});
    common::declare_client_properties(settings);
    if (auto code = parse_or_exit(settings, kProgram, argc, argv)) return *code;

    std::uint64_t max = 0;
    std::chrono::milliseconds timeout{};
    common::KafkaConfig kafka;
    try {
        if (settings.positional().size() != 1) {
            throw common::ConfigError("expected exactly one TOPIC (see --help)");
        }
        common::bootstrap_servers(settings);
        const auto& from = settings.get("from");
        if (from != "beginning" && from != "end") {
            throw common::ConfigError("--from: expected beginning or end, got \"" + from + "\"");
        }
        kafka = common::client_properties(settings);
        // After the file's properties, which may not set it anyway (not a
        // connection property).
        kafka.emplace_back("isolation.level", settings.is_set("read-uncommitted")
                                                  ? "read_uncommitted"
                                                  : "read_committed");
        max = common::parse_uint("--max", settings.get("max"), 0, UINT64_MAX);
        timeout = std::chrono::milliseconds(
            common::parse_uint("--timeout-ms", settings.get("timeout-ms"), 1, 600000));
    } catch (const common::ConfigError& e) {
        std::cerr << kProgram << ": " << e.what() << std::endl;
        return 2;
    }
    const auto& topic = settings.positional().front();
    const bool follow = settings.is_set("follow");
    const bool pretty = settings.is_set("pretty");

    struct sigaction sa {};
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    try {
        TopicReader reader(settings.get("brokers"), topic, settings.get("from") == "end", timeout,
                           kafka);
        // On stderr, so stdout stays records only; also tells a script that
        // records produced from now on will be seen.
        std::cerr << kProgram << ": reading " << topic << " (" << reader.partitions()
                  << " partitions) from the " << settings.get("from")
                  << (follow ? ", following" : "")
                  << (settings.is_set("read-uncommitted") ? ", uncommitted records too"
                                                          : ", committed records only")
                  << std::endl;
        std::uint64_t printed = 0;
        auto last_progress = std::chrono::steady_clock::now();
        while (g_stop == 0 && (max == 0 || printed < max)) {
            if (!follow && reader.caught_up()) break;
            auto msg = reader.next(std::chrono::milliseconds(200));
            if (!msg) {
                // Records known to exist but not arriving: the brokers went away.
                if (!follow && std::chrono::steady_clock::now() - last_progress > timeout) {
                    return fail(
                        kProgram,
                        "no records from " + settings.get("brokers") + " for " +
                            std::to_string(timeout.count()) + " ms before the end of " + topic +
                            (reader.last_error().empty() ? "" : ": " + reader.last_error()));
                }
                continue;
            }
            last_progress = std::chrono::steady_clock::now();
            print_record(msg, pretty);
            ++printed;
        }
        std::cerr << kProgram << ": " << printed << " record(s) from " << topic << std::endl;
        return 0;
    } catch (const std::exception& e) {
        return fail(kProgram, e.what());
    }
}

}  // namespace meshhook::tools
