#!/usr/bin/env bash
# npm test: installs and starts what the tests need when missing, type-checks, runs the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_node_modules
apt_install pebble openssl curl ca-certificates testssl.sh
# End-to-end and launcher tests: an X server, screenshots (ImageMagick's import), synthetic
# input, OCR of the screenshots.
apt_install xvfb imagemagick xdotool tesseract-ocr
# The audio test: a PulseAudio null sink for the xpra client to play into, parecord (its
# monitor), sox (the tone's frequency), and GStreamer for the xpra client's sound (opus, ogg:
# base; pulsesink: good).
apt_install pulseaudio pulseaudio-utils sox python3-gst-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
# The desktop launcher (yad) and the .deb's checks (desktop-file-validate; dpkg-deb and unshare are essential).
apt_install yad desktop-file-utils
# The auth plugins' tests: a real LDAP server (slapd, run by the test on its own port) and
# an independent TOTP implementation (oathtool).
apt_install slapd ldap-utils oathtool
# Persistent profiles: the agent makes, checks and grows ext4 volumes (mkfs.ext4, e2fsck,
# resize2fs) and loop-mounts them (mount and losetup: util-linux, mount).
apt_install e2fsprogs mount util-linux
# The bookmark e2e test reads Firefox's places database (sqlite3) to know the bookmark is stored.
apt_install sqlite3
# The portal's tests drive Debian's Chromium with playwright-core; xpra (the host's) ships the HTML5 client the portal serves.
apt_install chromium xpra
ensure_sessions_stack
# The embedded store's private PostgreSQL server (initdb, postgres).
ensure_postgres_binaries
# The flood tests open thousands of sockets in one process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

log "type-checking…"
npx tsc -p tsconfig.json --noEmit

export HACKSTREAM_TEST_REDIS_URL=${HACKSTREAM_TEST_REDIS_URL:-redis://127.0.0.1:6379}
mapfile -t files < <(find test -name '*.test.ts' | sort)
if [ $# -gt 0 ]; then files=("$@"); fi
log "running ${#files[@]} test files…"
# A hung test fails after 10 minutes instead of holding CI until its limit.
exec node --import tsx --test --test-concurrency=1 --test-timeout=600000 --test-reporter=spec "${files[@]}"
