#!/usr/bin/python3
"""End-to-end test of safetensors bundles (issue 13): files written by
tests/integration/safetensors_writer.py are published by the real binary
(`weightdrop publish`, and the daemon's watch) and loaded back by the pinned
tfjs-core (tests/tfjs/load.mjs) with every value compared bit for bit
(NaN as NaN); malformed files fail with exit code 1, an error naming the
file, the tensor and the problem, and nothing changed in the serve folder.

Independent cross-check: the writer's files are read by the Hugging Face
Hub client's safetensors parser (npm @huggingface/hub 2.17.5, pinned in
tests/tfjs/package.json, driven by tests/tfjs/safetensors_hub.mjs): headers
as written, data at the offsets it reads, and the malformed files that its
own checks cover refused. That parser reads headers only (it validates
shapes and offsets, not sizes, tiling or dtypes), so the data checks are
ours; Debian has no python3-safetensors and the npm package `safetensors`
0.0.1 is a 20-line browser helper without validation, not a reference.

Usage: /usr/bin/python3 tests/integration/safetensors_test.py --binary build/weightdrop
       [--filter SUBSTR] [--keep]
"""

import argparse
import functools
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checks  # noqa: E402
import daemon_util as U  # noqa: E402
import safetensors_writer as W  # noqa: E402
import tfjs_test as T  # noqa: E402
from checks import check  # noqa: E402
from safetensors_writer import Tensor  # noqa: E402

TFJS_DIR = T.TFJS_DIR
BINARY = None
TMP = None      # the run's temp root
SERVE = None    # the CLI checks' serve root, served over HTTP at BASE
BASE = None
SERVER = None


# ------------------------------------------------------------ expectations


def f8_e4m3_values(codes):
    """float8 E4M3FN (OCP FP8, "FN": finite, no infinities) decoded from the
    definition: sign bit, 4 exponent bits (bias 7), 3 mantissa bits; an
    exponent of 0 is subnormal (m * 2^-9); S.1111.111 is NaN; no Inf."""
    b = np.asarray(codes, np.uint8).astype(np.int64)
    s, e, m = b >> 7, (b >> 3) & 0xF, b & 7
    mag = np.where(e == 0, m * 2.0 ** -9, (8 + m) * np.exp2(e - 10.0))
    mag = np.where((b & 0x7F) == 0x7F, np.nan, mag)
    return np.where(s == 1, -mag, mag).astype(np.float32)


def f8_e5m2_values(codes):
    """float8 E5M2: the upper byte of an IEEE binary16."""
    return (np.asarray(codes, np.uint8).astype(np.uint16) << 8).view(np.float16).astype(np.float32)


def bf16_values(bits):
    """bfloat16: the upper half of an IEEE binary32."""
    a = np.asarray(bits, np.uint16)
    return (a.reshape(-1).astype(np.uint32) << 16).view(np.float32).reshape(a.shape)


def expected(t):
    """(tfjs dtype, NumPy array of the values tfjs must decode) for a Tensor."""
    a = t.array
    if t.dtype == "F64":
        with np.errstate(over="ignore"):
            return "float32", a.astype(np.float32)
    if t.dtype in ("F32", "F16"):
        return "float32", a.astype(np.float32)
    if t.dtype == "BF16":
        return "float32", bf16_values(a)
    if t.dtype == "F8_E4M3":
        return "float32", f8_e4m3_values(a)
    if t.dtype == "F8_E5M2":
        return "float32", f8_e5m2_values(a)
    if t.dtype == "BOOL":
        return "bool", (a != 0).astype(np.uint8)
    if t.dtype == "C64":
        return "complex64", a.astype(np.complex64)
    return "int32", a.astype(np.int32)


# ------------------------------------------------------------ running things


def run(*args, timeout=120):
    p = subprocess.run([BINARY] + [str(a) for a in args], capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def publish(bundle, model, *extra, serve=None):
    """Publishes `bundle` as `model`; returns the version folder's name."""
    rc, out, err = run("publish", bundle, "--to", serve or SERVE, "--model", model, *extra)
    assert rc == 0, f"publish {os.path.basename(bundle)} as {model} exited {rc}: {err.strip()}"
    return os.path.basename(out.strip().splitlines()[-1])


def path(*parts):
    return os.path.join(TMP, *parts)


def node(script, jobs, label):
    job_file = path(f"{label}-jobs.json")
    with open(job_file, "w") as f:
        json.dump(jobs, f)
    p = subprocess.run(["node", os.path.join(TFJS_DIR, script), job_file], cwd=TFJS_DIR,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"node {script} failed: {p.stderr[-2000:]}"
    return json.loads(p.stdout)


def manifest(model, serve=None, version="1"):
    with open(os.path.join(serve or SERVE, model, version, "weights_manifest.json")) as f:
        return json.load(f)


def manifest_names(model, serve=None):
    return [w["name"] for g in manifest(model, serve) for w in g["weights"]]


def publish_json(model, version="1", serve=None):
    with open(os.path.join(serve or SERVE, model, version, "publish.json")) as f:
        return json.load(f)


def compare(name, want, got, entry=None):
    """Problems with one decoded weight. want = (tfjs dtype, values[, qdtype])."""
    dtype, values = want[0], want[1]
    q = want[2] if len(want) > 2 else None
    if got["dtype"] != dtype or got["shape"] != list(values.shape):
        return [f"{name}: decoded {got['dtype']} {got['shape']}, expected {dtype} "
                f"{list(values.shape)}"]
    manifest_q = ((entry or {}).get("quantization") or {}).get("dtype")
    if entry is not None and manifest_q != q:
        return [f"{name}: manifest quantization {manifest_q}, expected {q}"]
    raw = bytes.fromhex(got["hex"])
    flat = values.reshape(-1)
    if dtype == "float32":
        decoded = np.frombuffer(raw, "<f4")
        if q in ("uint8", "uint16"):
            return T.check_quantized_affine(name, flat.astype(np.float64), decoded,
                                            entry["quantization"])
        if q == "float16":
            flat = flat.astype(np.float16).astype(np.float32)
        bad = T.f32_mismatches(flat, decoded) if decoded.size == flat.size else None
    elif dtype == "complex64":  # interleaved real, imaginary float32
        flat = flat.view(np.float32)
        decoded = np.frombuffer(raw, "<f4")
        bad = T.f32_mismatches(flat, decoded) if decoded.size == flat.size else None
    else:
        decoded = np.frombuffer(raw, "<i4" if dtype == "int32" else np.uint8)
        bad = np.flatnonzero(flat != decoded) if decoded.size == flat.size else None
    if bad is None:
        return [f"{name}: {decoded.size} values decoded, expected {flat.size}"]
    return [T.describe(name, bad, flat, decoded)] if bad.size else []


def load_and_compare(models, serve=None, base=None):
    """Loads each model {name: {weight: want}} with tf.io.http (pointer
    manifest) and tf.io.loadWeights (version folder); asserts every weight
    decodes as wanted and no other weight is there."""
    base = base or BASE
    jobs = []
    for m in models:
        jobs.append({"id": m + " http", "mode": "http", "url": f"{base}{m}/{T.VIRTUAL_MODEL_JSON}"})
        jobs.append({"id": m + " loadWeights", "mode": "loadWeights",
                     "manifest": f"{base}{m}/1/weights_manifest.json", "prefix": f"{base}{m}/1/"})
    results = node("load.mjs", jobs, "load-" + "-".join(models)[:40])
    problems = []
    for m, weights in models.items():
        entries = {w["name"]: w for g in manifest(m, serve) for w in g["weights"]}
        for how in ("http", "loadWeights"):
            r = results[f"{m} {how}"]
            if not r["ok"]:
                problems.append(f"{m} ({how}): tfjs failed: {r['error'][:800]}")
                continue
            if set(r["weights"]) != set(weights):
                problems.append(f"{m} ({how}): decoded {sorted(r['weights'])}, expected "
                                f"{sorted(weights)}")
            for name, want in weights.items():
                if name in r["weights"]:
                    problems += [f"{m} ({how}): {p}" for p in
                                 compare(name, want, r["weights"][name], entries.get(name))]
    assert not problems, "\n      ".join(problems[:12])


def wants(tensors, prefix="", q=None):
    out = {}
    for t in tensors:
        dtype, values = expected(t)
        out[prefix + t.name] = (dtype, values) + ((q,) if q and dtype == "float32" else ())
    return out


# ----------------------------------------------------------------- bundles


def dtype_tensors():
    """Every publishable dtype, every code of the 8- and 16-bit float types.
    A 3-byte I8 tensor first puts every later tensor at an unaligned offset."""
    rng = np.random.default_rng(13)
    f64 = np.concatenate([
        rng.standard_normal(64),
        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e300, -1e300, 3.4028235677973366e38,
         3.4028235e38 * (1 + 2 ** -25), 1e-40, -1e-45, 1e-50, 2.0 ** -149, 2.0 ** -150,
         1 + 2.0 ** -24, 1 + 3 * 2.0 ** -24, 1 - 2.0 ** -25, 16777217.0, 0.1, 1 / 3]])
    f32 = np.concatenate([rng.standard_normal(40).astype(np.float32), np.array(
        [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38],
        np.float32)])
    f32_nan_payload = np.array([0x7FC00001, 0xFF800001, 0x7F800001], np.uint32).view(np.float32)
    i64 = np.array([0, 1, -1, 2 ** 31 - 1, -2 ** 31, 123456789, -987654321], np.int64)
    return [
        Tensor("odd/i8", "I8", [-1, 0, 1]),
        Tensor("f64", "F64", f64.reshape(4, -1)),
        Tensor("f32", "F32", np.concatenate([f32, f32_nan_payload]).reshape(1, -1)),
        Tensor("f16/all", "F16", np.arange(65536, dtype=np.uint16).view(np.float16)
               .reshape(256, 256)),
        Tensor("bf16/all", "BF16", np.arange(65536, dtype=np.uint16).reshape(16, 4096)),
        Tensor("f8/e4m3/all", "F8_E4M3", np.arange(256, dtype=np.uint8).reshape(16, 16)),
        Tensor("f8/e5m2/all", "F8_E5M2", np.arange(256, dtype=np.uint8).reshape(2, 8, 16)),
        Tensor("i64", "I64", i64),
        Tensor("i32", "I32", [0, 1, -1, 2 ** 31 - 1, -2 ** 31, 42]),
        Tensor("i16/all", "I16", np.arange(-32768, 32768, dtype=np.int16).reshape(256, 256)),
        Tensor("i8/all", "I8", np.arange(-128, 128, dtype=np.int8)),
        Tensor("u8/all", "U8", np.arange(256, dtype=np.uint8)),
        Tensor("u16/all", "U16", np.arange(65536, dtype=np.uint16)),
        Tensor("u32", "U32", [0, 1, 2 ** 31 - 1, 65536, 7]),
        Tensor("u64", "U64", [0, 1, 2 ** 31 - 1, 1 << 20]),
        Tensor("bool", "BOOL", [[1, 0, 0], [1, 1, 0]]),
        Tensor("c64", "C64", np.array([1 + 2j, -0.0 - 1.5j, np.inf + 0j, 3e-45j],
                                      np.complex64)),
    ]


def shape_tensors():
    """Scalars and empty tensors of several dtypes; empties at the start,
    between and at the end of the data (data_offsets [x, x])."""
    return [
        Tensor("empty/first", "F32", np.zeros((0,), np.float32)),
        Tensor("scalar/f32", "F32", np.float32(-2.5), shape=()),
        Tensor("empty/bf16", "BF16", np.zeros((3, 0, 2), np.uint16)),
        Tensor("scalar/bf16", "BF16", np.uint16(0xC0490FDB >> 16), shape=()),
        Tensor("scalar/i64", "I64", np.int64(-7), shape=()),
        Tensor("empty/i64", "I64", np.zeros((0, 5), np.int64)),
        Tensor("scalar/bool", "BOOL", np.uint8(1), shape=()),
        Tensor("scalar/f8", "F8_E4M3", np.uint8(0x7E), shape=()),
        Tensor("empty/f8", "F8_E5M2", np.zeros((4, 0), np.uint8)),
        Tensor("empty/last", "U16", np.zeros((0, 0), np.uint16)),
    ]


def quant_tensors():
    """Finite float weights of the narrow types (NaN and Inf are refused by
    uint8 and would not fit float16), and an int that is never quantized."""
    rng = np.random.default_rng(7)
    bf = (rng.standard_normal(300).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    e4 = np.array([c for c in range(256) if c & 0x7F != 0x7F], np.uint8)
    e5 = np.array([c for c in range(256) if (c >> 2) & 0x1F != 0x1F], np.uint8)
    return [
        Tensor("dense/kernel", "BF16", bf.reshape(20, 15)),
        Tensor("dense/e4m3", "F8_E4M3", e4),
        Tensor("dense/e5m2", "F8_E5M2", e5.reshape(-1, 8)),
        Tensor("dense/f32", "F32", rng.standard_normal(33).astype(np.float32)),
        Tensor("step", "I32", [5]),
    ]


def hf_shards():
    """Two shards of a Hugging Face checkpoint (dotted names, BF16 + F32);
    within each file the data order differs from the header's name order."""
    rng = np.random.default_rng(21)

    def bf(*shape):
        return (rng.standard_normal(shape).astype(np.float32).view(np.uint32) >> 16) \
            .astype(np.uint16)
    return [
        [Tensor("model.layers.0.mlp.weight", "BF16", bf(8, 6)),
         Tensor("model.embed_tokens.weight", "BF16", bf(10, 6)),
         Tensor("model.layers.0.norm.weight", "F32", rng.standard_normal(6).astype(np.float32))],
        [Tensor("model.layers.1.mlp.weight", "BF16", bf(8, 6)),
         Tensor("lm_head.weight", "BF16", bf(10, 6))],
    ]


def write_hf_folder(folder, shards=None, **kw):
    shards = shards or hf_shards()
    W.write_sharded(folder, shards, {"format": "pt"}, **kw)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"architectures": ["TinyForCausalLM"], "torch_dtype": "bfloat16"}, f)
    return [t for s in shards for t in s]


# ------------------------------------------------------- published and loaded


@check("every dtype (all F16/BF16/F8 codes) publishes and loads bit for bit; __metadata__ recorded")
def every_dtype():
    tensors = dtype_tensors()
    meta = {"format": "pt", "ünïcode ✓": "välue\n\"quoted\"", "empty": ""}
    bundle = W.write(path("bundles", "dtypes.safetensors"), tensors, meta)
    publish(bundle, "dtypes")
    names = manifest_names("dtypes")
    assert names == [t.name for t in tensors], \
        f"manifest order {names}, expected data order {[t.name for t in tensors]}"
    got_meta = publish_json("dtypes")["source"].get("metadata")
    assert got_meta == {"dtypes.safetensors": meta}, \
        f"publish.json source.metadata = {got_meta!r}, expected {{'dtypes.safetensors': {meta!r}}}"
    with open(bundle, "rb") as f:  # the reader fed the digest: still the file's sha256
        want_sha = hashlib.sha256(f.read()).hexdigest()
    got_sha = publish_json("dtypes")["source"]["sha256"]
    assert got_sha == want_sha, f"publish.json source.sha256 {got_sha}, the file's is {want_sha}"
    load_and_compare({"dtypes": wants(tensors)})


@check("expected values of the narrow floats are anchored to their definitions")
def float_anchors():
    # Spot values from the format definitions, so the formulas above are not
    # just checked against themselves (OCP FP8 spec: E4M3FN max 448, min
    # subnormal 2^-9; E5M2 max 57344, 0x7c = Inf; bfloat16 = top of binary32).
    e4 = f8_e4m3_values([0x00, 0x80, 0x01, 0x07, 0x08, 0x38, 0x7E, 0xFE, 0x7F, 0xFF, 0x40])
    want = [0.0, -0.0, 2.0 ** -9, 7 * 2.0 ** -9, 2.0 ** -6, 1.0, 448.0, -448.0, None, None, 2.0]
    for code, got, w in zip([0, 0x80, 1, 7, 8, 0x38, 0x7E, 0xFE, 0x7F, 0xFF, 0x40], e4, want):
        ok = np.isnan(got) if w is None else (got == w and np.signbit(got) == np.signbit(w))
        assert ok, f"E4M3 0x{code:02x} -> {got}, expected {w}"
    assert not np.isinf(f8_e4m3_values(np.arange(256))).any(), "E4M3FN has no infinities"
    e5 = f8_e5m2_values([0x7B, 0x7C, 0xFC, 0x7D, 0x3C, 0x01, 0x04])
    assert e5.tolist()[:3] == [57344.0, np.inf, -np.inf] and np.isnan(e5[3]) and \
        e5[4] == 1.0 and e5[5] == 2.0 ** -16 and e5[6] == 2.0 ** -14, f"E5M2 anchors: {e5}"
    bf = bf16_values([0x3F80, 0xC000, 0x7F80, 0xFF80, 0x7FC0, 0x0001, 0x8000])
    assert bf.tolist()[:4] == [1.0, -2.0, np.inf, -np.inf] and np.isnan(bf[4]) and \
        bf[5] == 2.0 ** -133 and np.signbit(bf[6]), f"BF16 anchors: {bf}"


@check("inspect shows a safetensors bundle: every tensor, its source dtype and what it becomes")
def inspect_bundle():
    tensors = dtype_tensors()
    bundle = W.write(path("bundles", "inspect.safetensors"), tensors)
    rc, out, err = run("inspect", bundle)
    assert rc == 0, f"inspect exited {rc}: {err.strip()}"
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    for t in tensors:
        row = rows.get(t.name)
        assert row and row[1] == t.dtype and row[3] == expected(t)[0], \
            f"{t.name}: inspect row {row}, expected source {t.dtype}, dtype {expected(t)[0]}"


@check("scalars and empty tensors (offsets [x, x] first, between and last) publish and load")
def scalars_and_empties():
    tensors = shape_tensors()
    bundle = W.write(path("bundles", "shapes.safetensors"), tensors)
    publish(bundle, "shapes")
    names = manifest_names("shapes")
    entries = {w["name"]: w for g in manifest("shapes") for w in g["weights"]}
    assert entries["scalar/f32"]["shape"] == [] and entries["empty/bf16"]["shape"] == [3, 0, 2], \
        f"manifest shapes: {[(n, entries[n]['shape']) for n in names]}"
    assert sorted(names) == sorted(t.name for t in tensors), f"manifest names {names}"
    load_and_compare({"shapes": wants(tensors)})


@check("a file whose every tensor is empty (0-byte data buffer) publishes and loads")
def all_empty():
    tensors = [Tensor("e/a", "F32", np.zeros((0, 3), np.float32)),
               Tensor("e/b", "BF16", np.zeros((0,), np.uint16))]
    bundle = W.write(path("bundles", "allempty.safetensors"), tensors)
    publish(bundle, "allempty")
    load_and_compare({"allempty": wants(tensors)})


def npz_of(tensors):
    buf = io.BytesIO()
    np.savez(buf, **{t.name: expected(t)[1] for t in tensors})
    return buf.getvalue()


@check("--quantize uint8='*' and float16='*' treat BF16/F8 weights as float32 ones, byte for byte")
def quantized():
    tensors = quant_tensors()
    bundle = W.write(path("bundles", "quant.safetensors"), tensors)
    # The same values, widened by NumPy, as a float32 .npz: the path the
    # other tests prove against the reference writer. Same names, same order.
    ref = path("bundles", "quantref.npz")
    with open(ref, "wb") as f:
        f.write(npz_of(tensors))
    models = {}
    for q in ("uint8", "float16"):
        for src, model in ((bundle, f"q-{q}"), (ref, f"qref-{q}")):
            publish(src, model, "--quantize", f"{q}=*")
        st, npz = manifest(f"q-{q}"), manifest(f"qref-{q}")
        assert st == npz, f"{q}: manifest differs from the float32 .npz's:\n      {st}\n      {npz}"
        for shard in st[0]["paths"]:
            a = open(os.path.join(SERVE, f"q-{q}", "1", shard), "rb").read()
            b = open(os.path.join(SERVE, f"qref-{q}", "1", shard), "rb").read()
            assert a == b, f"{q}: {shard} differs from the float32 .npz's"
        entries = {w["name"]: w for w in st[0]["weights"]}
        assert "quantization" not in entries["step"], "an I32 weight was quantized"
        assert all(entries[t.name].get("quantization", {}).get("dtype") == q
                   for t in tensors if t.name != "step"), f"{q}: not every float quantized: {st}"
        models[f"q-{q}"] = wants(tensors, q=q)
    load_and_compare(models)


@check("a sharded Hugging Face checkpoint folder publishes in shard, then offset order")
def sharded_checkpoint():
    folder = path("bundles", "hf")
    tensors = write_hf_folder(folder)
    publish(folder, "hf")
    names = manifest_names("hf")
    assert names == [t.name for t in tensors], f"manifest order {names}, expected " \
        f"{[t.name for t in tensors]} (files sorted, tensors in data order)"
    meta = publish_json("hf")["source"].get("metadata")
    want = {W.shard_name(i, 2): {"format": "pt"} for i in (1, 2)}
    assert meta == want, f"publish.json source.metadata = {meta!r}, expected {want!r}"
    load_and_compare({"hf": wants(tensors)})


def write_mixed(folder):
    """A folder mixing .npy, .npz and .safetensors (and a sharded checkpoint
    in sub/hf); returns [(weight name, want)] in the documented order: files
    sorted bytewise by relative path, tensors in data-offset order."""
    rng = np.random.default_rng(5)
    os.makedirs(os.path.join(folder, "sub"))
    order = []

    def npy(rel, arr):
        np.save(os.path.join(folder, rel), arr)
        order.append((rel[:-4], ("float32", arr.astype(np.float32)) if arr.dtype.kind == "f"
                      else ("int32", arr.astype(np.int32))))
    # Bytewise: "A" < "b" < "c" < "sub.npy" < "sub/..." ("." 0x2e < "/" 0x2f).
    npy("A.npy", rng.standard_normal(3).astype(np.float32))
    members = [("npz/k1", np.arange(4, dtype=np.int16)), ("npz/k0", np.float64([0.1, 0.2]))]
    with open(os.path.join(folder, "b.npz"), "wb") as f:
        np.savez(f, **dict(members))  # member order = keyword order
    order += [(n, ("float32", a.astype(np.float32)) if a.dtype.kind == "f"
               else ("int32", a.astype(np.int32))) for n, a in members]
    c = [Tensor("c.z", "BF16", [0x3F80, 0x4000]), Tensor("c.a", "F8_E4M3", [0x38, 0xB8])]
    W.write(os.path.join(folder, "c.safetensors"), c, {"who": "c"})
    order += [(t.name, expected(t)) for t in c]
    npy("sub.npy", np.array([7, 8], np.int32))
    d = [Tensor("t1", "U8", [1, 2, 3]), Tensor("t0", "F16", np.float16([1.5, -0.0]))]
    W.write(os.path.join(folder, "sub", "d.safetensors"), d, {"who": "sub/d"})
    order += [("sub/" + t.name, expected(t)) for t in d]
    npy("sub/e.npy", np.float32([[1, 2], [3, 4]]))
    hf = hf_shards()
    W.write_sharded(os.path.join(folder, "sub", "hf"), hf)
    order += [("sub/hf/" + t.name, expected(t)) for s in hf for t in s]
    return order


@check("a folder of 600 .safetensors files publishes under a 128-descriptor limit "
       "(no descriptor is held per file)")
def many_files_few_descriptors():
    import resource
    folder = path("bundles", "many")
    for i in range(600):
        W.write(os.path.join(folder, f"f{i:03d}.safetensors"),
                [Tensor(f"w{i:03d}", "F32", np.float32([i, -i]))])

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
    p = subprocess.run([BINARY, "publish", folder, "--to", SERVE, "--model", "many"],
                       capture_output=True, text=True, timeout=120, preexec_fn=limit)
    assert p.returncode == 0, f"exit {p.returncode}: {p.stderr.strip()[-400:]}"
    names = manifest_names("many")
    assert names == [f"w{i:03d}" for i in range(600)], names[:5]


@check("a folder mixing .npy, .npz and .safetensors: names, order and metadata as documented")
def mixed_folder():
    folder = path("bundles", "mixed")
    order = write_mixed(folder)
    publish(folder, "mixed")
    names = manifest_names("mixed")
    assert names == [n for n, _ in order], f"manifest order\n      {names}, expected\n      " \
        f"{[n for n, _ in order]}"
    meta = publish_json("mixed")["source"].get("metadata")
    want = {"c.safetensors": {"who": "c"}, "sub/d.safetensors": {"who": "sub/d"}}
    assert meta == want, f"publish.json source.metadata = {meta!r}, expected {want!r}"
    load_and_compare({"mixed": dict(order)})


# ------------------------------------------------------------------- malformed


def good():
    """alpha F32 [0, 12), beta BF16 [12, 16), gamma I32 [16, 20)."""
    return [Tensor("alpha", "F32", [1, 2, 3]), Tensor("beta", "BF16", [0x3F80, 0x4000]),
            Tensor("gamma", "I32", [7])]


def edit_entry(name, **changes):
    def edit(h):
        for k, v in changes.items():
            if v is None:
                del h[name][k]
            else:
                h[name][k] = v
    return edit


def header_text(entries, metadata=None):
    """JSON text from (key, value) pairs, so a key may appear twice."""
    parts = ([("__metadata__", metadata)] if metadata else []) + entries
    return ("{" + ",".join(json.dumps(k) + ":" + json.dumps(v, separators=(",", ":"))
                           for k, v in parts) + "}").encode()


def good_entries():
    h = W.header_dict(good())
    return list(h.items())


def file_case(tensors=None, **kw):
    def make(folder, name):
        return W.write(os.path.join(folder, name + ".safetensors"), tensors or good(), **kw)
    return make


def raw_case(data):
    def make(folder, name):
        p = os.path.join(folder, name + ".safetensors")
        with open(p, "wb") as f:
            f.write(data() if callable(data) else data)
        return p
    return make


def with_hole(folder, name):
    ts = good()
    ts.insert(1, Tensor("filler", "U8", [9, 9, 9, 9]))
    return W.write(os.path.join(folder, name + ".safetensors"), ts,
                   edit=lambda h: h.pop("filler"))


def hf_case(edit_index=None, shards=None):
    def make(folder, name):
        d = os.path.join(folder, name)
        write_hf_folder(d, shards=shards() if shards else None, edit_index=edit_index)
        return d
    return make


def two_shards_same_tensor():
    s = hf_shards()
    s[1].append(Tensor("model.layers.0.norm.weight", "F32", np.zeros(6, np.float32)))
    return s


def index_drop(name):
    return lambda idx: idx["weight_map"].pop(name)


def index_set(name, value):
    return lambda idx: idx["weight_map"].__setitem__(name, value)


def index_json_bad(folder, name):
    d = hf_case()(folder, name)
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        f.write('{"weight_map": {"a": "model-00001-of-00002.safetensors",}}')
    return d


HF1, HF2, HF3 = W.shard_name(1, 2), W.shard_name(2, 2), W.shard_name(3, 3)
EMB = "model.embed_tokens.weight"
NORM = "model.layers.0.norm.weight"
INDEX = "model.safetensors.index.json"

# (label, make(folder, name) -> bundle path, tensor named or None, [regex, ...]).
# Every row: exit 1, stderr names the file (the bundle's or the one given
# by `names`), the tensor and each regex; the serve folder unchanged.
MALFORMED = [
    ("header length over the 16 MiB cap", file_case(length=(16 << 20) + 1), None,
     [r"header length 16777217 bytes is over .*limit of 16777216"]),
    ("header length 2^64-1", file_case(length=2 ** 64 - 1), None,
     [r"header length 18446744073709551615 bytes is over"]),
    ("header length past the end of the file",
     lambda f, n: raw_case(W.serialize(good(), length=len(W.serialize(good())) - 7))(f, n),
     None, [r"truncated: the header needs \d+ bytes"]),
    ("file shorter than the 8-byte length", raw_case(b"\x10\x00\x00"), None,
     [r"truncated: 3 bytes, shorter than the 8-byte header length"]),
    ("file truncated in the data", file_case(cut=3), "gamma",
     [r"truncated: its tensors need 20 bytes of data but the file holds 17"]),
    ("header not JSON", file_case(header=b'{"alpha": nope}'), None, [r"not valid JSON"]),
    ("header JSON with invalid UTF-8",
     file_case(header=header_text(good_entries()).replace(b'"alpha"', b'"al\xffpha"')), None,
     [r"not valid JSON.*UTF-8|UTF-8"]),
    ("duplicate tensor name in the header",
     file_case(header=header_text(good_entries() + [good_entries()[0]])), "alpha",
     [r"key 'alpha' appears twice"]),
    ("duplicate key inside a tensor entry",
     file_case(header=header_text(good_entries()).replace(
         b'"dtype":"F32"', b'"dtype":"F32","dtype":"F32"')), "alpha",
     [r"'alpha': the key 'dtype' appears twice"]),
    ("header not starting with '{'",
     file_case(header=b" " + header_text(good_entries())), None, [r"does not start with '\{'"]),
    ("header a JSON array", file_case(header=b"[1, 2]"), None, [r"does not start with '\{'"]),
    ("padding with NUL, not spaces", file_case(header=header_text(good_entries()) + b"\0\0\0"),
     None, [r"followed only by space padding"]),
    ("padding with a newline", file_case(header=header_text(good_entries()) + b"\n"),
     None, [r"followed only by space padding"]),
    ("unknown dtype", file_case(edit=edit_entry("beta", dtype="X99")), "beta",
     [r"unknown safetensors dtype 'X99'"]),
    ("F4: a known dtype with no exact tfjs form", file_case(edit=edit_entry("beta", dtype="F4")),
     "beta", [r"dtype F4 cannot be published"]),
    ("F8_E8M0: known, unpublishable", file_case(edit=edit_entry("gamma", dtype="F8_E8M0")),
     "gamma", [r"dtype F8_E8M0 cannot be published"]),
    ("dtype not a string", file_case(edit=edit_entry("alpha", dtype=4)), "alpha",
     [r"dtype is not a string"]),
    ("tensor entry without data_offsets", file_case(edit=edit_entry("alpha", data_offsets=None)),
     "alpha", [r"has no data_offsets"]),
    ("negative shape entry", file_case(edit=edit_entry("alpha", shape=[-3])), "alpha",
     [r"shape holds -3, not a non-negative integer"]),
    ("float shape entry", file_case(edit=edit_entry("alpha", shape=[3.0])), "alpha",
     [r"shape holds 3\.0, not a non-negative integer"]),
    ("data_offsets of one number", file_case(edit=edit_entry("alpha", data_offsets=[0])), "alpha",
     [r"data_offsets is not \[begin, end\]"]),
    ("data_offsets of three numbers",
     file_case(edit=edit_entry("alpha", data_offsets=[0, 12, 12])), "alpha",
     [r"data_offsets is not \[begin, end\]"]),
    ("data_offsets end before begin", file_case(edit=edit_entry("alpha", data_offsets=[12, 0])),
     "alpha", [r"data_offsets \[12, 0\] end before they begin"]),
    ("size is not product(shape) x itemsize", file_case(edit=edit_entry("alpha", shape=[2])),
     "alpha", [r"hold 12 bytes but shape \(2,\) of F32 needs 8"]),
    ("overlapping tensors", file_case(edit=edit_entry("beta", data_offsets=[8, 12])), "beta",
     [r"overlap tensor 'alpha'"]),
    ("a hole between tensors", with_hole, "beta",
     [r"bytes \[12, 16\) of the data buffer belong to no tensor \(a hole before tensor 'beta'"]),
    ("trailing bytes after the last tensor", file_case(extra=b"\0" * 5), None,
     [r"5 trailing bytes after the last tensor"]),
    ("shape overflowing 64 bits",
     file_case(edit=edit_entry("alpha", shape=[2 ** 32, 2 ** 32, 3])), "alpha",
     [r"more elements than 64 bits can count"]),
    ("shape x itemsize overflowing 64 bits", file_case(edit=edit_entry("alpha", shape=[2 ** 62])),
     "alpha", [r"more bytes than 64 bits can count"]),
    ("__metadata__ with a non-string value",
     file_case(metadata={"format": "pt"}, edit=lambda h: h["__metadata__"].update(epoch=3)),
     "epoch", [r"__metadata__ 'epoch' is 3, not a string"]),
    ("__metadata__ not an object", file_case(edit=lambda h: h.update(__metadata__=["pt"])), None,
     [r"__metadata__ is not an object"]),
    ("unknown key in a tensor entry", file_case(edit=edit_entry("gamma", offsets=[16, 20])),
     "gamma", [r"unknown key 'offsets'"]),
    ("a tensor name with a control character",
     file_case(edit=lambda h: h.update({"bad\u0001name": h.pop("alpha")})), None,
     [r"weight name 'bad\\x01name' holds a control character"]),
    ("I64 out of int32 range (at publish)",
     file_case(tensors=[Tensor("big", "I64", [0, 1, 2, 2 ** 31, 5])]), "big",
     [r"element 3 .* is 2147483648, which does not fit int32"]),
    ("I64 below int32 range", file_case(tensors=[Tensor("neg", "I64", [-2 ** 31 - 1])]), "neg",
     [r"element 0 .* is -2147483649, which does not fit int32"]),
    ("U32 out of int32 range", file_case(tensors=[Tensor("u", "U32", [1, 2 ** 31])]), "u",
     [r"element 1 .* is 2147483648"]),
    ("U64 out of int32 range", file_case(tensors=[Tensor("u", "U64", [2 ** 64 - 1])]), "u",
     [r"element 0 .* is 18446744073709551615"]),
    ("index maps a tensor to a missing file", hf_case(edit_index=index_set(EMB, HF3)), EMB,
     [re.escape(INDEX), re.escape(HF3), r"not a \.safetensors file beside it"]),
    ("index maps a tensor to the wrong shard", hf_case(edit_index=index_set(EMB, HF2)), EMB,
     [re.escape(INDEX), re.escape(HF2) + r", but it is in \S*" + re.escape(HF1)]),
    ("index lists a tensor no file holds", hf_case(edit_index=index_set("ghost.weight", HF1)),
     "ghost.weight", [re.escape(INDEX), r"does not hold it"]),
    ("a tensor in a shard the index does not list", hf_case(edit_index=index_drop(EMB)), EMB,
     [re.escape(HF1), re.escape(INDEX) + " does not list"]),
    ("the same tensor in two shards", hf_case(shards=two_shards_same_tensor), NORM,
     [re.escape(HF1), re.escape(HF2), r"duplicate"]),
    ("index not JSON", index_json_bad, None, [re.escape(INDEX), r"not valid JSON"]),
]


def serve_snapshot(root):
    """Every path under `root` with its bytes' digest or link target."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                snap[rel] = "-> " + os.readlink(p)
            elif os.path.isdir(p):
                snap[rel] = "dir"
            else:
                with open(p, "rb") as f:
                    snap[rel] = hashlib.sha256(f.read()).hexdigest()
    return snap


# Rows whose tensor the message should name but does not (reported to the
# reader's owner): noted, not failed, until it does.
TENSOR_NOT_YET_NAMED = {}


def victim_serve():
    """The malformed cases' serve root, holding model "victim" version 1 (a
    good file), which must stay current through every failed publish."""
    serve = path("malformed-serve")
    if not os.path.isdir(serve):
        os.makedirs(serve)
        publish(W.write(path("bundles", "victim.safetensors"), good()), "victim", serve=serve)
    return serve


def malformed_check(i, label, make, tensor, patterns):
    folder = path("malformed", str(i))
    os.makedirs(folder)
    name = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40]
    bundle = make(folder, name)
    serve = victim_serve()
    before = serve_snapshot(serve)
    for model in ("victim", f"fresh-{i}"):
        rc, out, err = run("publish", bundle, "--to", serve, "--model", model)
        msg = f"publish --model {model}: exit {rc}\n      stderr: {err.strip()[:600]!r}"
        assert rc == 1, msg + " (expected exit 1)"
        base = os.path.basename(bundle)
        assert base in err, msg + f"\n      does not name the file {base}"
        if tensor:
            assert tensor in err, msg + f"\n      does not name {tensor!r}"
        if label in TENSOR_NOT_YET_NAMED and TENSOR_NOT_YET_NAMED[label] not in err \
                and model == "victim":
            checks.note(f"malformed '{label}': the error does not name tensor "
                        f"'{TENSOR_NOT_YET_NAMED[label]}': {err.strip()[-120:]!r}")
        for rx in patterns:
            assert re.search(rx, err, re.I | re.S), msg + f"\n      does not match /{rx}/"
        after = serve_snapshot(serve)
        assert after == before, msg + "\n      the serve folder changed: " + \
            f"added {sorted(set(after) - set(before))}, removed " \
            f"{sorted(set(before) - set(after))}, changed " \
            f"{sorted(k for k in before if k in after and before[k] != after[k])}"
        assert os.readlink(os.path.join(serve, "victim", "current")) == "1"


def register_malformed():
    for i, (label, make, tensor, patterns) in enumerate(MALFORMED, 1):
        check(f"malformed: {label}")(functools.partial(malformed_check, i, label, make, tensor,
                                                        patterns))


register_malformed()


# -------------------------------------------------------------------- daemon


@check("daemon: a folder of safetensors shards dropped by rename is published and loads")
def daemon_publishes():
    with U.Env("st-watch") as env:
        w = env.watch()
        d = env.start()
        outside = env.path("outside", "tiny-lm")
        tensors = write_hf_folder(outside)
        os.rename(outside, os.path.join(w.drop, "tiny-lm"))
        d.wait(lambda: w.current("tiny-lm") == "1" and "tiny-lm" in w.done(), 15,
               "serve/tiny-lm/current -> 1 and tiny-lm in done/")
        names = manifest_names("tiny-lm", w.serve)
        d.check(names == [t.name for t in tensors], f"manifest order {names}")
        meta = publish_json("tiny-lm", serve=w.serve)["source"].get("metadata")
        d.check(meta == {HF1: {"format": "pt"}, HF2: {"format": "pt"}},
                f"publish.json source.metadata = {meta!r}")
        server, base = T.start_server(w.serve)
        try:
            load_and_compare({"tiny-lm": wants(tensors)}, serve=w.serve, base=base)
        finally:
            server.shutdown()
            server.server_close()
        d.stop()


@check("daemon: malformed safetensors go to failed/ with an .error.txt naming the problem")
def daemon_fails():
    with U.Env("st-bad") as env:
        w = env.watch()
        d = env.start()
        dup = header_text(good_entries() + [good_entries()[1]])
        w.drop_by_rename("dupkey.safetensors", W.serialize(good(), header=dup))
        outside = env.path("outside", "wrongshard")
        write_hf_folder(outside, edit_index=index_set(EMB, HF2))
        os.rename(outside, os.path.join(w.drop, "wrongshard"))
        for name, words in (("dupkey.safetensors", ["dupkey.safetensors", "'beta' appears twice"]),
                            ("wrongshard", [INDEX, EMB, "but it is in"])):
            d.wait(lambda: name in w.failed() and f"{name}.error.txt" in w.failed(), 15,
                   f"failed/{name} and failed/{name}.error.txt")
            with open(w.sub("failed", f"{name}.error.txt"), encoding="utf-8") as f:
                text = f.read()
            for word in words:
                d.check(word in text, f"failed/{name}.error.txt does not say {word!r}: {text!r}")
            d.check(w.current(name.split(".")[0]) is None, f"{name} was published")
        good_file = W.serialize(good())
        w.drop_by_rename("fine.safetensors", good_file)
        d.wait(lambda: w.current("fine") == "1", 15, "serve/fine/current -> 1 after the failures")
        d.stop()


# ------------------------------------------------------ independent cross-check


@check("cross-check: @huggingface/hub's parser reads the writer's files as written")
def hub_reads_writer():
    root = path("hub")
    files = {"dtypes.safetensors": (dtype_tensors(), {"format": "pt", "ü": "✓"}),
             "shapes.safetensors": (shape_tensors(), None)}
    for name, (tensors, meta) in files.items():
        W.write(os.path.join(root, name), tensors, meta)
    shards = hf_shards()
    W.write_sharded(os.path.join(root, "hf"), shards, {"format": "pt"})
    jobs = [{"id": n, "root": root, "path": n} for n in files]
    jobs.append({"id": "hf", "root": root, "path": "hf/" + INDEX})
    res = node("safetensors_hub.mjs", jobs, "hub")
    problems = []

    def same_file(label, file_path, header, tensors, meta):
        want = W.header_dict(tensors, meta)
        if header != want:
            problems.append(f"{label}: the hub client read header {json.dumps(header)[:300]}, "
                            f"written {json.dumps(want)[:300]}")
            return
        with open(file_path, "rb") as f:
            blob = f.read()
        start = 8 + int.from_bytes(blob[:8], "little")
        for t in tensors:
            b, e = header[t.name]["data_offsets"]
            if blob[start + b:start + e] != t.data():
                problems.append(f"{label}: {t.name}: bytes at the offsets the hub read differ")
    for name, (tensors, meta) in files.items():
        r = res[name]
        if not r["ok"] or r["sharded"]:
            problems.append(f"{name}: {r}")
            continue
        same_file(name, os.path.join(root, name), r["header"], tensors, meta)
    r = res["hf"]
    if not r["ok"] or not r["sharded"]:
        problems.append(f"hf: {str(r)[:500]}")
    else:
        want_map = {t.name: W.shard_name(i, 2) for i, s in enumerate(shards, 1) for t in s}
        if r["index"]["weight_map"] != want_map:
            problems.append(f"hf: weight_map read {r['index']['weight_map']}")
        for i, s in enumerate(shards, 1):
            n = W.shard_name(i, 2)
            same_file("hf/" + n, os.path.join(root, "hf", n), r["headers"].get(n), s,
                      {"format": "pt"})
    assert not problems, "\n      ".join(problems)


# Malformed rows the hub client's own checks cover (it validates shapes and
# offsets against the file size and parses the JSON; it does not check
# dtypes, sizes, tiling, padding or duplicate keys).
HUB_REFUSES = ["header not JSON", "header length past the end of the file",
               "negative shape entry", "data_offsets of one number",
               "data_offsets of three numbers", "data_offsets end before begin",
               "tensor entry without data_offsets"]


@check("cross-check: @huggingface/hub's parser also refuses the malformed files it checks")
def hub_refuses_malformed():
    root = path("hub-bad")
    jobs = []
    for i, (label, make, _, _) in enumerate(MALFORMED, 1):
        if label in HUB_REFUSES:
            folder = os.path.join(root, str(i))
            os.makedirs(folder)
            p = make(folder, "bad")
            jobs.append({"id": label, "root": folder, "path": os.path.basename(p)})
    assert len(jobs) == len(HUB_REFUSES), "a HUB_REFUSES label is not in MALFORMED"
    res = node("safetensors_hub.mjs", jobs, "hub-bad")
    accepted = [j["id"] for j in jobs if res[j["id"]]["ok"]]
    assert not accepted, f"the hub client accepted what the writer meant as malformed: {accepted}"


# ---------------------------------------------------------------------- main


def ensure_node_modules():
    if not all(os.path.isdir(os.path.join(TFJS_DIR, "node_modules", *p.split("/")))
               for p in ("@tensorflow/tfjs-converter", "@huggingface/hub")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=TFJS_DIR, check=True)


def main():
    global BINARY, TMP, SERVE, BASE, SERVER
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--filter", default="", help="run only checks whose name contains this")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = ap.parse_args()
    BINARY = U.BINARY = os.path.abspath(args.binary)
    U.KEEP = args.keep
    if not os.access(BINARY, os.X_OK):
        print(f"safetensors_test: {BINARY} is not an executable", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    ensure_node_modules()
    TMP = tempfile.mkdtemp(prefix="wd_safetensors_")
    SERVE = path("serve")
    os.makedirs(SERVE)
    SERVER, BASE = T.start_server(SERVE)
    try:
        passed, failed, skipped = checks.run(args.filter)
    finally:
        SERVER.shutdown()
        SERVER.server_close()
        U.remove_base(args.keep)
        if args.keep:
            print(f"kept {TMP}")
        else:
            shutil.rmtree(TMP, ignore_errors=True)
    return checks.finish(t0, passed, failed, skipped)


if __name__ == "__main__":
    sys.exit(main())
