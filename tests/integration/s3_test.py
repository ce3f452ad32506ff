#!/usr/bin/python3
"""Integration tests: weightdrop's S3 publish target against a real Ceph RGW.

Usage: /usr/bin/python3 s3_test.py --binary PATH [--filter SUBSTR]

Starts its own RGW (scripts/rgw.sh start in a fresh /tmp/wds3XXXX) and
always stops it (scripts/rgw.sh stop) at the end. The CLI gets the endpoint
and keys as a user would: the AWS_* variables of the RGW's env file; the
daemon gets an `s3:` section with a credentials file. What weightdrop wrote
is inspected with the test's own SigV4 client (s3_util.py), and loaded by
the pinned tfjs-core (tests/tfjs/load.mjs) straight from the RGW's URLs.

Exit 77 (ctest SKIP) when `scripts/rgw.sh available` says the Ceph
binaries are missing. Otherwise the last line is "N passed, M failed" and
the exit status is 1 when M > 0 (the style of cli_test.py).
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

import numpy as np

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402
from checks import Skip, check, note  # noqa: E402
import daemon_util as DU  # noqa: E402
import s3_util  # noqa: E402
from s3_util import BUCKET  # noqa: E402

BINARY = None
RGW = None   # s3_util.Rgw
S3 = None    # s3_util.S3 signed with the RGW's keys
TMP = None   # scratch folder of this run
SANITIZER_WORDS = DU.SANITIZER_WORDS


# --- running the CLI --------------------------------------------------------------

class Run:
    def __init__(self, cmd, rc, out, err, seconds):
        self.cmd, self.rc, self.out, self.err, self.seconds = cmd, rc, out, err, seconds

    def __str__(self):
        return (f"$ {' '.join(self.cmd)}\n      exit {self.rc} ({self.seconds:.2f}s)\n"
                f"      stdout: {self.out[-1500:]!r}\n      stderr: {self.err[-1500:]!r}")


def cli_env(**over):
    """The environment a user has after `set -a; . DIR/env; set +a`, with
    overrides (None removes a variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(RGW.aws_env())
    for k, v in over.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def finish(cmd, p, out, err, t0):
    out = out.decode("utf-8", "replace")
    err = err.decode("utf-8", "replace")
    r = Run(cmd, p.returncode, out, err, time.monotonic() - t0)
    for bad in SANITIZER_WORDS:
        assert bad not in err, f"sanitizer/abort report in stderr:\n      {r}"
    assert r.rc >= 0, f"killed by signal {-r.rc}:\n      {r}"
    return r


def wd(*args, env=None, timeout=180):
    cmd = [BINARY] + [str(a) for a in args]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env or cli_env())
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError(f"timed out after {timeout}s: {' '.join(cmd)}")
    return finish(cmd, p, out, err, t0)


class Background:
    """A CLI command running while the test does something else."""

    def __init__(self, *args, env=None):
        self.cmd = [BINARY] + [str(a) for a in args]
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=env or cli_env())

    def done(self):
        return self.p.poll() is not None

    def wait(self, timeout=180):
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.communicate()
            raise AssertionError(f"timed out after {timeout}s: {' '.join(self.cmd)}")
        return finish(self.cmd, self.p, out, err, self.t0)


def expect_ok(r, what="command"):
    assert r.rc == 0, f"{what} should exit 0:\n      {r}"
    return r


def target(prefix):
    return f"s3://{BUCKET}/{prefix}"


def publish(bundle, prefix, *args, model="m", env=None):
    return wd("publish", bundle, "--to", target(prefix), "--model", model, *args, env=env)


def published_version(r, prefix, model="m"):
    """The version number the publish printed as s3://bucket/prefix/M/<v>."""
    lines = r.out.strip().splitlines()
    want = re.escape(f"{target(prefix)}/{model}/") + r"(\d+)"
    m = re.fullmatch(want, lines[-1]) if lines else None
    assert m, f"publish should print {target(prefix)}/{model}/<v>:\n      {r}"
    return int(m.group(1))


def publish_ok(bundle, prefix, *args, model="m", env=None):
    r = expect_ok(publish(bundle, prefix, *args, model=model, env=env), "publish")
    return published_version(r, prefix, model), r


# --- bundles -------------------------------------------------------------------------

def npz(name, seed, shapes=None, dtype=np.float32):
    """A .npz bundle in TMP with random weights; (path, {name: array})."""
    rng = np.random.default_rng(seed)
    shapes = shapes or {"dense/kernel": (16, 8), "dense/bias": (8,)}
    arrays = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    path = os.path.join(TMP, name)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path, arrays


MODEL_JSON = {"format": "graph-model", "generatedBy": "s3_test.py",
              "modelTopology": {"node": []}}


def folder_bundle(name, seed, n=300):
    """A folder bundle: two .npy files and a model.json topology."""
    folder = os.path.join(TMP, name)
    os.makedirs(folder)
    rng = np.random.default_rng(seed)
    arrays = {"w": rng.standard_normal((n, 4)).astype(np.float32),
              "b": rng.standard_normal(4).astype(np.float32)}
    for k, a in arrays.items():
        np.save(os.path.join(folder, k + ".npy"), a)
    with open(os.path.join(folder, "model.json"), "w") as f:
        json.dump(MODEL_JSON, f, indent=1)
    return folder, arrays


_big = {}


def big_npz(mib, seed):
    """A float32 .npz of about `mib` MiB (two weights), written once."""
    key = (mib, seed)
    if key not in _big:
        n = mib * 1024 * 1024 // 4 // 2
        path = os.path.join(TMP, f"big{mib}-{seed}.npz")
        rng = np.random.default_rng(seed)
        with open(path, "wb") as f:
            np.savez(f, **{"l1/w": rng.standard_normal(n, dtype=np.float32),
                           "l2/w": rng.standard_normal(n, dtype=np.float32)})
        _big[key] = path
    return _big[key]


# --- looking at the bucket ---------------------------------------------------------

def current(prefix, model="m"):
    r = S3.get(f"{prefix}/{model}/current")
    if r.status == 404:
        return None
    assert r.status == 200, f"GET {prefix}/{model}/current: {r}"
    text = r.body.decode()
    assert re.fullmatch(r"\d+\n", text), f"{prefix}/{model}/current holds {text!r}"
    return int(text)


def manifest_versions(manifest):
    return {p.split("/", 1)[0] for g in manifest for p in g["paths"]}


def check_pointers(prefix, v, model="m", has_model_json=None):
    """current, weights_manifest.json and (if present) model.json all name
    version v, and the pointer manifest is v's manifest with "<v>/" paths."""
    base = f"{prefix}/{model}"
    cur = current(prefix, model)
    assert cur == v, f"{base}/current = {cur}, expected {v}"
    ptr = json.loads(S3.body(f"{base}/weights_manifest.json"))
    ver = json.loads(S3.body(f"{base}/{v}/weights_manifest.json"))
    assert manifest_versions(ptr) == {str(v)}, \
        f"{base}/weights_manifest.json paths {[g['paths'] for g in ptr]}, expected {v}/..."
    qualified = [dict(g, paths=[f"{v}/{p}" for p in g["paths"]]) for g in ver]
    assert ptr == qualified, f"{base}/weights_manifest.json is not {v}'s with '{v}/' paths"
    mj = S3.get(f"{base}/model.json")
    if has_model_json is not None:
        assert (mj.status == 200) == has_model_json, f"{base}/model.json: {mj}"
    if mj.status == 200:
        doc = json.loads(mj.body)
        assert manifest_versions(doc["weightsManifest"]) == {str(v)}, \
            f"{base}/model.json names {manifest_versions(doc['weightsManifest'])}, expected {v}"
    return ptr


def complete_versions(prefix, model="m"):
    """Version numbers under prefix/M/ that hold publish.json."""
    return sorted(v for v, names in S3.versions(f"{prefix}/{model}/").items()
                  if "publish.json" in names)


def verify_ok(prefix, model="m", version=None):
    t = f"{target(prefix)}/{model}" + (f"/{version}" if version is not None else "")
    r = expect_ok(wd("verify", t), f"verify {t}")
    assert "ok" in r.out + r.err, f"verify printed no 'ok':\n      {r}"
    return r


def status_rows(prefix, *args):
    """{model: (current, versions)} from `weightdrop status --to`."""
    r = expect_ok(wd("status", "--to", target(prefix), *args), "status --to")
    rows = {}
    for line in r.out.splitlines()[1:]:
        parts = line.split(None, 2)
        if len(parts) == 3:
            rows[parts[0]] = (parts[1], parts[2].strip())
    return rows, r


def fetch_public(url, headers=None):
    """Unsigned GET: (status, headers, body)."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


IMMUTABLE = "public, max-age=31536000, immutable"
CORS_ORIGIN = "http://app.example"
_public = []


def ensure_public():
    """The bucket policy (public read) and a CORS rule, set once. main()
    sets them before any check: after a radosgw kill -9 + restart (check
    07) RGW takes ~27 s to answer the first bucket-metadata PUT (measured;
    object requests are not affected)."""
    if not _public:
        S3.make_public()
        S3.put_cors(CORS_ORIGIN)
        _public.append(True)


# --- 1. publish, verify, status, headers ------------------------------------------

@check("01 publish -> verify ok -> status; Cache-Control/Content-Type; pointer paths '<v>/...'")
def publish_basics():
    bundle, _ = folder_bundle("basic_bundle", 1)
    r = expect_ok(publish(bundle, "c1", "--shard-size", "2KiB"), "publish")
    v = published_version(r, "c1")
    assert v == 1, f"first version of a fresh prefix is {v}, expected 1"
    r = verify_ok("c1")
    assert re.search(r"ok \(\d+ shards? verified\)", r.out), str(r)
    verify_ok("c1", version=1)
    rows, r = status_rows("c1")
    assert rows.get("m") == ("1", "1"), f"status --to: {rows}\n      {r}"
    rows, r = status_rows("c1", "--model", "m")
    assert rows.get("m") == ("1", "1"), f"status --to --model m: {rows}\n      {r}"

    names = S3.versions("c1/m/")[1]
    shards = sorted(n for n in names if n.endswith(".bin"))
    assert len(shards) >= 2 and all(re.fullmatch(r"group1-shard\d+of\d+\.bin", n)
                                     for n in shards), f"shards {shards}"
    want = set(shards) | {"weights_manifest.json", "model.json", "publish.json", ".claim"}
    assert names == want, f"objects of version 1: {sorted(names)}, expected {sorted(want)}"
    expected_headers = {f"1/{n}": (IMMUTABLE, "application/octet-stream") for n in shards}
    expected_headers.update({
        "1/weights_manifest.json": (IMMUTABLE, "application/json"),
        "1/model.json": (IMMUTABLE, "application/json"),
        "1/publish.json": (IMMUTABLE, "application/json"),
        "weights_manifest.json": ("no-cache", "application/json"),
        "model.json": ("no-cache", "application/json"),
        "current": ("no-cache", "text/plain")})
    wrong = []
    for name, (cc, ct) in sorted(expected_headers.items()):
        h = S3.head(f"c1/m/{name}")
        got = (h.headers.get("cache-control"), h.headers.get("content-type"))
        if h.status != 200 or got != (cc, ct):
            wrong.append(f"{name}: HTTP {h.status} Cache-Control {got[0]!r} Content-Type "
                         f"{got[1]!r}, expected {cc!r} {ct!r}")
    assert not wrong, "headers:\n      " + "\n      ".join(wrong)

    ptr = check_pointers("c1", 1, has_model_json=True)
    assert ptr[0]["paths"] == [f"1/{n}" for n in sorted(
        shards, key=lambda s: int(re.search(r"shard(\d+)", s).group(1)))], ptr
    claim = json.loads(S3.body("c1/m/1/.claim"))
    assert {"host", "pid", "claimed"} <= set(claim), f".claim holds {claim}"
    pj = json.loads(S3.body("c1/m/1/publish.json"))
    sizes = {k.split("/")[-1]: s for k, (s, _) in S3.list("c1/m/1/").items()}
    for sh in pj["shards"]:
        assert sizes.get(sh["name"]) == sh["bytes"], f"publish.json {sh} vs listed {sizes}"


# --- 2. byte for byte what a folder publish writes ---------------------------------

@check("02 S3 objects are byte for byte what `publish --to <folder>` writes")
def byte_exact():
    local = os.path.join(TMP, "local_serve")
    cases = [("npz", npz("exact.npz", 2, {"a/k": (40, 30), "a/b": (30,), "c/k": (7, 7, 3),
                                           "step": ()})[0],
              ["--shard-size", "1KiB", "--group", "a/*"]),
             ("folder", folder_bundle("exact_bundle", 3)[0], ["--shard-size", "1000"]),
             ("quant", npz("exact_q.npz", 4, {"q/k": (64, 16), "h/k": (33,)})[0],
              ["--quantize", "uint8=q/*", "--quantize-rest", "float16"])]
    compared = 0
    for model, bundle, args in cases:
        r = expect_ok(wd("publish", bundle, "--to", local, "--model", model, *args,
                         env=cli_env()), "local publish")
        lv = os.path.basename(r.out.strip().splitlines()[-1])
        v, _ = publish_ok(bundle, "c2", *args, model=model)
        ldir = os.path.join(local, model, lv)
        lfiles = sorted(n for n in os.listdir(ldir) if n != "publish.json")
        objs = sorted(n for n in S3.versions(f"c2/{model}/")[v]
                      if n not in ("publish.json", ".claim"))
        assert lfiles == objs, f"{model}: local version has {lfiles}, S3 has {objs}"
        for n in lfiles:
            with open(os.path.join(ldir, n), "rb") as f:
                want = f.read()
            got = S3.body(f"c2/{model}/{v}/{n}")
            assert got == want, f"{model}/{v}/{n}: {len(got)} bytes in S3 differ from the " \
                                f"{len(want)} bytes of the local publish"
            compared += 1
        for ptr in ("weights_manifest.json", "model.json"):
            lp = os.path.join(local, model, ptr)
            if not os.path.exists(lp):
                assert S3.get(f"c2/{model}/{ptr}").status == 404, f"{model}/{ptr} in S3 only"
                continue
            with open(lp, "rb") as f:
                want = f.read()
            if lv != str(v):
                want = want.replace(f'"{lv}/'.encode(), f'"{v}/'.encode())
            got = S3.body(f"c2/{model}/{ptr}")
            assert got == want, f"{model}/{ptr} pointer differs:\n      S3    {got[:300]!r}" \
                                f"\n      local {want[:300]!r}"
            compared += 1
        # Same bytes, same settings: the provenance agrees on every shard digest.
        with open(os.path.join(ldir, "publish.json")) as f:
            lpj = json.load(f)
        spj = json.loads(S3.body(f"c2/{model}/{v}/publish.json"))
        for k in ("shards", "manifest_sha256", "config_digest"):
            assert lpj[k] == spj[k], f"{model}: publish.json {k} differs: {lpj[k]} vs {spj[k]}"
        assert lpj["source"]["sha256"] == spj["source"]["sha256"], "source sha256 differs"
    note(f"02: {compared} objects compared byte for byte with a folder publish")


# --- 3. unchanged, --force, retention -----------------------------------------------

@check("03 unchanged re-publish adds nothing; --force adds one; --keep-versions 2 keeps the newest 2")
def unchanged_force_retention():
    b, _ = npz("ret0.npz", 30)
    v1, _ = publish_ok(b, "c3")
    before = S3.list("c3/m/")
    r = expect_ok(publish(b, "c3"), "re-publish")
    assert "unchanged" in r.out + r.err, f"re-publish should say unchanged:\n      {r}"
    assert published_version(r, "c3") == v1, str(r)
    after = S3.list("c3/m/")
    assert after == before, f"an unchanged publish changed the bucket: " \
                            f"{sorted(set(after) ^ set(before))}"
    v2, r = publish_ok(b, "c3", "--force")
    assert v2 == v1 + 1 and "unchanged" not in r.out + r.err, str(r)
    check_pointers("c3", v2)
    verify_ok("c3")
    assert complete_versions("c3") == [v1, v2], complete_versions("c3")

    seen = []
    for i in range(4):
        bi, _ = npz(f"ret{i + 1}.npz", 31 + i)
        v, _ = publish_ok(bi, "c3", "--keep-versions", "2")
        seen.append(v)
        kept = sorted(S3.versions("c3/m/"))
        assert current("c3") == v, f"after publishing {v}, current is {current('c3')}"
        assert kept == [v - 1, v], \
            f"after publishing {v} with --keep-versions 2 the version prefixes are {kept}"
    assert seen == [v2 + 1 + i for i in range(4)], f"versions {seen}"
    kept = sorted(S3.versions("c3/m/"))
    assert kept == seen[-2:], f"version prefixes left: {kept}, expected {seen[-2:]}"
    assert current("c3") in kept
    check_pointers("c3", seen[-1])
    for v in kept:
        verify_ok("c3", version=v)
    rows, r = status_rows("c3")
    assert rows.get("m") == (str(seen[-1]), f"{seen[-2]}, {seen[-1]}"), f"{rows}\n      {r}"

    # Retention never deletes what `current` names: roll back to the older
    # kept version, then publish with --keep-versions 1.
    expect_ok(wd("rollback", f"{target('c3')}/m", "--to", seen[-2]), "rollback")
    bx, _ = npz("ret9.npz", 39)
    v, r = publish_ok(bx, "c3", "--keep-versions", "1")
    kept = sorted(S3.versions("c3/m/"))
    assert current("c3") == v and v in kept and kept == [v], \
        f"after rollback + publish --keep-versions 1: current {current('c3')}, kept {kept}"


# --- 4. rollback --------------------------------------------------------------------

@check("04 rollback moves current and the pointers back; verify ok; --to 99 names the versions")
def rollback():
    vs = []
    for i in range(3):
        b, _ = folder_bundle(f"rb{i}_bundle", 40 + i, n=50 + i)
        v, _ = publish_ok(b, "c4")
        vs.append(v)
    check_pointers("c4", vs[2], has_model_json=True)
    r = expect_ok(wd("rollback", f"{target('c4')}/m"), "rollback")
    check_pointers("c4", vs[1], has_model_json=True)
    verify_ok("c4")
    rows, _ = status_rows("c4")
    assert rows["m"][0] == str(vs[1]), f"status after rollback: {rows}"
    expect_ok(wd("rollback", f"{target('c4')}/m", "--to", vs[0]), "rollback --to")
    check_pointers("c4", vs[0], has_model_json=True)
    verify_ok("c4")
    # The pointer manifest really serves the old version's bytes.
    ptr = json.loads(S3.body("c4/m/weights_manifest.json"))
    shapes = {w["name"]: w["shape"] for g in ptr for w in g["weights"]}
    assert shapes.get("w") == [50, 4], f"pointer manifest after rollback: {ptr}"
    r = wd("rollback", f"{target('c4')}/m", "--to", "99")
    assert r.rc != 0, f"rollback --to 99 should fail:\n      {r}"
    msg = r.out + r.err
    assert "99" in msg and all(str(v) in msg for v in vs) and "version" in msg, \
        f"the error should name version 99 and the versions there {vs}:\n      {r}"
    check_pointers("c4", vs[0])
    expect_ok(wd("rollback", f"{target('c4')}/m", "--to", vs[2]), "roll forward")
    check_pointers("c4", vs[2])


# --- 5. the real tfjs client, from the RGW's URLs -------------------------------------

@check("04b verify reads every byte back: a changed shard and a stale model.json pointer are problems")
def verify_catches_tampering():
    folder, _ = folder_bundle("tamper", 41)
    v, _ = publish_ok(folder, "c4b")
    verify_ok("c4b")
    shard = f"c4b/m/{v}/group1-shard1of1.bin"
    good = S3.body(shard)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    assert S3.request("PUT", shard, body=bytes(bad)).status == 200
    r = wd("verify", f"{target('c4b')}/m")
    assert r.rc == 1 and "group1-shard1of1.bin" in r.err and "sha256" in r.err, \
        f"a flipped byte in a shard should be a problem naming it:\n      {r}"
    assert S3.request("PUT", shard, body=good).status == 200
    verify_ok("c4b")
    pointer = "c4b/m/model.json"
    text = S3.body(pointer)
    assert S3.request("PUT", pointer, body=text.replace(b'"weightsManifest"',
                                                         b'"weightsManifest" ', 1)).status == 200
    r = wd("verify", f"{target('c4b')}/m")
    assert r.rc == 1 and "model.json" in r.err, \
        f"a model.json pointer that is not the version's should be a problem:\n      {r}"
    assert S3.request("PUT", pointer, body=text).status == 200
    verify_ok("c4b")


@check("05 tfjs-core loads published models straight from the RGW (public-read, CORS)")
def tfjs_from_rgw():
    import tfjs_test as T
    T.ensure_node_modules()
    ensure_public()
    base = f"{RGW.endpoint}/{BUCKET}/c5/"
    models, jobs = [], []

    def add(name, bundle, arrays, args, quantized=None, model_json=False):
        v, _ = publish_ok(bundle, "c5", *args, model=name)
        m = T.Model(name, arrays, quantized or {}, ["", f"{v}/"], model_json)
        models.append((m, v))
        for folder in m.folders:
            url = base + name + "/" + folder
            jobs.append((m, f"{name}/{folder or '(pointer)/'} loadWeights", {
                "mode": "loadWeights", "manifest": url + "weights_manifest.json",
                "prefix": url}))
            if model_json:
                jobs.append((m, f"{name}/{folder or '(pointer)/'} http model.json",
                             {"mode": "http", "url": url + "model.json"}))

    b, a = npz("tf_plain.npz", 50, {"dense/kernel": (64, 32), "dense/bias": (32,)})
    add("plain", b, a, [])
    b, a = npz("tf_q8.npz", 51, {"q/kernel": (128, 16), "q/bias": (16,)})
    add("quant8", b, a, ["--quantize-rest", "uint8"], {k: "uint8" for k in a})
    b, a = npz("tf_multi.npz", 52, {"l1/w": (100, 20), "l2/w": (60,), "l3/w": (9, 9)})
    add("multishard", b, a, ["--shard-size", "1KiB"])
    b, a = folder_bundle("tf_graph_bundle", 53)
    add("graph", b, a, ["--shard-size", "2KiB"], model_json=True)
    # A 20 MiB single shard: uploaded as a multipart upload (> 16 MiB).
    b, a = npz("tf_big.npz", 54, {"big/w": (5 * 1024 * 1024,)})
    add("big", b, a, ["--shard-size", "32MiB"])

    big_v = dict((m.name, v) for m, v in models)["big"]
    objs = S3.list(f"c5/big/{big_v}/")
    shard = objs[f"c5/big/{big_v}/group1-shard1of1.bin"]
    assert shard[0] == 20 * 1024 * 1024, f"big shard is {shard[0]} bytes"
    assert re.fullmatch(r"[0-9a-f]{32}-3", shard[1]), \
        f"the 20 MiB shard's ETag {shard[1]} is not a 3-part multipart ETag"
    assert S3.multipart_uploads("c5/") == [], "multipart uploads left open"
    verify_ok("c5", "big")

    # Public read and CORS as a browser meets them.
    st, hdrs, body = fetch_public(base + "plain/weights_manifest.json",
                                  {"Origin": CORS_ORIGIN})
    assert st == 200 and json.loads(body), f"unsigned GET of the pointer: HTTP {st}"
    assert hdrs.get("access-control-allow-origin") in (CORS_ORIGIN, "*"), \
        f"no Access-Control-Allow-Origin for the allowed origin: {hdrs}"
    assert hdrs.get("cache-control") == "no-cache", hdrs

    t0 = time.monotonic()
    results = T.run_node([(jid, job) for _, jid, job in jobs], TMP)
    note(f"05: node load.mjs ran {len(jobs)} loads from the RGW in "
         f"{time.monotonic() - t0:.1f}s")
    problems = []
    for m, jid, _ in jobs:
        entries = {w["name"]: w for g in json.loads(
            S3.body(f"c5/{m.name}/weights_manifest.json")) for w in g["weights"]}
        problems += [f"{jid}: {p}" for _, p in T.check_result(m, entries, results[jid])]
    assert not problems, "tfjs decoded wrong values:\n      " + "\n      ".join(problems[:8])


# --- 6. errors: credentials, bucket, endpoint ----------------------------------------

@check("06 wrong secret / missing bucket / unreachable endpoint: clear errors, no secret shown")
def errors():
    b, _ = npz("err.npz", 60)
    secret = RGW.env["AWS_SECRET_ACCESS_KEY"]
    wrong = "WrongSecretKey0123456789abcdefghijKLMNOP"
    for cmd in (["publish", b, "--to", target("c6"), "--model", "m"],
                ["verify", f"{target('c6')}/m"],
                ["status", "--to", target("c6")]):
        r = wd(*cmd, env=cli_env(AWS_SECRET_ACCESS_KEY=wrong), timeout=60)
        out = r.out + r.err
        assert r.rc != 0, f"a wrong secret should fail:\n      {r}"
        assert f"s3://{BUCKET}/c6" in out, f"the error should name the s3:// target:\n      {r}"
        assert re.search(r"check the (secret key|credentials)", out, re.I), \
            f"the error should say to check the credentials:\n      {r}"
        assert wrong not in out and secret not in out, f"a secret key is in the output:\n{r}"
    r = wd(*["publish", b, "--to", target("c6"), "--model", "m"],
           env=cli_env(AWS_ACCESS_KEY_ID="NOSUCHKEY0123456789"), timeout=60)
    assert r.rc != 0 and re.search(r"check the (access key|credentials)", r.err, re.I) \
        and secret not in r.out + r.err, f"unknown access key:\n      {r}"
    assert S3.list("c6/") == {}, f"a failed publish wrote objects: {S3.list('c6/')}"

    r = wd("publish", b, "--to", "s3://no-such-bucket-wd/x", "--model", "m", timeout=60)
    assert r.rc != 0 and "no-such-bucket-wd" in r.err and \
        re.search(r"NoSuchBucket|does not exist|bucket name", r.err), \
        f"a missing bucket should be named in a clear error:\n      {r}"

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    ep = f"http://127.0.0.1:{port}"
    r = wd("publish", b, "--to", target("c6"), "--model", "m",
           env=cli_env(AWS_ENDPOINT_URL=ep), timeout=120)
    assert r.rc != 0 and ep in r.err and re.search(r"cannot reach|connect", r.err), \
        f"an unreachable endpoint should be named:\n      {r}"
    attempts = re.search(r"(\d+) attempts", r.err)
    assert r.seconds < 20, f"giving up on a closed port took {r.seconds:.1f}s"
    note(f"06: unreachable endpoint fails in {r.seconds:.2f}s "
         f"({attempts.group(1) if attempts else '?'} attempts, the retries' backoff)")


# --- 7. the RGW dies mid-publish -----------------------------------------------------

def wait_for(pred, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def poll(pred, timeout, interval=0.05):
    """True once pred() holds, False after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


def shards_of(prefix, v, model="m"):
    try:
        names = S3.versions(f"{prefix}/{model}/").get(v, set())
    except (OSError, AssertionError):
        return 0
    return sum(1 for n in names if n.endswith(".bin"))


@check("07 RGW killed mid-publish: clean failure, pointers intact, leftovers removed by the next publish")
def rgw_killed():
    small, _ = npz("kill_prev.npz", 70)
    v1, _ = publish_ok(small, "c7")
    big = big_npz(200, 71)
    # 2 MiB shards: ~100 uploads; after the first failed one, the rest must
    # not each be tried with full retries.
    bg = Background("publish", big, "--to", target("c7"), "--model", "m",
                    "--shard-size", "2MiB")
    t0 = time.monotonic()
    # Kill once the publish is uploading (its first shards are listed): a
    # fixed 0.5 s would sometimes land before the claim on a loaded machine.
    wait_for(lambda: bg.done() or shards_of("c7", v1 + 1) >= 3, 60,
             "the big publish's first shards")
    assert not bg.done(), f"the publish ended before the kill:\n      {bg.wait()}"
    t_kill = time.monotonic() - t0
    RGW.kill_rgw()
    r = bg.wait(timeout=120)
    assert r.rc != 0, f"a publish whose store died should fail:\n      {r}"
    assert f"s3://{BUCKET}/c7" in r.err and re.search(r"cannot reach|connect", r.err), \
        f"the failure should name the target and the endpoint problem:\n      {r}"
    fail_after = r.seconds - t_kill
    note(f"07: RGW killed {t_kill:.2f}s into a 200 MiB publish; the CLI failed "
         f"{fail_after:.2f}s later")
    # A dead endpoint costs 5 attempts (~2.5 s, check 06); a publish should
    # give up about as fast, not retry each of its remaining shards in turn.
    assert fail_after < 20, \
        f"the CLI failed {fail_after:.1f}s after the RGW was killed: the remaining shards " \
        f"were uploaded in vain after the first failure"
    RGW.start_rgw()
    check_pointers("c7", v1)
    verify_ok("c7")
    left = S3.versions("c7/m/").get(v1 + 1, set())
    assert left and "publish.json" not in left, \
        f"the killed publish should have left an incomplete version {v1 + 1}: {sorted(left)}"
    leftover = len(left)

    killed_claim = json.loads(S3.body(f"c7/m/{v1 + 1}/.claim"))
    v3, r = publish_ok(big, "c7", "--shard-size", "2MiB")
    check_pointers("c7", v3)
    verify_ok("c7")
    vers = S3.versions("c7/m/")
    # The killed run's number may be reused once its objects are gone.
    assert sorted(vers) == [v1, v3], \
        f"after the re-publish the versions are {sorted(vers)}: the killed run's " \
        f"version {v1 + 1} ({leftover} objects) should be gone"
    pj = json.loads(S3.body(f"c7/m/{v3}/publish.json"))
    want = {s["name"] for s in pj["shards"]} | {"weights_manifest.json", "publish.json",
                                                  ".claim"}
    assert vers[v3] == want, f"version {v3} holds {sorted(vers[v3] - want)} beyond what " \
                             f"its publish.json names"
    claim = json.loads(S3.body(f"c7/m/{v3}/.claim"))
    assert claim["pid"] != killed_claim["pid"], f"{v3}'s .claim is the killed run's: {claim}"
    assert S3.multipart_uploads("c7/") == []
    note(f"07: the killed run left {leftover} objects in version {v1 + 1}; the re-publish "
         f"(version {v3}) removed them")

    # A quick restart during a publish: it completes (retries) or fails
    # cleanly; either way the pointers agree and verify is ok.
    other = big_npz(48, 72)
    bg = Background("publish", other, "--to", target("c7"), "--model", "m",
                    "--shard-size", "1MiB")
    wait_for(lambda: bg.done() or shards_of("c7", v3 + 1) >= 2, 60, "the publish's shards")
    restarted = not bg.done()
    RGW.restart_rgw()
    r = bg.wait(timeout=120)
    cur = current("c7")
    if r.rc == 0:
        v = published_version(r, "c7")
        assert cur == v, f"publish succeeded with {v} but current is {cur}"
        outcome = "completed (retried)"
    else:
        assert f"s3://{BUCKET}/c7" in r.err, f"unclear failure:\n      {r}"
        assert cur == v3, f"a failed publish moved current to {cur}"
        outcome = "failed cleanly: " + r.err.strip().splitlines()[-1][:160]
    check_pointers("c7", cur)
    verify_ok("c7")
    note(f"07: restart-rgw {'during' if restarted else 'after'} a 48 MiB publish: {outcome}")


# --- 8. racing writers ---------------------------------------------------------------

class CurrentSampler:
    """Reads prefix/M/current over and over in a thread."""

    def __init__(self, prefix, model="m"):
        self.prefix, self.model, self.samples, self.errors = prefix, model, [], []
        self.stop_flag = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stop_flag:
            try:
                c = current(self.prefix, self.model)
                if c is not None:
                    self.samples.append(c)
            except (OSError, AssertionError) as e:
                self.errors.append(str(e))
            time.sleep(0.01)

    def stop(self):
        self.stop_flag = True
        self.thread.join(5)
        return self.samples

    def check_monotonic(self):
        back = [(a, b) for a, b in zip(self.samples, self.samples[1:]) if b < a]
        assert not back, f"current moved backwards {back[:5]} in {len(self.samples)} samples"
        assert not self.errors, f"reading current failed: {self.errors[:3]}"


@check("08a four CLI publishers race on one model: distinct versions, newest current")
def cli_race():
    bundles = [npz(f"race{i}.npz", 80 + i, {"w": (2000 + 100 * i, 8)})[0] for i in range(4)]
    sampler = CurrentSampler("c8")
    runs = [Background("publish", b, "--to", target("c8"), "--model", "m",
                       "--keep-versions", "10", "--shard-size", "16KiB") for b in bundles]
    results = [r.wait() for r in runs]
    sampler.stop()
    for r in results:
        expect_ok(r, "a racing publish")
    vs = [published_version(r, "c8") for r in results]
    assert len(set(vs)) == 4, f"racing publishers got versions {vs}"
    assert current("c8") == max(vs), f"current {current('c8')}, versions {vs}"
    check_pointers("c8", max(vs))
    sampler.check_monotonic()
    assert complete_versions("c8") == sorted(vs), complete_versions("c8")
    for v in vs:
        verify_ok("c8", version=v)
    note(f"08a: versions {sorted(vs)}; {len(sampler.samples)} samples of current, "
         f"never backwards")


# --- daemon helpers ------------------------------------------------------------------

def credentials_file(path, secret=None):
    with open(path, "w") as f:
        f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (
            RGW.env["AWS_ACCESS_KEY_ID"], secret or RGW.env["AWS_SECRET_ACCESS_KEY"]))
    os.chmod(path, 0o600)
    return path


def s3_env(label, prefix, creds_secret=None, **watch_opts):
    """A daemon_util.Env with one watch serving s3://BUCKET/prefix."""
    env = DU.Env(label)
    env.top["s3"] = {"endpoint": RGW.endpoint, "region": "us-east-1", "path_style": True,
                     "credentials_file": credentials_file(env.path("aws-credentials"),
                                                          creds_secret)}
    watch_opts.setdefault("model", "m")
    w = env.watch(_serve_text=target(prefix), **watch_opts)
    return env, w


def daemon_supports_s3():
    with open(os.path.join(s3_util.REPO, "config", "daemon_config.cpp")) as f:
        if "s3" not in f.read():
            raise Skip("the daemon has no s3 support yet (config/daemon_config.cpp)")


@check("08b two daemons race on one S3 prefix and model: distinct versions, current never back")
def daemon_race():
    daemon_supports_s3()
    e1, w1 = s3_env("race1", "c8b", keep_versions=20)
    e2, w2 = s3_env("race2", "c8b", keep_versions=20)
    with e1, e2:
        d1, d2 = e1.start(), e2.start()
        sampler = CurrentSampler("c8b")
        n = 4
        for i in range(n):
            for k, w in enumerate((w1, w2)):
                w.drop_by_rename(f"b{k}{i}.npz", DU.npz_bytes(100 + 10 * k + i, n=3000))
        for d, w in ((d1, w1), (d2, w2)):
            d.wait(lambda w=w: len(w.done()) == n, 90, f"{n} bundles in done/ of {w.drop}")
        sampler.stop()
        for d, w in ((d1, w1), (d2, w2)):
            d.check(not w.failed() and not w.processing(),
                    f"failed {w.failed()} processing {w.processing()}")
        vs = complete_versions("c8b")
        d1.check(vs == list(range(1, 2 * n + 1)), f"complete versions {vs}")
        check_pointers("c8b", max(vs))
        sampler.check_monotonic()
        for v in vs:
            verify_ok("c8b", version=v)
        for d in (d1, d2):
            d.stop()
            log = d.log()
            d.check(RGW.env["AWS_SECRET_ACCESS_KEY"] not in log, "the secret is in the log")
        note(f"08b: two daemons published versions {vs}; {len(sampler.samples)} samples "
             f"of current, never backwards")


# --- 9. the daemon ---------------------------------------------------------------------

HOOK_PY = """#!/usr/bin/python3
import json, os, sys
rec = {"argv": sys.argv[2:],
       "env": {k: v for k, v in os.environ.items() if k.startswith("WEIGHTDROP_")}}
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(rec) + "\\n")
"""


@check("09a daemon: serve s3://, drop -> published, status shows it, on_publish gets the URL")
def daemon_publish():
    daemon_supports_s3()
    ensure_public()
    env, w = s3_env("d9a", "c9a")
    with env:
        hook = DU.write_file(env.path("hook.py"), HOOK_PY, 0o755)
        hook_out = env.path("hook.jsonl")
        w.opts["hooks"] = {"on_publish": [hook, hook_out, "{url}", "{version}", "{dir}"]}
        r = wd("check-config", env.write_config())
        assert r.rc == 0, f"check-config of an s3 watch:\n      {r}"
        d = env.start()
        data = DU.npz_bytes(9)
        w.drop_by_rename("m.npz", data)
        d.wait(lambda: w.done() == ["m.npz"], 30, "m.npz in done/")
        d.check(current("c9a") == 1, f"current {current('c9a')}")
        check_pointers("c9a", 1)
        verify_ok("c9a")
        pj = json.loads(S3.body("c9a/m/1/publish.json"))
        d.check(pj["source"]["sha256"] == DU.sha256_bytes(data), f"publish.json source {pj}")
        url = f"{RGW.endpoint}/{BUCKET}/c9a/m/weights_manifest.json"
        recs = d.wait(lambda: _records(hook_out), 10,
                      "the on_publish hook")
        rec = recs[0]
        d.check(rec["argv"][0] == url and rec["env"].get("WEIGHTDROP_URL") == url,
                f"hook {{url}} / WEIGHTDROP_URL: {rec}, expected {url}")
        d.check(rec["argv"][1] == "1", f"hook {{version}}: {rec}")
        st, _, body = fetch_public(rec["argv"][0])
        d.check(st == 200 and body == S3.body("c9a/m/weights_manifest.json"),
                f"the hook's URL does not serve the pointer manifest (HTTP {st})")
        # status.json is rewritten ~100 ms after the publish ends: an earlier
        # write (from start-up) has the store with its first listing only.
        status = d.wait(lambda: (_store_status(env, "c9a") or {}).get("bytes_uploaded") and
                        _store_status(env, "c9a"), 10, "the publish's uploads in status.json")
        d.check(status["bytes_uploaded"] > 0 and status["requests"] > 0 and
                not status["last_error"], f"status.json stores entry {status}")
        models = env.status().get("models", {})
        d.check(f"{target('c9a')}/m" in models, f"status.json models {list(models)}")
        rc, out, err = DU.wd("status", "--config", env.config_path)
        row = [ln for ln in out.splitlines() if ln.startswith(target("c9a") + "/m ")]
        d.check(rc == 0 and row and re.search(r"\s1\s+published\s", row[0]),
                f"weightdrop status has no row for {target('c9a')}/m at version 1:\n{out}{err}")
        row = [ln for ln in out.splitlines() if ln.startswith(target("c9a") + " ")]
        d.check(row and row[0].split()[-1] == "-", f"store row: {row}\n{out}")
        d.stop()


def _records(path):
    try:
        with open(path) as f:
            return [json.loads(x) for x in f if x.strip()]
    except FileNotFoundError:
        return []


def _store_status(env, prefix):
    for st in env.status().get("stores", []):
        if st["target"].startswith(target(prefix)):
            return st
    return None


@check("09b daemon: bad credentials keep the bundle in processing/; fixed + SIGHUP -> published")
def daemon_bad_credentials():
    daemon_supports_s3()
    wrong = "WrongSecretKey0123456789abcdefghijKLMNOP"
    env, w = s3_env("d9b", "c9b", creds_secret=wrong)
    with env:
        d = env.start()
        w.drop_by_rename("m.npz", DU.npz_bytes(19))
        st = d.wait(lambda: (_store_status(env, "c9b") or {}).get("last_error"), 30,
                    "an error in status.json's stores entry")
        d.check(re.search(r"credential|secret key|SignatureDoesNotMatch", st, re.I),
                f"status error does not point at the credentials: {st!r}")
        time.sleep(2.5)  # a few retries (1 s, 2 s backoff)
        d.check(w.in_processing("m.npz") is not None, "the bundle left processing/")
        d.check(w.failed() == [] and w.done() == [], f"failed {w.failed()} done {w.done()}")
        d.check(S3.list("c9b/") == {}, f"objects written with bad keys: {S3.list('c9b/')}")
        rc, out, err = DU.wd("status", "--config", env.config_path)
        rows = [ln for ln in out.splitlines() if ln.startswith(target("c9b"))]
        d.check(rc == 0 and len(rows) == 2 and all("retrying" in rows[1] or
                                                   not ln.rstrip().endswith(" -")
                                                   for ln in rows) and "retrying" in rows[1],
                f"weightdrop status should show the store's error and 'retrying':\n{out}{err}")
        if not re.search(r"credential|secret key|SignatureDoesNotMatch", out, re.I):
            note("09b: the status table shortens the error in the middle, cutting what says "
                 "to check the keys: " + " ".join(rows[0].split()))
        for text in (d.log(), out, json.dumps(env.status())):
            d.check(wrong not in text and RGW.env["AWS_SECRET_ACCESS_KEY"] not in text,
                    "a secret key is in the log or the status")
        credentials_file(env.path("aws-credentials"))
        t0 = time.monotonic()
        d.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded", 10)
        # The retry backoff is at 4-8 s by now: the next attempt is due
        # within 8 s, and must use the reloaded credentials.
        # A reload retries a waiting bundle at once, with the new settings.
        d.wait(lambda: w.done() == ["m.npz"], 10,
               "m.npz published soon after the credentials were fixed and SIGHUP sent")
        note(f"09b: published {time.monotonic() - t0:.1f}s after the fix + SIGHUP")
        check_pointers("c9b", 1)
        verify_ok("c9b")
        d.check(w.failed() == [] and w.processing() == [], "left in failed/ or processing/")
        d.stop()


# --- runner ----------------------------------------------------------------------------

def main():
    global BINARY, RGW, S3, TMP
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--filter", default="", help="run only checks whose name contains this")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = ap.parse_args()
    BINARY = os.path.abspath(args.binary)
    skip = s3_util.skip_reason(BINARY, "s3_test")
    if skip:
        print(skip[1], file=sys.stderr if skip[0] == 2 else sys.stdout)
        return skip[0]
    DU.BINARY = BINARY
    TMP = tempfile.mkdtemp(prefix="wd_s3_")
    t0 = time.monotonic()

    def started(rgw):
        global RGW, S3
        RGW, S3 = rgw, rgw.client()
        ensure_public()
    passed, failed = s3_util.run_with_rgw(args.filter, args.keep, started,
                                          lambda: [TMP, DU.BASE])
    return checks.finish(t0, passed, failed)


if __name__ == "__main__":
    sys.exit(main())
