#!/usr/bin/env bash
# scripts/rgw.sh against a real Ceph RGW: start it in a temp dir, signed
# PUT/GET/LIST, a conditional PUT (If-None-Match: * -> 412 the second time),
# public-read by object ACL and by bucket policy (unsigned GETs), CORS,
# restart-rgw / kill-rgw / start-rgw keeping the data, rclone (if installed)
# from `rgw.sh rclone-env` alone, then stop: no process it started is left.
# Exit 77 (ctest: skipped) when the ceph binaries are not installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rgw="$here/../../scripts/rgw.sh"

if ! "$rgw" available; then
  echo "SKIP: radosgw/ceph-mon/ceph-osd not installed (scripts/setup.sh installs them)"
  exit 77
fi

dir=$(mktemp -d /tmp/wd-rgw.XXXXXX)
pids=""
cleanup() {
  "$rgw" stop "$dir" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

fails=0
check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: expected '$2', got '$3'"; fails=$((fails + 1)); fi
}

t0=$(date +%s%N)
env_file=$("$rgw" start "$dir")
echo "started in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $env_file"
set -a
# shellcheck disable=SC1090
. "$env_file"
set +a
pids=$RGW_PIDS
check "env bucket" weightdrop-test "$WD_TEST_S3_BUCKET"
check "env endpoint" "$AWS_ENDPOINT_URL" "$WD_TEST_S3_ENDPOINT"

B="$AWS_ENDPOINT_URL/$WD_TEST_S3_BUCKET"
# curl 7.88 needs the x-amz-content-sha256 header spelled out (RGW rejects
# the signature without it) and the query string in canonical form
# (sorted, values percent-encoded, "?policy=" not "?policy").
S=(--aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
   -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD')
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" || true; }
body() { curl -s --max-time 10 "$@" || true; }

printf 'weights' > "$dir/w.bin"
check "signed PUT" 200 "$(code "${S[@]}" -T "$dir/w.bin" "$B/m/v1/w.bin")"
check "signed GET" weights "$(body "${S[@]}" "$B/m/v1/w.bin")"
check "unsigned GET of a private object" 403 "$(code "$B/m/v1/w.bin")"
list=$(body "${S[@]}" "$B?list-type=2&prefix=m%2F")
check "LIST has the key" 1 "$(grep -c '<Key>m/v1/w.bin</Key>' <<<"$list" || true)"

check "If-None-Match PUT, new key" 200 "$(code "${S[@]}" -H 'If-None-Match: *' -T "$dir/w.bin" "$B/m/latest")"
check "If-None-Match PUT, existing key" 412 "$(code "${S[@]}" -H 'If-None-Match: *' -T "$dir/w.bin" "$B/m/latest")"

check "PUT x-amz-acl: public-read" 200 "$(code "${S[@]}" -H 'x-amz-acl: public-read' -T "$dir/w.bin" "$B/pub/w.bin")"
check "unsigned GET of a public-read object" weights "$(body "$B/pub/w.bin")"

cat > "$dir/cors.xml" <<'EOF'
<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>HEAD</AllowedMethod><AllowedHeader>*</AllowedHeader><MaxAgeSeconds>600</MaxAgeSeconds></CORSRule></CORSConfiguration>
EOF
check "PUT ?cors" 200 "$(code "${S[@]}" -X PUT --data-binary @"$dir/cors.xml" "$B?cors=")"
pre=$(curl -s -i -X OPTIONS -H 'Origin: http://example.test' -H 'Access-Control-Request-Method: GET' "$B/pub/w.bin" || true)
check "CORS preflight allows the origin" 1 "$(grep -ci '^access-control-allow-origin:' <<<"$pre" || true)"
get=$(curl -s -i -H 'Origin: http://example.test' "$B/pub/w.bin" || true)
check "CORS header on GET" 1 "$(grep -ci '^access-control-allow-origin:' <<<"$get" || true)"

cat > "$dir/policy.json" <<EOF
{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::$WD_TEST_S3_BUCKET/*"]}]}
EOF
check "PUT ?policy (public-read bucket)" 204 "$(code "${S[@]}" -X PUT --data-binary @"$dir/policy.json" "$B?policy=")"
check "unsigned GET after the bucket policy" weights "$(body "$B/m/v1/w.bin")"

t0=$(date +%s%N)
"$rgw" restart-rgw "$dir"
echo "restart-rgw took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
check "GET after restart-rgw" weights "$(body "${S[@]}" "$B/m/v1/w.bin")"
"$rgw" kill-rgw "$dir"
check "endpoint down after kill-rgw" 000 "$(code --max-time 2 "$B/pub/w.bin")"
"$rgw" start-rgw "$dir"
check "GET after start-rgw" weights "$(body "${S[@]}" "$B/m/v1/w.bin")"
# shellcheck disable=SC1090
. "$env_file"
pids="$pids $RGW_PIDS"

if command -v rclone >/dev/null; then
  mkdir -p "$dir/src/sub"
  head -c 100000 /dev/urandom > "$dir/src/a.bin"
  echo x > "$dir/src/sub/b.txt"
  out=$( (eval "$("$rgw" rclone-env "$dir")" &&
          rclone copy "$dir/src" "rgw:$WD_TEST_S3_BUCKET/x" &&
          rclone check "$dir/src" "rgw:$WD_TEST_S3_BUCKET/x") 2>&1) && rc=0 || rc=$?
  check "rclone copy + check" 0 "$rc"
  [ "$rc" = 0 ] || echo "$out"
else
  echo "skip rclone (not installed)"
fi

"$rgw" stop "$dir"
left=""
for p in $pids; do
  st=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null || true)
  # A zombie is dead (pid 1 reaps it when it gets to it).
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ] && left+=" $p"
done
check "no process left after stop" "" "$left"

if [ "$fails" -gt 0 ]; then
  echo "---- logs"; tail -n 20 "$dir"/log/*.log
  echo "$fails check(s) failed"; exit 1
fi
echo "all checks passed"
