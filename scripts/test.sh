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
# The server .deb's unit check (systemd-analyze verify; needs no running systemd) and the
# native addon the release builds (node-gyp: make, g++).
apt_install systemd make g++
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
# HackStream behind a load balancer (gateway-haproxy): Debian's HAProxy sends PROXY protocol v2.
apt_install haproxy
# The metrics tests: Debian's Prometheus server scrapes a running HackStream; its promtool checks and unit-tests the alerting rules.
apt_install prometheus
ensure_sessions_stack
# The embedded store's private PostgreSQL server (initdb, postgres).
ensure_postgres_binaries
# The flood tests open thousands of sockets in one process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

log "type-checking…"
npx tsc -p tsconfig.json --noEmit

export HACKSTREAM_TEST_REDIS_URL=${HACKSTREAM_TEST_REDIS_URL:-redis://127.0.0.1:6379}
mapfile -t files < <(find test -name '*.test.ts' | sort)
run_tests() { node --import tsx --test --test-concurrency=1 --test-timeout=600000 --test-reporter=spec "$@"; }
# A hung test fails after 10 minutes instead of holding CI until its limit.
if [ $# -gt 0 ]; then
  log "running $# test file(s)…"
  run_tests "$@"
  exit
fi

# Three lanes side by side keep CI under its 30 minutes; each runs its files one at a time.
#  - solo (first, alone): tests that move the session image's tag aside or rebuild it.
#  - docker: sessions on the default network and the e2e tests (X servers, real clients).
#  - isolated: sessions on a network and instance id of their own (test/helpers/sessions.ts
#    testSessions), so they never meet the docker lane's containers, routes or firewall chains.
#  - plain: no container at all (unit, contract, the API, auth, plugins, the gateway).
# Every server a test starts has its own data dir, hence its own instance id and reconciler.
solo=() docker=() isolated=() plain=()
for f in "${files[@]}"; do
  base=$(basename "$f" .test.ts)
  case "$f" in
    test/integration/image-build-cancel.test.ts | test/integration/image.test.ts) solo+=("$f") ;;
    test/unit/* | test/contract/*) plain+=("$f") ;;
    test/e2e/*) docker+=("$f") ;;
    *)
      case "$base" in
        api-* | auth-* | audit-* | certs-* | acme-* | cli-sso | edge-link | gateway-* | plugin-* | plugins-* | route-table-* | \
          store-kv-faults | store-postgres-faults | tls-profile | supervisor | supervisor-privileges | package-server) plain+=("$f") ;;
        *) if grep -q 'testSessions' "$f"; then isolated+=("$f"); else docker+=("$f"); fi ;;
      esac
      ;;
  esac
done
log "running ${#files[@]} test files: ${#solo[@]} alone, then three lanes (docker ${#docker[@]}, isolated ${#isolated[@]}, plain ${#plain[@]})…"
mkdir -p artifacts
status=0
# The solo and docker lanes print as they run and are kept in artifacts/ too (for the summary below).
run_tests "${solo[@]}" 2>&1 | tee artifacts/test-lane-solo.log || status=1
run_tests "${isolated[@]}" >artifacts/test-lane-isolated.log 2>&1 &
isolated_pid=$!
run_tests "${plain[@]}" >artifacts/test-lane-plain.log 2>&1 &
plain_pid=$!
# Ctrl-C or a CI cancel stops the background lanes too.
trap 'kill "$isolated_pid" "$plain_pid" 2>/dev/null' EXIT
run_tests "${docker[@]}" 2>&1 | tee artifacts/test-lane-docker.log || status=1
wait "$isolated_pid" || status=1
wait "$plain_pid" || status=1
trap - EXIT
for lane in isolated plain; do
  printf '\n===== lane "%s" (artifacts/test-lane-%s.log) =====\n' "$lane" "$lane"
  cat "artifacts/test-lane-$lane.log"
done
if [ "$status" -ne 0 ]; then
  # Each lane's "failing tests" part again, with its errors, where the end of the output shows it.
  for lane in solo docker isolated plain; do
    if grep -q '^✖ failing tests:' "artifacts/test-lane-$lane.log"; then
      printf '\n===== failures in lane "%s" =====\n' "$lane"
      sed -n '/^✖ failing tests:/,$p' "artifacts/test-lane-$lane.log" | head -n 150
    fi
  done
  log "FAILED: see the ✖ lines above (each lane's summary ends its part)"
else
  log "all lanes passed"
fi
exit "$status"
