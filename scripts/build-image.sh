#!/usr/bin/env bash
# npm run image: builds the session image hackstream/firefox-xpra:<content hash>.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

IMAGE_DIR=images/firefox-xpra
readonly REPO=hackstream/firefox-xpra
readonly LOCAL_BASE=hackstream/debian-base:bookworm
readonly REGISTRY_BASE=debian:bookworm-slim

usage() {
  cat <<EOF
Usage: npm run image [-- OPTIONS]   (or: bash scripts/build-image.sh [OPTIONS])

Builds the HackStream session image ($REPO:<hash>, also tagged :latest) from
$IMAGE_DIR. The hash is the first 12 hex digits of a SHA-256 over the image folder's
files, so an unchanged folder is never rebuilt.

Options:
  --force       rebuild even when the image for the current hash exists
  --print-tag   print the image tag for the current folder and exit (needs no Docker)
  --dir DIR     use DIR instead of $IMAGE_DIR (tests hash copies with --print-tag)
  -h, --help    this text

Base image, first that applies:
  1. \$HACKSTREAM_BASE_IMAGE when set
  2. $LOCAL_BASE when it exists locally
  3. $REGISTRY_BASE when a registry answers within 20 s
  4. a Debian bookworm minbase made here with debootstrap (about 2 minutes, root only),
     imported as $LOCAL_BASE
The apt mirror (and security mirror) inside the build are the host's own, read from
/etc/apt/sources.list.d/debian.sources (or /etc/apt/sources.list).
EOF
}

# <sha256>  <relative path> per regular file, sorted by path in the C locale; SHA-256 of
# that listing; first 12 hex digits. agent/image.ts computes exactly the same.
image_hash() {
  (cd "$IMAGE_DIR" && find . -type f -printf '%P\0' | LC_ALL=C sort -z |
    xargs -0 -r sha256sum --) | sha256sum | cut -c1-12
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Prints the host's Debian mirror for suite $1 ("main" or "security"), from deb822 sources
# (first URIs: line / the stanza whose Suites end in -security) or a one-line sources.list.
host_apt_mirror() {
  local which=$1 f=/etc/apt/sources.list.d/debian.sources
  if [ -f "$f" ]; then
    awk -v which="$which" '
      /^[[:space:]]*#/ { next }
      /^[[:space:]]*$/ { if (uri != "") emit(); uri = ""; suites = ""; next }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { suites = $0 }
      function emit() {
        sec = suites ~ /-security/
        if ((which == "security") == sec && !done) { print uri; done = 1 }
      }
      END { if (uri != "") emit() }' "$f"
  elif [ -f /etc/apt/sources.list ]; then
    awk -v which="$which" '$1 == "deb" {
        sec = $3 ~ /-security/
        if ((which == "security") == sec) { print $2; exit }
      }' /etc/apt/sources.list
  fi
}

build_base_with_debootstrap() {
  local mirror=$1 dir
  if [ "$(id -u)" != 0 ]; then
    log "no base image and no registry: building one with debootstrap needs root"
    log "(or set HACKSTREAM_BASE_IMAGE to a Debian bookworm image you have)"
    return 1
  fi
  apt_install debootstrap || return 1
  dir=$(mktemp -d /tmp/hackstream-debootstrap.XXXXXX)
  log "building a Debian bookworm base with debootstrap from $mirror (about 2 minutes)…"
  # debootstrap prints one line per step (I: Retrieving…, I: Unpacking…), which is the progress.
  if ! debootstrap --variant=minbase bookworm "$dir" "$mirror" 2>&1 | sed -u 's/^/[debootstrap] /' >&2; then
    rm -rf "$dir"
    log "debootstrap failed"
    return 1
  fi
  # What apt downloaded while bootstrapping would otherwise stay in every image's base layer.
  rm -rf "$dir"/var/cache/apt/* "$dir"/var/lib/apt/lists/* "$dir"/var/log/*.log
  log "importing it as $LOCAL_BASE…"
  tar -C "$dir" -c . | docker import - "$LOCAL_BASE" >/dev/null
  rm -rf "$dir"
}

choose_base() {
  local mirror=$1
  if [ -n "${HACKSTREAM_BASE_IMAGE:-}" ]; then
    printf '%s' "$HACKSTREAM_BASE_IMAGE"
  elif image_exists "$LOCAL_BASE"; then
    printf '%s' "$LOCAL_BASE"
  elif log "no $LOCAL_BASE; trying to pull $REGISTRY_BASE…" &&
    timeout 20 docker pull -q "$REGISTRY_BASE" >/dev/null 2>&1; then
    printf '%s' "$REGISTRY_BASE"
  else
    log "no registry answered"
    if [ -z "$mirror" ]; then
      log "no Debian mirror in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list to debootstrap from;"
      log "add one there, or set HACKSTREAM_BASE_IMAGE to a Debian bookworm image you have"
      return 1
    fi
    build_base_with_debootstrap "$mirror" || return 1
    printf '%s' "$LOCAL_BASE"
  fi
}

main() {
  local force= print_tag=
  while [ $# -gt 0 ]; do
    case $1 in
      --force) force=1 ;;
      --print-tag) print_tag=1 ;;
      --dir)
        [ $# -ge 2 ] && [ -d "$2" ] || { log "--dir needs a folder"; return 2; }
        IMAGE_DIR=$2
        shift
        ;;
      -h | --help) usage; return 0 ;;
      *) log "unknown option: $1 (see --help)"; return 2 ;;
    esac
    shift
  done

  local tag
  tag="$REPO:$(image_hash)"
  if [ -n "$print_tag" ]; then
    printf '%s\n' "$tag"
    return 0
  fi

  ensure_docker
  if [ -z "$force" ] && image_exists "$tag"; then
    log "image $tag exists (use --force to rebuild)"
    return 0
  fi

  local started=$SECONDS mirror security base
  mirror=$(host_apt_mirror main)
  security=$(host_apt_mirror security)
  base=$(choose_base "$mirror")
  log "building $tag from $base (apt mirror: ${mirror:-as in the base image})…"
  # BuildKit when the buildx plugin is there (plain progress), else the classic builder,
  # whose output is plain already.
  local builder=(env DOCKER_BUILDKIT=0 docker build)
  if docker buildx version >/dev/null 2>&1; then builder=(env DOCKER_BUILDKIT=1 docker build --progress=plain); fi
  "${builder[@]}" \
    --build-arg BASE_IMAGE="$base" \
    --build-arg APT_MIRROR="$mirror" \
    --build-arg APT_SECURITY_MIRROR="$security" \
    --tag "$tag" --tag "$REPO:latest" \
    "$IMAGE_DIR"
  local size
  size=$(docker image inspect --format '{{.Size}}' "$tag")
  log "built $tag ($((size / 1000000)) MB) in $((SECONDS - started)) s"
}

main "$@"
