// meshhook-ingest: configuration and wiring only; the logic is in meshhook_ingest.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <exception>
#include <iostream>

#include "common/config.hpp"
#include "common/log.hpp"
#include "ingest/config.hpp"
#include "ingest/server.hpp"

int main(int argc, char** argv) {
    using namespace meshhook;
    common::Settings settings(std::string(ingest::kProgram),
                              "receives Mesh transfer webhooks and publishes them to Kafka");
    ingest::declare_settings(settings);
    ingest::IngestConfig config;
    try {
        if (settings.parse(argc, argv) == common::Settings::Outcome::kHelp) {
            std::cout << settings.help_text();
            return 0;
        }
        if (!settings.positional().empty()) {
            throw common::ConfigError("unexpected argument \"" + settings.positional().front() +
                                      "\" (see --help)");
        }
        config = ingest::load_config(settings, common::env_with_prefix(ingest::kSecretEnvPrefix));
        common::init_logging(ingest::kProgram, config.log_format, config.log_level);
    } catch (const std::exception& e) {
        common::fail_config(ingest::kProgram, e);
    }
    // Writes to a closed connection must fail with EPIPE, not kill the process.
    std::signal(SIGPIPE, SIG_IGN);

    std::string environments;
    for (const auto& env : config.environments) {
        if (!environments.empty()) environments += ',';
        environments += env.name + "(" + std::to_string(env.secrets.size()) + " secrets)";
    }
    common::log_info("starting: " + settings.summary_line() + " environments=" + environments);
    try {
        const std::string ready_file = config.ready_file;
        ingest::Server server(std::move(config));
        const auto bound = server.bind();
        if (!ready_file.empty()) {
            common::write_ready_file(settings.describe("ready-file"), ready_file,
                                     {{"listen", bound.listen},
                                      {"admin", bound.admin},
                                      {"pid", std::to_string(::getpid())}});
        }
        std::printf("%s: listening on %s\n%s: admin on %s\n", ingest::kProgram.data(),
                    bound.listen.c_str(), ingest::kProgram.data(), bound.admin.c_str());
        std::fflush(stdout);
        common::log_info("listening on " + bound.listen + ", admin on " + bound.admin);
        return server.run();
    } catch (const common::ConfigError& e) {
        common::fail_config(ingest::kProgram, e);
    } catch (const std::exception& e) {
        common::log_error(std::string("fatal: ") + e.what());
        return 1;
    }
}
