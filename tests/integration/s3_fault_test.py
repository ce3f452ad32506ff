#!/usr/bin/python3
"""Crash and fault tests of weightdrop's S3 publish target against a real Ceph RGW.

Usage: /usr/bin/python3 s3_fault_test.py --binary PATH [--seed S] [--kills N]
                                         [--filter SUBSTR] [--jobs J] [--points N,N]
                                         [--sample K]
                                         [--strict-verify] [--keep] [-v]

1. A sweep: a byte-forwarding TCP proxy (FaultProxy) sits between the CLI
   and the RGW and counts the HTTP requests of a publish. For every request
   index N of the publish of a new bundle, the store fails at request N:
     before  the proxy goes down as request N arrives (request N never
             reaches the store; every connection is closed, new ones refused)
     after   request N reaches the store, its answer is lost and the proxy
             goes down (the store did it, the client cannot know)
     503     the proxy answers 503 SlowDown to request N and every one after
             (the client's retry path: 5 attempts with backoff)
   The publish must fail with an error naming the target (or, for requests
   after the version became current, succeed), leave every pointer naming a
   complete version (model.json, then weights_manifest.json, then current:
   never one ahead of the one written before it) and `verify` ok; once the
   proxy is up again, publishing the same bundle again makes it current
   (exactly one complete version holds it), the pointers agree, verify is ok,
   no incomplete version and no multipart upload is left. A second sweep
   does the same with a >16 MiB shard, so multipart requests are swept too.
   Sweep points run in parallel (--jobs), each with its own proxy and prefix;
   --points N,N reruns only those request indices; --sample K runs every
   K-th point (the sanitizer build, where each point costs several times more).
   A fault between two pointer writes leaves the pointers split (formats.md:
   each names the old or the new version, both complete; the next publish
   realigns them): `verify M` must then report the pointers and nothing
   else. --strict-verify demands `verify M` ok even then (it fails today:
   core/s3_store.cpp MovePointers stops at the first failed write and does
   not write the previous pointers back as a folder publish does).
2. kill -9 of a daemon with `serve: s3://` while it publishes 20-40 MiB
   bundles (seeded: --seed, --kills), restarted each time; at the end every
   bundle is published exactly once, in arrival order, current is the
   newest, and nothing is left incomplete, failed or stranded.
3. Two writers: a daemon killed -9 mid-upload (a multipart shard) while a
   CLI publish to the same model runs: the CLI's version is complete and
   current, the daemon's leftover is kept while it could still be alive and
   removed by the daemon's restart, which then publishes the bundle anew.

Starts its own RGW (scripts/rgw.sh in a fresh /tmp/wds3XXXX) and always
stops it. Exit 77 (ctest SKIP) when `scripts/rgw.sh available` fails.
Otherwise the last line is "N passed, M failed"; exit 1 when M > 0.
"""

import argparse
import concurrent.futures
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402
from checks import check, note  # noqa: E402
import daemon_util as DU  # noqa: E402
import s3_util  # noqa: E402
from s3_util import BUCKET  # noqa: E402

ARGS = None
BINARY = None
RGW = None   # s3_util.Rgw
S3 = None    # s3_util.S3 signed with the RGW's keys (direct, never through a proxy)
TMP = None   # scratch folder of this run
SEED = 20261202
KILLS = 15
FAIL_WITHIN = 20.0  # seconds: a publish whose store fails must give up within this


def log(msg):
    if ARGS.verbose:
        print("  " + msg, flush=True)


# --- the CLI ------------------------------------------------------------------------

class Run:
    def __init__(self, cmd, rc, out, err, seconds):
        self.cmd, self.rc, self.out, self.err, self.seconds = cmd, rc, out, err, seconds

    def __str__(self):
        return (f"$ {' '.join(self.cmd)}\n      exit {self.rc} ({self.seconds:.2f}s)\n"
                f"      stdout: {self.out[-1500:]!r}\n      stderr: {self.err[-1500:]!r}")


def cli_env(endpoint=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(RGW.aws_env())
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def wd(*args, endpoint=None, timeout=180):
    cmd = [BINARY] + [str(a) for a in args]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=cli_env(endpoint))
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError(f"timed out after {timeout}s: {' '.join(cmd)}")
    r = Run(cmd, p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"),
            time.monotonic() - t0)
    for bad in DU.SANITIZER_WORDS:
        assert bad not in r.err, f"sanitizer/abort report in stderr:\n      {r}"
    assert r.rc >= 0, f"killed by signal {-r.rc}:\n      {r}"
    return r


def target(prefix):
    return f"s3://{BUCKET}/{prefix}"


def published_version(r, prefix, model="m"):
    lines = r.out.strip().splitlines()
    m = re.fullmatch(re.escape(f"{target(prefix)}/{model}/") + r"(\d+)",
                     lines[-1]) if lines else None
    assert m, f"publish should print {target(prefix)}/{model}/<v>:\n      {r}"
    return int(m.group(1))


# --- bundles -------------------------------------------------------------------------

MODEL_JSON = {"format": "graph-model", "generatedBy": "s3_fault_test.py",
              "modelTopology": {"node": []}}


def folder_bundle(name, seed, arrays):
    """A folder bundle in TMP: one .npy per {name: shape} and a model.json;
    (path, bundle digest)."""
    folder = os.path.join(TMP, name)
    os.makedirs(folder)
    rng = np.random.default_rng(seed)
    for k, shape in arrays.items():
        np.save(os.path.join(folder, k + ".npy"), rng.standard_normal(shape).astype(np.float32))
    with open(os.path.join(folder, "model.json"), "w") as f:
        json.dump(MODEL_JSON, f, indent=1)
    return folder, DU.folder_digest(folder)


# Four shards of 4 KiB (4 x 1000 float32, --shard-size 4KiB) and a model.json.
SMALL = {"a": (1000,), "b": (1000,), "c": (1000,), "d": (1000,)}
SMALL_ARGS = ["--shard-size", "4KiB"]
# One 17 MiB shard (a multipart upload: parts of 8, 8 and 1 MiB).
BIG = {"big": (17 * 256 * 1024 - 100,), "small": (100,)}
BIG_ARGS = ["--shard-size", "32MiB"]


# --- looking at the bucket ------------------------------------------------------------

def model_versions(prefix, model="m"):
    """{version: set of object names} under prefix/M/."""
    return S3.versions(f"{prefix}/{model}/")


def complete_versions(prefix, model="m"):
    return sorted(v for v, names in model_versions(prefix, model).items()
                  if "publish.json" in names)


def manifest_versions(manifest):
    return {p.split("/", 1)[0] for g in manifest for p in g["paths"]}


def pointer_versions(prefix, model="m"):
    """{pointer: version it names, None when absent}; asserts each is well formed
    (one version per pointer)."""
    base = f"{prefix}/{model}"
    out = {}
    r = S3.get(f"{base}/current")
    if r.status == 404:
        out["current"] = None
    else:
        assert r.status == 200, f"GET {base}/current: {r}"
        text = r.body.decode()
        assert re.fullmatch(r"\d+\n", text), f"{base}/current holds {text!r}"
        out["current"] = int(text)
    for name, get_manifest in (("weights_manifest.json", lambda d: d),
                               ("model.json", lambda d: d["weightsManifest"])):
        r = S3.get(f"{base}/{name}")
        if r.status == 404:
            out[name] = None
            continue
        assert r.status == 200, f"GET {base}/{name}: {r}"
        vs = manifest_versions(get_manifest(json.loads(r.body)))
        assert len(vs) == 1 and next(iter(vs)).isdigit(), \
            f"{base}/{name} names the versions {sorted(vs)}, expected exactly one"
        out[name] = int(next(iter(vs)))
    return out


def check_pointers(prefix, v, model="m", model_json=True):
    """All three pointers name v (model.json absent without model_json), and
    the pointer manifest is v's own with "<v>/" paths."""
    base = f"{prefix}/{model}"
    got = pointer_versions(prefix, model)
    assert got == {"current": v, "weights_manifest.json": v,
                   "model.json": v if model_json else None}, \
        f"{base}: pointers {got}, expected all at version {v}"
    ptr = json.loads(S3.body(f"{base}/weights_manifest.json"))
    ver = json.loads(S3.body(f"{base}/{v}/weights_manifest.json"))
    assert ptr == [dict(g, paths=[f"{v}/{p}" for p in g["paths"]]) for g in ver], \
        f"{base}/weights_manifest.json is not {v}'s manifest with '{v}/' paths"


def verify(prefix, model="m", version=None):
    t = f"{target(prefix)}/{model}" + (f"/{version}" if version is not None else "")
    return wd("verify", t)


def verify_ok(prefix, model="m", version=None):
    r = verify(prefix, model, version)
    assert r.rc == 0 and "ok" in r.out + r.err, f"verify should be ok:\n      {r}"
    return r


def sources(prefix, versions, model="m"):
    """{version: source.sha256 of its publish.json}."""
    return {v: json.loads(S3.body(f"{prefix}/{model}/{v}/publish.json"))["source"]["sha256"]
            for v in versions}


def delete_prefix(prefix):
    """Removes every object under prefix/ (a passed sweep point's), to keep
    the memstore small."""
    for key in S3.list(f"{prefix}/"):
        r = S3.request("DELETE", key)
        assert r.status in (200, 204), f"DELETE {key}: {r}"


def check_clean(prefix, model="m"):
    """No incomplete version prefix, no multipart upload open under prefix/."""
    vers = model_versions(prefix, model)
    incomplete = {v: sorted(n) for v, n in vers.items() if "publish.json" not in n}
    assert not incomplete, f"{prefix}/{model}: incomplete versions left: {incomplete}"
    open_uploads = S3.multipart_uploads(f"{prefix}/")
    assert not open_uploads, f"{prefix}/: multipart uploads left open: {open_uploads}"


# --- the fault proxy ---------------------------------------------------------------------

SLOWDOWN_BODY = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                 b'<Message>Please reduce your request rate.</Message></Error>')


class FaultProxy:
    """A TCP proxy from 127.0.0.1:port to the RGW that forwards bytes unchanged
    (SigV4 signs the Host header as the client sent it: that is the proxy's).

    It reads the client's side as HTTP/1.1 (request line and headers up to
    the blank line, then Content-Length bytes of body; the client never
    pipelines, so a response is whatever the server sends after a request)
    and numbers the requests from 1 across all connections. arm(mode, n):
      "before": as request n arrives, go down: close every connection and the
                listening socket (new connections are refused); n is not sent
      "after":  forward request n, and as its response arrives, go down
                without forwarding it
      "503":    answer request n and every later one with 503 SlowDown
                (Connection: close; n and later are not sent to the store)
    up() listens again on the same port and forwards everything."""

    def __init__(self, upstream):
        self.upstream = upstream  # (host, port)
        self.lock = threading.Lock()
        self.port = None
        self.listener = None
        self.conns = set()
        self.errors = []  # protocol surprises: fail the check that sees them
        self.reset()
        self._listen()

    def reset(self):
        with self.lock:
            self.requests = []  # "METHOD /path" in arrival order
            self.mode, self.at = None, None
            self.down = False
            self.tripped = None  # monotonic time of the fault

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def _listen(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port or 0))
        s.listen(64)
        self.port = s.getsockname()[1]
        self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def _accept(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            with self.lock:
                down = self.down
            if down:
                c.close()
                continue
            try:
                u = socket.create_connection(self.upstream, timeout=10)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            conn = _Conn(self, c, u)
            with self.lock:
                if self.down:
                    conn.kill()
                    continue
                self.conns.add(conn)
            conn.start()

    def arm(self, mode, at):
        assert mode in ("before", "after", "503"), mode
        self.reset()
        with self.lock:
            self.mode, self.at = mode, at

    def count(self):
        with self.lock:
            return len(self.requests)

    def _next(self, line):
        """Numbers a request; returns what to do with it."""
        with self.lock:
            if self.down:
                return "drop"
            self.requests.append(line)
            n = len(self.requests)
            if self.mode is None or n < self.at:
                return "pass"
            if self.tripped is None:
                self.tripped = time.monotonic()
            return {"before": "down", "after": "after" if n == self.at else "drop",
                    "503": "503"}[self.mode]

    def go_down(self):
        with self.lock:
            if self.down and self.listener is None:
                return
            self.down = True
            conns, self.conns = list(self.conns), set()
            listener, self.listener = self.listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        for c in conns:
            c.kill()

    def up(self):
        self.go_down()  # closes whatever is left of the last round
        self.reset()
        self._listen()

    def close(self):
        self.go_down()

    def forget(self, conn):
        with self.lock:
            self.conns.discard(conn)


class _Conn:
    def __init__(self, proxy, c, u):
        self.proxy, self.c, self.u = proxy, c, u
        self.buf = b""
        self.body_left = 0
        self.discard_body = False  # 503: read the body, then answer
        self.pending_503 = None     # the request line being answered 503
        self.swallow = threading.Event()  # "after": lose the next response
        self.arm_swallow_at_end = False
        self.dead = False

    def start(self):
        threading.Thread(target=self._c2s, daemon=True).start()
        threading.Thread(target=self._s2c, daemon=True).start()

    def kill(self):
        self.dead = True
        for s in (self.c, self.u):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _answer_503(self, head_only):
        body = b"" if head_only else SLOWDOWN_BODY
        msg = (b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
               b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body
        try:
            self.c.sendall(msg)
        except OSError:
            pass
        self.proxy.forget(self)
        self.kill()

    def _c2s(self):
        try:
            while not self.dead:
                data = self.c.recv(65536)
                if not data:
                    break
                if not self._feed(data):
                    return
        except OSError:
            pass
        self.proxy.forget(self)
        self.kill()

    def _feed(self, data):
        """Forwards what is to be forwarded; False once the connection is done."""
        self.buf += data
        while self.buf:
            if self.body_left > 0:
                n = min(self.body_left, len(self.buf))
                chunk, self.buf = self.buf[:n], self.buf[n:]
                self.body_left -= n
                if self.discard_body:
                    if self.body_left == 0:
                        self._answer_503(False)
                        return False
                    continue
                if self.body_left == 0 and self.arm_swallow_at_end:
                    self.swallow.set()
                self.u.sendall(chunk)
                continue
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > 65536:
                    self.proxy.errors.append(f"request head over 64 KiB: {self.buf[:200]!r}")
                    return False
                return True
            head, self.buf = self.buf[:end + 4], self.buf[end + 4:]
            lines = head.decode("latin-1").split("\r\n")
            method, path = (lines[0].split(" ") + ["", ""])[:2]
            headers = {}
            for ln in lines[1:]:
                if ":" in ln:
                    k, v = ln.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self.proxy.errors.append(f"chunked request body: {lines[0]}")
                return False
            length = int(headers.get("content-length", "0") or 0)
            action = self.proxy._next(f"{method} {path.split('?')[0]}"
                                      f"{'?' + path.split('?')[1] if '?' in path else ''}")
            if action in ("down", "drop"):
                self.proxy.go_down()
                return False
            if action == "503":
                expect = "100-continue" in headers.get("expect", "").lower()
                if length == 0 or expect:  # a final answer instead of 100 Continue
                    self._answer_503(method == "HEAD")
                    return False
                self.body_left, self.discard_body = length, True
                continue
            self.body_left = length
            if action == "after":
                if length == 0:
                    self.swallow.set()
                else:
                    self.arm_swallow_at_end = True
            self.u.sendall(head)
        return True

    def _s2c(self):
        try:
            while not self.dead:
                data = self.u.recv(65536)
                if not data:
                    break
                if self.swallow.is_set():
                    self.proxy.go_down()
                    return
                self.c.sendall(data)
        except OSError:
            pass
        self.proxy.forget(self)
        self.kill()


def rgw_upstream():
    return ("127.0.0.1", int(RGW.env["RGW_PORT"]))


# --- 1. the sweep --------------------------------------------------------------------

class Case:
    """One bundle pair of a sweep: the previous version and the new bundle."""

    def __init__(self, label, arrays, args, seed):
        self.label, self.args = label, args
        self.prev, self.prev_digest = folder_bundle(f"{label}-prev", seed, arrays)
        self.new, self.new_digest = folder_bundle(f"{label}-new", seed + 1, arrays)


def publish(bundle, prefix, args, endpoint=None):
    return wd("publish", bundle, "--to", target(prefix), "--model", "m", *args,
              endpoint=endpoint, timeout=120)


def count_requests(case):
    """The requests the publish of case.new makes after case.prev is current."""
    prefix = f"{case.label}-count"
    r = publish(case.prev, prefix, case.args)
    assert r.rc == 0, f"publish of the previous version:\n      {r}"
    proxy = FaultProxy(rgw_upstream())
    try:
        r = publish(case.new, prefix, case.args, endpoint=proxy.endpoint)
        assert r.rc == 0, f"publish through the proxy (no fault):\n      {r}"
        assert not proxy.errors, f"proxy: {proxy.errors}"
        reqs = list(proxy.requests)
    finally:
        proxy.close()
    check_pointers(prefix, published_version(r, prefix))
    verify_ok(prefix)
    return reqs


def check_verify_after_fault(prefix, version, ptrs, complete, split, where, r):
    """`verify M` (version None) or `verify M/V` after a failed publish."""
    t = f"{target(prefix)}/m" + (f"/{version}" if version is not None else "")
    rv = verify(prefix, version=version)
    names_current = version in (None, ptrs["current"])
    if not split or not names_current or ARGS.strict_verify:
        # MARK (--strict-verify): the brief's "verify of current is ok" after
        # any failure, split pointers included.
        assert rv.rc == 0 and "ok" in rv.out + rv.err, \
            f"{where}: after the failed publish the pointers are {ptrs} (complete " \
            f"versions {complete}) and `verify {t}` fails:\n      {rv}" \
            f"\n      the failed publish: {r}"
        return
    # Split pointers (the store failed between two pointer writes): formats.md
    # promises each names a complete version, the old or the new, and that the
    # next publish realigns them. Verifying the version current names checks
    # that the pointers name its shards, so it must report exactly that, and
    # nothing about the shards.
    problems = [ln for ln in rv.err.splitlines() if "problem:" in ln]
    bad = [ln for ln in problems if not re.search(
        r"/m/(weights_manifest\.json does not name|model\.json is not) version "
        rf"{ptrs['current']}'s", ln)]
    assert rv.rc != 0 and problems and not bad, \
        f"{where}: with the pointers split {ptrs}, `verify {t}` should report the " \
        f"pointers and only them:\n      {rv}"


def sweep_point(case, mode, n, label):
    """Publish case.new with the store failing at request n; then publish it
    again with the store back. Returns a one-line outcome."""
    prefix = f"{case.label}-{mode}-{n}"
    r = publish(case.prev, prefix, case.args)
    assert r.rc == 0, f"publish of the previous version:\n      {r}"
    v1 = published_version(r, prefix)
    proxy = FaultProxy(rgw_upstream())
    where = f"{mode} at request {n} ({label})"
    try:
        proxy.arm(mode, n)
        r = publish(case.new, prefix, case.args, endpoint=proxy.endpoint)
        t_end = time.monotonic()
        assert not proxy.errors, f"{where}: proxy: {proxy.errors}"
        assert proxy.tripped is not None, \
            f"{where}: the publish made only {proxy.count()} requests:\n      {r}"
        after_fault = t_end - proxy.tripped
        assert after_fault < FAIL_WITHIN, \
            f"{where}: the publish ended {after_fault:.1f}s after the fault\n      {r}"
        complete = complete_versions(prefix)
        ptrs = pointer_versions(prefix)
        if r.rc == 0:
            # Only a fault after the version became current may let it succeed
            # (retention's listing); then everything names the new version.
            v = published_version(r, prefix)
            check_pointers(prefix, v)
            assert "retention skipped" in r.err, \
                f"{where}: a publish that hit the fault yet exited 0 should warn that " \
                f"retention was skipped:\n      {r}"
            first = f"exit 0 (v{v} current; stderr: {r.err.strip().splitlines()[-1][:90]!r})"
        else:
            assert target(prefix) in r.err, \
                f"{where}: the error should name the target {target(prefix)}:\n      {r}"
            first = f"exit {r.rc}: {r.err.strip().splitlines()[-1][:110]!r}"
        # Each pointer names a complete version; moved in the order model.json,
        # weights_manifest.json, current, so none is behind the one after it.
        for name, pv in ptrs.items():
            assert pv is not None and pv in complete, \
                f"{where}: {prefix}/m/{name} names version {pv}, not a complete version " \
                f"{complete}\n      {r}"
            assert pv >= v1, f"{where}: {prefix}/m/{name} moved back to {pv} (< {v1})"
        assert ptrs["model.json"] >= ptrs["weights_manifest.json"] >= ptrs["current"], \
            f"{where}: pointers out of order {ptrs}: model.json, weights_manifest.json " \
            f"and current move in that order\n      {r}"
        split = len(set(ptrs.values())) > 1
        for v in [None] + complete:
            check_verify_after_fault(prefix, v, ptrs, complete, split, where, r)

        proxy.up()
        r2 = publish(case.new, prefix, case.args, endpoint=proxy.endpoint)
        assert r2.rc == 0, f"{where}: the re-publish with the store back failed:\n      {r2}"
        v = published_version(r2, prefix)
        check_pointers(prefix, v)
        verify_ok(prefix)
        check_clean(prefix)
        complete = complete_versions(prefix)
        src = sources(prefix, complete)
        assert complete[0] == v1 and src[v1] == case.prev_digest, \
            f"{where}: the previous version {v1} is gone or changed: {src}"
        mine = [x for x, d in src.items() if d == case.new_digest]
        assert mine == [v] and complete == [v1, v], \
            f"{where}: after the re-publish the complete versions are {src}; expected " \
            f"{v1} (previous) and {v} (the new bundle, once)\n      {r2}"
        delete_prefix(prefix)
        how = ("unchanged" if "unchanged" in r2.err else
               "made current" if "made it current" in r2.err else "new version")
        return (f"{n:3d} {label:45.45s} {first[:120]}; pointers "
                f"{ptrs['model.json']}/{ptrs['weights_manifest.json']}/{ptrs['current']}"
                f"{' (split)' if split else ''}; re-publish v{v} {how}",
                after_fault, split, how)
    finally:
        proxy.close()


def run_sweep(case, modes, points):
    """points: {mode: [request index]}. Runs them ARGS.jobs at a time."""
    reqs = count_requests(case)
    note(f"{case.label}: one publish makes {len(reqs)} requests: " +
         ", ".join(f"{i}:{r.split(' ')[0]} {r.split('/m/', 1)[-1]}"
                   for i, r in enumerate(reqs, 1)))
    jobs = [(mode, n) for mode in modes for n in points(reqs)[mode]
            if not ARGS.points or n in ARGS.points]
    if ARGS.sample > 1:  # every K-th point, from an offset the seed picks
        jobs = jobs[ARGS.seed % ARGS.sample::ARGS.sample]
    t0 = time.monotonic()
    results, failures = {}, []
    with concurrent.futures.ThreadPoolExecutor(ARGS.jobs) as ex:
        futs = {ex.submit(sweep_point, case, mode, n, reqs[n - 1]): (mode, n)
                for mode, n in jobs}
        for f in concurrent.futures.as_completed(futs):
            mode, n = futs[f]
            try:
                results[(mode, n)] = f.result()
                log(f"{case.label} {mode} {results[(mode, n)][0]}")
            except AssertionError as e:
                failures.append(((mode, n), str(e)))
            except Exception as e:  # a bug in the test: still report it
                failures.append(((mode, n), f"{type(e).__name__}: {e}"))
    took = time.monotonic() - t0
    for mode in modes:
        rows = [results[k] for k in sorted(results) if k[0] == mode]
        if rows:
            fails = sorted(x[1] for x in rows)
            hows = {}
            for x in rows:
                hows[x[3]] = hows.get(x[3], 0) + 1
            note(f"{case.label} {mode}: {len(rows)} points ok; the faulty publish took "
                 f"{fails[0]:.1f}-{fails[-1]:.1f}s; {sum(1 for x in rows if x[2])} left the "
                 f"pointers split; re-publish: {hows}")
        if ARGS.verbose:
            for x in rows:
                print(f"    {case.label} {mode} {x[0]}")
    note(f"{case.label}: {len(jobs)} sweep points in {took:.1f}s ({ARGS.jobs} at a time)")
    failures.sort()
    assert not failures, f"{len(failures)} of {len(jobs)} sweep points failed:\n      " + \
        "\n      ".join(f"[{m} {n}] {e}" for (m, n), e in failures[:6])


@check("1a sweep: the store fails at every request of a 4-shard publish (down before/after, 503)")
def sweep_small():
    case = Case("small", SMALL, SMALL_ARGS, 100)
    run_sweep(case, ("before", "after", "503"),
              lambda reqs: {m: list(range(1, len(reqs) + 1)) for m in ("before", "after", "503")})


def multipart_sample(reqs):
    """Every request for "before"; for "after" and "503" (which the small
    sweep covers request by request) the multipart ones (create, parts,
    complete, the HEAD after it), the claim, publish.json and current."""
    every = list(range(1, len(reqs) + 1))
    some = [i for i, r in enumerate(reqs, 1)
            if re.search(r"\.bin\?|^HEAD .*\.bin$|/\.claim$|\d/publish\.json$|^PUT .*/m/current$",
                         r)]
    return {"before": every, "after": some, "503": some}


@check("1b sweep: the same with a 17 MiB shard (multipart create, parts, complete)")
def sweep_multipart():
    case = Case("multipart", BIG, BIG_ARGS, 200)
    run_sweep(case, ("before", "after", "503"), multipart_sample)


# --- daemons ---------------------------------------------------------------------------

def credentials_file(path):
    with open(path, "w") as f:
        f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (
            RGW.env["AWS_ACCESS_KEY_ID"], RGW.env["AWS_SECRET_ACCESS_KEY"]))
    os.chmod(path, 0o600)
    return path


def s3_daemon_env(label, prefix, **watch_opts):
    """A daemon_util.Env with one watch serving s3://BUCKET/prefix (model m)."""
    env = DU.Env(label)
    env.top["s3"] = {"endpoint": RGW.endpoint, "region": RGW.env.get("AWS_REGION", "us-east-1"),
                     "path_style": True,
                     "credentials_file": credentials_file(env.path("aws-credentials"))}
    watch_opts.setdefault("model", "m")
    w = env.watch(_serve_text=target(prefix), **watch_opts)
    return env, w


class BundleMaker:
    """Distinct float32 .npz bundles of a given size, cut from one random pool
    (cheap to make); each written outside the drop folder, then renamed in."""

    def __init__(self, root, rng, max_mib):
        self.root, self.rng = root, rng
        os.makedirs(root, exist_ok=True)
        self.pool = np.random.default_rng(rng.getrandbits(64)).standard_normal(
            max_mib * 256 * 1024 + 4096, dtype=np.float32)

    def make(self, name, mib):
        n = mib * 256 * 1024
        start = self.rng.randrange(4096)
        cut = self.rng.randrange(n // 4, 3 * n // 4)
        path = os.path.join(self.root, name)
        with open(path, "wb") as f:
            np.savez(f, **{"layer1/w": self.pool[start:start + cut],
                           "layer2/w": self.pool[start + cut:start + n],
                           "step": np.array([self.rng.getrandbits(31)], np.int32)})
        return path, DU.sha256_file(path)


class CurrentSampler:
    """Reads prefix/m/current over and over in a thread: it must never move back."""

    def __init__(self, prefix):
        self.prefix, self.samples, self.errors = prefix, [], []
        self.stop_flag = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop_flag:
            try:
                c = pointer_versions(self.prefix)["current"]
                if c is not None:
                    self.samples.append(c)
            except (OSError, AssertionError, ValueError) as e:
                self.errors.append(str(e))
            time.sleep(0.02)

    def stop(self):
        self.stop_flag = True
        self.thread.join(5)

    def check(self):
        back = [(a, b) for a, b in zip(self.samples, self.samples[1:]) if b < a]
        assert not back, f"current moved backwards {back[:5]} in {len(self.samples)} samples"
        assert not self.errors, f"reading the pointers failed: {self.errors[:3]}"


PUBLISHED = re.compile(r"\] published (\S+) version (\d+) from (\S+) \(")


# --- 2. kill -9 of a daemon publishing to S3 ----------------------------------------------

@check("2 kill -9 of a daemon publishing to s3:// in a loop: every bundle once, in order, "
       "nothing incomplete or stranded")
def daemon_kill_loop():
    rng = random.Random(ARGS.seed)
    prefix = "kill"
    t0 = time.monotonic()
    env, w = s3_daemon_env("kill", prefix, keep_versions=1000, shard_size="1MiB",
                           settle="100ms", rescan="1s")
    with env:
        env.top["shutdown_timeout"] = "1500ms"
        env.write_config()
        maker = BundleMaker(env.path("outside"), rng, 40)
        dropped = []  # (seq, name, digest) in drop order
        stats = {"kills": 0, "processing": 0, "incomplete": 0, "down_drops": 0}
        sampler = CurrentSampler(prefix)

        def drop():
            seq = len(dropped) + 1
            name = f"{seq:03d}-bundle.npz"
            path, digest = maker.make(name, rng.randint(20, 40))
            if dropped:
                time.sleep(0.03)  # distinct arrival times
            os.rename(path, os.path.join(w.drop, name))
            dropped.append((seq, name, digest))

        for i in range(ARGS.kills):
            if rng.random() < 0.25:
                drop()
                stats["down_drops"] += 1
            d = env.start(write=False, ready=False)
            d.wait_ready(timeout=30)
            for _ in range(rng.randint(1, 3)):
                drop()
            # Most kills land while a bundle is claimed and uploading (a 20-40
            # MiB publish takes about a second); some a little later.
            d.wait(lambda: w.processing(), 10, "a claim")
            time.sleep(rng.uniform(0, 1.0))
            d.check(not d.exited(), f"round {i + 1}: the daemon exited by itself ({d.rc})")
            busy = bool(w.processing())
            d.kill9()
            d.check(d.rc == -signal.SIGKILL, f"round {i + 1}: exit {d.rc} after kill -9")
            d.check_sanitizers()
            d.cleanup()
            stats["kills"] += 1
            stats["processing"] += busy
            left = [v for v, n in model_versions(prefix).items() if "publish.json" not in n]
            stats["incomplete"] += bool(left)
            log(f"round {i + 1}: kill -9 after {time.time() - d.started_at:.2f}s, "
                f"processing {w.processing()}, incomplete versions {left}")
        t_loop = time.monotonic() - t0

        # A last daemon does what is left, then stops cleanly.
        d = env.start(write=False)
        names = [n for _, n, _ in dropped]
        d.wait(lambda: sorted(w.done()) == names and not w.processing(), 240,
               f"all {len(names)} bundles in done/ (done {len(w.done())}, processing "
               f"{w.processing()}, failed {w.failed()})", interval=0.2)
        d.stop(timeout=30)
        sampler.stop()
        t_drain = time.monotonic() - t0 - t_loop

        d.check(w.failed() == [], f"failed/ holds {w.failed()}")
        d.check(w.processing() == [], f"processing/ holds {w.processing()}")
        d.check([n for n in os.listdir(w.drop) if n != ".weightdrop"] == [],
                f"left in the drop folder: {os.listdir(w.drop)}")
        for seq, name, digest in dropped:
            d.check(DU.sha256_file(w.sub("done", name)) == digest,
                    f"done/{name} differs from what was dropped")
        check_clean(prefix)
        complete = complete_versions(prefix)
        src = sources(prefix, complete)
        by_digest = {digest: (seq, name) for seq, name, digest in dropped}
        strange = {v: s for v, s in src.items() if s not in by_digest}
        d.check(not strange, f"versions from bundles never dropped: {strange}")
        twice = {}
        for v, s in src.items():
            twice.setdefault(by_digest[s][1], []).append(v)
        twice = {n: vs for n, vs in twice.items() if len(vs) > 1}
        logs = "\n".join(x.log() for x in env.daemons)
        d.check(not twice, f"published more than once (versions per bundle): {twice}")
        lost = [n for _, n, digest in dropped if digest not in set(src.values())]
        d.check(not lost, f"bundles in done/ but in no version: {lost}")
        order = [by_digest[src[v]][0] for v in complete]
        d.check(order == sorted(order), f"versions not in arrival order: version -> drop "
                f"number {list(zip(complete, order))}")
        check_pointers(prefix, complete[-1], model_json=False)
        d.check(pointer_versions(prefix)["current"] == max(complete), "current is not the newest")
        sampler.check()
        for v in complete:
            verify_ok(prefix, version=v)
        verify_ok(prefix)
        # The logs too: no bundle logged as published twice.
        per_bundle = {}
        for m in PUBLISHED.finditer(logs):
            per_bundle.setdefault(os.path.basename(m.group(3)), set()).add(int(m.group(2)))
        again = {n: sorted(vs) for n, vs in per_bundle.items() if len(vs) > 1}
        d.check(not again, f"the logs show bundles published twice: {again}")
        made_current = logs.count("made it current")
        unchanged = len(re.findall(r" unchanged: ", logs))
        note(f"2: seed {ARGS.seed}: {stats['kills']} kill -9, {stats['processing']} with a "
             f"bundle in processing/, {stats['incomplete']} leaving an incomplete version in "
             f"the bucket; {len(dropped)} bundles ({stats['down_drops']} dropped while down), "
             f"versions {complete[0]}..{complete[-1]} ({len(complete)} complete); logs: "
             f"{made_current} complete-not-current made current, {unchanged} unchanged; "
             f"{len(sampler.samples)} samples of current, never backwards")
        note(f"2: time {t_loop:.1f}s of kills, {t_drain:.1f}s to drain")



# --- 3. two writers, one killed --------------------------------------------------------------

def wait_for(pred, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


@check("3 two writers: a daemon killed -9 mid-upload while a CLI publishes to the same model")
def two_writers():
    prefix = "two"
    rng = random.Random(ARGS.seed + 3)
    env, w = s3_daemon_env("two", prefix, keep_versions=100, shard_size="20MiB",
                           settle="100ms", rescan="1s")
    with env:
        env.write_config()
        maker = BundleMaker(env.path("outside"), rng, 120)
        base, base_digest = maker.make("base.npz", 1)
        r = wd("publish", base, "--to", target(prefix), "--model", "m")
        assert r.rc == 0, f"the first version:\n      {r}"
        v0 = published_version(r, prefix)
        # A's bundle: six 20 MiB shards, each a multipart upload.
        xa, xa_digest = maker.make("a.npz", 120)
        yc, yc_digest = maker.make("cli.npz", 80)
        sampler = CurrentSampler(prefix)
        d = env.start()
        os.rename(xa, os.path.join(w.drop, "a.npz"))
        # A has claimed its version and is uploading shards.
        va = wait_for(lambda: next((v for v, n in model_versions(prefix).items()
                                    if v > v0 and ".claim" in n), None), 30, "A's claim")
        wait_for(lambda: S3.multipart_uploads(f"{prefix}/m/{va}/"), 30,
                 f"A's multipart uploads under version {va}")
        cli = subprocess.Popen([BINARY, "publish", yc, "--to", target(prefix), "--model", "m",
                                "--shard-size", "4MiB"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=cli_env())
        t_cli = time.monotonic()
        # The CLI has claimed the next number: both uploading now.
        wait_for(lambda: cli.poll() is not None or any(
            v > va and ".claim" in n for v, n in model_versions(prefix).items()), 30,
            "the CLI's claim")
        a_names = model_versions(prefix).get(va, set())
        a_uploads = S3.multipart_uploads(f"{prefix}/m/{va}/")
        d.check("publish.json" not in a_names, f"A finished version {va} before the kill: "
                f"make its bundle bigger ({sorted(a_names)})")
        d.check(cli.poll() is None, "the CLI publish ended before A was killed: make its "
                "bundle bigger")
        d.kill9()
        d.cleanup()
        t_kill = time.monotonic() - t_cli
        out, err = cli.communicate(timeout=120)
        r = Run(cli.args, cli.returncode, out.decode(), err.decode(), time.monotonic() - t_cli)
        assert r.rc == 0, f"the CLI publish beside the killed daemon failed:\n      {r}"
        vc = published_version(r, prefix)
        assert vc > va, f"the CLI got version {vc}, A had claimed {va}"
        complete = complete_versions(prefix)
        assert complete == [v0, vc], f"complete versions {complete}, expected [{v0}, {vc}]"
        check_pointers(prefix, vc, model_json=False)  # the highest complete version
        verify_ok(prefix)
        left = model_versions(prefix).get(va, set())
        # A's claim names a pid that was alive when the CLI listed: the CLI
        # must not have removed it (it was a live writer then).
        assert left and "publish.json" not in left, \
            f"A's incomplete version {va} after the CLI publish: {sorted(left)}"
        a_open = S3.multipart_uploads(f"{prefix}/m/{va}/")

        # A's restart removes its leftover (its claim's pid is gone on this
        # host) and publishes a.npz again, as a new version: the newest.
        d2 = env.start()
        d2.wait(lambda: w.done() == ["a.npz"] and not w.processing(), 120, "a.npz in done/")
        d2.stop()
        sampler.stop()
        assert va not in model_versions(prefix), \
            f"A's incomplete version {va} is still there after A's restart: " \
            f"{sorted(model_versions(prefix)[va])}"
        check_clean(prefix)
        complete = complete_versions(prefix)
        src = sources(prefix, complete)
        assert len(complete) == 3 and complete[:2] == [v0, vc] and complete[2] > vc, \
            f"complete versions {src}: expected {v0} (base), {vc} (CLI), then A's anew"
        assert [src[v] for v in complete] == [base_digest, yc_digest, xa_digest], \
            f"sources of {complete}: {src}"
        check_pointers(prefix, complete[-1], model_json=False)
        for v in complete:
            verify_ok(prefix, version=v)
        verify_ok(prefix)
        sampler.check()
        note(f"3: A claimed {va} (killed {t_kill:.2f}s after the CLI started, "
             f"{sum(1 for n in a_names if n.endswith('.bin'))} shards done, "
             f"{len(a_uploads)} multipart uploads open); the CLI published {vc} in "
             f"{r.seconds:.1f}s and left {va} ({len(left)} objects, {len(a_open)} uploads) "
             f"alone; A's restart removed it and published {complete[-1]}; "
             f"{len(sampler.samples)} samples of current, never backwards")


# --- runner ----------------------------------------------------------------------------

def main():
    global ARGS, BINARY, RGW, S3, TMP
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    ap.add_argument("--kills", type=int, default=KILLS, help=f"kill -9 rounds (default {KILLS})")
    ap.add_argument("--jobs", type=int, default=8, help="sweep points run at once (default 8)")
    ap.add_argument("--filter", default="", help="run only checks whose name contains this")
    ap.add_argument("--sample", type=int, default=1,
                    help="run every K-th sweep point only (the sanitizer build: K=3)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folders")
    ap.add_argument("--points", type=lambda t: {int(x) for x in t.split(",")}, default=None,
                    help="sweep only these request indices (N,N,...), to reproduce one")
    ap.add_argument("--strict-verify", action="store_true",
                    help="require `verify M` ok after a failed publish even when it left "
                         "the pointers split (formats.md allows the split)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ARGS = ap.parse_args()
    BINARY = os.path.abspath(ARGS.binary)
    skip = s3_util.skip_reason(BINARY, "s3_fault_test")
    if skip:
        print(skip[1], file=sys.stderr if skip[0] == 2 else sys.stdout)
        return skip[0]
    DU.BINARY = BINARY
    DU.KEEP = ARGS.keep
    print(f"seed {ARGS.seed}, {ARGS.kills} kills", flush=True)
    TMP = tempfile.mkdtemp(prefix="wd_s3f_")
    t0 = time.monotonic()

    def started(rgw):
        global RGW, S3
        RGW, S3 = rgw, rgw.client()
    passed, failed = s3_util.run_with_rgw(ARGS.filter, ARGS.keep, started,
                                          lambda: [TMP, DU.BASE])
    return checks.finish(t0, passed, failed)


if __name__ == "__main__":
    sys.exit(main())
