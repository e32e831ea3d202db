#include "tools/subcommands.hpp"

namespace meshhook::tools {

const std::vector<Subcommand>& subcommands() {
    static const std::vector<Subcommand> kSubcommands = {};
    return kSubcommands;
}

}  // namespace meshhook::tools
