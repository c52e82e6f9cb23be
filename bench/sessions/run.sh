#!/usr/bin/env bash
# npm run bench:sessions — cold start, pool claim and idle footprint of sessions on this host
# (real Docker engine, real image, real xpra client). Options: see bench/sessions/bench.ts.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

ensure_node_modules
ensure_sessions_stack
exec node --import tsx bench/sessions/bench.ts "$@"
