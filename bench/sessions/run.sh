#!/usr/bin/env bash
# npm run bench:sessions — cold start, pool claim and idle footprint of sessions on this host
# (real Docker engine, real image, real xpra client). Options: see bench/sessions/bench.ts.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

# A worktree whose node_modules is a link to another checkout's must never run npm ci: it
# empties the link's target (another tree's dependencies) before installing into a new folder.
if [ -L node_modules ]; then
  [ -d node_modules/ ] || { log "node_modules links to a missing folder"; exit 1; }
else
  ensure_node_modules
fi
ensure_sessions_stack
exec node --import tsx bench/sessions/bench.ts "$@"
