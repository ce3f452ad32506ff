#!/usr/bin/env bash
# Instruction and heap profiles for issue 4: the same `weightdrop publish`
# runs under valgrind --tool=callgrind and heaptrack, for a binary built from
# the commit before the performance work and for the current one, side by
# side. Writes one Markdown report (default bench/results/profile.md).
#
#   bash bench/profile.sh [--before COMMIT] [--after BINARY] [--size 64M]
#                         [--out FILE] [--work DIR]
#
#   --before  commit to build the "before" binary from (default 015a203);
#             built in /tmp/wd-before-build from `git archive` (no git state
#             is touched) and reused while it matches the commit
#   --after   the "after" binary (default build/weightdrop of this checkout;
#             not built here)
#   --size    float32 bundle size, K/M/G = KiB/MiB/GiB (default 64M)
#   --out     report file (default bench/results/profile.md); a hand-written
#             block between <!-- commentary --> markers in it is kept
#   --work    bundles and profile data (default /tmp/wd-bench, as run.sh)
set -euo pipefail

bench_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$bench_dir/lib.sh"
repo=$(dirname "$bench_dir")
cmdline="bash bench/profile.sh${*:+ $*}"
before=015a203
after=$repo/build/weightdrop
size=64M
out=$bench_dir/results/profile.md
work=/tmp/wd-bench
python=/usr/bin/python3
before_src=/tmp/wd-before-src
before_build=/tmp/wd-before-build

while [[ $# -gt 0 ]]; do
  case $1 in
    --before) before=$2; shift 2 ;;
    --after) after=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "profile.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

say() { echo "[profile $(date +%H:%M:%S)] $*" >&2; }
die() { echo "profile.sh: $*" >&2; exit 1; }

check_tools() {
  local tool
  for tool in valgrind callgrind_annotate heaptrack heaptrack_print cmake git; do
    command -v "$tool" >/dev/null || die "'$tool' is not installed (Debian: valgrind, heaptrack, cmake, git)"
  done
  "$python" -c 'import numpy' 2>/dev/null || die "$python has no NumPy (apt-get install python3-numpy)"
  [[ -x $after ]] || die "no 'after' binary at $after: build it first (cmake --build build --target weightdrop)"
}

# Builds the "before" binary from `git archive COMMIT` unless the build dir
# already holds one for that commit. The source tree carries a stamp with the
# full commit id; a different commit starts from an empty tree.
build_before() {
  local sha
  sha=$(git -C "$repo" rev-parse --verify "$before^{commit}") || die "unknown commit '$before'"
  if [[ $(cat "$before_src/.wd-commit" 2>/dev/null) != "$sha" ]]; then
    say "extracting $before ($sha) into $before_src"
    rm -rf "$before_src" "$before_build"
    mkdir -p "$before_src"
    git -C "$repo" archive "$sha" | tar -x -C "$before_src"
    echo "$sha" >"$before_src/.wd-commit"
  fi
  if [[ ! -x $before_build/weightdrop ]]; then
    say "building $before in $before_build (RelWithDebInfo, -j2)"
    cmake -S "$before_src" -B "$before_build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DBUILD_TESTING=OFF >"$before_build.cmake.log" 2>&1 ||
      die "cmake configure failed, see $before_build.cmake.log"
    cmake --build "$before_build" -j2 --target weightdrop >"$before_build.build.log" 2>&1 ||
      die "build failed, see $before_build.build.log"
  fi
  before_sha=$sha
}

# One publish under a tool. $1 tool (callgrind|heaptrack), $2 binary label,
# $3 mode, $4 binary, rest: publish arguments after BUNDLE.
profile_run() {
  local tool=$1 label=$2 mode=$3 bin=$4 bundle=$5; shift 5
  local stem=$data/$label.$mode serve=$data/serve.$label.$mode.$tool start
  rm -rf "$serve"
  start=$(date +%s%N)
  case $tool in
    callgrind)
      valgrind --tool=callgrind --separate-threads=no \
        --callgrind-out-file="$stem.callgrind" \
        "$bin" publish "$bundle" --to "$serve" --model m "$@" >"$stem.callgrind.log" 2>&1 ||
        die "callgrind run failed ($label $mode), see $stem.callgrind.log"
      callgrind_annotate --threshold=100 "$stem.callgrind" >"$stem.annotate.txt" 2>&1 ;;
    heaptrack)
      heaptrack -o "$stem.heaptrack" "$bin" publish "$bundle" --to "$serve" --model m "$@" \
        >"$stem.heaptrack.log" 2>&1 || die "heaptrack run failed ($label $mode), see $stem.heaptrack.log"
      local trace
      for trace in "$stem".heaptrack.zst "$stem".heaptrack.gz ""; do [[ -f $trace ]] && break; done
      [[ -n $trace ]] || die "heaptrack wrote no $stem.heaptrack.zst/.gz"
      heaptrack_print -f "$trace" -p 1 -a 0 -T 0 -n 6 -s 1 >"$stem.heaptrack.txt" 2>&1 ||
        die "heaptrack_print failed ($label $mode)" ;;
  esac
  echo "$label $mode $tool $((($(date +%s%N) - start) / 1000000))" >>"$data/walltimes.tsv"
  [[ -d $serve/m/1 ]] || die "$label $mode under $tool published nothing in $serve/m/1"
}

# Same bytes check: the callgrind runs' published versions of before and
# after must be identical (publish.json apart from its "created" time), or
# the comparison would be meaningless.
compare_outputs() {
  local mode=$1
  local a=$data/serve.before.$mode.callgrind/m/1 b=$data/serve.after.$mode.callgrind/m/1
  local same=yes
  diff -r -x publish.json "$a" "$b" >/dev/null || same=NO
  diff <(grep -v '"created"' "$a/publish.json") <(grep -v '"created"' "$b/publish.json") >/dev/null ||
    same=NO
  echo "$mode $same" >>"$data/same_bytes.tsv"
  rm -rf "$data"/serve.*."$mode".*
}

check_tools
build_before
bytes=$(size_bytes "$size")
[[ -n $bytes ]] || die "bad size '$size'"
bundles=$work/bundles/$size
"$python" "$bench_dir/gen_bundles.py" "$bytes" "$bundles"
data=$work/profile/$size
rm -rf "$data"
mkdir -p "$data/after" "$(dirname "$out")"
# A snapshot, so that a rebuild of the checkout during the run cannot mix
# two binaries into the "after" numbers.
cp -p "$after" "$data/after/weightdrop"
"$data/after/weightdrop" --version >/dev/null 2>&1 || die "the copy of $after does not run (caught mid-link?)"
begin=$(date -u '+%Y-%m-%d %H:%M:%S')

modes=(stored-unquantized stored-uint8 stored-float16 deflated-unquantized)
# Sets args: the bundle and publish flags of mode $1.
mode_args() {
  case $1 in
    stored-unquantized) args=("$bundles/stored.npz") ;;
    stored-uint8) args=("$bundles/stored.npz" --quantize 'uint8=*') ;;
    stored-float16) args=("$bundles/stored.npz" --quantize 'float16=*') ;;
    deflated-unquantized) args=("$bundles/deflated.npz") ;;
  esac
}

for mode in "${modes[@]}"; do
  mode_args "$mode"
  for label in before after; do
    bin=$before_build/weightdrop
    [[ $label == after ]] && bin=$data/after/weightdrop
    for tool in callgrind heaptrack; do
      say "$tool: $label, $mode"
      profile_run "$tool" "$label" "$mode" "$bin" "${args[@]}"
    done
  done
  compare_outputs "$mode"
done

say "writing $out"
"$python" - "$data" "$out" "$cmdline" "$begin" "$before" "$before_sha" \
  "$before_build/weightdrop" "$after" "$data/after/weightdrop" "$repo" "$bundles" "${modes[@]}" <<'PY'
"""Turns the callgrind and heaptrack files in DATA into the Markdown report."""
import datetime
import hashlib
import os
import platform
import re
import subprocess
import sys
from collections import defaultdict

(data, out, cmdline, begin, before, before_sha, before_bin, after_src, after_bin,
 repo, bundles) = sys.argv[1:12]
modes = sys.argv[12:]
LABELS = ("before", "after")


def parse_callgrind(path):
    """Self Ir per (object, function) and inclusive Ir of calls per callee.

    Reads the callgrind format directly: ob/cob, fn/cfn and fl/fi/fe use name
    compression "(id) name" on first use. A cost line right after calls= is
    the call's inclusive cost; every other cost line is self cost of the
    current function.
    """
    names = {"ob": {}, "fn": {}}
    self_ir = defaultdict(int)
    calls_into = defaultdict(int)  # (caller ob, callee ob, callee fn) -> Ir
    summary = None
    ob = fn = cob = cfn = None
    in_call = False

    def name(table, value):
        m = re.match(r"\((\d+)\)(?: (.*))?$", value)
        if not m:
            return value
        if m.group(2) is not None:
            names[table][m.group(1)] = m.group(2)
        return names[table].get(m.group(1), "???")

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                ir = int(parts[1]) if len(parts) > 1 else 0
                if in_call:
                    calls_into[(ob, cob or ob, cfn)] += ir
                    in_call = False
                    cob = None  # written per call, only when it differs
                else:
                    self_ir[(ob, fn)] += ir
                continue
            key, _, value = line.partition("=")
            if key == "ob":
                ob = name("ob", value)
            elif key == "fn":
                fn = name("fn", value)
                cob = None
            elif key == "cob":
                cob = name("ob", value)
            elif key == "cfn":
                cfn = name("fn", value)
            elif key == "calls":
                in_call = True
            elif line.startswith("summary:") or line.startswith("totals:"):
                summary = int(line.split()[1])
    return self_ir, calls_into, summary


def annotate_total(path):
    with open(path, errors="replace") as f:
        for line in f:
            if "PROGRAM TOTALS" in line:
                return int(line.split()[0].replace(",", ""))
    return None


def short_ob(ob):
    if ob is None or ob == "???":
        return "(unknown object)"
    if ob in (before_bin, after_bin) or ob.endswith("/weightdrop"):
        return "weightdrop"
    return re.sub(r"\.so[.\d]*$", "", os.path.basename(ob))


SHA_ENTRIES = {"EVP_DigestUpdate", "EVP_DigestFinal_ex", "EVP_DigestInit_ex"}


def categories(self_ir, calls_into):
    """Ir per category; self cost except SHA-256 (inclusive via EVP_Digest*)."""
    cat = defaultdict(int)
    for (ob, fn), ir in self_ir.items():
        o = short_ob(ob)
        cat["total"] += ir
        if o == "libz":
            cat["crc32" if "crc32" in (fn or "") else "inflate"] += ir
        elif o == "libc" and re.search(r"mem(cpy|move)", fn or ""):
            cat["memcpy"] += ir
        elif o == "libc" and "memset" in (fn or ""):
            cat["memset"] += ir
        elif o == "weightdrop":
            cat["own"] += ir
        elif o.startswith("libcrypto"):
            cat["libcrypto"] += ir
    for (caller, callee_ob, cfn), ir in calls_into.items():
        if (cfn in SHA_ENTRIES and short_ob(callee_ob).startswith("libcrypto")
                and not short_ob(caller).startswith("libcrypto")):
            cat["sha256"] += ir
    cat["other"] = cat["total"] - sum(
        cat[k] for k in ("crc32", "inflate", "memcpy", "memset", "own", "libcrypto"))
    return cat


def by_object(self_ir):
    obs = defaultdict(int)
    for (ob, _), ir in self_ir.items():
        obs[short_ob(ob)] += ir
    return obs


def short_fn(fn):
    """Drops C++ parameter lists: `wd::F(float const*, ...)` -> `wd::F()`."""
    fn = (fn or "???").replace("(anonymous namespace)", "{anon}")
    while True:
        shorter = re.sub(r"\([^()]+\)", "()", fn)
        if shorter == fn:
            return fn
        fn = shorter


def top_functions(self_ir, n=8):
    rows = sorted(self_ir.items(), key=lambda kv: -kv[1])[:n]
    return [(short_fn(fn), short_ob(ob), ir) for (ob, fn), ir in rows]


SIZE_UNITS = {"B": 1, "K": 1e3, "M": 1e6, "G": 1e9}


def heap_bytes(text):
    m = re.match(r"([\d.]+)([BKMG]?)", text)
    return float(m.group(1)) * SIZE_UNITS.get(m.group(2) or "B", 1)


def parse_heaptrack(path):
    """Summary numbers and the top peak sites from heaptrack_print -p."""
    res = {"sites": []}
    text = open(path, errors="replace").read()
    patterns = {
        "allocs": r"calls to allocation functions: (\d+)",
        "temporary": r"temporary memory allocations: (\d+)",
        "peak_heap": r"peak heap memory consumption: (\S+)",
        "peak_rss": r"peak RSS \(including heaptrack overhead\): (\S+)",
        "leaked": r"total memory leaked: (\S+)",
    }
    for key, pat in patterns.items():
        m = re.search(pat, text)
        res[key] = m.group(1) if m else None
    peaks = text.split("PEAK MEMORY CONSUMERS", 1)[-1].split("\ntotal runtime", 1)[0]
    for block in re.split(r"\n(?=[\d.]+[BKMG]? peak memory consumed over)", peaks):
        m = re.match(r"([\d.]+[BKMG]?) peak memory consumed over (\d+) calls from\n", block)
        if m:
            res["sites"].append((m.group(1), int(m.group(2)), site_of(block)))
    return res


def site_of(block):
    """The first frame of a peak block that is in the project's own sources."""
    frames = re.findall(r"^\s*(\S.*)\n\s+at (\S+)", block, re.M)
    for func, where in frames:
        if re.search(r"/(core|daemon|config|drop|serve|state)/[^/]+:\d+$", where):
            rel = re.sub(r"^.*/((?:core|daemon|config|drop|serve|state)/)", r"\1", where)
            return f"`{func.strip()}` {rel}"
    return f"`{frames[0][0].strip()}`" if frames else "?"


def mir(ir):
    return f"{ir / 1e6:,.0f}"


def ratio(a, b):
    if not a:
        return "—"
    return f"{b / a:.2f}×"


def shell(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()


def sha_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def load():
    res = {}
    for mode in modes:
        for label in LABELS:
            stem = os.path.join(data, f"{label}.{mode}")
            self_ir, calls_into, summary = parse_callgrind(stem + ".callgrind")
            parsed = sum(self_ir.values())
            if summary != parsed:
                sys.exit(f"{stem}.callgrind: parsed {parsed} Ir but the file says {summary}")
            ann = annotate_total(stem + ".annotate.txt")
            if ann is not None and ann != parsed:
                sys.exit(f"{stem}: callgrind_annotate total {ann} != parsed {parsed}")
            res[(mode, label)] = {
                "cat": categories(self_ir, calls_into),
                "obs": by_object(self_ir),
                "top": top_functions(self_ir),
                "heap": parse_heaptrack(stem + ".heaptrack.txt"),
            }
    return res


def read_pairs(name):
    pairs = {}
    path = os.path.join(data, name)
    if os.path.exists(path):
        for line in open(path):
            parts = line.split()
            pairs[tuple(parts[:-1])] = parts[-1]
    return pairs


COLS = [("total", "Ir total (M)"), ("sha256", "SHA-256 (M)"), ("crc32", "crc32 (M)"),
        ("inflate", "inflate (M)"), ("memcpy", "memcpy/memmove (M)"),
        ("memset", "memset (M)"), ("own", "weightdrop code (M)"), ("other", "other (M)")]
HCOLS = [("peak_heap", "peak heap"), ("peak_rss", "peak RSS"),
         ("allocs", "allocation calls"), ("temporary", "temporary allocs")]


def header(lines):
    cpu = shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-")
    flags = shell("grep -m1 '^flags' /proc/cpuinfo")
    simd = ", ".join(f for f in ("avx2", "f16c", "avx512f", "sha_ni") if f" {f}" in flags)
    mem = int(shell("grep MemTotal /proc/meminfo | awk '{print $2}'") or 0) / 2**20
    head = shell(f"git -C {repo} rev-parse --short HEAD")
    dirty = shell(f"git -C {repo} status --porcelain --untracked-files=no")
    ht_version = shell("heaptrack --version 2>&1 | grep -o '[0-9][0-9.]*' | head -1")
    built = datetime.datetime.fromtimestamp(os.path.getmtime(after_bin)).strftime("%Y-%m-%d %H:%M:%S")
    lines += [
        f"# Profiles: callgrind and heaptrack, before vs after the performance work",
        "",
        f"- command: `{cmdline}`",
        f"- date: {begin} UTC, finished {datetime.datetime.utcnow():%H:%M:%S}",
        f"- machine: nproc {os.cpu_count()}, CPU {cpu.strip()} ({simd}), kernel "
        f"{platform.release()}, RAM {mem:.1f} GiB",
        f"- before: commit {before} ({before_sha[:10]}), built by this script from "
        f"`git archive` as RelWithDebInfo: `{before_bin}` sha256 {sha_of(before_bin)}…",
        f"- after: `{after_src}` (run from a copy taken at the start) sha256 "
        f"{sha_of(after_bin)}…, built {built}; checkout HEAD "
        f"{head}{' (tracked files modified)' if dirty else ''}",
        f"- bundles: `{bundles}` (bench/gen_bundles.py; float32 weights)",
        f"- tools: {shell('valgrind --version')} `--tool=callgrind --separate-threads=no` "
        f"(threads are serialized, Ir of all threads summed); heaptrack "
        f"{ht_version}",
        "- each run: `weightdrop publish BUNDLE --to FRESH_DIR --model m [--quantize DTYPE=*]`"
        " into an empty serve root",
        "",
        "How the Ir columns are made (parsed from the callgrind files; the parsed total is "
        "checked against the file's summary and `callgrind_annotate`'s PROGRAM TOTALS): "
        "*SHA-256* is inclusive Ir of calls into libcrypto's `EVP_DigestInit_ex/Update/Final_ex` "
        "(libcrypto is stripped, so its SHA-256 block function has no name); *crc32* is self Ir "
        "of libz's `crc32*`; *inflate* is all other self Ir in libz; *memcpy/memmove* and "
        "*memset* are self Ir of libc's variants; *weightdrop code* is self Ir in the weightdrop "
        "executable (including inlined libstdc++ templates); *other* is the rest "
        "(libcrypto outside SHA-256 entries, libzip, libstdc++, ld.so, malloc, …). "
        "Heap numbers are heaptrack_print's summary; heaptrack does not see mmap, "
        "peak RSS does (and includes heaptrack's own overhead).",
        "",
    ]


def summary_table(lines, res, same):
    lines += ["## Before vs after", "",
              "| mode | binary | " + " | ".join(t for _, t in COLS + HCOLS) + " | same bytes |",
              "|---|---|" + "---|" * (len(COLS) + len(HCOLS) + 1)]
    for mode in modes:
        b, a = res[(mode, "before")], res[(mode, "after")]
        for label, r in (("before", b), ("after", a)):
            cells = [mir(r["cat"][k]) for k, _ in COLS]
            cells += [r["heap"][k] or "?" for k, _ in HCOLS]
            lines.append(f"| {mode} | {label} | " + " | ".join(cells) + " | |")
        cells = [ratio(b["cat"][k], a["cat"][k]) for k, _ in COLS]
        for k, _ in HCOLS:
            vb, va = b["heap"][k], a["heap"][k]
            cells.append(ratio(heap_bytes(vb), heap_bytes(va)) if vb and va else "—")
        lines.append(f"| {mode} | **after/before** | " + " | ".join(cells)
                     + f" | {same.get((mode,), '?')} |")
    lines.append("")


def object_table(lines, res):
    obs = sorted({o for r in res.values() for o in r["obs"]},
                 key=lambda o: -max(r["obs"].get(o, 0) for r in res.values()))
    cols = [(m, l) for m in modes for l in LABELS]
    lines += ["## Ir by shared object (self cost, millions)", "",
              "| object | " + " | ".join(f"{m} {l}" for m, l in cols) + " |",
              "|---|" + "---|" * len(cols)]
    for o in obs:
        if max(res[c]["obs"].get(o, 0) for c in cols) < 1e5:
            continue
        lines.append(f"| {o} | " + " | ".join(
            f"{res[c]['obs'].get(o, 0) / 1e6:,.1f}" for c in cols) + " |")
    lines.append("")


def top_tables(lines, res):
    lines += ["## Top functions by self Ir", ""]
    for mode in modes:
        lines += [f"### {mode}", "", "| # | before: function (object) | M Ir | "
                  "after: function (object) | M Ir |", "|---|---|---|---|---|"]
        b, a = res[(mode, "before")]["top"], res[(mode, "after")]["top"]
        for i in range(max(len(b), len(a))):
            cb = f"`{b[i][0]}` ({b[i][1]}) | {mir(b[i][2])}" if i < len(b) else " | "
            ca = f"`{a[i][0]}` ({a[i][1]}) | {mir(a[i][2])}" if i < len(a) else " | "
            lines.append(f"| {i + 1} | {cb} | {ca} |")
        lines.append("")


def heap_sites(lines, res):
    lines += ["## Top heap allocation sites by peak (heaptrack, merged backtraces)", "",
              "First frame in the project's sources; heaptrack warns that merged peaks "
              "are approximate.", ""]
    for mode in modes:
        lines += [f"### {mode}", "", "| binary | peak | calls | site |", "|---|---|---|---|"]
        for label in LABELS:
            for size, calls, site in res[(mode, label)]["heap"]["sites"][:4]:
                lines.append(f"| {label} | {size} | {calls} | {site} |")
        lines.append("")


def moved(lines, res):
    """Derived sentences: totals and the categories that changed most."""
    lines += ["## What moved (generated from the numbers above)", ""]
    for mode in modes:
        b, a = res[(mode, "before")], res[(mode, "after")]
        deltas = sorted(((a["cat"][k] - b["cat"][k], t) for k, t in COLS[1:]),
                        key=lambda d: d[0])
        down = [f"{t.replace(' (M)', '')} {d / 1e6:+,.0f}M" for d, t in deltas if d < -1e6][:3]
        up = [f"{t.replace(' (M)', '')} {d / 1e6:+,.0f}M" for d, t in reversed(deltas) if d > 1e6][:2]
        hb, ha = b["heap"], a["heap"]
        lines.append(
            f"- **{mode}**: Ir {mir(b['cat']['total'])}M → {mir(a['cat']['total'])}M "
            f"({ratio(b['cat']['total'], a['cat']['total'])}); fell: {', '.join(down) or 'nothing'}; "
            f"rose: {', '.join(up) or 'nothing'}. Peak heap {hb['peak_heap']} → {ha['peak_heap']}, "
            f"allocation calls {hb['allocs']} → {ha['allocs']}, peak RSS {hb['peak_rss']} → "
            f"{ha['peak_rss']}.")
    lines.append("")


def walltimes(lines):
    t = read_pairs("walltimes.tsv")
    lines += ["## Wall time under the tools (s, informational only)", "",
              "| mode | binary | callgrind | heaptrack |", "|---|---|---|---|"]
    for mode in modes:
        for label in LABELS:
            cg = float(t.get((label, mode, "callgrind"), "nan")) / 1000
            ht = float(t.get((label, mode, "heaptrack"), "nan")) / 1000
            lines.append(f"| {mode} | {label} | {cg:.1f} | {ht:.1f} |")
    lines += ["", f"Raw files: `{data}` (`*.callgrind` for kcachegrind/callgrind_annotate, "
              "`*.heaptrack.zst` for heaptrack_gui, `*.heaptrack.txt`, `*.annotate.txt`).", ""]


def kept_commentary():
    if not os.path.exists(out):
        return []
    m = re.search(r"<!-- commentary -->.*?<!-- /commentary -->", open(out).read(), re.S)
    return [m.group(0), ""] if m else []


res = load()
lines = []
header(lines)
summary_table(lines, res, read_pairs("same_bytes.tsv"))
moved(lines, res)
lines += kept_commentary()
object_table(lines, res)
top_tables(lines, res)
heap_sites(lines, res)
walltimes(lines)
with open(out, "w") as f:
    f.write("\n".join(lines))
print("\n".join(lines))
PY
say "report saved to $out"
