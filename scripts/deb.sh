# Shared steps of the Debian packages (package-deb.sh, package-server.sh). Sourced after lib.sh.

# Checks the tools, reads the version and makes the staging root, removed when the script
# exits: sets deb_version and deb_root.
deb_stage() {
  ensure_node_modules
  command -v dpkg-deb >/dev/null || { log "dpkg-deb is missing (Debian/Ubuntu only)"; exit 1; }
  deb_version=$(node -p 'require("./package.json").version')
  deb_root=$(mktemp -d)
  chmod 0755 "$deb_root"
  trap 'rm -rf "$deb_root"' EXIT
}

# Writes package $1's copyright file (Apache-2.0) into its doc folder; $2 is its Comment line.
deb_copyright() {
  local doc=$deb_root/usr/share/doc/$1
  install -d "$doc"
  cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: hackstream
Comment: $2

Files: *
Copyright: HackStream contributors
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.
EOF
  chmod 0644 "$doc/copyright"
}

# The Installed-Size (KiB) of DEBIAN/control: everything staged but DEBIAN itself.
deb_installed_size() { du -sk --exclude=DEBIAN "$deb_root" | cut -f1; }

# Builds the staging root into the package file $1 (under dist/).
deb_build() {
  mkdir -p dist
  log "building $1…"
  dpkg-deb --build --root-owner-group -Zxz "$deb_root" "$1" >/dev/null
  log "done: $1 ($(du -h "$1" | cut -f1))"
}
