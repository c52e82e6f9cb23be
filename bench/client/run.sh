#!/usr/bin/env bash
# npm run bench:client — launch → visible page, the CLI wrapper's cost and the bytes on the wire, on
# this host (real Docker engine, image, xpra client, Xvfb). Options: see bench/client/bench.ts.
# Also builds the CLI as the .deb ships it (one esbuild bundle; else tsc's output) into
# node_modules/.cache/hackstream-bench-client, to weigh the wrapper without bin/hackstream's tsx loader.
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
mkdir -p "$build"
compiled=()
if [ -x node_modules/.bin/esbuild ]; then
  # The bundle the .deb ships, built as scripts/package-deb.sh builds it (keep the flags in step),
  # into our own folder so a package build or test running meanwhile is not disturbed.
  version=$(node -p 'require("./package.json").version')
  if node_modules/.bin/esbuild client/cli.ts --bundle --platform=node --format=esm --target=node18 \
    --define:HACKSTREAM_VERSION="\"$version\"" --minify --keep-names --legal-comments=none --log-level=warning \
    --outfile="$build/hackstream.mjs"; then
    compiled=(--compiled-cli "$PWD/$build/hackstream.mjs")
  fi
fi
if [ ${#compiled[@]} -eq 0 ]; then
  # No esbuild: the same code compiled by tsc (still no tsx loader). tsc emits despite type errors
  # (someone else's work in progress in client/); the wrapper's weight does not depend on them.
  node node_modules/typescript/bin/tsc -p bench/client/tsconfig.json --outDir "$build" >&2 || log "tsc reported errors (above); using what it emitted"
  # ESM like the sources (the build sits under node_modules, outside the repo's package scope).
  echo '{ "type": "module" }' >"$build/package.json"
  [ -f "$build/client/cli.js" ] && compiled=(--compiled-cli "$PWD/$build/client/cli.js")
fi
[ ${#compiled[@]} -gt 0 ] || log "could not build the CLI; measuring the tsx one only"
exec node --import tsx bench/client/bench.ts "${compiled[@]}" "$@"
