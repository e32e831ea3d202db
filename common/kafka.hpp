#pragma once
// RAII wrappers over librdkafka. rdkafka.h stays out of this header: handles
// are held behind forward declarations with custom deleters.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct rd_kafka_s;
struct rd_kafka_message_s;

namespace meshhook::common {

// librdkafka properties, applied in order; every set() is checked.
using KafkaConfig = std::vector<std::pair<std::string, std::string>>;

// The Kafka connection settings of a real cluster (TLS, SASL) come from a
// file of `key=value` lines, like Kafka's client.properties (`#` comments and
// blank lines allowed), so that passwords live in a mounted secret, not in
// flags. Only connection and security properties are accepted
// (security.protocol, ssl.*, sasl.*, socket.*, client.rack, ...): everything
// meshhook's guarantees rest on (acks, idempotence, offsets) stays its own.
// Each property is checked against librdkafka. Throws ConfigError with one
// line starting with `setting` (e.g. "--kafka-config-file (KAFKA_CONFIG_FILE)");
// values are never echoed, they may be passwords.
KafkaConfig load_client_properties(const std::string& setting, const std::string& path);

class Settings;
// The same setting in every binary that talks to Kafka: --kafka-config-file
// (KAFKA_CONFIG_FILE). client_properties() loads it, empty when unset.
void declare_client_properties(Settings& settings);
KafkaConfig client_properties(const Settings& settings);
// --brokers (KAFKA_BROKERS), the same in every binary that talks to Kafka.
// bootstrap_servers() throws ConfigError naming it when it lists no server.
Settings& declare_brokers(Settings& settings);
std::string bootstrap_servers(const Settings& settings);
// The topic a setting names, checked as Kafka checks names ([a-zA-Z0-9._-],
// at most 249 characters, not "." or ".."); throws ConfigError naming `flag`.
std::string topic_name(const Settings& settings, std::string_view flag);

struct KafkaError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Header {
    std::string_view key;
    std::string_view value;
};

// What went wrong with one record, a produced one (its delivery report) or
// a consumed one, classified here once so that no caller needs librdkafka's
// error numbers. Like std::error_code, it converts to true when it is an error.
class RecordError {
public:
    enum class Kind : std::uint8_t {
        kNone,
        // The record itself is refused and would be again as it is (too
        // large, topic missing, not authorised, invalid): retrying cannot help.
        kRejected,
        // Timed out, purged, a broker or the network in trouble, the producer
        // fenced or failed: the same record can succeed later (through a new
        // producer when this one is fatally failed: Producer::fatal_error()).
        kRetryable,
        // Consumer only: the end of a partition was reached. Not a failure.
        kEndOfPartition,
    };
    RecordError() = default;
    // `message` must outlive the error: librdkafka's static text, or a
    // consumed Message's own text (valid while that Message lives).
    RecordError(Kind kind, std::string_view message) : kind_(kind), message_(message) {}

    explicit operator bool() const { return kind_ != Kind::kNone; }
    Kind kind() const { return kind_; }
    bool retryable() const { return kind_ == Kind::kRetryable; }
    std::string_view message() const { return message_; }

private:
    Kind kind_ = Kind::kNone;
    std::string_view message_;
};

struct DeliveryReport {
    RecordError error;  // none: the broker has the record (acks=all)
    std::int32_t partition = -1;
    std::int64_t offset = -1;
    bool ok() const { return !error; }
};

// A transactional call's failure, classified as librdkafka classifies it.
struct TransactionError : KafkaError {
    enum class Kind {
        kRetriable,  // retry the same call
        kAbortable,  // abort_transaction(), then start over
        kFenced,     // another producer with this transactional.id took over
        kFatal,      // the producer is unusable: build a new one
    };
    TransactionError(Kind k, const std::string& what) : KafkaError(what), kind(k) {}
    Kind kind;
};

// Called once per produced message, on the producer's poller thread, or in
// notify mode on whichever thread calls Producer::poll(). The handler must
// outlive the report (ingest keeps its request alive through it).
class DeliveryHandler {
public:
    virtual void on_delivery(const DeliveryReport& report) noexcept = 0;

protected:
    ~DeliveryHandler() = default;
};

enum class ProduceStatus {
    kEnqueued,
    kQueueFull,  // back-pressure: tell the client to retry
    kUnknownTopic,
    kFatal,     // producer fenced/fatal: not retryable in-process
    kRejected,  // this record can never be produced as it is (e.g. too large)
    kOther,
};
std::string_view to_string(ProduceStatus s);

struct ProducerStats {
    std::int64_t queue_depth = 0;  // messages waiting for a delivery report
};

class Producer {
public:
    // Called from a librdkafka thread when delivery reports start waiting
    // (the queue went from empty to non-empty). It must return at once and
    // must not call the producer: it only schedules a poll() elsewhere.
    using ReportsReady = std::function<void()>;

    // `config` must contain bootstrap.servers. Idempotence and acks=all are
    // set by default (overridable). Without `reports_ready`, a poller thread
    // of the producer's own serves delivery reports. With it (notify mode),
    // the owner serves them by calling poll() on a thread of its choosing:
    // an event loop then runs the handlers itself, without a thread hop and
    // a wake-up per report batch.
    explicit Producer(const KafkaConfig& config, ReportsReady reports_ready = {});
    ~Producer();  // flushes for at most 5 s, then stops the poller
    Producer(const Producer&) = delete;
    Producer& operator=(const Producer&) = delete;

    // Copies key, value and headers; `handler` may be null (fire and forget).
    ProduceStatus produce(std::string_view topic, std::string_view key, std::string_view value,
                          const std::vector<Header>& headers, DeliveryHandler* handler,
                          std::int32_t partition = -1);

    // Serves every waiting delivery report on the calling thread, without
    // blocking; returns how many events were served. For notify mode (with
    // a poller thread it is harmless but pointless).
    int poll();

    // Waits up to `timeout` for every outstanding report; returns how many remain.
    int flush(std::chrono::milliseconds timeout);
    int queue_depth() const;

    // True once a metadata request succeeded and the producer has not hit a
    // fatal error; `timeout` bounds the metadata round trip.
    bool healthy(std::chrono::milliseconds timeout);
    // healthy(), and each of `topics` exists with a leader for every
    // partition. nullopt when so, else what is wrong in one line ("Kafka
    // unreachable", "topic T does not exist", "topic T partition 2 has no
    // leader"). Asks for every topic's metadata, which creates none (a
    // request naming a topic may auto-create it).
    std::optional<std::string> unready(const std::vector<std::string>& topics,
                                       std::chrono::milliseconds timeout);
    // Partition count of `topic`, nullopt when unknown or unreachable.
    std::optional<int> partition_count(std::string_view topic, std::chrono::milliseconds timeout);
    // Drops every queued and in-flight record (their reports fail with
    // "purged"): for a shutdown that has already answered them.
    void purge();

    // Transactions: only for a producer whose config sets transactional.id.
    // Each throws TransactionError. init_transactions() fences any earlier
    // producer with the same transactional.id and aborts its open transaction;
    // commit_transaction() flushes, so every record's report has been served
    // (or is about to be) when it returns.
    void init_transactions(std::chrono::milliseconds timeout);
    void begin_transaction();
    void commit_transaction(std::chrono::milliseconds timeout);
    void abort_transaction(std::chrono::milliseconds timeout);
    // The producer's fatal error (fenced included), empty while it has none.
    std::string fatal_error() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// A consumed record; owns the underlying librdkafka message.
class Message {
public:
    Message() = default;
    explicit Message(rd_kafka_message_s* msg);
    ~Message();
    Message(Message&&) noexcept;
    Message& operator=(Message&&) noexcept;
    Message(const Message&) = delete;
    Message& operator=(const Message&) = delete;

    explicit operator bool() const { return msg_ != nullptr; }
    // None for a record; the end of a partition comes as kEndOfPartition. Its
    // message is valid while this Message lives.
    RecordError error() const;
    bool is_partition_eof() const;
    // The fetch offset was out of range with auto.offset.reset=error: the
    // partition no longer holds it (retention) or never did (a recreated topic).
    bool is_offset_out_of_range() const;
    std::string_view topic() const;
    std::int32_t partition() const;
    std::int64_t offset() const;
    std::int64_t timestamp_ms() const;  // -1 when unavailable
    std::optional<std::string_view> key() const;
    std::string_view value() const;
    std::optional<std::string_view> header(std::string_view name) const;  // last with that name
    std::vector<Header> headers() const;

private:
    rd_kafka_message_s* msg_ = nullptr;
};

struct TopicPartition {
    std::string topic;
    std::int32_t partition = 0;
    std::int64_t offset = -1001;  // RD_KAFKA_OFFSET_INVALID: use committed / reset policy
    friend bool operator==(const TopicPartition&, const TopicPartition&) = default;
};

inline constexpr std::int64_t kOffsetBeginning = -2;
inline constexpr std::int64_t kOffsetEnd = -1;
inline constexpr std::int64_t kOffsetInvalid = -1001;  // "no offset", as in TopicPartition

class Consumer;

// Called from inside Consumer::poll() on a group rebalance. With a handler,
// the handler must call consumer.assign() / unassign() itself.
class RebalanceHandler {
public:
    virtual void on_assign(Consumer& consumer, const std::vector<TopicPartition>& partitions) = 0;
    virtual void on_revoke(Consumer& consumer, const std::vector<TopicPartition>& partitions) = 0;

protected:
    ~RebalanceHandler() = default;
};

class Consumer {
public:
    // `config` must contain bootstrap.servers; group.id is needed for subscribe().
    explicit Consumer(const KafkaConfig& config, RebalanceHandler* rebalance = nullptr);
    ~Consumer();  // close()s if still open
    Consumer(const Consumer&) = delete;
    Consumer& operator=(const Consumer&) = delete;

    void subscribe(const std::vector<std::string>& topics);
    void assign(const std::vector<TopicPartition>& partitions);
    void unassign();
    std::vector<TopicPartition> assignment() const;

    Message poll(std::chrono::milliseconds timeout);  // empty Message on timeout

    // Commits the given next-offsets to the group (async when `async`).
    void commit(const std::vector<TopicPartition>& offsets, bool async);
    void seek(const TopicPartition& tp, std::chrono::milliseconds timeout);
    // The group's committed next-offsets for `partitions` (OffsetFetch; the
    // consumer need not have joined the group). A partition the group has
    // no offset for comes back with kOffsetInvalid. Throws KafkaError.
    std::vector<TopicPartition> committed(const std::vector<TopicPartition>& partitions,
                                          std::chrono::milliseconds timeout);

    std::optional<int> partition_count(std::string_view topic, std::chrono::milliseconds timeout);
    // (low, high) watermarks from the broker.
    std::optional<std::pair<std::int64_t, std::int64_t>> watermarks(
        std::string_view topic, std::int32_t partition, std::chrono::milliseconds timeout);
    // The watermarks the last fetch responses carried: no broker round trip.
    // (A std::string: called per batch, it must not allocate to get a C string.)
    std::optional<std::pair<std::int64_t, std::int64_t>> cached_watermarks(
        const std::string& topic, std::int32_t partition) const;
    // Partition count of `topic` from a full metadata request (so asking never
    // creates a topic). nullopt with `error` saying why: the cluster cannot be
    // reached, or it has no such topic.
    std::optional<int> existing_topic_partitions(std::string_view topic,
                                                 std::chrono::milliseconds timeout,
                                                 std::string& error);

    void close();  // leaves the group cleanly

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Topic creation for real clusters (CreateTopics). The test broker creates
// its topics itself (see `meshhook broker`), since its CreateTopics does not answer.
struct NewTopic {
    std::string name;
    int partitions = 1;
    int replication_factor = -1;  // broker default
};
void create_topics(const KafkaConfig& config, const std::vector<NewTopic>& topics,
                   std::chrono::milliseconds timeout);

}  // namespace meshhook::common
