#!/usr/bin/env bash
# Installs everything weightdrop needs to build and test on Debian 12, from
# Debian's packages and (for the tfjs loader test) the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
pkgs=(build-essential cmake pkg-config clang-format
      libuv1-dev libyaml-cpp-dev nlohmann-json3-dev libspdlog-dev doctest-dev
      libzip-dev zlib1g-dev libssl-dev libcli11-dev
      libcurl4-openssl-dev libtinyxml2-dev
      python3 python3-numpy nodejs npm
      clang libclang-rt-14-dev)  # scripts/fuzz.sh: libFuzzer targets
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm may come from outside Debian's packages (a preinstalled Node.js):
# accept a working node + npm on PATH instead.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
read -r -a missing <<< "${missing[*]}"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# A real S3 for the S3 publish-target tests (scripts/rgw.sh: one ceph-mon,
# one memstore ceph-osd, radosgw on 127.0.0.1) and rclone for the S3
# benchmark. Without recommends: those pull in ceph-mgr and friends.
s3pkgs=(radosgw ceph-mon ceph-osd rclone)
s3missing=()
for p in "${s3pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || s3missing+=("$p")
done
if [ "${#s3missing[@]}" -gt 0 ]; then
  echo "== installing: ${s3missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${s3missing[@]}" >/dev/null
fi
# The .deb (scripts/build-deb.sh: dpkg-buildpackage, lintian), the web
# server and the browser of the nginx and browser tests. Without
# recommends: chromium's pull in desktop integration the tests do not use.
# The tests start their own nginx, on loopback, and stop it by pid.
webpkgs=(dpkg-dev debhelper lintian nginx chromium)
webmissing=()
for p in "${webpkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || webmissing+=("$p")
done
if [ "${#webmissing[@]}" -gt 0 ]; then
  echo "== installing: ${webmissing[*]}"
  $SUDO apt-get update -qq
  # Installing nginx starts it (as root, on port 80) unless policy-rc.d
  # says no: say no for this install only, where nothing else does.
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${webmissing[@]}" >/dev/null
  [ -z "$own_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
fi
if [ ! -d tests/tfjs/node_modules/@tensorflow/tfjs-converter ]; then
  echo "== npm ci (tests/tfjs: pinned @tensorflow/tfjs-core, tfjs-backend-cpu, tfjs-converter)"
  (cd tests/tfjs && npm ci --no-audit --no-fund --loglevel=error)
fi
