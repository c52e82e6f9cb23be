# Shared helpers for the start and test scripts. Sourced, not run.
log() { printf '[hackstream] %s\n' "$*" >&2; }

# Installs node_modules when missing or older than package-lock.json. A node_modules that is a
# symlink (a git worktree sharing another checkout's) is left alone: npm ci would empty the other.
ensure_node_modules() {
  [ -L node_modules ] && return 0
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

# Runs psql as a superuser of the local cluster: as the postgres OS user over the socket
# (Debian's peer auth), else over TCP as postgres (clusters with trust auth on loopback).
pg_super() {
  if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 &&
    runuser -u postgres -- psql -X -At -d postgres -c 'select 1' >/dev/null 2>&1; then
    runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -d postgres "$@"
  else
    psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p 5432 -U postgres -d postgres "$@" </dev/null
  fi
}

# Reuses a Postgres on 127.0.0.1:5432, else installs Debian's postgresql and starts a cluster.
# Then makes sure the test role (not a superuser, like the app's) and its database exist, and
# exports HACKSTREAM_TEST_DATABASE_URL. A URL already set in the environment is used as it is.
ensure_postgres() {
  if [ -n "${HACKSTREAM_TEST_DATABASE_URL:-}" ]; then return 0; fi
  if ! wait_port 5432 1; then
    apt_install postgresql postgresql-client || return 1
    local ver cluster
    if ! pg_lsclusters -h 2>/dev/null | awk '$3 == 5432 { found = 1 } END { exit !found }'; then
      ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
      log "creating postgresql cluster $ver/main…"
      pg_createcluster "$ver" main -p 5432 >/tmp/hackstream-pg.log 2>&1 || { log "pg_createcluster failed; see /tmp/hackstream-pg.log"; return 1; }
    fi
    read -r ver cluster < <(pg_lsclusters -h | awk '$3 == 5432 { print $1, $2; exit }')
    log "starting postgresql $ver/$cluster on 127.0.0.1:5432…"
    pg_ctlcluster "$ver" "$cluster" start >>/tmp/hackstream-pg.log 2>&1 || true
    wait_port 5432 30 || { log "postgresql did not start; see /tmp/hackstream-pg.log"; return 1; }
  fi
  local role=hackstream_test
  pg_super -c "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') THEN
        CREATE ROLE $role LOGIN PASSWORD '$role';
      END IF;
    END \$\$" || { log "cannot create the Postgres test role (no superuser access on 127.0.0.1:5432?); or set HACKSTREAM_TEST_DATABASE_URL"; return 1; }
  if [ "$(pg_super -c "SELECT 1 FROM pg_database WHERE datname = '$role'")" != 1 ]; then
    pg_super -c "CREATE DATABASE $role OWNER $role" || return 1
  fi
  export HACKSTREAM_TEST_DATABASE_URL="postgres://$role:$role@127.0.0.1:5432/$role"
}

# The PostgreSQL server binaries the embedded store runs privately per data dir
# (core/store/embedded.ts looks in /usr/lib/postgresql/<version>/bin). Installs Debian's
# server package when no initdb is there. Debian's package would also create and start a
# "main" cluster on port 5432 that HackStream does not use (memory, a port); a drop-in tells
# postgresql-common not to (create_main_cluster = false, for later installs of any version
# too). ensure_postgres, for the tests, creates its own cluster explicitly when it needs one.
ensure_postgres_binaries() {
  if compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then return 0; fi
  if [ "$(id -u)" = 0 ]; then
    mkdir -p /etc/postgresql-common/createcluster.d
    printf '# HackStream runs its own private server per data dir: no default cluster.\ncreate_main_cluster = false\n' \
      >/etc/postgresql-common/createcluster.d/hackstream.conf
  fi
  local pkg
  pkg=$(apt-cache search --names-only '^postgresql-[0-9]+$' 2>/dev/null | awk '{ print $1 }' | sort -V | tail -1)
  apt_install "${pkg:-postgresql-15}" || return 1
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || { log "no initdb after installing ${pkg:-postgresql-15}"; return 1; }
}

# Makes sure a Docker engine answers: reuses a running one, else (as root) installs
# docker.io when missing and starts dockerd in the background, waiting up to 60 s.
ensure_docker() {
  if docker info >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" != 0 ]; then
    if command -v docker >/dev/null 2>&1; then
      log "the Docker engine does not answer: start dockerd, or add your user to the docker group"
    else
      log "Docker is missing: run as root, or: sudo apt-get install -y docker.io"
    fi
    return 1
  fi
  command -v dockerd >/dev/null 2>&1 || apt_install docker.io || return 1
  # A dockerd that was killed leaves its pid file behind, and a new one refuses to start while it
  # is there. Keep it only while it names a live dockerd (one still starting up is waited for).
  local pidfile=/var/run/docker.pid pid
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
      log "dockerd (pid $pid) is running but does not answer yet; waiting for it…"
      wait_for_docker "$pid"
      return
    fi
    log "removing a stale $pidfile (pid ${pid:-none} is not a running dockerd)"
    rm -f "$pidfile"
  fi
  log "starting dockerd (log: /var/log/hackstream-dockerd.log)…"
  setsid dockerd >>/var/log/hackstream-dockerd.log 2>&1 </dev/null &
  wait_for_docker "$!"
}

# Waits up to 60 s for the Docker engine to answer on its socket; gives up at once when the
# dockerd process (pid $1) has exited.
wait_for_docker() {
  local i
  for ((i = 0; i < 120; i++)); do
    if [ -S /var/run/docker.sock ] && docker info >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$1" 2>/dev/null; then
      log "dockerd exited before it answered; see /var/log/hackstream-dockerd.log"
      tail -20 /var/log/hackstream-dockerd.log >&2 || true
      return 1
    fi
    sleep 0.5
  done
  log "dockerd did not come up within 60 s; see /var/log/hackstream-dockerd.log"
  tail -20 /var/log/hackstream-dockerd.log >&2 || true
  return 1
}

# What running sessions needs on this host: Redis and Postgres, the real xpra client (Debian's,
# with the GTK bits it needs even for `xpra info`), iptables for the sessions' firewall, a
# Docker engine and the session image (built when missing).
ensure_sessions_stack() {
  ensure_redis
  ensure_postgres
  apt_install xpra python3-gi-cairo python3-pil iptables
  ensure_docker
  bash scripts/build-image.sh
}
