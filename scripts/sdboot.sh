#!/usr/bin/env bash
# A real systemd boot, as PID 1 of its own namespaces, on a host where no
# systemd runs (a CI container or VM, as root): for tests that need
# `systemctl`, the journal, Type=notify, the watchdog and the unit's sandbox
# for real. Nothing of the host changes: the booted system sees the host's
# file system through an overlay whose upper layer is a tmpfs, so whatever
# it installs or writes is gone once it stops.
#
#   scripts/sdboot.sh available        exit 0 if it can work here, else print why
#   scripts/sdboot.sh boot DIR         boot in the background; wait until
#                                      `systemctl is-system-running` says
#                                      running or degraded
#   scripts/sdboot.sh run DIR CMD...   run CMD inside (as root, cwd /), with
#                                      its exit status
#   scripts/sdboot.sh stop DIR         power off, kill what is left, clean up
#   scripts/sdboot.sh journal DIR      print the boot's journal
#
# DIR is a folder of the host (created if missing) that holds the boot's
# state: pid (host pid of its PID 1, then its start time), unshare.pid,
# cgroup (the host cgroup it runs in), console.log (what PID 1 printed
# before its journal ran). DIR is also bind-mounted at the same path inside,
# so files put there are seen on both sides. boot and stop may be repeated:
# boot of a running DIR only waits for it, stop of a stopped DIR only
# cleans up.
#
# How (util-linux unshare, nsenter, setpriv; systemd 252 on Debian 12):
# `unshare --pid --fork --mount --net --uts --ipc --cgroup` runs this script
# as the namespaces' PID 1 (`_init`), inside a cgroup of its own made below
# the host's cgroup2 hierarchy. It mounts a tmpfs, an overlay of / on it,
# fresh /proc (/proc/sys read-only), read-only /sys, cgroup2 (the cgroup
# namespace's view) on /sys/fs/cgroup, a minimal /dev, private /run and
# /tmp; brings up lo; masks the units that touch kernel-wide state (sysctl,
# binfmt, udev, modules, clock, random seed, pstore, ...); pivot_roots and
# execs /lib/systemd/systemd --unit=sdboot.target (sysinit.target and
# nothing else) with `container=sdboot` in its environment and, through
# setpriv, without the capabilities that reach the host kernel (modules,
# raw I/O, clock, syslog, boot, audit, MAC). The journal is volatile
# (/run/log/journal); a /usr/sbin/policy-rc.d (Docker images forbid service
# starts with one) is hidden, so package scripts start and stop services as
# on a real machine. `run` enters every namespace of PID 1 with nsenter;
# stop runs `systemctl poweroff` inside (in a container systemd exits
# instead of rebooting), waits, and SIGKILLs the namespaces' PID 1 by pid
# if it is still there, which ends every process inside; all mounts lived
# in the boot's mount namespace and go with it.
#
# Environment: SDBOOT_TIMEOUT (s to reach running/degraded, default 120),
# SDBOOT_STOP_TIMEOUT (s for poweroff before SIGKILL, default 30),
# SDBOOT_TMPFS_SIZE (size of the overlay's upper layer, default 4G).
set -euo pipefail

SELF=$(readlink -f "$0")
TIMEOUT=${SDBOOT_TIMEOUT:-120}
STOP_TIMEOUT=${SDBOOT_STOP_TIMEOUT:-30}
TMPFS_SIZE=${SDBOOT_TMPFS_SIZE:-4G}
SYSTEMD=/lib/systemd/systemd
# Capabilities PID 1 (and so everything inside) loses: those that act on
# the host's kernel rather than on the namespaces.
DROP_CAPS=-sys_module,-sys_rawio,-sys_time,-wake_alarm,-syslog,-sys_boot,-sys_pacct,-block_suspend,-audit_control,-audit_read,-mac_admin,-mac_override,-perfmon
# Units of sysinit.target (and what they pull in) that change kernel-wide
# state or need hardware; masked in the overlay before systemd starts.
MASK=(
  systemd-sysctl.service systemd-binfmt.service proc-sys-fs-binfmt_misc.automount
  proc-sys-fs-binfmt_misc.mount systemd-modules-load.service kmod-static-nodes.service
  systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket
  systemd-udev-trigger.service systemd-udev-settle.service systemd-hwdb-update.service
  systemd-timesyncd.service systemd-random-seed.service systemd-pstore.service
  systemd-firstboot.service systemd-machine-id-commit.service systemd-repart.service
  systemd-pcrphase.service systemd-pcrphase-sysinit.service systemd-remount-fs.service
  systemd-fsck-root.service systemd-journald-audit.socket ldconfig.service
  systemd-ask-password-console.path systemd-boot-system-token.service
  dev-hugepages.mount sys-fs-fuse-connections.mount sys-kernel-config.mount
  sys-kernel-debug.mount sys-kernel-tracing.mount
)
INSIDE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "sdboot.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }

# --- host side ----------------------------------------------------------------

# Where a boot's cgroup goes: below this process's own cgroup in the host's
# cgroup2 mount (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid host).
cgroup_parent() {
  local mnt cur
  mnt=$(findmnt -n -t cgroup2 -o TARGET | head -n1)
  [ -n "$mnt" ] || return 0
  cur=$(sed -n 's/^0:://p' /proc/self/cgroup)
  echo "$mnt${cur%/}"
}

available() {
  local b
  [ "$(id -u)" -eq 0 ] || { echo "sdboot.sh: needs root"; return 1; }
  for b in unshare nsenter setpriv findmnt pivot_root ip mount umount; do
    command -v "$b" >/dev/null 2>&1 || { echo "sdboot.sh: $b is not installed"; return 1; }
  done
  [ -x "$SYSTEMD" ] || { echo "sdboot.sh: no $SYSTEMD (apt-get install systemd)"; return 1; }
  if [ -d /run/systemd/system ]; then
    echo "sdboot.sh: systemd already runs this machine; use it (or a VM) instead"
    return 1
  fi
  local cg
  cg=$(cgroup_parent)
  [ -n "$cg" ] || { echo "sdboot.sh: no cgroup2 hierarchy mounted on the host"; return 1; }
  if ! mkdir "$cg/sdboot-probe.$$" 2>/dev/null; then
    echo "sdboot.sh: cannot make a cgroup below $cg (read-only cgroup2?)"; return 1
  fi
  rmdir "$cg/sdboot-probe.$$"
  # The namespaces and mounts boot needs, tried in a throwaway mount
  # namespace (nothing of it outlives the command).
  local out
  if ! out=$(unshare --pid --fork --mount --net --uts --ipc --cgroup --propagation private \
      bash -c 'set -e; t=/run; [ -d /run ] || t=/tmp
               mount -t tmpfs sdboot-probe "$t"; mkdir "$t/u" "$t/w" "$t/r" "$t/cg"
               mount -t overlay -o "lowerdir=/,upperdir=$t/u,workdir=$t/w" sdboot-probe "$t/r"
               mount -t proc proc "$t/r/proc"; mount -t cgroup2 cgroup2 "$t/cg"
               touch "$t/r/etc/sdboot-probe"; ip link set lo up; hostname sdboot-probe' 2>&1); then
    echo "sdboot.sh: namespaces, overlayfs or cgroup2 do not work here: $out"
    return 1
  fi
  return 0
}

# pid_alive PID START: the process PID exists and started at START (so a
# reused pid is never taken for it).
pid_alive() {
  [ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
  [ "$(proc_start "$1")" = "$2" ]
}
proc_start() { sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }

# Sets PID and PID_START from DIR/pid; empty when there is none.
read_pid() {
  PID="" PID_START=""
  if [ -f "$1/pid" ]; then read -r PID PID_START < "$1/pid" || true; fi
}

inside() {  # inside DIR CMD...: what `run` does, without the checks
  local dir=$1; shift
  read_pid "$dir"
  nsenter -t "$PID" -a -r -w \
    env -i PATH="$INSIDE_PATH" HOME=/root LANG=C.UTF-8 TERM=dumb SYSTEMD_PAGER= \
    setpriv --bounding-set="$DROP_CAPS" "$@"
}

print_failure() {  # what went wrong, for boot's error
  local dir=$1
  echo "--- console of PID 1 (last 60 lines) ---" >&2
  tail -n 60 "$dir/console.log" >&2 2>/dev/null || true
  read_pid "$dir"
  if pid_alive "$PID" "$PID_START"; then
    echo "--- systemctl --failed ---" >&2
    timeout 20 "$SELF" run "$dir" systemctl --failed --no-pager >&2 || true
    echo "--- systemctl list-jobs ---" >&2
    timeout 20 "$SELF" run "$dir" systemctl list-jobs --no-pager >&2 || true
    echo "--- journal (last 150 lines) ---" >&2
    timeout 20 "$SELF" run "$dir" journalctl -b --no-pager -n 150 >&2 || true
  fi
}

boot() {
  local dir=$1
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  read_pid "$dir"
  if ! pid_alive "$PID" "$PID_START"; then
    cleanup "$dir"
    local cg
    cg=$(cgroup_parent)
    [ -n "$cg" ] || die "no cgroup2 hierarchy mounted on the host"
    cg="$cg/sdboot.$(basename "$dir").$$"
    mkdir "$cg" || die "cannot make the cgroup $cg"
    echo "$cg" > "$dir/cgroup"
    mkdir -p "$dir/mnt"
    : > "$dir/console.log"
    # The cgroup namespace's root is the cgroup the unshare runs in.
    setsid bash -c 'echo $$ > "$1/unshare.pid"; echo $$ > "$2/cgroup.procs"
                    exec unshare --pid --fork --mount --net --uts --ipc --cgroup \
                      --propagation private "$3" _init "$1"' \
      sdboot "$dir" "$cg" "$SELF" < /dev/null >> "$dir/console.log" 2>&1 &
    local upid="" child=""
    for _ in $(seq 100); do
      if [ -s "$dir/unshare.pid" ]; then upid=$(cat "$dir/unshare.pid"); fi
      if [ -n "$upid" ]; then
        child=$(awk '{print $1}' "/proc/$upid/task/$upid/children" 2>/dev/null) || true
      fi
      if [ -n "$child" ]; then break; fi
      sleep 0.1
    done
    if [ -z "$child" ]; then
      print_failure "$dir"; cleanup "$dir"
      die "the namespaces' PID 1 did not start, or exited at once (console above)"
    fi
    echo "$child $(proc_start "$child")" > "$dir/pid"
    read_pid "$dir"
  fi
  local deadline=$((SECONDS + TIMEOUT)) state=""
  while :; do
    if ! pid_alive "$PID" "$PID_START"; then
      print_failure "$dir"; cleanup "$dir"
      die "PID 1 exited during boot (console above)"
    fi
    # `systemctl` answers only once PID 1 listens on /run/systemd/private.
    state=$(timeout 10 "$SELF" run "$dir" systemctl is-system-running 2>/dev/null) || true
    case "$state" in
      running|degraded) echo "sdboot.sh: booted ($state), PID 1 is host pid $PID"; return 0 ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ]; then
      print_failure "$dir"
      die "not running after ${TIMEOUT}s (is-system-running: '${state:-no answer}'); 'sdboot.sh stop $dir' cleans up"
    fi
    sleep 0.5
  done
}

run() {
  local dir=$1; shift
  [ $# -gt 0 ] || die "run: no command"
  read_pid "$dir"
  pid_alive "$PID" "$PID_START" || die "run: nothing booted in $dir"
  inside "$dir" "$@"
}

stop() {
  local dir=$1
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  read_pid "$dir"
  if pid_alive "$PID" "$PID_START"; then
    timeout 10 "$SELF" run "$dir" systemctl poweroff --no-block >/dev/null 2>&1 || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while pid_alive "$PID" "$PID_START" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    if pid_alive "$PID" "$PID_START"; then
      echo "sdboot.sh: still up ${STOP_TIMEOUT}s after poweroff: SIGKILL to PID 1 (host pid $PID)" >&2
      kill -KILL "$PID" 2>/dev/null || true
    fi
  fi
  cleanup "$dir"
}

# Everything boot left behind once PID 1 is gone: the unshare parent, the
# cgroup, the state files. Kills only processes of this boot.
cleanup() {
  local dir=$1 upid="" cg=""
  read_pid "$dir"
  if pid_alive "$PID" "$PID_START"; then kill -KILL "$PID" 2>/dev/null || true; fi
  for _ in $(seq 100); do pid_alive "$PID" "$PID_START" || break; sleep 0.1; done
  if [ -f "$dir/unshare.pid" ]; then upid=$(cat "$dir/unshare.pid"); fi
  # unshare exits as soon as its child (PID 1) has; only wait for it.
  if [ -n "$upid" ]; then
    for _ in $(seq 50); do
      [ "$(cat "/proc/$upid/comm" 2>/dev/null)" = unshare ] || break
      sleep 0.1
    done
  fi
  if [ -f "$dir/cgroup" ]; then cg=$(cat "$dir/cgroup"); fi
  if [ -n "$cg" ] && [ -d "$cg" ]; then
    # The pid namespace's end has killed everything inside; a process that
    # entered by nsenter is in the caller's cgroup, never in this one.
    if [ -n "$(cat "$cg/cgroup.procs" 2>/dev/null)" ] && [ -w "$cg/cgroup.kill" ]; then
      echo 1 > "$cg/cgroup.kill" || true
    fi
    for _ in $(seq 50); do
      find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [ -d "$cg" ] || break
      sleep 0.1
    done
    [ ! -d "$cg" ] || echo "sdboot.sh: cannot remove cgroup $cg" >&2
  fi
  rm -f "$dir/pid" "$dir/unshare.pid" "$dir/cgroup"
  rmdir "$dir/mnt" 2>/dev/null || true
}

# --- inside: PID 1 of the new namespaces, until it execs systemd ---------------

init() {
  local dir=$1 base r n
  base=$dir/mnt
  r=$base/root
  mount -t tmpfs -o "mode=755,size=$TMPFS_SIZE" sdboot "$base"
  mkdir "$base/upper" "$base/work" "$r"
  mount -t overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" sdboot-root "$r"

  mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
  for n in sys sysrq-trigger; do
    [ -e "$r/proc/$n" ] || continue
    mount --bind "$r/proc/$n" "$r/proc/$n"
    mount -o remount,bind,ro,nosuid,nodev,noexec "$r/proc/$n"
  done
  mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
  mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$r/sys/fs/cgroup"

  mount -t tmpfs -o mode=755,nosuid,size=1M sdboot-dev "$r/dev"
  for n in null zero full random urandom tty; do
    touch "$r/dev/$n"
    mount --bind "/dev/$n" "$r/dev/$n"
  done
  mkdir "$r/dev/pts" "$r/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts "$r/dev/pts"
  ln -s pts/ptmx "$r/dev/ptmx"
  mount -t tmpfs -o mode=1777,nosuid,nodev shm "$r/dev/shm"
  ln -s /proc/self/fd "$r/dev/fd"
  ln -s /proc/self/fd/0 "$r/dev/stdin"
  ln -s /proc/self/fd/1 "$r/dev/stdout"
  ln -s /proc/self/fd/2 "$r/dev/stderr"
  touch "$r/dev/console"
  mount --bind "$dir/console.log" "$r/dev/console"

  mount -t tmpfs -o mode=755,nosuid,nodev sdboot-run "$r/run"
  mount -t tmpfs -o mode=1777,nosuid,nodev sdboot-tmp "$r/tmp"
  mkdir -p "$r$dir"
  mount --bind "$dir" "$r$dir"

  local etc=$r/etc/systemd/system
  mkdir -p "$etc"
  for n in "${MASK[@]}"; do ln -sf /dev/null "$etc/$n"; done
  cat > "$etc/sdboot.target" <<'EOF'
[Unit]
Description=sdboot: sysinit and nothing else
Requires=sysinit.target
After=sysinit.target
AllowIsolate=yes
EOF
  # A container image's "never start services" policy (Docker images ship
  # one that exits 101) would keep deb-systemd-invoke from starting and
  # stopping services in package scripts; a booted system has none.
  rm -f "$r/usr/sbin/policy-rc.d"
  mkdir -p "$r/etc/systemd/journald.conf.d"
  printf '[Journal]\nStorage=volatile\n' > "$r/etc/systemd/journald.conf.d/sdboot.conf"

  hostname sdboot
  ip link set lo up

  cd "$r"
  mkdir -p .sdboot-old
  pivot_root . .sdboot-old
  cd /
  umount -l /.sdboot-old
  rmdir /.sdboot-old
  exec env -i container=sdboot PATH="$INSIDE_PATH" LANG=C.UTF-8 TERM=dumb \
    setpriv --bounding-set="$DROP_CAPS" "$SYSTEMD" --unit=sdboot.target
}

case "${1:-}" in
  available) [ $# -eq 1 ] || usage; available ;;
  boot) [ $# -eq 2 ] || usage; boot "$2" ;;
  run) [ $# -ge 3 ] || usage; run "$2" "${@:3}" ;;
  stop) [ $# -eq 2 ] || usage; stop "$2" ;;
  journal) [ $# -eq 2 ] || usage; run "$2" journalctl -b --no-pager ;;
  _init) init "$2" ;;
  *) usage ;;
esac
