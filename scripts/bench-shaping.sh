#!/usr/bin/env bash
# What `files` adds to a mount, end to end through the socket: pairs of bench-mount runs of the
# same mount (5 JSON objects of about BYTES bytes) without templated files (--files 0) and with
# three (--files WITH), one mount at a time. The client runs on core 0 and the provider with all
# its threads on core 1, so that neither waits for the other's core. The order in a pair
# alternates (without first, then with first): a run that follows another is slower on a busy
# machine, which with a fixed order would count against the second (an A/A check, WITH=0, shows
# the bias: +27 µs median with a fixed order on the 2-core machine of docs/benchmarks.md).
#
#   CARGO_TARGET_DIR=/some/dir cargo build --release --locked -p csi-secrets-provider-tests --bins
#   BENCH=/some/dir/release/bench-mount PAIRS=20 BYTES=2048 scripts/bench-shaping.sh
#
# TEMPLATES=copy makes the templates only copy an object each (the bytes without the work).
#
# Prints each pair and then the medians of the differences (with − without) of the p50 mount
# latency and of the provider's CPU per mount. Needs `taskset` and two cores.
set -euo pipefail

BENCH=${BENCH:-target/release/bench-mount}
PAIRS=${PAIRS:-20}
BYTES=${BYTES:-2048}
WITH=${WITH:-3}
TEMPLATES=${TEMPLATES:-shaping}
MOUNTS=${MOUNTS:-6000}

[ -x "$BENCH" ] || { echo "no $BENCH: build it (see the top of $0)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs two cores" >&2; exit 2; }

# One run: prints "<p50 µs> <provider CPU µs per mount>".
run() {
    local out bench pid p50 cpu
    out=$(mktemp)
    taskset -c 0 "$BENCH" --mounts "$MOUNTS" --concurrency 1 --objects 5 --bytes "$BYTES" \
        --files "$1" --templates "$TEMPLATES" --settle 0s --worker-threads 1 > "$out" 2>&1 &
    bench=$!
    for _ in $(seq 1 250); do
        pid=$(pgrep -P "$bench" test-provider || true)
        if [ -n "$pid" ]; then
            taskset -a -p -c 1 "$pid" > /dev/null
            break
        fi
        sleep 0.02
    done
    if ! wait "$bench"; then
        cat "$out" >&2
        rm -f "$out"
        return 1
    fi
    p50=$(grep -o 'p50 [0-9.]* ms' "$out" | head -1 | awk '{print $2 * 1000}')
    cpu=$(grep -o 'CPU (user + system): [0-9.]*' "$out" | awk '{print $5}')
    rm -f "$out"
    echo "$p50 $cpu"
}

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

latency=$(mktemp)
cpu=$(mktemp)
trap 'rm -f "$latency" "$cpu"' EXIT
for i in $(seq 1 "$PAIRS"); do
    p50_without='' p50_with=''
    if (( i % 2 )); then
        read -r p50_without cpu_without < <(run 0)
        read -r p50_with cpu_with < <(run "$WITH")
    else
        read -r p50_with cpu_with < <(run "$WITH")
        read -r p50_without cpu_without < <(run 0)
    fi
    if [ -z "${p50_without:-}" ] || [ -z "${p50_with:-}" ]; then
        echo "pair $i: a run failed" >&2
        exit 1
    fi
    awk -v a="$p50_without" -v b="$p50_with" 'BEGIN {print b - a}' >> "$latency"
    awk -v a="$cpu_without" -v b="$cpu_with" 'BEGIN {print b - a}' >> "$cpu"
    echo "pair $i: p50 $p50_without -> $p50_with µs, provider CPU $cpu_without -> $cpu_with µs per mount"
done
echo "median difference over $PAIRS pairs (values ~$BYTES bytes, --files $WITH, $TEMPLATES templates): p50 $(median < "$latency") µs," \
    "provider CPU $(median < "$cpu") µs per mount (range of p50 differences $(sort -n "$latency" | head -1) … $(sort -n "$latency" | tail -1))"
