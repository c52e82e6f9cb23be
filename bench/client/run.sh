#!/usr/bin/env bash
# npm run bench:client — launch → visible page, the CLI wrapper's cost and the bytes on the wire, on
# this host (real Docker engine, image, xpra client, Xvfb). Options: see bench/client/bench.ts.
# Also makes /usr/bin/hackstream as the .deb ships it (bin/hackstream through scripts/package-deb.sh's
# sed, its CLI one esbuild bundle; else tsc's output) in node_modules/.cache/hackstream-bench-client,
# to run the packaged wrapper next to the checkout's (whose CLI runs with tsx).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

ensure_node_modules
apt_install xvfb imagemagick xdotool iproute2
ensure_sessions_stack

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
packaged=()
if [ ${#compiled[@]} -gt 0 ]; then
  # /usr/bin/hackstream as scripts/package-deb.sh makes it (keep the sed in step), the CLI line
  # pointing at our build instead of /usr/lib/hackstream/hackstream.mjs.
  sed -e '/^root=/d' -e "s|^cli() .*# @cli\$|cli() { node \"${compiled[1]}\" \"\$@\"; }|" \
    -e "s|^warm_py=.*# @warm\$|warm_py=$PWD/client/xpra-warm.py|" \
    -e 's|^# From a checkout it runs client/cli.ts with tsx.*$|# Installed by the hackstream-client package: the CLI is one bundled file.|' bin/hackstream >"$build/hackstream"
  chmod 0755 "$build/hackstream"
  if grep -q tsx "$build/hackstream" || ! grep -q "^cli() { node \"${compiled[1]}\"" "$build/hackstream"; then
    log "the packaged wrapper still mentions tsx or lacks the bundle's cli line (bin/hackstream changed?); measuring the checkout's only"
  else
    packaged=(--packaged-wrapper "$PWD/$build/hackstream")
  fi
fi
[ ${#packaged[@]} -gt 0 ] || log "could not build the packaged wrapper; measuring the checkout's only"
exec node --import tsx bench/client/bench.ts "${packaged[@]}" "$@"
