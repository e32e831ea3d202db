// kill -9 meshhook-consumer at random moments while thousands of events for
// hundreds of transfers flow, restart it, and check the outcome on the
// topic: every succeeded transfer has exactly one credit command, none is
// missing, and no other transfer has one. On SQLite and on PostgreSQL, and
// with two consumers sharing the partitions on PostgreSQL. And the outbox
// relay's own guarantees: a store restored from an earlier copy, a relay that
// lost its lock while its sends were held, a relay fenced mid-run, an aborted
// transaction at the tail of the credit topic, a record Kafka refuses.

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "common/kafka.hpp"
#include "common/transfer_event.hpp"
#include "common/wire.hpp"
#include "consumer/encoding.hpp"
#include "consumer/state_machine.hpp"
#include "consumer/store.hpp"
#include "tests/integration/consumer/harness.hpp"
#include "tests/support/process.hpp"

namespace meshhook::testing {
namespace {

constexpr int kTransfers = 400;
constexpr int kKillsPerStore = 10;

PostgresServer& postgres() {
    static PostgresServer server;
    return server;
}

struct Transfer {
    std::string id;
    bool succeeds = false;
    std::string amount;
};

std::string body(const Transfer& t, std::string_view status, int delivery, int seq) {
    const bool succeeded = status == "Succeeded";
    std::string b =
        "{\"Id\":\"delivery-" + t.id + "-" + std::string(status) + "-" + std::to_string(delivery) +
        "\",\"EventId\":\"event-" + t.id + "-" + std::string(status) +
        "\",\"SentTimestamp\":" + std::to_string(1764316800 + seq) + ",\"UserId\":\"user-" + t.id +
        "\",\"TransactionId\":\"order-" + t.id + "\",\"TransferId\":\"" + t.id +
        "\",\"TransferStatus\":\"" + std::string(status) +
        "\",\"TxHash\":" + (succeeded ? "\"0xhash" + t.id + "\"" : std::string("null")) +
        ",\"Chain\":\"Ethereum\",\"Token\":\"USDC\",\"DestinationAddress\":\"0xdest" + t.id +
        "\",\"SourceAccountProvider\":\"Coinbase\",\"SourceAmount\":1.5,"
        "\"DestinationAmount\":" +
        (succeeded ? t.amount : std::string("null")) +
        ",\"RefundAddress\":null,\"Timestamp\":1764316799000}";
    return b;
}

struct Workload {
    std::vector<Transfer> transfers;
    std::vector<std::pair<std::string, std::string>> events;  // key, body
};

// Every transfer: pending, processing and its terminal status, each
// delivered one to three times, all of it interleaved at random.
Workload make_workload(std::mt19937& rng, int transfers = kTransfers) {
    Workload w;
    std::uniform_int_distribution<int> copies(1, 3);
    std::uniform_int_distribution<int> cents(1, 999999);
    for (int i = 0; i < transfers; ++i) {
        Transfer t;
        t.id = "e2e-" + std::to_string(i) + "-" + std::to_string(rng() % 100000);
        t.succeeds = i % 3 != 0;
        // 21 significant digits: a double would round it.
        t.amount = std::to_string(cents(rng)) + ".0000000000000" + std::to_string(100000 + i);
        w.transfers.push_back(t);
        for (const std::string_view status :
             {"Pending", "Processing", t.succeeds ? "Succeeded" : "Failed"}) {
            const int n = copies(rng);
            for (int d = 0; d < n; ++d) {
                w.events.emplace_back(t.id, "");
                w.events.back().second = body(t, status, d, static_cast<int>(w.events.size()));
            }
        }
    }
    std::shuffle(w.events.begin(), w.events.end(), rng);
    return w;
}

std::string expected_command(const Transfer& t) {
    common::TransferEventParser parser;
    const std::string b = body(t, "Succeeded", 0, 0);
    const auto parsed = parser.parse(b);
    EXPECT_TRUE(parsed.ok()) << b;
    return consumer::encode_credit_command(consumer::TransferEvent::from_view(parsed.event, ""));
}

// Feeds the workload in small chunks over `span`, so that every consumer
// incarnation finds work in hand when it is killed.
class PacedFeeder {
public:
    PacedFeeder(const std::string& bootstrap, const Workload& w, std::chrono::milliseconds span)
        : thread_([this, bootstrap, &w, span] {
              Feeder feeder(bootstrap);
              constexpr std::size_t kChunk = 40;
              const auto chunks = (w.events.size() + kChunk - 1) / kChunk;
              const auto pause = span / static_cast<long>(chunks);
              for (std::size_t i = 0; i < w.events.size(); ++i) {
                  feeder.send(w.events[i].first, w.events[i].second);
                  if ((i + 1) % kChunk == 0) {
                      feeder.flush();
                      // Pacing the load, not waiting for anything.
                      std::this_thread::sleep_for(pause);
                  }
              }
              feeder.flush();
              done_.store(true);
          }) {}
    // The thread reads the workload as it goes: a temporary would dangle.
    PacedFeeder(const std::string&, Workload&&, std::chrono::milliseconds) = delete;
    ~PacedFeeder() { thread_.join(); }
    bool done() const { return done_.load(); }

private:
    std::atomic<bool> done_{false};
    std::thread thread_;
};

class CrashTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        seed_ = static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count() %
                                      1000000);
        if (const char* seed = std::getenv("MESHHOOK_TEST_SEED")) {  // to replay a failure
            seed_ = static_cast<unsigned>(std::strtoul(seed, nullptr, 10));
        }
        rng_.seed(seed_);
        RecordProperty("seed", static_cast<int>(seed_));
        if (GetParam() == "sqlite") {
            dir_ = std::filesystem::temp_directory_path() / unique_name("meshhook-crash");
            std::filesystem::create_directories(dir_);
            store_url_ = "sqlite://" + (dir_ / "meshhook.db").string();
        } else {
            std::string name = unique_name("crash");
            std::replace(name.begin(), name.end(), '-', '_');
            store_url_ = postgres().create_database(name);
        }
    }
    void TearDown() override {
        if (!dir_.empty()) {
            std::filesystem::remove_all(dir_);
        }
    }

    ConsumerRun run(const std::string& group) {
        ConsumerRun r;
        r.bootstrap = broker_.bootstrap();
        r.store_url = store_url_;
        r.group_id = group;
        // Small batches: many transactions, so kills land inside them.
        r.extra_args = {"--batch-max", "10"};
        return r;
    }

    std::chrono::milliseconds random_ms(int lo, int hi) {
        return std::chrono::milliseconds(std::uniform_int_distribution<int>(lo, hi)(rng_));
    }

    // For a failure message: where the store says the credit went, and what
    // a read_uncommitted reader finds there.
    std::string missing_detail(const std::string& transfer_id) {
        std::string out;
        auto store = consumer::open_store(store_url_);
        for (const consumer::OutboxRow& row : store->outbox_rows()) {
            if (row.key != transfer_id) {
                continue;
            }
            out += "\n  outbox row " + std::to_string(row.id) + " " + row.dedup_key +
                   " sent_ms=" + std::to_string(row.sent_ms.value_or(-1)) +
                   " at=" + std::to_string(row.sent_partition.value_or(-1)) + "@" +
                   std::to_string(row.sent_offset.value_or(-1));
            if (!row.sent_partition) {
                continue;
            }
            common::Consumer raw({{"bootstrap.servers", broker_.bootstrap()},
                                  {"group.id", "missing-detail"},
                                  {"isolation.level", "read_uncommitted"}});
            raw.assign({{row.topic, *row.sent_partition,
                         std::max<std::int64_t>(0, *row.sent_offset - 3)}});
            for (int i = 0; i < 30; ++i) {
                const common::Message m = raw.poll(200ms);
                if (!m || m.error()) {
                    continue;
                }
                out += "\n    uncommitted " + std::to_string(m.offset()) + " " +
                       std::string(m.header(wire::kHeaderDedupKey).value_or("?"));
                if (m.offset() > *row.sent_offset + 3) {
                    break;
                }
            }
            raw.close();
            // And whether a read_committed reader gets that very record.
            common::Consumer committed({{"bootstrap.servers", broker_.bootstrap()},
                                        {"group.id", "missing-detail"},
                                        {"isolation.level", "read_committed"},
                                        {"enable.partition.eof", "true"}});
            committed.assign({{row.topic, *row.sent_partition, *row.sent_offset}});
            out += "\n    read_committed from there:";
            for (int i = 0; i < 30; ++i) {
                const common::Message m = committed.poll(200ms);
                if (!m) {
                    continue;
                }
                if (m.is_partition_eof()) {
                    out += " EOF@" + std::to_string(m.offset());
                    break;
                }
                if (!m.error()) {
                    out += " " + std::to_string(m.offset());
                }
            }
            committed.close();
        }
        return out;
    }

    void verify(const Workload& w) {
        auto store = consumer::open_store(store_url_);
        TopicReader reader(broker_.bootstrap());
        ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader); }, 120s))
            << "seed " << seed_;
        const auto credits = reader.read_all(kCreditTopic);
        std::map<std::string, std::vector<std::string>> by_transfer;
        for (const TopicRecord& r : credits) {
            by_transfer[r.key].push_back(r.value);
        }
        int succeeded = 0;
        for (const Transfer& t : w.transfers) {
            const auto it = by_transfer.find(t.id);
            if (t.succeeds) {
                ++succeeded;
                ASSERT_NE(it, by_transfer.end())
                    << "missing credit for " << t.id << " seed " << seed_ << missing_detail(t.id);
                ASSERT_EQ(it->second.size(), 1U) << "credited twice: " << t.id << " seed " << seed_;
                EXPECT_EQ(it->second[0], expected_command(t));
                const auto row = store->transfer("production", t.id);
                ASSERT_TRUE(row.has_value());
                EXPECT_TRUE(row->credited);
                EXPECT_EQ(row->amount, t.amount);
            } else {
                EXPECT_EQ(it, by_transfer.end()) << "failed transfer credited: " << t.id;
                EXPECT_EQ(store->transfer("production", t.id)->status, "failed");
            }
        }
        EXPECT_EQ(credits.size(), static_cast<std::size_t>(succeeded)) << "seed " << seed_;
        EXPECT_TRUE(reader.read_all(kReviewTopic).empty());
        EXPECT_TRUE(reader.read_all(kAnomalyTopic).empty());
    }

    BrokerProcess broker_;
    std::filesystem::path dir_;
    std::string store_url_;
    unsigned seed_ = 0;
    std::mt19937 rng_;
};

TEST_P(CrashTest, KilledAtRandomMomentsStillCreditsEverySucceededTransferExactlyOnce) {
    const Workload w = make_workload(rng_);
    int kills = 0;
    int killed_mid_stream = 0;  // incarnations that applied something before dying
    auto probe = consumer::open_store(store_url_);
    const auto applied = [&] {
        std::int64_t sum = 0;
        for (const auto& [p, offset] : probe->offsets(kInputTopic)) {
            sum += offset;
        }
        return sum;
    };
    Feeder feeder(broker_.bootstrap());
    std::size_t fed = 0;
    while (kills < kKillsPerStore) {
        // A new group per incarnation: the store, not Kafka, holds the
        // offsets, and the test broker would otherwise hold a rejoin for the
        // dead member's whole session timeout.
        ConsumerRun r = run(unique_name("crash-group"));
        const std::int64_t before = applied();
        auto process = start_consumer(r);
        // Each incarnation gets its slice of the stream while it starts.
        // (At least a few batches, even when earlier incarnations were
        // given part of this one's slice.)
        const std::size_t slice_end =
            std::max(w.events.size() * static_cast<std::size_t>(kills + 1) /
                         static_cast<std::size_t>(kKillsPerStore),
                     std::min(w.events.size(), fed + 40));
        for (; fed < slice_end; ++fed) {
            feeder.send(w.events[fed].first, w.events[fed].second);
        }
        feeder.flush();
        bool mid_stream = false;
        if (kills % 4 == 0) {
            // During start-up and the ~3 s group join: a random moment.
            std::this_thread::sleep_for(random_ms(0, 3000));
            ASSERT_TRUE(process->running()) << process->stderr_text();
            process->signal(SIGKILL);
        } else {
            // Mid-stream, made rather than hoped for: freeze the consumer
            // (SIGSTOP) the moment the store shows it has applied part of its
            // backlog, confirm from the store that part is still unapplied,
            // then kill it. A consumer that got through its whole backlog
            // before it was frozen is thawed and given more of the stream.
            std::int64_t seen = before;
            while (!mid_stream) {
                ASSERT_TRUE(wait_until([&] { return applied() > seen; }, 60s))
                    << process->stderr_text();
                ASSERT_TRUE(process->running()) << process->stderr_text();
                process->signal(SIGSTOP);
                seen = applied();
                if (seen < static_cast<std::int64_t>(fed)) {
                    mid_stream = true;
                    break;
                }
                process->signal(SIGCONT);
                ASSERT_LT(fed, w.events.size()) << "the workload ran out before a mid-stream kill";
                const std::size_t more = std::min(w.events.size(), fed + 40);
                for (; fed < more; ++fed) {
                    feeder.send(w.events[fed].first, w.events[fed].second);
                }
                feeder.flush();
            }
            process->signal(SIGKILL);
        }
        ASSERT_TRUE(process->wait(10s).has_value());
        ++kills;
        const std::int64_t after = applied();
        std::printf("kill %d: applied %lld -> %lld of %zu fed, outbox unsent %lld\n", kills,
                    static_cast<long long>(before), static_cast<long long>(after), fed,
                    static_cast<long long>(probe->outbox_stats().unsent));
        if (after > before && after < static_cast<std::int64_t>(fed)) {
            ++killed_mid_stream;
        } else {
            EXPECT_FALSE(mid_stream) << "frozen mid-stream, yet the store moved after the kill";
        }
    }
    // The kills must have hit a consumer at work, not only idle ones: the
    // seven mid-stream kills above each freeze one at work, so this holds on
    // a loaded machine too.
    EXPECT_GE(killed_mid_stream, 7);
    ConsumerRun last = run(unique_name("crash-group"));
    auto survivor = start_consumer(last);
    verify(w);
    EXPECT_GE(kills, kKillsPerStore);
    survivor->signal(SIGTERM);
    EXPECT_EQ(survivor->wait(30s), std::optional<int>(0)) << survivor->stderr_text();
}

// PostgreSQL's client tools, from the server's Debian package (as tests/support).
std::string pg_tool(const std::string& name) {
    return "/usr/lib/postgresql/15/bin/" + name;
}

// Runs psql against `url`; returns its unaligned output.
std::string psql(const std::string& url, const std::string& sql) {
    Process p({pg_tool("psql"), url, "-v", "ON_ERROR_STOP=1", "-Atc", sql});
    std::string out = p.read_all(30s);
    EXPECT_EQ(p.wait(30s), std::optional<int>(0)) << sql << ": " << p.stderr_text();
    return out;
}

std::int64_t sent_rows(consumer::Store& store) {
    const auto rows = store.outbox_rows();
    return std::count_if(rows.begin(), rows.end(),
                         [](const consumer::OutboxRow& r) { return r.sent_ms.has_value(); });
}

// A copy of the store taken mid-run and put back after the run (a restore
// from backup, a failover to a standby that lagged): the consumer re-applies
// the events after the copy and re-creates their credits, and the relay finds
// them already on the topic. Today: "45 of 100 credits written twice".
TEST_P(CrashTest, StoreRestoredFromAnEarlierCopySendsNoCreditTwiceAndMissesNone) {
    const Workload w = make_workload(rng_, 200);
    ConsumerRun r = run(unique_name("restore-group"));
    const std::filesystem::path copy =
        std::filesystem::temp_directory_path() / unique_name("meshhook-store-copy");
    std::filesystem::create_directories(copy);
    std::int64_t sent_in_copy = 0;
    {
        auto consumer = start_consumer(r);
        auto store = consumer::open_store(store_url_);
        {
            PacedFeeder feeder(broker_.bootstrap(), w, 8s);
            ASSERT_TRUE(wait_until([&] { return sent_rows(*store) >= 30; }, 60s));
            if (GetParam() == "sqlite") {
                // A crash-consistent copy: the process frozen, its files copied.
                consumer->signal(SIGSTOP);
                const std::filesystem::path db = store_url_.substr(std::string("sqlite://").size());
                for (const char* suffix : {"", "-wal"}) {
                    const std::filesystem::path from = db.string() + suffix;
                    if (std::filesystem::exists(from)) {
                        std::filesystem::copy_file(from, copy / from.filename());
                    }
                }
                consumer->signal(SIGCONT);
            } else {
                Process dump(
                    {pg_tool("pg_dump"), "-Fc", "-f", (copy / "store.dump").string(), store_url_});
                ASSERT_EQ(dump.wait(60s), std::optional<int>(0)) << dump.stderr_text();
            }
        }
        TopicReader reader(broker_.bootstrap());
        ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader); }, 120s));
        consumer->signal(SIGTERM);
        ASSERT_EQ(consumer->wait(30s), std::optional<int>(0)) << consumer->stderr_text();
    }
    // Put the copy back.
    if (GetParam() == "sqlite") {
        const std::filesystem::path db = store_url_.substr(std::string("sqlite://").size());
        for (const char* suffix : {"", "-wal", "-shm"}) {
            std::filesystem::remove(db.string() + suffix);
        }
        for (const auto& entry : std::filesystem::directory_iterator(copy)) {
            std::filesystem::copy_file(entry.path(), db.parent_path() / entry.path().filename());
        }
    } else {
        std::string name = unique_name("restored");
        std::replace(name.begin(), name.end(), '-', '_');
        store_url_ = postgres().create_database(name);
        Process restore({pg_tool("pg_restore"), "--no-owner", "-d", store_url_,
                         (copy / "store.dump").string()});
        ASSERT_EQ(restore.wait(60s), std::optional<int>(0)) << restore.stderr_text();
    }
    std::filesystem::remove_all(copy);
    {
        auto restored = consumer::open_store(store_url_);
        sent_in_copy = sent_rows(*restored);
        const auto succeeded = std::count_if(w.transfers.begin(), w.transfers.end(),
                                             [](const Transfer& t) { return t.succeeds; });
        ASSERT_LT(sent_in_copy, succeeded) << "the copy must be behind the topics";
    }
    r.store_url = store_url_;
    auto again = start_consumer(r);
    verify(w);
    EXPECT_NE(again->stderr_text().find("already on their topics"), std::string::npos)
        << again->stderr_text();
    again->signal(SIGTERM);
    EXPECT_EQ(again->wait(30s), std::optional<int>(0)) << again->stderr_text();
}

// A new, empty store under a pipeline that has already run (a lost SQLite
// file, a fresh database): the consumer refuses to start until an operator
// chooses, and with --start-from earliest it applies every event again
// without sending one credit twice.
TEST_P(CrashTest, EmptyStoreOverTopicsWithDataRefusesThenStartsFromEarliestWithoutDuplicates) {
    const Workload w = make_workload(rng_, 150);
    ConsumerRun r = run(unique_name("empty-store-group"));
    {
        auto consumer = start_consumer(r);
        { PacedFeeder feeder(broker_.bootstrap(), w, 3s); }
        auto store = consumer::open_store(store_url_);
        TopicReader reader(broker_.bootstrap());
        ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader); }, 120s));
        consumer->signal(SIGTERM);
        ASSERT_EQ(consumer->wait(30s), std::optional<int>(0)) << consumer->stderr_text();
    }
    if (GetParam() == "sqlite") {
        store_url_ = "sqlite://" + (dir_ / "new.db").string();
    } else {
        std::string name = unique_name("empty");
        std::replace(name.begin(), name.end(), '-', '_');
        store_url_ = postgres().create_database(name);
    }
    r.store_url = store_url_;
    {
        Process refused({binary_path("meshhook-consumer").string(), "--brokers",
                         broker_.bootstrap(), "--store", store_url_, "--group-id", r.group_id,
                         "--metrics-listen", "127.0.0.1:0"});
        EXPECT_EQ(refused.wait(60s), std::optional<int>(2));
        EXPECT_NE(refused.stderr_text().find("--start-from"), std::string::npos)
            << refused.stderr_text();
    }
    r.extra_args.insert(r.extra_args.end(), {"--start-from", "earliest"});
    auto again = start_consumer(r);
    verify(w);
    again->signal(SIGTERM);
    EXPECT_EQ(again->wait(30s), std::optional<int>(0)) << again->stderr_text();
}

// The relay's transactional.id as meshhook-consumer derives it.
std::string relay_transactional_id(const std::string& group) {
    return "meshhook-relay." + group + "." + kCreditTopic;
}

// Another producer takes the relay's transactional.id mid-run (as a second
// relay would): the relay's producer is fenced, a fatal state. It must build
// a new one, fence the intruder in turn, and go on: one credit per transfer.
TEST_P(CrashTest, RelayWhoseProducerIsFencedMidRunBuildsANewOneAndGoesOn) {
    if (!apache_engine()) {
        GTEST_SKIP() << "the mock cluster does not fence producers (DESIGN.md): Apache Kafka only";
    }
    const Workload w = make_workload(rng_, 150);
    const std::string group = unique_name("fence-group");
    ConsumerRun r = run(group);
    auto consumer = start_consumer(r);
    {
        PacedFeeder feeder(broker_.bootstrap(), w, 8s);
        auto store = consumer::open_store(store_url_);
        ASSERT_TRUE(wait_until([&] { return sent_rows(*store) >= 20; }, 60s));
        common::Producer intruder({{"bootstrap.servers", broker_.bootstrap()},
                                   {"transactional.id", relay_transactional_id(group)}});
        intruder.init_transactions(30s);
        ASSERT_TRUE(wait_until(
            [&] { return consumer->stderr_text().find("stepping down") != std::string::npos; },
            60s))
            << consumer->stderr_text();
    }
    verify(w);
    consumer->signal(SIGTERM);
    EXPECT_EQ(consumer->wait(30s), std::optional<int>(0)) << consumer->stderr_text();
}

// A transaction someone aborted sits at the tail of every credit partition:
// the recovery scan must end at the partition's end (read_committed), not
// wait for a record at high - 1 that is a marker. Today: the scan never ends.
TEST_P(CrashTest, AbortedTransactionAtTheTailOfTheCreditTopicDoesNotStopTheRelay) {
    if (!apache_engine()) {
        GTEST_SKIP() << "the mock cluster writes no transaction markers (DESIGN.md): Apache only";
    }
    {
        common::Producer other({{"bootstrap.servers", broker_.bootstrap()},
                                {"transactional.id", unique_name("aborted-tx")}});
        other.init_transactions(30s);
        other.begin_transaction();
        for (std::int32_t p = 0; p < 4; ++p) {
            ASSERT_EQ(
                other.produce(kCreditTopic, "aborted", "{}",
                              {{wire::kHeaderDedupKey, "credit:production:aborted"}}, nullptr, p),
                common::ProduceStatus::kEnqueued);
        }
        ASSERT_EQ(other.flush(30s), 0);
        other.abort_transaction(30s);
    }
    const Workload w = make_workload(rng_, 100);
    ConsumerRun r = run(unique_name("aborted-group"));
    // The credit topic is not empty (aborted records and markers count): an
    // empty store over it waits for an operator's choice.
    r.extra_args.insert(r.extra_args.end(), {"--start-from", "earliest"});
    auto consumer = start_consumer(r);
    { PacedFeeder feeder(broker_.bootstrap(), w, 3s); }
    verify(w);
    consumer->signal(SIGTERM);
    EXPECT_EQ(consumer->wait(30s), std::optional<int>(0)) << consumer->stderr_text();
}

// A review record too large for its topic can never be produced: after a few
// refusals it is parked with an anomaly row, and every credit still flows.
TEST_P(CrashTest, RecordKafkaRefusesIsParkedAndTheCreditsBehindItFlow) {
    if (!apache_engine()) {
        GTEST_SKIP() << "the mock cluster has no per-topic max.message.bytes: Apache Kafka only";
    }
    // Small enough to refuse a review record (~500 bytes), large enough for
    // the transaction markers the coordinator writes there (~80 bytes).
    broker_.alter_topic_config(kReviewTopic, "max.message.bytes=200");
    Workload w = make_workload(rng_, 100);
    // Two succeeded transfers on a chain policy does not allow: reviews.
    for (int i = 0; i < 2; ++i) {
        Transfer t{"refused-" + std::to_string(i), true, "10.5"};
        std::string b = body(t, "Succeeded", 0, i);
        b.replace(b.find("\"Chain\":\"Ethereum\""), 18, "\"Chain\":\"Solana\"");
        w.events.insert(w.events.begin() + 50 * i, {t.id, b});
    }
    ConsumerRun r = run(unique_name("refused-group"));
    r.extra_args.insert(r.extra_args.end(), {"--allowed-assets", "USDC:Ethereum"});
    auto consumer = start_consumer(r);
    { PacedFeeder feeder(broker_.bootstrap(), w, 3s); }
    verify(w);  // every credit once; nothing on the review topic
    auto store = consumer::open_store(store_url_);
    EXPECT_EQ(store->outbox_stats().parked, 2);
    for (const consumer::OutboxRow& row : store->outbox_rows()) {
        if (row.parked_ms) {
            EXPECT_EQ(row.topic, kReviewTopic) << "parked a row Kafka accepts: " << row.dedup_key;
        }
    }
    const auto anomalies = store->anomalies();
    EXPECT_EQ(std::count_if(
                  anomalies.begin(), anomalies.end(),
                  [](const consumer::AnomalyRecord& a) { return a.kind == "outbox_row_parked"; }),
              2);
    consumer->signal(SIGTERM);
    EXPECT_EQ(consumer->wait(30s), std::optional<int>(0)) << consumer->stderr_text();
}

INSTANTIATE_TEST_SUITE_P(Stores, CrashTest, ::testing::Values("sqlite", "postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                             return param.param;
                         });

class SharedPostgres : public CrashTest {};

// The partitions of the consumer's latest assignment, e.g. " 0@12 2@start".
std::string last_assignment(Process& process) {
    const std::string log = process.stderr_text();
    const std::string marker = "assigned mesh.transfer-events:";
    const auto at = log.rfind(marker);
    if (at == std::string::npos) {
        return {};
    }
    const auto begin = at + marker.size();
    return log.substr(begin, log.find('\n', begin) - begin);
}

int partition_count(const std::string& assignment) {
    return static_cast<int>(std::count(assignment.begin(), assignment.end(), '@'));
}

// Two instances in one group share the partitions; one is killed mid-run
// and the other takes its partitions over from the store's offsets.
TEST_P(SharedPostgres, TwoConsumersOneKilledMidRunStillCreditExactlyOnce) {
    const Workload w = make_workload(rng_);
    const std::string group = unique_name("shared-group");
    ConsumerRun a = run(group);
    ConsumerRun b = run(group);
    auto first = start_consumer(a);
    auto second = start_consumer(b);
    {
        PacedFeeder feeder(broker_.bootstrap(), w, 20s);
        auto store = consumer::open_store(store_url_);
        // Mid-run: both have applied something.
        ASSERT_TRUE(wait_until(
            [&] {
                return store->offsets(kInputTopic).size() >= 2 && !store->outbox_rows().empty();
            },
            60s));
        ASSERT_TRUE(wait_until(
            [&] {
                return partition_count(last_assignment(*first)) > 0 &&
                       partition_count(last_assignment(*second)) > 0;
            },
            30s));
        std::this_thread::sleep_for(random_ms(0, 3000));
        first->signal(SIGKILL);
        ASSERT_TRUE(first->wait(10s).has_value());
    }
    verify(w);
    second->signal(SIGTERM);
    EXPECT_EQ(second->wait(30s), std::optional<int>(0)) << second->stderr_text();
}

// A consumer paused (SIGSTOP) long enough to lose its partitions, then
// resumed: whatever it had in hand is refused by the offset fence or
// dropped on revocation, and the result is still one credit per transfer.
TEST_P(SharedPostgres, PausedConsumerThatLostItsPartitionsCannotCreditTwice) {
    const Workload w = make_workload(rng_);
    const std::string group = unique_name("zombie-group");
    ConsumerRun a = run(group);
    ConsumerRun b = run(group);
    auto zombie = start_consumer(a);
    auto survivor = start_consumer(b);
    {
        PacedFeeder feeder(broker_.bootstrap(), w, 30s);
        auto store = consumer::open_store(store_url_);
        ASSERT_TRUE(wait_until(
            [&] {
                return store->offsets(kInputTopic).size() >= 2 && !store->outbox_rows().empty();
            },
            60s));
        // The group has settled with partitions on both instances.
        ASSERT_TRUE(wait_until(
            [&] {
                return partition_count(last_assignment(*zombie)) > 0 &&
                       partition_count(last_assignment(*survivor)) > 0 &&
                       partition_count(last_assignment(*zombie)) +
                               partition_count(last_assignment(*survivor)) ==
                           4;
            },
            30s));
        std::this_thread::sleep_for(random_ms(0, 1000));
        zombie->signal(SIGSTOP);
        // The survivor takes every partition once the zombie's session
        // expires (~6 s).
        const bool taken_over =
            wait_until([&] { return partition_count(last_assignment(*survivor)) == 4; }, 40s);
        zombie->signal(SIGCONT);
        ASSERT_TRUE(taken_over) << survivor->stderr_text();
    }
    verify(w);
    zombie->signal(SIGTERM);
    survivor->signal(SIGTERM);
    EXPECT_EQ(zombie->wait(30s), std::optional<int>(0)) << zombie->stderr_text();
    EXPECT_EQ(survivor->wait(30s), std::optional<int>(0)) << survivor->stderr_text();
}

// The active relay is frozen (a long GC-like pause, a VM freeze) while its
// sends wait for Kafka, and its PostgreSQL session is cut: its lock is gone,
// the other instance's relay takes over and sends the same rows. When the
// frozen one resumes, Kafka has fenced it: its transaction is aborted and its
// writes refused. Today: "49 of 112 credits written twice".
TEST_P(SharedPostgres, RelayThatLostItsLockWhileItsSendsWereHeldIsFencedByTheNextOne) {
    if (!apache_engine()) {
        GTEST_SKIP() << "the mock cluster does not fence producers (DESIGN.md): Apache Kafka only";
    }
    // While one broker is down, the credit topic refuses acks=all: the
    // relay's sends are held, and the input topic still flows.
    broker_.alter_topic_config(kCreditTopic, "min.insync.replicas=3");
    const Workload w = make_workload(rng_, 300);
    const std::string group = unique_name("fenced-group");
    ConsumerRun a = run(group);
    ConsumerRun b = run(group);
    auto first = start_consumer(a);
    ASSERT_TRUE(wait_until(
        [&] { return first->stderr_text().find("outbox relay: active") != std::string::npos; },
        30s));
    auto second = start_consumer(b);
    auto store = consumer::open_store(store_url_);
    {
        PacedFeeder feeder(broker_.bootstrap(), w, 20s);
        ASSERT_TRUE(wait_until([&] { return sent_rows(*store) >= 20; }, 60s));
        broker_.broker_down(3);
        const std::int64_t sent_before = sent_rows(*store);
        // Rows pile up behind the held transaction.
        ASSERT_TRUE(wait_until([&] { return store->outbox_stats().unsent >= 20; }, 60s));
        first->signal(SIGSTOP);
        // Its session ends; the advisory lock goes with it.
        psql(store_url_,
             "SELECT pg_terminate_backend(pid) FROM pg_locks "
             "WHERE locktype = 'advisory' AND granted");
        ASSERT_TRUE(wait_until(
            [&] { return second->stderr_text().find("outbox relay: active") != std::string::npos; },
            30s))
            << second->stderr_text();
        broker_.broker_up(3);
        ASSERT_TRUE(wait_until([&] { return sent_rows(*store) > sent_before + 20; }, 90s))
            << second->stderr_text();
        first->signal(SIGCONT);
    }
    verify(w);
    // The resumed relay learned that it was fenced, and wrote nothing.
    EXPECT_TRUE(wait_until(
        [&] {
            const std::string log = first->stderr_text();
            return log.find("stepping down") != std::string::npos ||
                   log.find("lost the relay lock") != std::string::npos;
        },
        60s))
        << first->stderr_text();
    first->signal(SIGTERM);
    second->signal(SIGTERM);
    EXPECT_EQ(first->wait(30s), std::optional<int>(0)) << first->stderr_text();
    EXPECT_EQ(second->wait(30s), std::optional<int>(0)) << second->stderr_text();
}

// /healthz is liveness: it fails while a thread is hung (here: every store
// call blocked behind a lock an operator holds), so Kubernetes restarts the
// pod, and it answers 200 again once the threads move.
TEST_P(SharedPostgres, HealthzFailsWhileTheConsumersThreadsHangAndRecoversAfter) {
    const Workload w = make_workload(rng_, 30);
    ConsumerRun r = run(unique_name("healthz-group"));
    r.extra_args.insert(r.extra_args.end(), {"--stall-after-s", "5"});
    auto consumer = start_consumer(r);
    { PacedFeeder feeder(broker_.bootstrap(), w, 1s); }
    auto store = consumer::open_store(store_url_);
    TopicReader reader(broker_.bootstrap());
    ASSERT_TRUE(wait_until([&] { return caught_up(*store, reader); }, 60s));
    EXPECT_EQ(http_get(r.metrics_port, "/healthz").first, 200);
    // An operator's session holds every table the threads touch.
    Process locker({pg_tool("psql"), store_url_, "-Atq", "-v", "ON_ERROR_STOP=1"});
    locker.write_line(
        "BEGIN; LOCK TABLE outbox, partition_offsets, transfers IN ACCESS EXCLUSIVE MODE; "
        "SELECT 'locked';");
    ASSERT_EQ(locker.read_line(30s), std::optional<std::string>("locked"));
    // New events make the consume loop write; the relay polls the outbox.
    const Workload more = make_workload(rng_, 5);
    { PacedFeeder feeder(broker_.bootstrap(), more, 1s); }
    EXPECT_TRUE(wait_until([&] { return http_get(r.metrics_port, "/healthz").first == 503; }, 30s));
    const std::string body = http_get(r.metrics_port, "/healthz").second;
    EXPECT_NE(body.find("stalled"), std::string::npos) << body;
    locker.write_line("COMMIT;");
    locker.close_stdin();
    EXPECT_TRUE(wait_until([&] { return http_get(r.metrics_port, "/healthz").first == 200; }, 30s));
    consumer->signal(SIGTERM);
    EXPECT_EQ(consumer->wait(30s), std::optional<int>(0)) << consumer->stderr_text();
}

INSTANTIATE_TEST_SUITE_P(Stores, SharedPostgres, ::testing::Values("postgresql"),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                             return param.param;
                         });

}  // namespace
}  // namespace meshhook::testing
