#pragma once
// One deadline per session, for every phase of a connection (TLS handshake,
// waiting for a request, reading it, Kafka's ack, writing the answer, the
// linger before close), on one timer that is armed lazily.
//
// Moving the deadline later (what every request does: read, then ack, then
// write, then idle) is a store: the pending wait is kept, and when it fires
// early it waits again for the current deadline. Only a deadline earlier than
// the pending wait re-arms the timer. A keep-alive connection answering
// thousands of requests a second thus costs about one timer operation per
// timeout period instead of several per request.
//
// Beast's tcp_stream::expires_after cannot serve: on expiry it closes the
// socket, so no 408 could be written. Here expiry only calls back; the owner
// decides (cancel the pending read and answer 408, answer the ack timeout,
// close).
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

namespace meshhook::ingest {

class Deadline {
public:
    using Clock = std::chrono::steady_clock;
    using Executor = boost::asio::io_context::executor_type;

    explicit Deadline(const Executor& executor) : timer_(executor) {}
    Deadline(const Deadline&) = delete;
    Deadline& operator=(const Deadline&) = delete;

    // What to call, on the executor, once a deadline passes. `owner` is the
    // object the callback belongs to: once it is gone nothing is called, and
    // a pending wait never keeps it alive.
    void on_expiry(std::weak_ptr<const void> owner, std::function<void()> callback) {
        owner_ = std::move(owner);
        callback_ = std::move(callback);
    }

    // The deadline is `at` from now on, earlier or later than before; it
    // expires once (set it again for another).
    void set(Clock::time_point at);
    // No deadline until the next set(); a pending wait ends unnoticed.
    void clear() noexcept { at_ = Clock::time_point::max(); }
    // Ends the pending wait now (the owner is closing for good).
    void cancel() noexcept;

    Clock::time_point at() const noexcept { return at_; }
    bool is_set() const noexcept { return at_ != Clock::time_point::max(); }
    // How many times the timer was armed: a test's window on the laziness.
    std::uint64_t arms() const noexcept { return arms_; }

private:
    using Timer =
        boost::asio::basic_waitable_timer<Clock, boost::asio::wait_traits<Clock>, Executor>;

    void arm(Clock::time_point at);
    void on_timer();

    Timer timer_;
    Clock::time_point at_ = Clock::time_point::max();     // the deadline
    Clock::time_point armed_ = Clock::time_point::max();  // the pending wait's, max: none
    std::uint64_t generation_ = 0;                        // of the pending wait
    std::uint64_t arms_ = 0;
    std::weak_ptr<const void> owner_;
    std::function<void()> callback_;
};

}  // namespace meshhook::ingest
