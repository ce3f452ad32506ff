#!/usr/bin/python3
"""Integration test: the shipped docs/nginx.conf, in Debian's real nginx,
serving what the real daemon publishes, to plain HTTP and to tfjs.

Usage: /usr/bin/python3 tests/integration/nginx_test.py --binary build/weightdrop
           [--filter SUBSTR] [--keep]

`weightdrop run` publishes a folder bundle with a model.json (model `mlp`)
into a serve folder; scripts/nginx.sh starts /usr/sbin/nginx on 127.0.0.1
with docs/nginx.conf (only `root` and `listen` changed) on that folder. Then:
every header rule of the conf is checked with real requests (urllib):
caching of version files and pointers, CORS with a preflight, MIME types,
gzip, no dotfiles, no `current`, no listings. The file, installed as
docs/operations.md says into a copy of Debian's /etc/nginx, must pass
`nginx -T` without a warning. Then two tfjs-core 4.22 clients
(tests/tfjs/http_load.mjs: tf.io.loadWeights on the pointer manifest,
tf.io.http on model.json) load the model back to back through nginx while
the daemon publishes five more versions of it: every load must succeed,
and each load's values must all be those of one version.

Exit 77 (ctest SKIP) when nginx is not installed (`scripts/nginx.sh
available`). Otherwise the last line is "N passed, M failed"; exit 1 when
M > 0. nginx, the daemon and the node clients are stopped by pid at the
end, whatever happened.
"""

import argparse
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402
from checks import Skip, check, note  # noqa: E402
import daemon_util as U  # noqa: E402
from tfjs_test import REPO, TFJS_DIR, ensure_node_modules  # noqa: E402

NGINX_SH = os.path.join(REPO, "scripts", "nginx.sh")
HTTP_LOAD = os.path.join(TFJS_DIR, "http_load.mjs")
MODEL = "mlp"
VERSIONS = 6            # published in all: 1 before the checks, 5 while tfjs loads
SHARD_SIZE = "64KiB"    # 9 shards per version: a load is many requests
PAUSE_MS = 100          # each client waits this long between pointer and shards
LOADS_PER_VERSION = 3   # by each client, before the next version is dropped
TIMEOUT = 180           # s for anything to happen on a loaded 2-core machine
IMMUTABLE = "public, max-age=31536000, immutable"
STATE = {}              # the run's fixture: env, watch, daemon, url, versions


# --- the bundles ------------------------------------------------------------------

def bundle_arrays(seed):
    """Weights whose every value depends on the seed: one version's values
    never equal another's, so a load that mixes versions is seen."""
    rng = np.random.default_rng(seed)
    return {
        "dense/kernel": rng.standard_normal((256, 256)).astype(np.float32),
        "dense/bias": rng.standard_normal(256).astype(np.float32),
        "embedding/table": rng.standard_normal((600, 128)).astype(np.float32),
        "step": np.array(seed, np.int32),
    }


def model_json():
    """A graph-model model.json over 1 KiB (so nginx gzips it)."""
    nodes = [{"name": f"n{i}", "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}}}
             for i in range(48)]
    return json.dumps({"format": "graph-model", "generatedBy": "nginx_test.py",
                       "modelTopology": {"node": nodes}})


def write_bundle(folder, seed):
    """A folder bundle: one .npy per weight, model.json, then .ready."""
    arrays = bundle_arrays(seed)
    for name, arr in arrays.items():
        path = os.path.join(folder, *name.split("/")) + ".npy"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        np.save(path, arr)
    U.write_file(os.path.join(folder, "model.json"), model_json())
    U.write_file(os.path.join(folder, ".ready"), b"")
    return arrays


def digests(arrays):
    """What tfjs decodes for each weight, as sha256 of its little-endian bytes."""
    le = {np.dtype(np.float32): "<f4", np.dtype(np.int32): "<i4"}
    return {name: hashlib.sha256(np.ascontiguousarray(a, le[a.dtype]).tobytes()).hexdigest()
            for name, a in arrays.items()}


def publish(seed):
    """Renames a new bundle into the drop folder and waits until the daemon
    made it current; returns its version number."""
    env, w, d = STATE["env"], STATE["watch"], STATE["daemon"]
    version = len(STATE["versions"]) + 1
    src = env.path("outside", str(seed), MODEL)
    arrays = write_bundle(src, seed)
    digest = U.folder_digest(src)
    dst = os.path.join(w.drop, MODEL)
    d.wait(lambda: not os.path.lexists(dst), TIMEOUT, f"{dst} to be taken")
    os.rename(src, dst)

    def published():
        if w.failed():
            d.fail(f"the bundle of seed {seed} went to failed/: {w.failed()}")
        return w.current(MODEL) == str(version)
    d.wait(published, TIMEOUT, f"{MODEL}/current -> {version}")
    source = w.publish_json(MODEL, version)["source"]["sha256"]
    d.check(source == digest, f"{MODEL}/{version} comes from {source}, not the bundle "
                              f"of seed {seed} ({digest})")
    STATE["versions"][str(version)] = digests(arrays)
    return version


# --- HTTP -------------------------------------------------------------------------

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None  # a 3xx is an answer to check, not to follow


OPENER = urllib.request.build_opener(NoRedirect)


class Response:
    def __init__(self, method, path, status, headers, body):
        self.method, self.path, self.status, self.headers, self.body = (
            method, path, status, headers, body)

    def get(self, name):
        return self.headers.get(name)

    def __str__(self):
        lines = [f"{k}: {v}" for k, v in self.headers.items()]
        return (f"{self.method} {self.path} -> {self.status}\n        " +
                "\n        ".join(lines))


def http(path, method="GET", headers=None):
    """One request to nginx; any status is returned, none raised."""
    req = urllib.request.Request(STATE["url"] + path, method=method, headers=headers or {})
    try:
        with OPENER.open(req, timeout=60) as r:
            return Response(method, path, r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(method, path, e.code, e.headers, e.read())


def expect(cond, msg, response):
    if not cond:
        raise AssertionError(f"{msg}\n      {response}")


def serve_path(*parts):
    return os.path.join(STATE["watch"].serve, *parts)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def shards(version=1):
    """The shard names of a version, from its manifest."""
    manifest = U.load_json(serve_path(MODEL, str(version), "weights_manifest.json"))
    return [p for group in manifest for p in group["paths"]]


def expect_file(path, response, mime, cache):
    """200 with the file's bytes, its MIME type, its Cache-Control, and the
    CORS headers."""
    expect(response.status == 200, f"{response.path}: status {response.status}, expected 200",
           response)
    expect(response.body == read(path), f"{response.path}: body is not {path}", response)
    expect(response.get("Content-Type") == mime,
           f"{response.path}: Content-Type {response.get('Content-Type')!r}, expected {mime!r}",
           response)
    expect(response.get("Cache-Control") == cache,
           f"{response.path}: Cache-Control {response.get('Cache-Control')!r}, expected {cache!r}",
           response)
    expect_cors(response)


def expect_cors(response):
    expect(response.get("Access-Control-Allow-Origin") == "*",
           f"{response.path}: Access-Control-Allow-Origin is not '*'", response)
    exposed = [h.strip().lower() for h in
               (response.get("Access-Control-Expose-Headers") or "").split(",")]
    for h in ("etag", "content-length"):
        expect(h in exposed, f"{response.path}: {h} not in Access-Control-Expose-Headers",
               response)
    expect(response.get("Access-Control-Allow-Credentials") is None,
           f"{response.path}: credentials allowed with origin '*'", response)


def expect_404(path, exists=None):
    """404, no-cache, CORS, and none of the file's bytes."""
    r = http(path)
    expect(r.status == 404, f"{path}: status {r.status}, expected 404", r)
    expect(r.get("Cache-Control") == "no-cache",
           f"{path}: a 404 must not be cached (Cache-Control {r.get('Cache-Control')!r})", r)
    expect_cors(r)
    expect(b"Index of" not in r.body and b"group1-shard" not in r.body,
           f"{path}: the 404 page lists a folder", r)
    if exists:
        expect(os.path.lexists(exists), f"{exists} should exist for this check", r)
        data = read(exists) if os.path.isfile(exists) else b""
        expect(not data or data not in r.body, f"{path}: the 404 page holds {exists}", r)
    return r


# --- checks: headers -----------------------------------------------------------------

@check("01 pointers: application/json, Cache-Control no-cache, revalidate to 304")
def pointers():
    for name in ("weights_manifest.json", "model.json"):
        path = f"/{MODEL}/{name}"
        r = http(path)
        expect_file(serve_path(MODEL, name), r, "application/json", "no-cache")
        etag, modified = r.get("ETag"), r.get("Last-Modified")
        expect(etag and modified, f"{path}: no ETag or Last-Modified to revalidate with", r)
        for cond in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
            r304 = http(path, headers=cond)
            expect(r304.status == 304, f"{path} with {cond}: status {r304.status}, expected 304",
                   r304)
            expect(r304.get("Cache-Control") == "no-cache",
                   f"{path}: a 304 must keep Cache-Control no-cache", r304)
            expect_cors(r304)
    paths = [p for g in U.load_json(serve_path(MODEL, "weights_manifest.json")) for p in g["paths"]]
    assert paths and all(p.startswith("1/") for p in paths), \
        f"the pointer manifest's paths do not name version 1: {paths}"


@check("02 version files: immutable for a year, octet-stream shards, JSON, 304, ranges, HEAD")
def version_files():
    folder = serve_path(MODEL, "1")
    names = sorted(os.listdir(folder))
    bins = shards()
    assert len(bins) >= 5 and sorted(bins) == [n for n in names if n.endswith(".bin")] and \
        "publish.json" in names and "model.json" in names, \
        f"unexpected version folder {folder}: {names}"
    for name in names:
        mime = "application/octet-stream" if name.endswith(".bin") else "application/json"
        r = http(f"/{MODEL}/1/{name}")
        expect_file(os.path.join(folder, name), r, mime, IMMUTABLE)
        if name.endswith(".bin"):
            size = os.path.getsize(os.path.join(folder, name))
            expect(r.get("Content-Length") == str(size),
                   f"{r.path}: Content-Length {r.get('Content-Length')}, file has {size}", r)
    path = f"/{MODEL}/1/{bins[0]}"
    r = http(path, headers={"If-None-Match": http(path).get("ETag")})
    expect(r.status == 304 and r.get("Cache-Control") == IMMUTABLE,
           f"{path}: revalidation must answer 304 with Cache-Control {IMMUTABLE!r}", r)
    r = http(path, headers={"Range": "bytes=4-11"})
    expect(r.status == 206 and r.body == read(os.path.join(folder, bins[0]))[4:12],
           f"{path}: bytes 4-11 not served as 206 with those bytes", r)
    expect(r.get("Cache-Control") == IMMUTABLE and r.get("Content-Range"),
           f"{path}: a 206 must carry Content-Range and Cache-Control {IMMUTABLE!r}", r)
    r = http(path, method="HEAD")
    expect(r.status == 200 and r.body == b"" and r.get("Cache-Control") == IMMUTABLE,
           f"HEAD {path}: expected 200, no body, Cache-Control {IMMUTABLE!r}", r)


@check("03 CORS: '*' on every answer, preflight OPTIONS answered 204 with methods and headers")
def cors():
    origin = {"Origin": "https://app.example.com"}
    first, last = shards()[0], shards()[-1]
    for path in (f"/{MODEL}/weights_manifest.json", f"/{MODEL}/1/{first}",
                 f"/{MODEL}/99/{first}"):
        r = http(path, headers=origin)
        expect_cors(r)
    asked = "range, if-none-match, x-client"
    for path in (f"/{MODEL}/weights_manifest.json", f"/{MODEL}/model.json",
                 f"/{MODEL}/1/weights_manifest.json", f"/{MODEL}/1/{last}"):
        r = http(path, method="OPTIONS", headers=dict(origin, **{
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": asked}))
        expect(r.status == 204 and r.body == b"",
               f"preflight {path}: status {r.status}, expected 204 without a body", r)
        expect_cors(r)
        methods = {m.strip() for m in (r.get("Access-Control-Allow-Methods") or "").split(",")}
        expect({"GET", "HEAD"} <= methods,
               f"preflight {path}: Access-Control-Allow-Methods lacks GET or HEAD", r)
        allowed = {h.strip().lower() for h in
                   (r.get("Access-Control-Allow-Headers") or "").split(",")}
        expect({"range", "if-none-match", "x-client"} <= allowed,
               f"preflight {path}: Access-Control-Allow-Headers does not allow {asked!r}", r)
        expect((r.get("Access-Control-Max-Age") or "0").isdigit() and
               int(r.get("Access-Control-Max-Age") or 0) > 0,
               f"preflight {path}: no Access-Control-Max-Age", r)
    r = http(f"/{MODEL}/weights_manifest.json", headers=origin)
    expect(r.get("Access-Control-Allow-Methods") is None and
           r.get("Access-Control-Max-Age") is None,
           "a GET carries the preflight-only headers", r)


@check("04 dotfiles: .staging, .lock and every /. path are 404, even when they exist")
def dotfiles():
    probe = U.write_file(serve_path(".probe", "weights_manifest.json"), b"[\"probe secret\"]")
    hidden = U.write_file(serve_path(MODEL, ".probe.json"), b"{\"probe\": \"secret\"}")
    os.makedirs(serve_path(".staging"), exist_ok=True)
    lock = serve_path(MODEL, ".lock")
    for path, on_disk in ((f"/{MODEL}/.lock", lock), ("/.staging/", serve_path(".staging")),
                          ("/.staging", serve_path(".staging")),
                          ("/.probe/weights_manifest.json", probe),
                          ("/%2Eprobe/weights_manifest.json", probe),
                          ("/%2eprobe/weights_manifest.json", probe),
                          (f"/{MODEL}/.probe.json", hidden),
                          (f"/{MODEL}/1/../.probe.json", hidden),
                          (f"/{MODEL}/%2Eprobe.json", hidden)):
        expect_404(path, on_disk)
    r = http(f"/{MODEL}/.lock", method="OPTIONS",
             headers={"Origin": "https://a.example", "Access-Control-Request-Method": "GET"})
    expect(r.status == 404, "a preflight of a dotfile is answered as if it were there", r)


@check("05 current and folders: 404, never a listing")
def current_and_folders():
    current = serve_path(MODEL, "current")
    assert os.path.islink(current), f"{current} is not the symlink the daemon writes"
    for path, on_disk in ((f"/{MODEL}/current", current), (f"/{MODEL}/current/", current),
                          (f"/{MODEL}/current/weights_manifest.json",
                           os.path.join(current, "weights_manifest.json")),
                          (f"/{MODEL}/current/model.json", os.path.join(current, "model.json")),
                          (f"/{MODEL}/current/{shards()[0]}",
                           os.path.join(current, shards()[0])),
                          ("/", None), (f"/{MODEL}/", None), (f"/{MODEL}", None),
                          (f"/{MODEL}/1/", None), (f"/{MODEL}/1", None)):
        expect_404(path, on_disk)


@check("06 errors: a version not yet published is 404 with no-cache; writes are refused")
def errors():
    expect_404(f"/{MODEL}/{VERSIONS + 90}/{shards()[0]}")
    expect_404(f"/{MODEL}/1/group1-shard99of99.bin")
    target = serve_path(MODEL, "weights_manifest.json")
    before = read(target)
    for method in ("PUT", "DELETE", "POST"):
        r = http(f"/{MODEL}/weights_manifest.json", method=method)
        expect(r.status in (403, 405), f"{method}: status {r.status}, expected 405", r)
    assert read(target) == before, f"{target} changed after PUT/DELETE/POST"


@check("07 gzip: model.json compressed for clients that ask (ETag still revalidates), shards never")
def gzipped():
    path = f"/{MODEL}/model.json"
    r = http(path, headers={"Accept-Encoding": "gzip"})
    expect(r.status == 200 and r.get("Content-Encoding") == "gzip",
           f"{path}: not gzipped for Accept-Encoding: gzip", r)
    expect(gzip.decompress(r.body) == read(serve_path(MODEL, "model.json")),
           f"{path}: gunzipped body is not the file", r)
    expect("accept-encoding" in (r.get("Vary") or "").lower(),
           f"{path}: no Vary: Accept-Encoding on a gzipped answer", r)
    expect(r.get("Cache-Control") == "no-cache", f"{path}: gzipped pointer lost no-cache", r)
    r304 = http(path, headers={"Accept-Encoding": "gzip", "If-None-Match": r.get("ETag")})
    expect(r304.status == 304, f"{path}: If-None-Match {r.get('ETag')} did not give 304", r304)
    shard = f"/{MODEL}/1/{shards()[0]}"
    r = http(shard, headers={"Accept-Encoding": "gzip"})
    expect(r.status == 200 and r.get("Content-Encoding") is None and
           r.body == read(serve_path(MODEL, "1", shards()[0])),
           f"{shard}: a shard must be sent as is", r)


@check("08 installed as documented into a copy of Debian's /etc/nginx: nginx -t accepts it, "
       "without a warning")
def debian_layout():
    etc = "/etc/nginx"
    if not os.path.isfile(os.path.join(etc, "nginx.conf")):
        raise Skip(f"no {etc}/nginx.conf")
    root = STATE["env"].path("etc-nginx")
    shutil.copytree(etc, root, symlinks=True)
    # docs/operations.md, "Serving with nginx": copy, set root, link, drop
    # the default site.
    site = os.path.join(root, "sites-available", "weightdrop")
    with open(os.path.join(REPO, "docs", "nginx.conf")) as f:
        text = f.read()
    assert text.count("    root /srv/weightdrop/serve;\n") == 1, "no `root` line to set"
    U.write_file(site, text.replace("    root /srv/weightdrop/serve;\n",
                                    f"    root {STATE['watch'].serve};\n"))
    os.symlink("../sites-available/weightdrop", os.path.join(root, "sites-enabled", "weightdrop"))
    if os.path.lexists(os.path.join(root, "sites-enabled", "default")):
        os.remove(os.path.join(root, "sites-enabled", "default"))
    # The copy in place of /etc/nginx, its logs and pid file beside it.
    for dirpath, _, names in os.walk(root):
        for path in (os.path.join(dirpath, n) for n in names):
            if os.path.islink(path):
                continue
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                conf = f.read()
            moved = (conf.replace("/etc/nginx/", root + "/")
                     .replace("/var/log/nginx/", root + "/log-")
                     .replace("/run/nginx.pid", root + "/nginx.pid"))
            if moved != conf:
                with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
                    f.write(moved)
    # -T: test, then print every file read, so we see that ours was.
    p = subprocess.run(["/usr/sbin/nginx", "-T", "-p", root, "-c", os.path.join(root, "nginx.conf"),
                        "-e", os.path.join(root, "log-error.log")],
                       capture_output=True, text=True, timeout=TIMEOUT)
    out = (p.stdout + p.stderr).strip()
    assert p.returncode == 0, f"nginx -t rejects the installed conf:\n      {out}"
    warnings = [ln for ln in p.stderr.splitlines() if "[warn]" in ln or "[emerg]" in ln]
    assert not warnings, "nginx -t warns:\n      " + "\n      ".join(warnings)
    assert f"# configuration file {root}/sites-enabled/weightdrop:" in p.stdout, \
        f"nginx did not read sites-enabled/weightdrop:\n      {p.stderr}"


# --- checks: tfjs while the daemon publishes ------------------------------------------

class Loader:
    """One `node http_load.mjs MODE` process; its JSON lines, as they come."""

    def __init__(self, mode, stop_file):
        self.mode = mode
        self.err_path = STATE["env"].path(f"http_load-{mode}.err")
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(
            ["node", HTTP_LOAD, mode, f"{STATE['url']}/{MODEL}/", stop_file, str(PAUSE_MS)],
            cwd=TFJS_DIR, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.err)
        self.loads = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # tfjs's own banner, say
            with self.lock:
                self.loads.append(line)

    def snapshot(self):
        with self.lock:
            return list(self.loads)

    def seen(self, version):
        """How many loads of `version` succeeded."""
        return sum(1 for x in self.snapshot() if x.get("ok") and x.get("versions") == [version])

    def first_failure(self):
        return next((x for x in self.snapshot() if not x.get("ok")), None)

    def stderr_tail(self):
        with open(self.err_path, "rb") as f:
            return f.read()[-1500:].decode("utf-8", "replace")

    def stop(self, timeout=TIMEOUT):
        """Waits for the process to exit (the stop file is set); kills it by
        pid after `timeout`."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(timeout=10)
        self.err.close()


def wait_loaders(loaders, version):
    """Until every loader finished LOADS_PER_VERSION loads of `version`;
    fails at the first failed load or exited loader."""
    deadline = time.monotonic() + TIMEOUT
    while not all(ld.seen(version) >= LOADS_PER_VERSION for ld in loaders):
        for ld in loaders:
            bad = ld.first_failure()
            assert bad is None, f"{ld.mode} load #{bad['n']} failed: {describe_load(bad)}"
            assert ld.proc.poll() is None, (f"node http_load.mjs {ld.mode} exited "
                                            f"({ld.proc.returncode}):\n{ld.stderr_tail()}")
        assert time.monotonic() < deadline, (
            f"no {' / '.join(ld.mode for ld in loaders)} load of version {version} "
            f"within {TIMEOUT}s")
        time.sleep(0.05)


def describe_load(load):
    text = json.dumps({k: v for k, v in load.items() if k != "weights"})
    return text if len(text) < 2500 else text[:2500] + "..."


def judge(mode, load):
    """Why this load is wrong, or None: it failed, some weight's values are
    not those of the version the others come from, or it fetched from
    another version than its values are."""
    what = f"{mode} load #{load.get('n')}"
    if not load.get("ok"):
        return f"{what} failed: {describe_load(load)}"
    got = load.get("weights") or {}
    if sorted(got) != sorted(STATE["versions"]["1"]):
        return f"{what}: weights {sorted(got)}, expected {sorted(STATE['versions']['1'])}"
    owners = {name: [v for v, ds in STATE["versions"].items() if ds[name] == digest]
              for name, digest in got.items()}
    strangers = sorted(n for n, vs in owners.items() if not vs)
    if strangers:
        return f"{what}: values of no published version: {strangers}"
    common = set.intersection(*(set(vs) for vs in owners.values()))
    if not common:
        return f"{what} mixes versions: " + ", ".join(
            f"{n} from {'/'.join(vs)}" for n, vs in sorted(owners.items()))
    if load.get("versions") != sorted(common):
        return (f"{what} has the values of version {sorted(common)} but fetched from "
                f"{load.get('versions')}")
    return None


@check(f"09 tfjs (loadWeights and tf.io.http) loads through nginx while the daemon publishes "
       f"{VERSIONS - 1} versions: all succeed, each on one version")
def loads_during_publishes():
    stop_file = STATE["env"].path("http_load.stop")
    loaders = []
    t0 = time.monotonic()
    try:
        loaders = [Loader("loadWeights", stop_file), Loader("http", stop_file)]
        STATE["loaders"] = loaders
        wait_loaders(loaders, "1")
        for seed in range(2, VERSIONS + 1):
            wait_loaders(loaders, str(publish(seed)))
    finally:
        U.write_file(stop_file, b"")
        for ld in loaders:
            ld.stop()
    took = time.monotonic() - t0
    problems, total, straddled, per_version, slowest = [], 0, 0, {}, 0
    for ld in loaders:
        for load in ld.snapshot():
            total += 1
            why = judge(ld.mode, load)
            if why:
                problems.append(why)
                continue
            v = load["versions"][0]
            per_version[v] = per_version.get(v, 0) + 1
            slowest = max(slowest, load.get("ms", 0))
            if int(load.get("pointerAfter") or 0) > int(v):
                straddled += 1
    assert not problems, (f"{len(problems)} of {total} loads wrong; the first ones:\n      " +
                          "\n      ".join(problems[:5]))
    # Different values in every version, or a mixed load would go unseen.
    for name in STATE["versions"]["1"]:
        values = {ds[name] for ds in STATE["versions"].values()}
        assert len(values) == VERSIONS, f"weight {name}: versions share values"
    assert sorted(per_version, key=int) == [str(v) for v in range(1, VERSIONS + 1)], \
        f"loads saw versions {sorted(per_version)}, expected 1..{VERSIONS}"
    # A publish landing between a load's pointer and its shards is what the
    # version-qualified paths are for; the clients' pause makes it likely
    # for each of the 2 x 5 publishes, so none at all means no real test.
    assert straddled > 0, (f"no load had a new version published while it ran ({total} "
                           "loads); the check did not exercise the swap")
    counts = ", ".join(f"{ld.mode} {len(ld.snapshot())}" for ld in loaders)
    note(f"tfjs: {total} loads in {took:.0f}s through nginx ({counts}), "
         f"{straddled} with a publish landing mid-load, loads per version "
         f"{dict(sorted(per_version.items(), key=lambda kv: int(kv[0])))}, slowest {slowest} ms")


# --- runner ----------------------------------------------------------------------------

def nginx_sh(*args):
    return subprocess.run(["bash", NGINX_SH, *args], capture_output=True, text=True,
                          timeout=TIMEOUT)


def env_file(path):
    with open(path) as f:
        return dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)


def run_checks(env, name_filter):
    """Publishes version 1, starts nginx on the serve folder, runs the
    checks; stops nginx and the daemon in any case. Returns (passed, failed)."""
    w = env.watch(name="models", serve="serve", shard_size=SHARD_SIZE)
    d = env.start()
    STATE.update(env=env, watch=w, daemon=d, versions={})
    nginx_dir = env.path("nginx")
    passed = failed = 0
    try:
        publish(1)
        t = time.monotonic()
        p = nginx_sh("start", nginx_dir, w.serve)
        assert p.returncode == 0, f"scripts/nginx.sh start failed ({p.returncode}):\n{p.stderr}"
        STATE["url"] = env_file(os.path.join(nginx_dir, "env"))["NGINX_URL"]
        note(f"nginx started in {time.monotonic() - t:.1f}s at {STATE['url']} ({nginx_dir})")
        passed, failed, _ = checks.run(name_filter)
    except AssertionError as e:
        print(f"FAIL setting up: {e}", flush=True)
        failed += 1
    finally:
        for ld in STATE.get("loaders", []):
            if ld.proc.poll() is None:
                ld.proc.kill()
                ld.proc.wait()
        p = nginx_sh("stop", nginx_dir)
        if p.returncode != 0:
            print(f"FAIL scripts/nginx.sh stop: {p.stderr}", flush=True)
            failed += 1
        try:
            d.stop(timeout=60)
        except AssertionError as e:
            print(f"FAIL stopping the daemon: {e}", flush=True)
            failed += 1
    return passed, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--filter", default="", help="run only checks whose name contains this")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()
    U.BINARY = os.path.abspath(args.binary)
    U.KEEP = args.keep
    if not os.access(U.BINARY, os.X_OK):
        print(f"nginx_test: {U.BINARY} is not an executable", file=sys.stderr)
        return 2
    p = nginx_sh("available")
    if p.returncode != 0:
        print(f"SKIP: no nginx here (scripts/nginx.sh available: {p.stderr.strip()})")
        return 77
    ensure_node_modules()
    t0 = time.monotonic()
    try:
        with U.Env("nginx") as env:
            passed, failed = run_checks(env, args.filter)
    finally:
        U.remove_base(args.keep)
    return checks.finish(t0, passed, failed)


if __name__ == "__main__":
    sys.exit(main())
