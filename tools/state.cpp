// `meshhook state`: what the consumer's store knows about a transfer, or a
// summary of the whole store.
#include <iomanip>
#include <iostream>
#include <sstream>

#include "tools/commands.hpp"
#include "tools/store_reader.hpp"
#include "tools/util.hpp"

namespace meshhook::tools {
namespace {

constexpr std::string_view kProgram = "meshhook state";

std::string text(const Cell& c, std::string_view none = "-") {
    return c && !c->empty() ? *c : std::string(none);
}

std::string when(const Cell& ms) {
    if (!ms) return "-";
    try {
        return format_utc_ms(std::stoll(*ms));
    } catch (const std::exception&) {
        return *ms;
    }
}

void field(std::string_view name, const std::string& value) {
    std::cout << "  " << std::left << std::setw(24) << name << value << "\n";
}

int show_transfer(StoreReader& store, const std::string& transfer_id,
                  const std::string& environment) {
    std::string sql =
        "SELECT environment, status, status_rank, credited, review_reason, conflict_status, "
        "user_id, "
        "transaction_id, token, chain, amount, destination_address, tx_hash, "
        "source_account_provider, "
        "credit_event_id, last_event_id, last_unknown_status, first_seen_ms, last_seen_ms "
        "FROM transfers WHERE transfer_id = $1";
    std::vector<std::string> params{transfer_id};
    if (!environment.empty()) {
        sql += " AND environment = $2";
        params.push_back(environment);
    }
    sql += " ORDER BY environment";
    const auto transfers = store.query(sql, params);
    const auto outbox = store.query(
        "SELECT id, topic, dedup_key, created_ms, sent_ms, sent_partition, sent_offset, payload, "
        "parked_ms, park_reason FROM outbox WHERE record_key = $1 ORDER BY id",
        {transfer_id});
    const auto anomalies = store.query(
        "SELECT id, kind, environment, detail, created_ms FROM anomalies WHERE transfer_id = $1 "
        "ORDER BY id",
        {transfer_id});
    if (transfers.empty() && outbox.empty() && anomalies.empty()) {
        return fail(kProgram, "the store knows nothing about transfer " + transfer_id +
                                  (environment.empty() ? "" : " in environment " + environment));
    }
    for (const auto& t : transfers) {
        std::cout << "transfer " << transfer_id << " (environment " << text(t[0]) << ")\n";
        field("status", text(t[1], "(none yet)") + " (rank " + text(t[2]) + ")");
        if (t[16] && !t[16]->empty()) field("unknown status seen", *t[16]);
        const bool credited = t[3] && *t[3] != "0";
        field("credited", credited ? "yes: a credit command went to the outbox" : "no");
        if (t[4] && !t[4]->empty()) field("sent to review", *t[4]);
        if (t[5] && !t[5]->empty())
            field("conflict", "a " + *t[5] + " event contradicted " + text(t[1]));
        if (t[10] && !t[10]->empty()) {
            field("amount", *t[10] + " " + text(t[8], "?") + " on " + text(t[9], "?"));
            field("destination", text(t[11]));
            field("tx hash", text(t[12]));
            field("user / transaction", text(t[6]) + " / " + text(t[7]));
            field("source provider", text(t[13]));
            field("credit event", text(t[14]));
        }
        field("last event", text(t[15]));
        field("first seen", when(t[17]));
        field("last seen", when(t[18]));
    }
    std::cout << "outbox (" << outbox.size() << " row" << (outbox.size() == 1 ? "" : "s") << ")\n";
    for (const auto& o : outbox) {
        std::string sent =
            o[4]   ? "sent " + when(o[4]) + " to partition " + text(o[5]) + " offset " + text(o[6])
            : o[8] ? "PARKED " + when(o[8]) + ": Kafka refuses it (" + text(o[9]) +
                         "); see docs/RUNBOOK.md#meshhookoutboxrowparked"
                   : std::string("NOT SENT yet");
        std::cout << "  #" << text(o[0]) << " " << text(o[1]) << " created " << when(o[3]) << ", "
                  << sent << "\n";
        std::cout << "      " << text(o[2]) << "\n";
        std::cout << "      " << text(o[7]) << "\n";
    }
    std::cout << "anomalies (" << anomalies.size() << ")\n";
    for (const auto& a : anomalies) {
        std::cout << "  #" << text(a[0]) << " " << text(a[1]) << " (" << text(a[2]) << ") at "
                  << when(a[4]) << ": " << text(a[3]) << "\n";
    }
    return 0;
}

int show_summary(StoreReader& store, std::int64_t older_than_s) {
    std::cout << "transfers by environment and status:\n";
    const auto by_status = store.query(
        "SELECT environment, COALESCE(status, ''), COUNT(*), SUM(credited) FROM transfers "
        "GROUP BY environment, status ORDER BY 1, 2",
        {});
    if (by_status.empty()) std::cout << "  (none)\n";
    for (const auto& r : by_status) {
        std::cout << "  " << std::left << std::setw(14) << text(r[0]) << std::setw(14)
                  << text(r[1], "(none)") << std::right << std::setw(8) << text(r[2])
                  << "   credited " << text(r[3], "0") << "\n";
    }
    const auto review = store.query(
        "SELECT COUNT(*) FROM transfers WHERE review_reason IS NOT NULL AND review_reason <> ''",
        {});
    const auto conflict = store.query(
        "SELECT COUNT(*) FROM transfers WHERE conflict_status IS NOT NULL AND conflict_status <> "
        "''",
        {});
    std::cout << "sent to review: " << text(review[0][0], "0")
              << ", conflicts: " << text(conflict[0][0], "0") << "\n";

    const std::string cutoff = std::to_string(now_ms() - older_than_s * 1000);
    const auto stuck_count = store.query(
        "SELECT COUNT(*) FROM transfers WHERE status_rank < 3 AND last_seen_ms < $1", {cutoff});
    std::cout << "not final and silent for over " << older_than_s
              << " s: " << text(stuck_count[0][0], "0") << "\n";
    const auto stuck = store.query(
        "SELECT environment, transfer_id, COALESCE(status, ''), last_seen_ms FROM transfers "
        "WHERE status_rank < 3 AND last_seen_ms < $1 ORDER BY last_seen_ms LIMIT 20",
        {cutoff});
    for (const auto& r : stuck) {
        std::cout << "  " << text(r[1]) << " (" << text(r[0]) << ") " << text(r[2], "(none)")
                  << " since " << when(r[3]) << "\n";
    }

    std::cout << "outbox by topic:\n";
    const auto outbox = store.query(
        "SELECT topic, COUNT(*), SUM(CASE WHEN sent_ms IS NULL THEN 1 ELSE 0 END), "
        "MIN(CASE WHEN sent_ms IS NULL THEN created_ms END), "
        "SUM(CASE WHEN sent_ms IS NULL AND parked_ms IS NOT NULL THEN 1 ELSE 0 END) "
        "FROM outbox GROUP BY topic ORDER BY topic",
        {});
    if (outbox.empty()) std::cout << "  (none)\n";
    for (const auto& r : outbox) {
        std::cout << "  " << std::left << std::setw(26) << text(r[0]) << std::right << std::setw(8)
                  << text(r[1]) << " rows, " << text(r[2], "0") << " unsent";
        if (r[4] && *r[4] != "0") std::cout << " (" << *r[4] << " parked)";
        if (r[3]) std::cout << " (oldest " << when(r[3]) << ")";
        std::cout << "\n";
    }
    std::cout << "anomalies by kind:\n";
    const auto anomalies =
        store.query("SELECT kind, COUNT(*) FROM anomalies GROUP BY kind ORDER BY kind", {});
    if (anomalies.empty()) std::cout << "  (none)\n";
    for (const auto& r : anomalies)
        std::cout << "  " << std::left << std::setw(26) << text(r[0]) << text(r[1]) << "\n";
    std::cout << "consumed offsets:\n";
    const auto offsets = store.query(
        "SELECT topic, partition_id, next_offset FROM partition_offsets ORDER BY topic, "
        "partition_id",
        {});
    if (offsets.empty()) std::cout << "  (none)\n";
    for (const auto& r : offsets) {
        std::cout << "  " << text(r[0]) << "[" << text(r[1]) << "] next " << text(r[2]) << "\n";
    }
    return 0;
}

}  // namespace

int state_main(int argc, const char* const* argv) {
    common::Settings settings(
        std::string(kProgram),
        "what meshhook-consumer's store knows about a transfer: its status as\n"
        "recorded, whether it was credited (or sent to review, or contradicted),\n"
        "the credit's fields, its outbox rows and whether each was sent, anomalies.\n\n"
        "  meshhook state TRANSFER_ID --store URL [--environment ENV]\n"
        "  meshhook state --summary --store URL [--older-than-s N]\n\n"
        "The store is opened read-only; nothing is created or migrated.");
    settings
        .add({"store", "CONSUMER_STORE", "",
              "sqlite:///path/meshhook.db or postgresql://... (as the consumer's)"})
        .add({"environment", "", "", "only this environment (default: every one)"})
        .add({"summary", "", "", "counts by status, silent non-final transfers, unsent outbox rows",
              false, true})
        .add({"older-than-s", "", "3600",
              "--summary: a non-final transfer silent this long is listed"});
    if (auto code = parse_or_exit(settings, kProgram, argc, argv)) return *code;
    const bool summary = settings.is_set("summary");
    std::int64_t older_than_s = 0;
    try {
        if (settings.get("store").empty()) {
            throw common::ConfigError(settings.describe("store") +
                                      ": missing value (the consumer's store URL)");
        }
        if (summary != settings.positional().empty() || settings.positional().size() > 1) {
            throw common::ConfigError("give either one TRANSFER_ID or --summary (see --help)");
        }
        older_than_s = static_cast<std::int64_t>(common::parse_uint(
            "--older-than-s", settings.get("older-than-s"), 0, 10ULL * 365 * 24 * 3600));
    } catch (const common::ConfigError& e) {
        std::cerr << kProgram << ": " << e.what() << std::endl;
        return 2;
    }
    try {
        auto store = open_store_reader(settings.get("store"));
        if (summary) return show_summary(*store, older_than_s);
        return show_transfer(*store, settings.positional().front(), settings.get("environment"));
    } catch (const std::exception& e) {
        return fail(kProgram, e.what());
    }
}

}  // namespace meshhook::tools
