#!/usr/bin/env bash
# Builds weightdrop in BUILD_DIR (default: build) with warnings as errors
# (-DWD_WERROR=ON) and runs every test:
#   scripts/test.sh [BUILD_DIR]        WD_SANITIZE=ON for ASan+UBSan,
#                                      WD_ISAL=OFF for the zlib inflate
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
dir="${1:-build}"
cmake -S . -B "$dir" -DWD_WERROR=ON -DWD_SANITIZE="${WD_SANITIZE:-OFF}" \
  -DWD_ISAL="${WD_ISAL:-AUTO}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
ctest --test-dir "$dir" --output-on-failure
