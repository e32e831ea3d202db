// The session writes responses as bytes it serializes itself: they must be
// the bytes Beast's own serializer writes for the same message.
#include "ingest/response_text.hpp"

#include <boost/beast/http/write.hpp>
#include <gtest/gtest.h>

#include <sstream>

namespace meshhook::ingest {
namespace {

namespace http = boost::beast::http;

std::string beast_text(const Response& res) {
    std::ostringstream out;
    out << res;
    return out.str();
}

TEST(ResponseText, MatchesBeastForEveryResponseTheHandlerMakes) {
    std::vector<Response> responses;
    responses.push_back(error_response(503, "unavailable", "not stored, retry", 11, true));
    responses.push_back(error_response(408, "request_timeout", "late", 11, false));
    responses.push_back(error_response(400, "bad_request", "\"quoted\" \\ text", 10, false));
    responses.push_back(error_response(404, "not_found", "", 10, true));
    Response ok{http::status::ok, 11};
    ok.set(http::field::content_type, "application/json");
    ok.body() = R"({"status":"accepted","eventId":"e-1"})";
    ok.prepare_payload();
    responses.push_back(ok);
    Response custom{http::status::ok, 11};
    custom.reason("Fine");
    custom.set("X-Custom", "v");
    custom.prepare_payload();
    responses.push_back(custom);

    std::string text = "left over from the previous answer";
    for (auto& res : responses) {
        serialize_response(res, text);
        EXPECT_EQ(text, beast_text(res)) << res.result_int();
    }
}

TEST(ResponseText, KeepsTheBuffersCapacityAcrossAnswers) {
    std::string text;
    text.reserve(4096);
    const auto* data = text.data();
    serialize_response(error_response(503, "unavailable", "retry", 11, true), text);
    EXPECT_EQ(text.data(), data) << "the buffer is reused, not reallocated";
}

}  // namespace
}  // namespace meshhook::ingest
