#!/usr/bin/env bash
# `make bench`: micro benchmarks, ingest's CPU cost per request against a bare
# Beast server and Fastify (per_core.sh, side by side in alternating rounds),
# ingest's latency against offered load; writes benchmarks/RESULTS.md.
# usage: benchmarks/run.sh BUILD_DIR   (a Release build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
bin=$build/bin
out=${BENCH_OUT:-benchmarks/RESULTS.md}
# BENCH_PARTS picks sections (micro percore ingest consumer) for a quicker look;
# with fewer than all, write to another file (BENCH_OUT) or the figures go missing.
parts=" ${BENCH_PARTS:-micro percore ingest consumer} "
want() { [[ "$parts" == *" $1 "* ]]; }
work=$(mktemp -d /tmp/meshhook-bench.XXXXXX)
secret=whsec_test_fixture_secret
duration=${BENCH_SECONDS:-10}
connections=${BENCH_CONNECTIONS:-256}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk missing: apt-get install wrk"; exit 1; }
ulimit -n 65536 2>/dev/null || true
cores=$(nproc)
server_core=0
client_core=$(( cores > 1 ? 1 : 0 ))
cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {  # URL
    for _ in $(seq 1 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "timed out waiting for $1"; return 1
}

# ---------------------------------------------------------------- micro
micro_rows=""
if want micro; then
echo "== micro benchmarks"
"$bin/bench_micro" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_format=json > "$work/micro.json" 2>/dev/null
openssl_hmac=$(openssl speed -seconds 3 -bytes 1024 -hmac sha256 2>/dev/null | awk '/^hmac\(sha256\)/ {print $2}')
micro_rows=$(python3 - "$work/micro.json" "$openssl_hmac" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
med = {b["run_name"]: b for b in data["benchmarks"] if b.get("aggregate_name") == "median"}
ns = lambda n: med[n]["real_time"]
rows = []
def row(name, ours, ceiling, what):
    rows.append(f"| {what} | {ns(ours):.0f} ns | {ns(ceiling):.0f} ns | {ns(ours)/ns(ceiling):.2f}x |")
row("v", "BM_VerifySignature1KiB", "BM_CeilingOpenSslHmac1KiB", "verify 1 KiB delivery vs pre-keyed OpenSSL HMAC-SHA256")
row("p", "BM_ParseEvent1KiB", "BM_CeilingSimdjsonDomParse1KiB", "parse 1 KiB delivery vs simdjson DOM parse (" + med["BM_CeilingSimdjsonDomParse1KiB"].get("label","") + ")")
rows.append(f"| verify with two active secrets (rotation) | {ns('BM_VerifySignatureTwoSecrets1KiB'):.0f} ns | | |")
o = sys.argv[2].rstrip('k')
if o:
    per = 1024 / (float(o) * 1000) * 1e9
    rows.append(f"| `openssl speed -hmac sha256 -bytes 1024` | | {per:.0f} ns | verify: {ns('BM_VerifySignature1KiB')/per:.2f}x |")
print("\n".join(rows))
PY
)
fi

# ---------------------------------------------------------------- per core
# CPU-µs per request side by side: bare Beast server, ingest on both Kafka
# engines and with an immediate ack, Fastify; see per_core.sh.
percore_md=""
if want percore; then
    echo "== ingest CPU per request per core (per_core.sh)"
    if benchmarks/per_core.sh "$build" "$work/percore.md"; then
        percore_md=$(cat "$work/percore.md")
    else
        percore_md="**per_core.sh failed** (see the output of \`make bench\`); no per-core figures in this run."
    fi
fi

# ---------------------------------------------------------------- ingest load
# Load generators run at nice 10 on the client core, which they share with the
# test broker: the broker's acks must not wait behind the generator (in
# production Kafka has machines of its own). Same conditions for both servers.
client() { nice -n 10 taskset -c "$client_core" "$@"; }
run_wrk() {  # URL SCRIPT -> prints RESULT line
    client wrk -t1 -c"$connections" -d"${duration}s" --latency -s "$2" "$1" | grep '^RESULT'
}
measure() {  # PID URL SCRIPT -> "RESULT ... cpu_ticks=N"
    local before after line
    before=$(cpu_ticks "$1")
    line=$(run_wrk "$2" "$3")
    after=$(cpu_ticks "$1")
    echo "$line cpu_ticks=$((after - before))"
}
field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<< "$2"; }
id_seed=100  # every open-loop run posts Ids of its own: none is a replay ingest remembers
open_loop() {  # NAME URL RATE -> appends "NAME RESULT ..." to the sweep file
    local line
    id_seed=$(( id_seed + 1 ))
    line=$(client "$bin/bench_load" --url "$2" --fixture tests/fixtures/03-succeeded.json \
        --secret "$secret" --rate "$3" --seconds "$sweep_seconds" --connections "$connections" \
        --id-seed "$id_seed" 2>/dev/null |
        grep '^RESULT') || line="RESULT offered_per_s=$3 failed=1"
    echo "$1 $line" >> "$work/sweep.txt"
    echo "  $1 at $3/s: $line"
}
start_ingest() {  # THREADS CPUSET -> sets ingest_pid, ingest_url, ingest_admin
    local port admin_port
    port=$(free_port)
    admin_port=$(free_port)
    MESH_WEBHOOK_SECRET=$secret taskset -c "$2" "$bin/meshhook-ingest" --listen "127.0.0.1:$port" \
        --admin-listen "127.0.0.1:$admin_port" \
        --brokers "$bootstrap" --threads "$1" --remember-deliveries 1000 \
        > "$work/ingest.out" 2> "$work/ingest.err" &
    ingest_pid=$!; pids+=("$ingest_pid")
    ingest_url="http://127.0.0.1:$port/webhooks/mesh"
    ingest_admin="http://127.0.0.1:$admin_port"
    wait_http "$ingest_admin/readyz"
}
stop_ingest() { kill -TERM "$ingest_pid"; wait "$ingest_pid" || true; }

ingest_rows=""
sweep_seconds=${BENCH_SWEEP_SECONDS:-5}
if want ingest && [ -x "$bin/meshhook-ingest" ] && [ -x "$bin/meshhook" ] && [ -x "$bin/bench_load" ]; then
    echo "== ingest load test (server on core $server_core, client on core $client_core, ${duration}s each)"
    python3 benchmarks/make_wrk_script.py tests/fixtures/03-succeeded.json "$secret" 2000 /webhooks/mesh "$work/post.lua" 1
    python3 benchmarks/make_wrk_script.py tests/fixtures/03-succeeded.json "$secret" 2000 /webhooks/mesh "$work/post-2.lua" 2
    : > "$work/sweep.txt"

    mkfifo "$work/broker.in"
    taskset -c "$client_core" "$bin/meshhook" broker --brokers 3 --partitions 4 < "$work/broker.in" > "$work/broker.out" 2>"$work/broker.err" &
    pids+=($!)
    exec 7>"$work/broker.in"   # keeps the broker's stdin open
    for _ in $(seq 1 100); do grep -q bootstrap= "$work/broker.out" 2>/dev/null && break; sleep 0.05; done
    bootstrap=$(sed -n 's/^bootstrap=//p' "$work/broker.out")

    # 1. Peak, closed loop (wrk), on the pinned core: the rate the sweep's
    # fractions are of (the side-by-side CPU figures are per_core.sh's).
    port=$(free_port)
    taskset -c "$server_core" "$bin/bench_baseline_server" 127.0.0.1 "$port" > /dev/null &
    base_pid=$!; pids+=("$base_pid")
    base_url="http://127.0.0.1:$port/webhooks/mesh"
    wait_http_post() { for _ in $(seq 1 100); do curl -fsS -o /dev/null -d x "$1" 2>/dev/null && return 0; sleep 0.05; done; }
    wait_http_post "$base_url"

    start_ingest 1 "$server_core"
    ours=$(measure "$ingest_pid" "$ingest_url" "$work/post.lua")
    curl -fsS "$ingest_admin/metrics" > "$work/ingest.metrics"

    # Where the time goes: perf samples the server during a second peak run.
    profile=""
    if [ "${BENCH_PROFILE:-1}" = 1 ]; then
        (sleep 1; benchmarks/profile_ingest.sh "$ingest_pid" $(( duration > 3 ? duration - 2 : 1 )) \
            "$work/ingest.perf" > "$work/profile.md" 2>&1) &
        prof_pid=$!
        run_wrk "$ingest_url" "$work/post-2.lua" > /dev/null
        wait "$prof_pid" || true
        profile=$(cat "$work/profile.md")
    fi

    # 2. Latency against offered load, open loop (bench_load: each request
    # due at its time, latency from then; Kafka ack included for ingest), at
    # fractions of meshhook-ingest's peak, the same rates for the baseline.
    peak=$(( $(field requests "$ours") * 1000000 / $(field duration_us "$ours") ))
    half=$(( peak / 2 ))
    echo "== open-loop sweep (peak $peak/s)"
    for pct in ${BENCH_SWEEP_PERCENT:-10 25 50 75 90 100}; do
        open_loop meshhook-ingest "$ingest_url" $(( peak * pct / 100 ))
    done
    stop_ingest
    for pct in ${BENCH_SWEEP_PERCENT:-10 25 50 75 90 100}; do
        open_loop baseline "$base_url" $(( peak * pct / 100 ))
    done
    kill "$base_pid"

    # 3. Scaling: the same peak run with 2 I/O threads on both cores (shared
    # with the client and the broker: an upper bound of what 2 threads show here).
    start_ingest 2 "0-$(( cores - 1 ))"
    two=$(measure "$ingest_pid" "$ingest_url" "$work/post.lua")
    stop_ingest

    python3 benchmarks/plot.py "$work/sweep.txt" "$(dirname "$out")/ingest"
    tick=$(getconf CLK_TCK)
    ingest_rows=$(python3 - "$ours" "$two" "$tick" "$half" "$work/sweep.txt" <<'PY'
import re, sys
def parse(s):
    return {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', s)}
ours, two, tick = parse(sys.argv[1]), parse(sys.argv[2]), int(sys.argv[3])
half = int(sys.argv[4])
def rps(r): return r["requests"] / (r["duration_us"] / 1e6)
def cpu_us(r): return r["cpu_ticks"] * 1e6 / tick / max(r["requests"], 1)
def lat(r): return f'{r["p50_us"]/1000:.2f} / {r["p99_us"]/1000:.2f} / {r["p999_us"]/1000:.2f} / {r["max_us"]/1000:.1f}'
print('| meshhook-ingest | requests/s | CPU-µs per request | latency p50 / p99 / p99.9 / max (ms) | non-2xx |')
print('|---|---|---|---|---|')
print(f'| 1 thread on core 0 (verify + parse + Kafka acks=all) | {rps(ours):,.0f} | {cpu_us(ours):.1f} | {lat(ours)} | {ours["non2xx"]} |')
print(f'| 2 threads on both cores (shared with the client and broker) | {rps(two):,.0f} | {cpu_us(two):.1f} | {lat(two)} | {two["non2xx"]} |')
print(f'\n2 threads: {rps(two)/rps(ours):.2f}x the 1-thread requests/s (single runs; the per-core comparison is above).')
print('\n### Latency against offered load (open loop, `bench_load`)\n')
print('| server | offered/s | answered/s | p50 | p90 | p99 | p99.9 | max (ms) | non-2xx | errors | 200s over 200 ms |')
print('|---|---|---|---|---|---|---|---|---|---|---|')
half_row = None
for line in open(sys.argv[5]):
    name, rest = line.split(None, 1)
    r = parse(rest)
    if 'failed' in r:
        print(f'| {name} | {r["offered_per_s"]:,} | FAILED | | | | | | | | |'); continue
    ms = lambda k: f'{r[k]/1000:.2f}'
    print(f'| {name} | {r["offered_per_s"]:,} | {r["achieved_per_s"]:,} | {ms("p50_us")} | {ms("p90_us")} | {ms("p99_us")} | '
          f'{ms("p999_us")} | {ms("max_us")} | {r["non2xx"]} | {r["errors"]} | {r["over_200ms_ok"]} |')
    if name == 'meshhook-ingest' and abs(r['offered_per_s'] - half) <= 1:
        half_row = r
if half_row:
    print(f'\n**At half the peak ({half_row["offered_per_s"]:,}/s offered, Kafka ack included): '
          f'p99 {half_row["p99_us"]/1000:.2f} ms, p99.9 {half_row["p999_us"]/1000:.2f} ms, max {half_row["max_us"]/1000:.2f} ms.**')
print('\nPlots: [throughput](ingest-throughput.svg), [latency](ingest-latency.svg) against offered load.')
PY
)
fi

# ---------------------------------------------------------------- consumer store
consumer_rows=""
if want consumer && [ -x "$bin/bench_consumer_store" ]; then
    events=${BENCH_CONSUMER_EVENTS:-1000000}
    echo "== consumer store: $events events"
    store_run() {  # LABEL URL
        "$bin/bench_consumer_store" "$2" "$events" 500 5000 | while read -r line; do
            b=$(sed -n 's/.*batch=\([0-9]*\).*/\1/p' <<< "$line")
            r=$(sed -n 's/.*events_per_s=\([0-9]*\).*/\1/p' <<< "$line")
            s=$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<< "$line")
            printf '| %s | %s | %s | %s |\n' "$1" "$b" "$(printf "%'d" "$r")" "$s"
        done
    }
    consumer_rows+=$(store_run "SQLite, file on this machine's disk (WAL, synchronous=FULL)" "sqlite://$work/bench.db")$'\n'
    consumer_rows+=$(store_run "SQLite on tmpfs (/dev/shm: the store's CPU cost without the disk's fsync)" "sqlite:///dev/shm/meshhook-bench-$$.db")$'\n'
    rm -f /dev/shm/meshhook-bench-$$.db*
    pgbin=/usr/lib/postgresql/15/bin
    if [ -x "$pgbin/initdb" ]; then
        pgdir=$work/pg; mkdir -p "$pgdir"; pgport=$(free_port)
        chmod 711 "$work"  # mktemp -d is 0700: the postgres user must reach $pgdir
        as_pg() { if [ "$(id -u)" = 0 ]; then chown -R postgres "$pgdir"; runuser -u postgres -- "$@"; else "$@"; fi; }
        as_pg "$pgbin/initdb" -D "$pgdir/data" -A trust -U meshhook > /dev/null
        as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1" -l "$pgdir/log" -w start > /dev/null
        as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U meshhook meshhook
        consumer_rows+=$(store_run "PostgreSQL 15 (local server, defaults: synchronous_commit=on)" "postgresql://meshhook@127.0.0.1:$pgport/meshhook")
    fi
fi

# ---------------------------------------------------------------- consumer end to end
# Topic to credit commands through meshhook broker; each run needs a fresh
# store (the store's offsets would be past a fresh broker's).
e2e_rows=""
if want consumer && [ -x "$bin/bench_consumer_e2e" ]; then
    e2e_events=${BENCH_E2E_EVENTS:-200000}
    echo "== consumer end to end: $e2e_events events"
    e2e_run() {  # LABEL URL
        local line
        line=$("$bin/bench_consumer_e2e" "$bin" "$2" "$e2e_events" | grep '^RESULT') ||
            { printf '| %s | FAILED (see the output above) | | |\n' "$1"; return 0; }
        printf '| %s | %s | %s | %s |\n' "$1" "$(field events "$line")" \
            "$(printf "%'d" "$(field events_per_s "$line")")" "$(sed -n 's/.*seconds=\([0-9.]*\).*/\1/p' <<< "$line")"
    }
    e2e_rows+=$(e2e_run "SQLite, file on this machine's disk (WAL, synchronous=FULL)" "sqlite://$work/e2e.db")$'\n'
    if [ -n "${pgport:-}" ]; then
        as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$pgport" -U meshhook meshhook_e2e
        e2e_rows+=$(e2e_run "PostgreSQL 15 (local server, defaults: synchronous_commit=on)" "postgresql://meshhook@127.0.0.1:$pgport/meshhook_e2e")
    fi
fi
if [ -n "${pgport:-}" ]; then
    as_pg "$pgbin/pg_ctl" -D "$pgdir/data" -m fast stop > /dev/null
fi

{
    echo "# Benchmark results"
    echo
    echo "Written by \`make bench\` (\`benchmarks/run.sh $build\`) on $(date -u +%Y-%m-%d) at $(date -u +%H:%M) UTC."
    echo "Machine: $cores cores, $cpu_model, $(free -g | awk '/^Mem:/ {print $2}') GiB; $(uname -sr)."
    echo "Release build (\`cmake --preset release\`), g++ $(g++ -dumpversion)."
    echo
    if [ -n "$micro_rows" ]; then
    echo "## Micro benchmarks (Google Benchmark, median of 5; ratios from the same run)"
    echo
    echo "| what | ours | ceiling | ratio |"
    echo "|---|---|---|---|"
    echo "$micro_rows"
    echo
    echo "Command: \`$bin/bench_micro\`; ceiling for verification also from \`openssl speed -seconds 3 -bytes 1024 -hmac sha256\`."
    fi
    if [ -n "$percore_md" ]; then
        echo
        echo "$percore_md"
    fi
    if [ -n "$ingest_rows" ]; then
        echo
        echo "## Ingest: 1 and 2 threads, latency against offered load"
        echo
        echo "Server pinned to core $server_core; \`wrk -t1 -c$connections -d${duration}s\` (peak, closed loop) and"
        echo "\`bench_load --connections $connections --seconds $sweep_seconds\` (open loop) pinned to core $client_core at nice 10;"
        echo "2,000 distinct signed deliveries (fixture 03 with fresh ids) posted in turn to \`/webhooks/mesh\`."
        echo "meshhook-ingest answers 200 only after the test broker (\`meshhook broker\`, 3 brokers, also on core $client_core) acknowledged with acks=all;"
        echo "\`--remember-deliveries 1000\`, fewer than the 2,000 Ids in turn, so that every request is produced."
        echo "$connections connections: enough that the server core, not Kafka's round trip, limits a closed loop."
        echo
        echo "$ingest_rows"
        if [ -n "${profile:-}" ]; then
            echo
            echo "### Where meshhook-ingest's time goes (perf, cpu-clock sampling, 1 thread at peak load)"
            echo
            echo "$profile"
        fi
    fi
    if [ -n "$consumer_rows" ]; then
        echo
        echo "## Consumer: events/s applied by the store alone"
        echo
        echo "\`$bin/bench_consumer_store URL $events 500 5000\`: the consume loop's BatchApplier (parse, state machine,"
        echo "outbox, transfer rows, fenced offset move) with one transaction per batch, four events per transfer"
        echo "(pending, processing, succeeded, Mesh's retry), $((events / 4)) credits written; no Kafka."
        echo
        echo "| store | batch | events/s | seconds |"
        echo "|---|---|---|---|"
        echo "$consumer_rows"
    fi
    if [ -n "$e2e_rows" ]; then
        echo
        echo "## Consumer: end to end, topic to credit commands"
        echo
        echo "\`$bin/bench_consumer_e2e $bin STORE_URL $e2e_events\`: \`meshhook broker\` (3 brokers, 4 partitions) and"
        echo "\`meshhook-consumer --batch-max 5000 --batch-ms 20\` in their own processes; transfer events produced to"
        echo "\`mesh.transfer-events\` while credit commands are read back from \`ledger.credit-commands\` (at most"
        echo "20,000 events produced ahead of the credits), four events per transfer, $((e2e_events / 4)) credits, each checked to arrive exactly once."
        echo "Timed from the first event produced to the last credit read; the group join is done before (warm-up transfer)."
        echo
        echo "| store | events | events/s | seconds |"
        echo "|---|---|---|---|"
        echo "$e2e_rows"
    fi
    echo
    echo "How these figures are made, where the CPU goes and the scaling projection: [README.md](README.md)."
} > "$out"
cat "$out"
