#!/usr/bin/python3
"""Times weightdrop publish against the NumPy baseline and the physical floors.

For every size x format x mode it runs, interleaved within each repetition:
weightdrop publish (a new version of a model in a set-up serve folder),
bench/numpy_baseline.py, cp + fsync
of the bundle and a cold read of it (once per size x format) and, for deflated .npz, inflate_only
(once per size). Every timed command runs under `/usr/bin/time -f '%e %M'`,
after `sync; echo 3 > /proc/sys/vm/drop_caches` when that works. Prints a
Markdown report (header, table, legend) on stdout and the raw samples as TSV
to --raw. Called by bench/run.sh; see there for the options.
"""

import argparse
import datetime
import filecmp
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
FORMATS = [("stored .npz", "stored.npz"), ("deflated .npz", "deflated.npz"),
           ("npy folder", "npy")]
MODES = ["unquantized", "uint8", "float16"]
MIB = 1024 * 1024
RSS_TARGET_MIB = 96


def default_reps(size):
    """Small runs are short and the virtual disk's latency varies run to run
    (cp+sync of 64M: 0.08-0.16 s): more repetitions keep the medians stable."""
    if size < 256 << 20:
        return 7
    return 3 if size < 2 << 30 else 1


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr,
          flush=True)


def parse_size(label):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    label = label.strip().upper().removesuffix("IB").removesuffix("B")
    if label[-1] in units:
        return int(float(label[:-1]) * units[label[-1]])
    return int(label)


# ---- running one timed command -----------------------------------------------

def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def caches_droppable():
    try:
        drop_caches()
        return True
    except OSError:
        return False


class Sample:
    def __init__(self, wall, rss_kib, rc, stdout, stderr):
        self.wall, self.rss_kib, self.rc = wall, rss_kib, rc
        self.stdout, self.stderr = stdout, stderr


def timed(cmd, drop, time_file, warm_up=None):
    """Runs cmd under /usr/bin/time; wall from the harness clock (µs).

    With drop, the page cache is emptied first and then warm_up (the tool's
    own executable and libraries, never the bundle) is run untimed, so only
    the bundle is read cold.
    """
    if drop:
        drop_caches()
        subprocess.run(["/usr/bin/time", "-f", "", "-o", os.devnull]
                       + (warm_up or ["true"]), capture_output=True)
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", time_file]
                          + cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    with open(time_file) as f:
        last = f.read().strip().splitlines()[-1].split()
    rss_kib = int(last[1]) if len(last) == 2 else 0
    return Sample(wall, rss_kib, proc.returncode, proc.stdout, proc.stderr)


# ---- the bench ----------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.out = os.path.join(args.work, "out")
        self.time_file = os.path.join(args.work, "time.txt")
        self.drop = caches_droppable() and not args.warm
        self.samples = {}  # (tool, size, format, mode) -> [Sample]
        self.same = {}  # (size, format, mode) -> "yes" / "NO: ..."
        self.commit = git_head()
        self.builds = []
        self.digests = {}  # [(identity, description)] in order of first use
        self.raw = []

    def record(self, key, sample):
        self.samples.setdefault(key, []).append(sample)
        self.raw.append(list(key) + [f"{sample.wall:.4f}", str(sample.rss_kib),
                                     str(sample.rc)])
        status = "" if sample.rc == 0 else f" FAILED rc={sample.rc}"
        log(f"{' '.join(k for k in key if k)}: {sample.wall:.3f} s, "
            f"{sample.rss_kib / 1024:.0f} MiB{status}")
        if sample.rc != 0:
            log("  stderr: " + sample.stderr.strip()[-600:])

    def fresh(self, name):
        path = os.path.join(self.out, name)
        shutil.rmtree(path, ignore_errors=True)
        if os.path.exists(path):
            os.remove(path)
        return path

    def build_number(self):
        """1-based number of the weightdrop build about to run.

        The binary may be relinked under us; a new mtime/size is a new build.
        """
        for _ in range(60):
            try:
                st = os.stat(self.args.bin)
                if st.st_mode & 0o111:
                    break
            except FileNotFoundError:
                pass
            time.sleep(2)
        else:
            raise SystemExit(f"{self.args.bin}: missing or not executable")
        identity = (st.st_mtime_ns, st.st_size)
        if identity not in self.digests:  # hash only when mtime/size move
            self.digests[identity] = describe_binary(self.args.bin)
        described = self.digests[identity]
        known = [d for _, d in self.builds]
        same = [n for n, d in enumerate(known) if d.split(",")[0] ==
                described.split(",")[0]]
        if same:
            return same[0] + 1
        self.builds.append((identity, described))
        return len(self.builds)

    def fresh_serve(self):
        """A serve folder as production has it after the first publish: an
        untimed publish of a tiny bundle leaves S/.staging, S/m, its lock and
        version 1, so the timed publish makes version 2 of an existing model
        (creating those folders on a cold cache costs ~20 ms that no later
        publish pays)."""
        serve = self.fresh("serve")
        tiny = os.path.join(self.out, "tiny.npz")
        if not os.path.exists(tiny):
            numpy.savez(tiny, w=numpy.zeros(16, numpy.float32))
        subprocess.run([self.args.bin, "publish", tiny, "--to", serve, "--model", "m"],
                       check=True, stdout=subprocess.DEVNULL)
        return serve

    def run_weightdrop(self, bundle, mode):
        cmd = [self.args.bin, "publish", bundle, "--to", self.fresh_serve(),
               "--model", "m"]
        if mode != "unquantized":
            cmd += ["--quantize", f"{mode}=*"]
        for attempt in range(3):
            build = self.build_number()
            sample = timed(cmd, self.drop, self.time_file,
                           [self.args.bin, "--version"])
            sample.build = build
            if sample.rc == 0:
                return sample
            log(f"weightdrop failed (attempt {attempt + 1}), retrying in 10 s")
            time.sleep(10)
            cmd[4] = self.fresh_serve()
        return sample

    def run_numpy(self, bundle, mode):
        cmd = [sys.executable, os.path.join(HERE, "numpy_baseline.py"), bundle,
               self.fresh("numpy")]
        if mode != "unquantized":
            cmd += ["--quantize", mode]
        return timed(cmd, self.drop, self.time_file,
                     [sys.executable, "-c", "import numpy, json, io, argparse"])

    def run_cp(self, bundle):
        dest = self.fresh("cp")
        cmd = ["sh", "-c",
               'cp -r -- "$1" "$2" && find "$2" -type f -exec sync -- {} +',
               "cp", bundle, dest]
        sample = timed(cmd, self.drop, self.time_file,
                       ["sh", "-c", "cp --version; sync --version"])
        self.fresh("cp")
        return sample

    def run_read(self, bundle):
        cmd = ["sh", "-c", 'find "$1" -type f -exec cat -- {} + >/dev/null',
               "read", bundle]
        return timed(cmd, self.drop, self.time_file,
                     ["sh", "-c", "find --version; cat --version"])

    def run_inflate(self, bundle):
        return timed([self.args.inflate, bundle], self.drop, self.time_file,
                     [self.args.inflate])

    def compare(self, wd_sample, np_sample):
        if wd_sample.rc != 0 or np_sample.rc != 0:
            return "—"
        version = wd_sample.stdout.strip().splitlines()[-1]
        numpy_dir = os.path.join(self.out, "numpy")
        return compare_outputs(version, numpy_dir)

    def one_format(self, label, fmt_label, bundle, first):
        self.record(("cp+sync", label, fmt_label, ""), self.run_cp(bundle))
        self.record(("read", label, fmt_label, ""), self.run_read(bundle))
        if bundle.endswith("deflated.npz"):
            self.record(("inflate", label, fmt_label, ""),
                        self.run_inflate(bundle))
        for mode in MODES:
            wd = self.run_weightdrop(bundle, mode)
            self.record(("weightdrop", label, fmt_label, mode), wd)
            numpy = self.run_numpy(bundle, mode)
            self.record(("numpy", label, fmt_label, mode), numpy)
            if first:
                verdict = self.compare(wd, numpy)
                self.same[(label, fmt_label, mode)] = verdict
                log(f"  same bytes as the NumPy baseline: {verdict}")
            self.fresh("serve")
            self.fresh("numpy")

    def run(self):
        os.makedirs(self.out, exist_ok=True)
        for label in self.args.sizes:
            reps = self.args.reps or default_reps(parse_size(label))
            for rep in range(reps):
                log(f"size {label}: repetition {rep + 1} of {reps}")
                for fmt_label, name in FORMATS:
                    bundle = os.path.join(self.args.work, "bundles", label, name)
                    self.one_format(label, fmt_label, bundle, rep == 0)


def compare_outputs(version_dir, numpy_dir):
    """'yes' when every shard is byte-identical and the manifests parse equal."""
    shards = sorted(f for f in os.listdir(numpy_dir) if f.endswith(".bin"))
    theirs = sorted(f for f in os.listdir(version_dir) if f.endswith(".bin"))
    if shards != theirs:
        return f"NO: shard files differ ({len(theirs)} vs {len(shards)})"
    for shard in shards:
        if not filecmp.cmp(os.path.join(numpy_dir, shard),
                           os.path.join(version_dir, shard), shallow=False):
            return f"NO: {shard} differs"
    manifests = []
    for folder in (numpy_dir, version_dir):
        with open(os.path.join(folder, "weights_manifest.json")) as f:
            manifests.append(json.load(f))
    return "yes" if manifests[0] == manifests[1] else "NO: manifest differs"


# ---- the report --------------------------------------------------------------

def median(samples, field):
    if not samples or any(s.rc != 0 for s in samples):
        return None
    return statistics.median(getattr(s, field) for s in samples)


def fmt(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f}"


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def verdict(value, limit, at_least=False):
    if value is None:
        return "—"
    ok = value >= limit if at_least else value <= limit
    return "PASS" if ok else "**MISS**"


def row_cells(bench, label, fmt_label, mode):
    s = bench.samples
    wd = median(s.get(("weightdrop", label, fmt_label, mode)), "wall")
    wd_rss = median(s.get(("weightdrop", label, fmt_label, mode)), "rss_kib")
    np_s = median(s.get(("numpy", label, fmt_label, mode)), "wall")
    np_rss = median(s.get(("numpy", label, fmt_label, mode)), "rss_kib")
    cp = median(s.get(("cp+sync", label, fmt_label, "")), "wall")
    read = median(s.get(("read", label, fmt_label, "")), "wall")
    infl = median(s.get(("inflate", label, fmt_label, "")), "wall")
    unq = median(s.get(("weightdrop", label, fmt_label, "unquantized")), "wall")
    quantized = mode != "unquantized"
    wd_cp, np_wd = ratio(wd, cp), ratio(np_s, wd)
    q_unq = ratio(wd, unq) if quantized else None
    wd_infl = ratio(wd, infl)
    rss_mib = None if wd_rss is None else wd_rss / 1024
    mibs = None if wd is None else parse_size(label) / MIB / wd
    return [
        label, fmt_label, mode, fmt(wd, 3), fmt(mibs, 0),
        fmt(rss_mib, 1), fmt(np_s, 3),
        fmt(None if np_rss is None else np_rss / 1024, 0), fmt(cp, 3),
        fmt(read, 3),
        fmt(infl, 3), fmt(wd_cp),
        verdict(wd_cp, 1.3) if fmt_label == "stored .npz" and not quantized
        else "", fmt(np_wd, 1), verdict(np_wd, 5, True) if quantized else "",
        fmt(q_unq), verdict(q_unq, 1.3) if quantized else "",
        fmt(wd_infl) if infl else "", verdict(wd_infl, 1.3) if infl else "",
        verdict(rss_mib, RSS_TARGET_MIB),
        bench.same.get((label, fmt_label, mode), "—"),
    ] + ([builds_of(s.get(("weightdrop", label, fmt_label, mode)))]
         if len(bench.builds) > 1 else [])


def builds_of(samples):
    return ",".join(str(n) for n in sorted({getattr(s, "build", 0)
                                            for s in samples or []}))


COLUMNS = ["size", "format", "mode", "weightdrop s", "MiB/s", "RSS MiB",
           "numpy s", "numpy RSS MiB", "cp+sync s", "read s", "inflate s", "wd/cp",
           "≤1.3×cp", "numpy/wd", "≥5×numpy", "wd_q/wd_unq", "≤1.3×unq",
           "wd/inflate", "≤1.3×inflate", "RSS ≤96 MiB", "same bytes"]


def table(bench):
    columns = COLUMNS + (["build"] if len(bench.builds) > 1 else [])
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for label in bench.args.sizes:
        for fmt_label, _ in FORMATS:
            for mode in MODES:
                lines.append("| " + " | ".join(
                    row_cells(bench, label, fmt_label, mode)) + " |")
    return lines


def shell(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True,
                              shell=True).stdout.strip()
    except OSError:
        return "?"


def bundle_facts(bench):
    facts = []
    for label in bench.args.sizes:
        folder = os.path.join(bench.args.work, "bundles", label)
        with open(os.path.join(folder, "complete.json")) as f:
            weights = json.load(f)["weights"]
        sizes = {name: os.path.getsize(os.path.join(folder, name)) / MIB
                 for name in ("stored.npz", "deflated.npz")}
        facts.append(f"{label}: {weights} float32 weights; stored.npz "
                     f"{sizes['stored.npz']:.1f} MiB, deflated.npz "
                     f"{sizes['deflated.npz']:.1f} MiB")
    return "; ".join(facts)


def describe_binary(path):
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    built = datetime.datetime.fromtimestamp(os.stat(path).st_mtime)
    return f"sha256 {digest}…, built {built:%Y-%m-%d %H:%M:%S}"


def binary_facts(bench):
    if len(bench.builds) == 1:
        return f"`{bench.args.bin}` {bench.builds[0][1]}"
    listed = "; ".join(f"build {n} {d}" for n, (_, d)
                       in enumerate(bench.builds, 1))
    return (f"`{bench.args.bin}` — **the binary was rebuilt during the run**, "
            f"the `build` column says which rows ran which: {listed}")


def git_head():
    return shell(f"git -C {HERE}/.. rev-parse --short HEAD")


def commits(bench):
    end = git_head()
    if end == bench.commit:
        return end
    return f"{bench.commit} at the start, {end} at the end"


def header(bench, started):
    cpu = shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-")
    flags = shell("grep -m1 '^flags' /proc/cpuinfo")
    simd = ", ".join(f for f in ("avx2", "f16c", "avx512f") if f" {f}" in flags)
    reps = bench.args.reps or "7 for sizes < 256M, 3 below 2G, 1 at 2G and above"
    caches = ("dropped before every timed command (`sync; echo 3 > "
              "/proc/sys/vm/drop_caches`), then the tool's own executable warmed by an "
              "untimed `--version`-style run: the bundle is read cold" if bench.drop else
              "NOT dropped (warm page cache for every row)")
    return [
        "## weightdrop publish vs NumPy baseline vs cp+sync",
        "",
        f"- command: `{bench.args.cmdline}`",
        f"- date: {started:%Y-%m-%d %H:%M:%S %Z}, finished "
        f"{datetime.datetime.now().astimezone():%H:%M:%S}",
        f"- machine: nproc {os.cpu_count()}, CPU {cpu.strip()} ({simd}), "
        f"kernel {platform.release()}, RAM "
        f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.1f} GiB",
        f"- git commit: {commits(bench)};"
        f" weightdrop binary: {binary_facts(bench)}",
        f"- page cache: {caches}",
        f"- repetitions: median of {reps}; NumPy {numpy.__version__}, "
        f"Python {platform.python_version()}",
        f"- bundles ({bench.args.work}/bundles): {bundle_facts(bench)}",
    ]


LEGEND = [
    "",
    "Seconds are wall time measured by the harness around "
    "`/usr/bin/time -f '%e %M'` (which gives 10 ms resolution; RSS is its "
    "`%M`, peak resident KiB). MiB/s = float32 weight bytes / weightdrop s. "
    "weightdrop publish writes version 2 of model m into a serve folder "
    "that an untimed publish of a 64-byte bundle set up, as production has it "
    "after the first publish (staging, fsync, sha256, publish.json, "
    "pointers, all timed). numpy = bench/numpy_baseline.py "
    "(load all, cast, quantize per docs/formats.md, stack the group in a BytesIO as "
    "write_weights does, 4 MiB shards, "
    "fsync each, manifest). cp+sync = `cp -r BUNDLE DEST` then `sync FILE...` "
    "on the copied files (fsync each: durable like weightdrop's output and "
    "not charged for other processes' dirty pages; the "
    "physical floor: same bytes read and written once). read = `cat` of "
    "the bundle's files to /dev/null (the floor when the output is smaller "
    "than the input, as with uint8 and float16). inflate = "
    "bench/inflate_only (system zlib inflates every member, output "
    "discarded). Targets from issue 4: wd/cp ≤ 1.3 for unquantized stored "
    ".npz; numpy/wd ≥ 5 and wd_q/wd_unq ≤ 1.3 for uint8 and float16; "
    "wd/inflate ≤ 1.3 for deflated .npz; weightdrop peak RSS ≤ 96 MiB. "
    "`same bytes` = shards byte-identical and manifests equal between "
    "weightdrop's version folder and the NumPy baseline (first repetition).",
]


def summary(lines):
    text = "\n".join(lines)
    passed, missed = text.count("| PASS"), text.count("**MISS**")
    return ["", f"Targets in this table: {passed} PASS, {missed} MISS."]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--inflate", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--sizes", required=True)
    parser.add_argument("--reps", type=int, default=0)
    parser.add_argument("--raw", required=True)
    parser.add_argument("--cmdline", default="")
    parser.add_argument("--warm", action="store_true")
    args = parser.parse_args()
    args.sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    started = datetime.datetime.now().astimezone()
    bench = Bench(args)
    log("page cache is " + ("dropped" if bench.drop else "NOT dropped") +
        " before each timed command")
    bench.run()
    rows = table(bench)
    print("\n".join(header(bench, started) + [""] + rows + summary(rows)
                    + LEGEND))
    with open(args.raw, "w") as f:
        f.write("tool\tsize\tformat\tmode\twall_s\trss_kib\trc\n")
        for entry in bench.raw:
            f.write("\t".join(entry) + "\n")


if __name__ == "__main__":
    main()
