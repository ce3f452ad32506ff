#!/usr/bin/env bash
# The weightdrop Debian package under a real systemd: boots one with
# scripts/sdboot.sh (PID 1 of its own namespaces, over a throwaway overlay
# of this machine), installs the package into it and checks what
# docs/operations.md promises, as numbered checks printing PASS or FAIL:
#
#   tests/integration/systemd_boot_test.sh build-deb/weightdrop_<version>_amd64.deb
#   tests/integration/systemd_boot_test.sh --from-build build   (no .deb: the binary,
#       unit and systemd files of a build tree, placed where the package puts them;
#       the package's remove and purge are then skipped)
#
# The booted system has no network but lo (and a veth pair the hook check
# adds): the package's dependencies must already be installed on this
# machine, which the overlay shows. Exit 0 when every check passes, 1 when
# one fails (the unit's journal is printed), 77 when systemd cannot be
# booted here (`scripts/sdboot.sh available` says why). Needs root.
# Takes ~2 minutes (105 s on a 2-core box), most of it the watchdog check:
# a minute of publishing that must not trip WatchdogSec=30s, then a
# SIGSTOPped daemon that must. Peak RAM ~2.5 GiB (the 1 GiB bundle of the
# stop check, twice, in the overlay's tmpfs).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sdboot=$root/scripts/sdboot.sh

deb="" build=""
case "${1:-}" in
  --from-build) build=$(cd "${2:?--from-build BUILD_DIR}" && pwd) ;;
  "" | -*) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  *) deb=$(readlink -f "$1"); [ -f "$deb" ] || { echo "no such .deb: $1" >&2; exit 2; } ;;
esac

if ! why=$("$sdboot" available 2>&1); then
  echo "SKIP: cannot boot systemd here: $why"
  exit 77
fi

dir=$(mktemp -d /tmp/wd-sdboot.XXXXXX)
chmod 755 "$dir"   # the test users inside read the helpers from here
cp "$here/systemd_boot/make_bundle.py" "$here/systemd_boot/hook_server.py" "$dir/"
fails=0
cleanup() {
  if [ "$fails" -gt 0 ] && [ -f "$dir/pid" ]; then
    echo "--- journalctl -u weightdrop (last 300 lines) ---"
    "$sdboot" run "$dir" journalctl -u weightdrop -u wd-hook-server --no-pager -n 300 -o short-monotonic
  fi
  "$sdboot" stop "$dir" >/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers --------------------------------------------------------------------

sd() { "$sdboot" run "$dir" "$@"; }                     # a command inside, as root
as() {                                                  # as USER CMD...: as that user
  local u=$1; shift
  sd setpriv --reuid="$u" --regid="$u" --init-groups --reset-env "$@"
}
prop() { sd systemctl show -p "$1" --value weightdrop; }
# Waits up to $1 s for the rest of the line to succeed.
wait_until() {
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.3
  done
}
published() { sd test -L "/srv/weightdrop/serve/$1/current"; }
drop() {  # drop USER WATCH NAME [KIND [MIB]]: bundle written by USER, renamed in
  as "$1" /usr/bin/python3 "$dir/make_bundle.py" "/srv/weightdrop/drop/$2/$3" "${4:-small}" ${5:+"$5"}
}
# A point in the journal: now, as journalctl --since takes it. (Not a
# cursor: journalctl 252 prints nothing for --after-cursor with -p.)
mark() { date +@%s.%6N; }
since() {  # since MARK [journalctl args]: the unit's journal from MARK on
  local m=$1; shift
  sd journalctl -u weightdrop --no-pager -o cat --since="$m" "$@"
}
has_since() { has "$(since "$1")" "$2"; }             # has_since MARK REGEX
# The config as installed, plus: --hook URL (on_publish curls URL/{model}/{version}
# in the watch "models", and on_failure prints an alert line as
# config/weightdrop.yaml shows), --vision (a second watch), --bogus (an
# unknown key).
config() {
  cp "$dir/orig.yaml" "$dir/cfg.yaml"
  while [ $# -gt 0 ]; do
    case "$1" in
      --hook) printf '    hooks:\n      on_publish: ["/usr/bin/curl", "-fsS", "-m", "5", "%s/{model}/{version}"]\n' \
                "$2" >> "$dir/cfg.yaml"
              printf '      on_failure: ["/bin/echo", "ALERT: bundle {bundle} failed: {error}"]\n' \
                >> "$dir/cfg.yaml"; shift ;;
      --vision) printf '  - drop: /srv/weightdrop/drop/vision\n    serve: /srv/weightdrop/serve\n    model: "{drop}-{stem}"\n' \
                  >> "$dir/cfg.yaml" ;;
      --bogus) printf 'bogus_key: 1\n' >> "$dir/cfg.yaml" ;;
    esac
    shift
  done
  sd cp "$dir/cfg.yaml" /etc/weightdrop/weightdrop.yaml   # keeps the conffile's owner and mode
}

# One numbered check: begin NAME, then expect lines, then end.
n=0 name="" check_fails=0 t0=0 results=()
begin() { n=$((n + 1)) name=$1 check_fails=0 t0=$SECONDS; echo "[$n] $name"; }
expect() {  # expect WHAT CMD...: CMD must succeed
  local what=$1; shift
  if "$@" >/dev/null 2>&1; then echo "    ok   $what"; else echo "    FAIL $what"; check_fails=$((check_fails + 1)); fi
}
note() { echo "    --   $*"; }
end() {
  local verdict=PASS
  [ "$check_fails" -eq 0 ] || { verdict=FAIL; fails=$((fails + 1)); }
  echo "[$n] $name: $verdict ($((SECONDS - t0)) s)"
  results+=("[$n] $name: $verdict")
}
skip() { echo "[$n] $name: SKIP ($*)"; results+=("[$n] $name: SKIP"); }
eq() { [ "$1" = "$2" ]; }
not() { ! "$@"; }
is_active() { eq "$(prop ActiveState)" active; }
has() { grep -Eq -- "$2" <<<"$1"; }                     # has TEXT REGEX
lacks() { ! grep -Eq -- "$2" <<<"$1"; }
has_cmd() { has "$("$1")" "$2"; }                      # has_cmd FUNCTION REGEX
# Line numbers of the first line matching each regex must increase.
in_order() {
  local text=$1 last=0 i; shift
  for re in "$@"; do
    i=$(grep -nE -- "$re" <<<"$text" | head -n1 | cut -d: -f1)
    [ -n "$i" ] && [ "$i" -gt "$last" ] || return 1
    last=$i
  done
}
denied() {  # denied USER CMD...: fails with EACCES
  local out
  out=$(as "$@" 2>&1) && return 1
  has "$out" 'Permission denied'
}

t_start=$SECONDS
"$sdboot" boot "$dir" || { fails=1; exit 1; }
echo "booted in $((SECONDS - t_start)) s"

# --- 1. install ----------------------------------------------------------------
begin install
if [ -n "$deb" ]; then
  cp "$deb" "$dir/"
  # As README.md says: apt installs a local .deb (its dependencies are
  # installed already: the boot has no network).
  out=$(sd env DEBIAN_FRONTEND=noninteractive apt-get install -y "$dir/$(basename "$deb")" 2>&1); rc=$?
  expect "apt-get install ./$(basename "$deb")" eq "$rc" 0
  [ "$rc" -eq 0 ] || echo "$out" | tail -n 20
  expect "postinst enabled the service" eq "$(sd systemctl is-enabled weightdrop 2>&1)" enabled
  expect "postinst started the service" wait_until 10 sd systemctl is-active weightdrop
else
  sd install -m 0755 "$build/weightdrop" /usr/bin/weightdrop
  # The unit as `cmake --install --prefix /usr` writes it.
  sed -e 's|@CMAKE_INSTALL_FULL_BINDIR@|/usr/bin|' -e 's|@CMAKE_INSTALL_FULL_SYSCONFDIR@|/etc|' \
      -e 's|@CMAKE_INSTALL_FULL_DOCDIR@|/usr/share/doc/weightdrop|' \
      "$root/systemd/weightdrop.service.in" > "$dir/weightdrop.service"
  sd install -m 0644 "$dir/weightdrop.service" /lib/systemd/system/weightdrop.service
  sd install -D -m 0644 "$root/docs/operations.md" /usr/share/doc/weightdrop/operations.md
  sd install -D -m 0644 "$root/docs/weightdrop.1" /usr/share/man/man1/weightdrop.1
  sd install -D -m 0644 "$root/systemd/weightdrop.sysusers" /usr/lib/sysusers.d/weightdrop.conf
  sd install -D -m 0644 "$root/systemd/weightdrop.tmpfiles" /usr/lib/tmpfiles.d/weightdrop.conf
  sd install -D -m 0644 "$root/config/weightdrop.yaml" /etc/weightdrop/weightdrop.yaml
  sd systemd-sysusers
  sd systemd-tmpfiles --create weightdrop.conf
  sd systemctl daemon-reload
  expect "enable --now (as the package's postinst does)" sd systemctl enable --now weightdrop
fi
expect "user weightdrop, groups weightdrop and weightdrop-drop exist" \
  sd sh -c 'getent passwd weightdrop && getent group weightdrop && getent group weightdrop-drop'
expect "tmpfiles made /srv/weightdrop/drop/models" sd test -d /srv/weightdrop/drop/models
docs=$(prop Documentation)
note "Documentation=$docs"
missing=""
for d in $(tr -d '"' <<<"$docs"); do
  case "$d" in
    file://*) sd test -f "${d#file://}" || missing+=" ${d#file://}" ;;
    man:*) p=${d#man:}; sd man -w "${p%(*}" >/dev/null 2>&1 || missing+=" $d" ;;
  esac
done
expect "every Documentation= of the unit exists${missing:+ (missing:$missing)}" eq "$missing" ""
sd cp /etc/weightdrop/weightdrop.yaml "$dir/orig.yaml"
# The people of docs/operations.md §2: an uploader, the web server, a stranger.
sd useradd -M -U -G weightdrop-drop uploader
sd usermod -aG weightdrop www-data
sd useradd -M -U outsider
end

# --- 2. start to READY -----------------------------------------------------------
begin "start to READY"
sd systemctl stop weightdrop
c=$(mark)
expect "systemctl start returns success" timeout 30 "$sdboot" run "$dir" systemctl start weightdrop
expect "ActiveState=active SubState=running" \
  eq "$(prop ActiveState) $(prop SubState)" "active running"
status=$(prop StatusText)
note "StatusText=$status"
expect "StatusText is the daemon's STATUS= line" \
  has "$status" '^watching 1 folder; queue [0-9]+, publishing [0-9]+; [0-9]+ published, [0-9]+ failed, [0-9]+ unchanged'
log=$(since "$c")
expect "the journal has its start-up and watch lines before systemd's Started" \
  in_order "$log" 'weightdrop .* starting \(config /etc/weightdrop/weightdrop.yaml' \
  'watching /srv/weightdrop/drop/models -> /srv/weightdrop/serve' '^Started weightdrop.service'
end

# --- 3. an upload, published for the web server only ---------------------------
begin "upload published, readable by the web server's group only"
S=/srv/weightdrop/serve
expect "uploader (weightdrop-drop) drops up1.npz" drop uploader models up1.npz
expect "published: $S/up1/current" wait_until 20 published up1
expect "archived in drop/models/.weightdrop/done/" sd test -f /srv/weightdrop/drop/models/.weightdrop/done/up1.npz
expect "www-data (group weightdrop) reads the pointer manifest" as www-data cat "$S/up1/weights_manifest.json"
expect "www-data reads the shard" as www-data cat "$S/up1/1/group1-shard1of1.bin"
expect "outsider (no group) gets EACCES" denied outsider cat "$S/up1/1/group1-shard1of1.bin"
expect "uploader (weightdrop-drop only) gets EACCES" denied uploader cat "$S/up1/1/group1-shard1of1.bin"
expect "www-data cannot drop a bundle (EACCES)" denied www-data touch /srv/weightdrop/drop/models/x.npz
expect "www-data reads status.json and weightdrop.prom (monitoring, §2)" \
  as www-data cat /var/lib/weightdrop/status.json /var/lib/weightdrop/weightdrop.prom
expect "www-data runs weightdrop status" as www-data weightdrop status --config /etc/weightdrop/weightdrop.yaml
expect "outsider cannot read status.json (EACCES)" denied outsider cat /var/lib/weightdrop/status.json
modes=$(sd stat -c '%a %U:%G' "$S/up1/1" "$S/up1/1/group1-shard1of1.bin" | tr '\n' ' ')
note "version folder, shard: $modes"
expect "folders 2750/0750 and files 0640, weightdrop:weightdrop" \
  has "$modes" '^2?750 weightdrop:weightdrop 640 weightdrop:weightdrop $'
end

# --- 4. reload -------------------------------------------------------------------
begin "reload: RELOADING=1 then READY=1, new watch applied, invalid config kept out"
pid0=$(prop MainPID)
expect "weightdrop creates drop/vision (inherits the default ACL)" as weightdrop mkdir /srv/weightdrop/drop/vision
config --vision
sd systemctl log-level debug   # PID 1 then logs each notification it gets
c=$(mark)
expect "systemctl reload returns success" sd systemctl reload weightdrop
expect "the daemon logs 'configuration reloaded: 2 watches'" \
  wait_until 10 has_since "$c" 'configuration reloaded: 2 watches'
sleep 0.5
sd systemctl log-level info
log=$(since "$c")
# PID 1's lines and the daemon's come from two streams: each in order.
expect "systemd: Reloading, RELOADING=1 then READY=1 from the daemon, Reloaded" in_order "$log" \
  '^Reloading weightdrop.service' \
  'Got notification message from PID [0-9]+ \(RELOADING=1, MONOTONIC_USEC=[0-9]+\)' \
  'Got notification message from PID [0-9]+ \(READY=1, STATUS=watching 2 folders' \
  '^Reloaded weightdrop.service'
expect "daemon: SIGHUP: reloading, configuration reloaded: 2 watches" in_order "$log" \
  '^SIGHUP: reloading /etc/weightdrop/weightdrop.yaml' '^configuration reloaded: 2 watches'
has "$log" 'Changed running -> reload' && note "SubState went running -> reload -> running"
expect "same main pid, active" eq "$(prop MainPID) $(prop ActiveState)" "$pid0 active"
expect "uploader drops vision/cat.npz" drop uploader vision cat.npz
expect "the new watch publishes it as vision-cat" wait_until 20 published vision-cat
config --vision --bogus
c=$(mark)
expect "systemctl reload with an invalid config fails (ExecReload runs check-config first)" \
  not sd systemctl reload weightdrop
expect "... the journal says why, with file:line:col" wait_until 10 has_since "$c" \
  '/etc/weightdrop/weightdrop.yaml:[0-9]+:[0-9]+: unknown key .bogus_key.'
expect "... and the daemon got no SIGHUP" lacks "$(since "$c")" '^SIGHUP: reloading'
# A file that turned invalid after check-config passed: the daemon itself
# refuses it and keeps the running config.
c=$(mark)
sd systemctl kill -s HUP --kill-who=main weightdrop
expect "SIGHUP by hand: the daemon logs the error with file:line:col" wait_until 10 has_since "$c" \
  'reload failed, keeping the running configuration: /etc/weightdrop/weightdrop.yaml:[0-9]+:[0-9]+: unknown key .bogus_key.'
expect "... at priority err" has "$(since "$c" -p err)" 'reload failed'
expect "service still active, same pid" eq "$(prop ActiveState) $(prop MainPID)" "active $pid0"
expect "old watch models still publishes (up2)" drop uploader models up2.npz
expect "... up2 published" wait_until 20 published up2
expect "watch vision still publishes (dog)" drop uploader vision dog.npz
expect "... vision-dog published" wait_until 20 published vision-dog
config --vision
sd systemctl reload weightdrop
end

# --- 5. a hook under the sandbox ------------------------------------------------
begin "on_publish hook: loopback reached, other addresses refused (IPAddressDeny)"
# A second interface, so that 10.0.0.1 is an address of this host that is
# not loopback: reachable by root, refused to the service.
if ! sd sh -c 'ip link add wdt0 type veth peer name wdt1 && ip link set wdt1 up &&
               ip addr add 10.0.0.1/24 dev wdt0 && ip link set wdt0 up' 2>/dev/null; then
  note "no veth here: 10.0.0.1 goes on lo instead"
  sd ip addr add 10.0.0.1/32 dev lo
fi
sd systemd-run --quiet --unit=wd-hook-server -p User=www-data \
  /usr/bin/python3 "$dir/hook_server.py" 0.0.0.0 8501
expect "the server answers root on 127.0.0.1 and 10.0.0.1" wait_until 10 sd sh -c \
  'curl -fsS -m 2 http://127.0.0.1:8501/sanity && curl -fsS -m 2 http://10.0.0.1:8501/sanity'
expect "... and user weightdrop outside the unit on 10.0.0.1" \
  as weightdrop curl -fsS -m 2 http://10.0.0.1:8501/sanity-weightdrop
server_log() { sd journalctl -u wd-hook-server --no-pager -o cat; }
config --hook http://127.0.0.1:8501/loopback
sd systemctl reload weightdrop
c=$(mark)
expect "hook1.npz dropped and published" drop uploader models hook1.npz
expect "... published" wait_until 20 published hook1
expect "the hook reached 127.0.0.1:8501/loopback/hook1/1" \
  wait_until 10 has_cmd server_log 'GET /loopback/hook1/1 '
expect "its output is in the journal: 'hook publish hook1: ok'" wait_until 10 has_since "$c" '^hook publish hook1: ok$'
config --hook http://10.0.0.1:8501/external
sd systemctl reload weightdrop
c=$(mark)
expect "hook2.npz dropped and published" drop uploader models hook2.npz
expect "... published" wait_until 20 published hook2
# IPAddressDeny drops the packets (a cgroup BPF filter): TCP's connect()
# sees no answer and curl gives up after its -m 5 (exit 28); UDP would get
# EPERM at once.
expect "the hook to 10.0.0.1 fails (curl exit 7 or 28)" \
  wait_until 15 has_since "$c" '^hook publish hook2 exited with status (7|28)$'
note "$(since "$c" -g 'hook publish hook2: curl' | head -n1)"
expect "the server never saw /external/hook2" lacks "$(server_log)" '/external/hook2'
config --hook http://127.0.0.1:8501/loopback   # the hook the later checks use
sd systemctl reload weightdrop
end

# --- 6. watchdog ---------------------------------------------------------------
begin "watchdog: a minute of work without a restart, then SIGSTOP -> killed and restarted"
r0=$(prop NRestarts) pid0=$(prop MainPID) wd0=$(prop WatchdogTimestampMonotonic)
note "NRestarts=$r0 MainPID=$pid0 WatchdogUSec=$(prop WatchdogUSec)"
ticks=0 ok_ticks=0 end_work=$((SECONDS + 60))
while [ "$SECONDS" -lt "$end_work" ]; do
  ticks=$((ticks + 1))
  drop uploader models "tick$ticks.npz" && ok_ticks=$((ok_ticks + 1))
  sleep 2
done
wait_until 20 published "tick$ticks"
published_ticks=0
for i in $(seq "$ticks"); do published "tick$i" && published_ticks=$((published_ticks + 1)); done
note "$published_ticks of $ticks bundles dropped over 60 s published"
expect "every bundle of the minute published" eq "$published_ticks" "$ticks"
expect "NRestarts unchanged ($r0), same MainPID" eq "$(prop NRestarts) $(prop MainPID)" "$r0 $pid0"
expect "WATCHDOG=1 arrived during the minute (WatchdogTimestamp moved)" \
  test "$(prop WatchdogTimestampMonotonic)" -gt "$wd0"
c=$(mark)
sd kill -STOP "$pid0"
t_stop=$SECONDS
restarted() { [ "$(prop NRestarts)" -gt "$r0" ] && eq "$(prop ActiveState)" active && [ "$(prop MainPID)" != "$pid0" ]; }
expect "within 60 s: killed by the watchdog, restarted, active" wait_until 60 restarted
note "restarted $((SECONDS - t_stop)) s after SIGSTOP; NRestarts=$(prop NRestarts) MainPID=$(prop MainPID)"
log=$(since "$c")
expect "journal: watchdog timeout, SIGABRT, scheduled restart" in_order "$log" \
  'Watchdog timeout \(limit 30s\)' 'Killing process [0-9]+ \(weightdrop\) with signal SIGABRT' \
  'Scheduled restart job, restart counter is at'
expect "it publishes again (after1)" drop uploader models after1.npz
expect "... after1 published" wait_until 20 published after1
end

# --- 7. journal priorities -------------------------------------------------------
begin "journal priorities: failures and a bad start-up config at <= warning, publishes not"
c=$(mark)
expect "a malformed bad.npy is dropped" drop uploader models bad.npy bad
expect "... it goes to failed/" wait_until 20 sd test -f /srv/weightdrop/drop/models/.weightdrop/failed/bad.npy
wait_until 5 has_since "$c" '^failed bad.npy'
warn=$(since "$c" -p warning)
expect "journalctl -u weightdrop -p warning shows 'failed bad.npy: ...'" has "$warn" '^failed bad.npy: '
# The on_failure hook of config/weightdrop.yaml prints an alert line: the
# daemon logs it, so it carries the unit and `journalctl -u` shows it. (A
# hook writing with systemd-cat or logger raced journald here: its line
# lacked _SYSTEMD_UNIT now and then.)
journal_since_c() { since "$c"; }
expect "... and the on_failure hook's alert line, logged by the daemon under the unit" \
  wait_until 10 has_cmd journal_since_c '^hook failure bad: ALERT: bundle .*/failed/bad\.npy failed: '
all_warn=$(sd journalctl -u weightdrop -b -p warning --no-pager -o cat)
all_info=$(sd journalctl -u weightdrop -b -p info --no-pager -o cat)
note "$(grep -c '^published ' <<<"$all_info") publishes this boot at info"
expect "... and no 'published' line of this boot is there" lacks "$all_warn" '^published '
config --bogus
c=$(mark)
expect "systemctl restart with an invalid config fails" not sd systemctl restart weightdrop
warn=$(since "$c" -p warning)
note "$(grep -m1 'weightdrop.yaml:' <<<"$warn")"
expect "the daemon's reason (file:line:col) is at priority <= warning" \
  has "$warn" '/etc/weightdrop/weightdrop.yaml:[0-9]+:[0-9]+: unknown key .bogus_key.'
config --hook http://127.0.0.1:8501/loopback
sd systemctl reset-failed weightdrop
expect "fixed config: starts again" sd systemctl start weightdrop
expect "... active" wait_until 10 is_active
end

# --- 8. stop during a publish ----------------------------------------------------
begin "systemctl stop during a publish: clean, the publish and its hook finish"
# 1 GiB: its publish (hash, encode, write, fsync) takes a second or more
# (0.6 s for 512 MiB on an idle 2-core box, too close).
# Written as .big.npy (a hidden name: ignored), then renamed in and stopped
# as soon as the daemon has claimed it, all inside one command.
expect "uploader writes .big.npy (1 GiB)" drop uploader models .big.npy big 1024
c=$(mark)
M=/srv/weightdrop/drop/models
out=$(sd sh -c "setpriv --reuid=uploader --regid=uploader --init-groups mv $M/.big.npy $M/big.npy &&
  for i in \$(seq 200); do ls $M/.weightdrop/processing/*/big.npy >/dev/null 2>&1 && break; sleep 0.02; done
  systemctl stop weightdrop" 2>&1); rc=$?
expect "systemctl stop returns success" eq "$rc" 0
[ "$rc" -eq 0 ] || echo "$out"
log=$(since "$c")
expect "journal: publishing, SIGTERM, published, hook, stopped, Stopped (in this order)" in_order "$log" \
  '^publishing .*/big.npy as big ' '^received SIGTERM' '^published big version 1 ' \
  '^hook publish big: ok$' '^stopped$' '^Stopped weightdrop.service'
note "$(grep -E '^published big' <<<"$log")"
expect "the hook reached the server" has_cmd server_log 'GET /loopback/big/1 '
expect "Result=success, ExecMainStatus=0" eq "$(prop Result) $(prop ExecMainStatus)" "success 0"
expect "no SIGKILL, no 'Killing process' in the journal" lacks "$log" 'SIGKILL|Killing process'
expect "big is live" published big
sd systemctl start weightdrop
end

# --- 9. systemd-analyze security --------------------------------------------------
begin "systemd-analyze security weightdrop: exposure <= 1.5"
out=$(sd systemd-analyze security weightdrop --no-pager 2>&1)
grep -F '✗' <<<"$out" | sed 's/^/    /'
level=$(sed -n 's/.*Overall exposure level for weightdrop.service: \([0-9.]*\).*/\1/p' <<<"$out")
note "exposure $level"
expect "exposure $level <= 1.5" awk -v l="${level:-99}" 'BEGIN { exit !(l <= 1.5) }'
end

# --- 10. upgrade -----------------------------------------------------------------
begin "upgrade: the operator's config kept (new one as .dpkg-dist), the service restarted"
if [ -z "$deb" ]; then
  skip "no .deb (--from-build)"
else
  # The next version: the same package under a higher Version whose shipped
  # config changed too (tests/integration/deb_repack.sh), so dpkg meets
  # a conffile both sides changed.
  v1=$(dpkg-deb -f "$deb" Version) v2="$(dpkg-deb -f "$deb" Version)+upgrade1"
  "$here/deb_repack.sh" "$deb" "$v2" "$dir/weightdrop_${v2}_amd64.deb" >/dev/null
  sd sh -c 'echo "# edited by the operator" >> /etc/weightdrop/weightdrop.yaml'
  pid0=$(prop MainPID)
  c=$(mark)
  # apt's unattended answer to the conffile question: keep mine.
  out=$(sd env DEBIAN_FRONTEND=noninteractive apt-get install -y \
          -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
          "$dir/weightdrop_${v2}_amd64.deb" 2>&1); rc=$?
  expect "apt-get install ./weightdrop_${v2}_amd64.deb over $v1" eq "$rc" 0
  [ "$rc" -eq 0 ] || echo "$out" | tail -n 20
  expect "dpkg: $v2 installed" eq "$(sd dpkg-query -W -f '${Version}' weightdrop)" "$v2"
  expect "the operator's edit kept in weightdrop.yaml" \
    sd grep -qx '# edited by the operator' /etc/weightdrop/weightdrop.yaml
  expect "the new shipped config beside it as weightdrop.yaml.dpkg-dist" \
    sd grep -q "shipped by weightdrop $v2" /etc/weightdrop/weightdrop.yaml.dpkg-dist
  restarted_from() { [ "$(prop MainPID)" != "$1" ] && is_active; }
  expect "restarted by the upgrade: active, new MainPID" wait_until 20 restarted_from "$pid0"
  expect "journal: Stopping then Started weightdrop.service (deb_test checks it is postinst's restart)" \
    in_order "$(since "$c")" '^Stopping weightdrop.service' '^Started weightdrop.service'
  expect "it publishes after the upgrade (upg1)" drop uploader models upg1.npz
  expect "... upg1 published" wait_until 20 published upg1
fi
end

# --- 11. remove and purge ---------------------------------------------------------
begin "apt remove keeps data and the conffile; apt purge removes /etc/weightdrop"
if [ -z "$deb" ]; then
  skip "no .deb (--from-build)"
else
  pkg=$(dpkg-deb -f "$deb" Package)
  expect "the service runs before" is_active
  out=$(sd env DEBIAN_FRONTEND=noninteractive apt-get remove -y "$pkg" 2>&1); rc=$?
  expect "apt-get remove $pkg" eq "$rc" 0
  [ "$rc" -eq 0 ] || echo "$out" | tail -n 20
  expect "service stopped" not sd systemctl is-active weightdrop
  expect "no weightdrop process left" not sd pgrep -x weightdrop
  expect "/usr/bin/weightdrop gone" not sd test -e /usr/bin/weightdrop
  expect "published models kept (/srv/weightdrop/serve/up1/current)" published up1
  expect "drop folders kept" sd test -d /srv/weightdrop/drop/models/.weightdrop/done
  expect "state kept (/var/lib/weightdrop/status.json)" sd test -f /var/lib/weightdrop/status.json
  expect "the edited conffile kept" sd grep -q 'loopback' /etc/weightdrop/weightdrop.yaml
  expect "dpkg: deinstall ok config-files" \
    eq "$(sd dpkg-query -W -f '${Status}' "$pkg")" "deinstall ok config-files"
  out=$(sd env DEBIAN_FRONTEND=noninteractive apt-get purge -y "$pkg" 2>&1); rc=$?
  expect "apt-get purge $pkg" eq "$rc" 0
  [ "$rc" -eq 0 ] || echo "$out" | tail -n 20
  expect "/etc/weightdrop removed" not sd test -e /etc/weightdrop
  expect "/var/lib/weightdrop (status files) removed" not sd test -e /var/lib/weightdrop
  expect "/srv/weightdrop kept: the published models are the site's data" published up1
  note "after purge: /srv/weightdrop $(sd test -d /srv/weightdrop && echo kept || echo removed)," \
    "/var/lib/weightdrop $(sd test -d /var/lib/weightdrop && echo kept || echo removed)," \
    "user weightdrop $(sd getent passwd weightdrop >/dev/null && echo kept || echo removed)"
  end
fi

echo
printf '%s\n' "${results[@]}"
echo "total $((SECONDS - t_start)) s; $fails of $n checks failed"
[ "$fails" -eq 0 ]
