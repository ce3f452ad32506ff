#!/usr/bin/env bash
# The one command to see weightdrop work on a fresh Debian 12 machine:
# installs what it needs, builds, writes an example bundle with NumPy and
# publishes it into ./serve with config/example-pipeline.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target weightdrop
mkdir -p example
/usr/bin/python3 scripts/make_example_bundle.py example/mlp.npz >/dev/null
build/weightdrop inspect example/mlp.npz --config config/example-pipeline.yaml
version_dir=$(build/weightdrop publish example/mlp.npz --to serve --config config/example-pipeline.yaml)
echo
echo "published: $version_dir"
echo "pointer:   serve/mlp/weights_manifest.json -> $(readlink serve/mlp/current)"
build/weightdrop verify serve/mlp
