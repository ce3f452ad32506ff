#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (in build-fuzz) and
# runs them (docs/fuzzing.md):
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]   every corpus file once, then fuzz (default 60 s)
#   scripts/fuzz.sh --regress [TARGET...]              every corpus file once, no fuzzing
# TARGET: npy_header bundle safetensors pipeline_config daemon_config model_json (default: all).
# Exits 1 on any crash, leak, timeout or out-of-memory; 0 with a message when
# there is no clang. WD_FUZZ_BUILD names the build folder, WD_FUZZ_JOBS the
# build's -j (default 2), WD_FUZZ_SEED libFuzzer's -seed (default 0: random).
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(npy_header bundle safetensors pipeline_config daemon_config model_json)
declare -A max_len=([npy_header]=8192 [bundle]=65536 [safetensors]=16384 [pipeline_config]=4096
                    [daemon_config]=4096 [model_json]=8192)
declare -A dicts=([npy_header]="npy" [bundle]="npy zip" [safetensors]="json safetensors"
                  [pipeline_config]="yaml" [daemon_config]="yaml" [model_json]="json")

seconds=60
regress_only=0
if [ "${1:-}" = "--regress" ]; then
  regress_only=1
  shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [ -n "${max_len[$t]:-}" ] || { echo "fuzz.sh: unknown target '$t' (${all_targets[*]})" >&2; exit 2; }
done
if [ ! -f core/model_json.h ]; then  # tests/fuzz/CMakeLists.txt builds it only then
  echo "== fuzz: no core/model_json.h in this checkout; skipping model_json"
  read -r -a targets <<< "${targets[*]/model_json}"
fi

if ! command -v clang++ >/dev/null; then
  echo "== fuzz: clang++ not found; skipping the fuzz targets (install clang to run them)"
  exit 0
fi
# libFuzzer's runtime ships apart from clang on Debian (libclang-rt-N-dev).
rt="$(clang++ -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a"
if [ ! -f "$rt" ]; then
  pkg="libclang-rt-$(clang++ -dumpversion | cut -d. -f1)-dev"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "== fuzz: installing $pkg (libFuzzer runtime)"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null; } ||
     [ ! -f "$rt" ]; then
    echo "== fuzz: no libFuzzer runtime ($rt); skipping the fuzz targets"
    exit 0
  fi
fi

build="${WD_FUZZ_BUILD:-build-fuzz}"
work="$build/fuzz"
echo "== fuzz: building in $build (clang, -fsanitize=fuzzer,address,undefined)"
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DWD_FUZZ=ON -DWD_WERROR=OFF \
  -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"${WD_FUZZ_JOBS:-2}" --target "${targets[@]/#/fuzz_}"

# Seeds are regenerated each time (deterministic); the working corpus, which
# the fuzzer grows, persists between runs.
rm -rf "$work/seeds"
/usr/bin/python3 tests/fuzz/make_corpus.py "$work/seeds"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# stat NAME LOG: the value of libFuzzer's final "stat::NAME:" line.
stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -1; }
# cov LOG PATTERN: the coverage ("cov: N") on the last line matching PATTERN.
cov() { grep -E "$2" "$1" | sed -n 's/.* cov: \([0-9]*\).*/\1/p' | tail -1; }

failed=0
summary=()
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$t"
  corpus="$work/corpus/$t"
  artifacts="$work/artifacts/$t"
  dict="$work/$t.dict"
  mkdir -p "$corpus" "$artifacts" "$work/logs"
  for d in ${dicts[$t]}; do cat "tests/fuzz/$d.dict"; done > "$dict"
  dirs=("$corpus" "$work/seeds/$t")
  [ -d "tests/fuzz/regressions/$t" ] && dirs+=("tests/fuzz/regressions/$t")
  # WD_FUZZ_SEED fixes libFuzzer's mutation sequence (CI sets it, so a run
  # that finds nothing new today finds nothing new tomorrow); 0 = random.
  common=(-rss_limit_mb=2048 -timeout=10 -artifact_prefix="$artifacts/" -print_final_stats=1
          -seed="${WD_FUZZ_SEED:-0}")
  before=$(find "$artifacts" -type f | wc -l)

  # Every file once, at full length (no -max_len).
  log="$work/logs/$t.regress.log"
  echo "== fuzz $t: every corpus file once"
  result=ok
  "$bin" "${common[@]}" -runs=0 "${dirs[@]}" >"$log" 2>&1 || result="FAILED (corpus)"
  line="$(printf '%-16s corpus of %s files: %s' "$t" "$(find "${dirs[@]}" -type f | wc -l)" "$result")"

  if [ "$result" = ok ] && [ "$regress_only" = 0 ]; then
    log="$work/logs/$t.fuzz.log"
    echo "== fuzz $t: ${seconds}s"
    "$bin" "${common[@]}" -max_total_time="$seconds" -max_len="${max_len[$t]}" \
      -dict="$dict" "${dirs[@]}" >"$log" 2>&1 || result=FAILED
    line+="$(printf '; fuzz %ss: %s, runs %s, %s exec/s, cov %s -> %s, %s new units' "$seconds" \
      "$result" "$(stat number_of_executed_units "$log")" "$(stat average_exec_per_sec "$log")" \
      "$(cov "$log" 'INITED')" "$(cov "$log" 'cov: ')" "$(stat new_units_added "$log")")"
  fi
  new=$(($(find "$artifacts" -type f | wc -l) - before))
  if [ "$result" != ok ]; then
    failed=1
    grep -E "^weightdrop fuzz:|^SUMMARY|ERROR: libFuzzer|Test unit written|^==[0-9]+==ERROR" "$log" | head -8 | sed 's/^/   /'
    echo "   log: $log"
  fi
  [ "$new" -gt 0 ] && line+="; $new new artifact(s) in $artifacts" && failed=1
  summary+=("$line")
done

echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
exit "$failed"
