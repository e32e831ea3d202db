#!/usr/bin/env bash
# Two or more ingest builds (or the bare server) side by side: CPU-µs per
# request of each, pinned to core 0 with one I/O thread, in alternating
# rounds against one mock cluster; wrk and the broker on core 1. For a
# before/after of a change, e.g. the old binary against the new:
#
#   benchmarks/compare_ingest.sh build/release old=/tmp/old-ingest new=build/release/bin/meshhook-ingest \
#       base=build/release/bin/bench_baseline_server
#
# usage: benchmarks/compare_ingest.sh BUILD_DIR NAME=BINARY...   (a NAME=BINARY whose
# binary is named bench_baseline_server is started as the bare server)
# Environment: BENCH_ROUNDS (3), BENCH_SECONDS (8), BENCH_CONNECTIONS (256).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: benchmarks/compare_ingest.sh BUILD_DIR NAME=BINARY...}
shift
[ $# -ge 1 ] || { echo "usage: benchmarks/compare_ingest.sh BUILD_DIR NAME=BINARY..."; exit 1; }
rounds=${BENCH_ROUNDS:-3}
seconds=${BENCH_SECONDS:-8}
connections=${BENCH_CONNECTIONS:-256}
secret=whsec_test_fixture_secret
command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk"; exit 1; }
work=$(mktemp -d /tmp/meshhook-compare.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

mkfifo "$work/broker.in"
taskset -c 1 "$build/bin/meshhook" broker --brokers 3 --partitions 4 < "$work/broker.in" \
    > "$work/broker.out" 2> "$work/broker.err" &
pids+=("$!")
exec 7> "$work/broker.in"  # keeps the broker's stdin open
for _ in $(seq 1 100); do grep -q bootstrap= "$work/broker.out" 2>/dev/null && break; sleep 0.1; done
bootstrap=$(sed -n 's/^bootstrap=//p' "$work/broker.out")
[ -n "$bootstrap" ] || { echo "the broker did not start: $(cat "$work/broker.err")"; exit 1; }

declare -A url pid
for spec in "$@"; do
    name=${spec%%=*}; binary=${spec#*=}
    port=$(free_port)
    if [ "$(basename "$binary")" = bench_baseline_server ]; then
        taskset -c 0 "$binary" 127.0.0.1 "$port" > /dev/null &
    else
        # --remember-deliveries below the 2,000 Ids a run cycles through: every request is produced.
        MESH_WEBHOOK_SECRET=$secret taskset -c 0 "$binary" --listen "127.0.0.1:$port" \
            --admin-listen "127.0.0.1:$(free_port)" --brokers "$bootstrap" --threads 1 \
            --remember-deliveries 1000 > /dev/null 2> "$work/$name.err" &
    fi
    pid[$name]=$!; pids+=("$!")
    url[$name]="http://127.0.0.1:$port/webhooks/mesh"
    for _ in $(seq 1 200); do curl -s -o /dev/null -d x "${url[$name]}" && break; sleep 0.05; done
done

run=0
echo "| round | server | requests/s | CPU-µs per request | non-2xx |"
echo "|---|---|---|---|---|"
for round in $(seq 1 "$rounds"); do
    for spec in "$@"; do
        name=${spec%%=*}
        run=$((run + 1))
        # Ids of its own for every run: none was acknowledged before (no replays).
        python3 benchmarks/make_wrk_script.py tests/fixtures/03-succeeded.json "$secret" 2000 \
            /webhooks/mesh "$work/post.lua" "$((run + 1000))"
        before=$(ticks "${pid[$name]}")
        line=$(nice -n 10 taskset -c 1 wrk -t1 -c"$connections" -d"${seconds}s" -s "$work/post.lua" \
            "${url[$name]}" | grep '^RESULT')
        after=$(ticks "${pid[$name]}")
        python3 - "$line" "$((after - before))" "$(getconf CLK_TCK)" "$round" "$name" <<'PY'
import re, sys
r = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', sys.argv[1])}
ticks, hz = int(sys.argv[2]), int(sys.argv[3])
rps = r["requests"] / (r["duration_us"] / 1e6)
cpu = ticks * 1e6 / hz / max(r["requests"], 1)
print(f'| {sys.argv[4]} | {sys.argv[5]} | {rps:,.0f} | {cpu:.1f} | {r["non2xx"]} |')
PY
    done
done
