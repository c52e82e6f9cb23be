#!/usr/bin/env bash
# npm run bench:web — first contentful paint of the portal's and the admin console's pages in Chromium on loopback
# (median and p95 over several fresh loads) and the gzipped size of their JavaScript.
# Options: --runs N (default 15). See bench/web/run.ts; results in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

ensure_node_modules
[ -x /usr/bin/chromium ] || { log "needs Debian's chromium (apt-get install chromium)"; exit 1; }
node --import tsx bench/web/run.ts "$@"
