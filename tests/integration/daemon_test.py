#!/usr/bin/python3
"""Integration tests: the real `weightdrop run` daemon on real folders.

Usage: /usr/bin/python3 daemon_test.py --binary PATH [--filter SUBSTR]

Each check starts its own daemon (stderr to a file, NOTIFY_SOCKET on a
datagram socket the test binds), drops bundles and polls the file system
with bounded timeouts. A failed assertion prints FAIL with the reason and
the daemon's log tail; a check that cannot run here prints SKIP. The last
line is exactly "N passed, M failed"; the exit status is 1 when M > 0.
"""

import argparse
import json
import math
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon_util as U  # noqa: E402
import hostile as H  # noqa: E402
from daemon_util import Env, sha256_bytes, sha256_file, load_json, listdir  # noqa: E402
from checks import Skip, check, note  # noqa: E402
import checks  # noqa: E402



# --- shared assertions ------------------------------------------------------------

def wait_published(d, w, model, version=1, timeout=10, done=None):
    """Waits until serve/<model>/current -> version (and `done` in done/)."""
    what = f"{w.serve}/{model}/current -> {version}"
    if done is not None:
        what += f" and {done} in {w.sub('done')}"
    return d.wait(lambda: w.current(model) == str(version) and
                  (done is None or done in w.done()), timeout, what)


def check_pointers(d, w, model, v):
    """current -> "v" (relative); pointer manifest = version manifest, "v/" paths."""
    mdir = w.model_dir(model)
    d.check(os.path.islink(os.path.join(mdir, "current")), f"{mdir}/current is not a symlink")
    d.check(w.current(model) == str(v), f"current -> {w.current(model)!r}, expected {v!r}")
    vman = load_json(os.path.join(mdir, str(v), "weights_manifest.json"))
    pman = load_json(os.path.join(mdir, "weights_manifest.json"))
    d.check(len(pman) == len(vman), f"pointer manifest has {len(pman)} groups, version {len(vman)}")
    for i, (pg, vg) in enumerate(zip(pman, vman)):
        d.check(pg["weights"] == vg["weights"], f"group {i + 1}: pointer weights differ")
        want = [f"{v}/{p}" for p in vg["paths"]]
        d.check(pg["paths"] == want, f"group {i + 1}: pointer paths {pg['paths']} != {want}")


def check_source(d, w, model, v, digest):
    pj = w.publish_json(model, v)
    got = (pj.get("source") or {}).get("sha256")
    d.check(got == digest, f"{model}/{v}/publish.json source.sha256 = {got!r}, bundle is {digest}")


def check_clean(d, w):
    d.check(w.processing() == [], f"processing/ not empty: {w.processing()}")
    d.check(w.staging() == [], f"{w.serve}/.staging not empty: {w.staging()}")


def verify(d, model_dir, against):
    rc, out, err = U.wd("verify", model_dir, "--against", against, timeout=120)
    d.check(rc == 0, f"weightdrop verify {model_dir} --against {against} exited {rc}:\n"
            f"      stdout {out[-800:]!r}\n      stderr {err[-800:]!r}")


def count_published_lines(d, model):
    return sum(1 for line in d.log_lines() if f"published {model} version" in line)


# --- 1. drop by rename ------------------------------------------------------------

@check("01 rename into drop: taken at once, published, archived to done/")
def drop_by_rename():
    with Env("rename") as env:
        w = env.watch(settle="5s")  # rename must not wait for settle
        d = env.start()
        for model, how in (("m1", "outside"), ("m2", "inside-tmp")):
            data = U.npz_bytes(seed=len(model) + ord(model[-1]))
            t0 = time.monotonic()
            if how == "outside":
                w.drop_by_rename(f"{model}.npz", data)
            else:
                tmp = os.path.join(w.drop, f".{model}.npz.tmp")
                U.write_file(tmp, data)
                os.rename(tmp, os.path.join(w.drop, f"{model}.npz"))
            wait_published(d, w, model, 1, timeout=3, done=f"{model}.npz")
            took = time.monotonic() - t0
            d.check(took < 3, f"{model} ({how}) took {took:.2f}s; a rename is taken at once")
            check_pointers(d, w, model, 1)
            check_source(d, w, model, 1, sha256_bytes(data))
            d.check(sha256_file(w.sub("done", f"{model}.npz")) == sha256_bytes(data),
                    "done/ copy differs from the dropped bundle")
            d.check(not os.path.exists(os.path.join(w.drop, f"{model}.npz")),
                    f"{model}.npz still in the drop folder")
            check_clean(d, w)
        d.wait_log(r"published m2 version 1", 2)
        d.stop()


# --- 2. slow non-atomic write -----------------------------------------------------

@check("01b an upload under a temporary name is logged at info; a stray file at warning")
def upload_names_log_level():
    # The documented way in (write X.npz.part or .X.npz, rename) must not
    # make `journalctl -p warning` noise; a file that can never be a bundle
    # is an uploader's mistake and is a warning.
    with Env("uplevel") as env:
        w = env.watch()
        d = env.start()
        U.write_file(os.path.join(w.drop, "up.npz.part"), b"partial")
        U.write_file(os.path.join(w.drop, ".up2.npz"), b"partial")
        U.write_file(os.path.join(w.drop, "notes.txt"), b"not a bundle")
        for name, level in (("up.npz.part", "info"), (".up2.npz", "info"),
                            ("notes.txt", "warning")):
            line = d.wait_log(rf"\[\w+\] .*/{re.escape(name)}: .*\(ignored\)", 10)
            d.check(f"[{level}]" in line, f"{name}: logged as {line!r}, expected [{level}]")
        d.stop()


@check("02 slow write in place: published once, after the last chunk, never failed")
def slow_write():
    with Env("slow") as env:
        w = env.watch(settle="500ms")
        d = env.start()
        data = U.npz_bytes(seed=2, n=20000)
        path = os.path.join(w.drop, "slow.npz")
        chunks = [data[: len(data) // 3], data[len(data) // 3: 2 * len(data) // 3],
                  data[2 * len(data) // 3:]]
        with open(path, "wb") as f:
            for i, chunk in enumerate(chunks):
                if i:
                    time.sleep(0.1)
                    d.check(os.path.exists(path), f"slow.npz claimed before chunk {i + 1} "
                            "was written (quiet only 100ms, settle 500ms)")
                    d.check(not os.path.exists(w.model_dir("slow")),
                            f"serve/slow exists before chunk {i + 1} was written")
                f.write(chunk)
                f.flush()
        wait_published(d, w, "slow", 1, timeout=10, done="slow.npz")
        check_source(d, w, "slow", 1, sha256_bytes(data))
        time.sleep(1.0)  # absence check: no second publish or failure shows up
        d.check(w.versions("slow") == [1], f"versions {w.versions('slow')}, expected [1]")
        d.check(w.failed() == [], f"failed/ holds {w.failed()}")
        d.check(count_published_lines(d, "slow") == 1, "log has not exactly one 'published slow'")
        d.stop()


# --- 3. folder bundle with .ready -------------------------------------------------

@check("03 folder bundle: .ready publishes long before settle")
def folder_ready():
    with Env("folder") as env:
        w = env.watch(settle="5s")
        d = env.start()
        folder = os.path.join(w.drop, "modelx")
        os.mkdir(folder)
        rng = np.random.default_rng(3)
        names = ["a", "b", "dense/kernel", "dense/bias"]
        for name in names:
            p = os.path.join(folder, *name.split("/")) + ".npy"
            os.makedirs(os.path.dirname(p), exist_ok=True)
            np.save(p, rng.standard_normal(16).astype(np.float32))
            time.sleep(0.2)
        d.check(not os.path.exists(w.model_dir("modelx")), "published before .ready appeared")
        digest = U.folder_digest(folder)
        t0 = time.monotonic()
        U.write_file(os.path.join(folder, ".ready"), b"")
        wait_published(d, w, "modelx", 1, timeout=3, done="modelx")
        took = time.monotonic() - t0
        d.check(took < 3, f"published {took:.2f}s after .ready (settle is 5s)")
        vman = load_json(os.path.join(w.model_dir("modelx"), "1", "weights_manifest.json"))
        got = sorted(wt["name"] for g in vman for wt in g["weights"])
        d.check(got == sorted(names), f"manifest weights {got}, expected {sorted(names)}")
        check_source(d, w, "modelx", 1, digest)
        verify(d, w.model_dir("modelx"), w.sub("done", "modelx"))
        check_clean(d, w)
        d.stop()


# --- 4. several watches -----------------------------------------------------------

@check("04 three drop folders, two serve roots (relative paths, per-watch shard_size)")
def several_watches():
    with Env("multi") as env:
        w1 = env.watch("d1", serve="s1", _drop_text="./d1-drop", _serve_text="./s1")
        w2 = env.watch("d2", serve="s1", _drop_text="d2-drop", _serve_text="s1")
        w3 = env.watch("d3", serve="s2", _drop_text="./d3-drop", _serve_text="./s2",
                       shard_size="1KiB")
        d = env.start()  # cwd "/": relative paths must resolve against the config folder
        want = {}
        for w, model, seed in ((w1, "a", 41), (w2, "b", 42), (w3, "c", 43)):
            data = U.npz_bytes(seed)
            w.drop_by_rename(f"{model}.npz", data)
            want[model] = (w, sha256_bytes(data))
        slow = U.npz_bytes(44)
        U.write_file(os.path.join(w2.drop, "b2.npz"), slow)  # in place: settles
        want["b2"] = (w2, sha256_bytes(slow))
        for model, (w, digest) in want.items():
            wait_published(d, w, model, 1, timeout=10, done=f"{model}.npz")
            check_source(d, w, model, 1, digest)
        d.check(sorted(m for m in listdir(w1.serve) if not m.startswith(".")) ==
                ["a", "b", "b2"], f"s1 holds {listdir(w1.serve)}, expected a, b, b2")
        d.check(sorted(m for m in listdir(w3.serve) if not m.startswith(".")) == ["c"],
                f"s2 holds {listdir(w3.serve)}, expected c")
        c_shards = [n for n in listdir(os.path.join(w3.serve, "c", "1")) if n.endswith(".bin")]
        a_shards = [n for n in listdir(os.path.join(w1.serve, "a", "1")) if n.endswith(".bin")]
        d.check(len(c_shards) > 1, f"watch d3 has shard_size 1KiB but c has {c_shards}")
        d.check(len(a_shards) == 1, f"watch d1 (default 4MiB shards) has {a_shards}")
        d.stop()


# --- 5. bad bundles ---------------------------------------------------------------

def bad_object_npz():
    return H.npz_bytes([("ok.npy", H.npy_bytes(np.arange(3, dtype=np.float32))),
                        ("objweight.npy", H.object_npy())])


@check("05 bad bundles go to failed/ with an error file; the daemon keeps serving")
def bad_bundle():
    with Env("bad") as env:
        w = env.watch()
        d = env.start()
        cases = {
            "objbad.npz": (bad_object_npz(), "objweight", ("object", "pickle", "|o", "dtype")),
            "crcbad.npz": (H.npz_with_bad_crc("crcweight.npy", np.arange(50, dtype=np.float32)),
                           "crcweight", ("crc", "checksum")),
        }
        for name, (data, _, _) in cases.items():
            w.drop_by_rename(name, data)
        for name, (data, weight, words) in cases.items():
            d.wait(lambda: name in w.failed() and f"{name}.error.txt" in w.failed(), 10,
                   f"failed/{name} and failed/{name}.error.txt")
            text = open(w.sub("failed", f"{name}.error.txt"), encoding="utf-8",
                        errors="replace").read()
            d.check(name in text, f"{name}.error.txt does not name the bundle: {text!r}")
            d.check(weight in text, f"{name}.error.txt does not name {weight!r}: {text!r}")
            d.check(any(x in text.lower() for x in words),
                    f"{name}.error.txt says none of {words}: {text!r}")
            d.check(sha256_file(w.sub("failed", name)) == sha256_bytes(data),
                    f"failed/{name} differs from what was dropped")
            d.check(w.current(name[:-4]) is None, f"{name} was published")
        d.check(any("failed" in line.lower() and "objbad" in line for line in d.log_lines()),
                "no log line mentions the failure of objbad.npz")
        good = U.npz_bytes(5)
        w.drop_by_rename("good.npz", good)
        wait_published(d, w, "good", 1, done="good.npz")
        check_source(d, w, "good", 1, sha256_bytes(good))
        check_clean(d, w)
        d.stop()


# --- 6. versions and retention ----------------------------------------------------

@check("06 four versions of one model, keep_versions 2: versions 3 and 4 remain")
def retention():
    with Env("retain") as env:
        w = env.watch(model="m", keep_versions=2)
        d = env.start()
        digests = []
        for i in range(4):
            data = U.npz_bytes(60 + i)
            digests.append(sha256_bytes(data))
            w.drop_by_rename(f"r{i + 1}.npz", data)
        d.wait(lambda: len(w.done()) == 4 and w.current("m") == "4" and
               w.versions("m") == [3, 4], 20, "4 bundles in done/, current -> 4, versions [3, 4]")
        check_source(d, w, "m", 3, digests[2])
        check_source(d, w, "m", 4, digests[3])
        check_pointers(d, w, "m", 4)
        check_clean(d, w)
        d.stop()


# --- 7. dedupe --------------------------------------------------------------------

@check("07 identical re-drop: no new version, 'unchanged' logged, both in done/, no hook")
def dedupe():
    with Env("dedupe") as env:
        hook_out = env.path("hook.out")
        w = env.watch(hooks={"on_publish": ["/bin/sh", "-c", f"echo {{version}} >> {hook_out}"]})
        d = env.start()
        data = U.npz_bytes(7)
        w.drop_by_rename("same.npz", data)
        wait_published(d, w, "same", 1, done="same.npz")
        d.wait(lambda: os.path.exists(hook_out), 5, "the on_publish hook of version 1")
        w.drop_by_rename("same.npz", data)
        d.wait(lambda: len(w.done()) == 2, 10, "the second same.npz in done/")
        d.wait_log("unchanged", 3)
        time.sleep(0.5)  # absence check: a hook for 'unchanged' would have run by now
        d.check(w.versions("same") == [1], f"versions {w.versions('same')}, expected [1]")
        d.check(w.current("same") == "1", f"current -> {w.current('same')}")
        lines = open(hook_out).read().split()
        d.check(lines == ["1"], f"on_publish ran {len(lines)} times ({lines}); not for unchanged")
        for n in w.done():
            d.check(sha256_file(w.sub("done", n)) == sha256_bytes(data), f"done/{n} differs")
        check_clean(d, w)
        d.stop()


# --- 8. hooks ---------------------------------------------------------------------

HOOK_PY = """#!/usr/bin/python3
import json, os, sys
rec = {"argv": sys.argv[2:],
       "env": {k: v for k, v in os.environ.items() if k.startswith("WEIGHTDROP_")}}
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, (json.dumps(rec) + "\\n").encode())
os.close(fd)
print("hello from hook", flush=True)
"""


def hook_records(path):
    try:
        with open(path) as f:
            return [json.loads(x) for x in f if x.strip()]
    except FileNotFoundError:
        return []


def same_path(a, b):
    return os.path.isabs(a) and os.path.realpath(a) == os.path.realpath(b)


@check("08a hooks: placeholders in argv, WEIGHTDROP_* env, output logged")
def hooks_placeholders():
    with Env("h8a") as env:
        script = U.write_file(env.path("hook.py"), HOOK_PY, 0o755)
        pub_out, fail_out = env.path("publish.jsonl"), env.path("failure.jsonl")
        keys = ["model", "version", "dir", "manifest", "bundle", "error"]
        w = env.watch(model="m", hooks={
            "on_publish": [script, pub_out] + [f"{k}={{{k}}}" for k in keys],
            "on_failure": [script, fail_out] + [f"{k}={{{k}}}" for k in keys]})
        d = env.start()
        w.drop_by_rename("good.npz", U.npz_bytes(8))
        wait_published(d, w, "m", 1, done="good.npz")
        rec = d.wait(lambda: hook_records(pub_out), 5, "the on_publish hook's record")[0]
        args = dict(a.split("=", 1) for a in rec["argv"])
        env_ = rec["env"]
        d.check(args["model"] == "m" and args["version"] == "1", f"argv {rec['argv']}")
        expect = {"dir": w.model_dir("m") + "/1",
                  "manifest": os.path.join(w.model_dir("m"), "weights_manifest.json"),
                  "bundle": w.sub("done", "good.npz")}
        for k, p in expect.items():
            d.check(same_path(args[k], p), f"{{{k}}} = {args[k]!r}, expected {p}")
            d.check(same_path(env_.get(f"WEIGHTDROP_{k.upper()}", ""), p),
                    f"WEIGHTDROP_{k.upper()} = {env_.get('WEIGHTDROP_' + k.upper())!r}")
        d.check(args["error"] == "", f"{{error}} on publish = {args['error']!r}")
        d.check(env_.get("WEIGHTDROP_EVENT") == "publish", f"env {env_}")
        d.check(env_.get("WEIGHTDROP_MODEL") == "m" and env_.get("WEIGHTDROP_VERSION") == "1",
                f"env {env_}")
        d.wait_log(r"hook publish m: hello from hook", 5, 0)

        w.drop_by_rename("bad.npz", bad_object_npz())
        d.wait(lambda: "bad.npz" in w.failed(), 10, "failed/bad.npz")
        rec = d.wait(lambda: hook_records(fail_out), 5, "the on_failure hook's record")[0]
        args = dict(a.split("=", 1) for a in rec["argv"])
        env_ = rec["env"]
        d.check(same_path(args["bundle"], w.sub("failed", "bad.npz")),
                f"{{bundle}} = {args['bundle']!r}, expected failed/bad.npz")
        d.check("objweight" in args["error"], f"{{error}} = {args['error']!r}")
        d.check(env_.get("WEIGHTDROP_ERROR") == args["error"], f"env {env_}")
        d.check(env_.get("WEIGHTDROP_EVENT") == "failure", f"env {env_}")
        d.check(len(hook_records(pub_out)) == 1, "on_publish ran for the failed bundle")
        d.stop()


@check("08b hooks: a failing hook (exit 3) is logged; version and bundle unaffected")
def hooks_failing():
    with Env("h8b") as env:
        w = env.watch(model="m", hooks={
            "on_publish": ["/bin/sh", "-c", "echo marker-out-{version}; exit 3"]})
        d = env.start()
        data = U.npz_bytes(9)
        w.drop_by_rename("b.npz", data)
        wait_published(d, w, "m", 1, done="b.npz")
        d.wait_log(r"hook publish m: marker-out-1", 5, 0)
        line = d.wait_log(r"hook.*\b(exit(ed)?|code|status)\b\D{0,20}\b3\b", 5)
        d.check("warn" in line.lower() or "error" in line.lower(),
                f"non-zero hook exit not logged as a warning: {line!r}")
        check_source(d, w, "m", 1, sha256_bytes(data))
        check_clean(d, w)
        w.drop_by_rename("b2.npz", U.npz_bytes(10))  # still taking work
        wait_published(d, w, "m", 2, done="b2.npz")
        d.stop()


@check("08c hooks: timeout kills the hook's process group, is logged")
def hooks_timeout():
    with Env("h8c") as env:
        pidfile = env.path("pids")
        w = env.watch(model="m", hooks={
            "on_publish": ["/bin/sh", "-c",
                           f"sleep 60 & echo $$ $! > {pidfile}.tmp; mv {pidfile}.tmp {pidfile};"
                           " sleep 60"],
            "timeout": "1s"})
        d = env.start()
        w.drop_by_rename("b.npz", U.npz_bytes(11))
        wait_published(d, w, "m", 1, done="b.npz")
        pids = [int(x) for x in d.wait(lambda: open(pidfile).read().split(), 5, "the pid file")]
        t0 = time.monotonic()
        for pid in pids:
            d.wait(lambda: U.process_gone(pid), 8, f"hook process {pid} to be killed")
        d.check(time.monotonic() - t0 < 6, "hook outlived its 1s timeout by far")
        d.wait_log(r"hook.*tim(ed|e)[ -]?out|tim(ed|e)[ -]?out.*hook", 3)
        w.drop_by_rename("c.npz", U.npz_bytes(12))
        wait_published(d, w, "m", 2, done="c.npz")
        d.stop()


# --- 9. SIGHUP --------------------------------------------------------------------

@check("09a SIGHUP with a valid config: RELOADING=1+MONOTONIC_USEC, READY=1, new watch works")
def sighup_valid():
    with Env("hup") as env:
        w1 = env.watch("a")
        d = env.start()
        w2 = env.watch("b")
        env.write_config()
        start = len(d.notify.snapshot())
        t_before = time.clock_gettime(time.CLOCK_MONOTONIC)
        d.signal(signal.SIGHUP)
        i = d.wait_notify("RELOADING=1", 5, start)
        text = d.notify.snapshot()[i][1]
        m = re.search(r"^MONOTONIC_USEC=(\d+)$", text, re.M)
        d.check(m is not None, f"RELOADING=1 datagram without MONOTONIC_USEC=: {text!r}")
        usec = int(m.group(1))
        t_after = time.clock_gettime(time.CLOCK_MONOTONIC)
        d.check(t_before * 1e6 - 1e6 <= usec <= t_after * 1e6 + 1e6,
                f"MONOTONIC_USEC={usec} not within [{t_before * 1e6:.0f}, {t_after * 1e6:.0f}]")
        r = d.wait_notify("READY=1", 5, i + 1)
        ready = d.notify.snapshot()[r][1]
        d.check("reloading" not in ready, f"the READY=1 that ends the reload says: {ready!r}")
        d.wait_log(r"watching\W*" + re.escape(w2.drop), 3, 0)
        for w, model in ((w2, "new"), (w1, "old")):
            data = U.npz_bytes(90 + len(model))
            w.drop_by_rename(f"{model}.npz", data)
            wait_published(d, w, model, 1, done=f"{model}.npz")
            check_source(d, w, model, 1, sha256_bytes(data))
        d.stop()


@check("09d two SIGHUPs in a row, the config edited in between: the second edit is applied")
def sighup_twice():
    with Env("hup2") as env:
        env.watch("a")
        d = env.start()
        # ~1 MB of comments make each read take tens of ms, so the second
        # SIGHUP lands while the first one's read is under way.
        padding = "".join("# " + "x" * 78 + "\n" for _ in range(11000))

        def write_padded():
            env.write_config()
            with open(env.config_path, "a") as f:
                f.write(padding)

        for attempt in range(3):
            wb = env.watch(f"b{attempt}")
            write_padded()
            d.signal(signal.SIGHUP)
            time.sleep(0.01)
            wc = env.watch(f"c{attempt}")
            write_padded()
            d.signal(signal.SIGHUP)
            d.wait_log(r"watching\W*" + re.escape(wc.drop), 5, 0)
            d.check(os.path.isdir(wb.drop), f"{wb.drop} not set up")
        data = U.npz_bytes(94)
        wc.drop_by_rename("m.npz", data)
        wait_published(d, wc, "m", 1, done="m.npz")
        d.stop()


@check("09b SIGHUP with an invalid config: file:line:col logged, old watches keep working")
def sighup_invalid():
    with Env("hupbad") as env:
        wa, wb = env.watch("a"), env.watch("b")
        d = env.start()
        good_text = env.config_text()
        for i, (bad, word) in enumerate((
                ("watches: [unclosed\n  - drop: x\n", None),
                (good_text.replace("settle: 200ms", "setle: 200ms", 1), "setle"),
                # Settings that conflict are a config error at reload too,
                # never a failed bundle later.
                (good_text + "defaults:\n  quantize: {uint8: ['*/kernel'], float16: '*'}\n",
                 "can never apply"),
                # yaml-cpp 0.7's LoadAll never returned on this: no "reload failed".
                (",", "not valid YAML"))):
            env.write_config(bad)
            start = len(d.notify.snapshot())
            n_lines = len(d.log_lines())
            d.signal(signal.SIGHUP)
            line = d.wait(lambda: next((ln for ln in d.log_lines()[n_lines:]
                                        if re.search(r"config\.yaml:\d+:\d+", ln)), None),
                          5, "a log line with config.yaml:LINE:COL")
            if word:
                d.check(word in line, f"the error does not name {word!r}: {line!r}")
            r = d.notify.find(U.has_line("RELOADING=1"), start)
            if r is not None:
                d.wait_notify("READY=1", 5, r + 1)  # systemd would hang in 'reloading'
            for w in (wa, wb):
                model = f"m{i}{w.name}"
                w.drop_by_rename(f"{model}.npz", U.npz_bytes(100 + 10 * i + len(w.name)))
                wait_published(d, w, model, 1, done=f"{model}.npz")
        d.stop()


@check("09c SIGHUP changing a surviving watch's rescan re-arms its timer: keep_done, applied "
       "from it, runs at the new period")
def sighup_rescan():
    with Env("huprescan") as env:
        w = env.watch(rescan="1h", keep_done="2s")
        d = env.start()
        w.drop_by_rename("g.npz", U.npz_bytes(9))
        wait_published(d, w, "g", 1, done="g.npz")
        # Past keep_done by now, but only the rescan timer prunes, and at 1h
        # it has not fired since the start.
        time.sleep(3)
        d.check(w.done() == ["g.npz"], f"done/ pruned with rescan 1h: {w.done()}")
        w.opts["rescan"] = "1s"
        env.write_config()
        d.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded", 5)
        # A timer still on the old period would not fire for an hour.
        d.wait(lambda: w.done() == [], 4, "done/g.npz removed within 4s of a reload to rescan 1s")
        d.wait_log(r"removed done/g\.npz \(past its retention\)", 2)
        d.check(w.current("g") == "1", "pruning touched the published model")
        d.stop()


# --- 10 / 11. signals during a long publish ---------------------------------------

BIG_SHARD = "32KiB"  # thousands of fsync'd shard files: the publish takes seconds


def big_env(label, **top):
    env = Env(label)
    env.top["defaults"] = {"shard_size": BIG_SHARD}
    env.top.update(top)
    w = env.watch(model="big")
    return env, w


def drop_big(w):
    src = U.big_bundle()
    tmp = os.path.join(w.drop, ".big.npz.tmp")
    os.link(src, tmp)  # same file system: no 128 MiB copy
    os.rename(tmp, os.path.join(w.drop, "big.npz"))
    return src


def finish_after_restart(env, w, src, what):
    """Restarts the daemon; the bundle must be published exactly once."""
    d = env.start()
    wait_published(d, w, "big", 1, timeout=60, done="big.npz")
    d.check(w.versions("big") == [1], f"{what}: versions {w.versions('big')}, expected [1]")
    verify(d, w.model_dir("big"), src)
    check_clean(d, w)
    d.stop()


def sigterm_mid_publish(label, timeout_text, max_exit):
    env, w = big_env(label, shutdown_timeout=timeout_text)
    with env:
        d = env.start()
        src = drop_big(w)
        d.wait(lambda: w.in_processing("big.npz"), 10, "big.npz in processing/", 0.002)
        t0 = time.monotonic()
        d.stop(timeout=max_exit + 10)
        took = time.monotonic() - t0
        d.check(took <= max_exit, f"exit took {took:.1f}s after SIGTERM (limit {max_exit}s)")
        if w.current("big") is not None:
            d.check(w.done() == ["big.npz"] and w.processing() == [],
                    f"published, but done/ {w.done()} processing/ {w.processing()}")
            d.check(w.versions("big") == [1], f"versions {w.versions('big')}")
            verify(d, w.model_dir("big"), src)
            note(f"{label}: SIGTERM let the publish finish ({took:.1f}s)")
        else:
            d.check(w.in_processing("big.npz") and w.done() == [],
                    f"not published, but processing/ {w.processing()} done/ {w.done()}")
            d.check(w.versions("big") == [], f"versions {w.versions('big')} without current")
            note(f"{label}: SIGTERM left the bundle in processing/ ({took:.1f}s); restarting")
            finish_after_restart(env, w, src, "after SIGTERM")


@check("10a SIGTERM during a publish (shutdown_timeout 30s): exit 0, published or resumable")
def sigterm_publish():
    sigterm_mid_publish("sigterm", "30s", 30)


@check("10b SIGTERM during a publish (shutdown_timeout 300ms): exit 0 in time, resumable")
def sigterm_publish_short():
    sigterm_mid_publish("sigtermshort", "300ms", 4)


@check("11 kill -9 during a publish: restart publishes exactly once, staging cleaned")
def sigkill_publish():
    env, w = big_env("sigkill")
    with env:
        d = env.start()
        src = drop_big(w)
        d.wait(lambda: w.in_processing("big.npz"), 10, "big.npz in processing/", 0.002)
        staging = os.path.join(w.serve, ".staging")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and w.current("big") is None:
            if any(U.is_dir_nonempty(os.path.join(staging, n)) for n in listdir(staging)):
                break
            time.sleep(0.002)
        caught = w.current("big") is None and bool(w.staging())
        d.kill9()
        note(f"kill -9 {'with' if caught else 'WITHOUT'} staging content "
             f"(staging {w.staging()[:3]}, current {w.current('big')})")
        finish_after_restart(env, w, src, "after kill -9")


# --- 12. sd_notify ----------------------------------------------------------------

@check("12a sd_notify: READY=1, STATUS= on change, WATCHDOG=1 every WATCHDOG_USEC/2")
def notify_watchdog():
    with Env("notify") as env:
        w = env.watch()
        d = env.start(extra_env={"WATCHDOG_USEC": "200000"})
        start = len(d.notify.snapshot())
        time.sleep(1.0)  # counting periodic messages needs a fixed window
        n = d.notify.count("WATCHDOG=1", start)
        d.check(n >= 5, f"{n} WATCHDOG=1 in 1s with WATCHDOG_USEC=200000 (expected ~10)")
        start = len(d.notify.snapshot())
        w.drop_by_rename("s.npz", U.npz_bytes(12))
        wait_published(d, w, "s", 1, done="s.npz")
        d.wait(lambda: d.notify.find(lambda t: re.search(r"^STATUS=.+", t, re.M), start)
               is not None, 3, "a STATUS= message after the publish")
        d.stop()


@check("12b sd_notify: abstract socket ('@'), no WATCHDOG=1 when WATCHDOG_PID is another pid")
def notify_abstract():
    with Env("notifyabs") as env:
        env.watch()
        d = env.start(extra_env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"},
                      abstract=True)
        time.sleep(1.0)
        n = d.notify.count("WATCHDOG=1")
        d.check(n == 0, f"{n} WATCHDOG=1 although WATCHDOG_PID=1 is not the daemon")
        d.stop()


# --- 13. status.json and metrics --------------------------------------------------

PROM_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+\d+)?$')
BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, math.inf]


def parse_prom(text):
    """[(name, {label: value}, float)] of every sample; asserts the syntax."""
    samples = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = PROM_LINE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def prom_value(samples, name, **labels):
    vals = [v for n, ls, v in samples
            if n == name and all(ls.get(k) == x for k, x in labels.items())]
    return vals[0] if len(vals) == 1 else None


@check("13b a rollback made by hand shows in status.json and the metrics within a rescan")
def status_after_manual_rollback():
    with Env("hrollback") as env:
        w = env.watch(rescan="1s")
        d = env.start()
        for v in (1, 2):
            w.drop_by_rename("m.npz", U.npz_bytes(130 + v))
            wait_published(d, w, "m", v)
        key = f"{w.serve}/m"
        version = lambda: (env.status()["models"].get(key) or {}).get("current_version")
        d.wait(lambda: version() == 2, 5, "status.json: m at version 2")
        rc, out, err = U.wd("rollback", w.model_dir("m"))
        d.check(rc == 0, f"weightdrop rollback: exit {rc}: {err}")
        d.wait(lambda: version() == 1, 5, "status.json: m at version 1 after the rollback")
        d.wait_log(r"/m: current is version 1 \(was 2\): changed outside this daemon", 2)
        # weightdrop.prom is written after status.json, not with it: wait.
        prom_path = os.path.join(env.state_dir, "weightdrop.prom")
        d.wait(lambda: re.search(r'^weightdrop_current_version\{[^}]*model="m"[^}]*\} 1$',
                                 open(prom_path).read(), re.M), 5,
               "weightdrop.prom to say version 1")
        # The daemon's next publish goes on from there: version 3, current.
        w.drop_by_rename("m.npz", U.npz_bytes(139))
        wait_published(d, w, "m", 3)
        d.wait(lambda: version() == 3, 5, "status.json: m at version 3")
        d.stop()


@check("13 status.json, weightdrop.prom and `weightdrop status`")
def status_and_metrics():
    with Env("status") as env:
        w = env.watch()
        d = env.start()
        w.drop_by_rename("m.npz", U.npz_bytes(13))
        w.drop_by_rename("bad.npz", bad_object_npz())
        wait_published(d, w, "m", 1, done="m.npz")
        d.wait(lambda: "bad.npz" in w.failed(), 10, "failed/bad.npz")
        key_m, key_bad = f"{w.serve}/m", f"{w.serve}/bad"
        st = d.wait(lambda: (lambda s: s if s["models"][key_m]["last_result"] == "published" and
                             s["models"][key_bad]["last_result"] == "failed" else None)(
                                 env.status()),
                    5, f"status.json models {key_m} published and {key_bad} failed")
        for k in ("pid", "started", "config", "state", "watches", "models", "totals"):
            d.check(k in st, f"status.json lacks {k!r}: {sorted(st)}")
        d.check(st["pid"] == d.pid, f"status pid {st['pid']} != {d.pid}")
        d.check(st["state"] == "running", f"state {st['state']!r}")
        d.check(same_path(st["config"], env.config_path), f"config {st['config']!r}")
        d.check(len(st["watches"]) == 1 and
                set(st["watches"][0]) >= {"drop", "serve", "queued", "in_flight"},
                f"watches {st['watches']}")
        m = st["models"][key_m]
        for k in ("model", "serve", "current_version", "last_result", "last_error",
                  "last_bundle", "last_success", "publishes", "failures"):
            d.check(k in m, f"models[{key_m}] lacks {k!r}: {m}")
        d.check(m["model"] == "m" and str(m["current_version"]) == "1", f"models[m] = {m}")
        d.check(m["publishes"] == 1 and m["failures"] == 0, f"models[m] = {m}")
        d.check(isinstance(m["last_success"], str) and m["last_success"][:2] == "20",
                f"last_success {m['last_success']!r}")
        b = st["models"][key_bad]
        d.check(b["failures"] == 1 and "objweight" in (b["last_error"] or ""),
                f"models[bad] = {b}")
        t = st["totals"]
        d.check(t.get("publishes", 0) >= 1 and t.get("failures", 0) >= 1 and
                t.get("bytes", 0) > 0 and "unchanged" in t, f"totals {t}")

        prom_path = os.path.join(env.state_dir, "weightdrop.prom")
        samples = d.wait(lambda: (lambda s: s if (prom_value(
            s, "weightdrop_publishes_total", model="m") or 0) >= 1 else None)(
                parse_prom(open(prom_path).read())), 5,
            "weightdrop_publishes_total{model=\"m\"} >= 1 in weightdrop.prom")
        text = open(prom_path).read()
        d.check(prom_value(samples, "weightdrop_publishes_total", model="m", serve=w.serve) == 1,
                f"weightdrop_publishes_total for m/serve:\n{text}")
        d.check(prom_value(samples, "weightdrop_failures_total", model="bad") == 1,
                f"weightdrop_failures_total for bad:\n{text}")
        d.check((prom_value(samples, "weightdrop_published_bytes_total", model="m") or 0) > 0,
                "weightdrop_published_bytes_total for m")
        d.check(prom_value(samples, "weightdrop_current_version", model="m") == 1,
                "weightdrop_current_version for m")
        ts = prom_value(samples, "weightdrop_last_success_timestamp_seconds", model="m") or 0
        d.check(abs(ts - time.time()) < 600, f"last_success_timestamp {ts}")
        d.check(any(n == "weightdrop_queue_depth" for n, _, _ in samples), "no queue depth")
        les = sorted({float(ls["le"].replace("+Inf", "inf")) for n, ls, _ in samples
                      if n == "weightdrop_publish_duration_seconds_bucket"})
        d.check(les == BUCKETS, f"histogram buckets {les}, expected {BUCKETS}")
        counts = [v for n, _, v in samples if n == "weightdrop_publish_duration_seconds_count"]
        d.check(counts and sum(counts) >= 1, f"histogram _count {counts}")
        d.check(any(n == "weightdrop_publish_duration_seconds_sum" for n, _, _ in samples),
                "no histogram _sum")
        d.check("# TYPE weightdrop_publish_duration_seconds histogram" in text, "no # TYPE line")

        for args in (["--state-dir", env.state_dir], ["--config", env.config_path]):
            rc, out, err = U.wd("status", *args)
            d.check(rc == 0, f"weightdrop status {' '.join(args)} exited {rc}: {err!r}")
            d.check(re.search(r"\bm\b", out) and "published" in out,
                    f"weightdrop status output lacks model m / 'published': {out!r}")
        rc, out, err = U.wd("status", "--state-dir", env.path("nonexistent"))
        d.check(rc == 1, f"status with a missing state dir exited {rc}, expected 1")
        d.stop()


# --- 14. start-up recovery --------------------------------------------------------

@check("14 at start: processing/ published first, then bundles that arrived while down")
def startup_recovery():
    with Env("startup") as env:
        w = env.watch(model="m", keep_versions=5)
        digests = {}
        for name, seed in (("a.npz", 141), ("b.npz", 142)):
            data = U.npz_bytes(seed)
            U.write_file(os.path.join(w.drop, name), data)
            digests[name] = sha256_bytes(data)
        pre = U.npz_bytes(140)
        U.write_file(w.sub("processing", "c.npz"), pre)
        d = env.start()
        d.wait(lambda: len(w.done()) == 3 and w.current("m") == "3", 15,
               "processing/c.npz (left by a previous run), a.npz and b.npz (dropped while "
               "down) all published: 3 in done/, current -> 3")
        check_source(d, w, "m", 1, sha256_bytes(pre))
        later = {w.publish_json("m", v)["source"]["sha256"] for v in (2, 3)}
        d.check(later == set(digests.values()), "versions 2 and 3 are not a.npz and b.npz")
        check_clean(d, w)
        d.stop()


# --- 15. not yet complete ---------------------------------------------------------

@check("15 .npz without its central directory yet: waited for, not failed")
def incomplete_npz():
    with Env("incomplete") as env:
        w = env.watch(settle="300ms")
        d = env.start()
        data = U.npz_bytes(15, n=2000)
        cd = data.find(b"PK\x01\x02")
        with open(os.path.join(w.drop, "half.npz"), "wb") as f:
            f.write(data[:cd // 2])
            f.flush()
            time.sleep(1.0)  # > 3x settle, far less than 10x settle / 30 s
            d.check(not any(n.startswith("half.npz") for n in w.failed()),
                    f"an incomplete .npz went to failed/: {w.failed()}")
            d.check(not os.path.exists(w.model_dir("half")), "an incomplete .npz was published")
            f.write(data[cd // 2:])
        wait_published(d, w, "half", 1, timeout=10, done="half.npz")
        check_source(d, w, "half", 1, sha256_bytes(data))
        d.check(w.failed() == [], f"failed/ holds {w.failed()}")
        d.stop()


# --- 16. symlinks -----------------------------------------------------------------

@check("16 a symlink in the drop folder is not followed: warning, link left alone")
def symlink_ignored():
    with Env("symlink") as env:
        w = env.watch()
        d = env.start()
        real = U.write_file(env.path("elsewhere", "real.npz"), U.npz_bytes(16))
        digest = sha256_file(real)
        link = os.path.join(w.drop, "link.npz")
        os.symlink(real, link)
        d.wait_log(r"(?=.*link\.npz)(?=.*warn)", 5)  # a warning naming the link
        time.sleep(1.5)  # absence check over a settle and a rescan
        d.check(os.path.islink(link) and os.readlink(link) == real, "the link was touched")
        d.check(sha256_file(real) == digest, "the link target changed")
        d.check(not os.path.exists(w.model_dir("link")), "the link's target was published")
        d.check(w.done() + w.failed() + w.processing() == [], "the link was claimed")
        d.stop()


# --- 17. on_success: delete -------------------------------------------------------

@check("17 on_success: delete removes the bundle after publishing")
def on_success_delete():
    with Env("delete") as env:
        w = env.watch(on_success="delete")
        d = env.start()
        data = U.npz_bytes(17)
        w.drop_by_rename("gone.npz", data)
        wait_published(d, w, "gone", 1)
        d.wait(lambda: w.processing() == [], 5, "processing/ to be empty")
        check_source(d, w, "gone", 1, sha256_bytes(data))
        d.check(w.done() == [], f"done/ holds {w.done()} with on_success: delete")
        d.check(not os.path.exists(os.path.join(w.drop, "gone.npz")), "bundle still in drop/")
        d.stop()


# --- 18. log formats --------------------------------------------------------------

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$")


def publish_fail_and_warn(d, w):
    w.drop_by_rename("j.npz", U.npz_bytes(18))
    w.drop_by_rename("jbad.npz", bad_object_npz())
    os.symlink("/etc/hostname", os.path.join(w.drop, "jlink.npz"))
    wait_published(d, w, "j", 1, done="j.npz")
    d.wait(lambda: "jbad.npz" in w.failed(), 10, "failed/jbad.npz")
    d.wait_log(r"jlink\.npz", 5)


@check("18a log_format json: every stderr line is a JSON object with ts, level, msg")
def json_logs():
    with Env("jsonlog") as env:
        env.top["log_format"] = "json"
        w = env.watch()
        d = env.start()
        publish_fail_and_warn(d, w)
        d.stop()
        levels, msgs = set(), []
        for i, line in enumerate(d.log_lines()):
            try:
                obj = json.loads(line)
            except ValueError:
                d.fail(f"log line {i + 1} is not JSON: {line!r}")
            d.check(isinstance(obj, dict) and {"ts", "level", "msg"} <= set(obj),
                    f"log line {i + 1} lacks ts/level/msg: {line!r}")
            d.check(RFC3339_MS.match(str(obj["ts"])), f"ts not RFC 3339 with ms: {obj['ts']!r}")
            levels.add(obj["level"])
            msgs.append(obj["msg"])
        d.check(any("published j version 1" in m for m in msgs), "no 'published j version 1'")
        d.check(levels <= {"trace", "debug", "info", "warn", "warning", "error", "critical"},
                f"levels {levels}")
        d.check("info" in levels and levels & {"warn", "warning"},
                f"levels seen {levels}: expected info and warn (the symlink) at least")


def journal_stream(log_file):
    """JOURNAL_STREAM naming the daemon's real stderr (device:inode), so a
    daemon that checks it against fstat(2) also sees the journal."""
    st = os.fstat(log_file.fileno())
    return f"{st.st_dev}:{st.st_ino}"


@check("18b JOURNAL_STREAM set: every line starts with a syslog priority prefix")
def journal_prefix():
    with Env("journal") as env:
        w = env.watch()
        d = env.start(extra_env={"JOURNAL_STREAM": journal_stream})
        publish_fail_and_warn(d, w)
        d.stop()
        lines = d.log_lines()
        for line in lines:
            d.check(re.match(r"^<[0-7]>", line), f"line without a <N> prefix: {line!r}")
        pub = [ln for ln in lines if "published j version 1" in ln]
        d.check(pub and all(ln.startswith("<6>") for ln in pub), f"publish line not <6>: {pub}")
        warn = [ln for ln in lines if "jlink.npz" in ln]
        d.check(any(ln.startswith("<4>") for ln in warn), f"no <4> line for the symlink: {warn}")
        fail = [ln for ln in lines if "jbad" in ln and ln[:3] in ("<3>", "<4>")]
        d.check(fail, "the failed bundle is not logged at error or warning priority")


# --- 19. environment errors -------------------------------------------------------

@check("19 ENOSPC on the serve root: bundle stays in processing/, retrying, then published")
def enospc_retry():
    with Env("enospc") as env:
        w = env.watch(model="m")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", w.serve],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip(f"cannot mount a small tmpfs: {r.stderr.strip()}")
        env.mounts.append(w.serve)
        d = env.start()
        data = U.npz_bytes(19, n=60000)  # ~1 MiB of random float32 > 64 KiB
        w.drop_by_rename("full.npz", data)
        key = f"{w.serve}/m"
        m = d.wait(lambda: (lambda s: s if s["last_result"] == "retrying" else None)(
            env.status()["models"][key]), 10, f"status.json models[{key}] retrying")
        err = (m.get("last_error") or "").lower()
        d.check("space" in err or "enospc" in err, f"last_error {m.get('last_error')!r}")
        d.check(w.in_processing("full.npz"), f"full.npz not in processing/: {w.processing()}")
        d.check(w.failed() == [], "an environment error moved the bundle to failed/")
        d.wait_log("retrying", 3)
        r = subprocess.run(["mount", "-o", "remount,size=16m", w.serve], capture_output=True,
                           text=True)
        d.check(r.returncode == 0, f"remount failed: {r.stderr}")
        wait_published(d, w, "m", 1, timeout=20, done="full.npz")
        check_source(d, w, "m", 1, sha256_bytes(data))
        check_clean(d, w)
        st = d.wait(lambda: (lambda s: s if s["last_result"] == "published" else None)(
            env.status()["models"][key]), 5, "status published after the retry")
        d.check(str(st["current_version"]) == "1", f"status {st}")
        d.stop()


# --- 20. our own faults: exceptions and crashes in a worker ----------------------
# These run wd_fault_daemon (tests/fault_daemon_main.cpp): the daemon built
# from the same libraries with faults injected by bundle name (throw-,
# crash-, overflow-). The shipped binary has no such hook.

def fault_daemon():
    if not U.FAULT_BINARY:
        raise Skip("no --fault-daemon binary given")
    # Real SIGSEGVs follow: no core files from the crashing daemons.
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    return U.FAULT_BINARY


def read_text(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def crashed(d, rc_expected=-signal.SIGSEGV):
    """The daemon died of the fault (or, under ASan, reported it and exit 1)."""
    rc = d.wait_exit()
    d.check(rc in (rc_expected, 1), f"daemon exited with {rc}, expected {rc_expected}")


@check("20a an exception in a publish job (std::bad_alloc): failed/ with the message, hook, "
       "status; the daemon goes on")
def worker_exception():
    binary = fault_daemon()
    with Env("throw") as env:
        script = U.write_file(env.path("hook.py"), HOOK_PY, 0o755)
        fail_out = env.path("failure.jsonl")
        w = env.watch(hooks={"on_failure": [script, fail_out, "error={error}"]})
        d = env.start(binary=binary)
        w.drop_by_rename("throw-a.npz", U.npz_bytes(20))
        d.wait(lambda: "throw-a.npz.error.txt" in w.failed(), 10,
               "failed/throw-a.npz and its error file")
        d.check("throw-a.npz" in w.failed(), f"failed/ holds {w.failed()}")
        text = read_text(w.sub("failed", "throw-a.npz.error.txt"))
        d.check("internal error while publishing" in text and "throw-a.npz" in text
                and "std::bad_alloc" in text, f"error.txt: {text!r}")
        d.check("weightdrop's own fault" in text and "safe to drop the bundle again" in text,
                f"error.txt does not say whose fault it is: {text!r}")
        d.check(w.processing() == [], f"processing/ not empty: {w.processing()}")
        line = d.wait_log(r"failed throw-a\.npz: internal error while publishing", 5)
        d.check("std::bad_alloc" in line and "moved to " + w.sub("failed") in line,
                f"log line: {line!r}")
        rec = d.wait(lambda: hook_records(fail_out), 5, "the on_failure hook's record")[0]
        d.check("std::bad_alloc" in rec["argv"][0], f"on_failure argv {rec['argv']}")
        key = f"{w.serve}/throw-a"
        m = d.wait(lambda: env.status()["models"][key], 5, f"status.json models[{key}]")
        d.check(m.get("last_result") == "failed" and m.get("failures") == 1, f"status {m}")
        d.check("std::bad_alloc" in (m.get("last_error") or ""), f"status {m}")
        good = U.npz_bytes(21)
        w.drop_by_rename("good.npz", good)
        wait_published(d, w, "good", 1, done="good.npz")
        check_clean(d, w)
        d.stop()


@check("20b a bundle that crashes the daemon (SIGSEGV) at starts 1 and 2 is quarantined at "
       "start 3; the others publish")
def crash_quarantine():
    binary = fault_daemon()
    with Env("crash") as env:
        w1, w2 = env.watch("w1"), env.watch("w2", serve="serve2")
        d = env.start(binary=binary)
        w1.drop_by_rename("crash-a.npz", U.npz_bytes(22))
        crashed(d)
        d.check(w1.in_processing("crash-a.npz"), "crash-a.npz not in processing/ after crash 1")
        log = env.crash_log()
        d.check(log.count("crash-a.npz") == 1 and log.startswith(f"crash {int(signal.SIGSEGV)} "),
                f"crash log after start 1: {log!r}")
        d = env.start(binary=binary, ready=False)  # recovers crash-a.npz first: crash 2
        crashed(d)
        d.check(env.crash_log().count("crash-a.npz") == 2, f"crash log {env.crash_log()!r}")
        ok1, ok2 = U.npz_bytes(23), U.npz_bytes(24)
        w1.drop_by_rename("ok1.npz", ok1)
        w2.drop_by_rename("ok2.npz", ok2)
        d = env.start(binary=binary)
        d.wait(lambda: "crash-a.npz.error.txt" in w1.failed(), 10, "failed/crash-a.npz")
        text = read_text(w1.sub("failed", "crash-a.npz.error.txt"))
        d.check("weightdrop crashed (signal SIGSEGV) 2 times while publishing this bundle; "
                "quarantined" in text, f"error.txt: {text!r}")
        d.check("weightdrop's own fault" in text, f"error.txt: {text!r}")
        wait_published(d, w1, "ok1", 1, done="ok1.npz")
        wait_published(d, w2, "ok2", 1, done="ok2.npz")
        check_source(d, w1, "ok1", 1, sha256_bytes(ok1))
        d.check(w1.current("crash-a") is None, "crash-a was published")
        check_clean(d, w1)
        check_clean(d, w2)
        d.stop()
        # Resolved: the next start forgets it (the log is rewritten small).
        d = env.start()
        d.stop()
        d.check(env.crash_log() == "", f"crash log after the quarantine: {env.crash_log()!r}")


@check("20c a stack overflow in a worker is recorded (alternate signal stack); a later "
       "success clears it")
def crash_overflow():
    binary = fault_daemon()
    with Env("overflow") as env:
        w = env.watch()
        d = env.start(binary=binary)
        data = U.npz_bytes(25)
        w.drop_by_rename("overflow-b.npz", data)
        crashed(d)
        log = env.crash_log()
        d.check(log.startswith(f"crash {int(signal.SIGSEGV)} ") and "overflow-b.npz" in log,
                f"crash log: {log!r}")
        d = env.start()  # the real binary: publishes it; one crash is not a verdict
        wait_published(d, w, "overflow-b", 1, done="overflow-b.npz")
        d.check(w.failed() == [], f"failed/ holds {w.failed()}")
        d.wait(lambda: "done " in env.crash_log(), 5, "a done record in the crash log")
        d.stop()
        d = env.start()
        d.stop()
        d.check(env.crash_log() == "", f"crash log: {env.crash_log()!r}")


@check("20d 20 kill -9s (and a few kill -SEGVs) mid-publish never quarantine: published once")
def kills_never_quarantine():
    env, w = big_env("kills")
    with env:
        if U.FAULT_BINARY:
            fault_daemon()  # for the core limit: kill -SEGV dumps core otherwise
        src = drop_big(w)
        rng = random.Random(20)
        kills = 0
        for i in range(24):
            d = env.start()
            d.wait(lambda: w.in_processing("big.npz"), 10, "big.npz in processing/", 0.002)
            time.sleep(rng.uniform(0, 0.4))
            d.check(w.current("big") is None, f"published before kill {i + 1}; too fast a disk")
            if U.FAULT_BINARY and i % 6 == 5:  # an operator's kill -SEGV: SI_USER
                d.signal(signal.SIGSEGV)
                crashed(d)
            else:
                d.kill9()
                kills += 1
        d.check(kills == 20, f"{kills} kill -9s")
        d.check(env.crash_log() == "", f"kills left crash records: {env.crash_log()!r}")
        finish_after_restart(env, w, src, "after 20 kill -9s")
        d.check(w.failed() == [], f"failed/ holds {w.failed()}")


def status_now(env):
    """state_dir/status.json as a dict, {} before the first write."""
    path = os.path.join(env.state_dir, "status.json")
    return load_json(path) if os.path.exists(path) else {}


def status_text(env):
    """What `weightdrop status --config CONFIG` prints."""
    return subprocess.run([U.BINARY, "status", "--config", env.config_path],
                          capture_output=True, text=True, timeout=20).stdout


def wait_status(d, env, pred, what, timeout=5):
    """Waits until pred(status.json) holds; returns that status."""
    return d.wait(lambda: (lambda st: st if st and pred(st) else None)(status_now(env)),
                  timeout, what)


# --- 21. hostile input and renamed re-drops ---------------------------------------

def deep_model_folder(root, name):
    """A folder bundle whose model.json is 2 MB of nested arrays, made outside
    the drop folder (then renamed in)."""
    folder = os.path.join(root, name)
    os.makedirs(folder)
    np.save(os.path.join(folder, "w.npy"), np.arange(4, dtype=np.float32))
    U.write_file(os.path.join(folder, "model.json"),
                 b'{"x": ' + b"[" * 1000000 + b"]" * 1000000 + b"}")
    return folder


@check("21a hostile bundles (zip64 bomb, nested model.json) go to failed/; other watches "
       "serve; a restart finds nothing stranded")
def hostile_bundles():
    with Env("hostile") as env:
        wa, wb = env.watch("a"), env.watch("b")
        d = env.start()
        cases = {"bomb.npz": (H.zip64_bomb_npz(1 << 50), "deflate"),
                 "bomb_stored.npz": (H.zip64_bomb_npz(1 << 50, stored=True), "stored"),
                 "deep": (None, "nested")}
        for name, (data, _) in cases.items():
            if data is None:
                os.rename(deep_model_folder(env.path("outside"), name), os.path.join(wa.drop, name))
            else:
                wa.drop_by_rename(name, data)
        wb.drop_by_rename("good.npz", U.npz_bytes(21))
        wait_published(d, wb, "good", 1, done="good.npz")
        for name, (_, word) in cases.items():
            d.wait(lambda: f"{name}.error.txt" in wa.failed(), 15, f"failed/{name}.error.txt")
            text = open(wa.sub("failed", f"{name}.error.txt"), encoding="utf-8",
                        errors="replace").read()
            d.check(word in text.lower(), f"{name}.error.txt does not say {word!r}: {text!r}")
            d.check("internal error" not in text.lower(), f"{name} blamed on us: {text!r}")
        d.check(wa.processing() == [], f"processing/ holds {wa.processing()}")
        d.check(not d.exited(), "the daemon exited")
        d.stop()
        d2 = env.start(write=False)
        wb.drop_by_rename("good2.npz", U.npz_bytes(22))
        wait_published(d2, wb, "good2", 1, done="good2.npz")
        d2.check(sorted(n for n in wa.failed() if not n.endswith(".txt")) == sorted(cases),
                 f"failed/ holds {wa.failed()}")
        check_clean(d2, wa)
        d2.stop()


@check("21b a renamed single .npy (same bytes) to a fixed model is a new version")
def renamed_npy():
    with Env("renamed") as env:
        w = env.watch(model="m")
        d = env.start()
        data = H.npy_bytes(np.arange(6, dtype=np.float32))
        w.drop_by_rename("encoder.npy", data)
        wait_published(d, w, "m", 1, done="encoder.npy")
        w.drop_by_rename("decoder.npy", data)
        wait_published(d, w, "m", 2, done="decoder.npy")
        man = load_json(os.path.join(w.model_dir("m"), "weights_manifest.json"))
        names = [wt["name"] for g in man for wt in g["weights"]]
        d.check(names == ["decoder"], f"served manifest names {names}, expected ['decoder']")
        w.drop_by_rename("decoder.npy", data)
        d.wait(lambda: len(w.done()) == 3, 10, "the re-dropped decoder.npy in done/")
        d.check(w.versions("m") == [1, 2], f"versions {w.versions('m')}: a true re-drop "
                "should be unchanged")
        d.stop()


# --- 22. shutdown, start-up errors ------------------------------------------------

@check("22a SIGTERM during a publish: the version goes live and on_publish still runs; the "
       "final status.json says stopped")
def sigterm_runs_hook():
    env, w = big_env("sigtermhook", shutdown_timeout="60s")
    hook_out = env.path("hook.out")
    w.opts["hooks"] = {"on_publish": ["/bin/sh", "-c", f"echo {{model}} {{version}} >> {hook_out}"]}
    with env:
        d = env.start()
        drop_big(w)
        # SIGTERM once the publish runs: a bundle merely claimed when the
        # signal comes waits in processing/ for the next start (10a/10b).
        d.wait_log(r"publishing \S+ as big", 10)
        d.stop(timeout=70)
        lines = d.log_lines()
        term = next((i for i, ln in enumerate(lines) if "received SIGTERM" in ln), None)
        done = next((i for i, ln in enumerate(lines) if "published big version 1" in ln), None)
        note("22a: the publish " + ("finished after SIGTERM" if term is not None and
                                    done is not None and done > term else "finished first"))
        d.check(w.current("big") == "1", f"current -> {w.current('big')} after a 60s shutdown")
        got = open(hook_out).read().split() if os.path.exists(hook_out) else []
        d.check(got == ["big", "1"], f"on_publish after SIGTERM wrote {got}, expected big 1")
        st = load_json(os.path.join(env.state_dir, "status.json"))
        d.check(st["state"] == "stopped", f"final status.json state {st['state']!r}")
        d.check(st["totals"]["publishes"] == 1, f"final status.json totals {st['totals']}")


@check("22d a publish certain to finish after SIGTERM (held 3 s by the fault daemon) goes "
       "live and still runs on_publish before the daemon exits")
def sigterm_then_publish_finishes():
    binary = fault_daemon()
    with Env("sigtermslow") as env:
        env.top.update(shutdown_timeout="30s")
        hook_out = env.path("hook.out")
        w = env.watch(model="m", hooks={
            "on_publish": ["/bin/sh", "-c", f"echo {{model}} {{version}} >> {hook_out}"]})
        d = env.start(binary=binary)
        w.drop_by_rename("slow-a.npy", H.npy_bytes(np.arange(4, dtype=np.float32)))
        d.wait_log(r"claimed \S*slow-a\.npy", 10)
        d.signal(signal.SIGTERM)
        rc = d.wait_exit(timeout=30)
        d.check(rc == 0, f"exit {rc}")
        lines = d.log_lines()
        term = next((i for i, ln in enumerate(lines) if "received SIGTERM" in ln), None)
        done = next((i for i, ln in enumerate(lines) if "published m version 1" in ln), None)
        d.check(term is not None and done is not None and done > term,
                "the publish did not finish after SIGTERM")
        d.check(w.current("m") == "1", f"current -> {w.current('m')}")
        got = open(hook_out).read().split() if os.path.exists(hook_out) else []
        d.check(got == ["m", "1"], f"on_publish after SIGTERM wrote {got}, expected m 1")


@check("22b a bad config at start-up is logged at error priority under journald; conflicting "
       "settings refuse the start")
def startup_config_error_priority():
    with Env("badstart") as env:
        env.watch()
        env.write_config(env.config_text().replace("settle:", "setle:", 1))
        log = env.path("start.log")
        with open(log, "wb") as f:
            rc = subprocess.run([U.BINARY, "run", "--config", env.config_path],
                                stdout=f, stderr=subprocess.STDOUT, timeout=20,
                                env=dict(os.environ, JOURNAL_STREAM="8:1234")).returncode
        text = open(log, encoding="utf-8", errors="replace").read()
        lines = [ln for ln in text.splitlines() if "setle" in ln]
        if rc != 1 or not lines or not lines[0].startswith("<3>"):
            raise AssertionError(f"exit {rc}; the config error line should start with <3>:\n"
                                 f"{text}")
        # Settings that conflict refuse the start too: a config error, not
        # every bundle sent to failed/ later.
        env.write_config(env.config_text() +
                         "defaults:\n  quantize: {uint8: ['*/kernel'], float16: '*'}\n")
        r = subprocess.run([U.BINARY, "run", "--config", env.config_path], capture_output=True,
                           text=True, timeout=20)
        if r.returncode != 1 or "can never apply" not in r.stderr:
            raise AssertionError(f"conflicting settings at start: exit {r.returncode}:\n{r.stderr}")


@check("22c a second daemon on the same state_dir exits 1 at once, naming the first's pid")
def second_instance():
    with Env("twice") as env:
        w = env.watch()
        d = env.start()
        wait_status(d, env, lambda st: True, "the first daemon's status.json")
        t0 = time.monotonic()
        r = subprocess.run([U.BINARY, "run", "--config", env.config_path], capture_output=True,
                           text=True, timeout=20)
        took = time.monotonic() - t0
        msg = f"another weightdrop (pid {d.proc.pid}) is running with state_dir {env.state_dir}"
        d.check(r.returncode == 1, f"second instance exit {r.returncode}: {r.stderr[-500:]}")
        d.check(msg in r.stderr, f"second instance did not say {msg!r}: {r.stderr[-500:]}")
        d.check(took < 5, f"second instance took {took:.1f}s to give up")
        d.check(env.status()["pid"] == d.proc.pid, "status.json no longer names the first daemon")
        w.drop_by_rename("after.npz", U.npz_bytes(31))
        wait_published(d, w, "after", 1, done="after.npz")
        d.stop()


# --- 23. a bundle the daemon cannot read --------------------------------------------

def unprivileged(env):
    """A wrapper that runs the daemon as `nobody` when the tests run as root
    (root reads any file); the env tree is handed to that user. None when not
    root: the daemon then runs as the test's own user, who cannot read a
    mode-000 file either."""
    if os.geteuid() != 0:
        return None
    os.chmod(U.base_dir(), 0o755)
    for dirpath, dirnames, filenames in os.walk(env.root):
        for n in [dirpath] + [os.path.join(dirpath, x) for x in dirnames + filenames]:
            os.lchown(n, 65534, 65534)
    wrapper = env.path("as-nobody.sh")
    U.write_file(wrapper, ("#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups "
                           f"-- {U.BINARY} \"$@\"\n").encode())
    os.chmod(wrapper, 0o755)
    return wrapper


def start_with_unreadable_first(env, w):
    """Starts the daemon unprivileged (see unprivileged) and renames in
    first.npy, a bundle its user cannot read; returns (daemon, wrapper)."""
    wrapper = unprivileged(env)
    d = env.start(write=False, binary=wrapper)
    secret = env.path("outside-secret.npy")
    U.write_file(secret, H.npy_bytes(np.arange(5, dtype=np.float32)))
    os.chmod(secret, 0o600 if wrapper else 0o000)
    os.rename(secret, os.path.join(w.drop, "first.npy"))
    return d, wrapper


@check("23 an unreadable bundle is retried bundle_retries times, then quarantined with a "
       "hint; the model's next bundle publishes")
def unreadable_bundle():
    with Env("unreadable") as env:
        env.top.update(bundle_retries=3, bundle_retry_delay="200ms")
        w = env.watch(model="m")
        env.write_config()
        d, wrapper = start_with_unreadable_first(env, w)
        time.sleep(0.1)
        w.drop_by_rename("second.npy", H.npy_bytes(np.arange(7, dtype=np.float32)))
        if wrapper:
            os.lchown(os.path.join(w.drop, "second.npy"), 65534, 65534)
        wait_published(d, w, "m", 1, timeout=20, done="second.npy")
        d.check("first.npy.error.txt" in w.failed(), f"failed/ holds {w.failed()}")
        text = open(w.sub("failed", "first.npy.error.txt"), encoding="utf-8").read()
        d.check("first.npy" in text and "chmod" in text and "3 attempts" in text,
                f"first.npy.error.txt lacks the bundle, the attempts or a chmod hint: {text!r}")
        if wrapper:
            d.check("nobody" in text, f"the hint does not name the daemon's user: {text!r}")
        tries = [ln for ln in d.log_lines() if "cannot read first.npy (attempt" in ln]
        d.check(len(tries) == 2, f"{len(tries)} 'cannot read' retries logged, expected 2")
        man = load_json(os.path.join(w.model_dir("m"), "weights_manifest.json"))
        names = [wt["name"] for g in man for wt in g["weights"]]
        d.check(names == ["second"], f"served {names}")
        d.check(w.processing() == [], f"processing/ holds {w.processing()}")
        d.stop()


@check("23b an unreadable bundle removed from processing/ while it waits for a retry fails "
       "once (no endless retry, no orphan error file); the model's next bundle publishes")
def vanished_while_retrying():
    with Env("vanished") as env:
        env.top.update(bundle_retries=5, bundle_retry_delay="1s")
        w = env.watch(model="m")
        env.write_config()
        d, wrapper = start_with_unreadable_first(env, w)
        d.wait_log(r"cannot read first\.npy \(attempt 1", timeout=10)
        for claim in os.listdir(w.sub("processing")):  # an operator cleans up by hand
            shutil.rmtree(w.sub("processing", claim))
        w.drop_by_rename("second.npy", H.npy_bytes(np.arange(7, dtype=np.float32)))
        if wrapper:
            os.lchown(os.path.join(w.drop, "second.npy"), 65534, 65534)
        wait_published(d, w, "m", 1, timeout=20, done="second.npy")
        d.check(any("was removed from .weightdrop/processing/" in ln for ln in d.log_lines()),
                "the vanished bundle's failure was not logged")
        d.check(w.failed() == [], f"failed/ holds {w.failed()} (orphan error files)")
        d.check(w.processing() == [], f"processing/ holds {w.processing()}")
        d.check(not any("retrying" in ln and "first.npy" in ln for ln in d.log_lines()),
                "the vanished bundle was retried as a serve-side fault")
        d.stop()


@check("23c a folder bundle the daemon's user cannot move is logged once with a hint, shown "
       "in status, and holds up no other bundle")
def unclaimable_bundle():
    with Env("unclaimable") as env:
        w = env.watch(model="{stem}", rescan="1s")
        env.write_config()
        wrapper = unprivileged(env)
        if wrapper is None:
            raise Skip("needs root, to make a folder the daemon's user cannot move")
        d = env.start(write=False, binary=wrapper)
        locked = os.path.join(w.drop, "locked")
        os.mkdir(locked)  # root's, mode 0755: nobody can read it but not rename it
        U.write_file(os.path.join(locked, "w.npy"), H.npy_bytes(np.arange(3, dtype=np.float32)))
        U.write_file(os.path.join(locked, ".ready"), b"")
        w.drop_by_rename("other.npy", H.npy_bytes(np.arange(4, dtype=np.float32)))
        os.lchown(os.path.join(w.drop, "other.npy"), 65534, 65534)
        wait_published(d, w, "other", 1, timeout=20, done="other.npy")
        time.sleep(3.5)  # several rescans
        said = [ln for ln in d.log_lines() if "cannot claim" in ln and "locked" in ln]
        d.check(len(said) == 1, f"'cannot claim' logged {len(said)} times, expected once")
        d.check(said and "write permission" in said[0], f"no hint: {said}")
        st = env.status()
        unclaimable = [u for ws in st["watches"] for u in ws.get("unclaimable", [])]
        d.check(len(unclaimable) == 1 and unclaimable[0].startswith("locked: "),
                f"status.json unclaimable: {unclaimable}")
        text = status_text(env)
        d.check("cannot claim in " in text, f"`status` does not show it: {text}")
        shutil.rmtree(locked)
        time.sleep(2)
        st = env.status()
        d.check(all(not ws.get("unclaimable") for ws in st["watches"]),
                "status still lists the removed folder")
        d.stop()


# --- 24. state across restarts ------------------------------------------------------

@check("24 after a restart, status and metrics show the served models at once: current "
       "version, last success, and the counters of the last run")
def restart_keeps_state():
    with Env("restartstate") as env:
        w = env.watch()
        d = env.start()
        for i, name in enumerate(("one", "two")):
            w.drop_by_rename(f"{name}.npz", U.npz_bytes(240 + i))
            wait_published(d, w, name, 1, done=f"{name}.npz")
        w.drop_by_rename("two.npz", U.npz_bytes(250))
        wait_published(d, w, "two", 2)
        d.stop()
        d2 = env.start()
        prom = os.path.join(env.state_dir, "weightdrop.prom")
        d2.wait(lambda: os.path.exists(prom) and os.path.getmtime(prom) >= d2.started_at, 5,
                "a weightdrop.prom written by the new daemon")
        samples = parse_prom(open(prom).read())
        st = env.status()
        for model, version, publishes in (("one", 1, 1), ("two", 2, 2)):
            key = f"{w.serve}/{model}"
            d2.check(key in st["models"], f"status.json after restart lacks {key}")
            m = st["models"].get(key, {})
            d2.check(m.get("current_version") == version, f"{model}: {m}")
            d2.check(m.get("publishes") == publishes, f"{model}: publishes {m}")
            d2.check(m.get("last_success") is not None, f"{model}: no last_success {m}")
            d2.check(prom_value(samples, "weightdrop_current_version", model=model) == version,
                     f"weightdrop_current_version for {model} after restart")
            d2.check(prom_value(samples, "weightdrop_last_success_timestamp_seconds",
                                model=model) is not None,
                     f"weightdrop_last_success_timestamp_seconds for {model} after restart")
        out = status_text(env)
        d2.check("no models yet" not in out, f"`weightdrop status` after restart:\n{out}")
        d2.stop()


# --- 25. the bundle as dropped ------------------------------------------------------

@check("25 logs, errors and publish.json name the bundle as dropped (drop/<name>), and the "
       "log says when a publish starts")
def names_as_dropped():
    with Env("dropnames") as env:
        w = env.watch()
        d = env.start()
        w.drop_by_rename("good.npz", U.npz_bytes(25))
        wait_published(d, w, "good", 1, done="good.npz")
        dropped = os.path.join(w.drop, "good.npz")
        src = w.publish_json("good", 1)["source"]["path"]
        d.check(src == dropped, f"publish.json source.path {src!r}, expected {dropped!r}")
        d.wait_log(r"publishing " + re.escape(dropped) + r" as good \(\d+\.\d MiB, 3 weights\)",
                   3)
        w.drop_by_rename("bad.npz", bad_object_npz())
        d.wait(lambda: "bad.npz.error.txt" in w.failed(), 10, "failed/bad.npz.error.txt")
        line = d.wait_log(r"failed bad\.npz", 3)
        d.check(".weightdrop/processing" not in line, f"the failure names processing/: {line!r}")
        d.check(os.path.join(w.drop, "bad.npz") in line, f"the failure lacks drop/bad.npz: {line!r}")
        err = open(w.sub("failed", "bad.npz.error.txt"), encoding="utf-8").read()
        d.check(".weightdrop/processing" not in err, f"error.txt names processing/: {err!r}")
        key = f"{w.serve}/bad"
        st = wait_status(d, env, lambda st: key in st.get("models", {}),
                         "status.json with the failed model")
        last = st["models"][key]["last_error"]
        d.check(".weightdrop/processing" not in last and "bad.npz" in last,
                f"status last_error: {last!r}")
        d.stop()


@check("26 a bundle whose first publish fails while encoding (NaN under uint8) leaves no "
       "serve/<model>/ folder behind")
def failed_first_publish_leaves_nothing():
    with Env("nanfirst") as env:
        w = env.watch(quantize={"uint8": True})
        d = env.start()
        w.drop_by_rename("nan.npz", H.npz_bytes([("w.npy", H.npy_bytes(
            np.array([1.0, np.nan], np.float32)))]))
        d.wait(lambda: "nan.npz.error.txt" in w.failed(), 10, "failed/nan.npz.error.txt")
        d.check(not os.path.lexists(w.model_dir("nan")),
                f"serve/nan left behind: {listdir(w.model_dir('nan'))}")
        w.drop_by_rename("ok.npz", U.npz_bytes(26))
        wait_published(d, w, "ok", 1, done="ok.npz")
        d.stop()


@check("27 files that are not bundles are logged once at warning with why and listed in status")
def ignored_files_visible():
    with Env("ignored") as env:
        w = env.watch()
        d = env.start()
        U.write_file(os.path.join(w.drop, "notes.txt"), b"hello")
        w.drop_by_rename("UP.NPZ", U.npz_bytes(27))
        d.wait_log(r"UP\.NPZ: is not a bundle: the extension must be lower case", 5)
        d.wait_log(r"notes\.txt: is not a bundle \(a bundle is", 5)
        st = wait_status(d, env, lambda st: sorted(st["watches"][0].get("ignored", [])) ==
                         ["UP.NPZ", "notes.txt"], "status.json listing both")
        d.check(st is not None, "status.json does not list the ignored files")
        time.sleep(2.5)  # two more rescans (rescan 1s): still one warning each
        n = sum(1 for ln in d.log_lines() if "UP.NPZ: is not a bundle" in ln)
        d.check(n == 1, f"UP.NPZ warned {n} times")
        out = status_text(env)
        d.check("UP.NPZ" in out and "notes.txt" in out, f"`weightdrop status`:\n{out}")
        d.stop()


@check("28 keep_done (an age) and keep_failed (a count) prune the archives")
def archive_retention():
    with Env("retention") as env:
        w = env.watch(keep_done="2s", keep_failed=2)
        d = env.start()
        w.drop_by_rename("g.npz", U.npz_bytes(28))
        wait_published(d, w, "g", 1, done="g.npz")
        for i in range(3):
            w.drop_by_rename(f"bad{i}.npz", bad_object_npz())
            d.wait(lambda: f"bad{i}.npz.error.txt" in w.failed(), 10, f"failed/bad{i}.npz")
            time.sleep(0.05)
        d.wait(lambda: sorted(w.failed()) == ["bad1.npz", "bad1.npz.error.txt", "bad2.npz",
                                              "bad2.npz.error.txt"], 5,
               "failed/ pruned to the newest 2 bundles with their error files")
        d.wait(lambda: w.done() == [], 6, "done/g.npz removed once older than 2s")
        d.wait_log(r"removed done/g\.npz \(past its retention\)", 2)
        d.check(w.current("g") == "1", "pruning touched the published model")
        d.stop()


@check("29 status shows each publish in flight: bundle as dropped, model, bytes done of total, "
       "elapsed")
def status_in_flight():
    env, w = big_env("inflight")
    with env:
        d = env.start()
        drop_big(w)
        dropped = os.path.join(w.drop, "big.npz")
        st = wait_status(d, env, lambda st: st.get("publishing") and
                         st["publishing"][0]["bytes_done"] > 0,
                         "status.json with a publish in flight and bytes done", 20)
        p = st["publishing"][0]
        d.check(p["bundle"] == dropped and p["model"] == "big", f"in flight: {p}")
        d.check(0 < p["bytes_done"] <= p["bytes_total"], f"in flight: {p}")
        out = status_text(env)
        if w.current("big") is None:
            d.check("PUBLISHING" in out and "big.npz" in out, f"`weightdrop status`:\n{out}")
        wait_published(d, w, "big", 1, timeout=60, done="big.npz")
        wait_status(d, env, lambda st: st.get("publishing") == [],
                    "status.json with nothing in flight after the publish")
        d.stop()


@check("30 one model fed from two drop folders (a shared {stem} template) is warned about and "
       "shown in status")
def shared_model_warned():
    with Env("shared") as env:
        wa, wb = env.watch("a"), env.watch("b")
        d = env.start()
        wa.drop_by_rename("same.npz", U.npz_bytes(30))
        wait_published(d, wa, "same", 1, done="same.npz")
        wb.drop_by_rename("same.npz", U.npz_bytes(31))
        wait_published(d, wb, "same", 2, done="same.npz")
        d.wait_log(r"model same in \S+ is now fed by 2 drop folders", 3)
        key = f"{wa.serve}/same"
        st = wait_status(d, env, lambda st: key in st.get("shared_models", {}),
                         "status.json naming the shared model")
        d.check(sorted(st["shared_models"][key]) == sorted([wa.drop, wb.drop]),
                f"shared_models: {st['shared_models']}")
        out = status_text(env)
        d.check("is fed by 2 drop folders" in out, f"`weightdrop status`:\n{out}")
        d.stop()


@check("31 max_parallel_publishes 1: two big publishes run one after the other; scans and "
       "status go on meanwhile")
def bounded_publishes():
    with Env("bounded") as env:
        env.top["defaults"] = {"shard_size": BIG_SHARD}
        env.top["max_parallel_publishes"] = 1
        wa, wb = env.watch("a"), env.watch("b")
        d = env.start()
        src = U.big_bundle()
        for w, name in ((wa, "x.npz"), (wb, "y.npz")):
            tmp = os.path.join(w.drop, f".{name}.tmp")
            os.link(src, tmp)
            os.rename(tmp, os.path.join(w.drop, name))
        wait_status(d, env, lambda st: st.get("publishing"), "a publish in flight", 10)
        U.write_file(os.path.join(wa.drop, "notes.txt"), b"x")
        most, seen_ignored = 0, False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (wa.current("x") and wb.current("y")):
            st = status_now(env)
            most = max(most, len(st.get("publishing", [])))
            if any("notes.txt" in ws.get("ignored", []) for ws in st["watches"]) and \
                    st.get("publishing"):
                seen_ignored = True
            time.sleep(0.05)
        d.check(wa.current("x") == "1" and wb.current("y") == "1", "both published")
        d.check(most == 1, f"{most} publishes ran at once with max_parallel_publishes 1")
        d.check(seen_ignored, "no scan reported notes.txt while a publish ran")
        d.stop()


# --- runner -----------------------------------------------------------------------

@check("32 a drop folder removed, or moved away, and made again is watched again: .weightdrop/ "
       "restored, bundles published, the moved folder's bundles not taken")
def drop_folder_recreated():
    with Env("recreated") as env:
        w = env.watch(settle="100ms", rescan="1s")
        d = env.start()
        w.drop_by_rename("a.npz", U.npz_bytes(321))
        wait_published(d, w, "a", done="a.npz")
        # rm -rf deletes .weightdrop/ before the folder: a scan in between
        # must not restore it, or the rm fails with ENOTEMPTY.
        shutil.rmtree(w.drop)
        d.wait_log(r"was removed or moved", 5)
        os.mkdir(w.drop)
        d.wait_log(r"restored \.weightdrop/", 5)
        w.drop_by_rename("b.npz", U.npz_bytes(322))
        wait_published(d, w, "b", done="b.npz")
        # Moved away: the old folder's inotify watch must not feed this watch.
        moved = w.drop + ".old"
        os.rename(w.drop, moved)
        os.mkdir(w.drop)
        U.write_file(os.path.join(env.root, "outside", "x.npz"), U.npz_bytes(323))
        os.rename(os.path.join(env.root, "outside", "x.npz"), os.path.join(moved, "x.npz"))
        w.drop_by_rename("c.npz", U.npz_bytes(324))
        wait_published(d, w, "c", done="c.npz")
        time.sleep(1.5)
        d.check(w.current("x") is None and os.path.exists(os.path.join(moved, "x.npz")),
                "a bundle dropped into the moved-away folder was taken")
        noise = [ln for ln in d.log_lines()
                 if re.search(r"cannot create .*processing|cannot scan|cannot prune", ln)]
        d.check(not noise, f"errors logged while the folder was away: {noise}")
        d.stop()


@check("33 arrival order holds: a bundle found at start publishes before one renamed in after "
       "it, and bundles opened together are claimed in arrival order")
def arrival_order():
    with Env("order") as env:
        w = env.watch(model="m", settle="1s")
        first = U.npz_bytes(331)
        w.drop_by_rename("A.npz", first)           # dropped while no daemon runs
        d = env.start()
        d.wait_log(r"watching\W*" + re.escape(w.drop), 5)
        time.sleep(0.2)
        second = U.npz_bytes(332)
        w.drop_by_rename("B.npz", second)          # later, by rename: taken at once before
        wait_published(d, w, "m", 2, done="B.npz", timeout=15)
        check_source(d, w, "m", 1, sha256_bytes(first))
        check_source(d, w, "m", 2, sha256_bytes(second))
        d.stop()
    with Env("order2") as env:
        w = env.watch(model="m", settle="200ms", keep_versions=10)
        with open(U.big_bundle(32), "rb") as f:
            big = f.read()
        names = []
        for i in range(6):                         # big and small alternate: probes end out of order
            name = f"{i:02d}.npz"
            w.drop_by_rename(name, big if i % 2 == 0 else U.npz_bytes(340 + i))
            names.append(name)
            time.sleep(0.01)
        d = env.start()
        d.wait(lambda: len(w.done()) == 6, 60, "all six bundles in done/")
        # Claim ids sort in claim order (log lines come in whatever order
        # the claims' workers end).
        claims = sorted((m.group(1), m.group(2)) for ln in d.log_lines()
                        for m in [re.search(r"claimed \S+/processing/(\S+)/(\d\d\.npz)$", ln)]
                        if m)
        order = [name for _, name in claims]
        d.check(order == names, f"claimed in order {order}, dropped as {names}")
        d.stop()


@check("34 a quantize pattern that matches no weight: logged at warning; with strict_patterns "
       "the bundle goes to failed/ naming the pattern")
def unmatched_patterns():
    with Env("patterns") as env:
        loose = env.watch("loose", quantize={"uint8": ["*/kernal"]})
        strict = env.watch("strict", quantize={"uint8": ["*/kernal"]}, strict_patterns=True)
        d = env.start()
        loose.drop_by_rename("a.npz", U.npz_bytes(341))
        wait_published(d, loose, "a", done="a.npz")
        d.wait_log(r"warn.*\*/kernal.*matched no weight", 5)
        strict.drop_by_rename("b.npz", U.npz_bytes(342))
        d.wait(lambda: "b.npz" in strict.failed(), 10, "b.npz in failed/")
        text = read_text(strict.sub("failed", "b.npz.error.txt"))
        d.check("*/kernal" in text, f"error.txt does not name the pattern: {text!r}")
        d.check(strict.current("b") is None, "strict watch published b")
        d.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--filter", default="", help="run only checks whose name contains this")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument("--fault-daemon", default="",
                    help="wd_fault_daemon, for the checks of crashes and exceptions (20*)")
    args = ap.parse_args()
    U.BINARY = os.path.abspath(args.binary)
    U.FAULT_BINARY = os.path.abspath(args.fault_daemon) if args.fault_daemon else None
    U.KEEP = args.keep
    if not os.access(U.BINARY, os.X_OK):
        print(f"daemon_test: {U.BINARY} is not an executable", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    try:
        passed, failed, skipped = checks.run(args.filter)
    finally:
        U.remove_base(args.keep)
    return checks.finish(t0, passed, failed, skipped)


if __name__ == "__main__":
    sys.exit(main())
