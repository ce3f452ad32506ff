#!/usr/bin/env bash
# Installs everything weightdrop needs to build and test on Debian 12, from
# Debian's packages and (for the tfjs loader test) the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# missing PKG...: prints the packages of the list that are not installed.
missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
# install [--no-install-recommends] PKG...: installs those missing. A
# package's postinst may start its service (nginx would listen on *:80 as
# root) unless policy-rc.d says no: say no for this install, where nothing
# else does already.
install() {
  local opts=() todo=() own_policy=""
  [ "$1" != "--no-install-recommends" ] || { opts+=("$1"); shift; }
  mapfile -t todo < <(missing "$@")
  [ "${#todo[@]}" -gt 0 ] || return 0
  echo "== installing: ${todo[*]}"
  $SUDO apt-get update -qq
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${opts[@]}" "${todo[@]}" >/dev/null
  [ -z "$own_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
}

pkgs=(build-essential cmake pkg-config clang-format
      libuv1-dev libyaml-cpp-dev nlohmann-json3-dev libspdlog-dev doctest-dev
      libzip-dev zlib1g-dev libisal-dev libssl-dev libcli11-dev
      libcurl4-openssl-dev libtinyxml2-dev
      python3 python3-numpy
      clang libclang-rt-14-dev)  # scripts/fuzz.sh: libFuzzer targets
# node/npm may come from outside Debian's packages (a preinstalled Node.js):
# take Debian's only when no working node + npm is on PATH.
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
install "${pkgs[@]}"
# A real S3 for the S3 publish-target tests (scripts/rgw.sh: one ceph-mon,
# one memstore ceph-osd, radosgw on 127.0.0.1) and rclone for the S3
# benchmark. Without recommends: those pull in ceph-mgr and friends.
install --no-install-recommends radosgw ceph-mon ceph-osd rclone
# The .deb (scripts/build-deb.sh: dpkg-buildpackage, lintian; deb_test
# renders the man page with man-db), the systemd its boot test runs as PID 1
# (scripts/sdboot.sh: systemd, iproute2; curl for the hooks), the web
# server and the browser of the nginx and browser tests. Without
# recommends: chromium's pull in desktop integration the tests do not use.
# The tests start their own nginx, on loopback, and stop it by pid;
# installing systemd starts nothing where it is not PID 1.
install --no-install-recommends dpkg-dev debhelper lintian man-db \
  systemd iproute2 curl nginx chromium
if [ ! -d tests/tfjs/node_modules/@tensorflow/tfjs-converter ]; then
  echo "== npm ci (tests/tfjs: pinned @tensorflow/tfjs-core, tfjs-backend-cpu, tfjs-converter)"
  (cd tests/tfjs && npm ci --no-audit --no-fund --loglevel=error)
fi
if [ ! -d tests/browser/node_modules/puppeteer-core ]; then
  # puppeteer-core drives Debian's /usr/bin/chromium: no browser download.
  echo "== npm ci (tests/browser: pinned puppeteer-core, @tensorflow/tfjs)"
  (cd tests/browser && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
