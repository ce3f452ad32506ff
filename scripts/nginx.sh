#!/usr/bin/env bash
# Debian's nginx (/usr/sbin/nginx) on 127.0.0.1 serving a weightdrop serve
# folder with the shipped docs/nginx.conf, for tests. Everything nginx
# writes (its nginx.conf, pid file, logs, temp folders) is under DIR;
# /etc/nginx and /var/log/nginx are never used. It runs as the current user.
#
#   scripts/nginx.sh available                   exit 0 if nginx is installed
#   scripts/nginx.sh start DIR SERVE_ROOT [PORT] start it; print DIR/env's path
#   scripts/nginx.sh stop DIR                    stop the pid start recorded,
#                                                wait until it has exited
#
# start writes DIR/nginx.conf (events, http, pid, logs, temp paths) whose
# http block includes DIR/weightdrop.conf: docs/nginx.conf with exactly two
# lines changed, `root` to SERVE_ROOT and `listen 80;` to 127.0.0.1:PORT, so
# what is tested is the shipped file. Without PORT a free port is picked
# (retried if another process takes it first). start fails, printing the
# error log, if nginx does not come up within NGINX_START_TIMEOUT s (30).
#
# DIR/env holds KEY=VALUE lines, for `set -a; . DIR/env; set +a`:
#   NGINX_URL=http://127.0.0.1:PORT   (no trailing slash)
#   NGINX_PORT=PORT
#   NGINX_PID=PID                     the master process
#   NGINX_ROOT=SERVE_ROOT             absolute
#   NGINX_CONF=DIR/nginx.conf
# Logs: DIR/error.log, DIR/access.log.
set -euo pipefail

NGINX=/usr/sbin/nginx
REPO=$(cd "$(dirname "$0")/.." && pwd)
SHIPPED=$REPO/docs/nginx.conf
TIMEOUT=${NGINX_START_TIMEOUT:-30}

die() { echo "nginx.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }

available() {
  [ -x "$NGINX" ] || { echo "nginx.sh: no $NGINX (apt-get install nginx)" >&2; return 1; }
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Running (a zombie is not: nginx daemonizes, so its master is reparented
# to pid 1, which may take a moment to reap it).
alive() {
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# The pid start recorded in DIR/pid, only if that process is still ours:
# its command line names DIR/nginx.conf (pid reuse must never make us kill
# a stranger).
ours() {
  local pid
  [ -f "$D/pid" ] || return 1
  pid=$(cat "$D/pid")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  alive "$pid" || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$D/nginx.conf" || return 1
  echo "$pid"
}

# The master's children (the worker processes).
children() {
  local f
  for f in /proc/[0-9]*/stat; do
    awk -v p="$1" '$4 == p {print $1}' "$f" 2>/dev/null || true
  done
}

# docs/nginx.conf with `root` and `listen` set; fails unless each of the two
# lines occurs exactly once, so the shipped file cannot drift from the test.
write_site() {
  local port=$1 n
  for n in '^    root /srv/weightdrop/serve;$' '^    listen 80;$'; do
    [ "$(grep -c -- "$n" "$SHIPPED")" = 1 ] || die "$SHIPPED: expected exactly one line /$n/"
  done
  sed -e "s|^    root /srv/weightdrop/serve;\$|    root \"$ROOT\";|" \
      -e "s|^    listen 80;\$|    listen 127.0.0.1:$port;|" "$SHIPPED" > "$D/weightdrop.conf"
}

write_main() {
  local user=""
  # As root nginx would switch its workers to `nobody`; keep them ours.
  [ "$(id -u)" -eq 0 ] && user="user $(id -un) $(id -gn);"
  local mime=""
  [ -f /etc/nginx/mime.types ] && mime="include /etc/nginx/mime.types;"
  cat > "$D/nginx.conf" <<EOF
# Written by scripts/nginx.sh start; the http settings are those of Debian's
# /etc/nginx/nginx.conf that matter to a static site.
$user
worker_processes 1;
pid "$D/nginx.pid";
lock_file "$D/nginx.lock";
error_log "$D/error.log" notice;
events {
    worker_connections 1024;
}
http {
    $mime
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    access_log "$D/access.log";
    client_body_temp_path "$D/temp/body";
    proxy_temp_path "$D/temp/proxy";
    fastcgi_temp_path "$D/temp/fastcgi";
    uwsgi_temp_path "$D/temp/uwsgi";
    scgi_temp_path "$D/temp/scgi";
    include "$D/weightdrop.conf";
}
EOF
}

write_env() {
  cat > "$D/env.tmp" <<EOF
NGINX_URL=http://127.0.0.1:$PORT
NGINX_PORT=$PORT
NGINX_PID=$PID
NGINX_ROOT=$ROOT
NGINX_CONF=$D/nginx.conf
EOF
  mv "$D/env.tmp" "$D/env"
}

# One attempt on PORT: 0 when up, 1 when nginx could not start, 3 when the
# port was taken (worth another try with another port).
try_start() {
  write_site "$PORT"
  : > "$D/start.out"
  rm -f "$D/nginx.pid"
  if ! "$NGINX" -p "$D" -e "$D/error.log" -c "$D/nginx.conf" >>"$D/start.out" 2>&1; then
    grep -q 'Address already in use' "$D/start.out" "$D/error.log" 2>/dev/null && return 3
    return 1
  fi
  # nginx has bound the port before it forks; the pid file follows.
  while [ ! -s "$D/nginx.pid" ]; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "nginx.sh: no $D/nginx.pid after ${TIMEOUT}s" >> "$D/start.out"; return 1; }
    sleep 0.05
  done
  PID=$(cat "$D/nginx.pid")
  echo "$PID" > "$D/pid"
  ours >/dev/null || { echo "nginx.sh: nginx (pid $PID) exited at start" >> "$D/start.out"; return 1; }
  while ! (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "nginx.sh: 127.0.0.1:$PORT not accepting after ${TIMEOUT}s" >> "$D/start.out"; return 1; }
    ours >/dev/null || { echo "nginx.sh: nginx (pid $PID) exited at start" >> "$D/start.out"; return 1; }
    sleep 0.05
  done
}

start() {
  local serve=$1 port=${2:-} tries rc
  [ -d "$serve" ] || die "serve root $serve is not a folder"
  ROOT=$(cd "$serve" && pwd)
  [[ "$D$ROOT" != *[\"\;\|\$\\]* ]] || die "DIR and SERVE_ROOT must not contain \" ; | \$ or \\"
  [ -f "$SHIPPED" ] || die "no $SHIPPED"
  ! ours >/dev/null || die "$D already has a running nginx (pid $(cat "$D/pid")): nginx.sh stop $D first"
  rm -f "$D/env" "$D/pid" "$D/error.log" "$D/access.log"
  mkdir -p "$D/temp"
  write_main
  deadline=$((SECONDS + TIMEOUT))
  tries=1
  [ -n "$port" ] || tries=5
  while :; do
    PORT=${port:-$(free_port)}
    rc=0
    try_start || rc=$?
    [ "$rc" = 0 ] && break
    if [ "$rc" = 3 ] && [ "$tries" -gt 1 ]; then
      tries=$((tries - 1))
      continue
    fi
    stop >/dev/null 2>&1 || true
    echo "nginx.sh: nginx did not start on 127.0.0.1:$PORT (config $D/nginx.conf):" >&2
    cat "$D/start.out" >&2
    [ -s "$D/error.log" ] && tail -n 20 "$D/error.log" >&2
    exit 1
  done
  write_env
  echo "$D/env"
}

# TERM (fast shutdown), then KILL after 30 s; waits until gone.
stop() {
  local pid kids i
  pid=$(ours) || { rm -f "$D/pid"; return 0; }
  kids=$(children "$pid")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    echo "nginx.sh: nginx ($pid) still running 30 s after TERM, KILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # Workers exit with their master; a KILLed master leaves them behind.
  for i in $kids; do
    if alive "$i" && tr '\0' ' ' < "/proc/$i/cmdline" 2>/dev/null | grep -q '^nginx: worker'; then
      kill -KILL "$i" 2>/dev/null || true
    fi
  done
  for ((i = 0; i < 100; i++)); do
    local up=0 k
    for k in "$pid" $kids; do alive "$k" && up=1; done
    [ "$up" = 0 ] && break
    sleep 0.1
  done
  rm -f "$D/pid"
}

cmd=${1:-}
case "$cmd" in
  available) available; exit $? ;;
  start) [ $# -eq 3 ] || [ $# -eq 4 ] || usage ;;
  stop) [ $# -eq 2 ] || usage ;;
  *) usage ;;
esac
available || exit 1
mkdir -p "$2"
D=$(cd "$2" && pwd)
case "$cmd" in
  start) start "$3" "${4:-}" ;;
  stop) stop ;;
esac
