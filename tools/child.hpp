#pragma once
// Child processes of `meshhook dev`: each in its own process group, dying
// with its parent (PR_SET_PDEATHSIG), its stdout and stderr relayed line by
// line with a coloured prefix.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace meshhook::tools {

// Serialises lines from several threads onto stdout.
class LineSink {
public:
    explicit LineSink(bool color) : color_(color) {}
    // `ansi_color` like "36" (cyan); ignored without colour.
    void print(const std::string& prefix, const char* ansi_color, const std::string& line);
    void print(const std::string& line);

private:
    std::mutex mutex_;
    bool color_;
};

class Child {
public:
    using LineHandler = std::function<void(const std::string& line)>;

    // Starts `argv[0]` (a path) with the current environment plus `env`.
    // Throws std::runtime_error with one line when it cannot be started.
    // Must be called from the thread that outlives the child: the death
    // signal fires when the forking *thread* exits.
    Child(std::string name, std::vector<std::string> argv,
          const std::map<std::string, std::string>& env, LineSink& sink, const char* ansi_color,
          LineHandler on_line);
    ~Child();  // SIGKILLs the group if still running, joins the reader
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;

    const std::string& name() const { return name_; }
    pid_t pid() const { return pid_; }

    // Non-blocking: the exit status text ("exit code 1", "killed by signal 9")
    // once the child has exited, nullopt while it runs.
    std::optional<std::string> poll_exit();
    bool exited() const { return exit_text_.has_value(); }
    bool exited_cleanly() const { return clean_; }

    // SIGTERM to the child's group, wait up to `grace`, then SIGKILL. Returns
    // the exit text, with " (after SIGKILL)" when it had to be forced.
    // `hurry`, polled while waiting, cuts the grace short when it says so
    // (a second Ctrl-C).
    std::string stop(std::chrono::milliseconds grace, const std::function<bool()>& hurry = {});

private:
    void read_loop(int fd);

    std::string name_;
    pid_t pid_ = -1;
    LineSink& sink_;
    const char* color_;
    LineHandler on_line_;
    std::thread reader_;
    std::optional<std::string> exit_text_;
    bool clean_ = false;
};

}  // namespace meshhook::tools
