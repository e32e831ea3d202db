#pragma once
// The registry of `meshhook` subcommands other than `broker`.

#include <string_view>
#include <vector>

namespace meshhook::tools {

struct Subcommand {
    std::string_view name;
    int (*run)(int argc, const char* const* argv);  // argv[0] is the subcommand name
};

const std::vector<Subcommand>& subcommands();

}  // namespace meshhook::tools
