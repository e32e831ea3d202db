// `meshhook`: the operator and developer CLI. Each subcommand lives in tools/.
#include <cstring>
#include <iostream>
#include <string_view>

#include "tools/cli.hpp"

int main(int argc, char** argv) {
    return meshhook::tools::cli_main(argc, const_cast<const char* const*>(argv));
}
