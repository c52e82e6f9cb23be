#!/usr/bin/env bash
# npm start: installs what is missing, builds, and runs HackStream with its embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_node_modules
if [ ! -f dist/server/main.js ] || [ -n "$(find gateway core plugins lib agent server -newer dist/server/main.js -name '*.ts' -print -quit)" ]; then
  log "building (tsc)…"
  npx tsc -p tsconfig.build.json
fi
exec node --enable-source-maps dist/server/main.js "$@"
