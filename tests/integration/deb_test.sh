#!/usr/bin/env bash
# Checks the Debian package that scripts/build-deb.sh built, as a file:
#   tests/integration/deb_test.sh [DEB_DIR]     (default: build-deb)
# What it installs and where, that the binary is stripped with its symbols
# in the -dbgsym package, the conffile, the maintainer scripts debhelper
# generated (sysusers, tmpfiles, enable + start, restart on upgrade, stop on
# remove, purge), the man page against the CLI's --help, and lintian.
# Installing it into a running systemd is tests/integration/systemd_boot_test.sh.
set -euo pipefail
dir="$(cd "${1:-$(dirname "$0")/../../build-deb}" && pwd)"
deb="$(ls "$dir"/weightdrop_*_*.deb 2>/dev/null | sort -V | tail -n1)"
[ -n "$deb" ] || { echo "deb_test: no weightdrop_*.deb in $dir (run scripts/build-deb.sh)" >&2; exit 1; }
dbgsym="$(ls "$dir"/weightdrop-dbgsym_*.deb 2>/dev/null | sort -V | tail -n1)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failures=0
n=0
check() {  # check NAME COMMAND...: runs COMMAND, prints PASS/FAIL
  local name="$1"; shift
  n=$((n + 1))
  if out="$("$@" 2>&1)"; then
    printf 'PASS %02d %s\n' "$n" "$name"
  else
    printf 'FAIL %02d %s\n%s\n' "$n" "$name" "$out" | sed '2,$s/^/    /'
    failures=$((failures + 1))
  fi
}

echo "deb_test: $deb"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' > "$scratch/contents"
dpkg-deb -x "$deb" "$scratch/root"
dpkg-deb -e "$deb" "$scratch/control"

has() { grep -qx "$1" "$scratch/contents" || { echo "missing: $1"; return 1; }; }
check "binary, unit, sysusers.d, tmpfiles.d, config, man page, nginx.conf, docs installed" \
  bash -c "$(declare -f has); scratch='$scratch'
    has /usr/bin/weightdrop && has /lib/systemd/system/weightdrop.service &&
    has /usr/lib/sysusers.d/weightdrop.conf && has /usr/lib/tmpfiles.d/weightdrop.conf &&
    has /etc/weightdrop/weightdrop.yaml && has /usr/share/man/man1/weightdrop.1.gz &&
    has /usr/share/doc/weightdrop/examples/nginx.conf &&
    has /usr/share/doc/weightdrop/copyright && has /usr/share/doc/weightdrop/changelog.gz"
check "docs: README, operations, configuration, formats" \
  bash -c "ls '$scratch/root/usr/share/doc/weightdrop/' | grep -q '^README.md' &&
           ls '$scratch/root/usr/share/doc/weightdrop/' | grep -q '^operations.md' &&
           ls '$scratch/root/usr/share/doc/weightdrop/' | grep -q '^configuration.md' &&
           ls '$scratch/root/usr/share/doc/weightdrop/' | grep -q '^formats.md'"
check "nothing from the build tree or the tests is shipped" \
  bash -c "! grep -E '/(tests?|build[^/]*|obj-[^/]*|node_modules)/|wd_tests|\.a$|/include/' '$scratch/contents'"
check "the config is a conffile" grep -qx /etc/weightdrop/weightdrop.yaml "$scratch/control/conffiles"
check "the binary is stripped" \
  bash -c "! readelf -S '$scratch/root/usr/bin/weightdrop' | grep -q '\.debug_info'"
check "debug symbols are in weightdrop-dbgsym, matching the build id" bash -c "
  [ -n '$dbgsym' ] || { echo 'no weightdrop-dbgsym_*.deb'; exit 1; }
  id=\$(readelf -n '$scratch/root/usr/bin/weightdrop' | awk '/Build ID/{print \$3}')
  dpkg-deb -c '$dbgsym' | grep -q \"/usr/lib/debug/.build-id/\${id:0:2}/\${id:2}.debug\""
check "the unit runs /usr/bin/weightdrop on /etc/weightdrop/weightdrop.yaml" \
  grep -qx 'ExecStart=/usr/bin/weightdrop run --config /etc/weightdrop/weightdrop.yaml' \
  "$scratch/root/lib/systemd/system/weightdrop.service"
check "the unit names the man page and the installed docs" bash -c "
  grep -qx 'Documentation=man:weightdrop(1)' '$scratch/root/lib/systemd/system/weightdrop.service' &&
  grep -qx 'Documentation=file:///usr/share/doc/weightdrop/operations.md' '$scratch/root/lib/systemd/system/weightdrop.service'"
unit_docs_exist() {
  local d missing=""
  for d in $(sed -n 's/^Documentation=//p' "$scratch/root/lib/systemd/system/weightdrop.service"); do
    case "$d" in
      file://*) [ -f "$scratch/root${d#file://}" ] || missing+=" $d" ;;
      man:weightdrop\(1\)) [ -f "$scratch/root/usr/share/man/man1/weightdrop.1.gz" ] || missing+=" $d" ;;
      *) missing+=" $d (not checked)" ;;
    esac
  done
  [ -z "$missing" ] || { echo "Documentation= names what the package lacks:$missing"; return 1; }
}
check "every Documentation= of the unit is in the package" unit_docs_exist
postinst_sets_up() {
  local p="$scratch/control/postinst"
  grep -q 'systemd-sysusers .*weightdrop.conf' "$p" &&
    grep -q 'systemd-tmpfiles .*--create weightdrop.conf' "$p" &&
    grep -q "deb-systemd-helper enable 'weightdrop.service'" "$p" &&
    grep -qF "deb-systemd-invoke \$_dh_action 'weightdrop.service'" "$p"
}
check "postinst creates the users and folders, enables and starts the unit" postinst_sets_up
upgrade_restarts() {
  # dh_installsystemd --restart-after-upgrade: postinst restarts when it
  # is given the old version ($2), and prerm stops only on remove.
  grep -q '_dh_action=restart' "$scratch/control/postinst" &&
    grep -qF '[ "$1" = remove ]' "$scratch/control/prerm" &&
    grep -q "deb-systemd-invoke stop 'weightdrop.service'" "$scratch/control/prerm"
}
check "an upgrade restarts the service; remove stops it" upgrade_restarts
purge_keeps_srv() {
  grep -qx '    rm -rf /var/lib/weightdrop /etc/weightdrop' "$scratch/control/postrm" &&
    ! grep -Eq '^[^#]*(rm|find|delete).*/srv' "$scratch/control/postrm"
}
check "purge removes the config and state, never /srv/weightdrop" purge_keeps_srv
check "Depends names the shared libraries and systemd's sysusers" bash -c "
  d=\$(dpkg-deb -f '$deb' Depends); echo \"\$d\"
  for lib in libuv1 libyaml-cpp libspdlog libzip libcurl libssl libtinyxml2; do
    echo \"\$d\" | grep -q \"\$lib\" || { echo \"no \$lib\"; exit 1; }; done
  echo \"\$d\" | grep -q 'systemd'"

# The man page against the CLI of the packaged binary: every command and
# every long option --help shows must be in weightdrop.1.
bin="$scratch/root/usr/bin/weightdrop"
zcat "$scratch/root/usr/share/man/man1/weightdrop.1.gz" > "$scratch/weightdrop.1"
man_text="$(MANWIDTH=200 man -l "$scratch/weightdrop.1" 2>/dev/null)"
check "the man page renders without warnings" bash -c "
  ! LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l '$scratch/weightdrop.1' 2>&1 >/dev/null | grep ."
check "the man page's version is the package's" bash -c "
  v=\$('$bin' --version | awk '{print \$2}'); grep -q \"\\\"weightdrop \$v\\\"\" '$scratch/weightdrop.1' ||
  { echo \"man page .TH does not say weightdrop \$v\"; exit 1; }"
man_covers() {
  local missing=""
  local cmds
  cmds="$("$bin" --help | awk '/^Subcommands:/{s=1;next} s&&/^  [a-z]/{print $1}')"
  [ -n "$cmds" ] || { echo "no commands found in --help"; return 1; }
  for c in $cmds; do
    grep -q "weightdrop $c" <<<"$man_text" || missing+=" command:$c"
    for opt in $("$bin" "$c" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u); do
      grep -qE -- "${opt}([^a-z-]|\$)" <<<"$man_text" || missing+=" $c:$opt"
    done
  done
  [ -z "$missing" ] || { echo "not in docs/weightdrop.1:$missing"; return 1; }
}
check "the man page has every command and option of --help" man_covers
docs_name_version() {
  # README and operations.md give the file name of the .deb to install.
  local v root; v="$("$bin" --version | awk '{print $2}')"
  root="$(cd "$(dirname "$0")/../.." && pwd)"
  grep -q "weightdrop_${v}_amd64.deb" "$root/README.md" &&
    grep -q "weightdrop_${v}_amd64.deb" "$root/docs/operations.md" ||
    { echo "README.md or docs/operations.md does not name weightdrop_${v}_amd64.deb"; return 1; }
}
check "the docs name this version's .deb" docs_name_version

if command -v lintian >/dev/null; then
  changes="$(ls "$dir"/weightdrop_*.changes | sort -V | tail -n1)"
  check "lintian: no errors, no warnings that are not overridden with a reason" \
    lintian --fail-on error,warning "$changes"
else
  echo "SKIP lintian: not installed (scripts/setup.sh installs it)"
fi

if [ "$failures" -gt 0 ]; then
  echo "deb_test: $failures of $n checks failed"; exit 1
fi
echo "deb_test: all $n checks passed"
