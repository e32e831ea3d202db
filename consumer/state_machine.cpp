#include "consumer/state_machine.hpp"

#include <openssl/sha.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "common/config.hpp"
#include "common/identifier.hpp"
#include "common/log.hpp"

namespace meshhook::consumer {

namespace {

using common::TransferStatus;

std::optional<std::string> owned(const common::Field& field) {
    if (!field.has_value()) {
        return std::nullopt;
    }
    return std::string(field.value);
}

std::string upper(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

std::string trim(std::string_view text) {
    std::size_t b = 0;
    std::size_t e = text.size();
    while (b < e && std::isspace(static_cast<unsigned char>(text[b])) != 0) {
        ++b;
    }
    while (e > b && std::isspace(static_cast<unsigned char>(text[e - 1])) != 0) {
        --e;
    }
    return std::string(text.substr(b, e - b));
}

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

TransferRow new_row(const TransferEvent& event, std::int64_t now_ms) {
    TransferRow row;
    row.environment = event.environment;
    row.transfer_id = event.transfer_id;
    row.first_seen_ms = now_ms;
    row.last_seen_ms = now_ms;
    return row;
}

void copy_credit_fields(TransferRow& row, const TransferEvent& event) {
    row.user_id = event.user_id.value_or("");
    row.transaction_id = event.transaction_id.value_or("");
    row.token = event.token.value_or("");
    row.chain = event.chain.value_or("");
    row.amount = event.destination_amount.value_or("");
    row.destination_address = event.destination_address.value_or("");
    row.tx_hash = event.tx_hash.value_or("");
    row.source_account_provider = event.source_account_provider.value_or("");
    row.credit_event_id = event.event_id;
}

// A field the ledger books with: present, and text a ledger can key on
// (usable as an identifier: UTF-8, no control characters, at most 256 bytes,
// no surrounding whitespace, which would name another account or asset).
std::optional<std::string_view> field_reason(const std::optional<std::string>& value,
                                             std::string_view missing, std::string_view malformed) {
    if (!value || value->empty()) {
        return missing;
    }
    const auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
    if (common::check_identifier(*value) != common::IdentifierProblem::kNone ||
        space(value->front()) || space(value->back())) {
        return malformed;
    }
    return std::nullopt;
}

// The credit fields two succeeded deliveries of one transfer must agree on.
struct CreditField {
    std::string_view name;
    std::string TransferRow::*row;
    std::optional<std::string> TransferEvent::*event;
};
constexpr std::array<CreditField, 5> kCreditFields{{
    {"userId", &TransferRow::user_id, &TransferEvent::user_id},
    {"token", &TransferRow::token, &TransferEvent::token},
    {"chain", &TransferRow::chain, &TransferEvent::chain},
    {"amount", &TransferRow::amount, &TransferEvent::destination_amount},
    {"destinationAddress", &TransferRow::destination_address, &TransferEvent::destination_address},
}};

struct FieldChange {
    std::string_view name;
    std::string first;  // "" = the first succeeded did not carry it
    std::string later;
};

// Fields the later event carries with another value than the row's (the
// first succeeded's). Compared byte for byte: "250.0" and "250.00" differ,
// as they would to a ledger comparing text.
std::vector<FieldChange> changed_fields(const TransferRow& row, const TransferEvent& event) {
    std::vector<FieldChange> out;
    for (const CreditField& f : kCreditFields) {
        const std::optional<std::string>& later = event.*(f.event);
        if (later && !later->empty() && *later != row.*(f.row)) {
            out.push_back({f.name, row.*(f.row), *later});
        }
    }
    return out;
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

std::string lower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

std::string review_key(const TransferEvent& event) {
    return "review:" + event.environment + ":" + event.transfer_id;
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
// the caller adds its fields, then emit_anomaly.
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
// per distinct `which`) and puts it, and its record for the topic, in `d`.
void emit_anomaly(Decision& d, AnomalyRecord a, JsonObject& json, std::string_view which,
                  const Topics& topics) {
    a.detail = json.done();
    a.dedup_key =
        "anomaly:" + a.kind + ":" + a.environment + ":" + a.transfer_id + ":" + std::string(which);
    d.outbox.push_back({topics.anomalies, a.transfer_id, a.detail, a.dedup_key});
    d.anomaly = std::move(a);
}

// A second succeeded for a transfer whose first decision is made: that
// decision stands. Contradicting values are an anomaly; on a transfer in
// review, a delivery that adds or changes a field is sent to the review topic.
void later_succeeded(Decision& d, const TransferRow& current, const TransferEvent& event,
                     const Policy& policy, const Topics& topics) {
    const std::vector<FieldChange> changes = changed_fields(current, event);
    if (changes.empty()) {
        return;  // a retry, or a delivery that carries less: nothing new
    }
    std::vector<FieldChange> contradictions;
    for (const FieldChange& c : changes) {
        if (!c.first.empty()) {
            contradictions.push_back(c);
        }
    }
    if (!contradictions.empty()) {
        AnomalyRecord a;
        JsonObject json = transfer_anomaly(a, kAnomalySucceededFieldsDisagree, event);
        json.str("firstEventId", current.credit_event_id)
            .str("eventId", event.event_id)
            .raw("credited", current.credited ? "true" : "false")
            .str_or_null("reviewReason", current.review_reason);
        changes_json(json, contradictions);
        json.opt("occurredAt", occurred_at(event));
        emit_anomaly(d, std::move(a), json, event_digest(event, contradictions), topics);
    }
    if (!current.credited && !current.review_reason.empty()) {
        const std::string key = "review-update:" + event.environment + ":" + event.transfer_id +
                                ":" + event_digest(event, changes);
        JsonObject json = review_json(key, kReasonReviewUpdate, event);
        const auto verdict = policy.review_reason(event);
        json.str("updateOf", review_key(event))
            .str("firstReason", current.review_reason)
            .str_or_null("eventReason", verdict ? *verdict : std::string_view());
        changes_json(json, changes);
        d.outbox.push_back({topics.reviews, event.transfer_id, json.done(), key});
        d.review_reason = kReasonReviewUpdate;
    }
}

// A status beyond the four for a transfer already credited: the credit
// stands (nothing here ever debits); a human hears of it twice over, as an
// anomaly and as a review record (one each per EventId).
void unknown_after_credit(Decision& d, const TransferRow& current, const TransferEvent& event,
                          const Topics& topics) {
    const bool refund = lower(event.status_text).starts_with("refund");
    const std::string_view kind =
        refund ? kAnomalyRefundAfterCredit : kAnomalyUnknownStatusAfterCredit;
    const std::string which =
        event.event_id.empty() ? name_uuid(event.status_text) : event.event_id;
    AnomalyRecord a;
    JsonObject json = transfer_anomaly(a, kind, event);
    json.str("eventStatus", event.status_text)
        .str("eventId", event.event_id)
        .str("creditEventId", current.credit_event_id)
        .str_or_null("creditedAmount", current.amount)
        .opt("occurredAt", occurred_at(event));
    emit_anomaly(d, std::move(a), json, which, topics);

    const std::string key = review_key(event) + ":" + std::string(kind) + ":" + which;
    JsonObject review = review_json(key, kind, event);
    review.str("eventStatus", event.status_text)
        .str("creditEventId", current.credit_event_id)
        .str_or_null("creditedAmount", current.amount);
    d.outbox.push_back({topics.reviews, event.transfer_id, review.done(), key});
    d.review_reason = kind;
}

AnomalyRecord conflict_anomaly(const TransferRow& current, const TransferEvent& event) {
    AnomalyRecord a;
    a.kind = "conflict";
    a.environment = event.environment;
    a.transfer_id = event.transfer_id;
    JsonObject json;
    json.str("kind", a.kind)
        .str("environment", event.environment)
        .str("transferId", event.transfer_id)
        .str("currentStatus", current.status)
        .str("eventStatus", common::to_string(event.status))
        .str("eventId", event.event_id)
        .raw("credited", current.credited ? "true" : "false")
        .opt("occurredAt", occurred_at(event));
    a.detail = json.done();
    // Mesh's retries of the contradicting event share its EventId: one anomaly.
    a.dedup_key = "anomaly:conflict:" + event.environment + ":" + event.transfer_id + ":" +
                  (event.event_id.empty() ? event.status_text : event.event_id);
    return a;
}

}  // namespace

std::string_view to_string(Outcome o) {
    switch (o) {
        case Outcome::kApplied: return "applied";
        case Outcome::kDuplicate: return "duplicate";
        case Outcome::kStale: return "stale";
        case Outcome::kUnknownStatus: return "unknown_status";
        case Outcome::kConflict: return "conflict";
        case Outcome::kUnparseable: return "unparseable";
        case Outcome::kUnusableIdentifier: return "unusable_identifier";
        case Outcome::kUnapplicable: return "unapplicable";
    }
    return "unknown";
}

TransferEvent TransferEvent::from_view(const common::TransferEventView& view,
                                       std::string_view environment) {
    TransferEvent e;
    if (!environment.empty()) {
        e.environment = std::string(environment);
    }
    e.transfer_id = std::string(view.transfer_id.value);
    e.event_id = std::string(view.event_id.value);
    e.status_text = std::string(view.transfer_status.value);
    e.status = view.status;
    e.user_id = owned(view.user_id);
    e.transaction_id = owned(view.transaction_id);
    e.token = owned(view.token);
    e.chain = owned(view.chain);
    e.destination_amount = owned(view.destination_amount);
    e.destination_address = owned(view.destination_address);
    e.tx_hash = owned(view.tx_hash);
    e.source_account_provider = owned(view.source_account_provider);
    if (view.timestamp.has_value()) {
        e.timestamp_ms = view.timestamp_value;
    }
    if (view.sent_timestamp.has_value()) {
        e.sent_timestamp = view.sent_timestamp_value;
    }
    return e;
}

void Policy::allow_asset(std::string_view token, std::string_view chain) {
    assets_.emplace(upper(token), upper(chain));
}

void Policy::allow_destination(std::string_view environment, std::string_view address) {
    destinations_configured_ = true;
    destinations_.emplace(std::string(environment), std::string(address));
}

void Policy::parse_allowed_assets(std::string_view setting, std::string_view text) {
    for (const std::string& item : common::split_list(text, ',')) {
        const auto colon = item.find(':');
        if (colon == std::string::npos || item.find(':', colon + 1) != std::string::npos) {
            throw common::ConfigError(std::string(setting) + ": '" + item + "' is not TOKEN:CHAIN");
        }
        const std::string token = trim(std::string_view(item).substr(0, colon));
        const std::string chain = trim(std::string_view(item).substr(colon + 1));
        if (token.empty() || chain.empty()) {
            throw common::ConfigError(std::string(setting) + ": '" + item + "' is not TOKEN:CHAIN");
        }
        allow_asset(token, chain);
    }
}

void Policy::load_destination_file(std::string_view setting, const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        throw common::ConfigError(std::string(setting) + ": cannot read '" + path + "'");
    }
    require_destination_list();
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
        ++number;
        const auto hash = line.find('#');
        const std::string content = trim(std::string_view(line).substr(0, hash));
        if (content.empty()) {
            continue;
        }
        std::istringstream fields(content);
        std::string environment;
        std::string address;
        std::string extra;
        if (!(fields >> environment >> address) || (fields >> extra)) {
            throw common::ConfigError(std::string(setting) + ": line " + std::to_string(number) +
                                      " of '" + path + "' is not '<environment> <address>'");
        }
        allow_destination(environment, address);
    }
}

std::optional<std::string_view> credit_field_reason(const TransferEvent& event) {
    if (auto r = field_reason(event.user_id, kReasonUserMissing, kReasonUserMalformed)) {
        return r;
    }
    if (auto r = field_reason(event.token, kReasonAssetMissing, kReasonAssetMalformed)) {
        return r;
    }
    if (auto r = field_reason(event.chain, kReasonChainMissing, kReasonChainMalformed)) {
        return r;
    }
    if (!event.destination_amount || event.destination_amount->empty()) {
        return kReasonAmountMissing;
    }
    // The command carries a decimal string: exponent forms (1e3) are JSON
    // numbers, not what a ledger parses as an amount.
    if (!common::is_json_number(*event.destination_amount) ||
        event.destination_amount->find_first_of("eE") != std::string::npos) {
        return kReasonAmountMalformed;
    }
    return field_reason(event.destination_address, kReasonDestinationMissing,
                        kReasonDestinationMalformed);
}

std::optional<std::string_view> Policy::review_reason(const TransferEvent& event) const {
    if (auto incomplete = credit_field_reason(event)) {
        return incomplete;
    }
    if (!assets_.empty()) {
        if (!event.token || !event.chain ||
            !assets_.contains({upper(*event.token), upper(*event.chain)})) {
            return kReasonAssetNotAllowed;
        }
    }
    if (screen_) {
        if (const auto reason = screen_->review_reason(event)) return reason;
    }
    if (destinations_configured_) {
        if (!event.destination_address ||
            !destinations_.contains({event.environment, *event.destination_address})) {
            return kReasonDestinationNotAllowed;
        }
    }
    if (!common::is_positive_decimal(*event.destination_amount)) {
        return kReasonAmountNotPositive;
    }
    return std::nullopt;
}

Decision decide(const std::optional<TransferRow>& current, const TransferEvent& event,
                const Policy& policy, const Topics& topics, std::int64_t now_ms) {
    Decision d;
    if (event.status == TransferStatus::kUnknown) {
        // Kept on the row for operators, counted, never credited, never advances.
        TransferRow row = current ? *current : new_row(event, now_ms);
        row.last_unknown_status = event.status_text;
        row.last_event_id = event.event_id;
        row.last_seen_ms = now_ms;
        d.outcome = Outcome::kUnknownStatus;
        if (current && current->credited) {
            unknown_after_credit(d, *current, event, topics);
        }
        d.row = std::move(row);
        return d;
    }

    const int rank = common::status_rank(event.status);
    const std::string_view status = common::to_string(event.status);
    if (current && current->rank > 0) {
        if (rank < current->rank) {
            d.outcome = Outcome::kStale;
            return d;
        }
        if (rank == current->rank) {
            if (current->status == status) {
                d.outcome = Outcome::kDuplicate;
                if (event.status == TransferStatus::kSucceeded) {
                    later_succeeded(d, *current, event, policy, topics);
                }
                return d;
            }
            // Equal rank and a different status: succeeded vs failed.
            d.outcome = Outcome::kConflict;
            AnomalyRecord anomaly = conflict_anomaly(*current, event);
            d.outbox.push_back(
                {topics.anomalies, event.transfer_id, anomaly.detail, anomaly.dedup_key});
            d.anomaly = std::move(anomaly);
            TransferRow row = *current;
            row.conflict_status = std::string(status);
            row.last_seen_ms = now_ms;
            d.row = std::move(row);
            return d;
        }
    }

    TransferRow row = current ? *current : new_row(event, now_ms);
    row.status = std::string(status);
    row.rank = rank;
    row.last_event_id = event.event_id;
    row.last_seen_ms = now_ms;
    d.outcome = Outcome::kApplied;
    if (event.status == TransferStatus::kSucceeded) {
        copy_credit_fields(row, event);
        if (const auto reason = policy.review_reason(event)) {
            row.review_reason = std::string(*reason);
            d.review_reason = *reason;
            d.outbox.push_back({topics.reviews, event.transfer_id,
                                encode_review_record(event, *reason), review_key(event)});
        } else {
            row.credited = true;
            d.credit = true;
            d.outbox.push_back({topics.credits, event.transfer_id, encode_credit_command(event),
                                credit_idempotency_key(event.environment, event.transfer_id)});
        }
    }
    d.row = std::move(row);
    return d;
}

std::string credit_idempotency_key(std::string_view environment, std::string_view transfer_id) {
    std::string key = "credit:";
    key += environment;
    key += ':';
    key += transfer_id;
    return key;
}

std::string encode_credit_command(const TransferEvent& event) {
    const std::string key = credit_idempotency_key(event.environment, event.transfer_id);
    JsonObject json;
    json.str("commandId", name_uuid(key)).str("idempotencyKey", key);
    credit_fields(json, event);
    return json.done();
}

std::string encode_review_record(const TransferEvent& event, std::string_view reason) {
    return review_json(review_key(event), reason, event).done();
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
    a.kind = "unparseable";
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
    a.dedup_key = "anomaly:unparseable:" + std::string(topic) + ":" + std::to_string(partition) +
                  ":" + std::to_string(offset);
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
    a.dedup_key = "anomaly:" + a.kind + ":" + std::string(topic) + ":" + std::to_string(partition) +
                  ":" + std::to_string(offset);
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
