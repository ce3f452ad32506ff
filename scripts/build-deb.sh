#!/usr/bin/env bash
# Builds the Debian package: scripts/build-deb.sh [OUTDIR]  (default build-deb)
#
# Runs `dpkg-buildpackage -us -uc -b` on a copy of the source tree (the
# files git tracks plus new ones it does not ignore), because
# dpkg-buildpackage writes its results next to the source folder and
# leaves debian/ build state behind. OUTDIR receives
# weightdrop_<version>_<arch>.deb, the -dbgsym .deb, .buildinfo and
# .changes and build.log; lintian's verdict is printed and saved as
# OUTDIR/lintian.txt.
#
#   WD_DEB_VERSION=V    package as version V (a changelog entry is added to
#                       the copy; the upgrade test builds a second version)
#   DEB_BUILD_OPTIONS   as for any Debian package: nocheck skips the unit
#                       tests, parallel=N sets the build's jobs (default:
#                       every core)
#   WD_WERROR=ON        compiler warnings are errors (CI)
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mkdir -p "${1:-$src/build-deb}" && cd "${1:-$src/build-deb}" && pwd)"

missing="$(cd "$src" && dpkg-checkbuilddeps 2>&1)" || {
  echo "build-deb: build dependencies missing: ${missing#*: }" >&2
  echo "build-deb: install them with: sudo bash scripts/setup.sh" >&2
  exit 1
}

work="$(mktemp -d "${TMPDIR:-/tmp}/weightdrop-deb.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir "$work/weightdrop"
(cd "$src" && git ls-files -z --cached --others --exclude-standard \
   | xargs -0 cp --parents -t "$work/weightdrop")

if [ -n "${WD_DEB_VERSION:-}" ]; then
  # A changelog entry of its own, so dpkg sees a real upgrade.
  (cd "$work/weightdrop" && {
    printf 'weightdrop (%s) unstable; urgency=medium\n\n' "$WD_DEB_VERSION"
    printf '  * Built by scripts/build-deb.sh with WD_DEB_VERSION.\n\n'
    printf ' -- weightdrop developers <weightdrop@example.org>  %s\n\n' "$(date -R)"
    cat debian/changelog
  } > debian/changelog.new && mv debian/changelog.new debian/changelog)
fi

export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-parallel=$(nproc)}"
export WD_WERROR="${WD_WERROR:-OFF}"
# The build's full log (every compiler line) goes to OUTDIR/build.log; its
# end is shown when it fails.
echo "build-deb: dpkg-buildpackage -us -uc -b (DEB_BUILD_OPTIONS=$DEB_BUILD_OPTIONS; log: $out/build.log)"
if ! (cd "$work/weightdrop" && dpkg-buildpackage -us -uc -b) > "$out/build.log" 2>&1; then
  tail -n 150 "$out/build.log" >&2
  echo "build-deb: dpkg-buildpackage failed (whole log: $out/build.log)" >&2
  exit 1
fi
grep -E '^(dpkg-deb: building|[0-9]+% tests passed|.*tests? failed out of)' "$out/build.log" || true

version="$(cd "$work/weightdrop" && dpkg-parsechangelog -S Version)"
arch="$(dpkg --print-architecture)"
mv "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out"/
echo "build-deb: $out/weightdrop_${version}_${arch}.deb"

if command -v lintian >/dev/null; then
  # Errors fail the build; each remaining warning is justified in
  # debian/weightdrop.lintian-overrides.
  lintian --fail-on error,warning --info "$out/weightdrop_${version}_${arch}.changes" \
    | tee "$out/lintian.txt"
  echo "build-deb: lintian clean (no errors, no unexplained warnings)"
fi
