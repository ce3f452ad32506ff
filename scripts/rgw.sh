#!/usr/bin/env bash
# A real, throwaway, single-node Ceph RADOS Gateway (S3) on 127.0.0.1 for the
# S3 publish-target tests: one ceph-mon, one ceph-osd on memstore (RAM only),
# one radosgw (beast) - no cephx, no mgr, no systemd. Every file (config,
# mon store, sockets, logs, pid files) lives under DIR; /etc/ceph and
# /var/lib/ceph are never used. Debian 12 packages: radosgw ceph-mon ceph-osd.
#
#   scripts/rgw.sh available          exit 0 if the ceph binaries are installed
#   scripts/rgw.sh start DIR          start all three, an S3 user and the bucket
#                                     weightdrop-test; print DIR/env's path
#   scripts/rgw.sh stop DIR           stop exactly the pids in DIR/*.pid
#   scripts/rgw.sh restart-rgw DIR    kill -9 radosgw only, start it again on
#                                     the same port and state, wait until it
#                                     serves ("the store dies mid-publish")
#   scripts/rgw.sh kill-rgw DIR       kill -9 radosgw only (endpoint down)
#   scripts/rgw.sh start-rgw DIR      start radosgw again after kill-rgw
#   scripts/rgw.sh rclone-env DIR     print export lines pointing rclone's
#                                     remote "rgw:" at it
# Environment for start: RGW_START_TIMEOUT (s, default 120), RGW_MEMSTORE_BYTES
# (default 6 GiB), RGW_EXTRA_CONF (more ceph.conf lines; a repeated key wins).
#
# On a 2-core Debian 12 box (ceph 16.2.15): start ~2.6-3.5 s; RSS idle
# mon ~36 MiB, osd ~51 MiB, radosgw ~48 MiB; restart-rgw ~0.25 s; stop ~0.5 s.
# The memstore osd's RSS grows ~2x the bytes stored (1 GiB stored -> 2 GiB)
# and shrinks again once rgw gc has removed deleted objects (10-20 s).
# If start fails it prints the logs' tails, stops what it started, exits 1.
# stop sends TERM (radosgw, mon) and KILLs the osd outright: its memstore is
# throwaway and on TERM it would first write all of it into DIR/osd.0.
#
# DIR/env holds KEY=VALUE lines (no spaces in values except RGW_PIDS, which is
# double-quoted): AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
# AWS_REGION (us-east-1), WD_TEST_S3_ENDPOINT, WD_TEST_S3_ACCESS_KEY,
# WD_TEST_S3_SECRET_KEY, WD_TEST_S3_BUCKET (weightdrop-test), RGW_PORT,
# RGW_PIDS="mon osd rgw", CEPH_CONF. Use it as `set -a; . DIR/env; set +a`.
# Keys are random per start. Buckets are path-style: $AWS_ENDPOINT_URL/BUCKET/KEY.
#
# Signed requests with Debian's curl (7.88):
#   curl --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
#        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -T file "$AWS_ENDPOINT_URL/weightdrop-test/key"
# The x-amz-content-sha256 header is required: curl 7.88 does not send it
# by itself and RGW then answers 403 SignatureDoesNotMatch (curl signs the
# header and uses its value as the payload hash, so UNSIGNED-PAYLOAD or the
# body's real sha256 both work).
# Public read (for a browser / tfjs test; an unsigned GET then works):
#   - per object: add -H 'x-amz-acl: public-read' to the signed PUT, or
#   - whole bucket: a bucket policy, signed PUT of ?policy with the body
#     {"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
#      "Action":["s3:GetObject"],"Resource":["arn:aws:s3:::weightdrop-test/*"]}]}
#     e.g. curl --aws-sigv4 ... -X PUT --data-binary @policy.json "$AWS_ENDPOINT_URL/weightdrop-test?policy"
#     (tests/integration/rgw_smoke_test.sh checks both.)
# CORS (a browser on another origin): signed PUT of ?cors with a
# <CORSConfiguration> body; needs a Content-MD5 header. RGW then answers
# OPTIONS preflights and adds Access-Control-Allow-Origin to GETs that carry
# an Origin header (also checked by the smoke test).
#
# rclone (Debian's 1.60) against it, from the env file only:
#   eval "$(scripts/rgw.sh rclone-env DIR)"; rclone copy somefolder rgw:weightdrop-test/x
#
# Tuning that matters (measured): auth none needs "ms mon client mode = crc
# secure" or radosgw hangs 300 s ("failed to fetch mon config"); paxos propose
# interval 0.1 makes pool/user creation ~1 s instead of ~8 s; beast without
# tcp_nodelay=1 costs keep-alive clients ~40 ms per GET; rgw gc runs every 10 s
# with a 10 s min wait so deleted objects leave the memstore during long runs.
# The memstore grows with the data stored (device bytes is a cap, not an
# allocation).
set -euo pipefail

BUCKET=weightdrop-test
REGION=us-east-1
TIMEOUT=${RGW_START_TIMEOUT:-120}  # seconds for everything to come up (a busy CI machine)
MEMSTORE_BYTES=${RGW_MEMSTORE_BYTES:-6442450944}   # 6 GiB cap
# RGW_EXTRA_CONF: more "key = value" lines for ceph.conf's [global] (start).

die() { echo "rgw.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }

available() {
  local b missing=()
  for b in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph curl python3; do
    command -v "$b" >/dev/null 2>&1 || missing+=("$b")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "rgw.sh: missing ${missing[*]} (apt-get install --no-install-recommends radosgw ceph-mon ceph-osd)" >&2
    return 1
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

randstr() {  # randstr N CHARSET
  local out=""
  while [ "${#out}" -lt "$1" ]; do
    out+=$(head -c 256 /dev/urandom | tr -dc "$2")
  done
  echo "${out:0:$1}"
}

# Seconds left of the start deadline (at least 1, so `timeout` still runs).
left() { local l=$((deadline - SECONDS)); [ "$l" -gt 0 ] && echo "$l" || echo 1; }

# A pid from DIR/NAME.pid, only if that process is still ours: its command
# line names DIR/ceph.conf (pid reuse must never make us kill a stranger).
ours() {
  local f="$D/$1.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF -- "$D/ceph.conf" || return 1
  echo "$pid"
}

# Running (a zombie is not: our daemons are reparented to pid 1, which may
# take a second or two to reap them).
alive() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

tails() {
  local f
  for f in "$D"/log/*; do
    [ -s "$f" ] || continue
    echo "---- tail $f" >&2
    tail -n 25 "$f" >&2
  done
}

fail() {
  echo "rgw.sh: $*" >&2
  tails
  stop_all >/dev/null 2>&1 || true
  exit 1
}

ceph_() { timeout "$(left)" ceph -c "$D/ceph.conf" --connect-timeout "$(left)" "$@"; }

signed() {  # signed CURL_ARGS... -> prints the HTTP status
  curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$ACCESS_KEY:$SECRET_KEY" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@" || true
}

write_conf() {
  cat > "$D/ceph.conf" <<EOF
[global]
fsid = $FSID
mon host = [v2:127.0.0.1:$MON_PORT]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
ms mon service mode = crc secure
ms mon cluster mode = crc secure
run dir = $D/run
admin socket = $D/run/\$cluster-\$name.\$pid.asok
log file = $D/log/\$name.log
mon cluster log file = $D/log/cluster.log
crash dir = $D/crash
keyring = $D/keyring
mon data = $D/\$name
osd data = $D/\$name
rgw data = $D/\$name
exec dir = $D/run
paxos propose interval = 0.1
mon allow pool size one = true
mon warn on pool no redundancy = false
mon pg warn min per osd = 0
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
rgw dns name =
rgw frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
rgw gc obj min wait = 10
rgw gc processor period = 10
rgw thread pool size = 64
${RGW_EXTRA_CONF:-}
EOF
}

load_env() {
  [ -f "$D/env" ] || die "$D/env missing (not started with rgw.sh start?)"
  # shellcheck disable=SC1091
  . "$D/env"
  RGW_PORT=${RGW_PORT:?}
  ACCESS_KEY=$AWS_ACCESS_KEY_ID
  SECRET_KEY=$AWS_SECRET_ACCESS_KEY
}

pids_line() {
  local p out=""
  for p in mon osd rgw; do
    out+="$(ours "$p" || true) "
  done
  echo "$out" | xargs
}

write_env() {
  cat > "$D/env.tmp" <<EOF
AWS_ENDPOINT_URL=http://127.0.0.1:$RGW_PORT
AWS_ACCESS_KEY_ID=$ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$SECRET_KEY
AWS_REGION=$REGION
WD_TEST_S3_ENDPOINT=http://127.0.0.1:$RGW_PORT
WD_TEST_S3_ACCESS_KEY=$ACCESS_KEY
WD_TEST_S3_SECRET_KEY=$SECRET_KEY
WD_TEST_S3_BUCKET=$BUCKET
RGW_PORT=$RGW_PORT
CEPH_CONF=$D/ceph.conf
RGW_PIDS="$(pids_line)"
EOF
  mv "$D/env.tmp" "$D/env"
}

spawn() {  # spawn NAME CMD... : background, stdio to DIR/log/NAME.out, pid file
  "${@:2}" </dev/null >>"$D/log/$1.out" 2>&1 &
  local pid=$! i
  echo "$pid" > "$D/$1.pid"
  # $! is a forked shell until it execs CMD, and `ours` knows our daemons
  # by their command line: wait for the exec (or the exit), or a check right
  # after spawning says "exited" of a daemon that is starting (this made
  # CI fail now and then with "rgw.sh: radosgw exited").
  for ((i = 0; i < 200; i++)); do
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$D/ceph.conf" && return 0
    alive "$pid" || return 0
    sleep 0.01
  done
}

start_rgw_daemon() {
  spawn rgw radosgw -c "$D/ceph.conf" -n client.rgw -f
}

# Waits until a signed request to the bucket succeeds (HEAD -> 200).
wait_rgw() {
  local code
  while :; do
    ours rgw >/dev/null || fail "radosgw exited"
    code=$(signed -I "http://127.0.0.1:$RGW_PORT/$BUCKET")
    [ "$code" = 200 ] && return 0
    [ "$SECONDS" -lt "$deadline" ] || fail "radosgw not serving on 127.0.0.1:$RGW_PORT after ${TIMEOUT}s (last HTTP $code)"
    sleep 0.1
  done
}

start_all() {
  if ours mon >/dev/null || ours osd >/dev/null || ours rgw >/dev/null; then
    die "$D already has a running cluster (rgw.sh stop $D first)"
  fi
  deadline=$((SECONDS + TIMEOUT))
  rm -rf "$D/mon.a" "$D/osd.0" "$D/client.rgw" "$D/run" "$D/log" "$D/crash" "$D"/*.pid \
    "$D/env" "$D/monmap" "$D/ceph.conf" "$D/keyring"
  mkdir -p "$D/run" "$D/log" "$D/crash" "$D/mon.a" "$D/osd.0" "$D/client.rgw"
  : > "$D/keyring"
  FSID=$(python3 -c 'import uuid; print(uuid.uuid4())')
  OSD_UUID=$(python3 -c 'import uuid; print(uuid.uuid4())')
  MON_PORT=$(free_port)
  RGW_PORT=$(free_port)
  while [ "$RGW_PORT" = "$MON_PORT" ]; do RGW_PORT=$(free_port); done
  ACCESS_KEY=$(randstr 20 'A-Z0-9')
  SECRET_KEY=$(randstr 40 'A-Za-z0-9')
  write_conf

  # mon
  monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$D/monmap" \
    >"$D/log/mkfs.out" 2>&1 || fail "monmaptool failed"
  ceph-mon -c "$D/ceph.conf" -i a --mkfs --monmap "$D/monmap" >>"$D/log/mkfs.out" 2>&1 \
    || fail "ceph-mon --mkfs failed"
  spawn mon ceph-mon -c "$D/ceph.conf" -i a -f

  # osd: id from the mon, memstore mkfs, then the daemon (it puts itself in
  # the crush map under host=<hostname>, root=default on start).
  local id
  id=$(ceph_ osd new "$OSD_UUID" 2>>"$D/log/mkfs.out") || fail "ceph osd new failed"
  [ "$id" = 0 ] || fail "unexpected osd id '$id'"
  ceph-osd -c "$D/ceph.conf" -i 0 --mkfs --osd-uuid "$OSD_UUID" >>"$D/log/mkfs.out" 2>&1 \
    || fail "ceph-osd --mkfs failed"
  spawn osd ceph-osd -c "$D/ceph.conf" -i 0 -f

  # S3 user: radosgw-admin creates the rgw pools and default zone on first
  # use (it blocks until the osd is up); doing it before radosgw starts means
  # radosgw never races it and never caches a missing user.
  timeout "$(left)" radosgw-admin -c "$D/ceph.conf" user create --uid=weightdrop \
    --display-name=weightdrop --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" \
    >"$D/log/user-create.out" 2>&1 || fail "radosgw-admin user create failed"

  start_rgw_daemon
  local code
  while :; do
    ours rgw >/dev/null || fail "radosgw exited"
    code=$(signed -X PUT "http://127.0.0.1:$RGW_PORT/$BUCKET")
    [ "$code" = 200 ] && break
    [ "$SECONDS" -lt "$deadline" ] || fail "bucket PUT on 127.0.0.1:$RGW_PORT not 200 after ${TIMEOUT}s (last HTTP $code)"
    sleep 0.1
  done
  # The data path too (osd writes), then leave the bucket empty.
  code=$(signed -X PUT --data-binary ready "http://127.0.0.1:$RGW_PORT/$BUCKET/.rgw-ready")
  [ "$code" = 200 ] || fail "object PUT returned HTTP $code"
  code=$(signed -X DELETE "http://127.0.0.1:$RGW_PORT/$BUCKET/.rgw-ready")
  [ "$code" = 204 ] || fail "object DELETE returned HTTP $code"
  write_env
  echo "$D/env"
}

# TERM, then KILL whatever is left after 5 s; only our own pids.
stop_pids() {
  local names=("$@") n pid pids=() i
  for n in "${names[@]}"; do
    pid=$(ours "$n") && { kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); }
  done
  for ((i = 0; i < 50; i++)); do
    local up=0
    for pid in "${pids[@]}"; do alive "$pid" && up=1; done
    [ "$up" = 0 ] && break
    sleep 0.1
  done
  for n in "${names[@]}"; do
    pid=$(ours "$n") && { echo "rgw.sh: $n ($pid) ignored TERM, KILL" >&2; kill -KILL "$pid" 2>/dev/null || true; }
    rm -f "$D/$n.pid"
  done
  # Reap: wait until the KILLed ones are gone (they are not our children).
  for ((i = 0; i < 50; i++)); do
    local up=0
    for pid in "${pids[@]}"; do alive "$pid" && up=1; done
    [ "$up" = 0 ] && break
    sleep 0.1
  done
}

stop_all() {
  # radosgw first (it is the mon/osd client), then osd, then mon. The
  # memstore osd is KILLed outright: its data is throwaway and on TERM it
  # would first write the whole store into DIR/osd.0 (gigabytes after a
  # benchmark).
  stop_pids rgw
  local pid
  if pid=$(ours osd); then kill -KILL "$pid" 2>/dev/null || true; fi
  stop_pids osd mon
  if [ -f "$D/env" ]; then load_env; write_env; fi
}

kill_rgw() {
  local pid i
  if pid=$(ours rgw); then
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.02; done
  fi
  rm -f "$D/rgw.pid"
  write_env
}

start_rgw() {
  ours rgw >/dev/null && die "radosgw already running (pid $(ours rgw))"
  if ! ours mon >/dev/null || ! ours osd >/dev/null; then die "mon/osd not running in $D"; fi
  deadline=$((SECONDS + TIMEOUT))
  start_rgw_daemon
  wait_rgw
  write_env
}

cmd=${1:-}
case "$cmd" in
  available) available; exit $? ;;
  start|stop|restart-rgw|kill-rgw|start-rgw|rclone-env) ;;
  *) usage ;;
esac
[ $# -eq 2 ] || usage
available || exit 1
mkdir -p "$2"
D=$(cd "$2" && pwd)
# Unix socket paths (admin sockets under DIR/run) are limited to 107 bytes.
[ "${#D}" -le 60 ] || die "DIR path too long for ceph admin sockets: $D"
export CEPH_CONF="$D/ceph.conf"
deadline=$((SECONDS + TIMEOUT))

case "$cmd" in
  start) start_all ;;
  stop) stop_all ;;
  kill-rgw) load_env; kill_rgw ;;
  start-rgw) load_env; start_rgw ;;
  restart-rgw) load_env; kill_rgw; start_rgw ;;
  rclone-env)
    load_env
    # rclone's AWS SDK fails every request ("LoadCustomCABundleError ...
    # unsupported transport") when AWS_CA_BUNDLE is set, as it is on some CI
    # machines; the endpoint is plain http, so no CA is needed.
    cat <<EOF
unset AWS_CA_BUNDLE
export RCLONE_CONFIG_RGW_TYPE=s3
export RCLONE_CONFIG_RGW_PROVIDER=Ceph
export RCLONE_CONFIG_RGW_ENDPOINT=$AWS_ENDPOINT_URL
export RCLONE_CONFIG_RGW_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export RCLONE_CONFIG_RGW_REGION=$AWS_REGION
export RCLONE_CONFIG_RGW_FORCE_PATH_STYLE=true
EOF
    ;;
esac
