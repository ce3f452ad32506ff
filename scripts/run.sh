#!/usr/bin/env bash
# The one command to run weightdrop on a fresh Debian 12 machine: installs
# what it needs, builds, and starts the daemon in the foreground on the
# embedded default config (config/local.yaml): drop bundles into ./drop,
# versions appear in ./serve, state in ./state. Ctrl-C stops it.
#   WEIGHTDROP=/usr/bin/weightdrop bash scripts/run.sh
# runs that (installed or already built) binary instead: no install, no build.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${WEIGHTDROP:-}"
if [ -z "$bin" ]; then
  bash scripts/setup.sh
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"$(nproc)" --target weightdrop
  bin=build/weightdrop
fi
mkdir -p drop serve state
cat <<MSG
weightdrop is starting: drop a bundle into $(pwd)/drop, for example
  /usr/bin/python3 scripts/make_example_bundle.py drop/mlp.npz.part && mv drop/mlp.npz.part drop/mlp.npz
and it is published to $(pwd)/serve/mlp/. Ctrl-C stops the daemon.
MSG
exec "$bin" run --config config/local.yaml
