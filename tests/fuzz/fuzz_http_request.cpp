// Bytes off the wire through the code meshhook-ingest runs for them: Beast's
// request parser with the server's limits, RequestHandler::handle, then
// complete() with every publication outcome, then the response serialised.
// Any crash, leak, UB or a response outside the statuses the server may send
// is a failure.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <sstream>

#include "common/log.hpp"
#include "common/metrics.hpp"
#include "ingest/config.hpp"
#include "ingest/handler.hpp"
#include "ingest/metrics.hpp"

namespace http = boost::beast::http;
using namespace meshhook;

namespace {

struct World {
    ingest::IngestConfig config;
    common::Registry registry;
    std::unique_ptr<ingest::IngestMetrics> metrics;
    std::atomic<bool> ready{true};
    std::unique_ptr<ingest::HandlerContext> context;
    std::unique_ptr<ingest::RequestHandler> handler;

    World() {
        // Rejected requests are logged one line each; the fuzzer makes millions.
        common::init_logging("fuzz", common::LogFormat::kText, "error");
        config = ingest::default_config("127.0.0.1:9092", "whsec_test_fixture_secret");
        config.environments = {{"production", {"whsec_test_fixture_secret"}},
                               {"sandbox", {"whsec_sandbox"}}};
        config.max_body_bytes = 64 * 1024;
        // The seeds are the fixtures as signed in 2025: with the replay window
        // on they would all stop at 400, and the publication path go unfuzzed.
        config.max_sent_age.reset();
        metrics = std::make_unique<ingest::IngestMetrics>(
            registry, std::vector<std::string>{"production", "sandbox"});
        context = std::make_unique<ingest::HandlerContext>(
            ingest::HandlerContext{config, *metrics, ready, "fuzz-host"});
        handler = std::make_unique<ingest::RequestHandler>(*context);
    }
};

void check(const ingest::Response& response) {
    static const std::set<unsigned> kAllowed = {200, 400, 401, 403, 404, 405,
                                                408, 411, 413, 415, 503};
    if (kAllowed.count(response.result_int()) == 0) std::abort();
    // Serialising must work for whatever the handler built.
    std::ostringstream out;
    out << response;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static World world;
    http::request_parser<http::string_body> parser;
    parser.body_limit(world.config.max_body_bytes);
    parser.header_limit(16 * 1024);
    parser.eager(true);
    boost::beast::error_code ec;
    std::size_t used = 0;
    const char* p = reinterpret_cast<const char*>(data);
    std::size_t left = size;
    // Feed in two pieces, as a socket would, to exercise resumption.
    const std::size_t first = left / 2;
    used = parser.put(boost::asio::buffer(p, first), ec);
    if (ec == http::error::need_more) ec = {};
    if (!ec) {
        p += used;
        left -= used;
        parser.put(boost::asio::buffer(p, left), ec);
        if (ec == http::error::need_more && !parser.is_done()) parser.put_eof(ec);
    }
    if (ec || !parser.is_done()) return 0;  // the server answers 400/413 or closes

    auto request = parser.release();
    ingest::ClientInfo client;
    auto action = world.handler->handle(request, client, std::chrono::system_clock::now());
    if (action.is_response()) {
        check(action.response());
        return 0;
    }
    const auto& pub = action.publication();
    if (pub.topic.empty()) std::abort();
    for (auto outcome :
         {ingest::PublishOutcome::kAcknowledged, ingest::PublishOutcome::kQueueFull,
          ingest::PublishOutcome::kAckTimeout, ingest::PublishOutcome::kDeliveryFailed,
          ingest::PublishOutcome::kDraining}) {
        check(world.handler->complete(pub, outcome, request.version(), true));
    }
    return 0;
}
