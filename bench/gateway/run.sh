#!/usr/bin/env bash
# npm run bench:gateway — direct vs nginx stream/ssl_preread vs our gateway, same TLS backend, one run.
# Builds the gateway and the bench with tsc (production settings; no tsx in any measured process) into
# node_modules/.cache/hackstream-bench, then runs the driver. Env knobs: see bench/gateway/bench.ts.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

ensure_node_modules
apt_install nginx-light libnginx-mod-stream wrk openssl
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

build=node_modules/.cache/hackstream-bench
rm -rf "$build"
log "building (tsc -p bench/gateway/tsconfig.json)…"
node node_modules/typescript/bin/tsc -p bench/gateway/tsconfig.json --outDir "$build"

tmp=$(mktemp -d /tmp/hs-bench-XXXXXX)
# The whole app's embedded database runs as its own user, which must be able to reach its data dir in here.
chmod o+x "$tmp"
# The driver stops nginx and its children itself; this is the fallback if it is killed outright.
cleanup() {
  if [ -f "$tmp/nginx.pid" ]; then kill -TERM "$(cat "$tmp/nginx.pid")" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
BENCH_TMP="$tmp" BENCH_REPO="$PWD" node "$build/bench/gateway/bench.js" "$@"
