#!/usr/bin/env bash
# GET of a cached asset: isoplane-assets against nginx serving the same file from a
# directory, side by side, under wrk with the same flags, alternating runs.
#
# Usage: assets-server/bench/compare_nginx.sh [ROUNDS] [SECONDS]
# Needs: wrk and nginx (Debian: apt-get install -y wrk nginx), curl, python3, and the
# release binary (cargo build --release -p isoplane-assets).
#
# Both servers listen on free 127.0.0.1 ports chosen at start; nginx runs from a config
# in a temp dir with its own pid and log files. Everything started here is stopped by
# its PID on exit. Prints one line per run and a summary table (markdown).
set -euo pipefail

ROUNDS="${1:-3}"
SECONDS_PER_RUN="${2:-10}"
WRK_FLAGS=(-t2 -c64 "-d${SECONDS_PER_RUN}s")
cd "$(dirname "$0")/../.."
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/isoplane/target}"
BINARY="$TARGET/release/isoplane-assets"
[ -x "$BINARY" ] || { echo "build it first: cargo build --release -p isoplane-assets" >&2; exit 1; }
command -v wrk >/dev/null && command -v nginx >/dev/null || { echo "apt-get install -y wrk nginx" >&2; exit 1; }

# WORK, PIDS and their cleanup, free_port, cpu_seconds.
source bench/lib.sh
# nginx's workers run as an unprivileged user: let them read the files.
chmod 755 "$WORK"
nginx_cpu_seconds() {
    local total=0 pid
    for pid in $(pgrep -P "$NGINX_PID") "$NGINX_PID"; do total=$(echo "$total + $(cpu_seconds "$pid")" | bc -l); done
    echo "$total"
}

SECRET="bench-secret-0123456789abcdef"
TOKEN="$(python3 - "$SECRET" <<'EOF'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
claims = b64(json.dumps({"sub": "bench", "name": "bench", "workspace": "bench", "role": "admin",
                         "exp": int(time.time()) + 3600}).encode())
signature = hmac.new(sys.argv[1].encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
print(f"{header}.{claims}.{b64(signature)}")
EOF
)"

# --- isoplane-assets ---
OURS_PORT="$(free_port)"
ISOPLANE_ASSETS_LISTEN="127.0.0.1:$OURS_PORT" ISOPLANE_ASSETS_TOKEN_SECRET="$SECRET" \
ISOPLANE_ASSETS_WORKSPACE=bench ISOPLANE_ASSETS_DATA_DIR="$WORK/data" \
    "$BINARY" >"$WORK/assets.log" 2>&1 &
OURS_PID=$!
PIDS+=("$OURS_PID")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$OURS_PORT/readyz" >/dev/null && break; sleep 0.1; done

# --- nginx, serving the same files from a directory ---
mkdir -p "$WORK/www/assets" "$WORK/nginx"
NGINX_PORT="$(free_port)"
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    open_file_cache max=1000 inactive=60s;
    types { image/png png; }
    default_type image/png;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $WORK/www;
        location /assets/ { add_header Cache-Control "public, max-age=31536000, immutable"; }
    }
}
EOF
nginx -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
for _ in $(seq 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NGINX_PORT/")" != 000 ] && break
    sleep 0.1
done

echo "# $(date -u +%F) on $(nproc) vCPU $(lscpu | sed -n 's/^Model name: *//p'), wrk ${WRK_FLAGS[*]}, $ROUNDS alternating rounds"
printf '%-8s %-8s %5s %12s %12s %16s\n' size server round "requests/s" "MB/s" "CPU-s/1M req"

declare -A TOTAL_RPS TOTAL_CPU
for size in 2048 131072; do
    head -c "$size" /dev/urandom >"$WORK/asset.bin"
    ID="$(curl -sf -X POST "http://127.0.0.1:$OURS_PORT/v1/assets" -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: image/png' --data-binary "@$WORK/asset.bin" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
    cp "$WORK/asset.bin" "$WORK/www/assets/$ID"
    for server in ours nginx; do TOTAL_RPS[$size-$server]=0; TOTAL_CPU[$size-$server]=0; done
    for round in $(seq "$ROUNDS"); do
        for server in ours nginx; do
            if [ "$server" = ours ]; then url="http://127.0.0.1:$OURS_PORT/assets/$ID"; else url="http://127.0.0.1:$NGINX_PORT/assets/$ID"; fi
            # Both answer 200 with the same bytes; warm the cache first.
            if ! { curl -sf -o "$WORK/check.bin" "$url" && cmp -s "$WORK/check.bin" "$WORK/asset.bin"; }; then
                echo "$server does not serve the asset at $url" >&2
                exit 1
            fi
            if [ "$server" = ours ]; then before="$(cpu_seconds "$OURS_PID")"; else before="$(nginx_cpu_seconds)"; fi
            output="$(wrk "${WRK_FLAGS[@]}" "$url")"
            if [ "$server" = ours ]; then after="$(cpu_seconds "$OURS_PID")"; else after="$(nginx_cpu_seconds)"; fi
            rps="$(echo "$output" | awk '/^Requests\/sec:/ {print $2}')"
            requests="$(echo "$output" | awk '/requests in/ {print $1}')"
            mbps="$(echo "$output" | awk '/^Transfer\/sec:/ {v=$2; if (v ~ /GB$/) m=1024; else if (v ~ /KB$/) m=1/1024; else m=1; sub(/[KMG]B$/, "", v); print v*m}')"
            errors="$(echo "$output" | awk '/Non-2xx|Socket errors/' | tr '\n' ' ')"
            cpu_per_million="$(echo "($after - $before) * 1000000 / $requests" | bc -l)"
            printf '%-8s %-8s %5s %12.0f %12.1f %16.2f %s\n' "$size" "$server" "$round" "$rps" "$mbps" "$cpu_per_million" "$errors"
            TOTAL_RPS[$size-$server]=$(echo "${TOTAL_RPS[$size-$server]} + $rps" | bc -l)
            TOTAL_CPU[$size-$server]=$(echo "${TOTAL_CPU[$size-$server]} + $cpu_per_million" | bc -l)
        done
    done
done

echo
echo "| asset size | isoplane-assets requests/s | nginx requests/s | ratio (ours / nginx) | CPU-s per 1M requests, ours | CPU-s per 1M requests, nginx |"
echo "| --- | --- | --- | --- | --- | --- |"
for size in 2048 131072; do
    ours=$(echo "${TOTAL_RPS[$size-ours]} / $ROUNDS" | bc -l)
    theirs=$(echo "${TOTAL_RPS[$size-nginx]} / $ROUNDS" | bc -l)
    printf '| %s B | %.0f | %.0f | %.2f | %.1f | %.1f |\n' "$size" "$ours" "$theirs" "$(echo "$ours / $theirs" | bc -l)" \
        "$(echo "${TOTAL_CPU[$size-ours]} / $ROUNDS" | bc -l)" "$(echo "${TOTAL_CPU[$size-nginx]} / $ROUNDS" | bc -l)"
done
echo "isoplane-assets RSS after the runs: $(awk '/VmRSS/ {print $2, $3}' "/proc/$OURS_PID/status")"
