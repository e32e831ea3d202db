#!/usr/bin/env bash
# Creates meshhook's topics with their partition counts and settings, or
# brings the settings of existing topics back to these values. Idempotent:
# compose runs it on every `up`; run it by hand against any cluster:
#
#   KAFKA_BOOTSTRAP=broker1:9092 REPLICATION_FACTOR=3 MIN_INSYNC_REPLICAS=2 \
#     deploy/kafka/create-topics.sh
#
# Needs kafka-topics.sh and kafka-configs.sh (Apache Kafka's bin/) on PATH or
# in KAFKA_BIN (default /opt/kafka/bin, as in the apache/kafka image).
set -euo pipefail

: "${KAFKA_BOOTSTRAP:?set KAFKA_BOOTSTRAP to host:port[,host:port...]}"
RF="${REPLICATION_FACTOR:-3}"
MIN_ISR="${MIN_INSYNC_REPLICAS:-2}"
KAFKA_BIN="${KAFKA_BIN:-/opt/kafka/bin}"
export PATH="$KAFKA_BIN:$PATH"

DAY_MS=86400000

# name                      partitions  retention.ms
# - mesh.transfer-events: keyed by TransferId, so one transfer's events stay
#   in order on one partition; its partition count caps consumer parallelism.
#   Adding partitions later moves keys to other partitions (the consumer's
#   state machine tolerates the reordering, but do it in a quiet hour).
# - The DLQ and the review/anomaly topics hold what a person must look at:
#   kept for 30 days.
# - ledger.credit-commands: keyed by TransferId (= the idempotency key).
TOPICS=(
  "mesh.transfer-events      12  $((7 * DAY_MS))"
  "mesh.transfer-events.dlq   3  $((30 * DAY_MS))"
  "ledger.credit-commands    12  $((14 * DAY_MS))"
  "ledger.credit-review       3  $((30 * DAY_MS))"
  "meshhook.anomalies         3  $((30 * DAY_MS))"
)

# acks=all is only as strong as min.insync.replicas; unclean leader election
# could elect a replica that lacks acknowledged events, so it stays off.
common_configs() {
  local retention="$1"
  echo "cleanup.policy=delete,retention.ms=${retention},min.insync.replicas=${MIN_ISR},unclean.leader.election.enable=false"
}

for row in "${TOPICS[@]}"; do
  read -r name partitions retention <<<"$row"
  configs="$(common_configs "$retention")"
  if kafka-topics.sh --bootstrap-server "$KAFKA_BOOTSTRAP" --describe --topic "$name" >/dev/null 2>&1; then
    kafka-configs.sh --bootstrap-server "$KAFKA_BOOTSTRAP" --alter --entity-type topics \
      --entity-name "$name" --add-config "$configs" >/dev/null
    have="$(kafka-topics.sh --bootstrap-server "$KAFKA_BOOTSTRAP" --describe --topic "$name" \
      | sed -n 's/.*PartitionCount: *\([0-9]*\).*/\1/p' | head -n1)"
    if [[ "$have" != "$partitions" ]]; then
      echo "warning: $name has $have partitions, this script expects $partitions (not changed)" >&2
    fi
    echo "updated $name"
  else
    args=()
    IFS=',' read -r -a kv <<<"$configs"
    for c in "${kv[@]}"; do args+=(--config "$c"); done
    kafka-topics.sh --bootstrap-server "$KAFKA_BOOTSTRAP" --create --if-not-exists --topic "$name" \
      --partitions "$partitions" --replication-factor "$RF" "${args[@]}"
  fi
done
