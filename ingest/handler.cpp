#include "ingest/handler.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/verb.hpp>

#include "common/identifier.hpp"
#include "common/log.hpp"
#include "ingest/reject_log.hpp"

namespace meshhook::ingest {
namespace {

namespace http = boost::beast::http;

constexpr std::string_view kWebhookPrefix = "/webhooks/mesh";
constexpr std::string_view kJson = "application/json";
// Seconds; Mesh retries on its own schedule anyway, this is for other senders.
constexpr std::string_view kRetryAfter = "1";

std::optional<std::string_view> header(const Request& r, std::string_view name) {
    const auto it = r.find(name);
    if (it == r.end()) return std::nullopt;
    return it->value();
}

std::string_view path_of(std::string_view target) {
    return target.substr(0, target.find('?'));
}

std::string json_string(std::string_view text) {
    std::string out = "\"";
    common::append_json_escaped(out, text);
    out += '"';
    return out;
}

std::string milliseconds_text(std::chrono::system_clock::time_point t) {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

Response simple(unsigned status, std::string body, std::string_view content_type, unsigned version,
                bool keep_alive) {
    Response res{static_cast<http::status>(status), version};
    res.set(http::field::content_type, content_type);
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(keep_alive);
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

// 200 for an event Kafka holds: after its delivery report, or for a repeat of
// an acknowledged delivery.
Response accepted(std::string_view event_id, std::string_view transfer_id, unsigned version,
                  bool keep_alive) {
    std::string body = R"({"status":"accepted","eventId":)" + json_string(event_id) +
                       ",\"transferId\":" + json_string(transfer_id) + "}";
    return simple(200, std::move(body), kJson, version, keep_alive);
}

Response method_not_allowed(std::string_view allow, unsigned version, bool keep_alive) {
    auto res = error_response(405, "method_not_allowed", std::string("use ").append(allow), version,
                              keep_alive);
    res.set(http::field::allow, allow);
    return res;
}

// Log lines carry client-chosen text (targets, ids): bounded, so a hostile
// request cannot make one line huge. The log formatter escapes control bytes.
std::string_view clip(std::string_view text) {
    return text.substr(0, 128);
}

void log_rejected(unsigned status, std::string_view reason, std::string_view environment,
                  std::string_view client, std::string_view extra = {}) {
    if (!RejectLog::instance().should_log(status, std::chrono::steady_clock::now())) return;
    std::string line = "rejected request status=" + std::to_string(status) + " reason=";
    line.append(reason);
    if (!environment.empty()) line.append(" environment=").append(environment);
    line.append(" client=").append(client);
    if (!extra.empty()) line.append(" ").append(extra);
    common::log_warn(line);
}

// HEAD is not offered: probes and Prometheus use GET, and a HEAD response
// must not carry the body these handlers produce.
bool is_get(const Request& r) {
    return r.method() == http::verb::get;
}

Admission answer_now(Route route, Response response) {
    Admission out;
    out.route = route;
    out.answer = std::move(response);
    return out;
}

}  // namespace

Response error_response(unsigned status, std::string_view error, std::string_view message,
                        unsigned version, bool keep_alive) {
    std::string body =
        "{\"error\":" + json_string(error) + ",\"message\":" + json_string(message) + "}";
    auto res = simple(status, std::move(body), kJson, version, keep_alive);
    if (status == 503) res.set(http::field::retry_after, kRetryAfter);
    return res;
}

Unavailable unavailable_reason(PublishOutcome outcome) {
    switch (outcome) {
        case PublishOutcome::kQueueFull: return Unavailable::kQueueFull;
        case PublishOutcome::kAckTimeout: return Unavailable::kAckTimeout;
        case PublishOutcome::kDraining: return Unavailable::kDraining;
        case PublishOutcome::kAcknowledged:
        case PublishOutcome::kDeliveryFailed: break;
    }
    return Unavailable::kDeliveryFailed;
}

RequestHandler::RequestHandler(const HandlerContext& context) : context_(context) {
    verifiers_.reserve(context.config.environments.size());
    for (const auto& env : context.config.environments) verifiers_.emplace_back(env.secrets);
}

Admission RequestHandler::admit(const Request& request, const ClientInfo& client) {
    const unsigned version = request.version();
    const bool keep_alive = client.keep_alive && request.keep_alive();
    const std::string_view path = path_of(request.target());

    if (path.starts_with(kWebhookPrefix)) {
        std::optional<std::size_t> env;
        const auto rest = path.substr(kWebhookPrefix.size());
        if (rest.empty()) {
            env = context_.config.environment_index(kProductionEnvironment);
        } else if (rest.size() > 1 && rest.front() == '/') {
            env = context_.config.environment_index(rest.substr(1));
        }
        if (env) {
            Admission out;
            out.route = Route::kWebhook;
            out.environment = *env;
            out.answer = admit_webhook(request, client, *env, out.client);
            return out;
        }
    }

    log_rejected(404, "unknown_path", {}, client.peer_string(),
                 "target=" + std::string(clip(request.target())));
    return answer_now(Route::kOther,
                      error_response(404, "not_found", "no such route", version, keep_alive));
}

Action RequestHandler::admin(const Request& request, const ClientInfo& client) {
    const unsigned version = request.version();
    const bool keep_alive = client.keep_alive && request.keep_alive();
    const std::string_view path = path_of(request.target());
    if (path == "/healthz") {
        if (!is_get(request))
            return Action::answer(Route::kHealthz, method_not_allowed("GET", version, keep_alive));
        return Action::answer(Route::kHealthz,
                              simple(200, R"({"status":"ok"})", kJson, version, keep_alive));
    }
    if (path == "/readyz") {
        if (!is_get(request))
            return Action::answer(Route::kReadyz, method_not_allowed("GET", version, keep_alive));
        if (context_.ready.load(std::memory_order_acquire)) {
            return Action::answer(Route::kReadyz,
                                  simple(200, R"({"status":"ready"})", kJson, version, keep_alive));
        }
        return Action::answer(
            Route::kReadyz,
            error_response(503, "not_ready",
                           "Kafka unreachable, or a topic missing or without leader", version,
                           keep_alive));
    }
    if (path == "/metrics") {
        if (!is_get(request))
            return Action::answer(Route::kMetrics, method_not_allowed("GET", version, keep_alive));
        return Action::answer(Route::kMetrics, simple(200, context_.metrics.registry().render(),
                                                      "text/plain; version=0.0.4; charset=utf-8",
                                                      version, keep_alive));
    }
    return Action::answer(Route::kOther,
                          error_response(404, "not_found", "no such route", version, keep_alive));
}

std::optional<Response> RequestHandler::admit_webhook(const Request& request,
                                                      const ClientInfo& client, std::size_t env,
                                                      std::string& client_text) {
    const unsigned version = request.version();
    const bool keep_alive = client.keep_alive && request.keep_alive();
    const auto& config = context_.config;
    const std::string& env_name = config.environments[env].name;

    client_text = client.peer_string();
    if (!config.allow_ips.empty()) {
        std::vector<std::string_view> forwarded;
        if (!config.trusted_proxies.empty()) {
            const auto [first, last] = request.equal_range("X-Forwarded-For");
            for (auto it = first; it != last; ++it) forwarded.push_back(it->value());
        }
        const auto address = client_address(client.peer, forwarded, config.trusted_proxies);
        if (address) client_text = address->to_string();
        if (!address || !contains_any(config.allow_ips, *address)) {
            log_rejected(403, "address_not_allowed", env_name, client_text,
                         "peer=" + client.peer_string());
            return error_response(403, "forbidden", "client address not allowed", version,
                                  keep_alive);
        }
    }
    if (request.method() != http::verb::post) {
        log_rejected(405, "method_not_allowed", env_name, client_text);
        return method_not_allowed("POST", version, keep_alive);
    }
    // Only presence here; the value is checked against the body once it is read.
    if (request.find(common::kSignatureHeader) == request.end() &&
        request.find(common::kLegacySignatureHeader) == request.end()) {
        const auto reason = common::SignatureError::kMissingHeader;
        context_.metrics.signature_failure(env, reason);
        log_rejected(401, common::to_string(reason), env_name, client_text);
        return error_response(401, "invalid_signature",
                              std::string("signature ").append(common::to_string(reason)), version,
                              keep_alive);
    }
    return std::nullopt;
}

Action RequestHandler::handle(const Request& request, const ClientInfo& client,
                              std::chrono::system_clock::time_point now) {
    auto admission = admit(request, client);
    if (admission.answer) return {admission.route, std::move(*admission.answer)};
    return handle(request, admission, client, now);
}

Action RequestHandler::handle(const Request& request, const Admission& admission,
                              const ClientInfo& client, std::chrono::system_clock::time_point now) {
    const unsigned version = request.version();
    const bool keep_alive = client.keep_alive && request.keep_alive();
    const auto& config = context_.config;
    const std::size_t env = admission.environment;
    const std::string& env_name = config.environments[env].name;
    const std::string& client_text = admission.client;

    const std::string_view body = request.body();
    if (body.size() > config.max_body_bytes) {
        log_rejected(413, "body_too_large", env_name, client_text);
        return {Route::kWebhook, error_response(413, "payload_too_large", "body over the limit",
                                                version, keep_alive)};
    }

    const auto signature =
        verifiers_[env].verify(header(request, common::kSignatureHeader),
                               header(request, common::kLegacySignatureHeader), body);
    if (!signature.ok()) {
        context_.metrics.signature_failure(env, signature.error);
        log_rejected(401, common::to_string(signature.error), env_name, client_text);
        return {Route::kWebhook,
                error_response(401, "invalid_signature",
                               std::string("signature ").append(common::to_string(signature.error)),
                               version, keep_alive)};
    }

    Publication pub;
    pub.environment = env;
    pub.value = body;
    pub.client = client_text;
    pub.headers.reserve(6);

    // The views die with the next parse: everything kept is copied here.
    const auto parsed = parser_.parse(body);
    const auto& ev = parsed.event;
    if (ev.id.has_value()) pub.headers.emplace_back(kHeaderDeliveryId, std::string(ev.id.value));
    if (ev.event_id.has_value()) {
        pub.event_id = std::string(ev.event_id.value);
        pub.headers.emplace_back(kHeaderEventId, pub.event_id);
    }
    pub.headers.emplace_back(kHeaderEnvironment, env_name);
    pub.headers.emplace_back(kHeaderReceivedAt, milliseconds_text(now));
    pub.headers.emplace_back(kHeaderHost, context_.host);

    const auto unusable = [](std::string_view id) { return common::check_identifier(id); };
    if (!parsed.ok()) {
        pub.reason = std::string(common::to_string(parsed.error.code));
        pub.detail = parsed.error.message();
    } else if (const auto problem = unusable(ev.transfer_id.value);
               problem != common::IdentifierProblem::kNone) {
        // The consumer would refuse it too (consumer/README.md, "Rules"); here
        // Mesh's delivery is kept whole in the DLQ and Mesh hears 400.
        pub.reason = "unusable_transfer_id";
        pub.detail = "TransferId: " + std::string(common::to_string(problem));
    } else if (const auto event_problem = unusable(ev.event_id.value);
               event_problem != common::IdentifierProblem::kNone) {
        pub.reason = "unusable_event_id";
        pub.detail = "EventId: " + std::string(common::to_string(event_problem));
    } else if (config.max_sent_age) {
        if (!ev.sent_timestamp.has_value()) {
            pub.reason = "missing_sent_timestamp";
            pub.detail = "SentTimestamp is required by the replay window";
        } else {
            // Seconds in Mesh's example, milliseconds from some senders: by magnitude.
            const auto sent_ms = common::unix_ms_by_magnitude(ev.sent_timestamp_value);
            const auto now_ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch())
                    .count();
            // Both within [0, kMaxUnixMs]: the difference cannot overflow.
            const auto age = sent_ms ? (now_ms - *sent_ms) / 1000 : 0;
            const auto window = config.max_sent_age->count();
            if (!sent_ms || age > window || -age > window) {
                // A replay (or a clock far off, or no time at all): refused
                // without a Kafka write, so replaying a captured body costs
                // us nothing durable. Mesh's own retries stay inside the window.
                const auto detail = sent_ms
                                        ? "SentTimestamp is " + std::to_string(age) + " s from now"
                                        : "SentTimestamp " + std::string(ev.sent_timestamp.value) +
                                              " is not a time (negative or after year 9999)";
                log_rejected(400, "sent_timestamp_outside_window", env_name, client_text);
                return {Route::kWebhook, error_response(400, "sent_timestamp_outside_window",
                                                        detail, version, keep_alive)};
            }
        }
    }

    if (!pub.reason.empty()) {
        pub.kind = Publication::Kind::kDeadLetter;
        pub.topic = config.dlq_topic;
        if (ev.id.has_value()) pub.key = std::string(ev.id.value);
        pub.headers.emplace_back(kHeaderReason, pub.reason);
        pub.headers.emplace_back(kHeaderDetail, pub.detail);
        if (ev.transfer_id.has_value()) pub.transfer_id = std::string(ev.transfer_id.value);
    } else {
        pub.kind = Publication::Kind::kEvent;
        pub.topic = config.topic;
        pub.transfer_id = std::string(ev.transfer_id.value);
        pub.key = pub.transfer_id;
        if (ev.id.has_value()) {
            // Mesh's retries carry a new Id: an acknowledged one again is a
            // replay of a captured body, inside the window. Kafka holds it
            // already, so it gets the same 200 and no second record.
            if (context_.recent != nullptr && context_.recent->contains(env, ev.id.value)) {
                context_.metrics.repeated(env);
                return {Route::kWebhook,
                        accepted(pub.event_id, pub.transfer_id, version, keep_alive)};
            }
            pub.delivery_id = std::string(ev.id.value);
        }
    }
    return {Route::kWebhook, std::move(pub)};
}

Response RequestHandler::complete(const Publication& pub, PublishOutcome outcome, unsigned version,
                                  bool keep_alive) {
    const std::string& env_name = context_.config.environments[pub.environment].name;
    if (outcome == PublishOutcome::kAcknowledged) {
        if (pub.kind == Publication::Kind::kEvent) {
            context_.metrics.published(pub.environment);
            if (context_.recent != nullptr)
                context_.recent->remember(pub.environment, pub.delivery_id);
            return accepted(pub.event_id, pub.transfer_id, version, keep_alive);
        }
        context_.metrics.dlq_write(pub.environment, pub.reason);
        log_rejected(400, pub.reason, env_name, pub.client, "dead_lettered=true");
        std::string body = "{\"error\":" + json_string(pub.reason) +
                           ",\"message\":" + json_string(pub.detail) + ",\"deadLettered\":true}";
        return simple(400, std::move(body), kJson, version, keep_alive);
    }
    const auto reason = unavailable_reason(outcome);
    context_.metrics.unavailable(reason);
    log_rejected(503, to_string(reason), env_name, pub.client,
                 pub.kind == Publication::Kind::kDeadLetter
                     ? "dead_letter=" + pub.reason
                     : "event_id=" + std::string(clip(pub.event_id)));
    return error_response(503, "unavailable",
                          std::string("not stored, retry: ").append(to_string(reason)), version,
                          keep_alive);
}

}  // namespace meshhook::ingest
