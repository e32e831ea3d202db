#include "common/transfer_event.hpp"

#include <simdjson.h>

#include <array>
#include <cstring>
#include <string>

namespace meshhook::common {
namespace {

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i];
        char y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

enum class Kind : std::uint8_t { kString, kAmount, kInteger };

struct FieldSpec {
    std::string_view pascal;
    std::string_view camel;
    Kind kind;
    Field TransferEventView::*member;
};

constexpr std::array<FieldSpec, 16> kFields{{
    {"Id", "id", Kind::kString, &TransferEventView::id},
    {"EventId", "eventId", Kind::kString, &TransferEventView::event_id},
    {"TransferId", "transferId", Kind::kString, &TransferEventView::transfer_id},
    {"TransferStatus", "transferStatus", Kind::kString, &TransferEventView::transfer_status},
    {"SentTimestamp", "sentTimestamp", Kind::kInteger, &TransferEventView::sent_timestamp},
    {"Timestamp", "timestamp", Kind::kInteger, &TransferEventView::timestamp},
    {"TransactionId", "transactionId", Kind::kString, &TransferEventView::transaction_id},
    {"TxHash", "txHash", Kind::kString, &TransferEventView::tx_hash},
    {"UserId", "userId", Kind::kString, &TransferEventView::user_id},
    {"Token", "token", Kind::kString, &TransferEventView::token},
    {"Chain", "chain", Kind::kString, &TransferEventView::chain},
    {"SourceAmount", "sourceAmount", Kind::kAmount, &TransferEventView::source_amount},
    {"DestinationAmount", "destinationAmount", Kind::kAmount,
     &TransferEventView::destination_amount},
    {"SourceAccountProvider", "sourceAccountProvider", Kind::kString,
     &TransferEventView::source_account_provider},
    {"DestinationAddress", "destinationAddress", Kind::kString,
     &TransferEventView::destination_address},
    {"RefundAddress", "refundAddress", Kind::kString, &TransferEventView::refund_address},
}};

const FieldSpec* find_field(std::string_view key) {
    for (const auto& f : kFields) {
        if (key == f.pascal || key == f.camel) return &f;
    }
    return nullptr;
}

std::string_view trim_ws(std::string_view s) {
    while (!s.empty() &&
           (s.back() == ' ' || s.back() == '\n' || s.back() == '\r' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// Consumes a value we do not use, checking it is well-formed JSON.
simdjson::error_code skip_value(simdjson::ondemand::value& value) {
    using simdjson::ondemand::json_type;
    json_type type{};
    if (auto ec = value.type().get(type)) return ec;
    std::string_view text;
    switch (type) {
        case json_type::object: {
            simdjson::ondemand::object o;
            if (auto ec = value.get_object().get(o)) return ec;
            return o.raw_json().error();
        }
        case json_type::array: {
            simdjson::ondemand::array a;
            if (auto ec = value.get_array().get(a)) return ec;
            return a.raw_json().error();
        }
        case json_type::string: return value.get_string().error();
        case json_type::number:
            text = value.raw_json_token();
            return is_json_number(trim_ws(text)) ? simdjson::SUCCESS : simdjson::NUMBER_ERROR;
        case json_type::boolean: return value.get_bool().error();
        case json_type::null: {
            bool is_null = false;
            if (auto ec = value.is_null().get(is_null)) return ec;
            return is_null ? simdjson::SUCCESS : simdjson::N_ATOM_ERROR;
        }
    }
    return simdjson::INCORRECT_TYPE;
}

// simdjson's on-demand API enforces no nesting limit (in 3.0 max_depth is
// checked only with SIMDJSON_DEVELOPMENT_CHECKS), and the raw body travels on
// to readers that do have one (Jackson 1,000, Python's json about as many).
constexpr int kMaxDepth = 512;

std::size_t count_openers(std::string_view s) {
    std::size_t n = 0;
    for (const char c : s) n += static_cast<std::size_t>((c == '[') | (c == '{'));
    return n;
}

bool exceeds_depth(std::string_view s) {
    int depth = 0;
    bool in_string = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (in_string) {
            if (c == '\\') {
                ++i;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > kMaxDepth) return true;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return false;
}

}  // namespace

TransferStatus parse_status(std::string_view text) {
    if (iequals(text, "pending")) return TransferStatus::kPending;
    if (iequals(text, "processing")) return TransferStatus::kProcessing;
    if (iequals(text, "succeeded")) return TransferStatus::kSucceeded;
    if (iequals(text, "failed")) return TransferStatus::kFailed;
    return TransferStatus::kUnknown;
}

std::string_view to_string(TransferStatus s) {
    switch (s) {
        case TransferStatus::kPending: return "pending";
        case TransferStatus::kProcessing: return "processing";
        case TransferStatus::kSucceeded: return "succeeded";
        case TransferStatus::kFailed: return "failed";
        case TransferStatus::kUnknown: return "unknown";
    }
    return "unknown";
}

int status_rank(TransferStatus s) {
    switch (s) {
        case TransferStatus::kPending: return 1;
        case TransferStatus::kProcessing: return 2;
        case TransferStatus::kSucceeded:
        case TransferStatus::kFailed: return 3;
        case TransferStatus::kUnknown: return 0;
    }
    return 0;
}

std::string_view to_string(ParseErrorCode c) {
    switch (c) {
        case ParseErrorCode::kNone: return "ok";
        case ParseErrorCode::kInvalidJson: return "invalid_json";
        case ParseErrorCode::kNotAnObject: return "not_an_object";
        case ParseErrorCode::kWrongType: return "wrong_type";
        case ParseErrorCode::kDuplicateField: return "duplicate_field";
        case ParseErrorCode::kMissingTransferId: return "missing_transfer_id";
        case ParseErrorCode::kMissingStatus: return "missing_transfer_status";
    }
    return "unknown";
}

std::string ParseError::message() const {
    switch (code) {
        case ParseErrorCode::kNone: return "ok";
        case ParseErrorCode::kInvalidJson:
            return "body is not valid JSON" +
                   (detail.empty() ? std::string() : ": " + std::string(detail));
        case ParseErrorCode::kNotAnObject: return "body is not a JSON object";
        case ParseErrorCode::kWrongType:
            return "field " + std::string(field) + " has the wrong type";
        case ParseErrorCode::kDuplicateField:
            return "field " + std::string(field) + " appears twice";
        case ParseErrorCode::kMissingTransferId: return "TransferId is missing";
        case ParseErrorCode::kMissingStatus: return "TransferStatus is missing";
    }
    return "unknown error";
}

// JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool is_json_number(std::string_view s) {
    std::size_t i = 0;
    if (i < s.size() && s[i] == '-') ++i;
    if (i >= s.size()) return false;
    if (s[i] == '0') {
        ++i;
    } else if (is_digit(s[i])) {
        while (i < s.size() && is_digit(s[i])) ++i;
    } else {
        return false;
    }
    if (i < s.size() && s[i] == '.') {
        ++i;
        const std::size_t start = i;
        while (i < s.size() && is_digit(s[i])) ++i;
        if (i == start) return false;
    }
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
        const std::size_t start = i;
        while (i < s.size() && is_digit(s[i])) ++i;
        if (i == start) return false;
    }
    return i == s.size();
}

bool is_positive_decimal(std::string_view s) {
    if (!is_json_number(s) || s.front() == '-') return false;
    // Positive iff some digit of the mantissa is non-zero; the exponent only scales.
    for (char c : s) {
        if (c == 'e' || c == 'E') break;
        if (c >= '1' && c <= '9') return true;
    }
    return false;
}

std::optional<std::int64_t> unix_ms_by_magnitude(std::int64_t value) {
    if (value < 0) return std::nullopt;
    // value * 1000 < 10^14 here: no overflow.
    if (value < kSecondsBelow) return value * 1000;
    if (value > kMaxUnixMs) return std::nullopt;
    return value;
}

std::string restamp_sent_timestamp(std::string_view body,
                                   std::chrono::system_clock::time_point now) {
    const simdjson::padded_string padded(body);
    simdjson::ondemand::parser parser;
    simdjson::ondemand::document doc;
    simdjson::ondemand::object object;
    if (parser.iterate(padded).get(doc) != simdjson::SUCCESS ||
        doc.get_object().get(object) != simdjson::SUCCESS) {
        return std::string(body);
    }
    for (auto member : object) {
        std::string_view key;
        simdjson::ondemand::value value;
        if (member.unescaped_key().get(key) != simdjson::SUCCESS ||
            member.value().get(value) != simdjson::SUCCESS) {
            return std::string(body);
        }
        if (key != "SentTimestamp" && key != "sentTimestamp") continue;
        std::int64_t old = 0;
        if (value.get_int64().get(old) != simdjson::SUCCESS) return std::string(body);
        // The raw token points into the padded copy, whose bytes are the body's.
        const std::string_view token = trim_ws(value.raw_json_token());
        const auto offset = static_cast<std::size_t>(token.data() - padded.data());
        const auto since = now.time_since_epoch();
        const auto stamp =
            old < kSecondsBelow
                ? std::chrono::duration_cast<std::chrono::seconds>(since).count()
                : std::chrono::duration_cast<std::chrono::milliseconds>(since).count();
        std::string out(body);
        out.replace(offset, token.size(), std::to_string(stamp));
        return out;
    }
    return std::string(body);
}

struct TransferEventParser::Impl {
    simdjson::ondemand::parser parser;
    std::string padded;  // body copy with SIMDJSON_PADDING spare bytes, reused
};

TransferEventParser::TransferEventParser() : impl_(std::make_unique<Impl>()) {}
TransferEventParser::~TransferEventParser() = default;

ParseResult TransferEventParser::parse(std::string_view body) {
    using simdjson::ondemand::json_type;
    ParseResult result;
    auto fail = [&result](ParseErrorCode code, std::string_view field = {},
                          std::string_view detail = {}) -> ParseResult& {
        result.error = {code, field, detail};
        return result;
    };
    auto json_fail = [&](simdjson::error_code ec) -> ParseResult& {
        return fail(ParseErrorCode::kInvalidJson, {}, simdjson::error_message(ec));
    };

    // The padded copy is the only per-call work beyond parsing: simdjson reads
    // up to SIMDJSON_PADDING bytes past the end, which a socket buffer does not
    // promise. resize() keeps capacity, so no allocation once warmed up.
    auto& buf = impl_->padded;
    buf.resize(body.size() + simdjson::SIMDJSON_PADDING);
    if (!body.empty()) std::memcpy(buf.data(), body.data(), body.size());
    std::memset(buf.data() + body.size(), 0, simdjson::SIMDJSON_PADDING);

    // Nesting deeper than kMaxDepth needs more than kMaxDepth opening
    // brackets: a branch-free count (vectorised by the compiler) spares the
    // string-aware scan for every ordinary body, which has a handful.
    if (body.size() > kMaxDepth && count_openers(body) > kMaxDepth && exceeds_depth(body)) {
        return json_fail(simdjson::DEPTH_ERROR);
    }
    simdjson::ondemand::document doc;
    if (auto ec = impl_->parser.iterate(buf.data(), body.size(), buf.size()).get(doc)) {
        return json_fail(ec);
    }
    json_type top{};
    if (auto ec = doc.type().get(top)) return json_fail(ec);
    if (top != json_type::object) return fail(ParseErrorCode::kNotAnObject);
    simdjson::ondemand::object obj;
    if (auto ec = doc.get_object().get(obj)) return json_fail(ec);

    TransferEventView& ev = result.event;
    for (auto member : obj) {
        std::string_view key;
        if (auto ec = member.unescaped_key().get(key)) return json_fail(ec);
        simdjson::ondemand::value value;
        if (auto ec = member.value().get(value)) return json_fail(ec);
        const FieldSpec* spec = find_field(key);
        if (spec == nullptr) {
            // Unknown members are skipped, but still validated: a truncated or
            // malformed body must not pass because the damage sits in a field
            // we do not read.
            if (auto ec = skip_value(value)) return json_fail(ec);
            continue;
        }
        Field& field = ev.*(spec->member);
        if (field.state != Field::State::kAbsent) {
            return fail(ParseErrorCode::kDuplicateField, spec->pascal);
        }
        json_type type{};
        if (auto ec = value.type().get(type)) return json_fail(ec);
        if (type == json_type::null) {
            bool is_null = false;
            if (auto ec = value.is_null().get(is_null); ec || !is_null) {
                return json_fail(ec ? ec : simdjson::N_ATOM_ERROR);
            }
            field.state = Field::State::kNull;
            continue;
        }
        switch (spec->kind) {
            case Kind::kString: {
                if (type != json_type::string)
                    return fail(ParseErrorCode::kWrongType, spec->pascal);
                std::string_view s;
                if (auto ec = value.get_string().get(s)) return json_fail(ec);
                field = {Field::State::kValue, s};
                break;
            }
            case Kind::kAmount: {
                // Keep the exact text: 250.000000000000000001 has more digits than
                // a double holds. A quoted decimal is accepted too.
                std::string_view text;
                if (type == json_type::number) {
                    text = trim_ws(value.raw_json_token());
                } else if (type == json_type::string) {
                    if (auto ec = value.get_string().get(text)) return json_fail(ec);
                } else {
                    return fail(ParseErrorCode::kWrongType, spec->pascal);
                }
                if (!is_json_number(text)) {
                    return type == json_type::number
                               ? json_fail(simdjson::NUMBER_ERROR)
                               : fail(ParseErrorCode::kWrongType, spec->pascal);
                }
                field = {Field::State::kValue, text};
                break;
            }
            case Kind::kInteger: {
                if (type != json_type::number)
                    return fail(ParseErrorCode::kWrongType, spec->pascal);
                const std::string_view text = value.raw_json_token();
                std::int64_t n = 0;
                if (auto ec = value.get_int64().get(n)) {
                    // 1.5 or 1e3 or an out-of-range integer: not a timestamp.
                    (void)ec;
                    return fail(ParseErrorCode::kWrongType, spec->pascal);
                }
                field = {Field::State::kValue, trim_ws(text)};
                if (spec->member == &TransferEventView::sent_timestamp) {
                    ev.sent_timestamp_value = n;
                } else {
                    ev.timestamp_value = n;
                }
                break;
            }
        }
    }
    // Anything after the closing brace (other than whitespace) is not one JSON value.
    if (!doc.current_location().error()) return json_fail(simdjson::TRAILING_CONTENT);

    if (!ev.transfer_id.has_value() || ev.transfer_id.value.empty()) {
        return fail(ParseErrorCode::kMissingTransferId, "TransferId");
    }
    if (!ev.transfer_status.has_value() || ev.transfer_status.value.empty()) {
        return fail(ParseErrorCode::kMissingStatus, "TransferStatus");
    }
    ev.status = parse_status(ev.transfer_status.value);
    return result;
}

}  // namespace meshhook::common
