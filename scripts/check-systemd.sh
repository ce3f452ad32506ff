#!/usr/bin/env bash
# Checks the systemd packaging against the weightdrop binary in BUILD_DIR:
#   scripts/check-systemd.sh [BUILD_DIR]        (default: build)
# 1. `systemd-analyze verify` on the unit, with ExecStart pointed at the
#    built binary (verify refuses a unit whose binary does not exist); any
#    warning fails.
# 2. `systemd-analyze security --offline=yes`: fails when the exposure score
#    is above 3.0 (--threshold counts tenths: 30 = 3.0).
# 3. sysusers.d and tmpfiles.d files applied to a scratch root, never to
#    this machine.
# 4. `weightdrop check-config` on the shipped config/weightdrop.yaml.
# Installs Debian's `systemd` package when systemd-analyze is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
build="$(cd "${1:-build}" && pwd)"
bin="$build/weightdrop"
max_exposure_tenths=30
[ -x "$bin" ] || { echo "check-systemd: no weightdrop binary at $bin (build first)" >&2; exit 1; }

if ! command -v systemd-analyze >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "== installing: systemd (for systemd-analyze)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq systemd >/dev/null
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

# The unit as CMake generated it for this build, else straight from the
# template; either way ExecStart runs the binary just built.
unit="$scratch/weightdrop.service"
if [ -f "$build/systemd/weightdrop.service" ]; then
  sed -E "s|^(Exec[A-Za-z]+)=[^ ]*/weightdrop |\1=$bin |" "$build/systemd/weightdrop.service" > "$unit"
else
  sed -e "s|@CMAKE_INSTALL_FULL_BINDIR@/weightdrop|$bin|" \
      -e "s|@CMAKE_INSTALL_FULL_SYSCONFDIR@|/etc|" \
      -e "s|@CMAKE_INSTALL_FULL_DOCDIR@|/usr/share/doc/weightdrop|" \
      systemd/weightdrop.service.in > "$unit"
fi
if grep -n '@[A-Z_]*@' "$unit"; then
  echo "check-systemd: unsubstituted placeholders in the unit" >&2; exit 1
fi

echo "-- systemd-analyze verify ($(grep '^ExecStart=' "$unit"))"
out="$(systemd-analyze verify --man=no "$unit" 2>&1)" || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
  echo "$out" >&2; echo "check-systemd: verify printed warnings" >&2; exit 1
fi

echo "-- systemd-analyze security --offline=yes --threshold=$max_exposure_tenths"
rc=0
out="$(systemd-analyze security --offline=yes --threshold="$max_exposure_tenths" \
       --no-pager "$unit" 2>&1)" || rc=$?
echo "$out" | grep -F '✗' || true
echo "$out" | grep 'Overall exposure level' || { echo "$out" >&2; exit 1; }
if [ "$rc" -ne 0 ]; then
  echo "check-systemd: exposure above $((max_exposure_tenths / 10)).$((max_exposure_tenths % 10))" >&2
  exit 1
fi

echo "-- systemd-sysusers and systemd-tmpfiles on a scratch root"
root="$scratch/root"
mkdir -p "$root/etc"
out="$(systemd-sysusers --root="$root" "$PWD/systemd/weightdrop.sysusers" 2>&1)" || { echo "$out" >&2; exit 1; }
grep -q '^weightdrop:' "$root/etc/passwd" && grep -q '^weightdrop-drop:' "$root/etc/group" ||
  { echo "check-systemd: sysusers did not create weightdrop / weightdrop-drop" >&2; exit 1; }
# ACL entries name users through this machine's NSS, where the weightdrop
# users need not exist: check the syntax with root standing in for them.
sed -e 's/weightdrop-drop:rwx/root:rwx/g' -e 's/user:weightdrop:rwx/user:root:rwx/g' \
    "$PWD/systemd/weightdrop.tmpfiles" > "$scratch/tmpfiles.conf"
out="$(systemd-tmpfiles --root="$root" --create "$scratch/tmpfiles.conf" 2>&1)" || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
  echo "$out" >&2; echo "check-systemd: tmpfiles printed warnings" >&2; exit 1
fi
for d in drop drop/models serve; do
  [ -d "$root/srv/weightdrop/$d" ] || { echo "check-systemd: tmpfiles made no /srv/weightdrop/$d" >&2; exit 1; }
done

echo "-- weightdrop check-config config/weightdrop.yaml"
"$bin" check-config config/weightdrop.yaml
echo "check-systemd: OK"
