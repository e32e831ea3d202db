#!/usr/bin/env bash
# CPU cost per request of one core's worth of ingest, side by side in one run:
# every server pinned to core 0 with one I/O thread, the load generator and
# the brokers on core 1, alternating rounds (the order rotates every round).
#
# Servers: the bare Beast server, meshhook-ingest on the mock cluster
# (`meshhook broker`), meshhook-ingest on Apache Kafka (`meshhook broker
# --engine apache`), bench_ingest_immediate_ack (Kafka replaced by an
# immediate ack) and Fastify (verify + parse, no Kafka). CPU per request is
# the whole server process's utime+stime (/proc/PID/stat, all its threads,
# librdkafka's included; not the broker's) over the requests wrk saw answered.
# Then an open-loop run (bench_load) per Kafka engine at half its median peak.
#
# usage: benchmarks/per_core.sh BUILD_DIR [OUT.md]   (a Release build)
# The markdown goes to OUT.md (default: stdout); progress goes to stderr.
# Environment: BENCH_ROUNDS (5), BENCH_SECONDS (10), BENCH_CONNECTIONS (256),
# BENCH_WARMUP_SECONDS (2), BENCH_SWEEP_SECONDS (10), BENCH_ENGINES
# ("mock apache"), BENCH_APACHE_BROKERS (1), MESHHOOK_KAFKA_LIBS
# (build/kafka/libs), BENCH_FASTIFY (1; 0 leaves Fastify out).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: benchmarks/per_core.sh BUILD_DIR [OUT.md]}
out=${2:-}
bin=$build/bin
rounds=${BENCH_ROUNDS:-5}
duration=${BENCH_SECONDS:-10}
connections=${BENCH_CONNECTIONS:-256}
warmup=${BENCH_WARMUP_SECONDS:-2}
sweep_seconds=${BENCH_SWEEP_SECONDS:-10}
engines=" ${BENCH_ENGINES:-mock apache} "
apache_brokers=${BENCH_APACHE_BROKERS:-1}
kafka_libs=${MESHHOOK_KAFKA_LIBS:-build/kafka/libs}
secret=whsec_test_fixture_secret
fixture=tests/fixtures/03-succeeded.json
# Every run posts 2,000 distinct deliveries in turn with Ids of its own (a
# seed per run: make_wrk_script.py's SEED, bench_load's --id-seed), and ingest
# remembers the last 1,000 acknowledged Ids (--remember-deliveries): each Id
# has been forgotten when it comes round again, so every request is produced
# to Kafka (with the default 100,000 nearly all would be answered from memory
# as replays) and the memory does its lookup, insert and eviction as in
# production at steady state.
distinct=2000
remember=1000

log() { echo "per_core: $*" >&2; }
die() { echo "per_core: $*" >&2; exit 1; }

for tool in wrk taskset python3 curl nice; do
    command -v "$tool" >/dev/null || die "$tool missing (wrk, curl: \`make deps\`; taskset: util-linux)"
done
for b in meshhook-ingest meshhook bench_baseline_server bench_load bench_ingest_immediate_ack; do
    [ -x "$bin/$b" ] || die "$bin/$b missing: cmake --build $build --target meshhook-ingest meshhook bench_baseline_server bench_load bench_ingest_immediate_ack"
done
[ "$rounds" -ge 1 ] || die "BENCH_ROUNDS must be at least 1"
cores=$(nproc)
[ "$cores" -ge 2 ] || log "only $cores core: server and client share it, the figures are not per core"
server_core=0
client_core=$(( cores > 1 ? 1 : 0 ))

work=$(mktemp -d /tmp/meshhook-percore.XXXXXX)
pids=()
cleanup() {
    local p
    exec 7>&- 8>&-   # the brokers' stdin: EOF stops them
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 1 100); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n 65536 2>/dev/null || true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_get() {  # URL SECONDS PID
    local tries=$(( $2 * 20 ))
    for _ in $(seq 1 "$tries"); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
wait_post() {  # URL SECONDS PID: any HTTP answer (401 for an unsigned POST) means it listens
    local tries=$(( $2 * 20 ))
    for _ in $(seq 1 "$tries"); do
        curl -sS -o /dev/null -d x "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
client() { nice -n 10 taskset -c "$client_core" "$@"; }

# ---------------------------------------------------------------- brokers
declare -A bootstrap broker_note broker_pid
start_broker() {  # ENGINE FD TIMEOUT_S ARGS... -> bootstrap[ENGINE]
    local engine=$1 fd=$2 timeout_s=$3 pid
    shift 3
    mkfifo "$work/broker-$engine.in"
    taskset -c "$client_core" "$bin/meshhook" broker --engine "$engine" "$@" \
        < "$work/broker-$engine.in" > "$work/broker-$engine.out" 2> "$work/broker-$engine.err" &
    pid=$!; pids+=("$pid"); broker_pid[$engine]=$pid
    eval "exec $fd>\"\$work/broker-\$engine.in\""   # keeps the broker's stdin open
    for _ in $(seq 1 $(( timeout_s * 10 ))); do
        grep -q '^bootstrap=' "$work/broker-$engine.out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '^bootstrap=' "$work/broker-$engine.out" 2>/dev/null; then
        broker_note[$engine]="did not start within ${timeout_s}s: $(tail -n 3 "$work/broker-$engine.err" | tr '\n' ' ')"
        return 1
    fi
    bootstrap[$engine]=$(sed -n 's/^bootstrap=//p' "$work/broker-$engine.out")
    # The apache engine's JVMs are its children (they die with it, PDEATHSIG);
    # listed here too so the trap ends them whatever happens to the broker.
    local child
    for child in $(pgrep -P "$pid" || true); do pids+=("$child"); done
}

log "mock cluster: 3 brokers, 4 partitions, on core $client_core"
start_broker mock 7 20 --brokers 3 --partitions 4 || die "mock broker: ${broker_note[mock]}"
broker_note[mock]="librdkafka's mock cluster (\`meshhook broker\`, 3 brokers, 4 partitions)"

apache_ok=0
if [[ "$engines" == *" apache "* ]]; then
    if ! compgen -G "$kafka_libs/*.jar" >/dev/null; then
        broker_note[apache]="skipped: no Apache Kafka jars in $kafka_libs (run \`make kafka\`, or set MESHHOOK_KAFKA_LIBS)"
    elif ! command -v java >/dev/null; then
        broker_note[apache]="skipped: java missing (Java 17: \`make deps\`)"
    else
        # Each broker JVM takes up to a 256 MiB heap (about 0.5 GiB resident):
        # one broker only when the machine has less than 3 GiB to spare.
        avail_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
        if [ "$apache_brokers" -gt 1 ] && [ "$avail_kib" -lt $(( 3 * 1024 * 1024 )) ]; then
            log "only $(( avail_kib / 1024 )) MiB available: Apache Kafka with 1 broker"
            apache_brokers=1
        fi
        log "Apache Kafka: $apache_brokers broker(s), 4 partitions, on core $client_core (JVM start: up to 3 minutes)"
        t0=$(date +%s)
        if start_broker apache 8 240 --brokers "$apache_brokers" --partitions 4 --kafka-libs "$kafka_libs"; then
            apache_ok=1
            replication=""
            [ "$apache_brokers" -lt 3 ] || replication=", replication 3, min.insync.replicas 2"
            broker_note[apache]="Apache Kafka (\`meshhook broker --engine apache\`, KRaft, $apache_brokers broker(s), 4 partitions$replication; started in $(( $(date +%s) - t0 )) s)"
        else
            broker_note[apache]="skipped: Apache Kafka ${broker_note[apache]}"
        fi
    fi
    [ "$apache_ok" = 1 ] || log "${broker_note[apache]}"
fi

# ---------------------------------------------------------------- servers
order=()
declare -A server_pid server_url server_admin server_label
add_server() {  # NAME PID URL LABEL
    order+=("$1"); server_pid[$1]=$2; server_url[$1]=$3; server_label[$1]=$4
}

port=$(free_port)
taskset -c "$server_core" "$bin/bench_baseline_server" 127.0.0.1 "$port" > "$work/baseline.out" 2>&1 &
pid=$!; pids+=("$pid")
wait_post "http://127.0.0.1:$port/webhooks/mesh" 10 "$pid" || die "bench_baseline_server did not start"
add_server baseline "$pid" "http://127.0.0.1:$port/webhooks/mesh" \
    "bare Beast server (\`bench_baseline_server\`: reads the POST, answers 200)"

start_ingest() {  # NAME BINARY ENGINE LABEL
    local p a pid
    p=$(free_port); a=$(free_port)
    MESH_WEBHOOK_SECRET=$secret taskset -c "$server_core" "$bin/$2" --listen "127.0.0.1:$p" \
        --admin-listen "127.0.0.1:$a" --brokers "${bootstrap[$3]}" --threads 1 \
        --remember-deliveries "$remember" > "$work/$1.out" 2> "$work/$1.err" &
    pid=$!; pids+=("$pid")
    wait_get "http://127.0.0.1:$a/readyz" 60 "$pid" ||
        die "$2 on the $3 broker not ready within 60 s: $(tail -n 3 "$work/$1.err" | tr '\n' ' ')"
    add_server "$1" "$pid" "http://127.0.0.1:$p/webhooks/mesh" "$4"
    server_admin[$1]="http://127.0.0.1:$a"
}
start_ingest ingest-mock meshhook-ingest mock "meshhook-ingest, Kafka ack from the mock cluster (acks=all)"
if [ "$apache_ok" = 1 ]; then
    start_ingest ingest-apache meshhook-ingest apache \
        "meshhook-ingest, Kafka ack from Apache Kafka, $apache_brokers broker(s) (acks=all)"
fi
start_ingest immediate-ack bench_ingest_immediate_ack mock \
    "\`bench_ingest_immediate_ack\`: ingest with Kafka replaced by an immediate ack (benchmark only)"

fastify_note=""
if [ "${BENCH_FASTIFY:-1}" != 1 ]; then
    fastify_note="left out (BENCH_FASTIFY=${BENCH_FASTIFY})"
elif ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    fastify_note="skipped: node or npm missing (Node.js 20 or later)"
elif [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
    fastify_note="skipped: Node.js $(node -v) is older than Fastify 5 needs (20)"
else
    fdir=$(realpath -m "$build/fastify")
    mkdir -p "$fdir"
    if ! cmp -s benchmarks/fastify/package-lock.json "$fdir/package-lock.json" ||
        [ ! -f "$fdir/node_modules/fastify/package.json" ]; then
        log "installing Fastify into $fdir (npm ci)"
        cp benchmarks/fastify/package.json benchmarks/fastify/package-lock.json "$fdir/"
        if ! (cd "$fdir" && npm ci --no-audit --no-fund > npm.log 2>&1); then
            rm -f "$fdir/package-lock.json"   # retried next run
            fastify_note="skipped: npm ci failed (registry unreachable?): $(grep -m1 -i 'err' "$fdir/npm.log" || true)"
        fi
    fi
    if [ -z "$fastify_note" ]; then
        cp benchmarks/fastify/server.js "$fdir/server.js"
        port=$(free_port)
        MESH_WEBHOOK_SECRET=$secret taskset -c "$server_core" node "$fdir/server.js" 127.0.0.1 "$port" \
            > "$work/fastify.out" 2> "$work/fastify.err" &
        pid=$!; pids+=("$pid")
        wait_post "http://127.0.0.1:$port/webhooks/mesh" 20 "$pid" ||
            die "Fastify did not start: $(tail -n 3 "$work/fastify.err" | tr '\n' ' ')"
        fastify_version=$(node -p "require('$fdir/node_modules/fastify/package.json').version")
        add_server fastify "$pid" "http://127.0.0.1:$port/webhooks/mesh" \
            "Fastify $fastify_version on Node.js $(node -v) (verify + JSON.parse, no Kafka)"
    fi
fi
[ -z "$fastify_note" ] || log "Fastify $fastify_note"

# ---------------------------------------------------------------- requests
seed=0
next_script() {  # -> $script, a wrk script with Ids no run used before
    seed=$(( seed + 1 ))
    script=$work/post-$seed.lua
    python3 benchmarks/make_wrk_script.py "$fixture" "$secret" "$distinct" /webhooks/mesh "$script" "$seed"
}
next_script
# The request's size on the wire, as wrk sends it: one request to a listener
# that counts its bytes (the Host header's port has as many digits as the servers').
wire_port=$(free_port)
python3 - "$wire_port" > "$work/wire.txt" <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8); s.settimeout(10)
while True:  # wrk's first connection only probes the address and closes
    c, _ = s.accept(); data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(65536)
        if not chunk: break
        data += chunk
    if b"\r\n\r\n" in data: break
    c.close()
head, _, rest = data.partition(b"\r\n\r\n")
length = int([l.split(b":", 1)[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
while len(rest) < length:
    rest += c.recv(65536)
print(f"wire_bytes={len(head) + 4 + length} header_bytes={len(head) + 4} body_bytes={length}")
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"); c.close()
PY
wire_pid=$!
sleep 0.3
timeout 5 wrk -t1 -c1 -d1s -s "$script" "http://127.0.0.1:$wire_port/webhooks/mesh" > /dev/null 2>&1 || true
wait "$wire_pid" || true
wire=$(cat "$work/wire.txt")
wire_field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<< "$wire"; }
[ -n "$(wire_field wire_bytes)" ] || die "could not measure the request's size on the wire"
log "request on the wire: $wire"

# ---------------------------------------------------------------- rounds
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run_wrk() {  # URL SECONDS SCRIPT
    client wrk -t1 -c"$connections" -d"$2s" --latency -s "$3" "$1" | grep '^RESULT' ||
        echo "RESULT failed=1"
}
if [ "$warmup" -gt 0 ]; then
    log "warm-up: ${warmup}s per server, not counted"
    for name in "${order[@]}"; do
        next_script
        run_wrk "${server_url[$name]}" "$warmup" "$script" > /dev/null
        sleep 0.5
    done
fi
: > "$work/rounds.txt"
n=${#order[@]}
for (( r = 0; r < rounds; r++ )); do
    for (( k = 0; k < n; k++ )); do
        name=${order[$(( (r + k) % n ))]}
        pid=${server_pid[$name]}
        next_script
        kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) died: $(tail -n 3 "$work/$name.err" 2>/dev/null | tr '\n' ' ')"
        before=$(cpu_ticks "$pid")
        line=$(run_wrk "${server_url[$name]}" "$duration" "$script")
        after=$(cpu_ticks "$pid")
        echo "server=$name round=$(( r + 1 )) position=$(( k + 1 )) ${line#RESULT } cpu_ticks=$(( after - before ))" >> "$work/rounds.txt"
        log "round $(( r + 1 ))/$rounds, $name: ${line#RESULT } cpu_ticks=$(( after - before ))"
        sleep 1   # late acks and closing connections settle before the next server's run
    done
done

# What ingest did: every 200 a record on the topic, none answered from memory.
: > "$work/ingest-metrics.txt"
for name in "${order[@]}"; do
    [ -n "${server_admin[$name]:-}" ] || continue
    curl -fsS "${server_admin[$name]}/metrics" > "$work/$name.metrics" || continue
    sum_metric() { awk -v m="$1" '$1 ~ "^"m"[{ ]" || $1 == m {s += $NF} END {printf "%d", s}' "$work/$name.metrics"; }
    echo "server=$name published=$(sum_metric meshhook_ingest_published_total) repeated=$(sum_metric meshhook_ingest_repeated_deliveries_total)" >> "$work/ingest-metrics.txt"
done

# ---------------------------------------------------------------- open loop
median_rps() {  # NAME
    python3 - "$work/rounds.txt" "$1" <<'PY'
import re, statistics, sys
rps = []
for line in open(sys.argv[1]):
    f = dict(re.findall(r'(\w+)=([\w-]+)', line))
    if f.get('server') == sys.argv[2] and 'failed' not in f:
        rps.append(int(f['requests']) / (int(f['duration_us']) / 1e6))
print(int(statistics.median(rps)) if rps else 0)
PY
}
: > "$work/openloop.txt"
# Apache first, then its broker stopped: the JVM's background work on the
# client core (heartbeats, log flushes, GC) must not sit between the mock
# cluster's acks and its open loop.
for name in ingest-apache ingest-mock; do
    if [ "$name" = ingest-mock ] && [ -n "${broker_pid[apache]:-}" ]; then
        kill -TERM "${broker_pid[apache]}" 2>/dev/null || true
        wait "${broker_pid[apache]}" 2>/dev/null || true
    fi
    [ -n "${server_pid[$name]:-}" ] || continue
    rate=$(( $(median_rps "$name") / 2 ))
    [ "$rate" -gt 0 ] || continue
    log "open loop: $name at $rate/s for ${sweep_seconds}s"
    line=$(client "$bin/bench_load" --url "${server_url[$name]}" --fixture "$fixture" --secret "$secret" \
        --rate "$rate" --seconds "$sweep_seconds" --connections "$connections" --distinct "$distinct" --id-seed "$(( seed + 1000 ))" \
        2>/dev/null | grep '^RESULT') || line="RESULT offered_per_s=$rate failed=1"
    echo "server=$name ${line#RESULT }" >> "$work/openloop.txt"
    log "  ${line#RESULT }"
done

# ---------------------------------------------------------------- report
: > "$work/labels.txt"
for name in "${order[@]}"; do printf '%s\t%s\n' "$name" "${server_label[$name]}" >> "$work/labels.txt"; done
{
    echo "## Ingest CPU cost per request, per core (side by side, alternating rounds)"
    echo
    echo "Command: \`BENCH_ROUNDS=$rounds BENCH_SECONDS=$duration benchmarks/per_core.sh $build\`, $(date -u '+%Y-%m-%d %H:%M') UTC."
    echo "Machine: $cores cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); $(uname -sr)."
    echo
    echo "Each server pinned to core $server_core with one I/O thread; \`wrk -t1 -c$connections -d${duration}s\` at nice 10 and"
    echo "the brokers on core $client_core. Kafka: ${broker_note[mock]}; ${broker_note[apache]:-Apache Kafka not asked for (BENCH_ENGINES)}."
    echo "Every server started once, then $rounds rounds; in each, every server gets one run, the order rotated by one"
    echo "each round (a ${warmup}s warm-up run per server before, not counted). Request: fixture 03, $distinct distinct"
    echo "signed deliveries in turn (Ids new to each run), $(wire_field wire_bytes) bytes on the wire ($(wire_field header_bytes) of request line and headers, $(wire_field body_bytes) of body);"
    echo "ingest runs with \`--remember-deliveries $remember\` so that every request is produced (see README)."
    echo "CPU-µs per request: utime+stime of the whole server process (all threads: librdkafka's and Node's"
    echo "included; the brokers' not) from \`/proc/PID/stat\` over the run, divided by the requests answered."
    [ -z "$fastify_note" ] || { echo; echo "Fastify: $fastify_note."; }
    echo
    python3 - "$work/rounds.txt" "$work/labels.txt" "$(getconf CLK_TCK)" "$work/ingest-metrics.txt" "$work/openloop.txt" <<'PY'
import re, statistics, sys
rounds_file, labels_file, tick, metrics_file, openloop_file = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def parse(line):
    return dict(re.findall(r'(\w+)=([\w.-]+)', line))
labels = dict(l.rstrip('\n').split('\t', 1) for l in open(labels_file))
runs = {name: [] for name in labels}
for line in open(rounds_file):
    f = parse(line)
    runs[f['server']].append(f)
def rps(f): return int(f['requests']) / (int(f['duration_us']) / 1e6)
def cpu(f): return int(f['cpu_ticks']) * 1e6 / tick / max(int(f['requests']), 1)
def ok(f): return 'failed' not in f
def mmm(values, fmt):
    if not values: return 'n/a'
    return ' / '.join(fmt(v) for v in (min(values), statistics.median(values), max(values)))
med = {}
def busy(f): return int(f['cpu_ticks']) / tick / (int(f['duration_us']) / 1e6)
print('| server | requests/s min / median / max | CPU-µs per request min / median / max | server core busy, median | p99 latency, median (ms) | non-2xx | socket errors | rounds |')
print('|---|---|---|---|---|---|---|---|')
unsaturated = []
for name, fs in runs.items():
    good = [f for f in fs if ok(f)]
    r = [rps(f) for f in good]; c = [cpu(f) for f in good]
    med[name] = statistics.median(c) if c else None
    p99 = statistics.median(int(f['p99_us']) / 1000 for f in good) if good else 0
    core = statistics.median(busy(f) for f in good) if good else 0
    if good and core < 0.9: unsaturated.append((name, core))
    non2xx = sum(int(f['non2xx']) for f in good); errors = sum(int(f['errors']) for f in good)
    failed = len(fs) - len(good)
    print(f'| {labels[name]} | {mmm(r, lambda v: f"{v:,.0f}")} | {mmm(c, lambda v: f"{v:.1f}")} | {100 * core:.0f}% | {p99:.2f} | '
          f'{non2xx:,} | {errors:,} | {len(good)}{f" ({failed} failed)" if failed else ""} |')
print()
bad = [f for name in runs if name.startswith('ingest') or name == 'immediate-ack'
       for f in runs[name] if ok(f) and int(f['non2xx']) > 0]
failed = [f for fs in runs.values() for f in fs if not ok(f)]
if bad:
    print('**Rounds where ingest answered non-2xx** (503: Kafka did not acknowledge in time, or the producer queue was full): ' +
          '; '.join(f'{f["server"]} round {f["round"]}: {int(f["non2xx"]):,} of {int(f["requests"]):,}' for f in bad) + '.')
else:
    print('No ingest round answered anything but 2xx.')
if unsaturated:
    print('**Core not saturated** (busy below 90%: something else, the client core or the ack, limited the rate; '
          'the CPU per request then includes the wake-ups of an idle core and overstates the per-core cost): ' +
          '; '.join(f'{n} {100 * c:.0f}%' for n, c in unsaturated) + '.')
if failed:
    print('**Failed runs (wrk printed no result):** ' + '; '.join(f'{f["server"]} round {f["round"]}' for f in failed) + '.')
for line in open(metrics_file):
    f = parse(line)
    print(f'{f["server"]}: {int(f["published"]):,} deliveries acknowledged and recorded, {int(f["repeated"]):,} answered from memory as replays.')
print()
def ratio(a, b):
    if med.get(a) is None or med.get(b) is None: return None
    return med[a] / med[b]
def cell(v, goal):
    if v is None: return 'n/a'
    return f'{v:.2f} {"(met)" if v >= goal else "(not met)"}'
columns = [n for n in ('ingest-mock', 'ingest-apache', 'immediate-ack') if n in med]
heads = {'ingest-mock': 'ingest, mock cluster', 'ingest-apache': 'ingest, Apache Kafka',
         'immediate-ack': 'ingest, immediate ack (no Kafka)'}
print('Ratios of the median CPU-µs per request (higher is better for ingest):')
print()
print('| ratio | ' + ' | '.join(heads[n] for n in columns) + ' | goal |')
print('|---|' + '---|' * len(columns) + '---|')
print('| bare Beast server CPU / ingest CPU (efficiency) | ' + ' | '.join(cell(ratio('baseline', n), 0.85) for n in columns) + ' | ≥ 0.85 |')
if 'fastify' in med:
    print('| Fastify CPU / ingest CPU | ' + ' | '.join(cell(ratio('fastify', n), 3.0) for n in columns) + ' | ≥ 3 |')
kafka = [n for n in ('ingest-mock', 'ingest-apache') if n in med and 'immediate-ack' in med]
if kafka:
    print()
    print('Kafka\'s share, same run: ' + '; '.join(
        f'{heads[n]} {med[n]:.1f} µs per request against {med["immediate-ack"]:.1f} µs with an immediate ack '
        f'({med[n] - med["immediate-ack"]:.1f} µs for the producer, its threads and the ack)' for n in kafka) + '.')
print()
print('Open loop at half each engine\'s median peak (`bench_load`: request *k* due at *k*/rate, latency from then; Kafka ack included):')
print()
print('| server | offered/s | answered/s | p50 | p90 | p99 | p99.9 | max (ms) | non-2xx | errors | p99 < 10 ms |')
print('|---|---|---|---|---|---|---|---|---|---|---|')
for line in open(openloop_file):
    f = parse(line)
    name = labels.get(f['server'], f['server'])
    if 'failed' in f:
        print(f'| {name} | {int(f["offered_per_s"]):,} | FAILED | | | | | | | | |'); continue
    ms = lambda k: f'{int(f[k]) / 1000:.2f}'
    met = 'yes' if int(f['p99_us']) < 10000 else '**no**'
    print(f'| {name} | {int(f["offered_per_s"]):,} | {int(f["achieved_per_s"]):,} | {ms("p50_us")} | {ms("p90_us")} | '
          f'{ms("p99_us")} | {ms("p999_us")} | {ms("max_us")} | {f["non2xx"]} | {f["errors"]} | {met} |')
print()
print('<details><summary>Every run</summary>')
print()
print('| round | position | server | requests/s | CPU-µs per request | cpu ticks | p99 (ms) | non-2xx | errors |')
print('|---|---|---|---|---|---|---|---|---|')
for line in open(rounds_file):
    f = parse(line)
    if not ok(f):
        print(f'| {f["round"]} | {f["position"]} | {f["server"]} | FAILED | | | | | |'); continue
    print(f'| {f["round"]} | {f["position"]} | {f["server"]} | {rps(f):,.0f} | {cpu(f):.1f} | {f["cpu_ticks"]} | '
          f'{int(f["p99_us"]) / 1000:.2f} | {f["non2xx"]} | {f["errors"]} |')
print()
print('</details>')
PY
} > "$work/report.md"
# Machine-readable medians for run.sh (its open-loop sweep uses the mock engine's peak).
echo "mock_peak=$(median_rps ingest-mock)" > "$work/peaks.env"
if [ -n "$out" ]; then
    cp "$work/report.md" "$out"
    cp "$work/peaks.env" "$out.peaks"
else
    cat "$work/report.md"
fi
