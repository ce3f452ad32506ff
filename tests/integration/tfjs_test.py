#!/usr/bin/python3
"""End-to-end test: the real tfjs-core 4.22 client loads what weightdrop
publishes, with the right dtypes, shapes and values.

NumPy bundles (tests/integration/bundles.py) are published with the real
binary into a temporary serve root, which a loopback HTTP server serves; one
node process (tests/tfjs/load.mjs) loads every model through tf.io.http
(the tf.loadGraphModel path, fed a model.json synthesized from the manifest
at <dir>/__virtual_model.json) and tf.io.loadWeights, from the pointer
manifest, the version folder and `current`. Every value is compared with
NumPy. It also shows that tfjs-core's CompositeArrayBuffer shortcut really
misdecodes some reference-writer layouts, and that weightdrop's never do.

Usage: /usr/bin/python3 tests/integration/tfjs_test.py --binary build/weightdrop
"""

import argparse
import fnmatch
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bundles  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TFJS_DIR = os.path.join(REPO, "tests", "tfjs")
GOLDEN_DIR = os.path.join(REPO, "tests", "golden")
VIRTUAL_MODEL_JSON = "__virtual_model.json"
QUANT_BYTES = {"uint8": 1, "uint16": 2, "float16": 2}
DTYPE_BYTES = {"float32": 4, "int32": 4, "bool": 1, "complex64": 8}
QMAX = {"uint8": 255, "uint16": 65535}

# --------------------------------------------------------------------------
# tfjs-core 4.22's uniform-shard hazard, modelled on
# node_modules/@tensorflow/tfjs-core/dist/io/composite_array_buffer.js (the
# same code is bundled in dist/tf-core.node.js, which node actually runs).
#
# tf.io.http(...).load() fetches the shards of ALL groups, in manifest order,
# into one list of ArrayBuffers; decodeWeights() wraps that list in ONE
# CompositeArrayBuffer. Its constructor sets bufferUniformSize = size of the
# first buffer and keeps it when every buffer except the last has exactly
# that size; the last one is not checked and may be larger. slice(start,
# end) then finds the first shard with findShardForByte(start), which in the
# uniform case is floor(start / bufferUniformSize) with no bounds check. With
# n buffers of uniform size u, a start offset in the last buffer at or past
# n * u yields an index >= n: the copy loop never runs and slice() returns a
# zero-filled buffer of the right length. So every weight whose first byte
# (or, for a string weight, any element's 4-byte length prefix) lies at a
# global offset >= n * u decodes silently as zeros (strings: wrong lengths,
# garbage). The reference writer produces that layout when every group but
# the last is a single shard of the same size u < shard_size and the last
# group is a single shard larger than u holding a weight that starts u or
# more bytes into it (e.g. groups of 76, 76 and 900 bytes). Golden case 10
# (shards 76 then 80000, one weight starting at byte 76 = 1 * 76) is NOT
# affected: its only weight in the big shard starts inside the first u bytes.
# tf.io.loadWeights builds one CompositeArrayBuffer per group, so it is
# affected only when a group's own shards have that shape, which the
# reference cutting (full shards, then a smaller remainder) never produces.
# --------------------------------------------------------------------------


def weight_reads(entry, blob, offset):
    """(slice start offsets decodeWeights uses, byte size) of one weight."""
    size = int(np.prod(entry["shape"], dtype=np.int64))
    if "quantization" in entry:
        nbytes = size * QUANT_BYTES[entry["quantization"]["dtype"]]
    elif entry["dtype"] == "string":
        starts, pos = [], offset
        for _ in range(size):
            starts.append(pos)
            pos += 4 + int.from_bytes(blob[pos:pos + 4], "little")
        return (starts + [offset] if pos > offset else starts), pos - offset
    else:
        nbytes = size * DTYPE_BYTES[entry["dtype"]]
    return ([offset] if nbytes else []), nbytes


def _victims(buffers, weights):
    """Weights misdecoded by one CompositeArrayBuffer over `buffers`."""
    sizes = [len(b) for b in buffers]
    if len(sizes) < 2 or any(s != sizes[0] for s in sizes[:-1]):
        return []  # not uniform: tfjs searches shard bounds, which is correct
    limit, blob, offset, victims = len(sizes) * sizes[0], b"".join(buffers), 0, []
    for entry in weights:
        starts, nbytes = weight_reads(entry, blob, offset)
        if any(s >= limit for s in starts):
            victims.append(entry["name"])
        offset += nbytes
    return victims


def hazard_victims(manifest, folder, per_group):
    """Weights tfjs-core 4.22 misdecodes for `manifest` with shards in
    `folder`: through tf.io.http + decodeWeights (per_group False) or
    tf.io.loadWeights (per_group True)."""
    def read(path):
        with open(os.path.join(folder, path), "rb") as f:
            return f.read()
    groups = [([read(p) for p in g["paths"]], g["weights"]) for g in manifest]
    if per_group:
        return [v for bufs, weights in groups for v in _victims(bufs, weights)]
    return _victims([b for bufs, _ in groups for b in bufs],
                    [w for _, weights in groups for w in weights])


# ------------------------------------------------------------------ serving


class ServeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the serve root read-only, plus <dir>/__virtual_model.json: a
    graph-model JSON whose weightsManifest is <dir>/weights_manifest.json."""

    def do_GET(self):
        if not self.path.endswith("/" + VIRTUAL_MODEL_JSON):
            return super().do_GET()
        folder = os.path.dirname(self.translate_path(self.path))
        try:
            with open(os.path.join(folder, "weights_manifest.json"), "rb") as f:
                manifest = json.load(f)
        except OSError:
            return self.send_error(404, "no weights_manifest.json there")
        body = json.dumps({"format": "graph-model", "modelTopology": {},
                           "weightsManifest": manifest}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ServeServer(http.server.ThreadingHTTPServer):
    # tfjs fetches all shards at once; the default listen backlog of 5 makes
    # further connects wait for a SYN retransmit (1 s each).
    request_queue_size = 256
    daemon_threads = True


def start_server(root):
    handler = functools.partial(ServeHandler, directory=root)
    server = ServeServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d/" % server.server_address[1]


# ------------------------------------------------------------------- models


class Model:
    """One model in the serve root and what tfjs must decode from it."""

    def __init__(self, name, arrays, quantized, folders, model_json=False):
        self.name = name          # model folder name under the serve root
        self.arrays = arrays      # {weight: source np.ndarray}
        self.quantized = quantized  # {weight: "uint8" | "uint16" | "float16"}
        self.folders = folders    # URL dirs to load from, relative to /name/
        self.model_json = model_json
        self.has_strings = any(a.dtype.kind in "US" for a in arrays.values())


def quantize_map(arrays, spec):
    """{weight: qdtype} for a quantization map {qdtype: [patterns] | True}:
    only float sources are quantized; True takes every unmatched weight."""
    result = {}
    for name, arr in arrays.items():
        if arr.dtype.kind != "f":
            continue
        hits = [q for q, pats in spec.items() if pats is not True and
                any(fnmatch.fnmatchcase(name, p) for p in pats)]
        fallback = [q for q, pats in spec.items() if pats is True]
        if hits or fallback:
            result[name] = (hits or fallback)[0]
    return result


def publish(binary, bundle, serve, model, extra):
    cmd = [binary, "publish", bundle, "--to", serve, "--model", model] + extra
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (
            " ".join(cmd), proc.returncode, proc.stderr.strip()))
    version_dir = proc.stdout.strip().splitlines()[-1]
    if os.path.realpath(os.path.dirname(version_dir)) != os.path.realpath(
            os.path.join(serve, model)):
        raise RuntimeError("%s printed %r, not a folder of %s/%s" % (
            " ".join(cmd), version_dir, serve, model))
    return os.path.basename(version_dir)


def write_config(tmp, name, text):
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


HAZARD_LAYOUTS = [
    # (model, groups [[(weight, elements)]], shard_size or None)
    ("hz-tail", [[("small/i", 19)], [("big/f", 20000), ("tail/f", 10)]], None),
    ("hz-76-76-900", [[("a/i", 19)], [("b/f", 19)], [("c/x", 25), ("c/y", 200)]], None),
    ("hz-near-miss", [[("p/f", 19), ("p/g", 19)], [("q/f", 10)]], 76),
]


def hazard_config(groups, shard_size):
    lines = ["groups:"] + ['  - match: ["%s/*"]' % g[0][0].split("/")[0]
                          for g in groups[:-1]]
    if shard_size:
        lines.append("shard_size: %d" % shard_size)
    return "\n".join(lines) + "\n"


def publish_cases(tmp):
    """[(model, bundle writer or None, bundle path, publish args, quantization
    map, has model.json)]; a None writer means the bundle already exists."""
    def config(name, text):
        return ["--config", write_config(tmp, name, text)]

    def at(file_name):
        return os.path.join(tmp, "bundles", file_name)
    q_spec = {"uint8": ["q8/*"], "uint16": ["q16/*"], "float16": ["h/*"]}
    golden = os.path.join(GOLDEN_DIR, "10-tfjs-uniform-shard-hazard")
    cases = [
        ("numeric", bundles.write_numeric, at("numeric.npz"), [], {}, False),
        ("numeric-s100", bundles.write_numeric, at("numeric.npz"),
         ["--shard-size", "100"], {}, False),
        ("strings-s7", bundles.write_strings_mixed, at("strings.npz"),
         ["--shard-size", "7"], {}, False),
        ("strings-z", functools.partial(bundles.write_strings_mixed, compressed=True),
         at("strings_z.npz"), [], {}, False),
        ("compressed", bundles.write_compressed, at("compressed.npz"),
         ["--shard-size", "24"], {}, False),
        ("folder", bundles.write_folder, at("folder_bundle"), ["--shard-size", "20"], {},
         True),
        ("quant-config", bundles.write_quantize, at("quant.npz"),
         config("quant", bundles.QUANTIZE_CONFIG), q_spec, False),
        ("quant-flags", bundles.write_quantize, at("quant.npz"), bundles.QUANTIZE_FLAGS,
         q_spec, False),
        ("by-prefix", bundles.write_layers, at("layers.npz"),
         config("byprefix", "shard_size: 40\ngroups: {by_prefix: 1}\n"), {}, False),
        ("group-flags", bundles.write_layers, at("layers.npz"),
         ["--shard-size", "50", "--group", "layer1/*,layer3/*", "--group", "layer2/*"],
         {}, False),
        ("groups-quant", bundles.write_layers, at("layers.npz"), config(
            "groupsq", 'shard_size: 33\ngroups:\n  - match: ["layer4/*"]\n'
            'unmatched: last\nquantize:\n  uint8: ["*/kernel"]\n  float16: true\n'),
         {"uint8": ["*/kernel"], "float16": True}, False),
        ("hz-strings", bundles.write_hazard_strings, at("hz_strings.npz"),
         config("hzs", 'groups:\n  - match: ["a/*"]\n'), {}, False),
        ("hz-golden10", None, os.path.join(golden, "bundle.npz"),
         ["--config", os.path.join(golden, "config.yaml")], {}, False),
    ]
    for name, groups, shard_size in HAZARD_LAYOUTS:
        cases.append((name, functools.partial(bundles.write_hazard, groups=groups),
                      at(name + ".npz"), config(name, hazard_config(groups, shard_size)),
                      {}, False))
    return cases


def publish_all(binary, tmp, serve):
    """Publishes every test bundle; returns ([Model], [failed checks])."""
    models, failures, written = [], [], {}
    for name, writer, bundle, args, spec, model_json in publish_cases(tmp):
        if bundle not in written:
            if writer is None:
                written[bundle] = dict(np.load(bundle))
            else:
                if bundle.endswith("_bundle"):
                    os.makedirs(bundle)
                written[bundle] = writer(bundle)
        arrays = written[bundle]
        try:
            version = publish(binary, bundle, serve, name, args)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            failures.append(("publish " + name, [str(e)]))
            continue
        folders = ["", version + "/", "current/"]
        models.append(Model(name, arrays, quantize_map(arrays, spec), folders, model_json))
    return models, failures


# -------------------------------------------------------- reference layouts


def lay_out_reference(serve, name, manifest, files):
    """Writes a reference-writer output as model `name`, version folder 1."""
    folder = os.path.join(serve, name, "1")
    os.makedirs(folder)
    for file_name, data in files.items():
        with open(os.path.join(folder, file_name), "wb") as f:
            f.write(data)
    with open(os.path.join(folder, "weights_manifest.json"), "w") as f:
        json.dump(manifest, f)


def reference_hazard_layout(serve, name, arrays, groups, shard_size):
    """Cuts groups like the reference write_weights (full shards, then the
    remainder) and lays the result out as model `ref-<name>`."""
    shard_size = shard_size or 4 * 1024 * 1024
    manifest, files = [], {}
    for g, group in enumerate(groups, 1):
        data = b"".join(bundles.encode_tfjs(arrays[w]) for w in group)
        chunks = [data[i:i + shard_size] for i in range(0, len(data), shard_size)]
        paths = ["group%d-shard%dof%d.bin" % (g, i, len(chunks))
                 for i in range(1, len(chunks) + 1)]
        files.update(zip(paths, chunks))
        manifest.append({"paths": paths, "weights": [
            {"name": w, "shape": list(arrays[w].shape),
             "dtype": bundles.tfjs_dtype(arrays[w])} for w in group]})
    lay_out_reference(serve, "ref-" + name, manifest, files)


def reference_models(serve, tmp):
    """Golden expected outputs and generated hazard layouts, as served."""
    models = []
    for case in sorted(os.listdir(GOLDEN_DIR)):
        expected = os.path.join(GOLDEN_DIR, case, "expected")
        if not os.path.isdir(expected):
            continue
        files = {}
        for f in os.listdir(expected):
            if f.endswith(".bin"):
                with open(os.path.join(expected, f), "rb") as fh:
                    files[f] = fh.read()
        with open(os.path.join(expected, "weights_manifest.json")) as fh:
            manifest = json.load(fh)
        name = "ref-golden-" + case
        lay_out_reference(serve, name, manifest, files)
        quant = {w["name"]: w["quantization"]["dtype"] for g in manifest
                 for w in g["weights"] if "quantization" in w}
        arrays = dict(np.load(os.path.join(GOLDEN_DIR, case, "bundle.npz")))
        models.append(Model(name, arrays, quant, ["1/"]))
    for name, groups, shard_size in HAZARD_LAYOUTS:
        arrays = bundles.write_hazard(os.path.join(tmp, "ref-" + name + ".npz"), groups)
        reference_hazard_layout(serve, name, arrays,
                                [[w for w, _ in g] for g in groups], shard_size)
        models.append(Model("ref-" + name, arrays, {}, ["1/"]))
    arrays = bundles.write_hazard_strings(os.path.join(tmp, "ref-hz-strings.npz"))
    reference_hazard_layout(serve, "hz-strings", arrays,
                            [["a/i"], ["b/f", "b/s", "b/g"]], None)
    models.append(Model("ref-hz-strings", arrays, {}, ["1/"]))
    return models


# --------------------------------------------------------------------- jobs


def jobs_for(model, base):
    """[(job id, job)] loading `model` every way tfjs can."""
    jobs = []
    for folder in model.folders:
        url = base + model.name + "/" + folder
        label = model.name + "/" + (folder or "(pointer)/")
        jobs.append((label + " http", {"mode": "http", "url": url + VIRTUAL_MODEL_JSON}))
        if model.model_json and folder != "current/":
            jobs.append((label + "model.json via http",
                         {"mode": "http", "url": url + "model.json"}))
        if not model.has_strings:  # loadWeights cannot size string weights
            jobs.append((label + " loadWeights", {
                "mode": "loadWeights", "manifest": url + "weights_manifest.json",
                "prefix": url}))
    return jobs


def run_node(jobs, tmp):
    job_file = os.path.join(tmp, "jobs.json")
    with open(job_file, "w") as f:
        json.dump([dict(job, id=job_id) for job_id, job in jobs], f)
    proc = subprocess.run(["node", os.path.join(TFJS_DIR, "load.mjs"), job_file],
                          cwd=TFJS_DIR, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError("node load.mjs failed: " + proc.stderr[-2000:])
    return json.loads(proc.stdout)


# --------------------------------------------------------------- comparison


def f32_mismatches(expected, got):
    """Indices where float32 arrays differ bitwise (any NaN equals any NaN)."""
    same = (expected.view(np.uint32) == got.view(np.uint32)) | (
        np.isnan(expected) & np.isnan(got))
    return np.flatnonzero(~same)


def describe(name, idx, expected, got):
    i = idx[:3]
    return "%s: %d values differ, first at flat index %s: expected %s got %s" % (
        name, len(idx), list(map(int, i)), expected[i].tolist(), got[i].tolist())


def check_quantized_affine(name, x, got, quant):
    qmax = QMAX[quant["dtype"]]
    mn, mx = float(x.min()), float(x.max())
    if mn == mx:
        bad = np.flatnonzero(got.astype(np.float64) != x)
        return [describe(name, bad, x, got)] if bad.size else []
    scale = float(quant["scale"])
    if abs(scale - (mx - mn) / qmax) > 1e-12 * scale:
        return ["%s: manifest scale %r, expected (max-min)/%d = %r" % (
            name, scale, qmax, (mx - mn) / qmax)]
    slop = scale * 0.51 + 8 * np.finfo(np.float32).eps * max(abs(mn), abs(mx))
    bad = np.flatnonzero(np.abs(got.astype(np.float64) - x) > slop)
    return [describe(name, bad, x, got) + " (tolerance %g)" % slop] if bad.size else []


def check_weight(model, name, entry, got):
    arr = model.arrays[name]
    qdtype = model.quantized.get(name)
    want_dtype = "float32" if qdtype else bundles.tfjs_dtype(arr)
    problems = []
    if got["dtype"] != want_dtype or got["shape"] != list(arr.shape):
        return ["%s: decoded %s %s, expected %s %s" % (
            name, got["dtype"], got["shape"], want_dtype, list(arr.shape))]
    manifest_q = (entry or {}).get("quantization", {}).get("dtype")
    if manifest_q != qdtype:
        return ["%s: manifest quantization %s, expected %s" % (name, manifest_q, qdtype)]
    want = bundles.tfjs_values(arr)
    if want_dtype == "string":
        want_hex = [b.hex() for b in want]
        if got["strings"] != want_hex:
            problems.append("%s: strings %s, expected %s" % (
                name, got["strings"][:4], want_hex[:4]))
        return problems
    raw = bytes.fromhex(got["hex"])
    if want_dtype in ("float32", "complex64"):
        values = np.frombuffer(raw, "<f4")
        want = want.astype(np.complex64).view(np.float32) if want_dtype == "complex64" \
            else want
        if qdtype in ("uint8", "uint16"):
            return check_quantized_affine(name, want.astype(np.float64), values,
                                          entry["quantization"])
        if qdtype == "float16":
            want = want.astype(np.float16).astype(np.float32)
        bad = f32_mismatches(want, values) if want.size == values.size else [0]
    else:
        values = np.frombuffer(raw, "<i4" if want_dtype == "int32" else np.uint8)
        bad = np.flatnonzero(want != values) if want.size == values.size else [0]
    if len(bad):
        if want.size != values.size:
            return ["%s: %d values decoded, expected %d" % (name, values.size, want.size)]
        problems.append(describe(name, np.asarray(bad), want, values))
    return problems


def manifest_entries(serve, model):
    folder = os.path.join(serve, model.name, model.folders[0])
    with open(os.path.join(folder, "weights_manifest.json")) as f:
        manifest = json.load(f)
    return {w["name"]: w for g in manifest for w in g["weights"]}


def check_result(model, entries, result):
    """[(weight name or None, problem)] for one load of `model`."""
    if not result["ok"]:
        return [(None, "tfjs failed to load: " + result["error"][:1500])]
    got = result["weights"]
    problems = []
    if set(got) != set(model.arrays):
        problems.append((None, "weights decoded %s, expected %s" % (
            sorted(got), sorted(model.arrays))))
    for name in model.arrays:
        if name in got:
            problems += [(name, p) for p in
                         check_weight(model, name, entries.get(name), got[name])]
    return problems


# ------------------------------------------------------------------- checks


def reference_hazard_check(serve, model, http_problems):
    """On a reference layout, tf.io.http must misdecode exactly the weights
    the CompositeArrayBuffer model predicts (none for a safe layout), and the
    model must predict no tf.io.loadWeights failure."""
    folder = os.path.join(serve, model.name, "1")
    with open(os.path.join(folder, "weights_manifest.json")) as f:
        manifest = json.load(f)
    predicted = hazard_victims(manifest, folder, per_group=False)
    general = [p for w, p in http_problems if w is None]
    observed = sorted({w for w, _ in http_problems if w is not None})
    msg = general[:]
    if observed != sorted(predicted):
        msg.append("tf.io.http misdecoded %s; the CompositeArrayBuffer model predicts %s"
                   % (observed or "nothing", sorted(predicted) or "nothing"))
        msg += [p for _, p in http_problems][:3]
    if hazard_victims(manifest, folder, per_group=True):
        msg.append("model predicts a tf.io.loadWeights failure on a reference layout")
    verdict = "misdecodes %s" % sorted(predicted) if predicted else "decodes correctly"
    return ("tf.io.http %s on reference layout %s" % (verdict, model.name), msg), predicted


def published_hazard_check(serve, model):
    """weightdrop's layout must not trip the uniform-shard shortcut at all."""
    folder = os.path.join(serve, model.name, model.folders[1])
    with open(os.path.join(folder, "weights_manifest.json")) as f:
        manifest = json.load(f)
    victims = (hazard_victims(manifest, folder, per_group=False) +
               hazard_victims(manifest, folder, per_group=True))
    return ("no uniform-shard hazard in weightdrop's layout of " + model.name,
            ["tfjs-core 4.22 would decode as zeros: %s" % victims] if victims else [])


def check_model_json(serve, model):
    problems = []
    for rel in ["model.json", os.path.join(model.folders[1], "model.json")]:
        try:
            with open(os.path.join(serve, model.name, rel)) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            problems.append("%s: %s" % (rel, e))
            continue
        if doc.get("modelTopology") != {"node": []} or doc.get("generatedBy") != "bundles.py":
            problems.append("%s: topology / other keys of the bundle's model.json lost" % rel)
    return problems


def ensure_node_modules():
    if not os.path.isdir(os.path.join(TFJS_DIR, "node_modules", "@tensorflow",
                                      "tfjs-converter")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=TFJS_DIR, check=True)


def load_and_check(serve, base, tmp, published, refs):
    jobs = {m.name: jobs_for(m, base) for m in published + refs}
    results = run_node([j for js in jobs.values() for j in js], tmp)
    checks, demonstrated = [], []
    for model in published + refs:
        entries = manifest_entries(serve, model)
        http_problems = []
        for job_id, job in jobs[model.name]:
            problems = check_result(model, entries, results[job_id])
            if model in refs and job["mode"] == "http":
                http_problems += problems  # judged against the hazard model below
            else:
                checks.append((job_id, [p for _, p in problems]))
        if model in refs:
            check, predicted = reference_hazard_check(serve, model, http_problems)
            checks.append(check)
            demonstrated += [model.name] if predicted else []
        else:
            checks.append(published_hazard_check(serve, model))
        if model.model_json:
            checks.append((model.name + " model.json files", check_model_json(serve, model)))
    checks.append(("hazard premise: tfjs-core 4.22 misdecodes some reference layouts "
                   "(%s)" % ", ".join(demonstrated), [] if demonstrated else [
                       "no reference layout was misdecoded: the hazard premise is wrong "
                       "(tfjs-core changed?), so the weightdrop hazard checks prove nothing"]))
    return checks


# ------------------------------------------------------- graph models, run
# A graph model whose signature lists inputs (zeta, alpha) and outputs
# (z_out, m_out, a_out) in an order that is not sorted: tfjs takes the order
# of execute()'s positional inputs and outputs from those keys, so a
# model.json whose keys were re-sorted would swap them.

def graph_topology(stale_manifest):
    shape = {"dim": [{"size": "2"}]}
    placeholder = {"dtype": {"type": "DT_FLOAT"}, "shape": {"shape": shape}}
    t = {"T": {"type": "DT_FLOAT"}}
    spec = {"dtype": "DT_FLOAT", "tensorShape": shape}
    nodes = [
        {"name": "zeta", "op": "Placeholder", "attr": placeholder},
        {"name": "alpha", "op": "Placeholder", "attr": placeholder},
        {"name": "w", "op": "Const", "attr": {"dtype": {"type": "DT_FLOAT"}, "value": {
            "tensor": {"dtype": "DT_FLOAT", "tensorShape": shape}}}},
        {"name": "z_out", "op": "AddV2", "input": ["zeta", "w"], "attr": t},
        {"name": "m_out", "op": "Sub", "input": ["zeta", "alpha"], "attr": t},
        {"name": "a_out", "op": "Mul", "input": ["alpha", "w"], "attr": t},
    ]
    doc = [("signature", {"inputs": {"zeta:0": dict(name="zeta:0", **spec),
                                     "alpha:0": dict(name="alpha:0", **spec)},
                          "outputs": {"z_out:0": dict(name="z_out:0", **spec),
                                      "m_out:0": dict(name="m_out:0", **spec),
                                      "a_out:0": dict(name="a_out:0", **spec)}}),
           ("format", "graph-model")]
    if stale_manifest:
        doc.append(("weightsManifest", [{"paths": ["old.bin"], "weights": []}]))
    doc += [("modelTopology", {"versions": {"producer": 1}, "node": nodes, "library": {}}),
            ("generatedBy", "tfjs_test.py"), ("convertedBy", None)]
    # Indented, keys in the order above (Python dicts keep insertion order).
    return json.dumps(dict(doc), indent=1) + "\n"


def spliced(original, manifest_text):
    """What weightdrop must publish: `original` with the top-level
    weightsManifest value replaced, or appended after the last member."""
    doc = json.loads(original)
    if "weightsManifest" in doc:
        stale = json.dumps(doc["weightsManifest"], indent=1).replace("\n", "\n ")
        assert original.count(stale) == 1, "test topology: cannot find the stale manifest"
        return original.replace(stale, manifest_text)
    end = original.rstrip().rfind("}")
    last = len(original[:end].rstrip())
    return original[:last] + ', "weightsManifest": ' + manifest_text + original[last:]


def graph_bundle(tmp, name, w, stale_manifest=False):
    folder = os.path.join(tmp, "bundles", name)
    os.makedirs(folder)
    np.save(os.path.join(folder, "w.npy"), np.asarray(w, np.float32))
    with open(os.path.join(folder, "model.json"), "w") as f:
        f.write(graph_topology(stale_manifest))
    return folder


def read_text(path):
    with open(path) as f:
        return f.read()


def graph_json_checks(serve, model, bundle, version):
    """The published model.json files are the bundle's, byte for byte, but
    for weightsManifest (version-qualified at the top level)."""
    original = read_text(os.path.join(bundle, "model.json"))
    problems = []
    for rel_json, rel_manifest in ((os.path.join(version, "model.json"),
                                    os.path.join(version, "weights_manifest.json")),
                                   ("model.json", "weights_manifest.json")):
        got = read_text(os.path.join(serve, model, rel_json))
        want = spliced(original, read_text(os.path.join(serve, model, rel_manifest)))
        if got != want:
            problems.append("%s/%s is not the bundle's model.json with only weightsManifest "
                            "replaced" % (model, rel_json))
    return problems


def run_graph_node(jobs, tmp):
    job_file = os.path.join(tmp, "graph_jobs.json")
    with open(job_file, "w") as f:
        json.dump(jobs, f)
    proc = subprocess.run(["node", os.path.join(TFJS_DIR, "graph.mjs"), job_file],
                          cwd=TFJS_DIR, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError("graph.mjs failed: " + proc.stderr[-2000:])
    return json.loads(proc.stdout)


ZETA, ALPHA = [1.0, 2.0], [10.0, 20.0]


def positional_problems(result, w):
    if not result["ok"]:
        return [result["error"][:500]]
    zeta, alpha, w = np.float32(ZETA), np.float32(ALPHA), np.float32(w)
    want = [(zeta + w).tolist(), (zeta - alpha).tolist(), (alpha * w).tolist()]
    problems = []
    if result["outputs"] != want:
        problems.append("execute([zeta, alpha]) gave %s, expected [z_out, m_out, a_out] = %s "
                        "(inputNodes %s, outputNodes %s)" % (
                            result["outputs"], want, result["inputNodes"],
                            result["outputNodes"]))
    return problems


def graph_model_checks(binary, tmp, serve, base):
    """Publishes graph models, runs them positionally with tf.loadGraphModel,
    rolls one back and runs it again, and checks model.json byte for byte."""
    checks = []
    fresh = graph_bundle(tmp, "graph_fresh", [3, 5])
    stale = graph_bundle(tmp, "graph_stale", [7, 11], stale_manifest=True)
    newer = graph_bundle(tmp, "graph_newer", [13, 17])
    v_fresh = publish(binary, fresh, serve, "graph", [])
    publish(binary, stale, serve, "graph_stale", [])
    v_newer = publish(binary, newer, serve, "graph", [])
    checks.append(("graph model.json (no weightsManifest) kept byte for byte",
                   graph_json_checks(serve, "graph", newer, v_newer)))
    checks.append(("graph model.json (stale weightsManifest) kept byte for byte",
                   graph_json_checks(serve, "graph_stale", stale, "1")))
    jobs = [{"id": "newer", "url": base + "graph/model.json", "inputs": [ZETA, ALPHA]},
            {"id": "stale", "url": base + "graph_stale/model.json", "inputs": [ZETA, ALPHA]}]
    results = run_graph_node(jobs, tmp)
    checks.append(("tf.loadGraphModel runs the published graph positionally",
                   positional_problems(results["newer"], [13, 17])))
    checks.append(("tf.loadGraphModel runs a graph whose weightsManifest was replaced",
                   positional_problems(results["stale"], [7, 11])))
    rb = subprocess.run([binary, "rollback", os.path.join(serve, "graph"), "--to", v_fresh],
                        capture_output=True, text=True, timeout=60)
    problems = [] if rb.returncode == 0 else ["rollback failed: " + rb.stderr]
    problems += graph_json_checks(serve, "graph", fresh, v_fresh)
    vf = subprocess.run([binary, "verify", os.path.join(serve, "graph"), "--against", fresh],
                        capture_output=True, text=True, timeout=60)
    if vf.returncode != 0:
        problems.append("verify --against after rollback: " + (vf.stdout + vf.stderr)[-500:])
    result = run_graph_node([{"id": "rolled", "url": base + "graph/model.json",
                              "inputs": [ZETA, ALPHA]}], tmp)["rolled"]
    problems += positional_problems(result, [3, 5])
    checks.append(("after rollback, model.json is byte for byte and runs positionally",
                   problems))
    return checks


def run(binary):
    ensure_node_modules()
    tmp = tempfile.mkdtemp(prefix="wd_tfjs_")
    serve = os.path.join(tmp, "serve")
    os.makedirs(os.path.join(tmp, "bundles"))
    os.makedirs(serve)
    server, base = start_server(serve)
    try:
        published, checks = publish_all(binary, tmp, serve)
        refs = reference_models(serve, tmp)
        checks += load_and_check(serve, base, tmp, published, refs)
        checks += graph_model_checks(binary, tmp, serve, base)
    finally:
        server.shutdown()
        server.server_close()
    return report(checks, tmp)


def report(checks, tmp):
    failed = [(n, p) for n, p in checks if p]
    for name, problems in checks:
        print(("FAIL " if problems else "ok   ") + name)
        for p in problems[:5]:
            print("       " + p)
    print("%d passed, %d failed" % (len(checks) - len(failed), len(failed)))
    if failed:
        print("(serve root kept for inspection: %s)" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=os.path.join(REPO, "build", "weightdrop"))
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        print("weightdrop binary not found or not executable: " + args.binary)
        print("0 passed, 1 failed")
        return 1
    return run(os.path.abspath(args.binary))


if __name__ == "__main__":
    sys.exit(main())
