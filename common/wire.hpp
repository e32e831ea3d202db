#pragma once
// The record contract between meshhook's parts: the Kafka topics they share
// (default names; each service can be pointed at others by its settings) and
// the headers on their records. Every writer and reader spells them from here:
// meshhook-ingest and `meshhook replay` write mesh.transfer-events, the
// consumer reads it and writes the ledger topics, `meshhook broker`/`dev` and
// deploy/kafka/create-topics.sh create them.

#include <array>
#include <string_view>

namespace meshhook::wire {

// ------------------------------------------------------------------ topics

// Accepted deliveries: key = TransferId, value = the exact body Mesh signed.
inline constexpr std::string_view kTransferEventsTopic = "mesh.transfer-events";
// Signed deliveries that are not usable events: the exact body, with
// kHeaderReason / kHeaderDetail.
inline constexpr std::string_view kDeadLetterTopic = "mesh.transfer-events.dlq";
// One credit command per succeeded transfer, key = TransferId.
inline constexpr std::string_view kCreditCommandsTopic = "ledger.credit-commands";
// Credits a person must decide on (policy, missing fields).
inline constexpr std::string_view kCreditReviewTopic = "ledger.credit-review";
// Contradictions (succeeded <-> failed, unparseable records).
inline constexpr std::string_view kAnomaliesTopic = "meshhook.anomalies";

struct TopicSpec {
    std::string_view name;
    int retention_days;  // as deploy/kafka/create-topics.sh sets it
};
// The pipeline's topics, in the order the tools list them.
inline constexpr std::array<TopicSpec, 5> kPipelineTopics = {{
    {kTransferEventsTopic, 7},
    {kDeadLetterTopic, 30},
    {kCreditCommandsTopic, 14},
    {kCreditReviewTopic, 30},
    {kAnomaliesTopic, 30},
}};

// ---------------------------------------------- headers on transfer events

// Mesh's EventId (stable across Mesh's retries of one event).
inline constexpr std::string_view kHeaderEventId = "event-id";
// Mesh's delivery Id (new on every retry).
inline constexpr std::string_view kHeaderDeliveryId = "delivery-id";
// The Mesh environment the delivery was signed for ("production", "sandbox").
inline constexpr std::string_view kHeaderEnvironment = "environment";
// Receive time, milliseconds since the Unix epoch (UTC), as decimal text.
inline constexpr std::string_view kHeaderReceivedAt = "received-at";
// The ingest instance that accepted it.
inline constexpr std::string_view kHeaderHost = "host";
// Dead letters only: the stable snake_case reason and a one-line detail.
inline constexpr std::string_view kHeaderReason = "reason";
inline constexpr std::string_view kHeaderDetail = "detail";
// Added by `meshhook replay`: when, and from which topic.
inline constexpr std::string_view kHeaderReplayedAt = "replayed-at";
inline constexpr std::string_view kHeaderReplayedFrom = "replayed-from";

// ------------------------------------------ headers on the consumer's output

// The outbox row's unique key (e.g. credit:<environment>:<TransferId>): what
// the relay's recovery scan and a ledger dedup on.
inline constexpr std::string_view kHeaderDedupKey = "dedup-key";

}  // namespace meshhook::wire
