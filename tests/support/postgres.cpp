// PostgresServer: Debian's PostgreSQL 15 in a temporary directory. initdb and
// pg_ctl run as `postgres` when the tests run as root (PostgreSQL refuses
// root), directly otherwise.

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace meshhook::testing {

namespace {

constexpr std::string_view kPgBin = "/usr/lib/postgresql/15/bin";

std::string pg_bin(std::string_view tool) {
    return std::string(kPgBin) + "/" + std::string(tool);
}

// Runs argv to completion, output appended to `log`; returns the exit status.
int run(std::vector<std::string> argv, const std::filesystem::path& log) {
    if (::geteuid() == 0) {
        argv.insert(argv.begin(), {"runuser", "-u", "postgres", "--"});
    }
    std::vector<char*> args;
    args.reserve(argv.size() + 1);
    for (std::string& a : argv) {
        args.push_back(a.data());
    }
    args.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
        throw std::runtime_error("fork failed");
    }
    if (pid == 0) {
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            ::dup2(fd, STDOUT_FILENO);
            ::dup2(fd, STDERR_FILENO);
            ::close(fd);
        }
        const int null_fd = ::open("/dev/null", O_RDONLY);
        if (null_fd >= 0) {
            ::dup2(null_fd, STDIN_FILENO);
            ::close(null_fd);
        }
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string tail_of(const std::filesystem::path& log) {
    try {
        std::string text = read_file(log);
        return text.size() > 2000 ? text.substr(text.size() - 2000) : text;
    } catch (const std::exception&) {
        return {};
    }
}

void give_to_postgres(const std::filesystem::path& dir) {
    ::chmod(dir.c_str(), 0700);
    if (::geteuid() != 0) {
        return;
    }
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
        throw std::runtime_error("PostgresServer: no `postgres` user (install postgresql)");
    }
    if (::chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
        throw std::runtime_error("PostgresServer: chown failed");
    }
}

// initdb takes over a second and its output is always the same: it runs once
// per machine (under an flock, for parallel test processes) into a template
// that each server copies.
std::filesystem::path template_data() {
    const auto base = std::filesystem::temp_directory_path() /
                      ("meshhook-pg15-template-" + std::to_string(::geteuid()));
    auto data = base / "data";
    const auto ready = base / "ready";
    if (std::filesystem::exists(ready)) {
        return data;
    }
    const std::string lock_path = base.string() + ".lock";
    const int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock < 0 || ::flock(lock, LOCK_EX) != 0) {
        throw std::runtime_error("PostgresServer: cannot lock " + lock_path);
    }
    struct Unlock {
        int fd;
        ~Unlock() { ::close(fd); }
    } unlock{lock};
    if (!std::filesystem::exists(ready)) {
        std::filesystem::remove_all(base);
        std::filesystem::create_directory(base);
        give_to_postgres(base);
        const auto log = base.parent_path() / (base.filename().string() + ".log");
        // --no-sync: a throwaway cluster for tests.
        if (run({pg_bin("initdb"), "-D", data.string(), "-A", "trust", "-U", "meshhook", "-E",
                 "UTF8", "--locale=C", "--no-sync"},
                log) != 0) {
            throw std::runtime_error("PostgresServer: initdb failed: " + tail_of(log));
        }
        std::ofstream(ready) << "initdb done\n";
    }
    return data;
}

}  // namespace

PostgresServer::PostgresServer() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "meshhook-pg-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
        throw std::runtime_error("PostgresServer: mkdtemp failed");
    }
    dir_ = tmpl;
    give_to_postgres(dir_);
    const auto data = dir_ / "data";
    const auto log = dir_ / "setup.log";
    if (run({"cp", "-a", template_data().string(), data.string()}, log) != 0) {
        throw std::runtime_error("PostgresServer: copying the initdb template failed: " +
                                 tail_of(log));
    }
    // A port can be taken between free_port() and the bind: retry a few times.
    bool started = false;
    for (int attempt = 0; attempt < 5 && !started; ++attempt) {
        port_ = free_port();
        const std::string options = "-p " + std::to_string(port_) + " -k " + dir_.string() +
                                    " -c listen_addresses=127.0.0.1 -c fsync=off"
                                    " -c max_connections=50";
        started = run({pg_bin("pg_ctl"), "-D", data.string(), "-o", options, "-l",
                       (dir_ / "server.log").string(), "-w", "-t", "60", "start"},
                      log) == 0;
    }
    if (!started) {
        throw std::runtime_error("PostgresServer: pg_ctl start failed: " + tail_of(log) +
                                 tail_of(dir_ / "server.log"));
    }
    url_ = create_database("meshhook");
}

PostgresServer::~PostgresServer() {
    const auto log = dir_ / "setup.log";
    try {
        run({pg_bin("pg_ctl"), "-D", (dir_ / "data").string(), "-m", "fast", "-w", "stop"}, log);
    } catch (const std::exception&) {
        // best effort: the directory goes anyway
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

std::string PostgresServer::create_database(const std::string& name) {
    const auto log = dir_ / "setup.log";
    if (run({pg_bin("createdb"), "-h", dir_.string(), "-p", std::to_string(port_), "-U", "meshhook",
             name},
            log) != 0) {
        throw std::runtime_error("PostgresServer: createdb " + name + " failed: " + tail_of(log));
    }
    return "postgresql://meshhook@127.0.0.1:" + std::to_string(port_) + "/" + name;
}

}  // namespace meshhook::testing
