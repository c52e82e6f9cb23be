# Shared helpers for the start and test scripts. Sourced, not run.
log() { printf '[hackstream] %s\n' "$*" >&2; }

# Installs node_modules when missing or older than package-lock.json.
ensure_node_modules() {
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    log "installing npm dependencies (npm ci)…"
    npm ci --no-audit --no-fund
  fi
}

# apt-get install, once per missing package, quietly unless it fails.
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install -y ${missing[*]})"
    return 1
  fi
  log "installing Debian packages: ${missing[*]}…"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/hackstream-apt.log 2>&1; then
    apt-get update >/tmp/hackstream-apt-update.log 2>&1 || true
    apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/hackstream-apt.log 2>&1 || {
      log "apt-get install failed; see /tmp/hackstream-apt.log"; tail -20 /tmp/hackstream-apt.log >&2; return 1; }
  fi
}

# Waits up to $2 seconds for a TCP port on 127.0.0.1.
wait_port() {
  local port=$1 secs=${2:-20} i
  for ((i = 0; i < secs * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# Reuses a Redis on 127.0.0.1:6379, else installs and starts one.
ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return 0; fi
  apt_install redis-server redis-tools || return 1
  log "starting redis-server on 127.0.0.1:6379…"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/hackstream-test.log
  wait_port 6379 20 || { log "redis did not start"; return 1; }
}
