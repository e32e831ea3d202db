#include "ingest/response_text.hpp"

#include <charconv>

namespace meshhook::ingest {

void serialize_response(const Response& response, std::string& out) {
    out.clear();
    const unsigned version = response.version();
    out.append("HTTP/");
    out.push_back(static_cast<char>('0' + version / 10));
    out.push_back('.');
    out.push_back(static_cast<char>('0' + version % 10));
    out.push_back(' ');
    char status[8];
    const auto [end, ec] = std::to_chars(status, status + sizeof status, response.result_int());
    (void)ec;  // a status is at most three digits
    out.append(status, end);
    out.push_back(' ');
    const auto reason = response.reason();
    out.append(reason.data(), reason.size());
    out.append("\r\n");
    for (const auto& field : response) {
        const auto name = field.name_string();
        const auto value = field.value();
        out.append(name.data(), name.size()).append(": ").append(value.data(), value.size());
        out.append("\r\n");
    }
    out.append("\r\n");
    out.append(response.body());
}

}  // namespace meshhook::ingest
