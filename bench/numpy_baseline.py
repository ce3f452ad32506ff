#!/usr/bin/python3
"""NumPy baseline: the reference writer's algorithm, written from docs/formats.md.

It does what tfjs-converter's write_weights does with a bundle: load every
array with np.load, map dtypes (float64 -> float32 and so on), quantize with
the formulas of docs/formats.md, stack the group's bytes in memory the way write_weights
does (tobytes() of each array through an io.BufferedWriter into an
io.BytesIO, read back 4 MiB per shard), write and fsync each shard, write the
manifest. Not timed here, because we cannot install it: the reference also
imports TensorFlow, for tf.io.gfile. One group holds every
weight (`groups: single`); --quantize DTYPE applies DTYPE to every float32
weight (pattern '*'). Its output must be byte-identical to weightdrop's
version folder for the same bundle and options; run.sh checks that.

Usage: numpy_baseline.py BUNDLE OUT_DIR [--quantize uint8|uint16|float16]
                         [--shard-size BYTES]
"""

import argparse
import io
import json
import os

import numpy as np

INT32 = np.iinfo(np.int32)


# ---- loading (docs/formats.md, Bundle) ---------------------------------------

def load_npz(path, prefix, out):
    with np.load(path, allow_pickle=False) as archive:
        for name in archive.files:  # member order as stored, '.npy' removed
            out.append((prefix + name, archive[name]))


def load_dir(root, out):
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for file in filenames:
            if file.startswith(".") or not file.endswith((".npy", ".npz")):
                continue
            full = os.path.join(dirpath, file)
            if os.path.islink(full):
                continue
            found.append(os.path.relpath(full, root).replace(os.sep, "/"))
    for rel in sorted(found, key=lambda r: r.encode()):
        full = os.path.join(root, rel)
        if rel.endswith(".npy"):
            out.append((rel[:-4], np.load(full, allow_pickle=False)))
        else:
            parent = os.path.dirname(rel)
            load_npz(full, parent + "/" if parent else "", out)


def load_bundle(path):
    weights = []
    if os.path.isdir(path):
        load_dir(path, weights)
    elif path.endswith(".npz"):
        load_npz(path, "", weights)
    else:
        stem = os.path.basename(path)[:-4]
        weights.append((stem, np.load(path, allow_pickle=False)))
    return weights


# ---- dtype mapping (docs/formats.md, Dtypes) ---------------------------------

def to_int32(name, data):
    if data.size:
        low, high = data.min(), data.max()
        if low < INT32.min or high > INT32.max:
            bad = low if low < INT32.min else high
            raise SystemExit(f"weight '{name}': value {bad} does not fit int32")
    return data.astype("<i4"), "int32"


def encode_strings(data):
    out = io.BytesIO()
    for item in data.flatten(order="C"):
        raw = item.encode("utf-8") if isinstance(item, str) else bytes(item)
        out.write(len(raw).to_bytes(4, "little"))
        out.write(raw)
    return np.frombuffer(out.getvalue(), dtype=np.uint8)


def convert(name, data):
    """Returns (little-endian C-order array, tfjs dtype)."""
    kind, size = data.dtype.kind, data.dtype.itemsize
    if kind == "f":  # copy=False: float32 stays as loaded, as in the reference
        return data.astype("<f4", copy=False), "float32"
    if kind in "iu" and size <= 2 or kind == "i" and size == 4:
        return data.astype("<i4"), "int32"
    if kind in "iu":
        return to_int32(name, data)
    if kind == "b":
        return (data.view(np.uint8) != 0).astype(np.uint8), "bool"
    if kind == "c":
        return data.astype("<c8"), "complex64"
    if kind in "US":
        return encode_strings(data), "string"
    raise SystemExit(f"weight '{name}': dtype {data.dtype} is not supported")


# ---- quantization (docs/formats.md, Quantization) ---------------------------

def quantize_affine(name, data, dtype):
    qmax = float(np.iinfo(dtype).max)
    mn, mx = float(data.min()), float(data.max())
    if not (np.isfinite(mn) and np.isfinite(mx)):
        raise SystemExit(f"weight '{name}': NaN or Inf cannot be quantized")
    if mn == mx:
        return np.zeros(data.shape, dtype), {"min": mn, "scale": 1.0}
    scale = (mx - mn) / qmax
    if mn <= 0 <= mx:
        zero_point = float(np.round(-mn / scale))
        nmin = -zero_point * scale
        nmax = qmax * scale + nmin
    else:
        nmin, nmax = mn, mx
    fmin, fmax, fscale = np.float32(nmin), np.float32(nmax), np.float32(scale)
    quantized = np.round((np.clip(data, fmin, fmax) - fmin) / fscale)
    return quantized.astype(dtype), {"min": nmin, "scale": scale}


def quantize_float16(name, data):
    big = np.abs(data[np.isfinite(data)]) >= 65520
    if big.any():
        raise SystemExit(f"weight '{name}': a value rounds to Inf in float16")
    return data.astype("<f2")


def quantize(name, data, dtype):
    """Returns (encoded array, manifest 'quantization' object)."""
    if dtype == "float16":
        info = {"dtype": "float16", "original_dtype": "float32"}
        return quantize_float16(name, data), info
    encoded, ranges = quantize_affine(name, data, np.dtype(dtype))
    info = {"dtype": dtype, "min": ranges["min"], "scale": ranges["scale"],
            "original_dtype": "float32"}
    return encoded, info


# ---- group bytes, shards, manifest (docs/formats.md) --------------------------

def write_synced(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_group(out_dir, group_number, encoded, shard_size):
    # As the reference's _stack_group_bytes and _shard_group_bytes_to_disk:
    # each array's tobytes() through a BufferedWriter into one BytesIO, then
    # read back one shard at a time.
    group = io.BytesIO()
    writer = io.BufferedWriter(group)
    total = 0
    for array in encoded:
        data = array.tobytes()
        writer.write(data)
        total += len(data)
    writer.flush()
    group.seek(0)
    count = -(-total // shard_size)
    paths = []
    for index in range(count):
        path = f"group{group_number}-shard{index + 1}of{count}.bin"
        write_synced(os.path.join(out_dir, path), group.read(shard_size))
        paths.append(path)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("out_dir")
    parser.add_argument("--quantize", choices=["uint8", "uint16", "float16"])
    parser.add_argument("--shard-size", type=int, default=4 * 1024 * 1024)
    args = parser.parse_args()

    entries, encoded = [], []
    for name, data in load_bundle(args.bundle):
        shape = [int(n) for n in data.shape]
        data, dtype = convert(name, data)
        entry = {"name": name, "shape": shape, "dtype": dtype}
        if args.quantize and dtype == "float32":
            data, entry["quantization"] = quantize(name, data, args.quantize)
        entries.append(entry)
        encoded.append(data)

    os.makedirs(args.out_dir, exist_ok=True)
    paths = write_group(args.out_dir, 1, encoded, args.shard_size)
    manifest = [{"paths": paths, "weights": entries}]
    write_synced(os.path.join(args.out_dir, "weights_manifest.json"),
                 json.dumps(manifest).encode())


if __name__ == "__main__":
    main()
