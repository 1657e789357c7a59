#!/usr/bin/env bash
# Side-by-side SFU load: the Isoplane SFU, then Janus 1.1.2's VideoRoom, on the same
# load, each server pinned to core 0 and the load tool to core 1. Loopback only.
#
#   apt-get install -y janus            # Debian bookworm: 1.1.2
#   cargo build --release -p isoplane-sfu
#   bench/janus/compare.sh [load tool options...]   # e.g. --rooms 5 --subscribers 20 --video-pps 200
#
# Run it from the repository root. Target directory: $CARGO_TARGET_DIR or ./target.
set -euo pipefail

source "$(dirname "$0")/../sfu_load.sh"
seconds=${SECONDS_MEASURED:-20}
log=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT

echo "== isoplane (log: $log/isoplane.log)"
start_isoplane_sfu "$log/isoplane.log" taskset -c 0
ISOPLANE_SFU_SECRET=$secret taskset -c 1 "$bin/isoplane-sfu-load" --target isoplane --server-pid $sfu \
    --seconds "$seconds" --warmup 20 --baseline-seconds 10 "$@"
kill -INT $sfu; wait $sfu || true

echo "== janus (log: $log/janus.log)"
# Janus never gathers candidates on a loopback interface, so it runs in a private
# network namespace where a veth end holds 127.0.0.2 (see janus.jcfg): the load tool
# still only talks to 127.0.0.0/8 and nothing can leave the namespace.
unshare -n bash -c '
    set -e
    root=$1 log=$2 bin=$3 seconds=$4
    shift 4
    ip link set lo up
    ip link add jl0 type veth peer name jl1
    ip addr add 127.0.0.2/32 dev jl0
    ip link set jl0 up; ip link set jl1 up
    # libnice sends out of jl0 itself (not through lo): the packets come back in on
    # jl1, from a local 127.0.0.2 to 127.0.0.1, which the kernel drops unless told not to.
    for dev in all default lo jl0 jl1; do
        sysctl -qw net.ipv4.conf.$dev.route_localnet=1 net.ipv4.conf.$dev.accept_local=1 \
            net.ipv4.conf.$dev.rp_filter=0
    done
    taskset -c 0 janus -C "$root/bench/janus/janus.jcfg" -F "$root/bench/janus" >"$log/janus.log" 2>&1 &
    janus=$!
    for _ in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:8088/janus/info && break; sleep 0.1; done
    taskset -c 1 "$bin/isoplane-sfu-load" --target janus --server-pid $janus --seconds "$seconds" \
        --warmup 20 "$@" || status=$?
    kill -INT $janus; wait $janus || true
    exit ${status:-0}
' janus "$root" "$log" "$bin" "$seconds" "$@" || echo "janus: the run failed (docs/benchmarks.md says why)"
