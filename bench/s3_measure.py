#!/usr/bin/python3
"""Times publishing to S3: weightdrop's one step against publish-then-rclone.

For every size it starts a fresh Ceph RGW (scripts/rgw.sh start), then runs
--reps repetitions, each of them both variants (A first in odd repetitions,
B first in even ones, so drift and the other's after-effects fall on both):

  A  weightdrop publish BUNDLE --to s3://weightdrop-test/bench-a --model m
  B  weightdrop publish BUNDLE --to LOCAL --model m
     rclone copy LOCAL/m/<v> rgw:weightdrop-test/bench-b/m/<v>
     rclone copy POINTERS rgw:weightdrop-test/bench-b/m   (weights_manifest.json,
        model.json if any, and `current` as a file: rclone skips symlinks)

B is timed as one (first process start to last exit) and per step. Before
every timed variant the bundle is read once (`cat > /dev/null`), so both read
it from the page cache. Every command runs under `/usr/bin/time -f '%e %M'`
for its peak RSS. After each variant its shards' MD5s (S3 ETags) are listed,
A's and B's compared, and the prefix purged and garbage-collected
(untimed), so the memstore holds at most one bundle. Called by bench/s3.sh;
see there for the options. Markdown report on stdout, raw samples to --raw.
"""

import argparse
import datetime
import hashlib
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RGW_SH = os.path.join(REPO, "scripts", "rgw.sh")
BUCKET = "weightdrop-test"
MIB = 1024 * 1024
RATIO_TARGET = 0.8
RGW_VERSION = "radosgw --version | cut -d' ' -f1-3"
RSS_TARGET_MIB = 128


def log(message):
    print(f"[s3 bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr,
          flush=True)


def parse_size(label):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    label = label.strip().upper().removesuffix("IB").removesuffix("B")
    if label[-1] in units:
        return int(float(label[:-1]) * units[label[-1]])
    return int(label)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Sample:
    def __init__(self, wall, rss_kib, cpu, rc, stdout, stderr):
        self.wall, self.rss_kib, self.cpu, self.rc = wall, rss_kib, cpu, rc
        self.stdout, self.stderr = stdout, stderr


def timed(cmd, time_file, env=None):
    """Runs cmd under /usr/bin/time; wall from the harness clock."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%e %M %U %S", "-o", time_file]
                          + cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    with open(time_file) as f:
        last = f.read().strip().splitlines()[-1].split()
    rss_kib = int(last[1]) if len(last) == 4 else 0
    cpu = float(last[2]) + float(last[3]) if len(last) == 4 else 0.0
    return Sample(wall, rss_kib, cpu, proc.returncode, proc.stdout, proc.stderr)


def read_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                env[key] = value.strip('"')
    return env


def rclone_env(base, rgw_dir):
    """os.environ plus what `rgw.sh rclone-env` prints (exports, unsets)."""
    env = dict(base)
    text = subprocess.run(["bash", RGW_SH, "rclone-env", rgw_dir], check=True,
                          capture_output=True, text=True).stdout
    for line in text.splitlines():
        words = line.split(None, 1)
        if len(words) == 2 and words[0] == "unset":
            env.pop(words[1].strip(), None)
        elif len(words) == 2 and words[0] == "export":
            key, value = words[1].split("=", 1)
            env[key] = value
    env["RCLONE_CONFIG"] = "/dev/null"  # the remote is all in the environment
    return env


class Rgw:
    """One RGW per size: scripts/rgw.sh start / stop in work/rgw."""

    def __init__(self, work):
        self.dir = os.path.join(work, "rgw")

    def __enter__(self):
        log(f"starting RGW in {self.dir}")
        subprocess.run(["bash", RGW_SH, "start", self.dir], check=True,
                       stdout=subprocess.DEVNULL)
        self.env = read_env_file(os.path.join(self.dir, "env"))
        return self

    def __exit__(self, *exc):
        log("stopping RGW")
        subprocess.run(["bash", RGW_SH, "stop", self.dir],
                       stdout=subprocess.DEVNULL)

    def cpu_seconds(self):
        """User + system CPU of mon, osd and radosgw so far."""
        total = 0
        for pid in self.env.get("RGW_PIDS", "").split():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def osd_rss_mib(self):
        pids = self.env.get("RGW_PIDS", "").split()
        if len(pids) < 2:
            return 0
        try:
            with open(f"/proc/{pids[1]}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0


class Bench:
    def __init__(self, args):
        self.args = args
        self.out = os.path.join(args.work, "out")
        self.time_file = os.path.join(args.work, "time.txt")
        self.samples = {}   # (variant, size) -> [dict]
        self.same = {}      # size -> ["yes" | "NO: ..."]
        self.load = {}      # size -> [loadavg before, after]
        self.raw = []

    # -- helpers -------------------------------------------------------------

    def rclone(self, *argv, check=True):
        proc = subprocess.run(["rclone", *argv], env=self.renv,
                              capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise SystemExit(f"rclone {' '.join(argv)} failed: "
                             f"{proc.stderr.strip()[-600:]}")
        return proc.stdout

    def purge(self, prefix):
        """Deletes every object under the prefix and runs RGW's gc now, so
        the memstore gives the memory back before the next run."""
        self.rclone("purge", f"rgw:{BUCKET}/{prefix}", check=False)
        subprocess.run(["radosgw-admin", "-c", self.rgw.env["CEPH_CONF"], "gc",
                        "process", "--include-all"], capture_output=True)

    def shard_md5s(self, prefix, version):
        text = self.rclone("md5sum", f"rgw:{BUCKET}/{prefix}/m/{version}",
                           "--include", "*.bin")
        return sorted(line for line in text.splitlines() if line.strip())

    def warm(self, bundle):
        subprocess.run(["sh", "-c", 'cat -- "$1" >/dev/null', "warm", bundle],
                       check=True)

    def record(self, variant, label, row):
        self.samples.setdefault((variant, label), []).append(row)
        self.raw.append([variant, label] + [f"{k}={v}" for k, v in row.items()])
        parts = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                          for k, v in row.items())
        log(f"{variant} {label}: {parts}")

    @staticmethod
    def version_of(sample):
        """weightdrop publish prints the version's location last."""
        lines = sample.stdout.strip().splitlines()
        return lines[-1].rstrip("/").rsplit("/", 1)[-1] if lines else ""

    # -- the two variants ----------------------------------------------------

    def run_a(self, label, bundle):
        self.purge("bench-a")
        self.warm(bundle)
        cmd = [self.args.bin, "publish", bundle, "--to",
               f"s3://{BUCKET}/bench-a", "--model", "m"]
        server0 = self.rgw.cpu_seconds()
        s = timed(cmd, self.time_file, env=self.wenv)
        server = self.rgw.cpu_seconds() - server0
        if s.rc != 0:
            log("  A failed: " + s.stderr.strip()[-600:])
            self.record("A", label, {"wall": s.wall, "rc": s.rc})
            return None
        osd = self.rgw.osd_rss_mib()
        version = self.version_of(s)
        md5s = self.shard_md5s("bench-a", version)
        self.record("A", label, {"wall": s.wall, "rss_mib": s.rss_kib / 1024,
                                 "rc": 0, "cpu": s.cpu, "server_cpu": server,
                                 "shards": len(md5s), "osd_rss_mib": osd})
        self.purge("bench-a")
        return md5s

    def run_b(self, label, bundle):
        self.purge("bench-b")
        local = os.path.join(self.out, "local")
        pointers = os.path.join(self.out, "pointers")
        for path in (local, pointers):
            shutil.rmtree(path, ignore_errors=True)
        self.warm(bundle)
        server0 = self.rgw.cpu_seconds()
        t0 = time.perf_counter()
        pub = timed([self.args.bin, "publish", bundle, "--to", local, "--model", "m"],
                    self.time_file, env=self.wenv)
        t1 = time.perf_counter()
        if pub.rc != 0:
            log("  B publish failed: " + pub.stderr.strip()[-600:])
            self.record("B", label, {"wall": t1 - t0, "rc": pub.rc})
            return None
        version = self.version_of(pub)
        dest = f"rgw:{BUCKET}/bench-b/m"
        copy = timed(["rclone", "copy", os.path.join(local, "m", version),
                      f"{dest}/{version}"], self.time_file, env=self.renv)
        t2 = time.perf_counter()
        # The pointers, after the version they name (as weightdrop orders
        # them): the model-level manifest (and model.json) and `current`.
        os.makedirs(pointers)
        for name in ("weights_manifest.json", "model.json"):
            src = os.path.join(local, "m", name)
            if os.path.exists(src):
                shutil.copyfile(src, os.path.join(pointers, name))
        with open(os.path.join(pointers, "current"), "w") as f:
            f.write(os.readlink(os.path.join(local, "m", "current")) + "\n")
        ptr = timed(["rclone", "copy", pointers, dest], self.time_file,
                    env=self.renv)
        t3 = time.perf_counter()
        server = self.rgw.cpu_seconds() - server0
        rc = copy.rc or ptr.rc
        if rc != 0:
            log("  B rclone failed: " + (copy.stderr + ptr.stderr).strip()[-600:])
        osd = self.rgw.osd_rss_mib()
        md5s = self.shard_md5s("bench-b", version) if rc == 0 else None
        self.record("B", label, {
            "wall": t3 - t0, "rc": rc, "publish": t1 - t0, "rclone": t2 - t1,
            "pointers": t3 - t2, "cpu": pub.cpu + copy.cpu + ptr.cpu,
            "publish_cpu": pub.cpu, "rclone_cpu": copy.cpu + ptr.cpu,
            "server_cpu": server, "rss_mib": pub.rss_kib / 1024,
            "rclone_rss_mib": max(copy.rss_kib, ptr.rss_kib) / 1024,
            "shards": len(md5s or []), "osd_rss_mib": osd})
        self.purge("bench-b")
        for path in (local, pointers):
            shutil.rmtree(path, ignore_errors=True)
        return md5s

    # -- the run -------------------------------------------------------------

    def run(self):
        os.makedirs(self.out, exist_ok=True)
        self.started = datetime.datetime.now(datetime.timezone.utc)
        for label in self.args.sizes:
            bundle = os.path.join(self.args.work, "bundles", label, "stored.npz")
            with Rgw(self.args.work) as self.rgw:
                self.wenv = dict(os.environ, **{k: v for k, v in self.rgw.env.items()
                                                if k.startswith("AWS_")})
                self.renv = rclone_env(os.environ, self.rgw.dir)
                self.load[label] = [loadavg()]
                for rep in range(self.args.reps):
                    order = ["A", "B"] if rep % 2 == 0 else ["B", "A"]
                    log(f"size {label}: repetition {rep + 1} of "
                        f"{self.args.reps} ({' then '.join(order)})")
                    md5s = {}
                    for variant in order:
                        run = self.run_a if variant == "A" else self.run_b
                        md5s[variant] = run(label, bundle)
                    if md5s["A"] is None or md5s["B"] is None:
                        verdict = "—"
                    elif md5s["A"] == md5s["B"]:
                        verdict = "yes"
                    else:
                        verdict = "NO"
                    self.same.setdefault(label, []).append(verdict)
                self.load[label].append(loadavg())
        self.finished = datetime.datetime.now(datetime.timezone.utc)


# ---- the report ----------------------------------------------------------------

def med(rows, key):
    if not rows or any(r.get("rc") != 0 for r in rows):
        return None
    return statistics.median(r[key] for r in rows)


def fmt(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f}"


def shell(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True,
                              shell=True).stdout.strip()
    except OSError:
        return "?"


def describe_binary(path):
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    return f"sha256 {digest}…"


COLUMNS = ["size", "A s", "A MiB/s", "A RSS MiB", "B s", "B: publish s",
           "B: rclone copy s", "B: pointers s", "B MiB/s", "A/B",
           "A/B per repetition",
           f"A/B ≤ {RATIO_TARGET}", f"A RSS ≤ {RSS_TARGET_MIB} MiB",
           "rclone RSS MiB", "shards", "same shards"]


def row(bench, label):
    a = bench.samples.get(("A", label), [])
    b = bench.samples.get(("B", label), [])
    a_s, b_s = med(a, "wall"), med(b, "wall")
    a_rss = None if med(a, "rss_mib") is None else max(r["rss_mib"] for r in a)
    mib = parse_size(label) / MIB
    ratio = None if a_s is None or not b_s else a_s / b_s
    same = bench.same.get(label, [])
    verdict = "yes" if same and all(v == "yes" for v in same) else ",".join(same) or "—"
    shards = med(a, "shards")
    # A and B of the same repetition ran back to back: their ratio shows
    # the spread that the medians hide.
    paired = ", ".join(f"{x['wall'] / y['wall']:.2f}" for x, y in zip(a, b)
                       if x.get("rc") == 0 and y.get("rc") == 0)
    return [label, fmt(a_s, 3), fmt(None if a_s is None else mib / a_s, 0),
            fmt(a_rss, 1), fmt(b_s, 3), fmt(med(b, "publish"), 3),
            fmt(med(b, "rclone"), 3), fmt(med(b, "pointers"), 3),
            fmt(None if b_s is None else mib / b_s, 0), fmt(ratio), paired or "—",
            "—" if ratio is None else ("PASS" if ratio <= RATIO_TARGET else "**MISS**"),
            "—" if a_rss is None else ("PASS" if a_rss <= RSS_TARGET_MIB else "**MISS**"),
            fmt(med(b, "rclone_rss_mib"), 0), fmt(shards, 0), verdict]


def report(bench):
    a = bench.args
    cpu = shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-").strip()
    mem = shell("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    lines = [
        "## S3 publish: weightdrop → RGW (A) vs publish + rclone (B)", "",
        f"- command: `{a.cmdline}`",
        f"- when: {bench.started:%Y-%m-%d %H:%M}–{bench.finished:%H:%M} UTC; "
        f"median of {a.reps} repetitions per size, A and B alternating "
        "(A first in odd repetitions, B first in even ones)",
        f"- machine: nproc {os.cpu_count()}, CPU {cpu}, RAM {mem}, kernel "
        f"{platform.release()}; load average (1/5/15 min) before → after each "
        "size: " + "; ".join(f"{k}: {v[0]} → {v[-1]}" for k, v in bench.load.items()),
        f"- weightdrop: `{a.bin}` ({describe_binary(a.bin)}), {a.build_note}",
        f"- rclone: {shell('rclone version | head -1')} (defaults: 4 transfers, "
        f"8 checkers); Ceph RGW: {shell(RGW_VERSION)}, "
        "one radosgw + one memstore OSD on 127.0.0.1 (scripts/rgw.sh), "
        "restarted per size",
        "- page cache: warm for both — the bundle is read once (`cat`) right "
        "before every timed A and B; B's local publish writes (and fsyncs) to "
        "ext4 on the virtual disk, and rclone reads those files back from the cache",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for label in a.sizes:
        lines.append("| " + " | ".join(row(bench, label)) + " |")
    lines += ["", "Where the CPU goes (medians, CPU-seconds: user + system; "
              "the machine has 2 × wall of it):", "",
              "| size | A wall | A: weightdrop CPU | A: RGW+OSD CPU | A CPU / (2 × wall) "
              "| B wall | B: weightdrop CPU | B: rclone CPU | B: RGW+OSD CPU "
              "| B CPU / (2 × wall) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label in a.sizes:
        ar = bench.samples.get(("A", label), [])
        br = bench.samples.get(("B", label), [])
        aw, bw = med(ar, "wall"), med(br, "wall")
        ac, asv = med(ar, "cpu"), med(ar, "server_cpu")
        bp, bc, bsv = med(br, "publish_cpu"), med(br, "rclone_cpu"), med(br, "server_cpu")
        abusy = None if None in (aw, ac, asv) else (ac + asv) / (2 * aw)
        bbusy = None if None in (bw, bp, bc, bsv) else (bp + bc + bsv) / (2 * bw)
        lines.append(f"| {label} | {fmt(aw)} | {fmt(ac)} | {fmt(asv)} | {fmt(abusy)} "
                     f"| {fmt(bw)} | {fmt(bp)} | {fmt(bc)} | {fmt(bsv)} | {fmt(bbusy)} |")
    lines += ["", "Every sample (seconds; A's peak RSS MiB in brackets):", ""]
    for label in a.sizes:
        arows = bench.samples.get(("A", label), [])
        brows = bench.samples.get(("B", label), [])
        lines.append(f"- {label}: A " + ", ".join(
            f"{r['wall']:.2f} [{r.get('rss_mib', 0):.0f}]" for r in arows)
            + "; B " + ", ".join(
            f"{r['wall']:.2f} (= {r.get('publish', 0):.2f} + "
            f"{r.get('rclone', 0):.2f} + {r.get('pointers', 0):.2f})" for r in brows))
    lines += [
        "",
        "A: `weightdrop publish BUNDLE --to s3://weightdrop-test/bench-a --model m`, "
        "one process: converts, uploads every shard as it is closed (4 parallel "
        "PUTs), then the version's JSON files and the pointers. "
        "B: `weightdrop publish BUNDLE --to LOCAL --model m`, then `rclone copy "
        "LOCAL/m/<v> rgw:weightdrop-test/bench-b/m/<v>` and `rclone copy` of the "
        "pointers (weights_manifest.json, model.json if any, `current`), timed "
        "from the first start to the last exit. Both publish version 1 of m into "
        "an empty prefix. A/B ≤ 0.8 and A's peak RSS ≤ 128 MiB are the targets "
        "(A RSS: the highest of the repetitions; the other columns are medians, "
        "so B's three steps need not add up to B). "
        "same shards: the shard objects' MD5s (ETags) of A and B are equal.",
        "",
    ]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bin", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--sizes", required=True)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--raw", required=True)
    p.add_argument("--cmdline", default="bash bench/s3.sh")
    p.add_argument("--build-note", default="")
    args = p.parse_args()
    args.sizes = [s for s in args.sizes.split(",") if s]
    # TERM (e.g. a timeout) must still stop the RGW: make it an exception.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    bench = Bench(args)
    try:
        bench.run()
    finally:
        with open(args.raw, "w") as f:
            for r in bench.raw:
                f.write("\t".join(r) + "\n")
    print(report(bench))


if __name__ == "__main__":
    main()
