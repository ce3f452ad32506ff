#!/usr/bin/env bash
# The S3 client's real-server cases (tests/s3_client_rgw_test.cpp, "rgw: *")
# against a Ceph RGW this script starts on loopback and stops by pid,
# including the one that restarts radosgw mid-request (WD_TEST_S3_DISRUPT).
# Usage: s3_client_rgw.sh WD_TESTS_BINARY. Exit 77 (skipped) without ceph.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rgw="$here/../../scripts/rgw.sh"
tests=$1
if ! "$rgw" available; then
  echo "SKIP: radosgw/ceph-mon/ceph-osd not installed (scripts/setup.sh installs them)"
  exit 77
fi
dir=$(mktemp -d /tmp/wd-s3c.XXXXXX)
trap '"$rgw" stop "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
RGW_START_TIMEOUT=${RGW_START_TIMEOUT:-180} "$rgw" start "$dir" >/dev/null
set -a
# shellcheck disable=SC1091
. "$dir/env"
set +a
export WD_TEST_S3_DISRUPT=1
"$tests" --test-case='rgw: *'
