#pragma once
// Parsing of Mesh transfer-status webhook bodies (simdjson on-demand).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace meshhook::common {

enum class TransferStatus : std::uint8_t { kPending, kProcessing, kSucceeded, kFailed, kUnknown };

// Case-insensitive: "Pending", "pending" and "PENDING" are the same status.
// Anything else is kUnknown (the caller keeps the text).
TransferStatus parse_status(std::string_view text);
std::string_view to_string(TransferStatus s);  // lower case; "unknown" for kUnknown

// pending(1) < processing(2) < succeeded|failed(3); unknown is 0 and never
// advances a transfer.
int status_rank(TransferStatus s);
inline bool is_terminal(TransferStatus s) {
    return s == TransferStatus::kSucceeded || s == TransferStatus::kFailed;
}

// A JSON member as received: absent, explicitly null, or a value.
struct Field {
    enum class State : std::uint8_t { kAbsent, kNull, kValue };
    State state = State::kAbsent;
    std::string_view value;  // string contents (unescaped) or the exact number text

    bool has_value() const { return state == State::kValue; }
    bool is_null() const { return state == State::kNull; }
    bool is_absent() const { return state == State::kAbsent; }
};

// All views point into the parser that produced them and die with its next parse().
struct TransferEventView {
    Field id;        // delivery attempt id, new on every retry
    Field event_id;  // stable across retries
    Field transfer_id;
    Field transfer_status;  // the text as sent
    Field sent_timestamp;   // integer text (seconds or milliseconds: unix_ms_by_magnitude)
    Field timestamp;        // integer text (milliseconds, or seconds: idem)
    Field transaction_id;
    Field tx_hash;
    Field user_id;
    Field token;
    Field chain;
    Field source_amount;       // exact JSON number text; a double never touches it
    Field destination_amount;  // idem
    Field source_account_provider;
    Field destination_address;
    Field refund_address;

    TransferStatus status = TransferStatus::kUnknown;
    std::int64_t sent_timestamp_value = 0;  // valid when sent_timestamp.has_value()
    std::int64_t timestamp_value = 0;       // valid when timestamp.has_value()
};

enum class ParseErrorCode : std::uint8_t {
    kNone,
    kInvalidJson,        // not JSON, truncated, trailing garbage, too deep
    kNotAnObject,        // JSON, but the top level is not an object
    kWrongType,          // a known field has the wrong JSON type
    kDuplicateField,     // a known field appears twice (ambiguous: refuse)
    kMissingTransferId,  // no TransferId (or null / empty)
    kMissingStatus,      // no TransferStatus (or null / empty)
};

std::string_view to_string(ParseErrorCode c);  // stable snake_case reason, used in DLQ headers

struct ParseError {
    ParseErrorCode code = ParseErrorCode::kNone;
    std::string_view field;       // the offending field's canonical name, when there is one
    std::string_view detail;      // simdjson's message for kInvalidJson
    std::string message() const;  // one human-readable line
};

struct ParseResult {
    TransferEventView event;
    ParseError error;
    bool ok() const { return error.code == ParseErrorCode::kNone; }
};

// Field names are matched in PascalCase (Mesh's example) and camelCase.
// One parser per thread, reused: its buffers grow to the largest body seen
// and are not reallocated after that.
class TransferEventParser {
public:
    TransferEventParser();
    ~TransferEventParser();
    TransferEventParser(const TransferEventParser&) = delete;
    TransferEventParser& operator=(const TransferEventParser&) = delete;

    ParseResult parse(std::string_view body);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Mesh's timestamps come in seconds (SentTimestamp in its example) or in
// milliseconds (Timestamp; and SentTimestamp from some senders): the unit is
// decided by magnitude. Below 100,000,000,000 a value is seconds (as
// milliseconds it would be before 1973-03-03; as seconds it reaches year
// 5138), from there on milliseconds. The values are signed, untrusted input:
// negative or past 9999-12-31T23:59:59.999Z is not a time (nullopt), and
// nothing here can overflow.
inline constexpr std::int64_t kSecondsBelow = 100'000'000'000;
inline constexpr std::int64_t kMaxUnixMs = 253'402'300'799'999;  // 9999-12-31T23:59:59.999Z
std::optional<std::int64_t> unix_ms_by_magnitude(std::int64_t value);

// `body` with its top-level SentTimestamp (or sentTimestamp) integer replaced
// by `now`, in the unit it had (seconds or milliseconds, by magnitude), every
// other byte kept: what Mesh does for each attempt it sends, so a sender of
// stored bodies (the CLI, tests, benchmarks) passes a receiver's replay window
// (ingest --max-sent-age-s) and signs the restamped bytes. A body that is not
// a JSON object, or has no integer SentTimestamp, comes back unchanged.
std::string restamp_sent_timestamp(std::string_view body,
                                   std::chrono::system_clock::time_point now);

// True for text that is exactly one JSON number (RFC 8259 grammar).
bool is_json_number(std::string_view text);

// True for JSON number text that is a decimal strictly greater than zero
// (e.g. "250.000000000000000001"; not "0", "0.000", "-1", "1e-3" is positive).
bool is_positive_decimal(std::string_view number_text);

}  // namespace meshhook::common
