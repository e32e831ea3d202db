#include "tools/cli.hpp"

#include <iostream>
#include <string_view>

#include "tools/broker.hpp"
#include "tools/subcommands.hpp"

namespace meshhook::tools {

int cli_main(int argc, const char* const* argv) {
    const std::string_view usage =
        "usage: meshhook SUBCOMMAND [flags]   (meshhook SUBCOMMAND --help for each)\n\n"
        "  broker     run the Kafka-protocol test broker (librdkafka mock cluster)\n"
        "  dev        the whole pipeline on this machine; --demo sends the demo sequence\n"
        "  send       post signed deliveries the way Mesh does (files, dirs, scenarios)\n"
        "  sign       print the X-Mesh-Signature-256 value for a body\n"
        "  verify     check a body against a signature and say why not\n"
        "  tail       print records from a topic\n"
        "  replay     move records from the DLQ or anomalies back to mesh.transfer-events\n"
        "  state      what the consumer's store knows about a transfer\n"
        "  mesh       a Mesh API simulator (managed-transfers list) for dev and tests\n"
        "  reconcile  one reconciliation pass against Mesh's API; a dry run unless --apply\n";
    if (argc < 2) {
        std::cerr << usage;
        return 2;
    }
    const std::string_view sub = argv[1];
    // Each subcommand sees argv shifted by one, its own name as argv[0].
    const int sub_argc = argc - 1;
    const char* const* sub_argv = argv + 1;
    if (sub == "broker") return broker_main(sub_argc, sub_argv);
    for (const auto& cmd : subcommands()) {
        if (sub == cmd.name) return cmd.run(sub_argc, sub_argv);
    }
    if (sub == "--help" || sub == "-h" || sub == "help") {
        std::cout << usage;
        return 0;
    }
    std::cerr << "meshhook: unknown subcommand '" << sub << "'\n" << usage;
    return 2;
}

}  // namespace meshhook::tools
