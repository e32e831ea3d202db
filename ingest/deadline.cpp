#include "ingest/deadline.hpp"

namespace meshhook::ingest {

void Deadline::set(Clock::time_point at) {
    at_ = at;
    // A pending wait that ends at or before `at` is kept: it re-arms when it fires.
    if (at < armed_) arm(at);
}

void Deadline::cancel() noexcept {
    at_ = Clock::time_point::max();
    armed_ = Clock::time_point::max();
    ++generation_;
    timer_.cancel();
}

void Deadline::arm(Clock::time_point at) {
    armed_ = at;
    ++arms_;
    // expires_at cancels a pending wait: its handler sees operation_aborted.
    timer_.expires_at(at);
    timer_.async_wait(
        [this, owner = owner_, generation = ++generation_](const boost::system::error_code& ec) {
            // Cancelled (re-armed, cancel(), or the timer destroyed with its
            // owner): `this` may be gone, touch nothing.
            if (ec) return;
            // A wait that had already completed when it was replaced, or whose
            // owner is gone, is stale.
            const auto alive = owner.lock();
            if (!alive || generation != generation_) return;
            on_timer();
        });
}

void Deadline::on_timer() {
    armed_ = Clock::time_point::max();
    if (at_ == Clock::time_point::max()) return;  // cleared since
    if (Clock::now() < at_) return arm(at_);      // moved later since: wait on
    at_ = Clock::time_point::max();
    if (callback_) callback_();
}

}  // namespace meshhook::ingest
