#include "consumer/start_from.hpp"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/config.hpp"

namespace meshhook::consumer {

namespace {

using Marks = std::pair<std::int64_t, std::int64_t>;  // (low, high)

// Partition count of `topic`; 0 when the cluster answered without it (a
// topic that does not exist holds nothing). Full metadata: asking for one
// topic by name could create it.
int partitions_of(common::Consumer& kafka, const std::string& topic,
                  std::chrono::milliseconds timeout) {
    std::string error;
    if (const auto count = kafka.existing_topic_partitions(topic, timeout, error)) {
        return *count;
    }
    if (error.starts_with("unknown topic")) {
        return 0;
    }
    throw common::KafkaError(error);
}

std::vector<Marks> watermarks_of(common::Consumer& kafka, const std::string& topic,
                                 std::chrono::milliseconds timeout) {
    const int count = partitions_of(kafka, topic, timeout);
    std::vector<Marks> out;
    out.reserve(static_cast<std::size_t>(count));
    for (std::int32_t p = 0; p < count; ++p) {
        const auto marks = kafka.watermarks(topic, p, timeout);
        if (!marks) {
            throw common::KafkaError("cannot read the watermarks of " + topic + "[" +
                                     std::to_string(p) + "]");
        }
        out.push_back(*marks);
    }
    return out;
}

std::int64_t records_in(const std::vector<Marks>& marks) {
    std::int64_t n = 0;
    for (const auto& [low, high] : marks) {
        n += std::max<std::int64_t>(0, high - low);
    }
    return n;
}

// Counted in offsets: on a transactional topic (the relay's) every commit
// marker takes one too, so this is not a count of records.
std::string refusal(const std::vector<std::pair<std::string, std::int64_t>>& holding) {
    const auto offsets = [](std::int64_t n) {
        return std::to_string(n) + (n == 1 ? " offset" : " offsets");
    };
    if (holding.size() == 1) {
        return holding[0].first + " is not (" + offsets(holding[0].second) + " written)";
    }
    std::string list;
    for (const auto& [topic, n] : holding) {
        list += (list.empty() ? "" : ", ") + topic + " (" + offsets(n) + ")";
    }
    return "these are not: " + list;
}

}  // namespace

std::string_view to_string(StartFrom choice) {
    switch (choice) {
        case StartFrom::kEarliest: return "earliest";
        case StartFrom::kLatest: return "latest";
        case StartFrom::kCommitted: return "committed";
    }
    return "?";
}

std::optional<StartFrom> parse_start_from(std::string_view text) {
    for (const StartFrom choice :
         {StartFrom::kEarliest, StartFrom::kLatest, StartFrom::kCommitted}) {
        if (text == to_string(choice)) {
            return choice;
        }
    }
    return std::nullopt;
}

std::string prepare_start(Store& store, common::Consumer& kafka, const Topics& topics,
                          std::optional<StartFrom> choice, const std::string& setting,
                          std::chrono::milliseconds timeout) {
    if (!store.empty()) {
        return choice ? setting + " " + std::string(to_string(*choice)) +
                            " ignored: the store has offsets, and they say where to resume"
                      : std::string();
    }
    if (!choice) {
        std::vector<std::pair<std::string, std::int64_t>> holding;
        for (const std::string* topic : {&topics.credits, &topics.reviews, &topics.anomalies}) {
            if (const std::int64_t n = records_in(watermarks_of(kafka, *topic, timeout)); n > 0) {
                holding.emplace_back(*topic, n);
            }
        }
        if (!holding.empty()) {
            throw common::ConfigError(
                setting + ": the store is empty but " + refusal(holding) +
                " (a new or restored store over a running pipeline); choose earliest, latest "
                "or committed");
        }
        return "the store is empty and the output topics hold no records (a new deployment): "
               "every partition of " +
               topics.input + " starts at its beginning";
    }

    const std::vector<Marks> marks = watermarks_of(kafka, topics.input, timeout);
    std::vector<std::int64_t> next;
    std::vector<bool> from_group(marks.size(), false);
    next.reserve(marks.size());
    for (const auto& [low, high] : marks) {
        next.push_back(*choice == StartFrom::kLatest ? high : low);
    }
    if (*choice == StartFrom::kCommitted && !marks.empty()) {
        std::vector<common::TopicPartition> asked;
        asked.reserve(marks.size());
        for (std::int32_t p = 0; p < static_cast<std::int32_t>(marks.size()); ++p) {
            asked.push_back({topics.input, p, common::kOffsetInvalid});
        }
        for (const common::TopicPartition& tp : kafka.committed(asked, timeout)) {
            const auto p = static_cast<std::size_t>(tp.partition);
            if (tp.topic != topics.input || p >= marks.size() || tp.offset < 0) {
                continue;  // the group has no offset there: the low watermark stays
            }
            // Retention may have removed what the group last read; the
            // offset cannot be past the end either.
            next[p] = std::clamp(tp.offset, marks[p].first, marks[p].second);
            from_group[p] = true;
        }
    }

    std::string written;
    int kept = 0;
    auto tx = store.begin();
    for (std::size_t p = 0; p < next.size(); ++p) {
        if (tx->advance_offset(topics.input, static_cast<std::int32_t>(p), std::nullopt, next[p])) {
            written += " " + std::to_string(p) + "@" + std::to_string(next[p]);
            if (*choice == StartFrom::kCommitted && !from_group[p]) {
                written += " (no group offset: low watermark)";
            }
        } else {
            ++kept;  // another consumer on this store wrote it first
        }
    }
    tx->commit();
    std::string line = setting + " " + std::string(to_string(*choice)) +
                       " applied to an empty store: " + topics.input + " starts at" +
                       (!written.empty() ? written
                        : kept > 0       ? " the offsets another consumer wrote"
                                         : " its beginning (the topic has no partitions yet)");
    if (kept > 0) {
        line += "; " + std::to_string(kept) +
                " partition(s) already had a row from another consumer, kept";
    }
    return line;
}

}  // namespace meshhook::consumer
