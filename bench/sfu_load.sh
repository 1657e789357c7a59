# Shared by the SFU benchmark scripts (sourced, not run): the release binaries, the load
# tool's secret, and the Isoplane SFU started the way `isoplane-sfu-load` expects it
# (HTTP on 127.0.0.1:7880, UDP from 127.0.0.1:7882, two workers, no ICE-TCP).

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release
secret=load-secret-0123456789abcdef

# start_isoplane_sfu LOG [PREFIX...]: starts the SFU behind PREFIX (e.g. taskset -c 0),
# logging to LOG, sets $sfu to its process ID and waits until it answers.
start_isoplane_sfu() {
    local log=$1
    shift
    ISOPLANE_SFU_SECRET=$secret ISOPLANE_SFU_LISTEN_HTTP=127.0.0.1:7880 \
    ISOPLANE_SFU_LISTEN_UDP=127.0.0.1:7882 ISOPLANE_SFU_LISTEN_TCP=off ISOPLANE_SFU_WORKERS=2 \
    "$@" "$bin/isoplane-sfu" >"$log" 2>&1 &
    sfu=$!
    for _ in $(seq 1 100); do
        curl -s -o /dev/null http://127.0.0.1:7880/healthz && return 0
        sleep 0.1
    done
    echo "no SFU at 127.0.0.1:7880 (log: $log)" >&2
    return 1
}
