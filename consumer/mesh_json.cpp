#include "consumer/mesh_json.hpp"

#include "common/transfer_event.hpp"

namespace meshhook::consumer {

bool json_text(simdjson::ondemand::value value, std::string& into, bool* was_number) {
    using simdjson::ondemand::json_type;
    json_type type{};
    if (value.type().get(type) != simdjson::SUCCESS) return false;
    if (type == json_type::string) {
        std::string_view s;
        if (value.get_string().get(s) != simdjson::SUCCESS) return false;
        into = std::string(s);
    } else if (type == json_type::number) {
        // The raw token runs up to the next structural character: drop the
        // whitespace (and a separator) after the number.
        std::string_view raw = value.raw_json_token();
        while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\n' || raw.back() == '\r' ||
                                raw.back() == '\t' || raw.back() == ',')) {
            raw.remove_suffix(1);
        }
        into = std::string(raw);
        if (was_number != nullptr) *was_number = true;
        return common::is_json_number(into);
    }
    return true;
}

bool for_each_member(
    simdjson::ondemand::object object,
    const std::function<bool(std::string_view key, simdjson::ondemand::value value)>& on_member) {
    for (auto member : object) {
        std::string_view key;
        simdjson::ondemand::value value;
        if (member.unescaped_key().get(key) != simdjson::SUCCESS ||
            member.value().get(value) != simdjson::SUCCESS || !on_member(key, value)) {
            return false;
        }
    }
    return true;
}

bool read_envelope(std::string_view body, Envelope& envelope,
                   const std::function<bool(simdjson::ondemand::value content)>& on_content,
                   std::string& error) {
    simdjson::ondemand::parser parser;
    const simdjson::padded_string padded(body);
    simdjson::ondemand::document doc;
    simdjson::ondemand::object object;
    if (parser.iterate(padded).get(doc) != simdjson::SUCCESS ||
        doc.get_object().get(object) != simdjson::SUCCESS) {
        error = "not a JSON object";
        return false;
    }
    bool has_status = false;
    bool status_failed = false;
    bool content_failed = false;
    const bool ok = for_each_member(object, [&](std::string_view key, auto value) {
        if (key == "status") {
            status_failed = !json_text(value, envelope.status);
            if (status_failed) return false;
            has_status = true;
        } else if (key == "message") {
            json_text(value, envelope.message);
        } else if (key == "content") {
            content_failed = !on_content(value);
            return !content_failed;
        }
        return true;
    });
    if (!ok) {
        if (!content_failed) error = status_failed ? "malformed status" : "malformed envelope";
        return false;
    }
    if (!has_status) {
        error = "no envelope status";
        return false;
    }
    return true;
}

}  // namespace meshhook::consumer
