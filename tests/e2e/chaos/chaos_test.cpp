// Whole-pipeline chaos: two meshhook-ingest, two meshhook-consumer on one
// PostgreSQL store, and the three-broker test cluster, while a sender posts
// thousands of signed deliveries for hundreds of transfers (retries,
// duplicates, out of order) and a fault loop SIGKILLs and restarts processes
// and stops and starts brokers. At the end:
//   - every transfer's state in the store reflects the deliveries answered 200,
//   - every succeeded transfer has exactly one credit command on
//     ledger.credit-commands, with its amount text unchanged,
//   - no other transfer has one.
// Like Mesh, the sender retries any non-200 answer, so every delivery is
// eventually answered 200.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/kafka.hpp"
#include "common/signature.hpp"
#include "consumer/store.hpp"
#include "tests/support/process.hpp"

namespace meshhook {
namespace {

using namespace std::chrono_literals;
using testing::BrokerProcess;
using testing::PostgresServer;
using testing::Process;
using testing::wait_until;

constexpr const char* kSecret = "whsec_chaos_secret";

// ------------------------------------------------------------ the scenario

struct Delivery {
    std::string body;
    std::string signature;
};

struct Transfer {
    std::string id;
    std::string final_status;          // "succeeded", "failed" or "processing"
    std::string amount;                // DestinationAmount text of the succeeded event
    std::vector<Delivery> deliveries;  // in the order they are posted
};

std::string uuid_like(std::mt19937_64& rng) {
    static const char* hex = "0123456789abcdef";
    std::string s;
    for (int i = 0; i < 32; ++i) {
        if (i == 8 || i == 12 || i == 16 || i == 20) s += '-';
        s += hex[rng() % 16];
    }
    return s;
}

// Sent now, as Mesh stamps each delivery: ingest's replay window is on.
std::int64_t sent_now_s() {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string body_for(const std::string& transfer_id, const std::string& event_id,
                     const std::string& status, const std::string& amount, std::mt19937_64& rng,
                     bool camel) {
    std::string status_text = status;
    if (rng() % 2) status_text[0] = static_cast<char>(status_text[0] - 'a' + 'A');
    std::ostringstream b;
    auto name = [camel](std::string pascal) {
        if (camel) pascal[0] = static_cast<char>(pascal[0] - 'A' + 'a');
        return pascal;
    };
    b << "{\"" << name("Id") << "\":\"" << uuid_like(rng) << "\",\"" << name("EventId") << "\":\""
      << event_id << "\",\"" << name("SentTimestamp") << "\":" << sent_now_s() << ",\""
      << name("UserId") << "\":\"user-chaos\",\"" << name("TransactionId") << "\":\"order-"
      << transfer_id.substr(0, 8) << "\",\"" << name("TransferId") << "\":\"" << transfer_id
      << "\",\"" << name("TransferStatus") << "\":\"" << status_text << "\",\"" << name("TxHash")
      << "\":" << (status == "succeeded" ? "\"0xabc\"" : "null") << ",\"" << name("Chain")
      << "\":\"Ethereum\",\"" << name("Token") << "\":\"USDC\",\"" << name("DestinationAddress")
      << "\":\"0x9f2b6A1c3d4E5F60718293A4B5c6d7e8f9012345\",\"" << name("SourceAccountProvider")
      << "\":\"Coinbase\",\"" << name("SourceAmount") << "\":" << amount << ",\""
      << name("DestinationAmount") << "\":" << (status == "succeeded" ? amount : "null") << ",\""
      << name("Timestamp") << "\":1764316799000}";
    return b.str();
}

std::vector<Transfer> make_scenario(int transfers, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<Transfer> out;
    for (int i = 0; i < transfers; ++i) {
        Transfer t;
        t.id = uuid_like(rng);
        const auto kind = rng() % 20;
        std::vector<std::string> statuses = {"pending", "processing"};
        if (kind < 12) {
            statuses.push_back("succeeded");
            t.final_status = "succeeded";
        } else if (kind < 17) {
            statuses = {"pending", "failed"};
            t.final_status = "failed";
        } else {
            t.final_status = "processing";
        }
        // 18 decimals, as Mesh sends: a double would not survive the trip.
        t.amount = std::to_string(1 + rng() % 5000) + "." +
                   std::to_string(100000000000000000ULL + rng() % 900000000000000000ULL);
        const bool camel = rng() % 4 == 0;
        std::vector<Delivery> ds;
        for (const auto& s : statuses) {
            const std::string event_id = uuid_like(rng);
            const int copies = 1 + static_cast<int>(rng() % 3);  // Mesh retries: same EventId
            for (int c = 0; c < copies; ++c) {
                Delivery d;
                d.body = body_for(t.id, event_id, s, t.amount, rng, camel);
                d.signature = common::sign(kSecret, d.body);
                ds.push_back(std::move(d));
            }
        }
        if (rng() % 4 == 0) std::shuffle(ds.begin(), ds.end(), rng);  // out of order
        t.deliveries = std::move(ds);
        out.push_back(std::move(t));
    }
    return out;
}

// Mesh's retry of `d`: the same event under a new delivery Id (the body's
// first field), signed again. Ingest remembers the Ids Kafka acknowledged and
// answers a repeat 200 without producing, so only a new Id proves a write.
Delivery retry_of(const Delivery& d, std::mt19937_64& rng) {
    Delivery r = d;
    const auto id_start = r.body.find("\":\"") + 3;
    r.body.replace(id_start, 36, uuid_like(rng));
    r.signature = common::sign(kSecret, r.body);
    return r;
}

// ------------------------------------------------------------ a tiny client

// One POST per connection; returns the status code, or 0 when the
// connection failed (the server was killed, or not up yet).
int post(std::uint16_t port, const Delivery& d) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return 0;
    }
    std::string req =
        "POST /webhooks/mesh HTTP/1.1\r\nHost: chaos\r\nContent-Type: application/json\r\n"
        "Connection: close\r\nX-Mesh-Signature-256: " +
        d.signature + "\r\nContent-Length: " + std::to_string(d.body.size()) + "\r\n\r\n" + d.body;
    std::size_t off = 0;
    while (off < req.size()) {
        const ssize_t n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n <= 0) {
            ::close(fd);
            return 0;
        }
        off += static_cast<std::size_t>(n);
    }
    std::string resp;
    char buf[2048];
    while (resp.find("\r\n") == std::string::npos) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        resp.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    if (resp.rfind("HTTP/1.1 ", 0) != 0 || resp.size() < 12) return 0;
    return std::atoi(resp.substr(9, 3).c_str());
}

// ------------------------------------------------------------ the services

struct Services {
    std::string bootstrap;
    std::string store_url;
    std::uint16_t ingest_ports[2];
    std::uint16_t consumer_ports[2];
    std::unique_ptr<Process> ingest[2];
    std::unique_ptr<Process> consumer[2];

    void start_ingest(int i) {
        ingest[i] = std::make_unique<Process>(
            std::vector<std::string>{testing::binary_path("meshhook-ingest").string(), "--listen",
                                     "127.0.0.1:" + std::to_string(ingest_ports[i]), "--brokers",
                                     bootstrap, "--threads", "2", "--log-level", "warn",
                                     "--admin-listen", "127.0.0.1:0"},
            std::map<std::string, std::string>{{"MESH_WEBHOOK_SECRET", kSecret}});
    }
    void start_consumer(int i) {
        consumer[i] = std::make_unique<Process>(std::vector<std::string>{
            testing::binary_path("meshhook-consumer").string(), "--brokers", bootstrap, "--store",
            store_url, "--group-id", "chaos", "--metrics-listen",
            "127.0.0.1:" + std::to_string(consumer_ports[i]), "--session-timeout-ms", "6000",
            "--batch-ms", "20", "--log-level", "warn"});
    }
};

// ------------------------------------------------------------ the store

// Read through the store's own read-only API; a store that cannot be read
// yet (PostgreSQL restarting) reads as empty and the caller waits.
std::map<std::string, std::pair<std::string, bool>> store_state(const std::string& url) {
    std::map<std::string, std::pair<std::string, bool>> out;  // transfer -> (status, credited)
    try {
        for (const auto& t : consumer::open_store_reader(url)->transfers()) {
            out[t.transfer_id] = {t.status, t.credited};
        }
    } catch (const consumer::StoreError&) {
    }
    return out;
}

long unsent_outbox_rows(const std::string& url) {
    try {
        const auto stats = consumer::open_store_reader(url)->outbox_stats();
        return static_cast<long>(stats.unsent + stats.parked);
    } catch (const consumer::StoreError&) {
        return -1;
    }
}

// Every record of the topic, read by partition from the beginning to the high watermark.
std::vector<std::pair<std::string, std::string>> read_topic(const std::string& bootstrap,
                                                            const std::string& topic) {
    common::Consumer c({{"bootstrap.servers", bootstrap}, {"group.id", "chaos-reader"}});
    const int parts = c.partition_count(topic, 10s).value_or(0);
    std::vector<common::TopicPartition> tps;
    std::int64_t expected = 0;
    for (int p = 0; p < parts; ++p) {
        auto wm = c.watermarks(topic, p, 10s);
        if (!wm) continue;
        expected += wm->second - wm->first;
        tps.push_back({topic, p, common::kOffsetBeginning});
    }
    c.assign(tps);
    std::vector<std::pair<std::string, std::string>> out;
    wait_until(
        [&] {
            auto m = c.poll(200ms);
            if (m && !m.error()) {
                out.emplace_back(std::string(m.key().value_or("")), std::string(m.value()));
            }
            return static_cast<std::int64_t>(out.size()) >= expected;
        },
        60s);
    return out;
}

std::string json_field(const std::string& json, const char* field) {
    simdjson::dom::parser p;
    simdjson::dom::element doc;
    if (p.parse(json).get(doc)) return {};
    std::string_view v;
    if (doc[field].get_string().get(v)) return {};
    return std::string(v);
}

// ------------------------------------------------------------ the test

TEST(Chaos, EverySucceededTransferIsCreditedExactlyOnceThroughKillsAndBrokerOutages) {
    const int kTransfers = 600;
    const auto scenario = make_scenario(kTransfers, 20261128);
    std::size_t total_deliveries = 0;
    for (const auto& t : scenario) total_deliveries += t.deliveries.size();

    BrokerProcess broker;
    PostgresServer pg;
    Services s;
    s.bootstrap = broker.bootstrap();
    s.store_url = pg.create_database("chaos");
    for (int i = 0; i < 2; ++i) {
        s.ingest_ports[i] = testing::free_port();
        s.consumer_ports[i] = testing::free_port();
        s.start_ingest(i);
        s.start_consumer(i);
    }

    std::atomic<bool> sending{true};
    std::atomic<long> answered_200{0}, answered_503{0}, answered_other{0}, connection_failures{0};
    std::atomic<int> ingest_kills{0}, consumer_kills{0}, broker_outages{0}, cluster_outages{0};
    // Apache engine only: two of three brokers down at once, and what a
    // delivery posted meanwhile was answered (acks=all cannot be met: 503).
    std::atomic<int> quorum_outages{0}, probes_200{0}, probes_503{0}, probes_other{0};
    const bool apache = testing::apache_engine();

    // The fault loop: one fault at a time, each undone before the next. On
    // Apache Kafka a broker "down" is a SIGKILL of its JVM, kept down longer
    // than the brokers' session timeout (4 s) so the controller fences it
    // and moves its partitions' leadership under load.
    std::thread faults([&] {
        std::mt19937 rng(7);
        std::mt19937_64 probe_ids(11);
        int round = 0;
        while (sending.load()) {
            std::this_thread::sleep_for(
                std::chrono::milliseconds(300 + rng() % 600));  // pacing of faults
            if (!sending.load()) break;
            auto what = rng() % 10;
            // However the rounds fall, Apache Kafka gets a two-of-three outage.
            if (apache && ++round == 3 && quorum_outages.load() == 0) what = 8;
            // A whole-cluster outage restarts three JVMs (tens of seconds of
            // two cores): once is enough on Apache Kafka.
            if (apache && what == 9 && cluster_outages.load() > 0) what = 7;
            // Each two-of-three outage stops all traffic until two JVMs are
            // back (~10 s here): three of them prove the point.
            if (apache && what == 8 && quorum_outages.load() >= 3) what = 7;
            if (what < 3) {
                const int i = static_cast<int>(rng() % 2);
                s.ingest[i]->signal(SIGKILL);
                s.ingest[i]->wait(5s);
                s.start_ingest(i);
                ++ingest_kills;
            } else if (what < 6) {
                const int i = static_cast<int>(rng() % 2);
                s.consumer[i]->signal(SIGKILL);
                s.consumer[i]->wait(5s);
                s.start_consumer(i);
                ++consumer_kills;
            } else if (what < 8 || (what < 9 && !apache)) {
                const int id = 1 + static_cast<int>(rng() % 3);
                broker.broker_down(id);
                std::this_thread::sleep_for(std::chrono::milliseconds(
                    apache ? 5000 + rng() % 2000 : 300 + rng() % 700));  // outage length
                broker.broker_up(id);
                ++broker_outages;
            } else if (what < 9) {
                // Two of three down: no partition can meet min.insync.replicas
                // 2, so a delivery posted now must be refused, never 200.
                const int spared = 1 + static_cast<int>(rng() % 3);
                for (int id = 1; id <= 3; ++id) {
                    if (id != spared) broker.broker_down(id);
                }
                for (int probe = 0; probe < 3; ++probe) {
                    // Mesh's retry of a scenario delivery (a new delivery Id,
                    // so ingest must write it): harmless if it lands later
                    // (the consumer dedups its EventId).
                    const int code = post(s.ingest_ports[probe % 2],
                                          retry_of(scenario[0].deliveries[0], probe_ids));
                    if (code == 200) {
                        ++probes_200;
                    } else if (code == 503) {
                        ++probes_503;
                    } else {
                        ++probes_other;  // 0: an ingest being restarted
                    }
                }
                std::this_thread::sleep_for(1s);  // outage length
                for (int id = 1; id <= 3; ++id) {
                    if (id != spared) broker.broker_up(id);
                }
                ++quorum_outages;
            } else {
                for (int id = 1; id <= 3; ++id) broker.broker_down(id);
                std::this_thread::sleep_for(
                    500ms);  // outage length: every post answers 503 meanwhile
                for (int id = 1; id <= 3; ++id) broker.broker_up(id);
                ++cluster_outages;
            }
        }
    });

    // Senders: each owns a slice of the transfers and posts each transfer's
    // deliveries in order, retrying until answered 200, like Mesh.
    constexpr int kSenders = 4;
    // Traffic is paced to last about 30 s, so faults land throughout it.
    // On Apache Kafka, 60 s: its faults last seconds (fencing, JVM restarts).
    const long long span_us = apache ? 60'000'000LL : 30'000'000LL;
    const auto pace =
        std::chrono::microseconds(span_us * kSenders / static_cast<long long>(total_deliveries));
    std::vector<std::thread> senders;
    std::atomic<int> gave_up{0};
    for (int w = 0; w < kSenders; ++w) {
        senders.emplace_back([&, w] {
            std::size_t n = 0;
            for (std::size_t t = static_cast<std::size_t>(w); t < scenario.size(); t += kSenders) {
                for (const auto& d : scenario[t].deliveries) {
                    std::this_thread::sleep_for(pace);  // offered load, not synchronisation
                    auto backoff = 20ms;
                    const auto deadline = std::chrono::steady_clock::now() + 120s;
                    while (true) {
                        const int code = post(s.ingest_ports[(n++) % 2], d);
                        if (code == 200) {
                            ++answered_200;
                            break;
                        }
                        if (code == 503) {
                            ++answered_503;
                        } else if (code == 0) {
                            ++connection_failures;
                        } else {
                            ++answered_other;
                        }
                        if (std::chrono::steady_clock::now() > deadline) {
                            ++gave_up;
                            break;
                        }
                        std::this_thread::sleep_for(backoff);  // Mesh's retry back-off
                        backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
                    }
                }
            }
        });
    }
    for (auto& t : senders) t.join();
    sending = false;
    faults.join();
    ASSERT_EQ(gave_up.load(), 0) << "deliveries never answered 200";
    ASSERT_EQ(answered_other.load(), 0) << "answers other than 200/503";

    // Converge: the store reflects every delivery, the outbox is drained.
    std::map<std::string, const Transfer*> by_id;
    for (const auto& t : scenario) by_id[t.id] = &t;
    std::map<std::string, std::pair<std::string, bool>> state;
    const bool converged = wait_until(
        [&] {
            state = store_state(s.store_url);
            if (state.size() != scenario.size()) return false;
            for (const auto& t : scenario) {
                auto it = state.find(t.id);
                if (it == state.end() || it->second.first != t.final_status) return false;
            }
            return unsent_outbox_rows(s.store_url) == 0;
        },
        180s);
    std::size_t reflected = 0;
    for (const auto& t : scenario) {
        auto it = state.find(t.id);
        if (it != state.end() && it->second.first == t.final_status) ++reflected;
    }
    if (!converged) {
        // Where did it stop: is each transfer's final status in the input topic?
        const auto events = read_topic(s.bootstrap, "mesh.transfer-events");
        std::set<std::string> final_in_topic;
        for (const auto& [key, value] : events) {
            auto it = by_id.find(key);
            if (it == by_id.end()) continue;
            std::string status = json_field(value, "TransferStatus");
            if (status.empty()) status = json_field(value, "transferStatus");
            if (!status.empty()) status[0] = static_cast<char>(std::tolower(status[0]));
            if (status == it->second->final_status) final_in_topic.insert(key);
        }
        std::printf(
            "chaos: input topic holds %zu records; %zu/%zu transfers have their final status "
            "there\n",
            events.size(), final_in_topic.size(), scenario.size());
        for (int i = 0; i < 2; ++i) {
            std::printf("chaos: consumer %d running=%d\n%s\n", i, s.consumer[i]->running() ? 1 : 0,
                        s.consumer[i]->stderr_text().substr(0, 3000).c_str());
        }
    }
    EXPECT_TRUE(converged) << reflected << " of " << scenario.size()
                           << " transfers reflect their deliveries";

    // Exactly one credit per succeeded transfer, none for the others.
    const auto credits = read_topic(s.bootstrap, "ledger.credit-commands");
    std::map<std::string, int> credit_count;
    std::size_t amount_mismatches = 0;
    for (const auto& [key, value] : credits) {
        const std::string transfer = json_field(value, "transferId");
        EXPECT_EQ(key, transfer);
        ++credit_count[transfer];
        auto it = by_id.find(transfer);
        if (it != by_id.end() && json_field(value, "amount") != it->second->amount)
            ++amount_mismatches;
    }
    std::size_t succeeded = 0, missing = 0, duplicated = 0, unexpected = 0;
    for (const auto& t : scenario) {
        const int n = credit_count.count(t.id) ? credit_count[t.id] : 0;
        if (t.final_status == "succeeded") {
            ++succeeded;
            if (n == 0) ++missing;
            if (n > 1) ++duplicated;
            EXPECT_TRUE(state[t.id].second) << t.id << " succeeded but is not marked credited";
        } else if (n > 0) {
            ++unexpected;
        }
    }
    for (const auto& [id, n] : credit_count) {
        if (!by_id.count(id)) ++unexpected;
    }

    std::printf(
        "chaos: injected %d ingest SIGKILLs, %d consumer SIGKILLs, %d single-broker outages, "
        "%d whole-cluster outages, %d two-of-three outages (engine %s)\n"
        "chaos: %d probes posted with two of three brokers down: %d answered 200, %d answered "
        "503, %d other\n"
        "chaos: posted %zu deliveries for %d transfers: %ld answered 200, %ld answered 503, "
        "%ld connection failures (server killed), all retried until 200\n"
        "chaos: checked %zu/%zu transfers reflect their deliveries in PostgreSQL; %zu succeeded "
        "transfers; %zu credit commands on ledger.credit-commands: %zu missing, %zu duplicated, "
        "%zu for transfers that did not succeed, %zu amounts changed\n",
        ingest_kills.load(), consumer_kills.load(), broker_outages.load(), cluster_outages.load(),
        quorum_outages.load(), testing::kafka_engine().c_str(),
        probes_200.load() + probes_503.load() + probes_other.load(), probes_200.load(),
        probes_503.load(), probes_other.load(), total_deliveries, kTransfers, answered_200.load(),
        answered_503.load(), connection_failures.load(), reflected, scenario.size(), succeeded,
        credits.size(), missing, duplicated, unexpected, amount_mismatches);
    EXPECT_EQ(missing, 0u);
    EXPECT_EQ(duplicated, 0u);
    EXPECT_EQ(unexpected, 0u);
    EXPECT_EQ(amount_mismatches, 0u);
    EXPECT_EQ(credits.size(), succeeded);
    EXPECT_GT(ingest_kills.load() + consumer_kills.load(), 0);
    if (apache) {
        // The faults this engine exists for did happen, and acks=all held.
        EXPECT_GT(broker_outages.load(), 0);
        EXPECT_GT(quorum_outages.load(), 0);
        EXPECT_GT(probes_503.load(), 0);
        EXPECT_EQ(probes_200.load(), 0) << "a delivery was acknowledged with two of three "
                                           "brokers down: acks=all was not honoured";
    }
}

}  // namespace
}  // namespace meshhook
