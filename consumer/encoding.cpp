#include "consumer/encoding.hpp"

#include <openssl/sha.h>

#include <array>
#include <cstdio>
#include <ctime>
#include <optional>
#include <utility>

#include "common/log.hpp"
#include "common/transfer_event.hpp"

namespace meshhook::consumer {

namespace {

// A flat JSON object writer; strings escaped by common::append_json_escaped.
class JsonObject {
public:
    JsonObject() { out_ = "{"; }
    JsonObject& str(std::string_view key, std::string_view value) {
        name(key);
        out_ += '"';
        common::append_json_escaped(out_, value);
        out_ += '"';
        return *this;
    }
    JsonObject& str_or_null(std::string_view key, std::string_view value) {
        if (value.empty()) {
            return raw(key, "null");
        }
        return str(key, value);
    }
    JsonObject& opt(std::string_view key, const std::optional<std::string>& value) {
        if (value) {
            return str(key, *value);
        }
        name(key);
        out_ += "null";
        return *this;
    }
    JsonObject& raw(std::string_view key, std::string_view json) {
        name(key);
        out_ += json;
        return *this;
    }
    std::string done() {
        out_ += '}';
        return std::move(out_);
    }

private:
    void name(std::string_view key) {
        if (out_.size() > 1) {
            out_ += ',';
        }
        out_ += '"';
        common::append_json_escaped(out_, key);
        out_ += "\":";
    }
    std::string out_;
};

// Timestamp first, then SentTimestamp; each in seconds or milliseconds by
// its magnitude (common::unix_ms_by_magnitude), null when neither is a time.
std::optional<std::string> occurred_at(const TransferEvent& event) {
    for (const auto& value : {event.timestamp_ms, event.sent_timestamp}) {
        if (!value) {
            continue;
        }
        if (const auto ms = common::unix_ms_by_magnitude(*value)) {
            return iso8601_utc_ms(*ms);
        }
    }
    return std::nullopt;
}

void credit_fields(JsonObject& json, const TransferEvent& event) {
    json.str("transferId", event.transfer_id)
        .str("environment", event.environment)
        .opt("userId", event.user_id)
        .opt("transactionId", event.transaction_id)
        .opt("token", event.token)
        .opt("chain", event.chain)
        .opt("amount", event.destination_amount)
        .opt("destinationAddress", event.destination_address)
        .opt("txHash", event.tx_hash)
        .opt("sourceAccountProvider", event.source_account_provider)
        .str("eventId", event.event_id)
        .opt("occurredAt", occurred_at(event));
}

// A review record's common part; the caller may add fields before done().
JsonObject review_json(std::string_view key, std::string_view reason, const TransferEvent& event) {
    JsonObject json;
    json.str("reviewId", name_uuid(key)).str("idempotencyKey", key).str("reason", reason);
    credit_fields(json, event);
    return json;
}

void changes_json(JsonObject& json, const std::vector<FieldChange>& changes) {
    std::string array = "[";
    for (const FieldChange& c : changes) {
        JsonObject item;
        item.str("field", c.name).str_or_null("first", c.first).str("later", c.later);
        if (array.size() > 1) {
            array += ',';
        }
        array += item.done();
    }
    array += ']';
    json.raw("fields", array);
}

// The start of an anomaly about one transfer (kind, environment, transferId);
// the caller adds its fields, then finish_transfer_anomaly.
JsonObject transfer_anomaly(AnomalyRecord& a, std::string_view kind, const TransferEvent& event) {
    a.kind = std::string(kind);
    a.environment = event.environment;
    a.transfer_id = event.transfer_id;
    JsonObject json;
    json.str("kind", a.kind)
        .str("environment", event.environment)
        .str("transferId", event.transfer_id);
    return json;
}

// Finishes it under `anomaly:<kind>:<environment>:<TransferId>:<which>` (one
// per distinct `which`).
AnomalyRecord finish_transfer_anomaly(AnomalyRecord a, JsonObject& json, std::string_view which) {
    a.detail = json.done();
    a.dedup_key =
        "anomaly:" + a.kind + ":" + a.environment + ":" + a.transfer_id + ":" + std::string(which);
    return a;
}

// `anomaly:<kind>:<topic>:<partition>:<offset>`: one anomaly per input record.
std::string record_anomaly_key(std::string_view kind, std::string_view topic,
                               std::int32_t partition, std::int64_t offset) {
    return "anomaly:" + std::string(kind) + ":" + std::string(topic) + ":" +
           std::to_string(partition) + ":" + std::to_string(offset);
}

// A key part for records about one later event: its EventId plus what it
// said, so a retry (same EventId, same content) is one record, and anything
// else a new one. Hashed: the values are untrusted and unbounded in length.
std::string event_digest(const TransferEvent& event, const std::vector<FieldChange>& changes) {
    std::string text = event.event_id;
    for (const FieldChange& c : changes) {
        text += '\n';
        text += c.name;
        text += '=';
        text += c.later;
    }
    return name_uuid(text);
}

}  // namespace

std::string credit_idempotency_key(std::string_view environment, std::string_view transfer_id) {
    std::string key = "credit:";
    key += environment;
    key += ':';
    key += transfer_id;
    return key;
}

std::string review_key(std::string_view environment, std::string_view transfer_id,
                       std::string_view which) {
    std::string key = "review:";
    key += environment;
    key += ':';
    key += transfer_id;
    if (!which.empty()) {
        key += ':';
        key += which;
    }
    return key;
}

std::string review_update_key(const TransferEvent& event, const std::vector<FieldChange>& changes) {
    return "review-update:" + event.environment + ":" + event.transfer_id + ":" +
           event_digest(event, changes);
}

std::string encode_credit_command(const TransferEvent& event) {
    const std::string key = credit_idempotency_key(event.environment, event.transfer_id);
    JsonObject json;
    json.str("commandId", name_uuid(key)).str("idempotencyKey", key);
    credit_fields(json, event);
    return json.done();
}

std::string encode_review_record(const TransferEvent& event, std::string_view reason) {
    return review_json(review_key(event.environment, event.transfer_id), reason, event).done();
}

std::string encode_review_update(const TransferEvent& event, std::string_view key,
                                 std::string_view first_reason, std::string_view event_reason,
                                 const std::vector<FieldChange>& changes) {
    JsonObject json = review_json(key, kReasonReviewUpdate, event);
    json.str("updateOf", review_key(event.environment, event.transfer_id))
        .str("firstReason", first_reason)
        .str_or_null("eventReason", event_reason);
    changes_json(json, changes);
    return json.done();
}

std::string encode_after_credit_review(const TransferEvent& event, std::string_view key,
                                       std::string_view kind, const TransferRow& current) {
    JsonObject review = review_json(key, kind, event);
    review.str("eventStatus", event.status_text)
        .str("creditEventId", current.credit_event_id)
        .str_or_null("creditedAmount", current.amount);
    return review.done();
}

AnomalyRecord conflict_anomaly(const TransferRow& current, const TransferEvent& event) {
    AnomalyRecord a;
    JsonObject json = transfer_anomaly(a, kAnomalyConflict, event);
    json.str("currentStatus", current.status)
        .str("eventStatus", common::to_string(event.status))
        .str("eventId", event.event_id)
        .raw("credited", current.credited ? "true" : "false")
        .opt("occurredAt", occurred_at(event));
    // Mesh's retries of the contradicting event share its EventId: one anomaly.
    return finish_transfer_anomaly(std::move(a), json,
                                   event.event_id.empty() ? event.status_text : event.event_id);
}

AnomalyRecord fields_disagree_anomaly(const TransferRow& current, const TransferEvent& event,
                                      const std::vector<FieldChange>& contradictions) {
    AnomalyRecord a;
    JsonObject json = transfer_anomaly(a, kAnomalySucceededFieldsDisagree, event);
    json.str("firstEventId", current.credit_event_id)
        .str("eventId", event.event_id)
        .raw("credited", current.credited ? "true" : "false")
        .str_or_null("reviewReason", current.review_reason);
    changes_json(json, contradictions);
    json.opt("occurredAt", occurred_at(event));
    return finish_transfer_anomaly(std::move(a), json, event_digest(event, contradictions));
}

AnomalyRecord after_credit_anomaly(std::string_view kind, const TransferRow& current,
                                   const TransferEvent& event, std::string_view which) {
    AnomalyRecord a;
    JsonObject json = transfer_anomaly(a, kind, event);
    json.str("eventStatus", event.status_text)
        .str("eventId", event.event_id)
        .str("creditEventId", current.credit_event_id)
        .str_or_null("creditedAmount", current.amount)
        .opt("occurredAt", occurred_at(event));
    return finish_transfer_anomaly(std::move(a), json, which);
}

std::string name_uuid(std::string_view name) {
    std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
    SHA256(reinterpret_cast<const unsigned char*>(name.data()), name.size(), digest.data());
    digest[6] = static_cast<unsigned char>((digest[6] & 0x0fU) | 0x80U);
    digest[8] = static_cast<unsigned char>((digest[8] & 0x3fU) | 0x80U);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (std::size_t i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out += '-';
        }
        out += kHex[digest[i] >> 4U];
        out += kHex[digest[i] & 0x0fU];
    }
    return out;
}

std::string iso8601_utc_ms(std::int64_t ms) {
    std::int64_t seconds = ms / 1000;
    std::int64_t millis = ms % 1000;
    if (millis < 0) {
        millis += 1000;
        seconds -= 1;
    }
    const auto t = static_cast<std::time_t>(seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    std::array<char, 40> buf{};
    const auto n = std::snprintf(buf.data(), buf.size(), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                 tm.tm_min, tm.tm_sec, static_cast<int>(millis));
    return std::string(buf.data(), static_cast<std::size_t>(n));
}

std::string base64_encode(std::string_view bytes) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        const auto v = (static_cast<unsigned>(static_cast<unsigned char>(bytes[i])) << 16U) |
                       (static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 1])) << 8U) |
                       static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 2]));
        out += kAlphabet[(v >> 18U) & 63U];
        out += kAlphabet[(v >> 12U) & 63U];
        out += kAlphabet[(v >> 6U) & 63U];
        out += kAlphabet[v & 63U];
    }
    const std::size_t rest = bytes.size() - i;
    if (rest > 0) {
        unsigned v = static_cast<unsigned>(static_cast<unsigned char>(bytes[i])) << 16U;
        if (rest == 2) {
            v |= static_cast<unsigned>(static_cast<unsigned char>(bytes[i + 1])) << 8U;
        }
        out += kAlphabet[(v >> 18U) & 63U];
        out += kAlphabet[(v >> 12U) & 63U];
        out += rest == 2 ? kAlphabet[(v >> 6U) & 63U] : '=';
        out += '=';
    }
    return out;
}

AnomalyRecord unparseable_anomaly(std::string_view environment, std::string_view topic,
                                  std::int32_t partition, std::int64_t offset,
                                  std::string_view reason, std::string_view raw) {
    AnomalyRecord a;
    a.kind = std::string(kAnomalyUnparseable);
    a.environment =
        environment.empty() ? std::string(kDefaultEnvironment) : std::string(environment);
    JsonObject json;
    json.str("kind", a.kind)
        .str("environment", a.environment)
        .str("reason", reason)
        .str("sourceTopic", topic)
        .raw("sourcePartition", std::to_string(partition))
        .raw("sourceOffset", std::to_string(offset))
        .str("rawBase64", base64_encode(raw));
    a.detail = json.done();
    a.dedup_key = record_anomaly_key(a.kind, topic, partition, offset);
    return a;
}

namespace {

// Where the record came from, and its bytes (any bytes survive base64): the
// end of every anomaly about one input record, which is its dedup key.
void finish_record_anomaly(AnomalyRecord& a, JsonObject& json, std::string_view topic,
                           std::int32_t partition, std::int64_t offset, std::string_view key,
                           std::string_view raw) {
    json.str("sourceTopic", topic)
        .raw("sourcePartition", std::to_string(partition))
        .raw("sourceOffset", std::to_string(offset))
        .str("keyBase64", base64_encode(key))
        .str("rawBase64", base64_encode(raw));
    a.detail = json.done();
    a.dedup_key = record_anomaly_key(a.kind, topic, partition, offset);
}

// A store's message may quote the data it refused: keep it one bounded line
// of printable ASCII, so that the anomaly row cannot be refused in turn.
std::string printable(std::string_view text) {
    std::string out;
    for (const char c : text.substr(0, 512)) {
        const auto u = static_cast<unsigned char>(c);
        out += (u >= 0x20 && u < 0x7F) ? c : '?';
    }
    return out;
}

}  // namespace

AnomalyRecord unusable_identifier_anomaly(std::string_view environment, std::string_view topic,
                                          std::int32_t partition, std::int64_t offset,
                                          std::string_view field, std::string_view problem,
                                          std::string_view key, std::string_view raw) {
    AnomalyRecord a;
    a.kind = std::string(kAnomalyUnusableIdentifier);
    a.environment = std::string(environment);
    JsonObject json;
    json.str("kind", a.kind)
        .str_or_null("environment", environment)
        .str("field", field)
        .str("reason", problem);
    finish_record_anomaly(a, json, topic, partition, offset, key, raw);
    return a;
}

AnomalyRecord unapplicable_anomaly(std::string_view environment, std::string_view transfer_id,
                                   std::string_view topic, std::int32_t partition,
                                   std::int64_t offset, std::string_view error,
                                   std::string_view key, std::string_view raw) {
    AnomalyRecord a;
    a.kind = std::string(kAnomalyUnapplicableRecord);
    a.environment =
        environment.empty() ? std::string(kDefaultEnvironment) : std::string(environment);
    a.transfer_id = std::string(transfer_id);
    JsonObject json;
    json.str("kind", a.kind)
        .str("environment", a.environment)
        .str_or_null("transferId", transfer_id)
        .str("error", printable(error));
    finish_record_anomaly(a, json, topic, partition, offset, key, raw);
    return a;
}

}  // namespace meshhook::consumer
