// Producer and Consumer wrappers against `meshhook broker` in its own process,
// over TCP, as against Apache Kafka.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/kafka.hpp"
#include "tests/support/process.hpp"

namespace meshhook {
namespace {

using namespace std::chrono_literals;
using common::DeliveryReport;
using testing::BrokerProcess;
using testing::wait_until;

class CountingHandler final : public common::DeliveryHandler {
public:
    void on_delivery(const DeliveryReport& report) noexcept override {
        std::lock_guard lock(mutex_);
        if (report.ok()) {
            ++ok_;
        } else {
            ++failed_;
            last_error_ = report.error.message();
        }
    }
    std::string last_error() const {
        std::lock_guard lock(mutex_);
        return last_error_;
    }
    int ok() const {
        std::lock_guard lock(mutex_);
        return ok_;
    }
    int failed() const {
        std::lock_guard lock(mutex_);
        return failed_;
    }

private:
    mutable std::mutex mutex_;
    int ok_ = 0;
    int failed_ = 0;
    std::string last_error_;
};

std::map<std::string, std::string> consume_all(const std::string& bootstrap,
                                               const std::string& topic, std::size_t expected) {
    common::Consumer consumer({{"bootstrap.servers", bootstrap},
                               {"group.id", "test-" + topic + "-" + std::to_string(::getpid())},
                               {"session.timeout.ms", "6000"}});
    consumer.subscribe({topic});
    std::map<std::string, std::string> seen;  // key -> value
    std::size_t records = 0;
    wait_until(
        [&] {
            auto msg = consumer.poll(200ms);
            if (msg && !msg.error()) {
                ++records;
                seen[std::string(msg.key().value_or(""))] = std::string(msg.value());
            }
            return records >= expected;
        },
        60s);
    consumer.close();
    EXPECT_EQ(records, expected) << "duplicates or missing records";
    return seen;
}

TEST(KafkaBroker, ProducedRecordsAreConsumedWithKeysValuesAndHeaders) {
    BrokerProcess broker;
    CountingHandler handler;
    {
        common::Producer producer({{"bootstrap.servers", broker.bootstrap()}});
        ASSERT_TRUE(producer.healthy(10s));
        EXPECT_EQ(producer.partition_count("mesh.transfer-events", 5s), 4);
        for (int i = 0; i < 50; ++i) {
            ASSERT_EQ(producer.produce("mesh.transfer-events", "k" + std::to_string(i),
                                       "v" + std::to_string(i),
                                       {{"event-id", "e" + std::to_string(i)}}, &handler),
                      common::ProduceStatus::kEnqueued);
        }
        EXPECT_EQ(producer.flush(30s), 0);
    }
    EXPECT_EQ(handler.ok(), 50);

    common::Consumer consumer({{"bootstrap.servers", broker.bootstrap()},
                               {"group.id", "headers-test"},
                               {"session.timeout.ms", "6000"}});
    consumer.subscribe({"mesh.transfer-events"});
    std::set<std::string> keys;
    wait_until(
        [&] {
            auto msg = consumer.poll(200ms);
            if (msg && !msg.error()) {
                const std::string key(msg.key().value_or(""));
                EXPECT_EQ(msg.value(), "v" + key.substr(1));
                EXPECT_EQ(msg.header("event-id").value_or(""), "e" + key.substr(1));
                EXPECT_FALSE(msg.header("missing").has_value());
                keys.insert(key);
            }
            return keys.size() == 50;
        },
        60s);
    EXPECT_EQ(keys.size(), 50u);
}

// Notify mode (what meshhook-ingest uses): librdkafka only says that reports
// are waiting; they are served, and their handlers run, on the thread that
// calls poll(), and every report arrives even though the notification fires
// once per batch, not once per report.
TEST(KafkaBroker, NotifyModeServesEveryReportOnTheThreadThatPolls) {
    BrokerProcess broker;
    std::mutex mutex;
    std::condition_variable cv;
    int notifications = 0;
    int pending_notifications = 0;
    const auto this_thread = std::this_thread::get_id();
    std::atomic<int> ok{0};
    std::atomic<int> served_elsewhere{0};

    class ThreadCheckingHandler final : public common::DeliveryHandler {
    public:
        ThreadCheckingHandler(std::thread::id expected, std::atomic<int>& ok,
                              std::atomic<int>& elsewhere)
            : expected_(expected), ok_(ok), elsewhere_(elsewhere) {}
        void on_delivery(const DeliveryReport& report) noexcept override {
            if (std::this_thread::get_id() != expected_) ++elsewhere_;
            if (report.ok()) ++ok_;
        }

    private:
        std::thread::id expected_;
        std::atomic<int>& ok_;
        std::atomic<int>& elsewhere_;
    } handler(this_thread, ok, served_elsewhere);

    constexpr int kRecords = 500;
    {
        common::Producer producer({{"bootstrap.servers", broker.bootstrap()}}, [&] {
            std::lock_guard lock(mutex);
            ++notifications;
            ++pending_notifications;
            cv.notify_one();
        });
        for (int i = 0; i < kRecords; ++i) {
            ASSERT_EQ(producer.produce("mesh.transfer-events", "k" + std::to_string(i), "v", {},
                                       &handler),
                      common::ProduceStatus::kEnqueued);
        }
        // Poll only when told to: a missed notification would leave reports
        // waiting and this loop would hit its deadline.
        const auto deadline = std::chrono::steady_clock::now() + 60s;
        while (ok.load() < kRecords && std::chrono::steady_clock::now() < deadline) {
            std::unique_lock lock(mutex);
            if (!cv.wait_until(lock, deadline, [&] { return pending_notifications > 0; })) break;
            pending_notifications = 0;
            lock.unlock();
            producer.poll();
        }
    }
    EXPECT_EQ(ok.load(), kRecords);
    EXPECT_EQ(served_elsewhere.load(), 0) << "a report was served off the polling thread";
    std::lock_guard lock(mutex);
    EXPECT_GE(notifications, 1);
    EXPECT_LT(notifications, kRecords) << "expected one notification per batch of reports";
}

TEST(KafkaBroker, NoRecordLostWhileOneOfThreeBrokersIsStoppedAndStarted) {
    BrokerProcess broker;
    const std::string topic = "broker-outage";
    broker.create_topic(topic, 6);
    CountingHandler handler;
    constexpr int kRecords = 600;
    {
        common::Producer producer({{"bootstrap.servers", broker.bootstrap()}});
        for (int i = 0; i < kRecords; ++i) {
            if (i == 200) broker.broker_down(2);
            if (i == 400) broker.broker_up(2);
            const std::string key = "key-" + std::to_string(i);
            ASSERT_EQ(producer.produce(topic, key, "value-" + std::to_string(i), {}, &handler),
                      common::ProduceStatus::kEnqueued);
            if (i % 50 == 0) producer.flush(100ms);
        }
        EXPECT_EQ(producer.flush(60s), 0);
    }
    EXPECT_EQ(handler.ok(), kRecords);
    EXPECT_EQ(handler.failed(), 0);
    auto seen = consume_all(broker.bootstrap(), topic, kRecords);
    ASSERT_EQ(seen.size(), static_cast<std::size_t>(kRecords));
    for (int i = 0; i < kRecords; ++i) {
        EXPECT_EQ(seen["key-" + std::to_string(i)], "value-" + std::to_string(i));
    }
}

TEST(KafkaBroker, BrokerControlRejectsUnknownBrokerIds) {
    BrokerProcess broker;
    EXPECT_THROW(broker.broker_down(9), std::runtime_error);
    broker.broker_down(1);
    broker.broker_up(1);
}

// The control command a real cluster honours and the mock cannot: raising
// one topic's min.insync.replicas to 3 makes that topic refuse acks=all writes
// while a broker is down, and only that topic.
TEST(KafkaBroker, ApacheConfigMakesOneTopicRefuseAcksAllWhileABrokerIsDown) {
    if (!testing::apache_engine()) GTEST_SKIP() << "the mock has no topic configs";
    BrokerProcess broker;
    broker.alter_topic_config("ledger.credit-commands", "min.insync.replicas=3");
    broker.broker_down(2);
    CountingHandler refused;
    CountingHandler accepted;
    {
        // One producer per topic: an idempotent producer whose requests to
        // one topic wait out their timeout also holds back another topic's
        // partitions while their leaders move (librdkafka drains every
        // partition before it bumps the producer epoch); seen on 2.0.2.
        const common::KafkaConfig config = {{"bootstrap.servers", broker.bootstrap()},
                                            {"message.timeout.ms", "15000"}};
        common::Producer credits(config);
        common::Producer events(config);
        for (int i = 0; i < 8; ++i) {
            const std::string key = "k" + std::to_string(i);
            ASSERT_EQ(credits.produce("ledger.credit-commands", key, "v", {}, &refused),
                      common::ProduceStatus::kEnqueued);
            ASSERT_EQ(events.produce("mesh.transfer-events", key, "v", {}, &accepted),
                      common::ProduceStatus::kEnqueued);
        }
        EXPECT_EQ(events.flush(60s), 0);
        EXPECT_EQ(credits.flush(60s), 0);
    }
    EXPECT_EQ(refused.ok(), 0) << "acks=all met with 2 of 3 replicas and min.insync.replicas 3";
    EXPECT_EQ(refused.failed(), 8);
    EXPECT_EQ(accepted.ok(), 8) << "the other topics keep working with one broker down; failed "
                                << accepted.failed() << ": " << accepted.last_error();
    broker.broker_up(2);
}

// What the outbox relay's no-duplicate scan rests on, with the relay's own
// pattern: one transactional.id, transactions committed and aborted in turn,
// a new producer (same id, next epoch) after some aborts, and a
// read_committed read from the last position to the end of every partition
// right after each transaction. No aborted record is ever read, every
// committed one is read exactly once, and each read ends (end-of-partition
// events, even with markers at the tail).
TEST(KafkaBroker, ApacheReadCommittedSeesEveryCommittedRecordOnceAndNoAbortedOne) {
    if (!testing::apache_engine()) {
        GTEST_SKIP() << "the mock cluster does not honour read_committed (DESIGN.md)";
    }
    BrokerProcess broker({.brokers = 3, .partitions = 4, .topics = {"txn-check", "txn-small"}});
    // A record too large for this topic makes its transaction abortable, as
    // a refused outbox row does the relay's.
    broker.alter_topic_config("txn-small", "max.message.bytes=200");
    const std::string id = "txn-check-" + std::to_string(::getpid());
    const auto make = [&] {
        auto p = std::make_unique<common::Producer>(common::KafkaConfig{
            {"bootstrap.servers", broker.bootstrap()}, {"transactional.id", id}});
        p->init_transactions(30s);
        return p;
    };
    std::map<std::int32_t, std::int64_t> position;  // partition -> next offset to read
    std::set<std::string> committed;
    std::set<std::string> seen;
    const auto scan = [&] {
        common::Consumer reader({{"bootstrap.servers", broker.bootstrap()},
                                 {"group.id", "txn-check-reader"},
                                 {"isolation.level", "read_committed"},
                                 {"enable.partition.eof", "true"}});
        std::vector<common::TopicPartition> assignment;
        for (std::int32_t p = 0; p < 4; ++p) {
            const auto it = position.find(p);
            assignment.push_back(
                {"txn-check", p, it == position.end() ? common::kOffsetBeginning : it->second});
        }
        reader.assign(assignment);
        std::set<std::int32_t> open{0, 1, 2, 3};
        const auto deadline = std::chrono::steady_clock::now() + 30s;
        while (!open.empty() && std::chrono::steady_clock::now() < deadline) {
            const common::Message m = reader.poll(200ms);
            if (!m) {
                continue;
            }
            if (m.is_partition_eof()) {
                position[m.partition()] = m.offset();
                open.erase(m.partition());
                continue;
            }
            if (m.error()) {
                continue;
            }
            const std::string key(m.key().value_or(""));
            EXPECT_EQ(m.header("fate"), std::optional<std::string_view>("commit"))
                << "read an aborted record " << key << " at " << m.partition() << "@" << m.offset();
            EXPECT_TRUE(seen.insert(key).second) << "read twice: " << key;
            position[m.partition()] = m.offset() + 1;
        }
        reader.close();
        EXPECT_TRUE(open.empty()) << "a read did not reach the end of every partition";
    };
    auto producer = make();
    for (int round = 0; round < 24; ++round) {
        const bool commit = round % 3 != 1;
        producer->begin_transaction();
        for (int i = 0; i < 6; ++i) {
            const std::string key = "r" + std::to_string(round) + "-" + std::to_string(i);
            ASSERT_EQ(
                producer->produce("txn-check", key, "v", {{"fate", commit ? "commit" : "abort"}},
                                  nullptr, (round + i) % 4),
                common::ProduceStatus::kEnqueued);
            if (commit) {
                committed.insert(key);
            }
        }
        const bool refused = !commit && round % 4 == 1;
        if (refused) {
            ASSERT_EQ(producer->produce("txn-small", "big", std::string(500, 'x'), {}, nullptr),
                      common::ProduceStatus::kEnqueued);
            EXPECT_THROW(producer->commit_transaction(30s), common::TransactionError);
        } else {
            ASSERT_EQ(producer->flush(30s), 0);
        }
        if (commit) {
            producer->commit_transaction(30s);
        } else {
            producer->abort_transaction(30s);
            if (round % 2 == 1) {
                producer = make();  // as the relay does after a fatal error: next epoch
            }
        }
        scan();
    }
    EXPECT_EQ(seen, committed);
}

// A relay killed mid-transaction, and the next one taking over: the first
// producer's records are in the log but its transaction never ended; the
// second's init_transactions() fences it and aborts that transaction. A
// read_committed read, right after, sees only what the second committed.
TEST(KafkaBroker, ApacheTakeoverAbortsTheKilledProducersTransactionForReadCommitted) {
    if (!testing::apache_engine()) {
        GTEST_SKIP() << "the mock cluster does not fence producers (DESIGN.md)";
    }
    BrokerProcess broker({.brokers = 3, .partitions = 1, .topics = {"txn-takeover"}});
    const std::string id = "txn-takeover-" + std::to_string(::getpid());
    const common::KafkaConfig config{{"bootstrap.servers", broker.bootstrap()},
                                     {"transactional.id", id}};
    std::set<std::string> committed;
    for (int round = 0; round < 6; ++round) {
        // The "killed" producer: its records appended, its transaction open.
        auto killed = std::make_unique<common::Producer>(config);
        killed->init_transactions(30s);
        killed->begin_transaction();
        for (int i = 0; i < 4; ++i) {
            ASSERT_EQ(killed->produce("txn-takeover",
                                      "k" + std::to_string(round) + "-" + std::to_string(i), "v",
                                      {{"fate", "abort"}}, nullptr, 0),
                      common::ProduceStatus::kEnqueued);
        }
        ASSERT_EQ(killed->flush(30s), 0);
        // Its successor, while it is still alive and never heard from again.
        common::Producer next(config);
        next.init_transactions(60s);
        next.begin_transaction();
        for (int i = 0; i < 3; ++i) {
            const std::string key = "c" + std::to_string(round) + "-" + std::to_string(i);
            ASSERT_EQ(next.produce("txn-takeover", key, "v", {{"fate", "commit"}}, nullptr, 0),
                      common::ProduceStatus::kEnqueued);
            committed.insert(key);
        }
        next.commit_transaction(30s);
        killed->purge();
        killed.reset();
    }
    common::Consumer reader({{"bootstrap.servers", broker.bootstrap()},
                             {"group.id", "txn-takeover-reader"},
                             {"isolation.level", "read_committed"},
                             {"enable.partition.eof", "true"}});
    reader.assign({{"txn-takeover", 0, common::kOffsetBeginning}});
    std::set<std::string> seen;
    bool eof = false;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!eof && std::chrono::steady_clock::now() < deadline) {
        const common::Message m = reader.poll(200ms);
        if (!m) {
            continue;
        }
        if (m.is_partition_eof()) {
            eof = true;
            continue;
        }
        if (m.error()) {
            continue;
        }
        const std::string key(m.key().value_or(""));
        EXPECT_EQ(m.header("fate"), std::optional<std::string_view>("commit"))
            << "read a record of the fenced transaction: " << key << " at " << m.offset();
        seen.insert(key);
    }
    reader.close();
    EXPECT_TRUE(eof);
    EXPECT_EQ(seen, committed);
}

TEST(KafkaBroker, MockAnswersConfigAndResetWithUnsupported) {
    if (testing::apache_engine()) GTEST_SKIP() << "the mock's answer";
    BrokerProcess broker;
    broker.process().write_line("config mesh.transfer-events min.insync.replicas=3");
    EXPECT_EQ(broker.process().read_line(10s), std::optional<std::string>("error unsupported"));
    broker.process().write_line("reset 4 mesh.transfer-events");
    EXPECT_EQ(broker.process().read_line(10s), std::optional<std::string>("error unsupported"));
}

// No JVM or no jars: one line saying what to install or run, exit 1, at once.
TEST(KafkaBroker, ApacheEngineWithoutJavaOrJarsIsOneLineAndExitOne) {
    const std::string meshhook = testing::binary_path("meshhook").string();
    {
        testing::Process broker({meshhook, "broker", "--engine", "apache"},
                                {{"PATH", "/nonexistent"}, {"JAVA_HOME", ""}});
        EXPECT_EQ(broker.wait(10s), std::optional<int>(1));
        const auto err = broker.stderr_text();
        EXPECT_NE(err.find("needs a Java 17+ runtime"), std::string::npos) << err;
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    }
    {
        testing::Process broker(
            {meshhook, "broker", "--engine", "apache", "--kafka-libs", "/nonexistent"});
        EXPECT_EQ(broker.wait(10s), std::optional<int>(1));
        const auto err = broker.stderr_text();
        EXPECT_NE(err.find("make kafka"), std::string::npos) << err;
        EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    }
}

TEST(KafkaBroker, BrokerExitsWhenItsOwnerClosesStdin) {
    BrokerProcess broker;
    broker.process().close_stdin();
    EXPECT_EQ(broker.process().wait(10s), 0);
}

}  // namespace
}  // namespace meshhook
