#!/usr/bin/env bash
# npm run package:server: the HackStream server as a Debian package,
# dist/hackstream-server_<version>_amd64.deb (docs/operations.md). It holds compiled
# JavaScript, production dependencies only (npm ci --omit=dev, in a staging folder), the
# portal's prebuilt front-end, one systemd unit, and a default /etc/hackstream/config.json.
# amd64: argon2 and the peer-credential addon are native code built here.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source scripts/deb.sh

deb_stage
[ "$(dpkg --print-architecture)" = amd64 ] || { log "builds the amd64 package only (native addons), on amd64"; exit 1; }
version=$deb_version
root=$deb_root
name=hackstream-server
out="dist/${name}_${version}_amd64.deb"
app=$root/usr/lib/$name
umask 022

log "compiling the server (tsc -p tsconfig.build.json, version $version)…"
mkdir -p "$app"
node_modules/.bin/tsc -p tsconfig.build.json --outDir "$app/dist" --sourceMap false
log "prebuilding the portal's front-end (esbuild)…"
node --import tsx scripts/web-prebuild.ts "$app/dist/web/prebuilt"
install -d "$app/dist/web/src"
install -m 0644 web/src/*.css "$app/dist/web/src/"

log "installing production dependencies (npm ci --omit=dev, in the staging folder)…"
install -m 0644 package.json package-lock.json "$app/"
install -d "$app/native/peercred"
install -m 0644 native/peercred/{package.json,binding.gyp,peercred.c,index.cjs} "$app/native/peercred/"
# Inside the staging folder only: never the checkout's (or a worktree's shared) node_modules.
(cd "$app" && npm ci --omit=dev --prefer-offline --no-audit --no-fund --loglevel=error >&2)
# Nothing Node runs: type declarations, TypeScript sources, source maps, readmes (about half
# the size: OpenTelemetry ships all of them).
find "$app/node_modules" -type f \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.map' -o -name '*.md' -o -name '*.markdown' \) -delete
# node_modules/hackstream-peercred links to native/peercred (a file: dependency): keep the
# addon it built, drop its build tree.
find "$app/native/peercred/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
find "$app/native/peercred/build/Release" -mindepth 1 ! -name '*.node' -exec rm -rf {} +
# What the lockfile marks dev-only (tsx, typescript, esbuild, the test tools…) must be absent.
stray=$(node -e '
  const lock = require(process.argv[1]);
  const fs = require("node:fs");
  const path = require("node:path");
  for (const [p, v] of Object.entries(lock.packages)) if (v.dev && fs.existsSync(path.join(process.argv[2], p))) console.log(p);
' "$PWD/package-lock.json" "$app")
if [ -n "$stray" ]; then log "devDependencies reached the release's node_modules: $stray"; exit 1; fi

log "adding the session image's sources, the unit and the config…"
cp -r images "$app/images"
install -d "$app/scripts"
install -m 0755 scripts/build-image.sh "$app/scripts/"
install -m 0644 scripts/lib.sh "$app/scripts/"
install -D -m 0755 packaging/server/hackstream-admin "$root/usr/sbin/hackstream-admin"
install -D -m 0644 packaging/server/hackstream.service "$root/lib/systemd/system/hackstream.service"
install -D -m 0640 packaging/server/config.json "$root/etc/hackstream/config.json"
install -d -m 0751 "$root/var/lib/hackstream"
deb_copyright "$name" "/usr/lib/$name/node_modules holds the npm dependencies with their own licenses."
install -m 0644 docs/operations.md docs/configuration.md docs/processes.md "$root/usr/share/doc/$name/"
# Whatever npm and tsc wrote: readable by the service users, writable by nobody but root.
find "$root" -path "$root/etc" -prune -o -path "$root/var" -prune -o -type d -exec chmod 0755 {} +
find "$app" -type f -exec chmod go-w {} +

install -d "$root/DEBIAN"
install -m 0755 packaging/server/postinst packaging/server/prerm packaging/server/postrm "$root/DEBIAN/"
echo /etc/hackstream/config.json >"$root/DEBIAN/conffiles"
size=$(deb_installed_size)
cat >"$root/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: amd64
Maintainer: HackStream maintainers <maintainers@hackstream.invalid>
Installed-Size: $size
Depends: nodejs (>= 20), docker.io | docker-ce, iptables, adduser, e2fsprogs
Recommends: postgresql, xpra
Suggests: redis-server, debootstrap
Section: net
Priority: optional
Description: HackStream server: a server-side Firefox for low-RAM devices
 Runs Firefox sessions in hardened containers and streams them with xpra to
 the hackstream client or a browser, behind one TLS port. One systemd unit
 (hackstream.service) supervises the edge, the control plane and the agent,
 each with only the privilege it needs.
 .
 Node.js 20 or newer is required: Debian 13 has it, on Debian 12 install the
 nodejs package from NodeSource (see operations.md in the documentation).
CONTROL

deb_build "$out"
