#!/usr/bin/env bash
# Heap allocations per forwarded packet in the running SFU: the release `isoplane-sfu`
# under `isoplane-sfu-load`, with perf counting calls to mimalloc's entry points
# (uprobes: needs root and a perf with uprobe support, e.g. Debian's linux-perf).
# Loopback only.
#
#   cargo build --release -p isoplane-sfu --bins
#   bench/sfu_allocations.sh [load tool options...]   # default: 1 room, 2 publishers, 10 subscribers
#   RECORD=1 bench/sfu_allocations.sh                 # also where they come from (call stacks)
#
# Forwarded packets are read from the SFU's /metrics around the counting window.
set -euo pipefail

source "$(dirname "$0")/sfu_load.sh"
window=${WINDOW:-10}
work=$(mktemp -d)
probes="mi_malloc_aligned mi_zalloc_aligned mi_realloc_aligned"
trap 'kill $(jobs -p) 2>/dev/null || true; perf probe -q --del "isoplane_sfu_alloc:*" 2>/dev/null || true; rm -rf "$work"' EXIT

for function in $probes; do
    perf probe -q -x "$bin/isoplane-sfu" --add "isoplane_sfu_alloc:$function=$function"
done

start_isoplane_sfu "$work/sfu.log"

load=("$@")
[ ${#load[@]} -gt 0 ] || load=(--rooms 1 --publishers 2 --subscribers 10 --video-pps 100)
ISOPLANE_SFU_SECRET=$secret "$bin/isoplane-sfu-load" --target isoplane --server-pid $sfu \
    --warmup 10 --seconds $((window + 20)) "${load[@]}" >"$work/load.txt" 2>&1 &
load_tool=$!
sleep 15

forwarded() { curl -s http://127.0.0.1:7880/metrics | awk '/^isoplane_sfu_forwarded_packets/ {print $2}'; }
before=$(forwarded)
perf stat -e 'isoplane_sfu_alloc:*' -p $sfu -o "$work/stat.txt" -- sleep "$window"
after=$(forwarded)
grep isoplane_sfu_alloc "$work/stat.txt"
allocations=$(awk '/isoplane_sfu_alloc/ {gsub(",", "", $1); s += $1} END {print s}' "$work/stat.txt")
awk -v a="$allocations" -v f=$((after - before)) \
    'BEGIN {printf "forwarded %d packets, %d allocations: %.2f per forwarded packet\n", f, a, a / f}'

if [ -n "${RECORD:-}" ]; then
    # Call stacks of 3 s of allocations, counted by the first str0m or Isoplane function.
    perf record -q -e 'isoplane_sfu_alloc:*' --call-graph dwarf,16384 -p $sfu -o "$work/perf.data" -- sleep 3
    perf script -i "$work/perf.data" 2>/dev/null | awk '
        /^[^ \t]/ {counted = 0; next}
        !counted && $2 ~ /^<?(str0m|isoplane)/ {sub(/\+0x[0-9a-f]+$/, "", $2); sites[$2]++; counted = 1}
        END {for (s in sites) print sites[s], s}' | sort -rn | head -20
fi
wait $load_tool || true
kill -INT $sfu
tail -1 "$work/load.txt"
