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

// Where `choice` starts each partition of `topic` (`marks` indexed by
// partition); `from_group[p]` says whether the group's offset was used.
std::vector<std::int64_t> starting_offsets(common::Consumer& kafka, const std::string& topic,
                                           const std::vector<Marks>& marks, StartFrom choice,
                                           std::chrono::milliseconds timeout,
                                           std::vector<bool>& from_group) {
    std::vector<std::int64_t> next;
    from_group.assign(marks.size(), false);
    next.reserve(marks.size());
    for (const auto& [low, high] : marks) {
        next.push_back(choice == StartFrom::kLatest ? high : low);
    }
    if (choice == StartFrom::kCommitted && !marks.empty()) {
        std::vector<common::TopicPartition> asked;
        asked.reserve(marks.size());
        for (std::int32_t p = 0; p < static_cast<std::int32_t>(marks.size()); ++p) {
            asked.push_back({topic, p, common::kOffsetInvalid});
        }
        for (const common::TopicPartition& tp : kafka.committed(asked, timeout)) {
            const auto p = static_cast<std::size_t>(tp.partition);
            if (tp.topic != topic || p >= marks.size() || tp.offset < 0) {
                continue;  // the group has no offset there: the low watermark stays
            }
            // Retention may have removed what the group last read; the
            // offset cannot be past the end either.
            next[p] = std::clamp(tp.offset, marks[p].first, marks[p].second);
            from_group[p] = true;
        }
    }
    return next;
}

// Stored offsets past the end, moved where `choice` says, in one transaction.
std::string restart_past_the_end(Store& store, common::Consumer& kafka, const std::string& topic,
                                 const std::vector<PastTheEnd>& past, StartFrom choice,
                                 const std::string& setting, std::chrono::milliseconds timeout) {
    const std::vector<Marks> marks = watermarks_of(kafka, topic, timeout);
    std::vector<bool> from_group;
    const std::vector<std::int64_t> next =
        starting_offsets(kafka, topic, marks, choice, timeout, from_group);
    std::string moved;
    auto tx = store.begin();
    for (const PastTheEnd& p : past) {
        const auto i = static_cast<std::size_t>(p.partition);
        if (i < next.size() && tx->advance_offset(topic, p.partition, p.stored, next[i])) {
            moved += " [" + std::to_string(p.partition) + "] " + std::to_string(p.stored) + "->" +
                     std::to_string(next[i]);
        }
    }
    tx->commit();
    return setting + " " + std::string(to_string(choice)) + " applied to offsets past the end of " +
           topic + " (the topic was recreated):" +
           (moved.empty() ? std::string(" none left (another consumer moved them)") : moved);
}

}  // namespace

std::vector<PastTheEnd> offsets_past_the_end(common::Consumer& kafka, const std::string& topic,
                                             const std::map<std::int32_t, std::int64_t>& stored,
                                             std::chrono::milliseconds timeout) {
    std::vector<PastTheEnd> out;
    for (const auto& [partition, offset] : stored) {
        const auto marks = kafka.watermarks(topic, partition, timeout);
        if (!marks) {
            throw common::KafkaError("cannot read the watermarks of " + topic + "[" +
                                     std::to_string(partition) + "]");
        }
        if (offset > marks->second) {
            out.push_back({partition, offset, marks->first, marks->second});
        }
    }
    return out;
}

std::string past_the_end_message(const std::string& setting, const std::string& topic,
                                 const std::vector<PastTheEnd>& partitions) {
    std::string list;
    for (const PastTheEnd& p : partitions) {
        list += (list.empty() ? "" : ", ") + std::string("[") + std::to_string(p.partition) +
                "] at " + std::to_string(p.stored) + ", its end is " + std::to_string(p.high);
    }
    return setting + ": the store's offsets are past the end of " + topic + " (" + list +
           "): the topic was deleted and recreated, and its records below those offsets would "
           "be skipped; choose earliest (apply what it holds; what was credited is not "
           "credited again), latest or committed for these partitions";
}

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
    // A store that has run can only be wrong about where to resume when the
    // topic under it was recreated; partitions the topic lost are never
    // assigned, so only existing ones are asked about.
    std::map<std::int32_t, std::int64_t> stored = store.offsets(topics.input);
    std::vector<PastTheEnd> past;
    if (!stored.empty()) {
        // Bounded: a store with offsets did not need Kafka to start before,
        // and the consume loop checks again when it gets its partitions.
        const auto bound = std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(3));
        try {
            const int count = partitions_of(kafka, topics.input, bound);
            std::erase_if(stored, [count](const auto& kv) { return kv.first >= count; });
            past = offsets_past_the_end(kafka, topics.input, stored, bound);
        } catch (const common::KafkaError& e) {
            return "could not compare the store's offsets with the ends of " + topics.input +
                   " now (" + e.what() + "); the consume loop does when it gets its partitions";
        }
    }
    if (!past.empty()) {
        if (!choice) {
            throw common::ConfigError(past_the_end_message(setting, topics.input, past));
        }
        return restart_past_the_end(store, kafka, topics.input, past, *choice, setting, timeout);
    }
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
    std::vector<bool> from_group;
    const std::vector<std::int64_t> next =
        starting_offsets(kafka, topics.input, marks, *choice, timeout, from_group);

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
