#include "tests/integration/tools/cli_harness.hpp"

#include <signal.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "tests/support/process.hpp"

namespace meshhook::testing {

CliResult run_meshhook(std::vector<std::string> args, std::map<std::string, std::string> env,
                       const std::string& input, std::chrono::milliseconds timeout) {
    args.insert(args.begin(), binary_path("meshhook").string());
    Process p(args, std::move(env));
    if (!input.empty()) {
        // write_line appends the newline: `input` must end with one.
        p.write_line(input.substr(0, input.size() - 1));
    }
    p.close_stdin();
    CliResult r;
    r.out = p.read_all(timeout);
    r.code = p.wait(timeout).value_or(-1);
    r.err = p.stderr_text();
    return r;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

bool process_alive(int pid) {
    if (::kill(pid, 0) != 0) return errno != ESRCH;
    // A zombie still answers kill(0); /proc tells it apart.
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close = content.rfind(')');
    return close == std::string::npos || close + 2 >= content.size() || content[close + 2] != 'Z';
}

}  // namespace meshhook::testing
