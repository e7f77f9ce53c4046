#!/usr/bin/env bash
# Builds dist/minisipserver_<version>_<arch>.deb from dist/minisipserver (built first when it is
# missing): the executable, the systemd unit, the default configuration (a conffile), the
# optional MariaDB drop-in as an example, and the maintainer scripts in packaging/deb/.
#
#   scripts/build-deb.sh [--binary FILE] [--out DIR] [--compression xz|gzip|none]
#
# xz (the default) makes the smallest package (about 23 MB) in about a minute; none (for tests) takes seconds.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary="$here/dist/minisipserver"
out_dir="$here/dist"
compression=xz

die() {
  echo "build-deb: $*" >&2
  exit 1
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) binary="${2:?--binary needs a file}"; shift 2 ;;
    --out) out_dir="${2:?--out needs a folder}"; shift 2 ;;
    --compression) compression="${2:?--compression needs xz, gzip or none}"; shift 2 ;;
    *) die "unknown argument: $1 (accepted: --binary FILE, --out DIR, --compression xz|gzip|none)" ;;
  esac
done

command -v dpkg-deb >/dev/null || die "dpkg-deb is needed (Debian package dpkg)"
if [[ ! -x "$binary" ]]; then
  [[ "$binary" == "$here/dist/minisipserver" ]] || die "$binary is not an executable"
  node "$here/scripts/build-binary.mjs"
fi

version="$(node -p "require('$here/package.json').version")"
arch="$(dpkg --print-architecture)"
package="minisipserver_${version}_${arch}.deb"
mkdir -p "$out_dir"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"

install -D -m 0755 "$binary" "$stage/usr/bin/minisipserver"
install -D -m 0644 "$here/packaging/systemd/minisipserver.service" "$stage/lib/systemd/system/minisipserver.service"
install -D -m 0640 "$here/packaging/minisipserver.yaml" "$stage/etc/minisipserver/minisipserver.yaml"
docs="$stage/usr/share/doc/minisipserver"
install -D -m 0644 "$here/packaging/systemd/mariadb.conf" "$docs/examples/mariadb.conf"
install -m 0644 "$here/docs/DEPLOY.md" "$docs/DEPLOY.md"
cat > "$docs/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: minisipserver

Files: *
License: MIT
 The executable embeds Node.js (MIT and bundled licences) and SQLite (public domain).
COPYRIGHT

install -d "$stage/DEBIAN"
install -m 0755 "$here/packaging/deb/postinst" "$here/packaging/deb/prerm" "$here/packaging/deb/postrm" "$stage/DEBIAN/"
echo /etc/minisipserver/minisipserver.yaml > "$stage/DEBIAN/conffiles"
installed_kb="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: minisipserver
Version: $version
Architecture: $arch
Maintainer: minisipserver developers <minisipserver@localhost>
Section: net
Priority: optional
Installed-Size: $installed_kb
Depends: libc6 (>= 2.28), libstdc++6 (>= 10), libgcc-s1, passwd
Description: SIP server and small-business IP-PBX
 Registrar with digest authentication, B2BUA calls, media relay, IVR,
 call-back and call detail records, in one executable with its own
 SQLite store. Runs as the systemd service minisipserver.service.
CONTROL

case "$compression" in
  xz|gzip|none) ;;
  *) die "--compression must be xz, gzip or none, not $compression" ;;
esac
dpkg-deb --root-owner-group "-Z$compression" --build "$stage" "$out_dir/$package" >/dev/null
echo "$out_dir/$package"
