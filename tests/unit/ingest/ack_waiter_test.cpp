// Who answers a webhook: the delivery report or the ack timer, exactly once.
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <thread>

#include "ingest/publisher.hpp"

namespace meshhook::ingest {
namespace {

struct Answers {
    std::vector<PublishOutcome> outcomes;
};

std::shared_ptr<AckWaiter> make_waiter(boost::asio::io_context& ioc, Answers& answers,
                                       common::Histogram& h) {
    return std::make_shared<AckWaiter>(
        ioc.get_executor(), [&answers](PublishOutcome o) { answers.outcomes.push_back(o); }, h);
}

common::DeliveryReport ok_report() {
    return {};
}
common::DeliveryReport failed_report() {
    common::DeliveryReport r;
    r.error = {common::RecordError::Kind::kRetryable, "Local: Message timed out"};
    return r;
}

TEST(AckWaiter, ReportIsDeliveredOnTheExecutorNotOnTheReportingThread) {
    boost::asio::io_context ioc;
    common::Histogram h(common::latency_buckets());
    Answers answers;
    auto waiter = make_waiter(ioc, answers, h);
    waiter->await_report();
    std::thread poller([w = waiter.get()] { w->on_delivery(ok_report()); });
    poller.join();
    EXPECT_TRUE(answers.outcomes.empty()) << "nothing runs before the executor does";
    ioc.run();
    EXPECT_EQ(answers.outcomes, std::vector<PublishOutcome>{PublishOutcome::kAcknowledged});
    EXPECT_EQ(h.count(), 1u);
}

TEST(AckWaiter, FailedReportIsADeliveryFailure) {
    boost::asio::io_context ioc;
    common::Histogram h(common::latency_buckets());
    Answers answers;
    auto waiter = make_waiter(ioc, answers, h);
    waiter->await_report();
    waiter->on_delivery(failed_report());
    ioc.run();
    EXPECT_EQ(answers.outcomes, std::vector<PublishOutcome>{PublishOutcome::kDeliveryFailed});
}

TEST(AckWaiter, LateReportAfterTheTimerClaimedIsNeverASecondAnswer) {
    boost::asio::io_context ioc;
    common::Histogram h(common::latency_buckets());
    Answers answers;
    std::weak_ptr<AckWaiter> weak;
    {
        auto waiter = make_waiter(ioc, answers, h);
        weak = waiter;
        waiter->await_report();
        ASSERT_TRUE(waiter->claim());  // the ack timer answered 503
        EXPECT_FALSE(waiter->claim());
        // The session lets go of the waiter once it answered...
    }
    // ...and the waiter keeps itself alive for the report it is owed.
    ASSERT_FALSE(weak.expired());
    weak.lock()->on_delivery(ok_report());
    ioc.run();
    EXPECT_TRUE(answers.outcomes.empty());
    EXPECT_TRUE(weak.expired()) << "freed once the report was handled";
}

// The callback holds the session: once the ack timer answered, abandon()
// frees it at once, while the waiter itself still waits for its report.
TEST(AckWaiter, AbandonedWaiterReleasesItsSessionBeforeTheReportComes) {
    boost::asio::io_context ioc;
    common::Histogram h(common::latency_buckets());
    auto session = std::make_shared<int>(0);
    std::weak_ptr<int> session_alive = session;
    auto waiter = std::make_shared<AckWaiter>(
        ioc.get_executor(), [session](PublishOutcome) { ++*session; }, h);
    session.reset();
    waiter->await_report();
    ASSERT_TRUE(waiter->claim());  // the ack timer answered 503
    EXPECT_FALSE(session_alive.expired()) << "held through the callback until abandoned";
    waiter->abandon();
    EXPECT_TRUE(session_alive.expired()) << "the session is freed before the report";
    waiter->on_delivery(ok_report());  // the late report is only counted
    ioc.run();
    EXPECT_EQ(h.count(), 1u);
}

TEST(AckWaiter, RefusedProduceOwesNoReport) {
    boost::asio::io_context ioc;
    common::Histogram h(common::latency_buckets());
    Answers answers;
    std::weak_ptr<AckWaiter> weak;
    {
        auto waiter = make_waiter(ioc, answers, h);
        weak = waiter;
        waiter->await_report();
        waiter->cancel_report();
    }
    EXPECT_TRUE(weak.expired());
}

}  // namespace
}  // namespace meshhook::ingest
