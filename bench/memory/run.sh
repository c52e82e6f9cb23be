#!/usr/bin/env bash
# npm run bench:memory: the whole server at rest (docs/benchmarks.md, "The whole server at
# rest"). Builds, starts the supervisor from dist/ as npm start does on a fresh data dir,
# waits for every process to be ready plus SETTLE seconds, then prints RSS and PSS of the
# supervisor and each descendant (/proc/<pid>/smaps_rollup) and their sums. Stops it after.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh
ensure_node_modules
SETTLE=${SETTLE:-20}
PORT=${PORT:-18449}
log "building (tsc)…"
umask 022
npx tsc -p tsconfig.build.json
dir=$(mktemp -d /tmp/hs-bench-mem-XXXXXX)
chmod 711 "$dir"
out="$dir/server.log"
HACKSTREAM_DATA_DIR="$dir/data" HACKSTREAM_LISTEN="127.0.0.1:$PORT" HACKSTREAM_PUBLIC_HOST=hackstream.test \
  HACKSTREAM_POOL_SIZE=0 HACKSTREAM_ADMIN_PASSWORD="bench-$RANDOM-$RANDOM-pass" \
  node --enable-source-maps dist/server/main.js >"$out" 2>"$dir/stderr.log" &
sup=$!
cleanup() { kill -TERM "$sup" 2>/dev/null || true; wait "$sup" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 300); do
  grep -q '"msg":"all processes ready"' "$out" && break
  kill -0 "$sup" 2>/dev/null || { log "the server exited:"; tail -20 "$dir/stderr.log" "$out" >&2; exit 1; }
  sleep 0.5
done
grep -q '"msg":"all processes ready"' "$out" || { log "not ready within 150 s"; exit 1; }
log "ready; settling ${SETTLE} s…"
sleep "$SETTLE"
descendants() { echo "$1"; for c in $(pgrep -P "$1"); do descendants "$c"; done; }
rss_total=0 pss_total=0
printf '%-8s %-6s %10s %10s  %s\n' pid uid 'RSS KiB' 'PSS KiB' command
for p in $(descendants "$sup"); do
  [ -r "/proc/$p/smaps_rollup" ] || continue
  rss=$(awk '/^Rss:/ {print $2}' "/proc/$p/smaps_rollup")
  pss=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")
  uid=$(awk '/^Uid:/ {print $2}' "/proc/$p/status")
  printf '%-8s %-6s %10s %10s  %s\n' "$p" "$uid" "$rss" "$pss" "$(tr '\0' ' ' <"/proc/$p/cmdline" | cut -c1-70)"
  rss_total=$((rss_total + rss)) pss_total=$((pss_total + pss))
done
awk -v r="$rss_total" -v p="$pss_total" 'BEGIN { printf "TOTAL RSS %.1f MiB, PSS %.1f MiB\n", r / 1024, p / 1024 }'
