#!/usr/bin/env bash
# Benchmark of publishing to S3: `weightdrop publish --to s3://...` (A) side
# by side with the two-step pipeline a user would otherwise script (B: publish
# to a local folder, then `rclone copy` the version and the pointers), against
# a real Ceph RGW on 127.0.0.1 (scripts/rgw.sh, one fresh cluster per size).
# Prints one Markdown report and saves it to --out.
#
#   bash bench/s3.sh [--sizes 512M,2G] [--reps N] [--out FILE] [--work DIR]
#                    [--bin PATH] [--clean]
#
#   --sizes  bundle sizes (float32 weight bytes of a stored .npz; K/M/G =
#            KiB/MiB/GiB; default 512M,2G)
#   --reps   repetitions of A and B per size, alternating (default 5)
#   --out    report file (default bench/results/s3.md); raw samples go next
#            to it as <out>.raw.tsv
#   --work   bundles, build and scratch (default /tmp/wd-s3bench; bundles and
#            the build are reused when they match)
#   --bin    the weightdrop binary; default: a Release build of HEAD, made
#            from `git archive` in WORK/build (uncommitted changes excluded)
#   --clean  remove WORK (bundles, build, RGW dir) at the end
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh"
repo=$(dirname "$bench_dir")
cmdline="bash bench/s3.sh${*:+ $*}"
sizes=512M,2G
reps=5
out=$bench_dir/results/s3.md
work=/tmp/wd-s3bench
bin=
clean=0
python=/usr/bin/python3

while [[ $# -gt 0 ]]; do
  case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --clean) clean=1; shift ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "s3.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "[s3 bench $(date +%H:%M:%S)] $*" >&2; }
die() { echo "s3.sh: $*" >&2; exit 1; }

check_tools() {
  if [[ ! -x /usr/bin/time ]]; then
    say "installing GNU time (Debian package 'time') for /usr/bin/time"
    apt-get update -qq && apt-get install -y -qq time >/dev/null
  fi
  command -v rclone >/dev/null || die "rclone is not installed (Debian: rclone)"
  "$python" -c 'import numpy' 2>/dev/null || die "$python has no NumPy (apt-get install python3-numpy)"
  bash "$repo/scripts/rgw.sh" available || die "Ceph RGW is not installed (see scripts/rgw.sh)"
  if [[ -n $bin ]]; then
    [[ -x $bin ]] || die "no weightdrop binary at $bin"
  else
    command -v cmake >/dev/null || die "cmake is not installed"
  fi
  local others pgid
  pgid=$(ps -o pgid= $$ | tr -d ' ')
  others=$(ps -eo pgid=,pid=,args= |
    awk -v me="$pgid" '$1 != me && $0 ~ /bench\/(run|profile|s3)\.sh|measure\.py|daemon_bench\.py/ {$1 = ""; print}' || true)
  [[ -z $others ]] || say "WARNING: another benchmark seems to run; numbers will be noisy:
$others"
}

# A Release build of HEAD from `git archive` (no git state is touched, the
# working tree's uncommitted edits stay out), reused while HEAD is the same.
build_head() {
  local sha src=$work/src build=$work/build
  sha=$(git -C "$repo" rev-parse --verify HEAD)
  if [[ $(cat "$src/.wd-commit" 2>/dev/null) != "$sha" ]]; then
    say "extracting HEAD ($sha) into $src"
    rm -rf "$src" "$build"
    mkdir -p "$src"
    git -C "$repo" archive "$sha" | tar -x -C "$src"
    echo "$sha" >"$src/.wd-commit"
  fi
  if [[ ! -x $build/weightdrop || $(cat "$build/.wd-commit" 2>/dev/null) != "$sha" ]]; then
    say "building ${sha:0:7} in $build (Release, -j2)"
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
      >"$work/build.cmake.log" 2>&1 || die "cmake configure failed, see $work/build.cmake.log"
    cmake --build "$build" -j2 --target weightdrop >"$work/build.log" 2>&1 ||
      die "build failed, see $work/build.log"
    echo "$sha" >"$build/.wd-commit"
  fi
  bin=$build/weightdrop
  build_note="Release build of commit ${sha:0:7} (\`git archive\`, uncommitted changes excluded)"
}

# stored.npz only (np.savez layout, the weights of bench/gen_bundles.py);
# a marker keeps a bundle while its size and generator are the same.
generate_bundles() {
  local label bytes dir want
  for label in ${sizes//,/ }; do
    bytes=$(size_bytes "$label")
    [[ -n $bytes ]] || die "bad size '$label'"
    dir=$work/bundles/$label
    want="stored $bytes $(sha256sum "$bench_dir/gen_bundles.py" | cut -c1-16)"
    [[ -f $dir/stored.npz && $(cat "$dir/complete" 2>/dev/null) == "$want" ]] && continue
    say "generating $dir/stored.npz ($bytes bytes of float32)"
    rm -rf "$dir"
    mkdir -p "$dir"
    (cd "$bench_dir" && "$python" -c '
import sys, zipfile
import gen_bundles as g
g.write_npz(sys.argv[2], g.plan_layers(int(sys.argv[1])), zipfile.ZIP_STORED)' \
      "$bytes" "$dir/stored.npz")
    echo "$want" >"$dir/complete"
  done
}

cleanup() {
  # s3_measure.py stops its RGW itself; this covers an interrupt between.
  [[ -f $work/rgw/env ]] && bash "$repo/scripts/rgw.sh" stop "$work/rgw" >/dev/null 2>&1
  rm -rf "$work/out"
  if [[ $clean == 1 ]]; then rm -rf "$work"; fi
}

mkdir -p "$work" "$(dirname "$out")"
check_tools
build_note="given with --bin"
[[ -n $bin ]] || build_head
generate_bundles
trap cleanup EXIT
say "timing A and B (sizes $sizes, $reps repetitions)"
"$python" "$bench_dir/s3_measure.py" --bin "$bin" --work "$work" --sizes "$sizes" \
  --reps "$reps" --raw "${out%.md}.raw.tsv" --cmdline "$cmdline" \
  --build-note "$build_note" >"$work/s3.md"
cp "$work/s3.md" "$out"
cat "$out"
say "report saved to $out"
