#!/usr/bin/env bash
# Runs every libFuzzer target for FUZZ_SECONDS (default 60) each, seeded from
# tests/fixtures. Crashes, leaks, timeouts and out-of-memory fail the run;
# the reproducer is left in build/fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
bin=build/fuzz/bin
work=build/fuzz/corpus
art=build/fuzz/artifacts
mkdir -p "$work" "$art"

seed() {  # seed DIR MODE
    local dir=$1 mode=$2
    mkdir -p "$dir"
    for f in tests/fixtures/*.json; do
        case $mode in
            body) cp "$f" "$dir/" ;;
            signed) { openssl dgst -sha256 -hmac whsec_test_fixture_secret -binary < "$f" | base64; cat "$f"; } \
                        > "$dir/$(basename "$f")" ;;
            http) { printf 'POST /webhooks/mesh HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
                    printf 'X-Mesh-Signature-256: %s\r\n' "$(openssl dgst -sha256 -hmac whsec_test_fixture_secret -binary < "$f" | base64)"
                    printf 'Content-Length: %s\r\n\r\n' "$(wc -c < "$f")"; cat "$f"; } > "$dir/$(basename "$f")" ;;
        esac
    done
}

status=0
for target in fuzz_transfer_event fuzz_signature fuzz_http_request; do
    [ -x "$bin/$target" ] || continue
    case $target in
        fuzz_transfer_event) mode=body ;;
        fuzz_signature) mode=signed ;;
        fuzz_http_request) mode=http ;;
    esac
    seed "$work/$target" "$mode"
    echo "== $target for ${seconds}s"
    if ! "$bin/$target" -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
            -artifact_prefix="$art/$target-" -print_final_stats=1 "$work/$target" 2> "$art/$target.log"; then
        echo "FAILED: $target (see $art/$target.log)"; tail -40 "$art/$target.log"; status=1
    else
        grep -E "^Done|stat::number_of_executed_units" "$art/$target.log" | tail -2
    fi
done
exit $status
