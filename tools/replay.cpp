// `meshhook replay`: move records from the DLQ (or the anomaly topic) back to
// mesh.transfer-events, after whatever made them fail has been fixed.
#include <openssl/evp.h>

#include <atomic>
#include <iostream>

#include "common/identifier.hpp"
#include "common/transfer_event.hpp"
#include "common/wire.hpp"
#include "tools/commands.hpp"
#include "tools/json_field.hpp"
#include "tools/topic_reader.hpp"
#include "tools/util.hpp"

namespace meshhook::tools {
namespace {

constexpr std::string_view kProgram = "meshhook replay";

std::optional<std::string> base64_decode(std::string_view in) {
    if (in.size() % 4 != 0) return std::nullopt;
    std::string out(in.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(in.data()),
                                  static_cast<int>(in.size()));
    if (n < 0) return std::nullopt;
    auto len = static_cast<std::size_t>(n);
    // EVP_DecodeBlock counts padding as zero bytes.
    if (!in.empty() && in.back() == '=') --len;
    if (in.size() > 1 && in[in.size() - 2] == '=') --len;
    out.resize(len);
    return out;
}

class Counter final : public common::DeliveryHandler {
public:
    void on_delivery(const common::DeliveryReport& report) noexcept override {
        if (report.ok()) {
            ok_.fetch_add(1);
        } else {
            failed_.fetch_add(1);
        }
    }
    int ok() const { return ok_.load(); }
    int failed() const { return failed_.load(); }

private:
    std::atomic<int> ok_{0};
    std::atomic<int> failed_{0};
};

// What goes back to the main topic for one source record, or why nothing can.
struct Replayable {
    std::string key;
    std::string value;
    std::string reason;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string not_replayable;  // non-empty: skipped, with this explanation
};

// The main topic is keyed by TransferId: a transfer's events share a
// partition, so the consumer sees them in order. A DLQ record is keyed by the
// delivery's `Id` (ingest had no usable TransferId, or refused the delivery
// for another reason), an anomaly record by the input record's key: keep that
// key only when the body names no usable TransferId.
void key_by_transfer_id(Replayable& r) {
    static thread_local common::TransferEventParser parser;
    const auto parsed = parser.parse(r.value);
    // A body that does not parse that far (truncated JSON) keeps its key: the
    // consumer records it as unparseable wherever it lands.
    const common::Field& id = parsed.event.transfer_id;
    if (id.has_value() && !id.value.empty() &&
        common::check_identifier(id.value) == common::IdentifierProblem::kNone) {
        r.key = std::string(id.value);
    }
}

Replayable from_record(const common::Message& msg, bool anomalies) {
    Replayable r;
    r.key = std::string(msg.key().value_or(""));
    for (const auto& h : msg.headers()) r.headers.emplace_back(h.key, h.value);
    if (!anomalies) {
        // The DLQ holds the delivery's exact bytes and ingest's headers.
        r.value = std::string(msg.value());
        r.reason = std::string(msg.header(wire::kHeaderReason).value_or(""));
        key_by_transfer_id(r);
        return r;
    }
    // Anomaly records describe; only "unparseable" ones carry the event's bytes.
    r.reason =
        json_field(msg.value(), "reason").value_or(json_field(msg.value(), "kind").value_or(""));
    const auto raw = json_field(msg.value(), "rawBase64");
    if (!raw) {
        r.not_replayable = "a " + json_field(msg.value(), "kind").value_or(std::string("?")) +
                           " anomaly carries no event body";
        return r;
    }
    auto body = base64_decode(*raw);
    if (!body) {
        r.not_replayable = "rawBase64 is not valid base64";
        return r;
    }
    r.value = std::move(*body);
    key_by_transfer_id(r);
    if (!msg.header(wire::kHeaderEnvironment)) {
        if (auto env = json_field(msg.value(), "environment"))
            r.headers.emplace_back(wire::kHeaderEnvironment, *env);
    }
    return r;
}

}  // namespace

int replay_main(int argc, const char* const* argv) {
    common::Settings settings(
        std::string(kProgram),
        "moves records from the DLQ (or the anomaly topic) back to mesh.transfer-events,\n"
        "all or filtered by key, time and reason. Run with --dry-run first.\n\n"
        "  meshhook replay --brokers HOST:PORT [--from dlq|anomalies] [--key K] [--reason R]\n"
        "                  [--since TIME] [--until TIME] [--dry-run]\n\n"
        "A replayed record is keyed by its body's TransferId (the source record's key when\n"
        "the body names none), keeps its headers and gets `replayed-at` (UTC) and\n"
        "`replayed-from` (topic[partition]@offset). From the anomaly topic the\n"
        "`unparseable`, `unusable_identifier` and `unapplicable_record` anomalies can be\n"
        "replayed (they carry the body); others are listed and skipped. TIME is RFC 3339 UTC "
        "(2026-11-28T10:00:00Z) or epoch milliseconds;\n"
        "--since is inclusive, --until exclusive. The source is read up to its end as at\n"
        "start; nothing is deleted from it.");
    common::declare_brokers(settings)
        .add({"from", "", "dlq", "dlq | anomalies"})
        .add({"source", "", "",
              "source topic (default: " + std::string(wire::kDeadLetterTopic) + " or " +
                  std::string(wire::kAnomaliesTopic) + ")"})
        .add({"to", "KAFKA_TOPIC", std::string(wire::kTransferEventsTopic), "destination topic"})
        .add({"key", "", "", "only records with this key (the TransferId they are replayed with)"})
        .add({"reason", "", "",
              "only records with this reason (DLQ header `reason`, anomaly reason or kind)"})
        .add({"since", "", "", "only records at or after this time"})
        .add({"until", "", "", "only records before this time"})
        .add({"dry-run", "", "", "list what would be replayed, produce nothing", false, true})
        .add({"timeout-ms", "", "10000", "how long to wait for the brokers"});
    common::declare_client_properties(settings);
    if (auto code = parse_or_exit(settings, kProgram, argc, argv)) return *code;

    std::string source;
    std::optional<std::int64_t> since;
    std::optional<std::int64_t> until;
    std::chrono::milliseconds timeout{};
    bool anomalies = false;
    common::KafkaConfig kafka;
    try {
        if (!settings.positional().empty()) {
            throw common::ConfigError("unexpected argument '" + settings.positional().front() +
                                      "'");
        }
        common::bootstrap_servers(settings);
        kafka = common::client_properties(settings);
        const auto& from = settings.get("from");
        if (from != "dlq" && from != "anomalies") {
            throw common::ConfigError("--from: expected dlq or anomalies, got \"" + from + "\"");
        }
        anomalies = from == "anomalies";
        source = settings.get("source");
        if (source.empty()) {
            source = std::string(anomalies ? wire::kAnomaliesTopic : wire::kDeadLetterTopic);
        }
        if (source == settings.get("to"))
            throw common::ConfigError("--source and --to are the same topic");
        for (const char* flag : {"since", "until"}) {
            if (settings.get(flag).empty()) continue;
            auto t = parse_time_ms(settings.get(flag));
            if (!t) {
                throw common::ConfigError(
                    std::string("--") + flag +
                    ": expected RFC 3339 UTC (2026-11-28T10:00:00Z) or epoch ms, got \"" +
                    settings.get(flag) + "\"");
            }
            (std::string_view(flag) == "since" ? since : until) = t;
        }
        timeout = std::chrono::milliseconds(
            common::parse_uint("--timeout-ms", settings.get("timeout-ms"), 1, 600000));
    } catch (const common::ConfigError& e) {
        std::cerr << kProgram << ": " << e.what() << std::endl;
        return 2;
    }
    const bool dry_run = settings.is_set("dry-run");
    const auto& brokers = settings.get("brokers");
    const auto& destination = settings.get("to");
    const auto& key_filter = settings.get("key");
    const auto& reason_filter = settings.get("reason");

    try {
        TopicReader reader(brokers, source, false, timeout, kafka);
        {
            // The destination must exist: producing to a missing topic would
            // fail late (or auto-create it on a permissive cluster).
            common::Consumer probe(reader_config(brokers, kafka));
            std::string error;
            if (!topic_partitions(probe, brokers, destination, timeout, error))
                return fail(kProgram, error);
        }
        std::unique_ptr<common::Producer> producer;
        if (!dry_run) {
            common::KafkaConfig producer_config{{"bootstrap.servers", brokers}, {"log_level", "0"}};
            producer_config.insert(producer_config.end(), kafka.begin(), kafka.end());
            producer = std::make_unique<common::Producer>(producer_config);
        }
        Counter counter;
        std::size_t scanned = 0;
        std::size_t matched = 0;
        std::size_t skipped = 0;
        int enqueued = 0;
        const std::string replayed_at = format_utc_ms(now_ms());
        auto last_progress = std::chrono::steady_clock::now();
        while (!reader.caught_up()) {
            auto msg = reader.next(std::chrono::milliseconds(200));
            if (!msg) {
                if (std::chrono::steady_clock::now() - last_progress > timeout) {
                    return fail(kProgram, "no records from " + brokers + " for " +
                                              std::to_string(timeout.count()) +
                                              " ms before the end of " + source);
                }
                continue;
            }
            last_progress = std::chrono::steady_clock::now();
            ++scanned;
            auto r = from_record(msg, anomalies);
            if (!key_filter.empty() && r.key != key_filter) continue;
            if (!reason_filter.empty() && r.reason != reason_filter) continue;
            if (since && msg.timestamp_ms() < *since) continue;
            if (until && msg.timestamp_ms() >= *until) continue;
            const std::string where = std::string(msg.topic()) + "[" +
                                      std::to_string(msg.partition()) + "]@" +
                                      std::to_string(msg.offset());
            const std::string line =
                where + " key=" + (r.key.empty() ? "(none)" : r.key) +
                " reason=" + (r.reason.empty() ? "(none)" : r.reason) +
                (msg.timestamp_ms() >= 0 ? " at " + format_utc_ms(msg.timestamp_ms()) : "");
            if (!r.not_replayable.empty()) {
                ++skipped;
                std::cout << "skip    " << line << ": " << r.not_replayable << "\n";
                continue;
            }
            ++matched;
            std::cout << (dry_run ? "would   " : "replay  ") << line << "\n";
            if (dry_run) continue;
            r.headers.emplace_back(wire::kHeaderReplayedAt, replayed_at);
            r.headers.emplace_back(wire::kHeaderReplayedFrom, where);
            std::vector<common::Header> headers;
            for (const auto& [k, v] : r.headers) headers.push_back({k, v});
            common::ProduceStatus status;
            // QUEUE_FULL is back-pressure: wait for reports, then try again.
            while ((status = producer->produce(destination, r.key, r.value, headers, &counter)) ==
                   common::ProduceStatus::kQueueFull) {
                producer->flush(std::chrono::milliseconds(100));
            }
            if (status != common::ProduceStatus::kEnqueued) {
                return fail(kProgram, "cannot produce to " + destination + ": " +
                                          std::string(common::to_string(status)) + " (" +
                                          std::to_string(counter.ok()) + " replayed before)");
            }
            ++enqueued;
        }
        std::cout.flush();
        if (dry_run) {
            std::cout << "dry run: " << matched << " of " << scanned << " record(s) in " << source
                      << " would be replayed to " << destination;
            if (skipped > 0) std::cout << ", " << skipped << " cannot be";
            std::cout << std::endl;
            return 0;
        }
        const int left = producer->flush(timeout);
        if (left > 0 || counter.failed() > 0 || counter.ok() != enqueued) {
            return fail(
                kProgram,
                std::to_string(counter.ok()) + " of " + std::to_string(enqueued) +
                    " record(s) confirmed by " + brokers + "; " +
                    std::to_string(counter.failed() + left) +
                    " not (they may or may not have arrived: the consumer dedups a second replay)");
        }
        std::cout << "replayed " << counter.ok() << " of " << scanned << " record(s) from "
                  << source << " to " << destination;
        if (skipped > 0) std::cout << ", " << skipped << " skipped";
        std::cout << std::endl;
        return 0;
    } catch (const std::exception& e) {
        return fail(kProgram, e.what());
    }
}

}  // namespace meshhook::tools
