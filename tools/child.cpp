#include "tools/child.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <stdexcept>

extern char** environ;

namespace meshhook::tools {

void LineSink::print(const std::string& prefix, const char* ansi_color, const std::string& line) {
    std::lock_guard lock(mutex_);
    if (color_) {
        std::cout << "\033[" << ansi_color << "m" << prefix << "\033[0m " << line << "\n";
    } else {
        std::cout << prefix << " " << line << "\n";
    }
    std::cout.flush();
}

void LineSink::print(const std::string& line) {
    std::lock_guard lock(mutex_);
    std::cout << line << std::endl;
}

namespace {

std::string status_text(int status) {
    if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        const char* name = sigdescr_np(sig);
        return "killed by signal " + std::to_string(sig) +
               (name ? std::string(" (") + name + ")" : "");
    }
    return "status " + std::to_string(status);
}

}  // namespace

Child::Child(std::string name, std::vector<std::string> argv,
             const std::map<std::string, std::string>& env, LineSink& sink, const char* ansi_color,
             LineHandler on_line)
    : name_(std::move(name)), sink_(sink), color_(ansi_color), on_line_(std::move(on_line)) {
    // Everything that allocates happens before fork: only async-signal-safe
    // calls are allowed in the child of a multi-threaded process.
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
        const std::string_view kv(*e);
        const auto key = kv.substr(0, kv.find('='));
        if (!env.contains(std::string(key))) env_strings.emplace_back(kv);
    }
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    envp.reserve(env_strings.size() + 1);
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);

    int out[2];
    int err_pipe[2];  // reports a failed exec back to us (CLOEXEC: closes on success)
    if (::pipe2(out, O_CLOEXEC) != 0)
        throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
        ::close(out[0]);
        ::close(out[1]);
        throw std::runtime_error("pipe: " + std::string(std::strerror(errno)));
    }
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) {
        for (int fd : {out[0], out[1], err_pipe[0], err_pipe[1]}) ::close(fd);
        throw std::runtime_error("fork: " + std::string(std::strerror(errno)));
    }
    if (pid_ == 0) {
        // Own process group, so stopping a child reaches anything it started;
        // and killed when we die, even by SIGKILL. If we died before prctl
        // took effect, getppid() has already changed.
        ::setpgid(0, 0);
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127);
        // Our blocked signals (for the signalfd) would survive exec.
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::signal(SIGINT, SIG_DFL);
        ::signal(SIGTERM, SIG_DFL);
        ::signal(SIGPIPE, SIG_DFL);
        ::dup2(out[1], STDOUT_FILENO);
        ::dup2(out[1], STDERR_FILENO);
        const int devnull = ::open("/dev/null", O_RDONLY);
        if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
        ::execve(args[0], args.data(), envp.data());
        const int e = errno;
        [[maybe_unused]] auto n = ::write(err_pipe[1], &e, sizeof e);
        ::_exit(127);
    }
    ::close(out[1]);
    ::close(err_pipe[1]);
    int exec_errno = 0;
    ssize_t n;
    do {
        n = ::read(err_pipe[0], &exec_errno, sizeof exec_errno);
    } while (n < 0 && errno == EINTR);
    ::close(err_pipe[0]);
    if (n == static_cast<ssize_t>(sizeof exec_errno)) {
        ::close(out[0]);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(exec_errno));
    }
    reader_ = std::thread([this, fd = out[0]] { read_loop(fd); });
}

Child::~Child() {
    if (pid_ > 0 && !exit_text_) {
        ::kill(-pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
    if (reader_.joinable()) reader_.join();
}

void Child::read_loop(int fd) {
    // Runs until EOF: every process holding the pipe (the child and anything
    // it started) has exited or closed it.
    std::string pending;
    char buf[4096];
    const std::string prefix = "[" + name_ + "]";
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        pending.append(buf, static_cast<std::size_t>(n));
        std::size_t pos;
        while ((pos = pending.find('\n')) != std::string::npos) {
            std::string line = pending.substr(0, pos);
            pending.erase(0, pos + 1);
            sink_.print(prefix, color_, line);
            if (on_line_) on_line_(line);
        }
    }
    if (!pending.empty()) {
        sink_.print(prefix, color_, pending);
        if (on_line_) on_line_(pending);
    }
    ::close(fd);
}

std::optional<std::string> Child::poll_exit() {
    if (exit_text_ || pid_ <= 0) return exit_text_;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        exit_text_ = status_text(status);
        clean_ = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        // Whatever it started goes with it.
        ::kill(-pid_, SIGKILL);
    }
    return exit_text_;
}

std::string Child::stop(std::chrono::milliseconds grace, const std::function<bool()>& hurry) {
    if (poll_exit()) return *exit_text_;
    ::kill(-pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (std::chrono::steady_clock::now() < deadline) {
        if (poll_exit()) return *exit_text_;
        if (hurry && hurry()) break;
        // Polling waitpid: a blocking wait cannot time out.
        ::usleep(20000);
    }
    ::kill(-pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exit_text_ = status_text(status) + " (after SIGKILL)";
    clean_ = false;
    return *exit_text_;
}

}  // namespace meshhook::tools
