#!/usr/bin/env bash
# The outbox relay's recovery scan on an empty store over N credits (default
# 1,000,000) on Apache Kafka (one broker): time and memory. Needs `make kafka`
# and a build of bench_relay_scan and meshhook (BIN, default build/dev/bin).
#   benchmarks/relay_scan.sh [N] [STORE_URL]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
BIN=${BIN:-build/dev/bin}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
STORE=${2:-sqlite://$tmp/scan.db}
coproc BROKER { "$BIN"/meshhook broker --engine apache --brokers 1 --partitions 4; }
read -r line <&"${BROKER[0]}"
bootstrap=${line#bootstrap=}
echo "broker: $bootstrap ($(nproc) cores, $(date -u +%F))"
"$BIN"/bench_relay_scan "$bootstrap" "$STORE" "$N"
echo quit >&"${BROKER[1]}"
wait "$BROKER_PID" || true
