#include "tests/integration/hostile/hostile_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

#include "common/kafka.hpp"
#include "common/signature.hpp"

namespace meshhook::testing::hostile {
namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

int remaining_ms(Clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return left.count() <= 0 ? 0 : static_cast<int>(left.count());
}

// Replaces the string value of the first `"name":"..."` in `body`.
void replace_string_member(std::string& body, std::string_view name, std::string_view value) {
    const std::string key = "\"" + std::string(name) + "\":\"";
    const auto start = body.find(key);
    if (start == std::string::npos) throw std::runtime_error("fixture has no " + std::string(name));
    const auto open = start + key.size();
    const auto close = body.find('"', open);
    body.replace(open, close - open, value);
}

std::string fresh_id() {
    static std::atomic<std::uint64_t> counter{0};
    static const std::uint64_t run = std::random_device{}();
    char buf[64];
    std::snprintf(buf, sizeof buf, "%08llx-%04llx-4000-8000-%012llx",
                  static_cast<unsigned long long>(run & 0xffffffffULL),
                  static_cast<unsigned long long>(::getpid() & 0xffff),
                  static_cast<unsigned long long>(counter.fetch_add(1)));
    return buf;
}

}  // namespace

bool Response::closes() const {
    return lower(header("connection")) == "close";
}

std::optional<Response> take_response(std::string& buffer) {
    const auto end = buffer.find("\r\n\r\n");
    if (end == std::string::npos) return std::nullopt;
    const std::string_view head(buffer.data(), end);
    Response res;
    // "HTTP/1.1 NNN Reason"
    if (head.size() < 12 || !head.starts_with("HTTP/1.")) {
        throw std::runtime_error("not an HTTP response: " + std::string(head.substr(0, 64)));
    }
    std::from_chars(head.data() + 9, head.data() + 12, res.status);
    std::size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos && pos < head.size()) {
        const auto next = head.find("\r\n", pos + 2);
        const auto line =
            head.substr(pos + 2, (next == std::string_view::npos ? head.size() : next) - pos - 2);
        const auto colon = line.find(':');
        if (colon != std::string_view::npos) {
            res.headers[lower(trim(line.substr(0, colon)))] =
                std::string(trim(line.substr(colon + 1)));
        }
        pos = next;
    }
    std::size_t length = 0;
    if (const auto cl = res.header("content-length"); !cl.empty()) {
        std::from_chars(cl.data(), cl.data() + cl.size(), length);
    }
    const auto total = end + 4 + length;
    if (buffer.size() < total) return std::nullopt;
    res.body = buffer.substr(end + 4, length);
    buffer.erase(0, total);
    return res;
}

RawSocket::RawSocket(std::uint16_t port) : fd_(connect_loopback(port)) {
    // A server that stops reading must not hang the test forever in send().
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

RawSocket::~RawSocket() {
    if (fd_ >= 0) ::close(fd_);
}

RawSocket::RawSocket(RawSocket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), buffer_(std::move(other.buffer_)), eof_(other.eof_) {}

bool RawSocket::send_all(std::string_view bytes) {
    return testing::send_all(fd_, bytes);
}

void RawSocket::shutdown_write() {
    ::shutdown(fd_, SHUT_WR);
}

bool RawSocket::read_available() {
    while (!eof_) {
        char chunk[16384];
        const auto n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n > 0) {
            buffer_.append(chunk, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        eof_ = true;  // orderly close (0) or reset
    }
    return !eof_;
}

std::optional<Response> RawSocket::read_response(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
        if (auto res = take_response(buffer_)) return res;
        if (eof_) return std::nullopt;
        pollfd p{fd_, POLLIN, 0};
        const int ready = ::poll(&p, 1, remaining_ms(deadline));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) return std::nullopt;
        read_available();
    }
}

bool RawSocket::wait_closed(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!eof_) {
        pollfd p{fd_, POLLIN, 0};
        const int ready = ::poll(&p, 1, remaining_ms(deadline));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) return false;
        read_available();
    }
    return true;
}

bool RawSocket::closed_now() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) read_available();
    return eof_;
}

std::vector<Response> send_and_read(RawSocket& socket, std::string bytes, std::size_t count,
                                    std::chrono::milliseconds timeout) {
    std::thread writer([&socket, data = std::move(bytes)] { (void)socket.send_all(data); });
    std::vector<Response> out;
    const auto deadline = Clock::now() + timeout;
    while (out.size() < count) {
        auto res = socket.read_response(std::chrono::milliseconds(remaining_ms(deadline)));
        if (!res) break;
        out.push_back(std::move(*res));
    }
    // The writer ends once everything is written or the peer is gone (at the
    // latest after SO_SNDTIMEO).
    writer.join();
    return out;
}

std::string post(std::string_view body, const std::vector<std::string>& extra,
                 std::string_view path) {
    std::string out = "POST ";
    out.append(path).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n");
    for (const auto& line : extra) out.append(line).append("\r\n");
    out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n\r\n");
    out.append(body);
    return out;
}

std::string signature_line(std::string_view body) {
    return "X-Mesh-Signature-256: " + common::sign(kSecret, body);
}

std::string signed_post(std::string_view body, const std::vector<std::string>& extra) {
    auto lines = extra;
    lines.push_back(signature_line(body));
    return post(body, lines);
}

std::string get(std::string_view path, bool close) {
    std::string out = "GET ";
    out.append(path).append(" HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if (close) out.append("Connection: close\r\n");
    out.append("\r\n");
    return out;
}

Event unique_event() {
    Event e;
    e.body = fresh_fixture("03-succeeded.json");
    e.event_id = fresh_id();
    e.transfer_id = fresh_id();
    replace_string_member(e.body, "Id", fresh_id());
    replace_string_member(e.body, "EventId", e.event_id);
    replace_string_member(e.body, "TransferId", e.transfer_id);
    return e;
}

std::string fresh_delivery(const std::string& fixture_name) {
    std::string body = fresh_fixture(fixture_name);
    const bool camel = body.find("\"Id\":\"") == std::string::npos;  // 06 is camelCase
    replace_string_member(body, camel ? "id" : "Id", fresh_id());
    return body;
}

std::string with_leading_member(std::string_view body, std::string_view member) {
    if (body.empty() || body.front() != '{') throw std::runtime_error("body is not an object");
    std::string out = "{";
    out.append(member).append(",").append(body.substr(1));
    return out;
}

Ingest::Ingest(const std::string& bootstrap, std::vector<std::string> extra_args) {
    constexpr std::string_view kPrefix = "meshhook-ingest: listening on 127.0.0.1:";
    // free_port() is only free "a moment ago": another process may take it
    // before the receiver binds, so a refused bind is retried on a new port.
    // MESHHOOK_TEST_INGEST_BINARY attacks another build of the receiver (the
    // TSan one, say) with this build's broker, as the ingest tests allow.
    const char* override_binary = std::getenv("MESHHOOK_TEST_INGEST_BINARY");
    const std::string binary = override_binary != nullptr && *override_binary != '\0'
                                   ? std::string(override_binary)
                                   : binary_path("meshhook-ingest").string();
    std::string failure;
    for (int attempt = 0; attempt < 3 && !process_; ++attempt) {
        port_ = free_port();
        std::vector<std::string> argv = {
            binary,      "--listen",       "127.0.0.1:" + std::to_string(port_),
            "--brokers", bootstrap,        "--threads",
            "2",         "--admin-listen", "127.0.0.1:0"};
        argv.insert(argv.end(), extra_args.begin(), extra_args.end());
        auto p = std::make_unique<Process>(
            argv,
            std::map<std::string, std::string>{{"MESH_WEBHOOK_SECRET", std::string(kSecret)}});
        const auto line = p->read_line(std::chrono::seconds(20));
        const auto admin = line ? p->read_line(std::chrono::seconds(20)) : std::nullopt;
        constexpr std::string_view kAdminPrefix = "meshhook-ingest: admin on 127.0.0.1:";
        if (line && *line == std::string(kPrefix) + std::to_string(port_) && admin &&
            admin->starts_with(kAdminPrefix)) {
            admin_port_ =
                static_cast<std::uint16_t>(std::stoul(admin->substr(kAdminPrefix.size())));
            process_ = std::move(p);
        } else {
            failure = line.value_or("<no line>") + "\n" + p->stderr_text();
        }
    }
    if (!process_) throw std::runtime_error("meshhook-ingest did not start: " + failure);
    const bool ready = wait_until(
        [&] {
            try {
                RawSocket s(admin_port_);
                if (!s.send_all(get("/readyz", true))) return false;
                const auto res = s.read_response(std::chrono::seconds(2));
                return res && res->status == 200;
            } catch (const std::exception&) {
                return false;
            }
        },
        std::chrono::seconds(20));
    if (!ready) throw std::runtime_error("meshhook-ingest never ready: " + process_->stderr_text());
}

std::size_t Ingest::status_kib(std::string_view field) const {
    std::ifstream in("/proc/" + std::to_string(process_->pid()) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.starts_with(field) && line.size() > field.size() && line[field.size()] == ':') {
            return std::stoul(line.substr(field.size() + 1));
        }
    }
    throw std::runtime_error("no " + std::string(field) + " for meshhook-ingest");
}

std::size_t Ingest::open_descriptors() const {
    std::size_t n = 0;
    std::error_code ec;
    for (std::filesystem::directory_iterator
             it("/proc/" + std::to_string(process_->pid()) + "/fd", ec),
         end;
         !ec && it != end; it.increment(ec)) {
        ++n;
    }
    return n;
}

namespace {

common::Consumer make_reader(const std::string& bootstrap) {
    static std::atomic<int> counter{0};
    return common::Consumer({{"bootstrap.servers", bootstrap},
                             {"group.id", "hostile-reader-" + std::to_string(::getpid()) + "-" +
                                              std::to_string(counter++)},
                             {"enable.auto.commit", "false"}});
}

}  // namespace

std::int64_t record_count(const std::string& bootstrap, const std::string& topic) {
    auto consumer = make_reader(bootstrap);
    const auto partitions = consumer.partition_count(topic, std::chrono::seconds(10));
    if (!partitions) throw std::runtime_error("no partition count for " + topic);
    std::int64_t total = 0;
    for (int p = 0; p < *partitions; ++p) {
        const auto marks = consumer.watermarks(topic, p, std::chrono::seconds(10));
        if (!marks) throw std::runtime_error("no watermarks for " + topic);
        total += marks->second - marks->first;
    }
    consumer.close();
    return total;
}

std::vector<Record> read_topic(const std::string& bootstrap, const std::string& topic) {
    auto consumer = make_reader(bootstrap);
    const auto partitions = consumer.partition_count(topic, std::chrono::seconds(10));
    if (!partitions) throw std::runtime_error("no partition count for " + topic);
    std::vector<common::TopicPartition> assignment;
    std::map<std::int32_t, std::int64_t> end;
    std::int64_t expected = 0;
    for (int p = 0; p < *partitions; ++p) {
        const auto marks = consumer.watermarks(topic, p, std::chrono::seconds(10));
        if (!marks) throw std::runtime_error("no watermarks for " + topic);
        end[p] = marks->second;
        expected += marks->second - marks->first;
        assignment.push_back({topic, p, common::kOffsetBeginning});
    }
    std::vector<Record> out;
    if (expected == 0) return out;
    consumer.assign(assignment);
    wait_until(
        [&] {
            auto msg = consumer.poll(std::chrono::milliseconds(100));
            if (msg && !msg.error() && msg.offset() < end[msg.partition()]) {
                Record r;
                if (auto k = msg.key()) r.key = std::string(*k);
                r.value = std::string(msg.value());
                for (const auto& h : msg.headers())
                    r.headers[std::string(h.key)] = std::string(h.value);
                out.push_back(std::move(r));
            }
            return static_cast<std::int64_t>(out.size()) >= expected;
        },
        std::chrono::seconds(30));
    consumer.close();
    if (static_cast<std::int64_t>(out.size()) != expected) {
        throw std::runtime_error("read " + std::to_string(out.size()) + " of " +
                                 std::to_string(expected) + " records from " + topic);
    }
    return out;
}

std::uint64_t raise_open_files(std::uint64_t wanted) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
    if (lim.rlim_cur < wanted) {
        lim.rlim_cur =
            lim.rlim_max == RLIM_INFINITY ? wanted : std::min<rlim_t>(wanted, lim.rlim_max);
        ::setrlimit(RLIMIT_NOFILE, &lim);
        ::getrlimit(RLIMIT_NOFILE, &lim);
    }
    return lim.rlim_cur;
}

}  // namespace meshhook::testing::hostile
