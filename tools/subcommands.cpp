#include "tools/subcommands.hpp"

#include "tools/commands.hpp"

namespace meshhook::tools {

const std::vector<Subcommand>& subcommands() {
    static const std::vector<Subcommand> subcommand_list = {
        {"sign", sign_main},   {"verify", verify_main}, {"send", send_main},
        {"dev", dev_main},     {"tail", tail_main},     {"replay", replay_main},
        {"state", state_main}, {"mesh", mesh_main},     {"reconcile", reconcile_main},
    };
    return subcommand_list;
}

}  // namespace meshhook::tools
