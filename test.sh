#!/usr/bin/env bash
# Isoplane's one test command. On a Debian machine (as root, with the apt and npm
# registries reachable and PostgreSQL and Redis running) it installs what the tests need
# if it is missing, then runs every test:
#
#   1. Debian's coturn (turnutils_* clients for the TURN conformance tests), tiled (its
#      example maps and `tiled --export-map` check the .tmx reader), postgresql (the
#      fault suite runs a server of its own), openssl,
#      chromium, iptables (the ICE-TCP test blocks UDP), iproute2 and util-linux
#      (`ip`, `unshare`), and Node with npm; then `npm ci` in tests/browser
#      (playwright-core and TypeScript, pinned by its package-lock.json);
#   2. cargo test --workspace --locked;
#   3. the web client's unit tests under Node (tests/browser/unit), its type check (tsc);
#   4. builds the `isoplane` binary and runs the browser end-to-end tests in headless
#      Chromium inside a fresh network namespace that has only loopback (`unshare -n`);
#   5. on release builds: the soak, the flood of bad connections (garbage_flood) and the
#      fault suite (inside `unshare -n`).
#
# Honours CARGO_TARGET_DIR (default ~/.cache/isoplane/target, kept outside the clone so
# runs build incrementally), ISOPLANE_TEST_POSTGRES_URL and ISOPLANE_TEST_REDIS_URL.
# Anything it cannot install stops it with one line saying what; it never skips a test.
set -euo pipefail
cd "$(dirname "$0")"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/isoplane/target}"
export ISOPLANE_TEST_POSTGRES_URL="${ISOPLANE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export ISOPLANE_TEST_REDIS_URL="${ISOPLANE_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
mkdir -p "$CARGO_TARGET_DIR"
log="$CARGO_TARGET_DIR/test-sh-install.log"

step() { printf '\n== %s ==\n' "$*"; }
fail() {
  printf 'test.sh: %s\n' "$*" >&2
  exit 1
}

step "tools the tests run"
# command the tests run → the Debian package that has it
declare -A package_of=(
  [turnutils_uclient]=coturn [turnutils_peer]=coturn [turnutils_stunclient]=coturn
  [openssl]=openssl [chromium]=chromium [iptables]=iptables [ip]=iproute2 [unshare]=util-linux
  [node]=nodejs [npm]=npm [tiled]=tiled [ffprobe]=ffmpeg
)
missing=()
for command in "${!package_of[@]}"; do
  command -v "$command" >/dev/null || missing+=("${package_of[$command]}")
done
# The fault suite runs a PostgreSQL server of its own (Debian keeps initdb off PATH).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  command -v apt-get >/dev/null || fail "missing ${missing[*]} and this machine has no apt-get: install these (Debian) packages yourself"
  echo "installing Debian packages: ${missing[*]}"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1 ||
    fail "cannot install ${missing[*]} with apt-get (needs root and a reachable Debian mirror; see $log)"
  for command in "${!package_of[@]}"; do
    command -v "$command" >/dev/null || fail "installed ${package_of[$command]} but \`$command\` is still not on PATH"
  done
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || fail "installed postgresql but no /usr/lib/postgresql/*/bin/initdb"
fi
echo "coturn $(dpkg-query -W -f='${Version}' coturn 2>/dev/null || echo '?'), $(chromium --version 2>/dev/null || echo 'chromium ?'), node $(node --version)"

step "Node packages of the browser tests (npm ci)"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1 ||
  fail "cannot install the browser tests' Node packages (npm ci in tests/browser; needs the npm registry; see $log)"

step "PostgreSQL and Redis the tests use"
# The machine's services: each test makes and drops its own schema, or uses keys of a
# workspace of its own. A test that needs one fails on its own if it does not answer.
if command -v pg_isready >/dev/null; then
  pg_isready -d "$ISOPLANE_TEST_POSTGRES_URL" || echo "warning: PostgreSQL does not answer at $ISOPLANE_TEST_POSTGRES_URL"
fi
if command -v redis-cli >/dev/null; then
  redis-cli -u "$ISOPLANE_TEST_REDIS_URL" ping || echo "warning: Redis does not answer at $ISOPLANE_TEST_REDIS_URL"
fi

step "Rust tests (cargo test --workspace)"
cargo test --workspace --locked

step "web client: unit tests under Node"
(cd tests/browser && npm run --silent unit)

step "web client: type check"
(cd tests/browser && npx --no-install tsc -p ../../web/jsconfig.json)

step "web client: end-to-end tests in headless Chromium"
cargo build --quiet --locked -p isoplane -p isoplane-turn
# The S3 server the recording test stores into.
cargo build --quiet --locked -p isoplane-tests --bin isoplane-test-s3
# A fresh network namespace with only loopback: WebRTC can reach nothing but 127.0.0.1.
unshare -n bash -c 'ip link set lo up && cd tests/browser && npm test'

step "soak, bad input and faults: release builds of the services"
# Load and recovery are measured on builds as deployed, not on debug ones.
cargo build --release --locked -p isoplane-signaling -p isoplane-sfu -p isoplane-turn -p isoplane-assets --bins
cargo test --release --locked --no-run -p isoplane-tests --test soak --test faults
cargo test --release --locked --no-run -p isoplane-signaling --test garbage_flood

step "bad input at scale: 5,000 hostile connections while 20 people walk at 15 Hz"
cargo test --release --locked --offline -p isoplane-signaling --test garbage_flood -- --ignored --nocapture

step "soak: 1,000 simulated people for 150 s against the compose stack"
cargo test --release --locked --offline -p isoplane-tests --test soak -- --ignored --nocapture

step "faults: each service killed and restarted under 200 simulated people and two Chromium pages"
# Its own PostgreSQL server and S3 live inside the namespace with the services.
unshare -n bash -c 'ip link set lo up && cargo test --release --locked --offline -p isoplane-tests --test faults -- --ignored --nocapture'

step "all tests passed"
