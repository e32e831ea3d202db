#include "tools/json_field.hpp"

#include <simdjson.h>

namespace meshhook::tools {

std::optional<std::string> json_field(std::string_view json, std::string_view field) {
    simdjson::ondemand::parser parser;
    const simdjson::padded_string padded(json);
    simdjson::ondemand::document doc;
    if (parser.iterate(padded).get(doc) != simdjson::SUCCESS) return std::nullopt;
    simdjson::ondemand::object object;
    if (doc.get_object().get(object) != simdjson::SUCCESS) return std::nullopt;
    for (auto member : object) {
        std::string_view key;
        if (member.unescaped_key().get(key) != simdjson::SUCCESS) return std::nullopt;
        if (key != field) continue;
        simdjson::ondemand::value value;
        if (member.value().get(value) != simdjson::SUCCESS) return std::nullopt;
        simdjson::ondemand::json_type type;
        if (value.type().get(type) != simdjson::SUCCESS) return std::nullopt;
        if (type == simdjson::ondemand::json_type::string) {
            std::string_view s;
            if (value.get_string().get(s) != simdjson::SUCCESS) return std::nullopt;
            return std::string(s);
        }
        std::string_view raw = value.raw_json_token();
        while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\n' || raw.back() == '\r' ||
                                raw.back() == '\t')) {
            raw.remove_suffix(1);
        }
        return std::string(raw);
    }
    return std::nullopt;
}

}  // namespace meshhook::tools
