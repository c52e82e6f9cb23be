#!/usr/bin/env bash
# Builds (once) Debian bookworm's armel userland with the xpra 3.1 client in it, for running
# under qemu-user (binfmt_misc, F flag: the host's qemu-arm-static is used inside the chroot).
# Cached under $PIZ_CACHE (default /var/cache/hackstream-pi-zero), outside the repository.
# Usage: bench/pi-zero/rootfs.sh        → prints the rootfs path on its last line
set -euo pipefail
CACHE=${PIZ_CACHE:-/var/cache/hackstream-pi-zero}
ROOT=$CACHE/rootfs-armel
STAMP=$ROOT/.hackstream-ready
# The client's packages: xpra pulls gtk3/python3-gi/cairo; the rest are its Recommends the
# client uses (lz4 for rgb, pil for jpeg/png decode fallbacks, gi-cairo for drawing), and
# openssl for the calibration. debootstrap does not resolve virtual packages: dbus-x11 stands
# for dconf-service's dbus-session-bus.
PKGS=xpra,python3-gi-cairo,python3-pil,python3-lz4,python3-setproctitle,dbus-x11,procps,ca-certificates,openssl

log() { printf '[pi-zero %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

need() { command -v "$1" >/dev/null || { log "installing $2"; DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >&2; }; }

ensure_binfmt() {
  need debootstrap debootstrap
  need qemu-arm-static qemu-user-static
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-arm ]; then
    need update-binfmts binfmt-support
    update-binfmts --enable qemu-arm >&2
  fi
  grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-arm || { log "qemu-arm binfmt lacks the F flag; chroot would not find the interpreter"; exit 1; }
}

# The mirror is the host's own Debian source (never a name hard-coded here).
mirror() {
  local m
  m=$(grep -hoE '^URIs: *\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1)
  [ -n "$m" ] || m=$(grep -hoE '^deb \S+' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -1)
  echo "$m"
}

ensure_binfmt
if [ -e "$STAMP" ]; then log "cached rootfs $ROOT"; echo "$ROOT"; exit 0; fi
mkdir -p "$CACHE"
rm -rf "$ROOT"
MIRROR=$(mirror)
log "debootstrap armel bookworm (minbase + $PKGS) → $ROOT; takes several minutes under qemu"
# Progress: debootstrap's own I: lines, one per stage/package batch.
if ! debootstrap --arch=armel --variant=minbase --include="$PKGS" bookworm "$ROOT" "$MIRROR" 2>&1 \
  | grep --line-buffered -E '^(I|W|E):' | while read -r l; do log "$l"; done; then
  # Its resolver misses some dependencies (virtual packages); apt inside finishes the job.
  log "debootstrap stopped (see $ROOT/debootstrap/debootstrap.log); finishing with apt-get -f install in the rootfs"
  mount --bind /proc "$ROOT/proc"
  chroot "$ROOT" bash -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q -f --no-install-recommends' >&2 || true
  umount "$ROOT/proc"
fi
[ -x "$ROOT/usr/bin/xpra" ] || { log "debootstrap finished without xpra"; exit 1; }
chroot "$ROOT" xpra --version >&2
touch "$STAMP"
log "rootfs ready"
echo "$ROOT"
