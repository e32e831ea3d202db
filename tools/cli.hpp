#pragma once
// Dispatch of `meshhook SUBCOMMAND ...`.

namespace meshhook::tools {

// argv[0] is the program, argv[1] the subcommand. Returns the exit code.
int cli_main(int argc, const char* const* argv);

}  // namespace meshhook::tools
