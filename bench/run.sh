#!/usr/bin/env bash
# Benchmark harness (issues 4 and 13): weightdrop publish vs cp+sync, vs
# zlib inflate-only for deflated .npz and vs a NumPy baseline (and the real
# reference writer where tensorflowjs imports), cold and warm side by side in
# one run, for stored/deflated .npz, .npy folders and F32/BF16 .safetensors;
# then the daemon's latency, burst and memory. Prints one Markdown report
# and saves it to --out.
#
#   bash bench/run.sh [--sizes 64M,512M,2G] [--quick] [--out FILE]
#                     [--work DIR] [--bin PATH] [--reps N] [--warm]
#                     [--short SIZES] [--no-numpy] [--no-daemon]
#
#   --sizes  bundle sizes (float32 weight bytes; K/M/G = KiB/MiB/GiB)
#   --quick  smoke run: 16M only, 1 repetition, daemon 20 + 60 bundles
#   --out    report file (default bench/results/latest.md); raw samples go
#            next to it as <out>.raw.tsv
#   --work   bundles and scratch (default /tmp/wd-bench; bundles are reused
#            when generated with the same parameters)
#   --bin    the weightdrop binary (default build/weightdrop of this checkout)
#   --reps   repetitions per measurement (default 7 below 256M, 3 below 2G, 1 at 2G+)
#   --warm   warm rows only (no cache drops; also what happens when not root)
#   --short  sizes at which the deflated .npz rows are skipped (e.g. 2G)
#   --no-numpy   skip the NumPy baseline (the slowest command at 2G)
#   --no-daemon  skip the daemon part
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh"
repo=$(dirname "$bench_dir")
cmdline="bash bench/run.sh${*:+ $*}"
sizes=64M,512M,2G
out=$bench_dir/results/latest.md
work=/tmp/wd-bench
bin=$repo/build/weightdrop
reps=0
warm=()
short=
no_numpy=()
daemon=1
latency_n=50
burst_n=300
python=/usr/bin/python3

while [[ $# -gt 0 ]]; do
  case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --quick) sizes=16M; reps=1; latency_n=20; burst_n=60; shift ;;
    --out) out=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --warm) warm=(--warm); shift ;;
    --short) short=$2; shift 2 ;;
    --no-numpy) no_numpy=(--no-numpy); shift ;;
    --no-daemon) daemon=0; shift ;;
    -h|--help) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }

ensure_tools() {
  if [[ ! -x /usr/bin/time ]]; then
    say "installing GNU time (Debian package 'time') for /usr/bin/time"
    apt-get update -qq && apt-get install -y -qq time >/dev/null
  fi
  "$python" -c 'import numpy' 2>/dev/null || {
    echo "run.sh: $python has no NumPy (apt-get install python3-numpy)" >&2
    exit 1
  }
  [[ -x $bin ]] || { echo "run.sh: no weightdrop binary at $bin" >&2; exit 1; }
  mkdir -p "$work/bundles" "$(dirname "$out")"
  if [[ ! -x $work/inflate_only || $bench_dir/inflate_only.c -nt $work/inflate_only ]]; then
    say "compiling inflate_only.c"
    cc -O2 -Wall -Wextra -o "$work/inflate_only" "$bench_dir/inflate_only.c" -lz
  fi
}

generate_bundles() {
  local label bytes
  for label in ${sizes//,/ }; do
    bytes=$(size_bytes "$label")
    [[ -n $bytes ]] || { echo "run.sh: bad size '$label'" >&2; exit 2; }
    "$python" "$bench_dir/gen_bundles.py" "$bytes" "$work/bundles/$label"
  done
}

ensure_tools
generate_bundles
# The report this run replaces: its cold wd/cp per row is the "cold as
# before or better" reference.
before=$work/before.md
if [[ -f $out ]]; then cp -- "$out" "$before"; else rm -f -- "$before"; fi
started=$(date +%s)
say "timing publish runs (sizes $sizes)"
"$python" "$bench_dir/measure.py" --bin "$bin" --inflate "$work/inflate_only" \
  --work "$work" --sizes "$sizes" --reps "$reps" --raw "${out%.md}.raw.tsv" \
  --cmdline "$cmdline" --before "$before" --short "$short" \
  "${warm[@]}" "${no_numpy[@]}" >"$work/publish.md"
if ((daemon)); then
  say "daemon benchmark ($latency_n + $burst_n bundles)"
  "$python" "$bench_dir/daemon_bench.py" --bin "$bin" --work "$work" \
    --latency "$latency_n" --burst "$burst_n" >"$work/daemon.md"
else
  printf '\n## daemon\n\nNot run (--no-daemon).\n' >"$work/daemon.md"
fi
printf '\nHarness wall time (publish part and daemon part): %d s.\n' \
  $(($(date +%s) - started)) >>"$work/daemon.md"
cat "$work/publish.md" "$work/daemon.md" >"$out"
cat "$out"
say "report saved to $out"
