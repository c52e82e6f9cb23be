#!/bin/bash
# Session container entrypoint (runs as uid 1000 under tini; see images/README.md).
# Writes the session's TLS pair (the key read from stdin) and Firefox policies into /tmp/hs,
# starts xpra with Firefox as its child, and prints HACKSTREAM-READY once xpra listens and Firefox's window
# is mapped, or HACKSTREAM-FAILED <reason> and exits non-zero.
set -euo pipefail
umask 077

readonly HS=/tmp/hs
readonly READY_TIMEOUT=${HS_READY_TIMEOUT:-60}
readonly KEY_TIMEOUT=${HS_KEY_TIMEOUT:-20}

fail() {
  printf 'HACKSTREAM-FAILED %s\n' "$*"
  exit 1
}

# A switch is "1" or "0" (unset: its default); anything else fails closed.
switch() {
  local name=$1 default=$2
  printf -v "$name" '%s' "${!name:-$default}"
  case ${!name} in
    0 | 1) export "${name?}" ;;
    *) fail "bad $name (want 1 or 0)" ;;
  esac
}

# --- configuration from the environment ---------------------------------------------------
switch HS_CLIPBOARD 1
switch HS_FILE_TRANSFER 0
switch HS_PRINTING 0
switch HS_AUDIO 0
switch HS_WEBCAM 0
switch HS_DOWNLOADS 1
switch HS_FILE_URLS 0
PORT=${HS_XPRA_PORT:-14500}
[[ $PORT =~ ^[0-9]{1,5}$ ]] && ((PORT >= 1 && PORT <= 65535)) || fail "bad HS_XPRA_PORT"
[[ $READY_TIMEOUT =~ ^[0-9]+$ ]] || fail "bad HS_READY_TIMEOUT"
SCREEN=${HS_SCREEN:-1920x1080}
[[ $SCREEN =~ ^([0-9]{3,4})x([0-9]{3,4})$ ]] && ((BASH_REMATCH[1] >= 640 && BASH_REMATCH[1] <= 7680 &&
  BASH_REMATCH[2] >= 480 && BASH_REMATCH[2] <= 4320)) || fail "bad HS_SCREEN (want WxH, e.g. 1920x1080)"
URL=${HS_URL:-about:blank}
[[ $URL == about:blank || $URL =~ ^https?://[^[:space:][:cntrl:]]+$ ]] || fail "bad HS_URL (want http(s) or nothing)"
export HS_START_URL=$URL

# --- the writable tree (tmpfs /tmp, mode 1777) --------------------------------------------
mkdir -p "$HS" 2>/dev/null || fail "cannot create $HS (/tmp must be a writable tmpfs, mode 1777)"
chmod 0700 "$HS"
mkdir -p "$HS/home/Downloads" "$HS/run" "$HS/xpra" "$HS/firefox-policies"
chmod 0755 "$HS/firefox-policies"
# Firefox's profile, seeded at build time (places, certificate and remote-settings databases
# already created): the first start does not build them. Its start-up caches (compiled chrome
# JS, ~18 MB) stay in the image, read-only and shared by every container's page cache; the
# profile's startupCache is a link to them (Firefox cannot rewrite them there, and need not:
# same build).
# A persistent profile (profile "persist": the owner's volume, already mounted at $HS/profile) is
# not seeded: it is the user's own, with its own keys, made by Firefox at its first start; it
# only gets the link to the shared start-up caches once (it keeps the link across sessions).
if mountpoint -q "$HS/profile" 2>/dev/null; then
  [ -e "$HS/profile/startupCache" ] || ln -s /usr/share/hackstream/startup-cache "$HS/profile/startupCache"
else
  cp -R --preserve=mode,timestamps /usr/share/hackstream/profile "$HS/profile" || fail "cannot seed the Firefox profile"
  ln -s /usr/share/hackstream/startup-cache "$HS/profile/startupCache"
fi
: >"$HS/tokens"
: >"$HS/spent"

# --- TLS pair: the certificate from the env, the key from stdin --------------------------
# The key never sits in the container's config (`docker inspect`, the engine's files on
# disk): the runtime creates the container with an open stdin (StdinOnce), attaches, writes
# the PEM key and closes; it lands in the tmpfs only. See docs/decisions.md.
[ -z "${HS_TLS_KEY:-}" ] || fail "HS_TLS_KEY is not accepted: the key comes on stdin"
[ -n "${HS_TLS_CERT:-}" ] || fail "HS_TLS_CERT is required"
printf '%s' "$HS_TLS_CERT" | base64 -d >"$HS/tls.crt" 2>/dev/null || fail "HS_TLS_CERT is not base64"
unset HS_TLS_CERT
grep -q -- '-----BEGIN CERTIFICATE-----' "$HS/tls.crt" || fail "HS_TLS_CERT is not a PEM certificate"
[[ $KEY_TIMEOUT =~ ^[0-9]+$ ]] || fail "bad HS_KEY_TIMEOUT"
# Up to 16 KiB until stdin closes; nobody writing within the timeout fails the start.
timeout "$KEY_TIMEOUT" head -c 16384 >"$HS/tls.key" || fail "no TLS key on stdin within ${KEY_TIMEOUT}s"
exec </dev/null
grep -q -- '-----BEGIN .*PRIVATE KEY-----' "$HS/tls.key" || fail "stdin did not carry a PEM private key"

# --- Firefox enterprise policies for this session ----------------------------------------
umask 022
python3 /usr/local/lib/hackstream/hs-policies.py >"$HS/firefox-policies/policies.json" ||
  fail "cannot write Firefox policies"
umask 077

# --- xpra -------------------------------------------------------------------------------
audio() { if [ "$1" = 1 ]; then printf on; else printf disabled; fi; }
yesno() { if [ "$1" = 1 ]; then printf yes; else printf no; fi; }
# Xvfb's screen bounds what a client window can be (RandR shrinks it to the client); its
# framebuffer costs W*H*4 bytes per session. No GLX: saves ~20 MB (Mesa stays unloaded);
# Firefox still gets WebGL from Mesa's llvmpipe through EGL.
XVFB="Xvfb -extension GLX +extension Composite +extension RANDR -screen 0 ${SCREEN}x24+32 -nolisten tcp -noreset -auth $XAUTHORITY"
xpra_args=(
  start :100 --daemon=no --start=
  --bind-ssl=0.0.0.0:"$PORT" --ssl-cert="$HS/tls.crt" --ssl-key="$HS/tls.key"
  --ssl-client-verify-mode=none --html=on --ssh-upgrade=no --rfb-upgrade=0
  --ssl-auth=hackstream --tcp-auth=hackstream --ws-auth=hackstream --wss-auth=hackstream
  --systemd-run=no --start-via-proxy=no --mdns=no --dbus-launch= --dbus-proxy=no
  --dbus-control=no --notifications=no --socket-dirs="$HS/xpra"
  --log-dir="$HS/xpra" --opengl=noprobe --video-encoders=x264,vpx --csc-modules=swscale --mmap=no --system-tray=no --start-new-commands=no
  --open-url=no --open-files=no --forward-xdg-open=no --sharing=no
  --clipboard="$(yesno "$HS_CLIPBOARD")" --file-transfer="$(yesno "$HS_FILE_TRANSFER")"
  --printing="$(yesno "$HS_PRINTING")"
  --speaker="$(audio "$HS_AUDIO")" --microphone="$(audio "$HS_AUDIO")"
  --webcam="$(yesno "$HS_WEBCAM")"
  --xvfb="$XVFB" --session-name=HackStream
  --exit-with-children=yes --terminate-children=yes --start-child=/usr/local/bin/hs-firefox
)

# Audio: PulseAudio only when the session may have sound (an idle session without it runs no
# sound process at all). xpra starts it as its child with a private socket and points
# Firefox at it (PULSE_SERVER); the speaker's null sink is what xpra records and sends when a
# client asks for sound. Debian's default command also loads D-Bus and X11-publish modules,
# which need a system bus and are of no use here; no realtime/high priority (no rtkit, no
# capabilities: it would only log system-bus errors).
if [ "$HS_AUDIO" = 1 ]; then
  xpra_args+=(
    --pulseaudio=yes --sound-source=pulse
    --pulseaudio-command="pulseaudio --start -n --daemonize=false --system=false --exit-idle-time=-1 --realtime=no --high-priority=no --load=module-suspend-on-idle '--load=module-null-sink sink_name=Xpra-Speaker' '--load=module-null-sink sink_name=Xpra-Microphone' '--load=module-native-protocol-unix socket=\$XPRA_PULSE_SERVER' --log-level=2 --log-target=stderr --enable-memfd=no"
  )
else
  xpra_args+=(--pulseaudio=no)
fi

# A private session bus, only for Firefox's remoting (hs-open opens URLs through it); xpra's
# own D-Bus features stay off.
export DBUS_SESSION_BUS_ADDRESS="unix:path=$HS/run/bus"
# It starts while xpra does; hs-firefox waits for its socket.
dbus-daemon --session --address="$DBUS_SESSION_BUS_ADDRESS" --nofork --nopidfile --nosyslog &

# HS_XPRA_DEBUG: xpra debug categories for troubleshooting (e.g. "clipboard,auth").
if [ -n "${HS_XPRA_DEBUG:-}" ]; then
  [[ $HS_XPRA_DEBUG =~ ^[a-z0-9,-]+$ ]] || fail "bad HS_XPRA_DEBUG"
  xpra_args+=(-d "$HS_XPRA_DEBUG")
fi

# Files a client sends (file transfer) land where Firefox saves downloads.
XPRA_DOWNLOAD_DIR="$HS/home/Downloads" xpra "${xpra_args[@]}" &
XPRA_PID=$!

# Downloads reach the attached client through xpra's file transfer (hs-downloads.py); when
# they are off, each one is removed at once and the user is told why (--refuse).
if [ "$HS_DOWNLOADS" = 1 ] && [ "$HS_FILE_TRANSFER" = 1 ]; then
  python3 /usr/local/lib/hackstream/hs-downloads.py &
elif [ "$HS_DOWNLOADS" != 1 ]; then
  python3 /usr/local/lib/hackstream/hs-downloads.py --refuse &
fi

# docker stop: let xpra say goodbye to its client, but never for longer than about a second
# (the session is ephemeral; nothing needs saving).
on_term() {
  trap '' TERM INT
  kill -TERM "$XPRA_PID" 2>/dev/null || true
  for _ in {1..10}; do
    kill -0 "$XPRA_PID" 2>/dev/null || exit 0
    sleep 0.1
  done
  exit 0
}
trap on_term TERM INT

# --- readiness ----------------------------------------------------------------------------
# xpra's TCP socket in LISTEN state (read from /proc, so no probe connection shows in its log).
listening() {
  local hex
  hex=$(printf ':%04X' "$PORT")
  awk -v p="$hex" '$2 ~ p"$" && $4 == "0A" { found = 1 } END { exit !found }' /proc/net/tcp /proc/net/tcp6
}
# Firefox's main window ("Navigator") mapped: xpra keeps it in an unmapped frame until a
# client shows it, so "viewable" is too strict; "unviewable" (mapped, parent not) counts.
firefox_mapped() {
  local id
  for id in $(xwininfo -root -tree 2>/dev/null | awk '/\("Navigator" "firefox-esr"\)/ { print $1 }'); do
    xwininfo -id "$id" 2>/dev/null | grep -q -E 'Map State: Is(Viewable|Unviewable)' && return 0
  done
  return 1
}

deadline=$((SECONDS + READY_TIMEOUT))
ready=
sizes=
while ((SECONDS < deadline)); do
  if ! kill -0 "$XPRA_PID" 2>/dev/null; then
    rc=0
    wait "$XPRA_PID" || rc=$?
    fail "xpra exited with code $rc before the session was ready"
  fi
  if listening; then
    # Once Xvfb is up, while Firefox starts: RandR modes for common client screens, so that an
    # attach at one of them skips xpra's half-second wait after adding a mode (hs-screen-sizes.py).
    if [ -z "$sizes" ]; then
      sizes=1
      # Not fatal: without them an attach is half a second slower, nothing else.
      NO_AT_BRIDGE=1 python3 /usr/local/lib/hackstream/hs-screen-sizes.py "$SCREEN" >&2 || echo "hs-screen-sizes failed (above): attaches will wait for xpra's new mode" >&2
    fi
    if firefox_mapped; then
      ready=1
      break
    fi
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  what="firefox window not mapped"
  listening || what="xpra not listening on $PORT"
  kill -TERM "$XPRA_PID" 2>/dev/null || true
  fail "$what after ${READY_TIMEOUT}s"
fi
echo HACKSTREAM-READY

rc=0
wait "$XPRA_PID" || rc=$?
# `wait` returns early (>128) when a trapped signal arrives; on_term exits by itself then.
exit "$rc"
