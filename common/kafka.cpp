#include "common/kafka.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include "common/config.hpp"
#include "common/log.hpp"

namespace meshhook::common {
namespace {

struct ConfDeleter {
    void operator()(rd_kafka_conf_t* c) const { rd_kafka_conf_destroy(c); }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

struct HandleDeleter {
    void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;

struct PartitionListDeleter {
    void operator()(rd_kafka_topic_partition_list_t* l) const {
        rd_kafka_topic_partition_list_destroy(l);
    }
};
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

void set(rd_kafka_conf_t* conf, const std::string& key, const std::string& value) {
    char err[512];
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
        throw KafkaError("kafka setting " + key + ": " + err);
    }
}

// librdkafka's log lines go through our logger, so they come out in the
// process's format (JSON lines in production) instead of raw on stderr.
void on_log(const rd_kafka_t* rk, int level, const char* facility, const char* message) {
    std::string line = std::string("kafka ") + rd_kafka_name(rk) + " " + facility + ": " + message;
    if (level <= 3) {
        log_error(line);
    } else if (level == 4) {
        log_warn(line);
    } else if (level <= 6) {
        log_info(line);
    } else {
        log_debug(line);
    }
}

// Errors librdkafka raises outside a request (it would log them itself
// without this callback). A refused login is the exception: librdkafka would
// retry it forever while the service answers 503 or consumes nothing, and no
// retry heals it. It is a wrong setting, so it ends the process the way any
// wrong setting does: one line naming what to check, exit 2. (librdkafka
// calls this from poll(), on the thread that serves the client.)
void on_error(rd_kafka_t* rk, int err, const char* reason, void* /*opaque*/) {
    const auto code = static_cast<rd_kafka_resp_err_t>(err);
    if (code == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        std::fprintf(stderr,
                     "%s: Kafka refused the login: %s (check sasl.mechanisms, sasl.username and "
                     "sasl.password of the Kafka config file)\n",
                     program_invocation_short_name, reason);
        std::fflush(stderr);
        std::_Exit(2);
    }
    log_error(std::string("kafka ") + rd_kafka_name(rk) + " error: " + rd_kafka_err2name(code) +
              ": " + reason);
}

// librdkafka before 2.6.1 appends its nonce twice in SCRAM's final message;
// Apache Kafka 3.8.1 and later check it strictly (CVE-2024-56128) and refuse
// every SCRAM login from such a client.
void warn_if_scram_cannot_work(const KafkaConfig& config) {
    constexpr int kFixedIn = 0x020601ff;
    if (rd_kafka_version() >= kFixedIn) return;
    for (const auto& [key, value] : config) {
        if ((key == "sasl.mechanisms" || key == "sasl.mechanism") && value.rfind("SCRAM", 0) == 0) {
            log_warn(std::string("librdkafka ") + rd_kafka_version_str() +
                     " cannot log in with SCRAM to Apache Kafka 3.8.1 or later (fixed in "
                     "librdkafka 2.6.1): use PLAIN over SASL_SSL, or a newer librdkafka");
        }
    }
}

ConfPtr make_conf(const KafkaConfig& config, const KafkaConfig& defaults) {
    ConfPtr conf(rd_kafka_conf_new());
    rd_kafka_conf_set_log_cb(conf.get(), &on_log);
    rd_kafka_conf_set_error_cb(conf.get(), &on_error);
    warn_if_scram_cannot_work(config);
    for (const auto& [k, v] : defaults) set(conf.get(), k, v);
    for (const auto& [k, v] : config) set(conf.get(), k, v);
    return conf;
}

PartitionListPtr to_list(const std::vector<TopicPartition>& tps) {
    PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(tps.size())));
    for (const auto& tp : tps) {
        rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition)->offset =
            tp.offset;
    }
    return list;
}

std::vector<TopicPartition> from_list(const rd_kafka_topic_partition_list_t* list) {
    std::vector<TopicPartition> out;
    if (list == nullptr) return out;
    out.reserve(static_cast<std::size_t>(list->cnt));
    for (int i = 0; i < list->cnt; ++i) {
        out.push_back({list->elems[i].topic, list->elems[i].partition, list->elems[i].offset});
    }
    return out;
}

std::optional<int> metadata_partition_count(rd_kafka_t* rk, std::string_view topic,
                                            std::chrono::milliseconds timeout) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk, std::string(topic).c_str(), nullptr);
    if (t == nullptr) return std::nullopt;
    const rd_kafka_metadata_t* md = nullptr;
    const auto err = rd_kafka_metadata(rk, 0, t, &md, static_cast<int>(timeout.count()));
    std::optional<int> result;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md != nullptr && md->topic_cnt == 1 &&
        md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        result = md->topics[0].partition_cnt;
    }
    if (md != nullptr) rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return result;
}

}  // namespace

std::string_view to_string(ProduceStatus s) {
    switch (s) {
        case ProduceStatus::kEnqueued: return "enqueued";
        case ProduceStatus::kQueueFull: return "queue_full";
        case ProduceStatus::kUnknownTopic: return "unknown_topic";
        case ProduceStatus::kFatal: return "fatal";
        case ProduceStatus::kRejected: return "rejected";
        case ProduceStatus::kOther: return "error";
    }
    return "error";
}

// ---------------------------------------------------------------- client properties

namespace {

bool is_client_property(std::string_view key) {
    static constexpr std::string_view kPrefixes[] = {"ssl.", "sasl.", "socket."};
    static constexpr std::string_view kNames[] = {
        "security.protocol",
        "enable.ssl.certificate.verification",
        "client.rack",
        "broker.address.family",
        "broker.address.ttl",
        "connections.max.idle.ms",
        "debug",
    };
    return std::any_of(std::begin(kPrefixes), std::end(kPrefixes),
                       [&](std::string_view p) { return key.starts_with(p); }) ||
           std::find(std::begin(kNames), std::end(kNames), key) != std::end(kNames);
}

std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

}  // namespace

KafkaConfig load_client_properties(const std::string& setting, const std::string& path) {
    std::ifstream in(path);
    if (!in) throw ConfigError(setting + ": cannot read " + path);
    KafkaConfig properties;
    ConfPtr check(rd_kafka_conf_new());
    std::string raw;
    for (int number = 1; std::getline(in, raw); ++number) {
        const auto line = trim(raw);
        if (line.empty() || line.front() == '#') continue;
        const std::string where = setting + ": " + path + " line " + std::to_string(number) + ": ";
        const auto eq = line.find('=');
        if (eq == std::string_view::npos) throw ConfigError(where + "expected key=value");
        const std::string key(trim(line.substr(0, eq)));
        const std::string value(trim(line.substr(eq + 1)));
        if (!is_client_property(key)) {
            throw ConfigError(where + "\"" + key +
                              "\" is not a connection property (allowed: security.protocol, "
                              "ssl.*, sasl.*, socket.*, client.rack, broker.address.family, "
                              "connections.max.idle.ms, debug)");
        }
        if (std::any_of(properties.begin(), properties.end(),
                        [&](const auto& p) { return p.first == key; })) {
            throw ConfigError(where + "\"" + key + "\" is set twice");
        }
        char err[512];
        if (rd_kafka_conf_set(check.get(), key.c_str(), value.c_str(), err, sizeof err) !=
            RD_KAFKA_CONF_OK) {
            // librdkafka's message quotes the value: not for secrets.
            const bool secret = key.find("password") != std::string::npos ||
                                key.find("pem") != std::string::npos ||
                                key.find("config") != std::string::npos;
            throw ConfigError(where + (secret ? "invalid value for \"" + key + "\"" : err));
        }
        properties.emplace_back(key, value);
    }
    return properties;
}

void declare_client_properties(Settings& settings) {
    settings.add({"kafka-config-file", "KAFKA_CONFIG_FILE", "",
                  "File of librdkafka key=value lines for a secured cluster: security.protocol, "
                  "ssl.*, sasl.* (mount it from a secret)"});
}

KafkaConfig client_properties(const Settings& settings) {
    const auto& path = settings.get("kafka-config-file");
    if (path.empty()) return {};
    return load_client_properties(settings.describe("kafka-config-file"), path);
}

Settings& declare_brokers(Settings& settings) {
    return settings.add(
        {"brokers", "KAFKA_BROKERS", "", "Kafka bootstrap servers (host:port,...); required"});
}

std::string bootstrap_servers(const Settings& settings) {
    const std::string& brokers = settings.get("brokers");
    if (split_list(brokers).empty()) {
        throw ConfigError(settings.describe("brokers") + ": required (host:port,...)");
    }
    return brokers;
}

std::string topic_name(const Settings& settings, std::string_view flag) {
    const std::string& t = settings.get(flag);
    const bool ok = !t.empty() && t.size() <= 249 && t != "." && t != ".." &&
                    std::all_of(t.begin(), t.end(), [](char c) {
                        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                               (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
                    });
    if (!ok) {
        throw ConfigError(settings.describe(flag) + ": not a valid Kafka topic name: \"" + t +
                          "\"");
    }
    return t;
}

// ---------------------------------------------------------------- Producer

namespace {

bool record_rejected(rd_kafka_resp_err_t err) {
    switch (err) {
        case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        case RD_KAFKA_RESP_ERR_INVALID_RECORD:
        case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
        case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
        case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        // librdkafka's own verdict once the topic stayed out of the metadata
        // for topic.metadata.propagation.max.ms. Not the broker's
        // UNKNOWN_TOPIC_OR_PART, nor an unknown topic at produce(): both are
        // what a broker says while a new topic propagates.
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC: return true;
        default: return false;
    }
}

RecordError record_error(rd_kafka_resp_err_t err, std::string_view message) {
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
    if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        return {RecordError::Kind::kEndOfPartition, message};
    }
    return {record_rejected(err) ? RecordError::Kind::kRejected : RecordError::Kind::kRetryable,
            message};
}

// Throws the classified TransactionError for `error` (taking ownership).
void check_transaction(rd_kafka_error_t* error, std::string_view call) {
    if (error == nullptr) return;
    const rd_kafka_resp_err_t code = rd_kafka_error_code(error);
    std::string what = std::string(call) + ": " + rd_kafka_error_string(error);
    TransactionError::Kind kind = TransactionError::Kind::kFatal;
    if (code == RD_KAFKA_RESP_ERR__FENCED || code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
        code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH) {
        kind = TransactionError::Kind::kFenced;
    } else if (rd_kafka_error_is_fatal(error)) {
        kind = TransactionError::Kind::kFatal;
    } else if (rd_kafka_error_txn_requires_abort(error)) {
        kind = TransactionError::Kind::kAbortable;
    } else if (rd_kafka_error_is_retriable(error)) {
        kind = TransactionError::Kind::kRetriable;
    }
    rd_kafka_error_destroy(error);
    throw TransactionError(kind, what);
}

}  // namespace

struct Producer::Impl {
    HandlePtr rk;
    std::atomic<bool> stop{false};

    // Topic handles, created once per name. A record produced by topic name
    // makes librdkafka look the topic up under its handle's write lock and
    // take and drop a reference, per record; a held handle skips all that.
    // Read without a lock: a slot is written before the count that
    // publishes it, and never changes after.
    struct TopicSlot {
        std::string name;
        rd_kafka_topic_t* rkt = nullptr;
    };
    std::array<TopicSlot, 16> topics;
    std::atomic<std::size_t> topic_count{0};
    std::mutex topic_mutex;

    // Null when the handle cannot be made (or the table is full): produce by name then.
    rd_kafka_topic_t* topic(std::string_view name) {
        const std::size_t n = topic_count.load(std::memory_order_acquire);
        for (std::size_t i = 0; i < n; ++i) {
            if (topics[i].name == name) return topics[i].rkt;
        }
        const std::lock_guard lock(topic_mutex);
        const std::size_t now = topic_count.load(std::memory_order_relaxed);
        for (std::size_t i = n; i < now; ++i) {
            if (topics[i].name == name) return topics[i].rkt;
        }
        if (now == topics.size()) return nullptr;
        const std::string c_name(name);
        rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk.get(), c_name.c_str(), nullptr);
        if (rkt == nullptr) return nullptr;
        topics[now] = {c_name, rkt};
        topic_count.store(now + 1, std::memory_order_release);
        return rkt;
    }
    void destroy_topics() {
        const std::size_t n = topic_count.exchange(0, std::memory_order_acq_rel);
        for (std::size_t i = 0; i < n; ++i) rd_kafka_topic_destroy(topics[i].rkt);
    }
    std::thread poller;
    ReportsReady reports_ready;
    rd_kafka_queue_t* main_queue = nullptr;  // notify mode: the queue whose events we forward

    static void on_queue_event(rd_kafka_t*, void* opaque) {
        static_cast<Impl*>(opaque)->reports_ready();
    }

    static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void*) {
        auto* handler = static_cast<DeliveryHandler*>(msg->_private);
        if (handler == nullptr) return;
        DeliveryReport report;
        if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            report.error = record_error(msg->err, rd_kafka_err2str(msg->err));
        }
        report.partition = msg->partition;
        report.offset = msg->offset;
        handler->on_delivery(report);
    }
};

Producer::Producer(const KafkaConfig& config, ReportsReady reports_ready)
    : impl_(std::make_unique<Impl>()) {
    ConfPtr conf = make_conf(config, {{"enable.idempotence", "true"},
                                      {"acks", "all"},
                                      {"linger.ms", "1"},
                                      {"message.timeout.ms", "30000"}});
    rd_kafka_conf_set_dr_msg_cb(conf.get(), &Impl::on_delivery);
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), err, sizeof err);
    if (rk == nullptr) throw KafkaError(std::string("kafka producer: ") + err);
    (void)conf.release();  // owned by rk now
    impl_->rk.reset(rk);
    if (reports_ready) {
        // librdkafka calls on_queue_event when an event lands on an empty
        // main queue; the owner's poll() empties it, re-arming the trigger.
        impl_->reports_ready = std::move(reports_ready);
        impl_->main_queue = rd_kafka_queue_get_main(rk);
        rd_kafka_queue_cb_event_enable(impl_->main_queue, &Impl::on_queue_event, impl_.get());
        return;
    }
    // produce() only enqueues; delivery reports are served here, never on an
    // I/O thread. rd_kafka_poll wakes as soon as a report is ready.
    impl_->poller = std::thread([impl = impl_.get()] {
        while (!impl->stop.load(std::memory_order_acquire)) rd_kafka_poll(impl->rk.get(), 100);
    });
}

Producer::~Producer() {
    if (impl_->main_queue != nullptr) {
        // No more notifications to an owner that is going away; the flush
        // below serves what remains on this thread.
        rd_kafka_queue_cb_event_enable(impl_->main_queue, nullptr, nullptr);
        rd_kafka_queue_destroy(impl_->main_queue);
        impl_->main_queue = nullptr;
    }
    rd_kafka_flush(impl_->rk.get(), 5000);
    impl_->stop.store(true, std::memory_order_release);
    if (impl_->poller.joinable()) impl_->poller.join();
    // Reports still outstanding after the flush deadline are failed by
    // rd_kafka_destroy through the callback: serve them so handlers learn.
    rd_kafka_purge(impl_->rk.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(impl_->rk.get(), 0);
    impl_->destroy_topics();  // before the handle they belong to
}

int Producer::poll() {
    return rd_kafka_poll(impl_->rk.get(), 0);
}

ProduceStatus Producer::produce(std::string_view topic, std::string_view key,
                                std::string_view value, const std::vector<Header>& headers,
                                DeliveryHandler* handler, std::int32_t partition) {
    rd_kafka_headers_t* hdrs = rd_kafka_headers_new(headers.size());
    for (const auto& h : headers) {
        rd_kafka_header_add(hdrs, h.key.data(), static_cast<ssize_t>(h.key.size()), h.value.data(),
                            static_cast<ssize_t>(h.value.size()));
    }
    // rd_kafka_produceva rather than the RD_KAFKA_V_* macros: same call, no C casts.
    rd_kafka_vu_t vus[7];
    // Topic names are short; a stack copy avoids an allocation for the C string.
    char topic_buf[256];
    if (rd_kafka_topic_t* rkt = impl_->topic(topic)) {
        vus[0].vtype = RD_KAFKA_VTYPE_RKT;
        vus[0].u.rkt = rkt;
    } else {
        if (topic.size() >= sizeof topic_buf) {
            rd_kafka_headers_destroy(hdrs);
            return ProduceStatus::kUnknownTopic;
        }
        std::memcpy(topic_buf, topic.data(), topic.size());
        topic_buf[topic.size()] = '\0';
        vus[0].vtype = RD_KAFKA_VTYPE_TOPIC;
        vus[0].u.cstr = topic_buf;
    }
    vus[1].vtype = RD_KAFKA_VTYPE_PARTITION;
    vus[1].u.i32 = partition;
    vus[2].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vus[2].u.i = RD_KAFKA_MSG_F_COPY;
    vus[3].vtype = RD_KAFKA_VTYPE_KEY;
    vus[3].u.mem = {const_cast<char*>(key.data()), key.size()};
    vus[4].vtype = RD_KAFKA_VTYPE_VALUE;
    vus[4].u.mem = {const_cast<char*>(value.data()), value.size()};
    vus[5].vtype = RD_KAFKA_VTYPE_HEADERS;
    vus[5].u.headers = hdrs;
    vus[6].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vus[6].u.ptr = handler;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (rd_kafka_error_t* error = rd_kafka_produceva(impl_->rk.get(), vus, 7)) {
        err = rd_kafka_error_code(error);
        rd_kafka_error_destroy(error);
    }
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return ProduceStatus::kEnqueued;  // rk owns hdrs
    rd_kafka_headers_destroy(hdrs);
    switch (err) {
        case RD_KAFKA_RESP_ERR__QUEUE_FULL: return ProduceStatus::kQueueFull;
        case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART: return ProduceStatus::kUnknownTopic;
        case RD_KAFKA_RESP_ERR__FATAL: return ProduceStatus::kFatal;
        default: return record_rejected(err) ? ProduceStatus::kRejected : ProduceStatus::kOther;
    }
}

int Producer::flush(std::chrono::milliseconds timeout) {
    rd_kafka_flush(impl_->rk.get(), static_cast<int>(timeout.count()));
    return rd_kafka_outq_len(impl_->rk.get());
}

int Producer::queue_depth() const {
    return rd_kafka_outq_len(impl_->rk.get());
}

bool Producer::healthy(std::chrono::milliseconds timeout) {
    char buf[256];
    if (rd_kafka_fatal_error(impl_->rk.get(), buf, sizeof buf) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return false;
    }
    const rd_kafka_metadata_t* md = nullptr;
    const auto err =
        rd_kafka_metadata(impl_->rk.get(), 0, nullptr, &md, static_cast<int>(timeout.count()));
    const bool ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && md != nullptr && md->broker_cnt > 0;
    if (md != nullptr) rd_kafka_metadata_destroy(md);
    return ok;
}

std::optional<std::string> Producer::unready(const std::vector<std::string>& topics,
                                             std::chrono::milliseconds timeout) {
    char buf[256];
    if (rd_kafka_fatal_error(impl_->rk.get(), buf, sizeof buf) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        return std::string("producer fatal error: ") + buf;
    }
    const rd_kafka_metadata_t* md = nullptr;
    const auto err =
        rd_kafka_metadata(impl_->rk.get(), 1, nullptr, &md, static_cast<int>(timeout.count()));
    std::optional<std::string> problem;
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR || md == nullptr || md->broker_cnt == 0) {
        problem = "Kafka unreachable";
    } else {
        for (const auto& name : topics) {
            const rd_kafka_metadata_topic_t* found = nullptr;
            for (int i = 0; i < md->topic_cnt; ++i) {
                if (name == md->topics[i].topic) found = &md->topics[i];
            }
            if (found == nullptr || found->err != RD_KAFKA_RESP_ERR_NO_ERROR ||
                found->partition_cnt == 0) {
                problem = "topic " + name + " does not exist";
                break;
            }
            for (int p = 0; p < found->partition_cnt; ++p) {
                if (found->partitions[p].leader < 0) {
                    problem = "topic " + name + " partition " +
                              std::to_string(found->partitions[p].id) + " has no leader";
                    break;
                }
            }
            if (problem) break;
        }
    }
    if (md != nullptr) rd_kafka_metadata_destroy(md);
    return problem;
}

std::optional<int> Producer::partition_count(std::string_view topic,
                                             std::chrono::milliseconds timeout) {
    return metadata_partition_count(impl_->rk.get(), topic, timeout);
}

void Producer::purge() {
    rd_kafka_purge(impl_->rk.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
}

void Producer::init_transactions(std::chrono::milliseconds timeout) {
    check_transaction(
        rd_kafka_init_transactions(impl_->rk.get(), static_cast<int>(timeout.count())),
        "init_transactions");
}

void Producer::begin_transaction() {
    check_transaction(rd_kafka_begin_transaction(impl_->rk.get()), "begin_transaction");
}

void Producer::commit_transaction(std::chrono::milliseconds timeout) {
    check_transaction(
        rd_kafka_commit_transaction(impl_->rk.get(), static_cast<int>(timeout.count())),
        "commit_transaction");
}

void Producer::abort_transaction(std::chrono::milliseconds timeout) {
    check_transaction(
        rd_kafka_abort_transaction(impl_->rk.get(), static_cast<int>(timeout.count())),
        "abort_transaction");
}

std::string Producer::fatal_error() const {
    char buf[512];
    if (rd_kafka_fatal_error(impl_->rk.get(), buf, sizeof buf) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        return {};
    }
    return buf;
}

// ---------------------------------------------------------------- Message

Message::Message(rd_kafka_message_s* msg) : msg_(msg) {}
Message::~Message() {
    if (msg_ != nullptr) rd_kafka_message_destroy(msg_);
}
Message::Message(Message&& other) noexcept : msg_(std::exchange(other.msg_, nullptr)) {}
Message& Message::operator=(Message&& other) noexcept {
    if (this != &other) {
        if (msg_ != nullptr) rd_kafka_message_destroy(msg_);
        msg_ = std::exchange(other.msg_, nullptr);
    }
    return *this;
}
RecordError Message::error() const {
    if (msg_->err == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
    return record_error(msg_->err, rd_kafka_message_errstr(msg_));
}
bool Message::is_offset_out_of_range() const {
    return msg_ != nullptr && msg_->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET;
}

bool Message::is_partition_eof() const {
    return msg_->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
}
std::string_view Message::topic() const {
    return msg_->rkt != nullptr ? std::string_view(rd_kafka_topic_name(msg_->rkt))
                                : std::string_view();
}
std::int32_t Message::partition() const {
    return msg_->partition;
}
std::int64_t Message::offset() const {
    return msg_->offset;
}
std::int64_t Message::timestamp_ms() const {
    rd_kafka_timestamp_type_t type{};
    return rd_kafka_message_timestamp(msg_, &type);
}
std::optional<std::string_view> Message::key() const {
    if (msg_->key == nullptr) return std::nullopt;
    return std::string_view(static_cast<const char*>(msg_->key), msg_->key_len);
}
std::string_view Message::value() const {
    if (msg_->payload == nullptr) return {};
    return {static_cast<const char*>(msg_->payload), msg_->len};
}
std::optional<std::string_view> Message::header(std::string_view name) const {
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(msg_, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
    const void* value = nullptr;
    std::size_t size = 0;
    if (rd_kafka_header_get_last(hdrs, std::string(name).c_str(), &value, &size) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
        return std::nullopt;
    }
    if (value == nullptr) return std::string_view();
    return std::string_view(static_cast<const char*>(value), size);
}
std::vector<Header> Message::headers() const {
    std::vector<Header> out;
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(msg_, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR) return out;
    const char* name = nullptr;
    const void* value = nullptr;
    std::size_t size = 0;
    for (std::size_t i = 0;
         rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
        out.push_back({name, value != nullptr
                                 ? std::string_view(static_cast<const char*>(value), size)
                                 : std::string_view()});
    }
    return out;
}

// ---------------------------------------------------------------- Consumer

struct Consumer::Impl {
    HandlePtr rk;
    RebalanceHandler* rebalance = nullptr;
    Consumer* owner = nullptr;
    bool closed = false;

    static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t* partitions, void* opaque) {
        auto* impl = static_cast<Impl*>(opaque);
        const auto tps = from_list(partitions);
        if (impl->rebalance == nullptr) {
            if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                rd_kafka_assign(rk, partitions);
            } else {
                rd_kafka_assign(rk, nullptr);
            }
            return;
        }
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
            impl->rebalance->on_assign(*impl->owner, tps);
        } else {
            impl->rebalance->on_revoke(*impl->owner, tps);
        }
    }
};

Consumer::Consumer(const KafkaConfig& config, RebalanceHandler* rebalance)
    : impl_(std::make_unique<Impl>()) {
    impl_->rebalance = rebalance;
    impl_->owner = this;
    ConfPtr conf = make_conf(config, {{"enable.auto.commit", "false"},
                                      {"enable.auto.offset.store", "false"},
                                      {"auto.offset.reset", "earliest"},
                                      {"enable.partition.eof", "false"}});
    rd_kafka_conf_set_rebalance_cb(conf.get(), &Impl::on_rebalance);
    rd_kafka_conf_set_opaque(conf.get(), impl_.get());
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), err, sizeof err);
    if (rk == nullptr) throw KafkaError(std::string("kafka consumer: ") + err);
    (void)conf.release();
    impl_->rk.reset(rk);
    rd_kafka_poll_set_consumer(rk);
}

Consumer::~Consumer() {
    try {
        close();
    } catch (...) {
    }
}

void Consumer::subscribe(const std::vector<std::string>& topics) {
    PartitionListPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
    for (const auto& t : topics) {
        rd_kafka_topic_partition_list_add(list.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
    }
    if (auto err = rd_kafka_subscribe(impl_->rk.get(), list.get())) {
        throw KafkaError(std::string("kafka subscribe: ") + rd_kafka_err2str(err));
    }
}

void Consumer::assign(const std::vector<TopicPartition>& partitions) {
    auto list = to_list(partitions);
    if (auto err = rd_kafka_assign(impl_->rk.get(), list.get())) {
        throw KafkaError(std::string("kafka assign: ") + rd_kafka_err2str(err));
    }
}

void Consumer::unassign() {
    rd_kafka_assign(impl_->rk.get(), nullptr);
}

std::vector<TopicPartition> Consumer::assignment() const {
    rd_kafka_topic_partition_list_t* list = nullptr;
    if (rd_kafka_assignment(impl_->rk.get(), &list) != RD_KAFKA_RESP_ERR_NO_ERROR) return {};
    PartitionListPtr owned(list);
    return from_list(list);
}

Message Consumer::poll(std::chrono::milliseconds timeout) {
    return Message(rd_kafka_consumer_poll(impl_->rk.get(), static_cast<int>(timeout.count())));
}

void Consumer::commit(const std::vector<TopicPartition>& offsets, bool async) {
    if (offsets.empty()) return;
    auto list = to_list(offsets);
    const auto err = rd_kafka_commit(impl_->rk.get(), list.get(), async ? 1 : 0);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        throw KafkaError(std::string("kafka commit: ") + rd_kafka_err2str(err));
    }
}

void Consumer::seek(const TopicPartition& tp, std::chrono::milliseconds timeout) {
    auto list = to_list({tp});
    rd_kafka_error_t* error =
        rd_kafka_seek_partitions(impl_->rk.get(), list.get(), static_cast<int>(timeout.count()));
    if (error != nullptr) {
        std::string what = rd_kafka_error_string(error);
        rd_kafka_error_destroy(error);
        throw KafkaError("kafka seek: " + what);
    }
}

std::vector<TopicPartition> Consumer::committed(const std::vector<TopicPartition>& partitions,
                                                std::chrono::milliseconds timeout) {
    auto list = to_list(partitions);
    if (auto err =
            rd_kafka_committed(impl_->rk.get(), list.get(), static_cast<int>(timeout.count()))) {
        throw KafkaError(std::string("kafka committed offsets: ") + rd_kafka_err2str(err));
    }
    for (int i = 0; i < list->cnt; ++i) {
        if (const auto err = list->elems[i].err; err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            throw KafkaError(std::string("kafka committed offset of ") + list->elems[i].topic +
                             "[" + std::to_string(list->elems[i].partition) +
                             "]: " + rd_kafka_err2str(err));
        }
    }
    return from_list(list.get());
}

std::optional<int> Consumer::partition_count(std::string_view topic,
                                             std::chrono::milliseconds timeout) {
    return metadata_partition_count(impl_->rk.get(), topic, timeout);
}

std::optional<std::pair<std::int64_t, std::int64_t>> Consumer::watermarks(
    std::string_view topic, std::int32_t partition, std::chrono::milliseconds timeout) {
    std::int64_t low = 0;
    std::int64_t high = 0;
    if (rd_kafka_query_watermark_offsets(impl_->rk.get(), std::string(topic).c_str(), partition,
                                         &low, &high, static_cast<int>(timeout.count())) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
        return std::nullopt;
    }
    return std::make_pair(low, high);
}

std::optional<std::pair<std::int64_t, std::int64_t>> Consumer::cached_watermarks(
    const std::string& topic, std::int32_t partition) const {
    std::int64_t low = 0;
    std::int64_t high = 0;
    if (rd_kafka_get_watermark_offsets(impl_->rk.get(), topic.c_str(), partition, &low, &high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0) {
        return std::nullopt;
    }
    return std::make_pair(low, high);
}

std::optional<int> Consumer::existing_topic_partitions(std::string_view topic,
                                                       std::chrono::milliseconds timeout,
                                                       std::string& error) {
    const rd_kafka_metadata_t* md = nullptr;
    const auto err =
        rd_kafka_metadata(impl_->rk.get(), 1, nullptr, &md, static_cast<int>(timeout.count()));
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        error = std::string("cannot reach Kafka: ") + rd_kafka_err2str(err);
        return std::nullopt;
    }
    std::optional<int> count;
    for (int i = 0; i < md->topic_cnt; ++i) {
        if (topic == md->topics[i].topic && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
            md->topics[i].partition_cnt > 0) {
            count = md->topics[i].partition_cnt;
        }
    }
    rd_kafka_metadata_destroy(md);
    if (!count) error = "unknown topic '" + std::string(topic) + "'";
    return count;
}

void Consumer::close() {
    if (impl_->closed) return;
    impl_->closed = true;
    rd_kafka_consumer_close(impl_->rk.get());
}

// ---------------------------------------------------------------- Admin

namespace {

template <auto Destroy>
struct Destroyer {
    template <typename T>
    void operator()(T* p) const {
        Destroy(p);
    }
};
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, Destroyer<rd_kafka_queue_destroy>>;
using AdminOptionsPtr =
    std::unique_ptr<rd_kafka_AdminOptions_t, Destroyer<rd_kafka_AdminOptions_destroy>>;
using EventPtr = std::unique_ptr<rd_kafka_event_t, Destroyer<rd_kafka_event_destroy>>;
using NewTopicPtr = std::unique_ptr<rd_kafka_NewTopic_t, Destroyer<rd_kafka_NewTopic_destroy>>;

}  // namespace

void create_topics(const KafkaConfig& config, const std::vector<NewTopic>& topics,
                   std::chrono::milliseconds timeout) {
    ConfPtr conf = make_conf(config, {});
    char err[512];
    HandlePtr rk(rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), err, sizeof err));
    if (!rk) throw KafkaError(std::string("kafka admin: ") + err);
    (void)conf.release();  // rd_kafka_new() took it

    std::vector<NewTopicPtr> owned;
    std::vector<rd_kafka_NewTopic_t*> new_topics;
    for (const auto& t : topics) {
        owned.emplace_back(rd_kafka_NewTopic_new(t.name.c_str(), t.partitions, t.replication_factor,
                                                 err, sizeof err));
        if (!owned.back()) throw KafkaError("topic " + t.name + ": " + err);
        new_topics.push_back(owned.back().get());
    }
    const QueuePtr queue(rd_kafka_queue_new(rk.get()));
    const AdminOptionsPtr options(
        rd_kafka_AdminOptions_new(rk.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS));
    if (rd_kafka_AdminOptions_set_request_timeout(options.get(), static_cast<int>(timeout.count()),
                                                  err, sizeof err) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        throw KafkaError(std::string("create topics: ") + err);
    }
    rd_kafka_CreateTopics(rk.get(), new_topics.data(), new_topics.size(), options.get(),
                          queue.get());
    const EventPtr event(
        rd_kafka_queue_poll(queue.get(), static_cast<int>(timeout.count()) + 1000));
    std::string failure;
    if (!event) {
        failure = "CreateTopics timed out";
    } else if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failure = rd_kafka_event_error_string(event.get());
    } else {
        const rd_kafka_CreateTopics_result_t* result =
            rd_kafka_event_CreateTopics_result(event.get());
        std::size_t n = 0;
        const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(result, &n);
        for (std::size_t i = 0; i < n; ++i) {
            const auto e = rd_kafka_topic_result_error(results[i]);
            if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                failure += std::string(rd_kafka_topic_result_name(results[i])) + ": " +
                           rd_kafka_topic_result_error_string(results[i]) + "; ";
            }
        }
    }
    if (!failure.empty()) throw KafkaError("create topics: " + failure);
}

}  // namespace meshhook::common
