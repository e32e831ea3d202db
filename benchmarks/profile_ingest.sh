#!/usr/bin/env bash
# Samples a running meshhook-ingest with perf (software cpu-clock: hardware
# counters are not available on these VMs) for SECONDS and prints where its
# CPU time goes, by shared object and by symbol, as markdown.
# usage: benchmarks/profile_ingest.sh PID SECONDS OUT.data
set -euo pipefail
pid=$1; seconds=$2; data=$3
command -v perf >/dev/null || { echo "(perf not installed: apt-get install linux-perf)"; exit 0; }
perf record -F 999 -g -p "$pid" -o "$data" -- sleep "$seconds" > /dev/null 2>&1 || {
    echo "(perf record failed here)"; exit 0; }
echo '```'
echo "share of samples by shared object"
perf report -i "$data" --stdio --no-children --sort dso 2>/dev/null | grep -E '^ +[0-9.]+%' | sed -E 's/[[:space:]]+$//' | head -12
echo
echo "top symbols (self time)"
perf report -i "$data" --stdio --no-children --sort dso,symbol 2>/dev/null | grep -E '^ +[0-9.]+%' \
    | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//; s/[[:space:]]+$//; s/ {3,}/  /g' | cut -c1-150 | head -25
echo '```'
