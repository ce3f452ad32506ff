#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora, one folder per target, into OUT.

    /usr/bin/python3 tests/fuzz/make_corpus.py OUT

Seeds are written by NumPy the way training code writes bundles (every
dtype we read or refuse, big-endian, Fortran order, strings, .npy format
versions 1-3, stored and deflated .npz), plus configs and model.json samples.
Files named regress-* reproduce known bugs (issue 8) and must run clean.
The output is deterministic, so a seed's name always means the same bytes.
"""

import io
import json
import os
import re
import struct
import sys
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def npy_bytes(a, version=None):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, version=version, allow_pickle=False)
    return buf.getvalue()


def raw_npy(descr, shape, data=b"", fortran=False, version=(1, 0)):
    """A .npy whose header NumPy would not write itself (refused dtypes)."""
    text = "{'descr': %r, 'fortran_order': %s, 'shape': %r, }" % (descr, fortran, shape)
    fmt = "<H" if version == (1, 0) else "<I"
    pre = 10 if version == (1, 0) else 12
    pad = -(pre + len(text) + 1) % 64
    text = (text + " " * pad + "\n").encode("latin1" if version != (3, 0) else "utf8")
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(text)) + text + data


def arrays():
    """name -> small array, one per dtype and layout we read."""
    rng = np.random.default_rng(8)
    out = {}
    for dt in ["<f4", ">f4", "<f8", ">f8", "<f2", ">f2", "<i1", "<i2", ">i2", "<i4", ">i4",
               "<i8", ">i8", "|u1", "<u2", "<u4", ">u4", "<u8", "|b1", "<c8", ">c8", "<c16"]:
        out["d_" + dt.replace("<", "le").replace(">", "be").replace("|", "")] = (
            (rng.standard_normal((2, 3)) * 50).astype(dt))
    out["big_int64"] = np.array([1, 2**40], dtype="<i8")  # out of int32 range
    out["fortran"] = np.asfortranarray(np.arange(12, dtype="<f4").reshape(3, 4))
    out["scalar"] = np.array(3.5, dtype="<f4")
    out["empty"] = np.zeros((0, 3), dtype="<f4")
    out["nan"] = np.array([1.0, np.nan, np.inf], dtype="<f4")
    out["unicode"] = np.array(["a", "h\u00e9llo", "\u4e16\u754c"], dtype="<U5")
    out["unicode_be"] = np.array(["ab", "c"], dtype=">U3")
    out["bytes"] = np.array([b"ab", b"\xff\x00"], dtype="|S4")
    out["high_rank"] = np.zeros((1,) * 12, dtype="<f4")
    return out


def refused():
    """name -> raw .npy bytes of dtypes we refuse (never unpickled)."""
    return {
        "object": raw_npy("|O", (2,), b"\x00" * 16),
        "structured": raw_npy([("a", "<f4"), ("b", "<i4")], (1,), b"\x00" * 8),
        "datetime": raw_npy("<M8[s]", (1,), b"\x00" * 8),
        "timedelta": raw_npy("<m8[s]", (1,), b"\x00" * 8),
        "void": raw_npy("|V4", (1,), b"\x00" * 4),
        "float128": raw_npy("<f16", (1,), b"\x00" * 16),
        "truncated_data": raw_npy("<f4", (4,), b"\x00" * 7),
        "overflow_shape": raw_npy("<f8", (2**62, 8)),
    }


def npz_bytes(members, compressed):
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **members)
    return buf.getvalue()


def zip64_bomb(finish):
    """A one-member .npz whose local and central headers declare (in zip64
    extras) 2**50 bytes uncompressed, with a .npy header declaring the same;
    the deflated data holds only the header (issue 8)."""
    name = b"w.npy"
    total = 2**50
    header = raw_npy("|u1", (total - 128,))
    assert len(header) == 128
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = c.compress(header) + c.flush(zlib.Z_FINISH if finish else zlib.Z_SYNC_FLUSH)
    crc = 0
    local_extra = struct.pack("<HHQQ", 1, 16, total, len(data))
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 8, 0, 0x21, crc, 0xFFFFFFFF,
                        0xFFFFFFFF, len(name), len(local_extra)) + name + local_extra
    central_extra = struct.pack("<HHQ", 1, 8, total)
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 8, 0, 0x21, crc,
                          len(data), 0xFFFFFFFF, len(name), len(central_extra), 0, 0, 0, 0,
                          0) + name + central_extra
    cd_offset = len(local) + len(data)
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), cd_offset, 0)
    return local + data + central + eocd


def bundle_seeds(out):
    arrs = arrays()
    # Settings byte (bundle_fuzzer.cpp): bit 0 .npy; bits 1-2 quantize
    # fallthrough; bit 3 by_prefix; bit 4 float16 */kernel; bits 5-7 shard size.
    for name, a in arrs.items():
        write(out, "bundle", "npy-" + name, b"\x01" + npy_bytes(a))
        write(out, "npy_header", name, npy_bytes(a))
    for name, a in [("v2", arrs["d_lef4"]), ("v3", arrs["unicode"])]:
        version = (2, 0) if name == "v2" else (3, 0)
        write(out, "npy_header", name, npy_bytes(a, version))
        write(out, "bundle", "npy-" + name, b"\x81" + npy_bytes(a, version))
    for name, data in refused().items():
        write(out, "npy_header", "refused-" + name, data)
        write(out, "bundle", "npy-refused-" + name, b"\x01" + data)
    float_names = [n for n in arrs if n.startswith("d_") and "f" in n[2:]]
    layers = {"dense/kernel": arrs["d_lef4"], "dense/bias": arrs["d_lef8"][0],
              "conv/kernel": arrs["d_lef2"], "emb/table": arrs["d_lei4"],
              "words": arrs["unicode"], "flag": arrs["d_b1"]}
    for compressed in (False, True):
        kind = "deflated" if compressed else "stored"
        for flags in (0x00, 0x02, 0x04, 0x06, 0x08, 0x10, 0x28, 0x4E):
            write(out, "bundle", "npz-%s-layers-%02x" % (kind, flags),
                  bytes([flags]) + npz_bytes(layers, compressed))
        write(out, "bundle", "npz-%s-all" % kind,
              b"\x00" + npz_bytes({n: arrs[n] for n in arrs if n != "big_int64"}, compressed))
        write(out, "bundle", "npz-%s-floats-uint8" % kind,
              b"\x02" + npz_bytes({n: arrs[n] for n in float_names}, compressed))
    for finish in (False, True):
        suffix = "finished" if finish else "truncated"
        write(out, "bundle", "regress-zip64-bomb-" + suffix, b"\x00" + zip64_bomb(finish))


PIPELINE = [
    "",
    "{}",
    "# comments only\n",
    "shard_size: 4MiB\n",
    "shard_size: 4194304\ngroups: single\n",
    "shard_size: 4 MiB\nunmatched: error\ngroups:\n  - {name: enc, match: ['encoder/*']}\n",
    "groups: {by_prefix: 2}\nquantize: {uint16: '*'}\n",
    "groups:\n  - name: encoder\n    match: [\"encoder/*\"]\n  - match: [\"decoder/*\", \"head/*\"]\n"
    "unmatched: last\nquantize:\n  uint8: [\"*/kernel\"]\n  float16: true\n",
    "quantize: {float16: [\"*\"], uint8: [\"a/*\"]}\nshard_size: 1KB\n",
    "shard_size: 0\n",
    "shard_size: 99999999999999999999GiB\n",
    "quantize: {uint8: true, float16: true}\n",
    "groups: []\n",
    "&a shard_size: *a\n",
    "? shard_size\n: 16B\n",
    "shard_size: !!str 16\n",
    "---\nshard_size: 1MiB\n---\nshard_size: 2MiB\n",
]

REGRESS_YAML = {"comma": ",", "rbracket": "]", "rbrace": "}", "lbracket": "[",
                "dash-comma": "-,", "lbrace-comma": "{,", "lbracket-comma": "[,",
                "dash-rbracket": "- ]"}


def yaml_blocks(path):
    with open(path, encoding="utf-8") as f:
        return re.findall(r"```yaml\n(.*?)```", f.read(), re.S)


def config_seeds(out):
    for i, text in enumerate(PIPELINE):
        write(out, "pipeline_config", "pipeline-%02d.yaml" % i, text)
    for name in ("example-pipeline.yaml",):
        with open(os.path.join(ROOT, "config", name), "rb") as f:
            write(out, "pipeline_config", name, f.read())
    for name in ("local.yaml", "weightdrop.yaml"):
        with open(os.path.join(ROOT, "config", name), "rb") as f:
            write(out, "daemon_config", name, f.read())
    for doc in ("README.md", "docs/configuration.md"):
        for i, block in enumerate(yaml_blocks(os.path.join(ROOT, doc))):
            target = "daemon_config" if "watches" in block else "pipeline_config"
            write(out, target, "%s-%d.yaml" % (os.path.basename(doc)[:-3], i), block)
    write(out, "daemon_config", "minimal.yaml",
          "watches:\n  - drop: d\n    serve: s\n")
    write(out, "daemon_config", "relative.yaml",
          "state_dir: ../st\nwatches:\n  - {drop: ./a/../b, serve: /s//x/, model: 'm-{drop}-{stem}',"
          " settle: 500ms, rescan: 1.5m, keep_versions: 1, on_success: delete,"
          " hooks: {on_publish: [/bin/true, '{model}'], timeout: 1h}}\n")
    write(out, "daemon_config", "bad-duration.yaml",
          "shutdown_timeout: 8761h\nwatches: [{drop: a, serve: b, settle: -1s}]\n")
    for target in ("pipeline_config", "daemon_config"):
        for name, text in REGRESS_YAML.items():
            write(out, target, "regress-" + name, text)
    write(out, "pipeline_config", "regress-non-utf8-pattern",
          b'quantize: {float16: ["\xc3*"]}\n')
    write(out, "daemon_config", "regress-non-utf8-pattern",
          b'defaults:\n  quantize: {float16: ["\xc3*"]}\nwatches:\n  - {drop: d, serve: s}\n')


def model_json_seeds(out):
    manifest = [{"paths": ["group1-shard1of1.bin"],
                 "weights": [{"name": "dense/kernel", "shape": [2, 3], "dtype": "float32"}]}]
    graph = {"format": "graph-model", "generatedBy": "2.15.0",
             "convertedBy": "TensorFlow.js Converter v4.22.0",
             "signature": {"inputs": {"x:0": {"name": "x:0", "dtype": "DT_FLOAT",
                                              "tensorShape": {"dim": [{"size": "-1"}]}}},
                           "outputs": {"Identity:0": {"name": "Identity:0"}}},
             "modelTopology": {"node": [{"name": "x", "op": "Placeholder",
                                         "attr": {"dtype": {"type": "DT_FLOAT"}}}],
                               "library": {}, "versions": {"producer": 1395}},
             "weightsManifest": manifest}
    layers = {"format": "layers-model", "modelTopology": {
        "class_name": "Sequential", "config": {"layers": [
            {"class_name": "Dense", "config": {"units": 3, "name": "dense"}}]}},
        "weightsManifest": manifest}
    write(out, "model_json", "graph.json", json.dumps(graph, indent=2))
    write(out, "model_json", "layers.json", json.dumps(layers, separators=(",", ":")))
    no_manifest = dict(graph)
    del no_manifest["weightsManifest"]
    write(out, "model_json", "no-manifest.json", json.dumps(no_manifest))
    write(out, "model_json", "empty.json", "{}")
    write(out, "model_json", "empty-spaced.json", " {\n} \n")
    write(out, "model_json", "bom.json", b"\xef\xbb\xbf{\"a\": 1}")
    write(out, "model_json", "duplicate-keys.json",
          '{"weightsManifest": [], "a": 1, "weightsManifest": null, "a": 2}')
    write(out, "model_json", "escapes.json",
          '{"w\\u0065ightsManifest": 1, "k\\"ey": "\\ud83d\\ude00", "n": -1.5e+300}')
    write(out, "model_json", "not-object.json", "[1, 2]")
    write(out, "model_json", "regress-deep-brackets.json", "[" * 100000)
    write(out, "model_json", "regress-deep-in-object.json", '{"a": ' + "[" * 100000)
    write(out, "model_json", "deep-512.json", '{"a": ' + "[" * 511 + "]" * 511 + "}")
    write(out, "model_json", "deep-513.json", '{"a": ' + "[" * 512 + "]" * 512 + "}")


def safetensors_bytes(tensors, metadata=None, pad=True):
    """A .safetensors file as the format's spec lays it out: tensors is a
    list of (name, dtype name, array of the right item size)."""
    header, blobs, at = {}, [], 0
    for name, dtype, a in tensors:
        data = a.tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        at += len(data)
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def safetensors_seeds(out):
    rng = np.random.default_rng(5)
    f32 = rng.standard_normal((4, 3)).astype(np.float32)
    bf16 = (f32.view(np.uint32) >> 16).astype(np.uint16)
    kinds = [("F64", f32.astype(np.float64)), ("F32", f32), ("F16", f32.astype(np.float16)),
             ("BF16", bf16), ("F8_E4M3", np.arange(256, dtype=np.uint8)),
             ("F8_E5M2", np.arange(256, dtype=np.uint8)), ("I64", np.arange(5, dtype=np.int64)),
             ("I32", np.arange(5, dtype=np.int32)), ("I16", np.arange(5, dtype=np.int16)),
             ("I8", np.arange(5, dtype=np.int8)), ("U64", np.arange(5, dtype=np.uint64)),
             ("U32", np.arange(5, dtype=np.uint32)), ("U16", np.arange(5, dtype=np.uint16)),
             ("U8", np.arange(5, dtype=np.uint8)), ("BOOL", np.array([0, 1, 1], dtype=np.uint8))]
    for i, (dtype, a) in enumerate(kinds):
        write(out, "safetensors", "st-" + dtype.lower(),
              bytes([i << 1 & 0xff]) + safetensors_bytes([("dense/kernel", dtype, a)]))
    write(out, "safetensors", "st-all", b"\x02" + safetensors_bytes(
        [("l%02d/%s" % (i, d.lower()), d, a) for i, (d, a) in enumerate(kinds)],
        metadata={"format": "pt"}))
    write(out, "safetensors", "st-empty-and-scalar", b"\x00" + safetensors_bytes(
        [("e", "F32", np.zeros((0, 3), np.float32)), ("s", "F32", np.array(1.5, np.float32))]))
    write(out, "safetensors", "st-unpadded", b"\x06" + safetensors_bytes(
        [("w", "F32", f32)], pad=False))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    bundle_seeds(out)
    safetensors_seeds(out)
    config_seeds(out)
    model_json_seeds(out)


if __name__ == "__main__":
    main()
