#!/usr/bin/env bash
# npm run package:deb: the hackstream client as a Debian package,
# dist/hackstream-client_<version>_all.deb. The CLI is bundled into one JavaScript file
# (esbuild, Node 18 syntax: bookworm's nodejs is 18.19+), so it needs no node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
source scripts/deb.sh

deb_stage
version=$deb_version
root=$deb_root
name=hackstream-client
out="dist/${name}_${version}_all.deb"

log "bundling client/cli.ts (version $version, target node18)…"
mkdir -p "$root/usr/lib/hackstream"
node_modules/.bin/esbuild client/cli.ts --bundle --platform=node --format=esm --target=node18 \
  --define:HACKSTREAM_VERSION="\"$version\"" --minify --keep-names --legal-comments=none --log-level=warning \
  --outfile="$root/usr/lib/hackstream/hackstream.mjs"

# esbuild lowers syntax, not APIs: refuse what Node 18 does not have.
newer='import\.meta\.(dirname|filename)|Promise\.withResolvers|(Object|Map)\.groupBy|Array\.fromAsync|process\.getBuiltinModule|node:sqlite|\.toSorted\(|\.toReversed\(|\.toSpliced\('
if grep -En "$newer" "$root/usr/lib/hackstream/hackstream.mjs" >&2; then
  log "the bundle uses APIs newer than Node 18 (above); the package would not run on bookworm's nodejs"
  exit 1
fi

log "laying out the package…"
install -d "$root/usr/bin" "$root/usr/share/applications" "$root/usr/share/icons/hicolor/scalable/apps" \
  "$root/usr/share/doc/$name" "$root/DEBIAN"
# bin/hackstream (the shell that waits on xpra, see docs/clients.md) with the bundle as its CLI.
sed -e '/^root=/d' -e 's|^cli() .*# @cli$|cli() { node /usr/lib/hackstream/hackstream.mjs "$@"; }|' \
  -e 's|^warm_py=.*# @warm$|warm_py=/usr/lib/hackstream/xpra-warm.py|' \
  -e 's|^# From a checkout it runs client/cli.ts with tsx.*$|# Installed by the hackstream-client package: the CLI is one bundled file.|' bin/hackstream >"$root/usr/bin/hackstream"
if ! grep -q '^cli() { node /usr/lib/hackstream/hackstream.mjs' "$root/usr/bin/hackstream" || grep -q tsx "$root/usr/bin/hackstream" ||
  ! grep -q '^warm_py=/usr/lib/hackstream/xpra-warm.py$' "$root/usr/bin/hackstream"; then
  log "bin/hackstream no longer has its '# @cli' and '# @warm' lines; cannot make /usr/bin/hackstream"
  exit 1
fi
chmod 0755 "$root/usr/bin/hackstream"
chmod 0644 "$root/usr/lib/hackstream/hackstream.mjs"
install -m 0644 client/xpra-warm.py "$root/usr/lib/hackstream/xpra-warm.py"
install -m 0644 packaging/hackstream.desktop "$root/usr/share/applications/hackstream.desktop"
install -m 0644 packaging/hackstream.svg "$root/usr/share/icons/hicolor/scalable/apps/hackstream.svg"
install -m 0644 docs/clients.md "$root/usr/share/doc/$name/clients.md"
deb_copyright "$name" 'The bundle also contains zod (MIT, Colin McDonnell).'

size=$(deb_installed_size)
cat >"$root/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: all
Maintainer: HackStream maintainers <maintainers@hackstream.invalid>
Installed-Size: $size
Depends: nodejs (>= 18), xpra, python3-gi-cairo, yad
Section: net
Priority: optional
Description: HackStream client: a server-side Firefox on low-RAM devices
 The hackstream command launches a Firefox session on a HackStream server and
 shows it here with xpra (hackstream launch browser), and hackstream gui is a
 small desktop launcher (yad) light enough for a Raspberry Pi Zero.
EOF

deb_build "$out"
