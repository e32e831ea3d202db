#pragma once
// The request path as functions: a request goes in, and either a response or
// a publication (something Kafka must acknowledge first) comes out; the
// publication's outcome then becomes the response. No sockets and no Kafka
// here, so all of it is tested directly; the session (server.cpp) does the I/O.
//
// Beast types appear in this header: it is included by ingest's own sources
// and tests only.

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/signature.hpp"
#include "common/transfer_event.hpp"
#include "common/wire.hpp"
#include "ingest/config.hpp"
#include "ingest/ip_filter.hpp"
#include "ingest/metrics.hpp"
#include "ingest/recent_deliveries.hpp"

namespace meshhook::ingest {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;

// Kafka header names on produced records: common/wire.hpp owns them.
using wire::kHeaderDeliveryId;
using wire::kHeaderDetail;
using wire::kHeaderEnvironment;
using wire::kHeaderEventId;
using wire::kHeaderHost;
using wire::kHeaderReason;
using wire::kHeaderReceivedAt;

// Something to produce before answering. `value` views the request body:
// whoever holds the Publication keeps that request alive.
struct Publication {
    enum class Kind : std::uint8_t { kEvent, kDeadLetter };
    Kind kind = Kind::kEvent;
    std::size_t environment = 0;  // index into IngestConfig::environments
    std::string_view topic;
    std::string key;  // TransferId for events; the delivery id (or empty) for dead letters
    std::string_view value;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string reason;  // dead letters: the stable snake_case reason
    std::string detail;  // dead letters: one human-readable line
    std::string event_id;
    std::string delivery_id;  // Mesh's `Id`, remembered once acknowledged
    std::string transfer_id;
    std::string client;  // client address, for log lines
};

struct Action {
    Route route = Route::kOther;
    std::variant<Response, Publication> next;

    static Action answer(Route route, Response response) { return {route, std::move(response)}; }
    bool is_response() const { return std::holds_alternative<Response>(next); }
    Response& response() { return std::get<Response>(next); }
    Publication& publication() { return std::get<Publication>(next); }
};

// What became of a publication.
enum class PublishOutcome : std::uint8_t {
    kAcknowledged,    // delivery report OK: the broker holds it (acks=all)
    kQueueFull,       // producer back-pressure at enqueue
    kAckTimeout,      // no report within --ack-timeout-ms
    kDeliveryFailed,  // report with an error, or produce refused (unknown topic, fatal)
    kDraining,        // shutting down: the producer takes no more
};

// The connection-level facts a handler needs besides the request itself.
struct ClientInfo {
    IpAddress peer;
    bool keep_alive = true;  // false once the server wants the connection closed
    // `peer` as text, when the caller formatted it already (the session does,
    // once per connection); empty: formatted when needed.
    std::string_view peer_text = {};

    std::string peer_string() const {
        return peer_text.empty() ? peer.to_string() : std::string(peer_text);
    }
};

// What the request header alone decides, before a byte of the body is read:
// an answer to give at once (the session then closes the connection unless
// the request had no body), or the webhook environment to read the body for.
struct Admission {
    Route route = Route::kOther;
    std::optional<Response> answer;  // set: answer this at once
    std::size_t environment = 0;     // webhooks: index into IngestConfig::environments
    std::string client;              // the client address the allow-list judged, for log lines
};

// Shared, read-mostly state every handler sees.
struct HandlerContext {
    const IngestConfig& config;
    IngestMetrics& metrics;
    const std::atomic<bool>& ready;
    std::string host;                    // this machine's name, for the `host` header
    RecentDeliveries* recent = nullptr;  // acknowledged delivery Ids; null: none remembered
};

// One per I/O thread: owns a signature verifier per environment and a parser,
// neither of which is thread-safe.
class RequestHandler {
public:
    explicit RequestHandler(const HandlerContext& context);
    RequestHandler(const RequestHandler&) = delete;
    RequestHandler& operator=(const RequestHandler&) = delete;

    // Never throws. The webhook listener: routing, allow-list, method and the
    // signature header's presence, everything that needs no body. Only
    // webhook routes exist there; anything else is 404.
    Admission admit(const Request& request, const ClientInfo& client);

    // Never throws. The admin listener (--admin-listen): /healthz, /readyz
    // and /metrics, answered from the header (none takes a body).
    Action admin(const Request& request, const ClientInfo& client);

    // Never throws. The request of an admission without an answer, body read.
    // `now` stamps received-at and checks the replay window.
    Action handle(const Request& request, const Admission& admission, const ClientInfo& client,
                  std::chrono::system_clock::time_point now);

    // admit() then handle(): the whole request path in one call.
    Action handle(const Request& request, const ClientInfo& client,
                  std::chrono::system_clock::time_point now);

    // The response once the publication's fate is known; counts it in the metrics.
    Response complete(const Publication& publication, PublishOutcome outcome, unsigned version,
                      bool keep_alive);

private:
    std::optional<Response> admit_webhook(const Request& header, const ClientInfo& client,
                                          std::size_t environment, std::string& client_text);

    const HandlerContext& context_;
    std::vector<common::SignatureVerifier> verifiers_;  // by environment index
    common::TransferEventParser parser_;
};

// Every HTTP status and error body is chosen here, so they stay consistent.
Response error_response(unsigned status, std::string_view error, std::string_view message,
                        unsigned version, bool keep_alive);

// Kafka's error for a failed publication answers 503 in every case: Mesh
// retries, and nothing that was signed is lost.
Unavailable unavailable_reason(PublishOutcome outcome);

}  // namespace meshhook::ingest
