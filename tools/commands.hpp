#pragma once
// Entry points of the `meshhook` subcommands (registered in subcommands.cpp).
// Each takes argv shifted so that argv[0] is the subcommand name, and returns
// the exit code: 0 done, 1 the work failed (one line on stderr says why),
// 2 bad flags.

namespace meshhook::tools {

int sign_main(int argc, const char* const* argv);
int verify_main(int argc, const char* const* argv);
int send_main(int argc, const char* const* argv);
int dev_main(int argc, const char* const* argv);
int tail_main(int argc, const char* const* argv);
int replay_main(int argc, const char* const* argv);
int state_main(int argc, const char* const* argv);
int mesh_main(int argc, const char* const* argv);
int reconcile_main(int argc, const char* const* argv);

}  // namespace meshhook::tools
