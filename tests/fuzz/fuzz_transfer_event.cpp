// Any bytes into the event parser: it must return a result (never crash,
// leak or read out of bounds), and a success must be internally consistent.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "common/transfer_event.hpp"

using meshhook::common::Field;

namespace {
void check_view(const Field& f, std::string_view body_copy_never_used) {
    (void)body_copy_never_used;
    if (f.state != Field::State::kValue && !f.value.empty()) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static meshhook::common::TransferEventParser parser;  // reused, as in the server
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    const auto r = parser.parse(body);
    if (r.ok()) {
        const auto& e = r.event;
        if (!e.transfer_id.has_value() || e.transfer_id.value.empty()) std::abort();
        if (!e.transfer_status.has_value()) std::abort();
        if (e.status != meshhook::common::parse_status(e.transfer_status.value)) std::abort();
        for (const Field* f : {&e.id, &e.event_id, &e.tx_hash, &e.user_id, &e.token, &e.chain,
                               &e.source_amount, &e.destination_amount, &e.destination_address}) {
            check_view(*f, body);
            // Touch every byte so ASan checks the view's memory.
            volatile char sink = 0;
            for (char c : f->value) sink = static_cast<char>(sink ^ c);
        }
        if (e.destination_amount.has_value()) {
            (void)meshhook::common::is_positive_decimal(e.destination_amount.value);
        }
    } else {
        (void)r.error.message();
    }
    return 0;
}
