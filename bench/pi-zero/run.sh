#!/usr/bin/env bash
# npm run bench:pi-zero — a simulated Raspberry Pi Zero attached to a real session at each preset.
# Builds (once, cached outside the repo) Debian bookworm's armel userland with the xpra client
# (rootfs.sh), then runs bench.ts: options there (--qualities, --rounds, --keys, ...).
# Needs root (chroot, cgroups, mount namespaces), Docker, Postgres and Redis (as bench:client).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

ensure_node_modules
apt_install xvfb xdotool iproute2 debootstrap qemu-user-static binfmt-support python3-gi gir1.2-gtk-3.0
ensure_sessions_stack

PIZ_ROOT=$(bash bench/pi-zero/rootfs.sh | tail -1)
export PIZ_ROOT
log "armel rootfs: $PIZ_ROOT"
exec node --import tsx bench/pi-zero/bench.ts "$@"
