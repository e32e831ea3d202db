#pragma once
// Helpers for attacking meshhook-ingest over real sockets: a raw TCP client
// that controls every byte (trickles, floods, half-closes), the receiver as a
// child process with its /proc figures (peak RSS, open descriptors), and
// counts of what reached Kafka. No Beast here on purpose: the client must be
// able to send what an HTTP library would refuse to produce.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/process.hpp"

namespace meshhook::testing::hostile {

inline constexpr std::string_view kSecret = "whsec_test_fixture_secret";
inline constexpr std::string_view kWebhookPath = "/webhooks/mesh";
inline constexpr const char* kTopic = "mesh.transfer-events";
inline constexpr const char* kDlqTopic = "mesh.transfer-events.dlq";

struct Response {
    unsigned status = 0;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;

    std::string header(const std::string& lower_name) const {
        const auto it = headers.find(lower_name);
        return it == headers.end() ? std::string() : it->second;
    }
    bool closes() const;  // "Connection: close"
};

// Parses one response (status line, headers, Content-Length body) from the
// front of `buffer` and removes it; nullopt when incomplete. 1xx responses
// are returned like any other.
std::optional<Response> take_response(std::string& buffer);

// A TCP connection to 127.0.0.1:port. Reads have deadlines; writes block
// (loopback) but give up when the peer is gone.
class RawSocket {
public:
    explicit RawSocket(std::uint16_t port);
    ~RawSocket();
    RawSocket(RawSocket&& other) noexcept;
    RawSocket& operator=(RawSocket&&) = delete;
    RawSocket(const RawSocket&) = delete;
    RawSocket& operator=(const RawSocket&) = delete;

    int fd() const { return fd_; }
    bool send_all(std::string_view bytes);  // false when the peer is gone
    void shutdown_write();

    // The next complete response, or nullopt when the connection closed or
    // `timeout` passed first.
    std::optional<Response> read_response(
        std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // Reads (and keeps in the buffer) until the peer closes; true when it did within `timeout`.
    bool wait_closed(std::chrono::milliseconds timeout);
    // Whether the peer has closed, without waiting. Unread bytes stay readable.
    bool closed_now();
    // Bytes received but not yet returned as a response.
    const std::string& pending() const { return buffer_; }
    // A complete response already received, without reading more.
    std::optional<Response> take_buffered() { return take_response(buffer_); }
    // Appends whatever is readable right now; false once the peer closed.
    bool read_available();

private:
    int fd_ = -1;
    std::string buffer_;
    bool eof_ = false;
};

// Sends `bytes` on a helper thread while this thread reads responses, so a
// server that answers before it has read everything (431, 413, pipelining)
// cannot deadlock the test on full socket buffers. Returns the responses read
// until `count` arrived, the connection closed, or `timeout` passed.
std::vector<Response> send_and_read(RawSocket& socket, std::string bytes, std::size_t count,
                                    std::chrono::milliseconds timeout);

// Request builders. `extra` lines are written verbatim ("Name: value").
std::string post(std::string_view body, const std::vector<std::string>& extra = {},
                 std::string_view path = kWebhookPath);
std::string signed_post(std::string_view body, const std::vector<std::string>& extra = {});
std::string signature_line(std::string_view body);  // "X-Mesh-Signature-256: ..."
std::string get(std::string_view path, bool close = false);

// Fixture 03 with fresh Id, EventId and TransferId, so every delivery can be
// told apart in responses and in the topic.
struct Event {
    std::string event_id;
    std::string transfer_id;
    std::string body;
};
Event unique_event();

// A fixture as Mesh sends a new attempt of it: SentTimestamp now and a new
// delivery Id (ingest answers a known Id 200 without producing it again).
std::string fresh_delivery(const std::string& fixture_name);

// Splices `member` (e.g. R"("Note":"x")") in as the body's first member.
std::string with_leading_member(std::string_view body, std::string_view member);

// meshhook-ingest on 127.0.0.1:<free port>, ready (its /readyz said 200).
class Ingest {
public:
    Ingest(const std::string& bootstrap, std::vector<std::string> extra_args);
    std::uint16_t port() const { return port_; }              // webhooks
    std::uint16_t admin_port() const { return admin_port_; }  // /healthz, /readyz, /metrics
    pid_t pid() const { return process_->pid(); }
    Process& process() { return *process_; }

    std::size_t peak_rss_kib() const { return status_kib("VmHWM"); }
    std::size_t rss_kib() const { return status_kib("VmRSS"); }
    std::size_t open_descriptors() const;  // entries in /proc/PID/fd
    bool alive() { return process_->running(); }

private:
    std::size_t status_kib(
        std::string_view field) const;  // a "Name: N kB" line of /proc/PID/status

    std::unique_ptr<Process> process_;
    std::uint16_t port_ = 0;
    std::uint16_t admin_port_ = 0;
};

// Records in a topic: the sum of its partitions' high watermarks.
std::int64_t record_count(const std::string& bootstrap, const std::string& topic);

struct Record {
    std::optional<std::string> key;
    std::string value;
    std::map<std::string, std::string> headers;
};
// Every record now in `topic`, read by assignment (no group join).
std::vector<Record> read_topic(const std::string& bootstrap, const std::string& topic);

// Raises this process's soft RLIMIT_NOFILE (children inherit it) to at least
// `wanted` if the hard limit allows; returns the soft limit in force.
std::uint64_t raise_open_files(std::uint64_t wanted);

}  // namespace meshhook::testing::hostile
