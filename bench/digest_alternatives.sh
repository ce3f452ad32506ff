#!/usr/bin/env bash
# Issue 13's "measure the alternatives" for the bundle's SHA-256: what a warm
# publish of a stored .npz would gain without the provenance digest (as
# dedupe from the output's shard digests would have it), and with each
# shard hashed on a thread of its own while it is written; interleaved with
# cp+sync of the same bytes, one fresh fsynced copy of the bundle (warm).
#
#   bash bench/digest_alternatives.sh [--size 512M] [--reps 7] [--work DIR]
#
# Builds weightdrop from this checkout's HEAD (`git archive`) with
# bench/patches/digest-alternatives.patch applied into $work/alt-build: the
# patch adds two switches read from the environment, which the shipped
# binary does not have — WD_ALT_NO_BUNDLE_DIGEST (no bundle digest: the
# digest thread does nothing) and WD_ALT_HASH_ASIDE (shard SHA-256 on a
# second thread while the encoder thread writes the same chunk). Without
# either, the patched binary is the shipped one. Prints a Markdown table:
# per variant the median wall, the repetitions, median CPU (user + sys) and
# the ratio to the median cp+sync. Needs the Debian packages of
# .ci/setup.sh and python3-numpy; about 2 minutes at 512M, 7 repetitions.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
size=512M reps=7 work=/tmp/wd-bench
while (($#)); do
  case $1 in
    --size) size=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    *) echo "usage: $0 [--size 512M] [--reps N] [--work DIR]" >&2; exit 2 ;;
  esac
done
bytes=$(size_bytes "$size")
say() { printf '[alternatives %s] %s\n' "$(date +%T)" "$*" >&2; }

# The patched binary.
src=$work/alt-src build=$work/alt-build
rm -rf "$src"; mkdir -p "$src" "$build"
git -C "$repo" archive HEAD | tar -x -C "$src"
patch -s -d "$src" -p1 <"$here/patches/digest-alternatives.patch"
say "building the patched weightdrop in $build"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
  >"$build.cmake.log" 2>&1 || { cat "$build.cmake.log" >&2; exit 1; }
cmake --build "$build" -j2 --target weightdrop >"$build.build.log" 2>&1 ||
  { tail -30 "$build.build.log" >&2; exit 1; }
bin=$build/weightdrop

# The bundle, generated as bench/run.sh generates it (reused when there).
bundles=$work/bundles/$size
if [[ ! -f $bundles/stored.npz ]]; then
  say "generating $size bundles into $bundles"
  mkdir -p "$bundles"
  /usr/bin/python3 "$here/gen_bundles.py" "$bytes" "$bundles" >&2
fi
run=$work/alternatives
rm -rf "$run"; mkdir -p "$run"
cp "$bundles/stored.npz" "$run/stored.npz"
sync "$run/stored.npz"
/usr/bin/python3 -c "import numpy, sys; numpy.savez(sys.argv[1], w=numpy.zeros(16, numpy.float32))" \
  "$run/tiny.npz"

variants=(shipped no-bundle-digest hash-aside no-bundle-digest+hash-aside)
say "$reps repetitions of: ${variants[*]} cp+sync (warm $size stored.npz)"
for ((i = 1; i <= reps; i++)); do
  for v in "${variants[@]}"; do
    env=()
    [[ $v == *no-bundle-digest* ]] && env+=(WD_ALT_NO_BUNDLE_DIGEST=1)
    [[ $v == *hash-aside* ]] && env+=(WD_ALT_HASH_ASIDE=1)
    # version 2 of an existing model, as bench/measure.py times it
    rm -rf "$run/serve"
    "$bin" publish "$run/tiny.npz" --to "$run/serve" --model m >>"$run/log" 2>&1
    sync
    env "${env[@]}" /usr/bin/time -o "$run/t" -f "$v %e %U %S" \
      "$bin" publish "$run/stored.npz" --to "$run/serve" --model m >>"$run/log" 2>&1 ||
      { tail "$run/log" >&2; exit 1; }
    cat "$run/t"
  done
  rm -rf "$run/copy"; sync
  /usr/bin/time -o "$run/t" -f "cp+sync %e %U %S" \
    sh -c 'cp -- "$1" "$2" && sync -- "$2"' cp "$run/stored.npz" "$run/copy"
  cat "$run/t"
done >"$run/samples.txt"
rm -rf "$run/serve" "$run/copy"

/usr/bin/python3 - "$run/samples.txt" "$size" "$(nproc)" <<'EOF'
import collections, statistics, sys
samples = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, wall, user, system = line.split()
    samples[name].append((float(wall), float(user) + float(system)))
cp = statistics.median(w for w, _ in samples["cp+sync"])
print(f"Warm {sys.argv[2]} stored .npz, {sys.argv[3]} cores, "
      f"{len(samples['cp+sync'])} interleaved repetitions\n")
print("| variant | wall s (median) | repetitions | CPU s (median) | wall / cp+sync |")
print("|---|---|---|---|---|")
for name, runs in samples.items():
    wall = statistics.median(w for w, _ in runs)
    cpu = statistics.median(c for _, c in runs)
    print(f"| {name} | {wall:.3f} | {' '.join(f'{w:.2f}' for w, _ in runs)} | "
          f"{cpu:.2f} | {wall / cp:.2f} |")
EOF
