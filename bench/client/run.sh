#!/usr/bin/env bash
# npm run bench:client — launch → visible page, the CLI wrapper's cost and the bytes on the wire, on
# this host (real Docker engine, image, xpra client, Xvfb). Options: see bench/client/bench.ts.
# Also compiles the CLI with tsc into node_modules/.cache/hackstream-bench-client to weigh the
# wrapper without the tsx loader that bin/hackstream uses.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

ensure_node_modules
ensure_redis
ensure_postgres
apt_install xpra python3-gi-cairo python3-pil iptables xvfb imagemagick xdotool iproute2
ensure_docker
bash scripts/build-image.sh

build=node_modules/.cache/hackstream-bench-client
rm -rf "$build"
compiled=()
# tsc emits even when it reports type errors (someone else's work in progress in client/); the
# wrapper's weight does not depend on them, so use the output whenever the entry point is there.
node node_modules/typescript/bin/tsc -p bench/client/tsconfig.json --outDir "$build" >&2 || log "tsc reported errors (above); using what it emitted"
if [ -f "$build/client/cli.js" ]; then
  # ESM like the sources (the build sits under node_modules, outside the repo's package scope).
  echo '{ "type": "module" }' >"$build/package.json"
  compiled=(--compiled-cli "$PWD/$build/client/cli.js")
else
  log "tsc did not build the CLI; measuring the tsx one only"
fi
exec node --import tsx bench/client/bench.ts "${compiled[@]}" "$@"
