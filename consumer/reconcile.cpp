#include "consumer/reconcile.hpp"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <map>
#include <memory>
#include <set>

#include "common/config.hpp"
#include "common/log.hpp"
#include "common/transfer_event.hpp"
#include "common/wire.hpp"
#include "consumer/mesh_client.hpp"
#include "consumer/mesh_json.hpp"
#include "consumer/metrics.hpp"
#include "consumer/store.hpp"

namespace meshhook::consumer {

namespace {

using common::ConfigError;

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string_view trim_ws(std::string_view s) {
    while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' ||
                          s.back() == '\t' || s.back() == ',')) {
        s.remove_suffix(1);
    }
    while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    return s;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

using common::is_json_number;

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

void add_string(std::string& out, std::string_view name, std::string_view value) {
    if (value.empty()) return;
    out.append(",\"").append(name).append("\":\"");
    common::append_json_escaped(out, value);
    out += '"';
}

}  // namespace

std::optional<ApiUrl> parse_api_url(std::string_view text, std::string& error) {
    ApiUrl url;
    std::string_view rest;
    if (text.starts_with("https://")) {
        rest = text.substr(8);
    } else if (text.starts_with("http://")) {
        url.tls = false;
        url.port = 80;
        rest = text.substr(7);
    } else {
        error = "must start with https:// (or http:// for a simulator)";
        return std::nullopt;
    }
    const auto slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
    while (path.ends_with('/')) path.remove_suffix(1);
    if (path.find_first_of("?#") != std::string_view::npos) {
        error = "must not have a query or fragment";
        return std::nullopt;
    }
    url.base_path = std::string(path);
    // With a port, the listeners' host:port rule (brackets for IPv6); without
    // one, the scheme's default.
    const bool has_port = authority.starts_with('[')
                              ? authority.find("]:") != std::string_view::npos
                              : authority.find(':') != std::string_view::npos;
    if (has_port) {
        try {
            const common::HostPort hp = common::parse_host_port("URL", authority);
            url.host = hp.host;
            url.port = hp.port;
        } catch (const ConfigError&) {
            error = "bad host or port";
            return std::nullopt;
        }
    } else if (authority.starts_with('[') && authority.ends_with(']')) {
        url.host = std::string(authority.substr(1, authority.size() - 2));
    } else {
        url.host = std::string(authority);
    }
    if (url.host.empty() || url.port == 0 || (has_port && authority.starts_with(':'))) {
        error = "has no host or a zero port";
        return std::nullopt;
    }
    return url;
}

void declare_reconcile_settings(common::Settings& settings, bool with_interval) {
    if (with_interval) {
        settings.add({"reconcile-interval-s", "CONSUMER_RECONCILE_INTERVAL_S", "300",
                      "Reconciliation with Mesh's API (on when MESH_CLIENT_ID / "
                      "MESH_CLIENT_SECRET, or their _<ENV> forms, are set; MESH_API_URL[_<ENV>] "
                      "overrides the base URL): seconds between passes"});
    }
    settings
        .add({"reconcile-stale-after-s", "CONSUMER_RECONCILE_STALE_AFTER_S", "900",
              "Reconciliation acts on a transfer only once it has been quiet this long (its "
              "webhook gets that long to arrive); a transfer not final here and quiet this long "
              "is looked up by Id"})
        .add({"reconcile-lookback-s", "CONSUMER_RECONCILE_LOOKBACK_S", "259200",
              "Each reconciliation pass lists the transfers Mesh created within this window"})
        .add({"reconcile-calls-per-s", "CONSUMER_RECONCILE_CALLS_PER_S", "5",
              "Most calls to Mesh's API a second, per process (list pages and look-ups)"})
        .add({"reconcile-call-timeout-ms", "CONSUMER_RECONCILE_CALL_TIMEOUT_MS", "10000",
              "Deadline of one call to Mesh's API, connect to last byte; a late answer is "
              "retried with backoff"})
        .add({"reconcile-unauthorized-wait-s", "CONSUMER_RECONCILE_UNAUTHORIZED_WAIT_S", "60",
              "After Mesh refuses the API credentials (401), the next pass waits at least this "
              "long"});
}

ReconcileConfig load_reconcile_config(const common::Settings& s, bool with_interval) {
    ReconcileConfig r;
    std::vector<std::pair<std::string, std::string>> variables;
    for (auto& [suffix, value] : common::env_with_prefix("MESH_")) {
        variables.emplace_back("MESH_" + suffix, std::move(value));
    }
    r.environments = mesh_environments(variables, r.warnings);
    auto number = [&s](std::string_view flag, std::uint64_t min, std::uint64_t max) {
        return common::parse_uint(s.describe(flag), s.get(flag), min, max);
    };
    constexpr std::uint64_t kYear = 31536000;
    if (with_interval) {
        r.interval = std::chrono::seconds(number("reconcile-interval-s", 1, kYear));
    }
    r.stale_after = std::chrono::seconds(number("reconcile-stale-after-s", 0, kYear));
    r.lookback = std::chrono::seconds(number("reconcile-lookback-s", 60, kYear));
    r.calls_per_second = static_cast<int>(number("reconcile-calls-per-s", 1, 1000));
    r.call_timeout = std::chrono::milliseconds(number("reconcile-call-timeout-ms", 100, 600000));
    r.unauthorized_wait = std::chrono::seconds(number("reconcile-unauthorized-wait-s", 1, 86400));
    return r;
}

std::vector<MeshEnvironment> mesh_environments(
    const std::vector<std::pair<std::string, std::string>>& variables,
    std::vector<std::string>& warnings) {
    // suffix ("" for production) -> value, per family. Empty counts as unset.
    std::map<std::string, std::string> ids;
    std::map<std::string, std::string> secrets;
    std::map<std::string, std::string> urls;
    const std::vector<std::pair<std::string_view, std::map<std::string, std::string>*>> families = {
        {"MESH_CLIENT_ID", &ids}, {"MESH_CLIENT_SECRET", &secrets}, {"MESH_API_URL", &urls}};
    for (const auto& [name, value] : variables) {
        if (value.empty()) continue;
        for (const auto& [prefix, into] : families) {
            if (name == prefix) {
                (*into)[""] = value;
            } else if (name.size() > prefix.size() + 1 && name.starts_with(prefix) &&
                       name[prefix.size()] == '_') {
                (*into)[name.substr(prefix.size() + 1)] = value;
            }
        }
    }
    auto variable = [](std::string_view family, const std::string& suffix) {
        return std::string(family) + (suffix.empty() ? "" : "_" + suffix);
    };
    for (const auto& [suffix, value] : secrets) {
        if (!ids.contains(suffix)) {
            throw ConfigError(variable("MESH_CLIENT_SECRET", suffix) + ": set without " +
                              variable("MESH_CLIENT_ID", suffix));
        }
    }
    std::vector<MeshEnvironment> out;
    for (const auto& [suffix, id] : ids) {
        const std::string id_var = variable("MESH_CLIENT_ID", suffix);
        const auto secret = secrets.find(suffix);
        if (secret == secrets.end()) {
            throw ConfigError(id_var + ": set without " + variable("MESH_CLIENT_SECRET", suffix));
        }
        MeshEnvironment env;
        env.name = suffix.empty() ? "production" : common::environment_name(id_var, suffix);
        env.client_id = id;
        env.client_secret = secret->second;
        const std::string url_var = variable("MESH_API_URL", suffix);
        if (const auto url = urls.find(suffix); url != urls.end()) {
            env.api_url = url->second;
        } else if (env.name == "production") {
            env.api_url = std::string(kMeshProductionApi);
        } else if (env.name == "sandbox") {
            env.api_url = std::string(kMeshSandboxApi);
        } else {
            throw ConfigError(url_var + ": required for environment \"" + env.name +
                              "\" (no default base URL)");
        }
        while (env.api_url.ends_with('/')) env.api_url.pop_back();
        std::string error;
        const auto parsed = parse_api_url(env.api_url, error);
        if (!parsed) {
            throw ConfigError(url_var + ": " + error + " (got \"" + env.api_url + "\")");
        }
        if (!parsed->tls) {
            warnings.push_back(url_var + ": " + env.api_url +
                               " is plain http: credentials travel unencrypted (simulators and "
                               "tests only)");
        }
        out.push_back(std::move(env));
    }
    for (const auto& [suffix, value] : urls) {
        if (!ids.contains(suffix)) {
            warnings.push_back(variable("MESH_API_URL", suffix) + " is set without " +
                               variable("MESH_CLIENT_ID", suffix) + ": ignored");
        }
    }
    return out;
}

std::optional<std::int64_t> parse_mesh_timestamp(std::string_view text, bool is_number) {
    text = trim_ws(text);
    if (is_number || (!text.empty() && is_digit(text.front()) &&
                      text.find_first_of("-T:") == std::string_view::npos)) {
        // The integer part: seconds, or milliseconds once past year 5138 in seconds.
        const std::string_view whole = text.substr(0, text.find_first_of(".eE"));
        std::int64_t v = 0;
        auto [p, ec] = std::from_chars(whole.data(), whole.data() + whole.size(), v);
        if (ec != std::errc() || p != whole.data() + whole.size() || v < 0) return std::nullopt;
        return v >= 100'000'000'000 ? v : v * 1000;
    }
    // YYYY-MM-DDTHH:MM:SS[.fff][Z|+00:00]
    std::tm tm{};
    int ms = 0;
    if (text.size() < 19 || text[4] != '-' || text[7] != '-' ||
        (text[10] != 'T' && text[10] != ' ') || text[13] != ':' || text[16] != ':') {
        return std::nullopt;
    }
    auto num = [&](std::size_t at, std::size_t len, int& into) {
        auto [p, ec] = std::from_chars(text.data() + at, text.data() + at + len, into);
        return ec == std::errc() && p == text.data() + at + len;
    };
    int year = 0;
    int month = 0;
    if (!num(0, 4, year) || !num(5, 2, month) || !num(8, 2, tm.tm_mday) ||
        !num(11, 2, tm.tm_hour) || !num(14, 2, tm.tm_min) || !num(17, 2, tm.tm_sec)) {
        return std::nullopt;
    }
    std::size_t i = 19;
    if (i < text.size() && text[i] == '.') {
        int digits = 0;
        for (++i; i < text.size() && is_digit(text[i]); ++i, ++digits) {
            if (digits < 3) ms = ms * 10 + (text[i] - '0');
        }
        for (; digits < 3; ++digits) ms *= 10;
    }
    const std::string_view zone = text.substr(i);
    if (!zone.empty() && zone != "Z" && zone != "+00:00") return std::nullopt;
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    const std::time_t t = ::timegm(&tm);
    if (t == static_cast<std::time_t>(-1)) return std::nullopt;
    return static_cast<std::int64_t>(t) * 1000 + ms;
}

std::optional<ListPage> parse_list_page(std::string_view body, std::string& error) {
    using simdjson::ondemand::json_type;
    ListPage page;
    auto parse_item = [](simdjson::ondemand::object item, ListItem& out) {
        const bool ok = for_each_member(item, [&out](std::string_view key, auto v) {
            std::string* into = nullptr;
            if (key == "id") into = &out.id;
            if (key == "clientTransactionId") into = &out.client_transaction_id;
            if (key == "userId") into = &out.user_id;
            if (key == "status") into = &out.status;
            if (key == "symbol") into = &out.symbol;
            if (key == "networkName") into = &out.network_name;
            if (key == "hash") into = &out.hash;
            if (key == "destinationAddress") into = &out.destination_address;
            if (into != nullptr) return json_text(v, *into);
            if (key == "destinationAmount") {
                // A string is accepted only when it holds a number: the text
                // goes into a JSON number as is.
                return json_text(v, out.destination_amount) &&
                       (out.destination_amount.empty() || is_json_number(out.destination_amount));
            }
            if (key == "createdTimestamp" || key == "executedTimestamp") {
                std::string text;
                bool number = false;
                if (!json_text(v, text, &number)) return false;
                if (text.empty()) return true;
                auto& field = key == "createdTimestamp" ? out.created_ms : out.executed_ms;
                field = parse_mesh_timestamp(text, number);
            }
            return true;
        });
        return ok && !out.id.empty();
    };
    auto read_items = [&](simdjson::ondemand::value v) {
        simdjson::ondemand::array items;
        if (v.get_array().get(items) != simdjson::SUCCESS) {
            error = "content.items is not an array";
            return false;
        }
        for (auto element : items) {
            simdjson::ondemand::object item;
            ListItem parsed;
            if (element.get_object().get(item) != simdjson::SUCCESS || !parse_item(item, parsed)) {
                error = "content.items[" + std::to_string(page.items.size()) +
                        "] is not a transfer with an id";
                return false;
            }
            page.items.push_back(std::move(parsed));
        }
        return true;
    };
    Envelope envelope;
    const bool ok = read_envelope(
        body, envelope,
        [&](simdjson::ondemand::value v) {
            json_type type{};
            if (v.type().get(type) != simdjson::SUCCESS) {
                error = "malformed content";
                return false;
            }
            if (type != json_type::object) return true;  // null in failure envelopes
            simdjson::ondemand::object content;
            bool items_failed = false;
            const bool read = v.get_object().get(content) == simdjson::SUCCESS &&
                              for_each_member(content, [&](std::string_view key, auto cv) {
                                  if (key == "items") {
                                      items_failed = !read_items(cv);
                                      return !items_failed;
                                  }
                                  if (key == "total") {
                                      std::int64_t total = 0;
                                      if (cv.get_int64().get(total) == simdjson::SUCCESS)
                                          page.total = total;
                                  } else if (key == "hasMorePages") {
                                      bool more = false;
                                      if (cv.get_bool().get(more) == simdjson::SUCCESS)
                                          page.has_more_pages = more;
                                  }
                                  return true;
                              });
            if (!read && !items_failed) error = "malformed content";
            return read;
        },
        error);
    if (!ok) return std::nullopt;
    page.status = std::move(envelope.status);
    page.message = std::move(envelope.message);
    return page;
}

std::string list_target(std::string_view base_path, int count, std::int64_t offset,
                        std::int64_t from_seconds) {
    return std::string(base_path) + std::string(kTransfersPath) +
           "?Count=" + std::to_string(count) + "&Offset=" + std::to_string(offset) +
           "&FromTimestamp=" + std::to_string(from_seconds) +
           "&OrderBy=createdTimestamp&DescendingOrder=false";
}

std::string lookup_target(std::string_view base_path, std::string_view transfer_id) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out = std::string(base_path) + std::string(kTransfersPath) + "?Id=";
    for (const char c : transfer_id) {
        const auto u = static_cast<unsigned char>(c);
        if ((u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || is_digit(c) || c == '-' ||
            c == '.' || c == '_' || c == '~') {
            out += c;
        } else {
            out += '%';
            out += kHex[u >> 4];
            out += kHex[u & 0xF];
        }
    }
    return out + "&Count=10&Offset=0";
}

std::string synthesized_event_id(std::string_view transfer_id, std::string_view status) {
    return "reconcile:" + std::string(transfer_id) + ":" + lower(status);
}

std::string synthesize_event(const ListItem& item, std::int64_t sent_ms) {
    const std::string event_id = synthesized_event_id(item.id, item.status);
    std::string out = "{\"Id\":\"";
    common::append_json_escaped(out, event_id + ":" + std::to_string(sent_ms));
    out += "\",\"EventId\":\"";
    common::append_json_escaped(out, event_id);
    out += "\",\"SentTimestamp\":" + std::to_string(sent_ms / 1000);
    add_string(out, "TransferId", item.id);
    add_string(out, "TransferStatus", item.status);
    if (const auto when = item.executed_ms ? item.executed_ms : item.created_ms) {
        out += ",\"Timestamp\":" + std::to_string(*when);
    }
    add_string(out, "TransactionId", item.client_transaction_id);
    add_string(out, "TxHash", item.hash);
    add_string(out, "UserId", item.user_id);
    add_string(out, "Token", item.symbol);
    add_string(out, "Chain", item.network_name);
    if (!item.destination_amount.empty()) {
        out += ",\"DestinationAmount\":" + item.destination_amount;  // the exact number text
    }
    add_string(out, "DestinationAddress", item.destination_address);
    out += '}';
    return out;
}

std::string_view to_string(Finding f) {
    switch (f) {
        case Finding::kNone: return "none";
        case Finding::kMissing: return "missing";
        case Finding::kStale: return "stale";
        case Finding::kAmountDiffers: return "amount_differs";
        case Finding::kFailedAtMesh: return "failed_at_mesh";
    }
    return "none";
}

bool same_decimal(std::string_view a, std::string_view b) {
    // Leading zeros of the integer part and trailing zeros of the fraction do
    // not change the value; an exponent is compared as written.
    auto canonical = [](std::string_view t) {
        t = trim_ws(t);
        if (t.find_first_of("eE") != std::string_view::npos) return std::string(t);
        const bool negative = t.starts_with('-');
        if (negative) t.remove_prefix(1);
        const auto dot = t.find('.');
        std::string_view whole = t.substr(0, dot);
        std::string_view fraction = dot == std::string_view::npos ? "" : t.substr(dot + 1);
        while (whole.size() > 1 && whole.front() == '0') whole.remove_prefix(1);
        while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
        std::string out = negative && !(whole == "0" && fraction.empty()) ? "-" : "";
        out.append(whole.empty() ? "0" : whole);
        if (!fraction.empty()) out.append(".").append(fraction);
        return out;
    };
    return canonical(a) == canonical(b);
}

Finding classify(const ListItem& item, const std::optional<TransferRow>& row, std::int64_t now_ms,
                 std::chrono::seconds stale_after) {
    const std::int64_t quiet_ms = std::chrono::milliseconds(stale_after).count();
    if (!row || row->status.empty()) {
        // Never heard of (or only of unknown statuses): once Mesh's last change
        // is old enough for its webhook to have arrived.
        const auto changed = item.executed_ms ? item.executed_ms : item.created_ms;
        if (changed && now_ms - *changed < quiet_ms) return Finding::kNone;
        return item.status.empty() ? Finding::kNone : Finding::kMissing;
    }
    const common::TransferStatus mesh = common::parse_status(item.status);
    if (row->credited) {
        if (mesh == common::TransferStatus::kFailed) return Finding::kFailedAtMesh;
        if (mesh == common::TransferStatus::kSucceeded && !item.destination_amount.empty() &&
            !same_decimal(item.destination_amount, row->amount)) {
            return Finding::kAmountDiffers;
        }
    }
    if (!common::is_terminal(mesh) || row->rank >= common::status_rank(mesh)) {
        return Finding::kNone;
    }
    return now_ms - row->last_seen_ms >= quiet_ms ? Finding::kStale : Finding::kNone;
}

// ------------------------------------------------------------------ Reconciler

namespace {

enum class CallOutcome {
    kOk,
    kRateLimited,
    kServerError,
    kFailureEnvelope,
    kUnauthorized,
    kClientError,
    kTransportError,
    kBadResponse
};

std::string_view to_string(CallOutcome o) {
    switch (o) {
        case CallOutcome::kOk: return "ok";
        case CallOutcome::kRateLimited: return "rate_limited";
        case CallOutcome::kServerError: return "server_error";
        case CallOutcome::kFailureEnvelope: return "failure_envelope";
        case CallOutcome::kUnauthorized: return "unauthorized";
        case CallOutcome::kClientError: return "client_error";
        case CallOutcome::kTransportError: return "transport_error";
        case CallOutcome::kBadResponse: return "bad_response";
    }
    return "bad_response";
}

class CountingDelivery final : public common::DeliveryHandler {
public:
    void on_delivery(const common::DeliveryReport& report) noexcept override {
        (report.ok() ? ok_ : failed_).fetch_add(1);
    }
    std::uint64_t ok() const { return ok_.load(); }
    std::uint64_t failed() const { return failed_.load(); }

private:
    std::atomic<std::uint64_t> ok_{0};
    std::atomic<std::uint64_t> failed_{0};
};

}  // namespace

struct Reconciler::Env {
    MeshEnvironment mesh;
    std::unique_ptr<MeshClient> client;
    std::string base_path;
    std::chrono::steady_clock::time_point next{};
    // Where the next pass's look-ups start: the quiet non-final transfers are
    // taken in turn, options_.max_lookups a pass.
    std::optional<Store::StaleCursor> stale_cursor;
};

Reconciler::Reconciler(ReconcilerOptions options, ConsumerMetrics* metrics,
                       std::function<bool()> active)
    : options_(std::move(options)), metrics_(metrics), active_(std::move(active)) {
    if (metrics_ != nullptr) {
        for (const auto& env : options_.config.environments) {
            metrics_->reconcile_environment(env.name);
        }
    }
}

Reconciler::~Reconciler() {
    stop();
}

void Reconciler::start() {
    thread_ = std::thread([this] { run(); });
}

void Reconciler::stop() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

bool Reconciler::sleep_for(std::chrono::milliseconds d) {
    std::unique_lock lock(mutex_);
    return !wake_.wait_for(lock, d, [this] { return stopping_; });
}

bool Reconciler::pace() {
    const auto gap =
        std::chrono::milliseconds(1000) / std::max(1, options_.config.calls_per_second);
    const auto next = last_call_ + gap;
    const auto now = std::chrono::steady_clock::now();
    if (now < next &&
        !sleep_for(std::chrono::duration_cast<std::chrono::milliseconds>(next - now))) {
        return false;
    }
    last_call_ = std::chrono::steady_clock::now();
    return true;
}

std::vector<Reconciler::Env> Reconciler::make_envs() const {
    std::vector<Env> envs;
    for (const auto& mesh : options_.config.environments) {
        std::string error;
        auto url = parse_api_url(mesh.api_url, error);  // validated at start
        if (!url) continue;
        Env env;
        env.mesh = mesh;
        env.base_path = url->base_path;
        env.client = std::make_unique<MeshClient>(*url, options_.config.call_timeout);
        envs.push_back(std::move(env));
    }
    return envs;
}

void Reconciler::run() {
    std::vector<Env> envs = make_envs();
    std::unique_ptr<Store> store;
    std::unique_ptr<common::Producer> producer;
    bool was_active = false;
    while (true) {
        {
            std::lock_guard lock(mutex_);
            if (stopping_) return;
        }
        // Only the instance whose relay holds the store's lock reconciles:
        // one reconciler per store, and it moves with the relay.
        if (!active_()) {
            if (was_active)
                common::log_info("reconciliation: paused (the relay lock is elsewhere)");
            was_active = false;
            if (!sleep_for(std::chrono::seconds(1))) return;
            continue;
        }
        if (!was_active) {
            common::log_info("reconciliation: active for " + std::to_string(envs.size()) +
                             " environment(s)");
            was_active = true;
        }
        try {
            if (!store) store = open_store(options_.store_url);
            if (!producer) producer = std::make_unique<common::Producer>(options_.kafka);
        } catch (const std::exception& e) {
            common::log_warn(std::string("reconciliation: ") + e.what() + "; retrying");
            store.reset();
            if (!sleep_for(std::chrono::seconds(5))) return;
            continue;
        }
        const std::int64_t lookback_ms =
            std::chrono::milliseconds(options_.config.lookback).count();
        auto soonest = std::chrono::steady_clock::now() + options_.config.interval;
        for (Env& env : envs) {
            if (std::chrono::steady_clock::now() < env.next) {
                soonest = std::min(soonest, env.next);
                continue;
            }
            PassReport report;
            try {
                report = pass(env, *store, producer.get(), wall_ms() - lookback_ms);
            } catch (const std::exception& e) {
                common::log_warn("reconciliation " + env.mesh.name + ": " + e.what());
                store.reset();  // a store error: reconnect next time
            }
            ++passes_;
            if (metrics_ != nullptr) {
                metrics_->reconcile_pass(env.mesh.name, report.result == PassReport::Result::kOk);
            }
            auto wait =
                std::chrono::duration_cast<std::chrono::milliseconds>(options_.config.interval);
            if (report.result == PassReport::Result::kUnauthorized) {
                wait = std::max(wait, std::chrono::duration_cast<std::chrono::milliseconds>(
                                          options_.config.unauthorized_wait));
            }
            env.next = std::chrono::steady_clock::now() + wait;
            soonest = std::min(soonest, env.next);
            if (!store) break;
        }
        const auto now = std::chrono::steady_clock::now();
        // Re-check the lock and stop at least every second.
        const auto wait = std::min<std::chrono::milliseconds>(
            std::chrono::seconds(1),
            std::chrono::duration_cast<std::chrono::milliseconds>(soonest - now));
        if (wait.count() > 0 && !sleep_for(wait)) return;
    }
}

PassReport Reconciler::run_once(std::string_view environment,
                                std::optional<std::int64_t> window_start_ms, bool apply) {
    std::vector<Env> envs = make_envs();
    const auto env = std::find_if(envs.begin(), envs.end(),
                                  [&](const Env& e) { return e.mesh.name == environment; });
    if (env == envs.end()) {
        throw ConfigError("environment " + std::string(environment) +
                          ": no Mesh API credentials (MESH_CLIENT_ID[_<ENV>] and "
                          "MESH_CLIENT_SECRET[_<ENV>])");
    }
    const std::unique_ptr<Store> store = open_store(options_.store_url);
    std::unique_ptr<common::Producer> producer;
    if (apply) producer = std::make_unique<common::Producer>(options_.kafka);
    const std::int64_t start = window_start_ms.value_or(
        wall_ms() - std::chrono::milliseconds(options_.config.lookback).count());
    return pass(*env, *store, producer.get(), start);
}

std::optional<ListPage> Reconciler::fetch(Env& env, const std::string& target, PassReport& report) {
    const std::string& name = env.mesh.name;
    const MeshClient::Headers headers = {{"X-Client-Id", env.mesh.client_id},
                                         {"X-Client-Secret", env.mesh.client_secret}};
    for (int attempt = 0; attempt < options_.attempts; ++attempt) {
        if (!pace()) return std::nullopt;
        ++report.calls;
        const ApiResult result = env.client->get(target, headers);
        CallOutcome outcome = CallOutcome::kOk;
        std::string why;
        std::optional<ListPage> page;
        std::chrono::milliseconds backoff = options_.first_backoff * (1 << attempt);
        if (!result.response) {
            outcome = CallOutcome::kTransportError;
            why = result.error;
        } else if (result.response->status == 401 || result.response->status == 403) {
            outcome = CallOutcome::kUnauthorized;
        } else if (result.response->status == 429) {
            outcome = CallOutcome::kRateLimited;
            why = "429";
            if (result.response->retry_after) {
                std::int64_t s = 0;
                const std::string& ra = *result.response->retry_after;
                auto [p, ec] = std::from_chars(ra.data(), ra.data() + ra.size(), s);
                if (ec == std::errc() && s >= 0) {
                    backoff = std::chrono::seconds(std::min<std::int64_t>(s, 60));
                }
            }
        } else if (result.response->status >= 500) {
            outcome = CallOutcome::kServerError;
            why = "HTTP " + std::to_string(result.response->status);
        } else if (result.response->status != 200) {
            outcome = CallOutcome::kClientError;
            why = "HTTP " + std::to_string(result.response->status);
        } else {
            std::string error;
            page = parse_list_page(result.response->body, error);
            if (!page) {
                outcome = CallOutcome::kBadResponse;
                why = "unusable answer: " + error;
            } else if (lower(page->status) != "ok") {
                // Mesh answers failures with 200 too: the envelope decides.
                outcome = lower(page->status) == "toomanyrequest" ? CallOutcome::kRateLimited
                                                                  : CallOutcome::kFailureEnvelope;
                why = "envelope status " + page->status + ": " + page->message;
                page.reset();
            }
        }
        if (metrics_ != nullptr) metrics_->reconcile_api_call(name, to_string(outcome));
        if (outcome == CallOutcome::kOk) return page;
        if (outcome == CallOutcome::kUnauthorized) {
            common::log_error(
                "reconciliation " + name + ": Mesh refused the API credentials (HTTP " +
                std::to_string(result.response->status) +
                "); check MESH_CLIENT_ID/MESH_CLIENT_SECRET for this environment; retrying in " +
                std::to_string(
                    std::max(options_.config.interval, options_.config.unauthorized_wait).count()) +
                " s");
            report.result = PassReport::Result::kUnauthorized;
            return std::nullopt;
        }
        if (outcome == CallOutcome::kClientError) {
            common::log_warn("reconciliation " + name + ": " + why + " for " + target);
            return std::nullopt;
        }
        common::log_warn("reconciliation " + name + ": " + std::string(to_string(outcome)) + " (" +
                         why + "); attempt " + std::to_string(attempt + 1) + " of " +
                         std::to_string(options_.attempts) +
                         (attempt + 1 < options_.attempts
                              ? ", next in " + std::to_string(backoff.count()) + " ms"
                              : ", the pass fails and the next one starts over"));
        if (attempt + 1 < options_.attempts && !sleep_for(backoff)) return std::nullopt;
    }
    return std::nullopt;
}

PassReport Reconciler::pass(Env& env, Store& store, common::Producer* producer,
                            std::int64_t window_start_ms) {
    const std::string& name = env.mesh.name;
    PassReport report;
    std::vector<ListItem> items;
    std::set<std::string> seen;
    std::int64_t offset = 0;
    for (int page_no = 0; page_no < 100000; ++page_no) {
        std::optional<ListPage> page = fetch(
            env, list_target(env.base_path, options_.page_size, offset, window_start_ms / 1000),
            report);
        if (!page) return report;
        for (ListItem& item : page->items) {
            if (seen.insert(item.id).second) items.push_back(std::move(item));
        }
        offset += static_cast<std::int64_t>(page->items.size());
        if (!page->has_more_pages || page->items.empty()) break;
    }

    const std::int64_t now_ms = wall_ms();
    const std::chrono::seconds stale_after = options_.config.stale_after;
    std::set<std::string> listed;  // the look-ups below skip these
    for (ListItem& item : items) {
        // The server's FromTimestamp is a hint; the window is applied here.
        if (item.created_ms && *item.created_ms < window_start_ms) continue;
        ++report.listed;
        listed.insert(item.id);
        auto row = store.transfer(name, item.id);
        const Finding f = classify(item, row, now_ms, stale_after);
        if (f != Finding::kNone) report.entries.push_back({std::move(item), std::move(row), f});
    }

    // A transfer we hold as not final, quiet for stale_after, that the list
    // did not show (created before the window, or a server that ignores the
    // window): looked up by Id.
    const std::int64_t quiet_before = now_ms - std::chrono::milliseconds(stale_after).count();
    const std::size_t budget = options_.max_lookups;
    std::size_t examined = 0;
    while (budget == 0 || examined < budget) {
        const std::size_t limit = budget == 0 ? 100 : std::min<std::size_t>(100, budget - examined);
        const auto rows = store.stale_transfers(name, quiet_before, env.stale_cursor, limit);
        for (const TransferRow& row : rows) {
            ++examined;
            if (!listed.contains(row.transfer_id)) {
                ++report.looked_up;
                const auto page = fetch(env, lookup_target(env.base_path, row.transfer_id), report);
                if (!page) return report;  // this row is looked up first next time
                // The server's Id filter is a hint too.
                const auto item =
                    std::find_if(page->items.begin(), page->items.end(),
                                 [&](const ListItem& i) { return i.id == row.transfer_id; });
                if (item != page->items.end()) {
                    const Finding f = classify(*item, row, now_ms, stale_after);
                    if (f != Finding::kNone) report.entries.push_back({*item, row, f});
                }
            }
            env.stale_cursor = Store::StaleCursor{row.last_seen_ms, row.transfer_id};
        }
        if (rows.size() < limit) {
            env.stale_cursor.reset();  // every one seen: the next pass starts over
            break;
        }
    }

    CountingDelivery reports;
    std::uint64_t produced = 0;
    std::map<Finding, std::uint64_t> found;
    for (const PassEntry& entry : report.entries) {
        const ListItem& item = entry.mesh;
        ++found[entry.finding];
        if (!acted_on(entry.finding)) {
            common::log_warn("reconciliation " + name + ": transfer " + item.id + " " +
                             std::string(to_string(entry.finding)) + ": credited here with " +
                             (entry.store ? entry.store->amount : std::string()) + ", Mesh says " +
                             item.status + " " + item.destination_amount +
                             "; for a human (see docs/RUNBOOK.md)");
            continue;
        }
        if (producer == nullptr) continue;  // a dry run
        const std::string body = synthesize_event(item, now_ms);
        const std::string event_id = synthesized_event_id(item.id, item.status);
        const std::string delivery_id = event_id + ":" + std::to_string(now_ms);
        const std::string received = std::to_string(now_ms);
        const std::vector<common::Header> record_headers = {{wire::kHeaderEventId, event_id},
                                                            {wire::kHeaderDeliveryId, delivery_id},
                                                            {wire::kHeaderEnvironment, name},
                                                            {wire::kHeaderReceivedAt, received},
                                                            {kHeaderSource, kSourceReconciliation}};
        common::ProduceStatus status = common::ProduceStatus::kQueueFull;
        for (int i = 0; i < 50 && status == common::ProduceStatus::kQueueFull; ++i) {
            status =
                producer->produce(options_.input_topic, item.id, body, record_headers, &reports);
            if (status == common::ProduceStatus::kQueueFull) {
                producer->flush(std::chrono::milliseconds(100));
            }
        }
        if (status != common::ProduceStatus::kEnqueued) {
            // `reports` lives on this stack frame: wait for every report it is owed.
            while (producer->flush(std::chrono::seconds(5)) > 0) {
            }
            common::log_warn("reconciliation " + name + ": cannot produce to " +
                             options_.input_topic + ": " + std::string(common::to_string(status)));
            return report;
        }
        ++produced;
        common::log_info("reconciliation " + name + ": transfer " + item.id + " " +
                         std::string(to_string(entry.finding)) + " here, Mesh says " + item.status +
                         "; event " + event_id + " produced");
    }
    if (producer != nullptr) {
        // `reports` lives on this stack frame: wait for every report it is owed.
        while (producer->flush(std::chrono::seconds(5)) > 0) {
        }
    }
    report.produced = reports.ok();
    if (metrics_ != nullptr) {
        for (const Finding f : {Finding::kMissing, Finding::kStale, Finding::kAmountDiffers,
                                Finding::kFailedAtMesh}) {
            metrics_->reconcile_found(name, to_string(f), found[f]);
        }
        metrics_->reconcile_synthesized(name, reports.ok());
    }
    common::log_info(
        "reconciliation " + name + ": pass listed " + std::to_string(report.listed) +
        " transfers and looked up " + std::to_string(report.looked_up) + " in " +
        std::to_string(report.calls) + " calls; " + std::to_string(found[Finding::kMissing]) +
        " missing, " + std::to_string(found[Finding::kStale]) + " stale, " +
        std::to_string(found[Finding::kAmountDiffers] + found[Finding::kFailedAtMesh]) +
        " for a human, " + std::to_string(reports.ok()) + " events produced");
    if (reports.failed() > 0 || reports.ok() != produced) {
        common::log_warn("reconciliation " + name + ": " + std::to_string(reports.failed()) +
                         " synthesized events not acknowledged by Kafka; the next pass retries");
        return report;
    }
    report.result = PassReport::Result::kOk;
    if (metrics_ != nullptr) {
        metrics_->reconcile_succeeded(name, static_cast<double>(now_ms) / 1000.0);
    }
    return report;
}

}  // namespace meshhook::consumer
