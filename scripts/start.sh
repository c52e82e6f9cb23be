#!/usr/bin/env bash
# npm start: installs what is missing, builds, sets up what sessions need on this host, and
# runs HackStream's supervisor (edge, control, agent; docs/processes.md) with its embedded
# defaults. A part of the session setup that fails is reported; the server starts anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

# What sessions need on this host. As root it installs and starts what is missing; as anyone
# else it says what is missing and how to get it. Never fails: GET /ready tells an operator
# while sessions cannot start.
setup_sessions_host() {
  local problems=()
  if [ "$(id -u)" = 0 ]; then
    log "setting up what sessions need: Docker engine, session image, iptables, PostgreSQL (the first time takes a few minutes)…"
  else
    log "not root: checking what sessions need (run npm start as root to install what is missing)…"
  fi
  apt_install iptables || problems+=("iptables (the sessions' firewall): sudo apt-get install -y iptables")
  if [ -z "${HACKSTREAM_DATABASE_URL:-}" ]; then
    if declare -F ensure_postgres_binaries >/dev/null; then
      ensure_postgres_binaries || problems+=("PostgreSQL server binaries (the embedded store): sudo apt-get install -y postgresql, or set HACKSTREAM_DATABASE_URL")
    elif ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
      apt_install postgresql || problems+=("PostgreSQL server binaries (the embedded store): sudo apt-get install -y postgresql, or set HACKSTREAM_DATABASE_URL")
    fi
  fi
  # The engine the agent will use: HACKSTREAM_DOCKER_HOST when set (a socket path or URL).
  if [ -n "${HACKSTREAM_DOCKER_HOST:-}" ]; then
    case $HACKSTREAM_DOCKER_HOST in
      /*) export DOCKER_HOST="unix://$HACKSTREAM_DOCKER_HOST" ;;
      *) export DOCKER_HOST=$HACKSTREAM_DOCKER_HOST ;;
    esac
  fi
  if ! ensure_docker; then
    problems+=("a Docker engine (see above; as root npm start installs and starts one)")
  elif [ -n "${HACKSTREAM_SESSION_IMAGE:-}" ]; then
    docker image inspect "$HACKSTREAM_SESSION_IMAGE" >/dev/null 2>&1 ||
      problems+=("the session image $HACKSTREAM_SESSION_IMAGE (HACKSTREAM_SESSION_IMAGE) is not on the engine: docker pull or build it")
  else
    log "session image: built when missing (the first build takes a few minutes; its progress follows)…"
    bash scripts/build-image.sh || problems+=("the session image: see the build output above; retry with npm run image")
  fi
  if [ ${#problems[@]} -gt 0 ]; then
    log "starting anyway; sessions cannot start until this is fixed (GET /ready says why):"
    local p
    for p in "${problems[@]}"; do log "  - $p"; done
  else
    log "sessions: Docker engine, session image, iptables and PostgreSQL are ready"
  fi
}

# The unprivileged processes load the code from this checkout: what npm and tsc write must
# be readable by them whatever the caller's umask.
(umask 022 && ensure_node_modules)
if [ ! -f dist/server/main.js ] || [ -n "$(find gateway core plugins lib agent server -newer dist/server/main.js -name '*.ts' -print -quit)" ]; then
  log "building (tsc)…"
  (umask 022 && npx tsc -p tsconfig.build.json)
fi
if [ "$(id -u)" = 0 ] && command -v runuser >/dev/null 2>&1 && ! runuser -u nobody -- test -r "$PWD/dist/server/main.js"; then
  log "warning: other users cannot read $PWD/dist: the unprivileged processes cannot load the code (chmod -R a+rX the checkout and the folders above it)"
fi

case " $* " in
  *" --help "* | *" -h "*) ;;
  *) setup_sessions_host ;;
esac
exec node --enable-source-maps dist/server/main.js "$@"
