// `meshhook state`: what the consumer's store knows about a transfer, or a
// summary of the whole store.
#include <iomanip>
#include <iostream>
#include <optional>
#include <string>

#include "consumer/store.hpp"
#include "tools/commands.hpp"
#include "tools/util.hpp"

namespace meshhook::tools {
namespace {

constexpr std::string_view kProgram = "meshhook state";

std::string text(const std::string& s, std::string_view none = "-") {
    return s.empty() ? std::string(none) : s;
}

template <typename T>
std::string text(const std::optional<T>& v) {
    return v ? std::to_string(*v) : "-";
}

std::string when(std::optional<std::int64_t> ms) {
    return ms ? format_utc_ms(*ms) : "-";
}

void field(std::string_view name, const std::string& value) {
    std::cout << "  " << std::left << std::setw(24) << name << value << "\n";
}

int show_transfer(consumer::StoreReader& store, const std::string& transfer_id,
                  const std::string& environment) {
    const consumer::TransferHistory h = store.history(transfer_id, environment);
    if (h.empty()) {
        return fail(kProgram, "the store knows nothing about transfer " + transfer_id +
                                  (environment.empty() ? "" : " in environment " + environment));
    }
    for (const auto& t : h.transfers) {
        std::cout << "transfer " << transfer_id << " (environment " << text(t.environment) << ")\n";
        field("status", text(t.status, "(none yet)") + " (rank " + std::to_string(t.rank) + ")");
        if (!t.last_unknown_status.empty()) field("unknown status seen", t.last_unknown_status);
        field("credited", t.credited ? "yes: a credit command went to the outbox" : "no");
        if (!t.review_reason.empty()) field("sent to review", t.review_reason);
        if (!t.conflict_status.empty())
            field("conflict", "a " + t.conflict_status + " event contradicted " + text(t.status));
        if (!t.amount.empty()) {
            field("amount", t.amount + " " + text(t.token, "?") + " on " + text(t.chain, "?"));
            field("destination", text(t.destination_address));
            field("tx hash", text(t.tx_hash));
            field("user / transaction", text(t.user_id) + " / " + text(t.transaction_id));
            field("source provider", text(t.source_account_provider));
            field("credit event", text(t.credit_event_id));
        }
        field("last event", text(t.last_event_id));
        field("first seen", when(t.first_seen_ms));
        field("last seen", when(t.last_seen_ms));
    }
    std::cout << "outbox (" << h.outbox.size() << " row" << (h.outbox.size() == 1 ? "" : "s")
              << ")\n";
    for (const auto& o : h.outbox) {
        std::string sent = o.sent_ms ? "sent " + when(o.sent_ms) + " to partition " +
                                           text(o.sent_partition) + " offset " + text(o.sent_offset)
                           : o.parked_ms ? "PARKED " + when(o.parked_ms) + ": Kafka refuses it (" +
                                               text(o.park_reason) +
                                               "); see docs/RUNBOOK.md#meshhookoutboxrowparked"
                                         : std::string("NOT SENT yet");
        std::cout << "  #" << o.id << " " << text(o.topic) << " created " << when(o.created_ms)
                  << ", " << sent << "\n";
        std::cout << "      " << text(o.dedup_key) << "\n";
        std::cout << "      " << text(o.payload) << "\n";
    }
    std::cout << "anomalies (" << h.anomalies.size() << ")\n";
    for (const auto& a : h.anomalies) {
        std::cout << "  #" << a.id << " " << text(a.record.kind) << " ("
                  << text(a.record.environment) << ") at " << when(a.created_ms) << ": "
                  << text(a.record.detail) << "\n";
    }
    return 0;
}

int show_summary(consumer::StoreReader& store, std::int64_t older_than_s) {
    const consumer::StoreSummary s = store.summary(now_ms() - older_than_s * 1000, 20);
    std::cout << "transfers by environment and status:\n";
    if (s.by_status.empty()) std::cout << "  (none)\n";
    for (const auto& r : s.by_status) {
        std::cout << "  " << std::left << std::setw(14) << text(r.environment) << std::setw(14)
                  << text(r.status, "(none)") << std::right << std::setw(8) << r.transfers
                  << "   credited " << r.credited << "\n";
    }
    std::cout << "sent to review: " << s.in_review << ", conflicts: " << s.conflicts << "\n";
    std::cout << "not final and silent for over " << older_than_s << " s: " << s.silent << "\n";
    for (const auto& t : s.silent_oldest) {
        std::cout << "  " << text(t.transfer_id) << " (" << text(t.environment) << ") "
                  << text(t.status, "(none)") << " since " << when(t.last_seen_ms) << "\n";
    }

    std::cout << "outbox by topic:\n";
    if (s.outbox.empty()) std::cout << "  (none)\n";
    for (const auto& r : s.outbox) {
        std::cout << "  " << std::left << std::setw(26) << text(r.topic) << std::right
                  << std::setw(8) << r.rows << " rows, " << r.unsent << " unsent";
        if (r.parked != 0) std::cout << " (" << r.parked << " parked)";
        if (r.oldest_unsent_created_ms)
            std::cout << " (oldest " << when(r.oldest_unsent_created_ms) << ")";
        std::cout << "\n";
    }
    std::cout << "anomalies by kind:\n";
    if (s.anomalies.empty()) std::cout << "  (none)\n";
    for (const auto& r : s.anomalies)
        std::cout << "  " << std::left << std::setw(26) << text(r.kind) << r.count << "\n";
    std::cout << "consumed offsets:\n";
    if (s.offsets.empty()) std::cout << "  (none)\n";
    for (const auto& r : s.offsets) {
        std::cout << "  " << text(r.topic) << "[" << r.partition << "] next " << r.next_offset
                  << "\n";
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
        auto store = consumer::open_store_reader(settings.get("store"));
        if (summary) return show_summary(*store, older_than_s);
        return show_transfer(*store, settings.positional().front(), settings.get("environment"));
    } catch (const std::exception& e) {
        return fail(kProgram, e.what());
    }
}

}  // namespace meshhook::tools
