#!/usr/bin/env bash
# npm run bench:api — GET /v1/me req/s and latency at a fixed concurrency (autocannon) and login
# latency with the production Argon2id cost, through the gateway (TLS), against a production
# build of HackStream in its own process. Options: see bench/api/bench.ts.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

ensure_node_modules
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
build=node_modules/.cache/hackstream-bench-api
rm -rf "$build"
log "building (tsc -p bench/api/tsconfig.json)…"
# tsc emits even when it reports type errors (other work in progress on a shared tree): say so, run anyway.
node node_modules/typescript/bin/tsc -p bench/api/tsconfig.json --outDir "$build" || log "tsc reported type errors (above); benchmarking the emitted build anyway"
BENCH_REPO="$PWD" node "$build/bench/api/bench.js" "$@"
