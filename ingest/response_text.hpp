#pragma once
// A response as the bytes on the wire, appended to a buffer the session
// reuses: one write of one buffer per answer, instead of Beast's serializer
// (a buffers_cat_view variant walked per write, several allocations per
// response). The bytes are the ones Beast writes for the same message; the
// unit test compares them.
#include <string>

#include "ingest/handler.hpp"

namespace meshhook::ingest {

// Replaces `out`'s contents (its capacity is kept) with `response`: status
// line, header fields in order, blank line, body. The body is sent as is:
// handler responses carry their Content-Length (prepare_payload()).
void serialize_response(const Response& response, std::string& out);

}  // namespace meshhook::ingest
