#!/usr/bin/env bash
# npm run bench:pi-zero — a simulated Raspberry Pi Zero attached to a real session at each preset.
# Builds (once, cached outside the repo) Debian bookworm's armel userland with the xpra client
# (rootfs.sh), then runs bench.ts: options there (--qualities, --rounds, --keys, ...).
# Needs root (chroot, cgroups, mount namespaces), Docker, Postgres and Redis (as bench:client).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

# A worktree whose node_modules is a link to another checkout's must not npm ci: npm would
# empty the linked folder (ensure_node_modules compares package-lock.json's mtime, which a fresh
# worktree checkout makes newer).
if [ -L node_modules ]; then
  [ -d node_modules/tsx ] || { log "node_modules links to $(readlink node_modules), which has no tsx; run npm ci there"; exit 1; }
else
  ensure_node_modules
fi
apt_install xvfb xdotool iproute2 debootstrap qemu-user-static binfmt-support python3-gi gir1.2-gtk-3.0
ensure_sessions_stack

PIZ_ROOT=$(bash bench/pi-zero/rootfs.sh | tail -1)
export PIZ_ROOT
log "armel rootfs: $PIZ_ROOT"
exec node --import tsx bench/pi-zero/bench.ts "$@"
