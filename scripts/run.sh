#!/usr/bin/env bash
# The one command to run weightdrop on a fresh Debian 12 machine: installs
# what it needs, builds, and starts the daemon in the foreground on the
# embedded default config (config/local.yaml): drop bundles into ./drop,
# versions appear in ./serve. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target weightdrop
mkdir -p drop serve state
cat <<MSG
weightdrop is starting: drop a bundle into $(pwd)/drop, for example
  /usr/bin/python3 scripts/make_example_bundle.py /tmp/mlp.npz && mv /tmp/mlp.npz drop/
and it is published to $(pwd)/serve/mlp/. Ctrl-C stops the daemon.
MSG
exec build/weightdrop run --config config/local.yaml
