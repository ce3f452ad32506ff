#!/usr/bin/python3
"""Generates the benchmark bundles: float32 weights of realistic shapes.

For one size it writes the same weights five ways into OUT_DIR:
stored.npz (np.savez), deflated.npz (np.savez_compressed), npy/ (a folder
of .npy files, one per weight, in sub-folders named after the weight),
f32.safetensors and bf16.safetensors (the safetensors layout written with
NumPy from the spec: 8-byte little-endian header length N, N bytes of JSON
padded with spaces to a multiple of 8 as the reference writer pads,
then the tensors back to back in header order; BF16 = the upper 16 bits
of each float32, i.e. truncated, exactly what the reader widens back). The
zip files are written member by member exactly as NumPy's own _savez does
(zipfile with allowZip64, each member opened with force_zip64=True and filled
by numpy.lib.format.write_array), so a 2 GiB bundle never has to sit in
memory. The data are reproducible: weight i is drawn from default_rng(i).

Usage: gen_bundles.py SIZE_BYTES OUT_DIR
"""

import json
import multiprocessing
import os
import sys
import zipfile

import numpy as np
from numpy.lib import format as npy_format

GENERATOR_VERSION = 2  # of the NumPy files; bump to regenerate them
SAFETENSORS_VERSION = 1  # of the .safetensors files (their own marker)
HIDDEN = 1024
FFN = 1536


def block_layers(block):
    prefix = f"block{block:03d}"
    return [
        (f"{prefix}/attn/kernel", (HIDDEN, HIDDEN)),
        (f"{prefix}/attn/bias", (HIDDEN,)),
        (f"{prefix}/mlp/up/kernel", (HIDDEN, FFN)),
        (f"{prefix}/mlp/down/kernel", (FFN, HIDDEN)),
        (f"{prefix}/norm/gamma", (HIDDEN,)),
    ]


def body_layers(budget):
    """Whole transformer-ish blocks while they fit; returns (layers, left)."""
    body = []
    block = 0
    while True:
        for name, shape in block_layers(block):
            count = int(np.prod(shape))
            if count > budget:
                return body, budget
            body.append((name, shape))
            budget -= count
        block += 1


def plan_layers(total_bytes):
    """Returns [(name, shape)] of float32 weights totalling total_bytes."""
    prefix = [("embed/table", (3001, 257)), ("stem/conv/kernel", (3, 3, 67, 129))]
    head = [("head/kernel", (HIDDEN, 1000)), ("head/bias", (1000,))]
    budget = total_bytes // 4 - sum(int(np.prod(s)) for _, s in prefix + head)
    if budget < 0:
        raise SystemExit(f"size {total_bytes} is too small for the layer plan")
    body, left = body_layers(budget)
    tail = [("tail/odd", (left,))] if left > 0 else []
    return prefix + body + tail + head


def weight(index, shape):
    rng = np.random.default_rng(index)
    data = rng.standard_normal(shape, dtype=np.float32)
    data *= np.float32(0.05)
    return data


def write_npz(path, layers, compression):
    tmp = path + ".part"
    with zipfile.ZipFile(tmp, mode="w", compression=compression,
                         allowZip64=True) as zipf:
        for index, (name, shape) in enumerate(layers):
            with zipf.open(name + ".npy", "w", force_zip64=True) as fid:
                npy_format.write_array(fid, weight(index, shape))
    os.replace(tmp, path)


def write_npy_dir(path, layers):
    tmp = path + ".part"
    for index, (name, shape) in enumerate(layers):
        file = os.path.join(tmp, name + ".npy")
        os.makedirs(os.path.dirname(file), exist_ok=True)
        np.save(file, weight(index, shape))
    os.rename(tmp, path)


def write_safetensors(path, layers, dtype):
    """Streams one weight at a time; the header is known before any data."""
    itemsize = {"F32": 4, "BF16": 2}[dtype]
    header, offset = {}, 0
    for name, shape in layers:
        end = offset + int(np.prod(shape)) * itemsize
        header[name] = {"dtype": dtype, "shape": list(shape),
                        "data_offsets": [offset, end]}
        offset = end
    header["__metadata__"] = {"format": "pt", "writer": "bench/gen_bundles.py"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for index, (_, shape) in enumerate(layers):
            data = weight(index, shape)
            if dtype == "BF16":
                data = (data.view(np.uint32) >> 16).astype("<u2")
            f.write(data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes())
    os.replace(tmp, path)


def ensure_safetensors(out_dir, layers, total_bytes):
    marker = os.path.join(out_dir, "safetensors.json")
    want = {"generator": SAFETENSORS_VERSION, "bytes": total_bytes,
            "weights": len(layers), "numpy": np.__version__}
    if os.path.exists(marker):
        with open(marker) as f:
            if json.load(f) == want:
                return
    print(f"generating {out_dir}/{{f32,bf16}}.safetensors", file=sys.stderr)
    for dtype in ("F32", "BF16"):
        write_safetensors(os.path.join(out_dir, dtype.lower() + ".safetensors"),
                          layers, dtype)
    with open(marker, "w") as f:
        json.dump(want, f)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    total_bytes, out_dir = int(sys.argv[1]), sys.argv[2]
    layers = plan_layers(total_bytes)
    marker = os.path.join(out_dir, "complete.json")
    want = {"generator": GENERATOR_VERSION, "bytes": total_bytes,
            "weights": len(layers), "numpy": np.__version__}
    if os.path.exists(marker):
        with open(marker) as f:
            if json.load(f) == want:
                print(f"reusing {out_dir}", file=sys.stderr)
                ensure_safetensors(out_dir, layers, total_bytes)
                return
    os.system(f"rm -rf '{out_dir}'")
    os.makedirs(out_dir)
    print(f"generating {out_dir}: {len(layers)} float32 weights, "
          f"{total_bytes} bytes", file=sys.stderr)
    deflated = multiprocessing.Process(
        target=write_npz,
        args=(os.path.join(out_dir, "deflated.npz"), layers,
              zipfile.ZIP_DEFLATED))
    deflated.start()
    write_npz(os.path.join(out_dir, "stored.npz"), layers, zipfile.ZIP_STORED)
    write_npy_dir(os.path.join(out_dir, "npy"), layers)
    deflated.join()
    if deflated.exitcode != 0:
        raise SystemExit("writing deflated.npz failed")
    with open(marker, "w") as f:
        json.dump(want, f)
    ensure_safetensors(out_dir, layers, total_bytes)


if __name__ == "__main__":
    main()
