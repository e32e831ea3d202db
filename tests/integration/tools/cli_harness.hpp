#pragma once
// Running `meshhook` subcommands as a user would: a child process, its exit
// code, stdout and stderr.

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace meshhook::testing {

struct CliResult {
    int code = -1;  // -1: did not exit within the timeout (then killed)
    std::string out;
    std::string err;
};

// `meshhook ARGS...`, stdin fed with `input` then closed.
CliResult run_meshhook(std::vector<std::string> args, std::map<std::string, std::string> env = {},
                       const std::string& input = "",
                       std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Lines of `text` (without the newlines).
std::vector<std::string> lines_of(const std::string& text);

// Whether a process with this pid still exists (and is not a zombie of ours).
bool process_alive(int pid);

}  // namespace meshhook::testing
