#!/usr/bin/python3
"""End-to-end test in a real browser: Debian's headless Chromium loads what
weightdrop publishes, through nginx, with the browser build of
@tensorflow/tfjs 4.22, and every decoded value equals NumPy's.

Bundles (tests/integration/bundles.py, and folder bundles with a graph or a
layers model.json written here) are published with the real binary into a
temporary serve root, which nginx serves with the shipped docs/nginx.conf
(scripts/nginx.sh). page.html and tf.min.js come from a second loopback
origin (a Python server in this process), so each model fetch is a CORS
request, as on a user's page. tests/browser/run.mjs drives the page with
puppeteer-core; page.mjs loads each model with tf.loadGraphModel (weights and
predict), tf.loadLayersModel, tf.io.loadWeights and tf.io.decodeWeights,
from the pointer and from the version folder, and dumps every tensor as
bytes. Expected values are NumPy's: unquantized per docs/formats.md (Dtypes),
float16 as NumPy's astype(float16), uint8/uint16 as tfjs dequantizes the
reference quantizer's bytes (q * scale + min, rounded to float32), bit for
bit; model outputs within float32 rounding of a NumPy forward pass over the
expected weights. A reference-writer layout that trips tfjs-core's
uniform-shard hazard shows that the browser really misdecodes it, and that
weightdrop's cut of the same bundle does not.

On failure the page's screenshot and console log (and the jobs, results and
nginx logs) are copied to --artifacts DIR. Exits 77 (skipped) when Chromium,
nginx or node is not installed.

Usage: /usr/bin/python3 tests/integration/browser_test.py --binary build/weightdrop
           [--artifacts DIR]
"""

import argparse
import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "data"))
import bundles  # noqa: E402
import tfjs_test  # noqa: E402
from daemon_util import load_json, process_gone, write_file  # noqa: E402
from make_quant_vectors import reference_affine  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
BROWSER_DIR = os.path.join(REPO, "tests", "browser")
NGINX_SH = os.path.join(REPO, "scripts", "nginx.sh")
CHROMIUM = "/usr/bin/chromium"
TF_MIN_JS = "node_modules/@tensorflow/tfjs/dist/tf.min.js"
SKIP = 77
NODE_TIMEOUT = 300  # seconds for the whole page run; it takes about 2 here
QDTYPES = {"uint8": np.uint8, "uint16": np.uint16}
QUANT_MODES = [("", []), ("-uint8", ["--quantize-rest", "uint8"]),
               ("-uint16", ["--quantize-rest", "uint16"]),
               ("-float16", ["--quantize-rest", "float16"])]


class Case:
    """One served model, how the page loads it and what it must decode."""

    def __init__(self, model, arrays, quantized, jobs, forward=None, victims=()):
        self.model = model          # folder name under the serve root
        self.arrays = arrays        # {weight: source np.ndarray}
        self.quantized = quantized  # {weight: "uint8" | "uint16" | "float16"}
        self.jobs = jobs            # [(job id, job)] for page.mjs
        # forward(expected weights) -> [(output, float32 array, tolerance)],
        # for jobs that run the model.
        self.forward = forward
        self.victims = set(victims)  # weights tfjs must misdecode (reference layouts)


# ------------------------------------------------------------ model topologies


def dims(shape):
    return {"dim": [{"size": str(d)} for d in shape]}


def graph_node(name, op, inputs=(), **attr):
    node = {"name": name, "op": op, "attr": attr}
    if inputs:
        node["input"] = list(inputs)
    return node


def const_node(name, arr):
    dt = {"float32": "DT_FLOAT", "int32": "DT_INT32"}[bundles.tfjs_dtype(arr)]
    return graph_node(name, "Const", dtype={"type": dt},
                      value={"tensor": {"dtype": dt, "tensorShape": dims(arr.shape)}})


def graph_model_json(x_shape, nodes, outputs):
    """A graph-model model.json: placeholder x, `nodes`, signature outputs in
    the given order (tfjs takes predict()'s output order from it)."""
    f = {"type": "DT_FLOAT"}
    spec = lambda name: {"name": name + ":0", "dtype": "DT_FLOAT"}  # noqa: E731
    x = graph_node("x", "Placeholder", dtype=f, shape={"shape": dims(x_shape)})
    doc = {"format": "graph-model", "generatedBy": "browser_test.py",
           "convertedBy": "TensorFlow.js Converter v4.22.0",
           "signature": {"inputs": {"x:0": spec("x")},
                         "outputs": {o + ":0": spec(o) for o in outputs}},
           "modelTopology": {"node": [x] + nodes, "library": {},
                             "versions": {"producer": 1}}}
    return json.dumps(doc, indent=1)


MLP_IN, MLP_HIDDEN, MLP_OUT, MLP_BATCH = 64, 96, 10, 3


def mlp_arrays(with_step):
    """Dense weights of a 64-96-10 MLP (bias2 as float64: published as
    float32), plus an int32 scalar the graph does not use."""
    rng = np.random.default_rng(20240522)
    arrays = {
        "dense1/kernel": (rng.standard_normal((MLP_IN, MLP_HIDDEN)) * 0.2).astype(np.float32),
        "dense1/bias": (rng.standard_normal(MLP_HIDDEN) * 0.1).astype(np.float32),
        "dense2/kernel": (rng.standard_normal((MLP_HIDDEN, MLP_OUT)) * 0.3).astype(np.float32),
        "dense2/bias": rng.uniform(-1, 1, MLP_OUT),
    }
    if with_step:
        arrays["step"] = np.array(4321, np.int32)
    return arrays


def mlp_input():
    return np.random.default_rng(5).uniform(-2, 2, (MLP_BATCH, MLP_IN)).astype(np.float32)


def mlp_graph_json(arrays):
    f = {"type": "DT_FLOAT"}
    nodes = [const_node(n, a) for n, a in arrays.items() if n.startswith("dense")]
    for layer, source in (("dense1", "x"), ("dense2", "dense1/Relu")):
        nodes += [graph_node(layer + "/MatMul", "MatMul", [source, layer + "/kernel"], T=f,
                             transpose_a={"b": False}, transpose_b={"b": False}),
                  graph_node(layer + "/BiasAdd", "BiasAdd",
                             [layer + "/MatMul", layer + "/bias"], T=f)]
    nodes += [graph_node("dense1/Relu", "Relu", ["dense1/BiasAdd"], T=f),
              graph_node("logits", "Identity", ["dense2/BiasAdd"], T=f)]
    return graph_model_json([-1, MLP_IN], nodes, ["logits"])


def mlp_layers_json():
    """A Keras Sequential model as tfjs-converter writes it (layers-model)."""
    def dense(name, units, activation):
        zeros = {"class_name": "Zeros", "config": {}}
        return {"class_name": "Dense", "config": {
            "name": name, "trainable": True, "dtype": "float32", "units": units,
            "activation": activation, "use_bias": True, "kernel_initializer": zeros,
            "bias_initializer": zeros, "kernel_regularizer": None, "bias_regularizer": None,
            "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}}
    layers = [{"class_name": "InputLayer", "config": {
        "batch_input_shape": [None, MLP_IN], "dtype": "float32", "sparse": False,
        "ragged": False, "name": "x"}},
        dense("dense1", MLP_HIDDEN, "relu"), dense("dense2", MLP_OUT, "linear")]
    doc = {"format": "layers-model", "generatedBy": "keras v2.15.0",
           "convertedBy": "TensorFlow.js Converter v4.22.0",
           "modelTopology": {"keras_version": "2.15.0", "backend": "tensorflow",
                             "model_config": {"class_name": "Sequential",
                                              "config": {"name": "mlp", "layers": layers}}}}
    return json.dumps(doc, indent=1)


def matmul32(a, b):
    """A float32 matmul as tfjs's cpu backend does it for small inner sizes:
    products summed in float64, rounded to float32 once."""
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)


def mlp_forward(w):
    x = mlp_input()
    h = np.maximum(matmul32(x, w["dense1/kernel"]) + w["dense1/bias"], np.float32(0))
    logits = matmul32(h, w["dense2/kernel"]) + w["dense2/bias"]
    # Summation order may differ from tfjs's: allow some float32 roundings of
    # the largest output (tfjs is within 1 ulp here; a uint8 weight step
    # moves an output by ~1000 times this).
    tol = 1e-6 * float(np.abs(logits).max() + 1)
    return [("logits", logits, tol)]


SCALE_X = np.array([2.0], np.float32)  # exact: x * w is w doubled, bit for bit


def scaled_graph_json(arrays):
    """out_<w> = x * w for every weight (int32 ones cast to float first):
    each output is exact, so a weight decoded wrong shows in predict()."""
    f, outputs, nodes = {"type": "DT_FLOAT"}, [], []
    for name, arr in arrays.items():
        nodes.append(const_node(name, arr))
        source = name
        if bundles.tfjs_dtype(arr) == "int32":
            source = name + "/cast"
            nodes.append(graph_node(source, "Cast", [name], SrcT={"type": "DT_INT32"},
                                    DstT=f, Truncate={"b": False}))
        outputs.append(name + "/out")
        nodes.append(graph_node(outputs[-1], "Mul", [source, "x"], T=f))
    return graph_model_json([1], nodes, outputs)


def scaled_forward(w):
    return [(name + "/out", (values.astype(np.float32) * SCALE_X[0]).astype(np.float32), 0.0)
            for name, values in w.items()]


# -------------------------------------------------------------------- bundles


def folder_bundle(path, arrays, model_json):
    for name, arr in arrays.items():
        file_path = os.path.join(path, *name.split("/")) + ".npy"
        os.makedirs(os.path.dirname(file_path), exist_ok=True)
        np.save(file_path, arr)
    write_file(os.path.join(path, "model.json"), model_json)
    return path


def quantized_map(arrays, qdtype):
    """Every float weight under --quantize-rest qdtype."""
    return {n: qdtype for n, a in arrays.items() if qdtype and a.dtype.kind == "f"}


def url_jobs(base, model, version, modes, inputs=None):
    """[(job id, job)]: each mode from the pointer and from the version."""
    jobs = []
    for folder in ("", version + "/"):
        url = base + model + "/" + folder
        label = model + "/" + (folder or "(pointer)/")
        for mode in modes:
            if mode in ("graph", "layers"):
                job = {"mode": mode, "url": url + "model.json", "inputs": inputs}
            else:
                job = {"mode": mode, "manifest": url + "weights_manifest.json",
                       "prefix": url}
            jobs.append((label + " " + mode, job))
    return jobs


def as_input(x):
    return [{"shape": list(x.shape), "values": x.reshape(-1).tolist()}]


def publish_cases(binary, tmp, serve, base):
    """Publishes every bundle; returns ([Case], [(check, problems)])."""
    cases, checks = [], []
    at = functools.partial(os.path.join, tmp, "bundles")
    mlp_graph = mlp_arrays(with_step=True)
    mlp_layers = mlp_arrays(with_step=False)
    folder_bundle(at("mlp_graph"), mlp_graph, mlp_graph_json(mlp_graph))
    folder_bundle(at("mlp_layers"), mlp_layers, mlp_layers_json())
    x = as_input(mlp_input())

    def publish(model, bundle, args, arrays, quantized, modes, **case):
        try:
            version = tfjs_test.publish(binary, bundle, serve, model, args)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            checks.append(("publish " + model, [str(e)]))
            return None
        cases.append(Case(model, arrays, quantized, url_jobs(
            base, model, version, modes, case.pop("inputs", None)), **case))
        return version

    for suffix, args in QUANT_MODES:
        q = suffix[1:]
        publish("graph" + suffix, at("mlp_graph"), ["--shard-size", "4000"] + args,
                mlp_graph, quantized_map(mlp_graph, q), ["graph", "loadWeights"],
                inputs=x, forward=mlp_forward)
        publish("layers" + suffix, at("mlp_layers"), ["--shard-size", "3000"] + args,
                mlp_layers, quantized_map(mlp_layers, q), ["layers"], inputs=x,
                forward=mlp_forward)
    numeric = bundles.write_numeric(at("numeric.npz"))
    publish("numeric", at("numeric.npz"), ["--shard-size", "100"], numeric, {},
            ["loadWeights", "decodeWeights"])
    quant = bundles.write_quantize(at("quant.npz"))
    publish("quant", at("quant.npz"), bundles.QUANTIZE_FLAGS, quant, bundles.QUANTIZED,
            ["loadWeights", "decodeWeights"])
    strings = bundles.write_strings_mixed(at("strings.npz"))
    publish("strings", at("strings.npz"), ["--shard-size", "7"], strings, {},
            ["decodeWeights"])  # tf.io.loadWeights cannot size string weights
    checks += hazard_cases(tmp, serve, base, publish, cases)
    return cases, checks


# ------------------------------------------------------------------- hazard


def hazard_cases(tmp, serve, base, publish, cases):
    """tfjs_test's hazard layouts published by weightdrop (weights only; the
    76-76-900 one also as a graph model), and the reference writer's layout
    of that graph model, which the browser must misdecode as predicted.
    Returns the checks that weightdrop's layouts are not hazardous."""
    checks = []
    for name, groups, shard_size in tfjs_test.HAZARD_LAYOUTS:
        bundle = os.path.join(tmp, "bundles", name + ".npz")
        arrays = bundles.write_hazard(bundle, groups)
        config = tfjs_test.write_config(tmp, name, tfjs_test.hazard_config(groups, shard_size))
        if publish(name, bundle, ["--config", config], arrays, {},
                   ["loadWeights", "decodeWeights"]):
            checks.append(hazard_layout_check(serve, name))
    _, groups, _ = tfjs_test.HAZARD_LAYOUTS[1]  # 76, 76, then 900 bytes
    arrays = bundles.write_hazard(os.path.join(tmp, "hz_graph.npz"), groups)
    bundle = folder_bundle(os.path.join(tmp, "bundles", "hz_graph"), arrays,
                           scaled_graph_json(arrays))
    config = tfjs_test.write_config(tmp, "hz-graph", tfjs_test.hazard_config(groups, None))
    modes = ["graph", "loadWeights", "decodeWeights"]
    x = as_input(SCALE_X)
    if publish("hz-graph", bundle, ["--config", config], arrays, {}, modes, inputs=x,
               forward=scaled_forward):
        checks.append(hazard_layout_check(serve, "hz-graph"))
    ref = reference_graph_layout(serve, "hz-graph", arrays, [[w for w, _ in g] for g in groups])
    folder = os.path.join(serve, ref, "1")
    victims = tfjs_test.hazard_victims(load_json(os.path.join(folder, "weights_manifest.json")),
                                       folder, per_group=False)
    jobs = [j for j in url_jobs(base, ref, "1", modes, x) if "(pointer)" not in j[0]]
    cases.append(Case(ref, arrays, {}, jobs, scaled_forward, victims))
    if not victims:
        checks.append(("hazard premise: the reference layout of hz-graph is hazardous",
                       ["the CompositeArrayBuffer model predicts no misdecoded weight"]))
    return checks


def reference_graph_layout(serve, name, arrays, groups):
    """The reference writer's cut of `arrays` as model ref-<name>, version 1,
    with the scaled graph model.json over its manifest."""
    tfjs_test.reference_hazard_layout(serve, name, arrays, groups, None)
    folder = os.path.join(serve, "ref-" + name, "1")
    doc = json.loads(scaled_graph_json(arrays))
    doc["weightsManifest"] = load_json(os.path.join(folder, "weights_manifest.json"))
    write_file(os.path.join(folder, "model.json"), json.dumps(doc))
    return "ref-" + name


def hazard_layout_check(serve, model):
    version = os.path.basename(os.path.realpath(os.path.join(serve, model, "current")))
    return tfjs_test.published_hazard_check(
        serve, tfjs_test.Model(model, {}, {}, ["", version + "/"]))


# ---------------------------------------------------------------- expected


def expected_values(name, arr, qdtype, entry):
    """(tfjs dtype, flat expected values, problems) for one weight: what
    tfjs must decode, from the source array and the quantization."""
    manifest_q = (entry or {}).get("quantization", {}).get("dtype")
    if manifest_q != qdtype:
        return None, None, ["%s: manifest quantization %s, expected %s" % (
            name, manifest_q, qdtype)]
    values = bundles.tfjs_values(arr)
    if qdtype == "float16":
        return "float32", values.astype(np.float16).astype(np.float32), []
    if qdtype in QDTYPES:
        q, mn, scale, wide = reference_affine(values, QDTYPES[qdtype])
        quant = entry["quantization"]
        if wide or (float(mn), float(scale)) != (quant["min"], quant["scale"]):
            return None, None, ["%s: manifest min %r scale %r, the reference quantizer's "
                                "%r %r" % (name, quant["min"], quant["scale"], mn, scale)]
        # tfjs's decodeWeights: q * scale + min in float64, into a Float32Array.
        return "float32", (q.astype(np.float64) * float(scale) + float(mn)).astype(
            np.float32), []
    return bundles.tfjs_dtype(arr), values, []


def mismatches(dtype, want, got, tolerance=0.0):
    """(indices that differ, decoded values) for a dump of `want`'s dtype.
    Floats compare bit for bit (any NaN equals any NaN) or within
    `tolerance`; complex64 as its float32 pairs."""
    if dtype == "string":
        got_bytes = [bytes.fromhex(h) for h in got["strings"]]
        return [i for i, (a, b) in enumerate(zip(want, got_bytes)) if a != b], got_bytes
    raw = bytes.fromhex(got["hex"])
    if dtype in ("float32", "complex64"):
        values = np.frombuffer(raw, "<f4")
        want = want.view(np.float32) if dtype == "complex64" else want
        if tolerance:
            return np.flatnonzero(~(np.abs(values.astype(np.float64) - want) <= tolerance)), values
        return tfjs_test.f32_mismatches(want, values), values
    values = np.frombuffer(raw, "<i4" if dtype == "int32" else np.uint8)
    return np.flatnonzero(want != values), values


def compare(label, dtype, shape, want, got, tolerance=0.0):
    """Problems of one decoded tensor against the expected flat values."""
    if got["dtype"] != dtype or got["shape"] != list(shape):
        return ["%s: decoded %s %s, expected %s %s" % (
            label, got["dtype"], got["shape"], dtype, list(shape))]
    n_got = len(got["strings"]) if dtype == "string" else len(got["hex"]) // 2 // (
        {"int32": 4, "float32": 4, "complex64": 8, "bool": 1}[dtype])
    if n_got != len(want):
        return ["%s: %d values decoded, expected %d" % (label, n_got, len(want))]
    bad, values = mismatches(dtype, want, got, tolerance)
    if len(bad) == 0:
        return []
    i = list(bad[:3])
    if dtype == "string":
        shown = ([want[k] for k in i], [values[k] for k in i])
    else:
        flat = want.view(np.float32) if dtype == "complex64" else want
        shown = (flat[i].tolist(), values[i].tolist())
    return ["%s: %d of %d values differ, first at flat index %s: expected %s got %s%s" % (
        label, len(bad), len(want), i, shown[0], shown[1],
        " (tolerance %g)" % tolerance if tolerance else "")]


# ------------------------------------------------------------------ checking


def manifest_entries(serve, case):
    """{weight: manifest entry} of the current version (a reference layout:
    of version 1, which has no `current`)."""
    folder = os.path.join(serve, case.model, "current")
    if not os.path.exists(folder):
        folder = os.path.join(serve, case.model, "1")
    return {w["name"]: w for g in load_json(os.path.join(folder, "weights_manifest.json"))
            for w in g["weights"]}


def check_job(case, job, result, entries):
    """(problems, weights misdecoded, [weight values, output values]
    compared) for one page result."""
    count = [0, 0]
    if not result.get("ok"):
        return ["tfjs failed: " + result.get("error", "no result")[:1500]], set(), count
    got, problems, wrong, expected = result["weights"], [], set(), {}
    if set(got) != set(case.arrays):
        problems.append("weights decoded %s, expected %s" % (sorted(got), sorted(case.arrays)))
    for name, arr in case.arrays.items():
        dtype, want, why = expected_values(name, arr, case.quantized.get(name), entries.get(name))
        if why:
            problems += why
            continue
        expected[name] = want.reshape(arr.shape) if dtype != "string" else want
        if name not in got:
            continue
        found = compare(name, dtype, arr.shape, want, got[name])
        count[0] += len(want)
        if found:
            wrong.add(name)
            if name not in case.victims or job["mode"] == "loadWeights":
                problems += found
    if case.forward and "outputs" in result and len(expected) == len(case.arrays):
        outputs = case.forward(expected)
        if len(result["outputs"]) != len(outputs):
            problems.append("%d outputs, expected %d (%s)" % (
                len(result["outputs"]), len(outputs), [o for o, _, _ in outputs]))
        for (name, want, tol), (node, dump) in zip(outputs, result["outputs"]):
            found = compare("output %s (%s)" % (name, node), "float32", want.shape,
                            want.reshape(-1), dump, tol)
            count[1] += want.size
            weight = name[:-len("/out")]
            if found and weight in case.victims:
                wrong.add(weight)  # predict() shows the misdecoded weight
            else:
                problems += found
    return problems, wrong, count


def result_ok(results, job_id):
    return results.get(job_id, {}).get("ok", False)


def check_results(serve, cases, results):
    """[(check, problems)] and the per-job verdict for the page."""
    checks, verdict = [], {}
    for case in cases:
        entries, case_problems, count = manifest_entries(serve, case), [], [0, 0]
        for job_id, job in case.jobs:
            problems, wrong, n = check_job(case, job, results.get(job_id, {}), entries)
            count = [a + b for a, b in zip(count, n)]
            if case.victims and job["mode"] != "loadWeights" and result_ok(results, job_id) \
                    and wrong != case.victims:
                problems.append("misdecoded %s; the CompositeArrayBuffer model predicts %s" % (
                    sorted(wrong) or "nothing", sorted(case.victims)))
            verdict[job_id] = problems
            case_problems += ["%s: %s" % (job_id, p) for p in problems]
        what = "%d loads, %d weight values compared" % (len(case.jobs), count[0])
        if case.forward:
            what += " and %d predict() outputs" % count[1]
        if case.victims:
            what += "; the reference layout misdecodes %s as predicted" % sorted(case.victims)
        checks.append(("%s: %s" % (case.model, what), case_problems))
    return checks, verdict


# ------------------------------------------------------------------- servers


class PageHandler(http.server.SimpleHTTPRequestHandler):
    """Serves page.html, page.mjs and tf.min.js from tests/browser, nothing else."""

    FILES = {"/": "page.html", "/page.html": "page.html", "/page.mjs": "page.mjs",
             "/" + TF_MIN_JS: TF_MIN_JS}
    extensions_map = {".html": "text/html", ".mjs": "text/javascript",
                      ".js": "text/javascript"}

    def do_GET(self):
        if self.path not in self.FILES:
            return self.send_error(404)
        self.path = "/" + self.FILES[self.path]
        return super().do_GET()

    def log_message(self, *args):
        pass


def start_page_server():
    handler = functools.partial(PageHandler, directory=BROWSER_DIR)
    server = tfjs_test.ServeServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, "http://127.0.0.1:%d/page.html" % server.server_address[1]


def start_nginx(state_dir, serve):
    """Starts nginx (scripts/nginx.sh) on `serve`; returns its base URL."""
    proc = subprocess.run(["bash", NGINX_SH, "start", state_dir, serve],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError("scripts/nginx.sh start failed (exit %d): %s" % (
            proc.returncode, (proc.stdout + proc.stderr).strip()[-1500:]))
    with open(os.path.join(state_dir, "env")) as f:
        env = dict(line.strip().split("=", 1) for line in f if "=" in line)
    return env["NGINX_URL"].rstrip("/") + "/"


def stop_nginx(state_dir):
    proc = subprocess.run(["bash", NGINX_SH, "stop", state_dir],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        print("warning: scripts/nginx.sh stop failed: " + (proc.stdout + proc.stderr).strip())


# ---------------------------------------------------------------- the browser


class PageRun:
    """One `node run.mjs` with Chromium; stop() ends both by pid."""

    def __init__(self, page_url, jobs_file, out):
        self.out = out
        self.stderr = open(os.path.join(out, "run.stderr"), "w")
        self.proc = subprocess.Popen(
            ["node", os.path.join(BROWSER_DIR, "run.mjs"), "--page", page_url,
             "--jobs", jobs_file, "--out", out, "--timeout", str(NODE_TIMEOUT)],
            cwd=BROWSER_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, text=True, start_new_session=True)
        self.timer = threading.Timer(NODE_TIMEOUT + 30, self.stop)
        self.timer.start()

    def results(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=30)
            raise RuntimeError("run.mjs exited %s without results: %s" % (
                self.proc.returncode, self.stderr_tail()))
        return json.loads(line)

    def finish(self, verdict):
        """Shows the verdict on the page, which run.mjs then screenshots."""
        self.proc.stdin.write(json.dumps(verdict) + "\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        return self.proc.returncode

    def stderr_tail(self):
        self.stderr.flush()
        with open(self.stderr.name) as f:
            return f.read()[-2000:]

    def stop(self):
        self.timer.cancel()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # run.mjs / puppeteer close Chromium
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        pid_file = os.path.join(self.out, "chromium.pid")
        if os.path.exists(pid_file):  # run.mjs died before closing the browser
            with open(pid_file) as f:
                pid = int(f.read())
            if not process_gone(pid):
                os.killpg(pid, signal.SIGKILL)  # Chromium leads its own group
        self.stderr.close()


def ensure_node_modules():
    if os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "puppeteer-core")) and \
            os.path.isfile(os.path.join(BROWSER_DIR, TF_MIN_JS)):
        return
    env = dict(os.environ, PUPPETEER_SKIP_DOWNLOAD="1")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=BROWSER_DIR, env=env, check=True)


def missing_tools():
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(CHROMIUM + " (apt-get install chromium)")
    if subprocess.run(["bash", NGINX_SH, "available"], capture_output=True).returncode:
        missing.append("/usr/sbin/nginx (apt-get install nginx)")
    if not shutil.which("node") or not shutil.which("npm"):
        missing.append("node and npm")
    return missing


# ----------------------------------------------------------------------- run


ARTIFACTS = ("page.png", "console.log", "run.stderr", "jobs.json", "results.json",
             "verdict.json", "nginx-error.log", "nginx-access.log")


def save_artifacts(artifacts, work):
    os.makedirs(artifacts, exist_ok=True)
    for name in ARTIFACTS:
        source = os.path.join(work, name.replace("nginx-", "nginx/"))
        if os.path.exists(source):
            shutil.copy(source, os.path.join(artifacts, name))
    print("artifacts (screenshot, console log, jobs, results, nginx logs): " + artifacts)


def clear_artifacts(artifacts):
    """Removes an earlier run's artifacts (only the files this test writes)."""
    for name in ARTIFACTS:
        if os.path.exists(os.path.join(artifacts, name)):
            os.remove(os.path.join(artifacts, name))


def run(binary, artifacts):
    try:
        ensure_node_modules()
    except (OSError, subprocess.CalledProcessError) as e:
        print("FAIL npm ci in tests/browser: %s\n0 passed, 1 failed" % e)
        return 1
    tmp = tempfile.mkdtemp(prefix="wd_browser_")
    serve, work = os.path.join(tmp, "serve"), os.path.join(tmp, "work")
    for d in (serve, work, os.path.join(tmp, "bundles")):
        os.makedirs(d)
    nginx_dir, page_server, page, checks, jobs = os.path.join(work, "nginx"), None, None, [], []
    started = time.monotonic()
    try:
        base = start_nginx(nginx_dir, serve)
        cases, found = publish_cases(binary, tmp, serve, base)
        checks += found
        page_server, page_url = start_page_server()
        jobs = [dict(job, id=job_id) for case in cases for job_id, job in case.jobs]
        write_file(os.path.join(work, "jobs.json"), json.dumps(jobs, indent=1))
        page = PageRun(page_url, os.path.join(work, "jobs.json"), work)
        results = page.results()
        write_file(os.path.join(work, "results.json"), json.dumps(results))
        found, verdict = check_results(serve, cases, results)
        verdict.update(checks)  # the checks that are not one job's, on the page too
        checks += found
        write_file(os.path.join(work, "verdict.json"), json.dumps(verdict, indent=1))
        code = page.finish(verdict)
        checks.append(("the page was driven to the end (run.mjs exit 0)",
                       [] if code == 0 else ["run.mjs exit %s: %s" % (
                           code, page.stderr_tail())]))
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
        checks.append(("browser run", [str(e)]))
    finally:
        if page:
            page.stop()
        if page_server:
            page_server.shutdown()
            page_server.server_close()
        if os.path.isdir(nginx_dir):
            stop_nginx(nginx_dir)
    print("%d jobs in Chromium, publishes included: %.1f s" % (
        len(jobs), time.monotonic() - started))
    if any(problems for _, problems in checks):
        save_artifacts(artifacts, work)
    return tfjs_test.report(checks, tmp)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=os.path.join(REPO, "build", "weightdrop"))
    parser.add_argument("--artifacts", help="where a failure's screenshot and logs go "
                        "(default: browser/artifacts next to the binary)")
    args = parser.parse_args()
    if not os.access(args.binary, os.X_OK):
        print("weightdrop binary not found or not executable: " + args.binary)
        print("0 passed, 1 failed")
        return 1
    missing = missing_tools()
    if missing:
        print("SKIP browser test: not installed: " + ", ".join(missing))
        return SKIP
    binary = os.path.abspath(args.binary)
    artifacts = os.path.abspath(args.artifacts or os.path.join(
        os.path.dirname(binary), "browser", "artifacts"))
    clear_artifacts(artifacts)  # no stale screenshot from an earlier run
    print("artifacts on failure: " + artifacts)
    return run(binary, artifacts)


if __name__ == "__main__":
    sys.exit(main())
