#!/usr/bin/env bash
# Side-by-side benchmark: isoplane-turn vs coturn's turnserver on this machine, driven by
# coturn's own load client `turnutils_uclient` with the same flags, alternating runs.
#
# For each client count M (default "100 200") and round, each server relays
# M clients x N messages of L bytes through channels to a `turnutils_peer` echo on
# 127.0.0.1 and back. We read the server process's CPU time (the scheduler's count for
# each of its threads, /proc/PID/task/*/schedstat: clock ticks are too coarse for runs of
# a fraction of a CPU-second) before and after the run and report relayed messages (sent
# to the peer + received back) per server CPU-second, and the loss uclient reports.
#
# Everything listens on and talks to 127.0.0.1 only, on free ports picked at run time.
#
# Each condition of LOADS is measured in the same run: `idle`, and `cpu`, where a process
# keeps one core busy the whole time (as another service on the box would), so both
# servers are measured with one core's worth of CPU taken.
#
# Usage: turn/bench/coturn_compare.sh   (env: ROUNDS=3 N=200 L=100 MS="100 200" Z=20
# LOADS="idle cpu", Z = ms between a client's messages, uclient -z). isoplane-turn's own
# ISOPLANE_TURN_* settings pass through, e.g. ISOPLANE_TURN_UDP_SPREAD_AT_PERCENT=0 for
# a thread per UDP shard from the start.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-3}
N=${N:-200}
L=${L:-100}
MS=${MS:-"100 200"}
Z=${Z:-20}
LOADS=${LOADS:-"idle cpu"}
SECRET=bench-secret
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/isoplane/target}"

for tool in turnserver turnutils_uclient turnutils_peer python3; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install coturn python3)" >&2; exit 1; }
done

cargo build --quiet --release -p isoplane-turn --bin isoplane-turn
OURS_BIN="$CARGO_TARGET_DIR/release/isoplane-turn"

# WORK, PIDS and their cleanup, free_port, cpu_ns.
source bench/lib.sh
# Datagrams the kernel dropped for a full receive buffer, machine-wide (any socket:
# server, uclient or peer), to tell where loss happened.
rcvbuf_errors() { awk '/^Udp: [0-9]/ {print $6}' /proc/net/snmp; }

OURS_PORT=$(free_port)
COTURN_PORT=$(free_port)
PEER_PORT=$(free_port)

cat > "$WORK/ours.toml" <<TOML
listen_udp = "127.0.0.1:$OURS_PORT"
listen_tcp = "127.0.0.1:$OURS_PORT"
relay_ip = "127.0.0.1"
auth_secrets = ["$SECRET"]
allowed_peers = ["127.0.0.1/32"]
max_allocations_per_user = 100000
max_allocations_total = 100000
TOML
ISOPLANE_LOG=warn ISOPLANE_TURN_LISTEN_HTTP=off "$OURS_BIN" --config "$WORK/ours.toml" 2>"$WORK/ours.log" &
OURS_PID=$!
PIDS+=("$OURS_PID")

turnserver -n --no-cli --no-tls --no-dtls --listening-ip=127.0.0.1 --listening-port="$COTURN_PORT" \
    --relay-ip=127.0.0.1 --realm=isoplane --use-auth-secret --static-auth-secret="$SECRET" \
    --allowed-peer-ip=127.0.0.1 --allow-loopback-peers --log-file="$WORK/coturn.log" --simple-log \
    --pidfile="$WORK/coturn.pid" >/dev/null 2>&1 &
COTURN_PID=$!
PIDS+=("$COTURN_PID")

turnutils_peer -L 127.0.0.1 -p "$PEER_PORT" >/dev/null 2>&1 &
PIDS+=("$!")
sleep 1
kill -0 "$OURS_PID" && kill -0 "$COTURN_PID" || { echo "a server failed to start" >&2; cat "$WORK"/*.log >&2; exit 1; }

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  machine: $(nproc) CPUs, $(uname -r)  coturn: $(turnserver --version 2>/dev/null | head -1)"
echo "uclient flags: -c -X -W <secret> -u bench -n $N -m M -l $L -z $Z -e 127.0.0.1 -r <peer> -p <port> 127.0.0.1"
printf '%-5s %-8s %-4s %-5s %8s %8s %9s %10s %8s %7s %14s\n' load server M round sent recv missing% uclient_lost% rcvbuf_drops cpu_s msgs_per_cpu_s

run_one() { # name pid port M round
    local name=$1 pid=$2 port=$3 m=$4 round=$5
    local before after out sent recv lost cpu
    local drops_before drops_after
    drops_before=$(rcvbuf_errors)
    before=$(cpu_ns "$pid")
    out=$(timeout 300 turnutils_uclient -c -X -W "$SECRET" -u bench -n "$N" -m "$m" -l "$L" -z "$Z" \
        -e 127.0.0.1 -r "$PEER_PORT" -p "$port" 127.0.0.1 2>&1 || true)
    after=$(cpu_ns "$pid")
    drops_after=$(rcvbuf_errors)
    local totals
    totals=$(grep "tot_send_msgs=" <<<"$out" | grep -v msz= | tail -1 || true)
    sent=$(sed -n 's/.*tot_send_msgs=\([0-9]*\).*/\1/p' <<<"$totals")
    recv=$(sed -n 's/.*tot_recv_msgs=\([0-9]*\).*/\1/p' <<<"$totals")
    lost=$( (grep 'Total lost packets' <<<"$out" || true) | tail -1 | sed -n 's/.*(\([0-9.]*\)%).*/\1/p')
    cpu=$(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.3f", (a - b) / 1e9}')
    local rate
    rate=$(awk -v s="${sent:-0}" -v r="${recv:-0}" -v c="$cpu" 'BEGIN {if (c > 0) printf "%.0f", (s + r) / c; else print "inf"}')
    local missing
    missing=$(awk -v s="${sent:-0}" -v r="${recv:-0}" 'BEGIN {if (s > 0) printf "%.2f", 100 * (s - r) / s; else print "?"}')
    printf '%-5s %-8s %-4s %-5s %8s %8s %9s %10s %8s %7s %14s\n' "$LOAD" "$name" "$m" "$round" "${sent:-?}" "${recv:-?}" "$missing" \
        "${lost:-?}" "$((drops_after - drops_before))" "$cpu" "$rate"
}

for LOAD in $LOADS; do
    HOG=
    if [ "$LOAD" = cpu ]; then
        # One core kept busy for as long as this condition runs.
        bash -c 'while :; do :; done' &
        HOG=$!
        PIDS+=("$HOG")
    fi
    for m in $MS; do
        for round in $(seq 1 "$ROUNDS"); do
            if (( round % 2 )); then
                run_one isoplane "$OURS_PID" "$OURS_PORT" "$m" "$round"
                run_one coturn "$COTURN_PID" "$COTURN_PORT" "$m" "$round"
            else
                run_one coturn "$COTURN_PID" "$COTURN_PORT" "$m" "$round"
                run_one isoplane "$OURS_PID" "$OURS_PORT" "$m" "$round"
            fi
        done
    done
    if [ -n "$HOG" ]; then kill "$HOG"; fi
done
