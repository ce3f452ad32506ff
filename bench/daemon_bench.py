#!/usr/bin/python3
"""Daemon benchmark: drop-to-current latency, a burst, and peak memory.

1. Latency: `weightdrop run` with one watch (settle 2s). N bundles of 1 MiB,
   all named lat.npz (so each is a new version of model `lat`), are renamed
   into the drop folder one after another; for each, the time from the
   rename to S/lat/current pointing at a new version (polled with 0.2 ms
   sleeps). Reports p50 / p95 / max.
2. Burst: a fresh daemon with three watches (three drop folders, one serve
   root). M bundles of ~100 KiB with distinct names (model `{stem}`) are
   renamed in round-robin as fast as possible; the time until every one is
   in its drop/.weightdrop/done/ and has S/<model>/current. Then the daemon's
   peak RSS (VmHWM in /proc/<pid>/status).
Readiness comes from the daemon's own sd_notify READY=1 (NOTIFY_SOCKET points
at a socket of ours). Prints a Markdown section on stdout.

Usage: daemon_bench.py --bin WEIGHTDROP --work DIR [--latency N] [--burst M]
"""

import argparse
import hashlib
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

import numpy as np

LATENCY_P50_MS, LATENCY_P95_MS = 50, 150
BURST_S, RSS_MIB = 60, 128
TIMEOUT_S = 120


def log(message):
    print(f"[daemon-bench {time.strftime('%H:%M:%S')}] {message}",
          file=sys.stderr, flush=True)


def write_bundle(path, seed, shape):
    rng = np.random.default_rng(seed)
    np.savez(path, **{"dense/kernel": rng.standard_normal(shape, np.float32),
                      "dense/bias": rng.standard_normal(shape[-1:], np.float32)})


class Daemon:
    """A `weightdrop run` child with its config, log and sd_notify socket."""

    def __init__(self, binary, root, watches):
        self.root = root
        lines = ["state_dir: state", "watches:"]
        for drop in watches:
            lines += [f"  - drop: {drop}", "    serve: serve",
                      '    model: "{stem}"', "    settle: 2s"]
        self.config = os.path.join(root, "weightdrop.yaml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log_path = os.path.join(root, "daemon.log")
        notify_path = os.path.join(root, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(notify_path)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path)
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary, "run", "--config", self.config],
                                     stdout=self.log_file,
                                     stderr=subprocess.STDOUT, env=env)
        self.wait_ready()

    def wait_ready(self):
        self.notify.settimeout(0.2)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.fail(f"exited with {self.proc.returncode} before READY=1")
            try:
                if b"READY=1" in self.notify.recv(4096):
                    return
            except socket.timeout:
                pass
        self.fail("sent no READY=1 within 20 s")

    def fail(self, why):
        self.proc.kill()
        with open(self.log_path) as f:
            tail = f.read()[-3000:]
        raise SystemExit(f"weightdrop run: {why}; log {self.log_path}:\n{tail}")

    def peak_rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = "killed after 30 s"
        self.log_file.close()
        self.notify.close()
        return code


def fresh_root(path, *folders):
    shutil.rmtree(path, ignore_errors=True)
    for folder in folders:
        os.makedirs(os.path.join(path, folder))
    return path


def read_link(path):
    try:
        return os.readlink(path)
    except OSError:
        return None


def wait_for_new_version(current, previous, start):
    deadline = start + TIMEOUT_S
    while True:
        target = read_link(current)
        if target is not None and target != previous:
            return time.perf_counter() - start, target
        if time.perf_counter() > deadline:
            return math.inf, previous
        time.sleep(0.0002)


def wait_until_gone(path):
    deadline = time.monotonic() + TIMEOUT_S
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.001)


def latency(binary, work, count):
    root = fresh_root(os.path.join(work, "latency"), "drop", "serve", "stage")
    for i in range(count):  # 1 MiB + a small bias, distinct contents
        os.makedirs(os.path.join(root, "stage", str(i)))
        write_bundle(os.path.join(root, "stage", str(i), "lat.npz"), i,
                     (512, 512))
    daemon = Daemon(binary, root, ["drop"])
    current = os.path.join(root, "serve", "lat", "current")
    dropped = os.path.join(root, "drop", "lat.npz")
    times, previous = [], None
    for i in range(count):
        start = time.perf_counter()
        os.rename(os.path.join(root, "stage", str(i), "lat.npz"), dropped)
        elapsed, previous = wait_for_new_version(current, previous, start)
        times.append(elapsed)
        if elapsed == math.inf:
            log(f"bundle {i}: current did not move within {TIMEOUT_S} s")
            break
        wait_until_gone(dropped)  # claimed and moved on before the next
    peak = daemon.peak_rss_mib()
    code = daemon.stop()
    log(f"latency run: {len(times)} bundles, daemon exit {code}")
    return times, peak, code


def count_done(drops):
    total = 0
    for drop in drops:
        try:
            total += len(os.listdir(os.path.join(drop, ".weightdrop", "done")))
        except FileNotFoundError:
            pass
    return total


def burst(binary, work, count):
    names = ["drop0", "drop1", "drop2"]
    root = fresh_root(os.path.join(work, "burst"), *names, "serve", "stage")
    for i in range(count):  # 160x160 float32 = 100 KiB
        write_bundle(os.path.join(root, "stage", f"b{i:03d}.npz"), 1000 + i,
                     (160, 160))
    daemon = Daemon(binary, root, names)
    drops = [os.path.join(root, n) for n in names]
    pending = {f"b{i:03d}" for i in range(count)}
    start = time.perf_counter()
    for i in range(count):
        os.rename(os.path.join(root, "stage", f"b{i:03d}.npz"),
                  os.path.join(drops[i % 3], f"b{i:03d}.npz"))
    rename_s = time.perf_counter() - start
    elapsed = math.inf
    while time.perf_counter() - start < TIMEOUT_S:
        pending = {m for m in pending
                   if read_link(os.path.join(root, "serve", m, "current"))
                   is None}
        if not pending and count_done(drops) >= count:
            elapsed = time.perf_counter() - start
            break
        time.sleep(0.005)
    peak = daemon.peak_rss_mib()
    failed = sum(len(os.listdir(os.path.join(d, ".weightdrop", "failed")))
                 for d in drops
                 if os.path.isdir(os.path.join(d, ".weightdrop", "failed")))
    code = daemon.stop()
    log(f"burst: {count - len(pending)} of {count} published, "
        f"{count_done(drops)} in done/, {failed} entries in failed/, "
        f"daemon exit {code}")
    return elapsed, rename_s, peak, len(pending), failed, code


def percentile(values, p):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def verdict(value, limit):
    return "PASS" if value <= limit else "**MISS**"


def ms(seconds):
    return "timeout" if seconds == math.inf else f"{seconds * 1000:.1f} ms"


def binary(path):
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    return f"sha256 {digest}…"


def report(args, lat, bur):
    times, lat_peak, lat_code = lat
    elapsed, rename_s, peak, missing, failed, code = bur
    p50, p95 = percentile(times, 50), percentile(times, 95)
    burst_s = "timeout" if elapsed == math.inf else f"{elapsed:.2f} s"
    lines = [
        "", "## daemon: drop by rename → `current` updated", "",
        f"`weightdrop run`, settle 2s, serve and drop folders under "
        f"{args.work} (same filesystem; bundles renamed in from a staging "
        f"folder). Latency: {len(times)} bundles of 1 MiB (lat.npz, a new "
        f"version of one model each time), one after another. Burst: "
        f"{args.burst} bundles of 100 KiB, distinct models, round-robin "
        f"over 3 watched drop folders sharing one serve root (renames took "
        f"{rename_s * 1000:.0f} ms). Binary: `{args.bin}` {binary(args.bin)}.",
        "",
        "| measure | value | target | verdict |",
        "|---|---|---|---|",
        f"| rename → current, p50 | {ms(p50)} | ≤ {LATENCY_P50_MS} ms | "
        f"{verdict(p50 * 1000, LATENCY_P50_MS)} |",
        f"| rename → current, p95 | {ms(p95)} | ≤ {LATENCY_P95_MS} ms | "
        f"{verdict(p95 * 1000, LATENCY_P95_MS)} |",
        f"| rename → current, min / mean / max | {ms(min(times))} / "
        f"{ms(statistics.mean(times))} / {ms(max(times))} | | |",
        f"| daemon peak RSS, latency run (VmHWM) | {lat_peak:.1f} MiB | | |",
        f"| burst: {args.burst} bundles all in done/ and published | "
        f"{burst_s} | ≤ {BURST_S} s | {verdict(elapsed, BURST_S)} |",
        f"| daemon peak RSS after the burst (VmHWM) | {peak:.1f} MiB | "
        f"≤ {RSS_MIB} MiB | {verdict(peak, RSS_MIB)} |",
    ]
    if missing or failed:
        lines.append(f"| burst: unpublished / failed/ entries | {missing} / "
                     f"{failed} | 0 / 0 | **MISS** |")
    lines += ["", f"Daemon exit status on SIGTERM: latency run {lat_code}, "
              f"burst run {code}."]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--latency", type=int, default=50)
    parser.add_argument("--burst", type=int, default=300)
    args = parser.parse_args()
    args.work = os.path.join(os.path.abspath(args.work), "daemon")
    os.makedirs(args.work, exist_ok=True)
    log(f"latency: {args.latency} bundles of 1 MiB")
    lat = latency(args.bin, args.work, args.latency)
    log(f"burst: {args.burst} bundles over 3 drop folders")
    bur = burst(args.bin, args.work, args.burst)
    print("\n".join(report(args, lat, bur)))


if __name__ == "__main__":
    main()
