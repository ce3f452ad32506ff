#!/usr/bin/env bash
# Makes "the next version" of a built .deb without building again, for the
# upgrade check of tests/integration/systemd_boot_test.sh:
#   tests/integration/deb_repack.sh DEB VERSION OUT_DEB
# Same files and maintainer scripts under a higher Version, and a shipped
# /etc/weightdrop/weightdrop.yaml with one comment line more, so that an
# upgrade over an operator-edited config meets dpkg's conffile rule (both
# changed: the operator's kept, the new one written as .dpkg-dist).
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 DEB VERSION OUT_DEB" >&2; exit 2; }
deb="$1" version="$2" out="$3"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dpkg-deb -R "$deb" "$work/root"
sed -i "s/^Version: .*/Version: $version/" "$work/root/DEBIAN/control"
echo "# shipped by weightdrop $version (tests/integration/deb_repack.sh)" \
  >> "$work/root/etc/weightdrop/weightdrop.yaml"
# DEBIAN/md5sums stays right: only the conffile changed, and conffiles
# are not in it (dpkg keeps their sums in its conffiles database).
dpkg-deb --root-owner-group -b "$work/root" "$out" >/dev/null
echo "$out"
