#pragma once
// Reconciliation with Mesh's managed-transfers list: a webhook that never
// reached us still ends in exactly one credit. Each pass lists the transfers
// Mesh created within the look-back window, compares them with the store and,
// for a transfer the store never heard of or a non-final one Mesh says is
// final, produces a synthesized event in the webhook's shape to the input
// topic. The consumer applies it like any event; its EventId is stable per
// (transfer, status), so repeated passes and late webhooks dedup.
//
// The pure parts (environment settings, page parsing, item -> event mapping,
// what to act on) are functions, tested without sockets; Reconciler is the
// thread that runs passes while this instance's relay holds the store's lock.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/kafka.hpp"
#include "consumer/records.hpp"

namespace meshhook::common {
class Settings;
}

namespace meshhook::consumer {

class ConsumerMetrics;
class Store;

inline constexpr std::string_view kMeshProductionApi = "https://integration-api.meshconnect.com";
inline constexpr std::string_view kMeshSandboxApi =
    "https://sandbox-integration-api.meshconnect.com";
inline constexpr std::string_view kTransfersPath = "/api/v1/transfers/managed/mesh";
// The `source` header on synthesized events.
inline constexpr std::string_view kHeaderSource = "source";
inline constexpr std::string_view kSourceReconciliation = "reconciliation";

// One Mesh environment with API credentials. The secret never reaches a log.
struct MeshEnvironment {
    std::string name;  // "production", "sandbox", ...: the events' environment header
    std::string client_id;
    std::string client_secret;
    std::string api_url;  // base URL, no trailing slash
};

struct ReconcileConfig {
    std::vector<MeshEnvironment> environments;  // empty: reconciliation is off
    // The settings' defaults are declared once, in declare_reconcile_settings();
    // load_reconcile_config() sets every field below. `interval` stays 0
    // without --reconcile-interval-s (`meshhook reconcile`: one pass).
    std::chrono::seconds interval{};
    std::chrono::seconds stale_after{};
    std::chrono::seconds lookback{};
    int calls_per_second{};                    // every call: list pages and look-ups
    std::chrono::milliseconds call_timeout{};  // the whole call, connect to last byte
    std::chrono::seconds unauthorized_wait{};  // after a 401, at least this long
    std::vector<std::string> warnings;         // logged once logging is up (e.g. http://)
    bool enabled() const { return !environments.empty(); }
};

// The --reconcile-* settings (CONSUMER_RECONCILE_*), shared by the consumer
// and `meshhook reconcile` (which has no interval: one pass).
void declare_reconcile_settings(common::Settings& settings, bool with_interval);
// Those settings and the MESH_* variables of the process environment; throws
// common::ConfigError naming the setting.
ReconcileConfig load_reconcile_config(const common::Settings& settings, bool with_interval);

// Variables as (name, value): MESH_CLIENT_ID / MESH_CLIENT_SECRET / MESH_API_URL
// for production, the same with _<ENV> for others (ENV upper case, A-Z 0-9 _).
// Throws common::ConfigError naming the variable (an id without its secret,
// a bad URL, an environment with no default URL and none set).
std::vector<MeshEnvironment> mesh_environments(
    const std::vector<std::pair<std::string, std::string>>& variables,
    std::vector<std::string>& warnings);

// The parsed base URL: https verifies the server's certificate; http is for
// simulators and tests.
struct ApiUrl {
    bool tls = true;
    std::string host;
    std::uint16_t port = 443;
    std::string base_path;  // "" or "/prefix", no trailing slash
};
std::optional<ApiUrl> parse_api_url(std::string_view text, std::string& error);

// One item of the managed-transfers list, with the fields the webhook has.
// Absent and null are both empty. `destination_amount` is the exact JSON
// number text (a string holding a number is accepted too); it never passes
// through a double.
struct ListItem {
    std::string id;
    std::string client_transaction_id;
    std::string user_id;
    std::string status;  // as Mesh wrote it
    std::string destination_amount;
    std::string symbol;
    std::string network_name;
    std::string hash;
    std::string destination_address;
    std::optional<std::int64_t> created_ms;
    std::optional<std::int64_t> executed_ms;
};

struct ListPage {
    std::string status;  // the envelope's: "ok" or a failure kind
    std::string message;
    std::vector<ListItem> items;
    std::int64_t total = 0;
    bool has_more_pages = false;
};

// Parses an answer body. nullopt and `error` set when it is not an envelope
// (a failure envelope without content parses, with its status).
std::optional<ListPage> parse_list_page(std::string_view body, std::string& error);

// A Mesh timestamp: a number (seconds, or milliseconds when it is that large)
// or an RFC 3339 / ISO 8601 UTC string. Milliseconds since the epoch.
std::optional<std::int64_t> parse_mesh_timestamp(std::string_view text, bool is_number);

// `<base>/api/v1/transfers/managed/mesh?Count=..&Offset=..&FromTimestamp=..`
// (FromTimestamp in seconds; the answer is filtered again on our side).
std::string list_target(std::string_view base_path, int count, std::int64_t offset,
                        std::int64_t from_seconds);

// `<base>/api/v1/transfers/managed/mesh?Id=..` (percent-encoded): one
// transfer's look-up; the answer is searched for that id on our side.
std::string lookup_target(std::string_view base_path, std::string_view transfer_id);

// "reconcile:<TransferId>:<status lower case>": stable per transfer and status.
std::string synthesized_event_id(std::string_view transfer_id, std::string_view status);

// The webhook body (PascalCase) that says what `item` says. `sent_ms` is the
// pass's time (SentTimestamp and the delivery Id).
std::string synthesize_event(const ListItem& item, std::int64_t sent_ms);

// Missing: the store never heard of it. Stale: the row is not final and
// Mesh's status is. Those two are acted on (an event is synthesized). Amount
// differs: credited here with another destination amount than Mesh's.
// Failed at Mesh: credited here, failed at Mesh. Those two are for a human:
// logged and counted, never acted on.
enum class Finding { kNone, kMissing, kStale, kAmountDiffers, kFailedAtMesh };
std::string_view to_string(Finding f);
inline bool acted_on(Finding f) {
    return f == Finding::kMissing || f == Finding::kStale;
}

// What one item means given the store's row. Missing and stale only once the
// transfer has been quiet for `stale_after` (a webhook in flight is given its
// chance first).
Finding classify(const ListItem& item, const std::optional<TransferRow>& row, std::int64_t now_ms,
                 std::chrono::seconds stale_after);

// Two JSON number texts that are the same decimal ("9.990" and "9.99").
bool same_decimal(std::string_view a, std::string_view b);

// One finding of a pass, with what each side says.
struct PassEntry {
    ListItem mesh;
    std::optional<TransferRow> store;
    Finding finding = Finding::kNone;
};

// What one pass did, for the consumer's log and `meshhook reconcile`.
struct PassReport {
    enum class Result { kOk, kFailed, kUnauthorized };
    Result result = Result::kFailed;
    std::size_t listed = 0;     // items in the window
    std::size_t looked_up = 0;  // quiet non-final transfers looked up by Id
    int calls = 0;
    std::vector<PassEntry> entries;  // findings other than kNone
    std::uint64_t produced = 0;      // events acknowledged by Kafka
};

struct ReconcilerOptions {
    ReconcileConfig config;
    std::string store_url;
    common::KafkaConfig kafka;  // bootstrap.servers and the client's settings
    std::string input_topic;
    int page_size = 100;
    int attempts = 4;  // per page, backing off on 429, 5xx, failure envelopes
    std::chrono::milliseconds first_backoff{1000};
    // Look-ups by Id per pass; the store's quiet non-final transfers are taken
    // in turn across passes (0: all of them, for `meshhook reconcile`).
    std::size_t max_lookups = 1000;
};

class Reconciler {
public:
    // `active`: whether this instance may reconcile (its relay holds the
    // store's lock), asked before every pass.
    Reconciler(ReconcilerOptions options, ConsumerMetrics* metrics, std::function<bool()> active);
    ~Reconciler();
    Reconciler(const Reconciler&) = delete;
    Reconciler& operator=(const Reconciler&) = delete;

    void start();
    void stop();
    std::uint64_t passes() const { return passes_.load(); }

    // One pass for `environment` on the calling thread, for operators: lists
    // from `window_start_ms` (the look-back window when nullopt) and, with
    // `apply`, produces the events the consumer's pass would (a dry run
    // produces nothing and needs no Kafka). Throws on a store error.
    PassReport run_once(std::string_view environment, std::optional<std::int64_t> window_start_ms,
                        bool apply);

private:
    struct Env;

    std::vector<Env> make_envs() const;
    void run();
    // `producer` nullptr: a dry run.
    PassReport pass(Env& env, Store& store, common::Producer* producer,
                    std::int64_t window_start_ms);
    // One GET with pacing, retries and backoff; nullopt when the page could
    // not be had (`result` says whether for a 401).
    std::optional<ListPage> fetch(Env& env, const std::string& target, PassReport& report);
    // Waits out the gap between two calls; false when stopping.
    bool pace();
    // False when stopping.
    bool sleep_for(std::chrono::milliseconds d);

    ReconcilerOptions options_;
    ConsumerMetrics* metrics_;
    std::function<bool()> active_;
    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::atomic<std::uint64_t> passes_{0};
    std::chrono::steady_clock::time_point last_call_{};
};

}  // namespace meshhook::consumer
