#!/usr/bin/python3
"""Writes the bit-exactness fixtures under tests/data/quant/ with NumPy 1.24.

Run with /usr/bin/python3 (Debian's numpy 1.24: the legacy value-based
casting that tfjs-converter's quantization relied on):

    /usr/bin/python3 tests/data/make_quant_vectors.py

Outputs (all little-endian):
  float16.bin   u32 N, N x u32 float32 bits, N x u16 NumPy astype(float16) bits
  affine.json   one entry per (array, dtype): where its input and expected
                bytes sit in affine.bin, and the manifest min/scale as exact
                float64 bit patterns
  affine.bin    concatenated float32 inputs and expected uint8/uint16 bytes
  elements.json / elements.bin: raw .npy element bytes of many dtypes and the
                bytes tfjs reads for them (ElementCodec)
The golden cases' arrays are included and checked against their expected
shards and manifests, so the fixtures cannot drift from the golden files.
"""

import json
import os
import struct

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "quant")
GOLDEN = os.path.join(HERE, "..", "golden")

assert np.__version__.startswith("1."), "needs NumPy 1.x value-based casting"


def f64_bits(v):
    return "0x%016x" % struct.unpack("<Q", struct.pack("<d", float(v)))[0]


# ---------------------------------------------------------------- float16

def float16_inputs(rng):
    bits = []
    specials = [0x00000000, 0x80000000, 0x7F800000, 0xFF800000,
                0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7F802000,
                0x7FBFE000, 0x7F801FFF, 0x7FFFFFFF, 0x7FA00000, 0x00000001,
                0x80000001, 0x007FFFFF]
    bits += specials
    for v in [65504.0, 65519.99, 65520.0, -65520.0, 65535.0, 1e5, 6.1035156e-05,
              5.9604645e-08, 2.9802322e-08, 2.9802326e-08, 8.940697e-08, 1.0009766,
              1.00048828125, 1.00146484375, 0.1, 1.0 / 3.0, 2049.0, 2051.0, 4097.0]:
        for s in (1, -1):
            bits.append(int(np.float32(s * v).view(np.uint32)))
    # Every float32 exponent with mantissas around the half rounding points:
    # exact, ties (even and odd half lsb), just above/below ties, extremes.
    mantissas = [0, 1, 0x0FFF, 0x1000, 0x1001, 0x2000, 0x2FFF, 0x3000, 0x3001,
                 0x400000, 0x7FE000, 0x7FEFFF, 0x7FF000, 0x7FFFFF]
    for e in range(256):
        for m in mantissas:
            for s in (0, 1):
                bits.append((s << 31) | (e << 23) | m)
    # Exact halfway points between adjacent subnormal / small halves.
    for h in range(0, 0x0800, 7):
        lo = np.uint16(h).view(np.float16).astype(np.float64)
        hi = np.uint16(h + 1).view(np.float16).astype(np.float64)
        bits.append(int(np.float32((lo + hi) / 2).view(np.uint32)))
    bits += [int(b) for b in rng.integers(0, 2**32, size=16384, dtype=np.uint64)]
    return np.array(bits, dtype=np.uint32)


def write_float16(rng):
    fbits = float16_inputs(rng)
    halves = fbits.view(np.float32).astype(np.float16).view(np.uint16)
    with open(os.path.join(OUT, "float16.bin"), "wb") as f:
        f.write(struct.pack("<I", len(fbits)))
        f.write(fbits.astype("<u4").tobytes())
        f.write(halves.astype("<u2").tobytes())
    return len(fbits)


# ---------------------------------------------------------------- affine

def reference_affine(data, qdtype):
    """tfjs-converter's quantize_weights, step for step, under NumPy 1.24."""
    min_val = data.min().astype(np.float64)
    max_val = data.max().astype(np.float64)
    if min_val == max_val:
        return np.zeros_like(data, dtype=qdtype), min_val, 1.0, False
    quant_max = np.iinfo(qdtype).max
    scale = (max_val - min_val) / quant_max
    if min_val <= 0 <= max_val:
        zero_point = np.round((0 - min_val) / scale)
        nudged_min = -zero_point * scale
        nudged_max = quant_max * scale + nudged_min
    else:
        nudged_min, nudged_max = min_val, max_val
    clipped = data.clip(nudged_min, nudged_max)
    with np.errstate(all="ignore"):  # ranges beyond FLT_MAX: keep NumPy's bytes
        q = np.round((clipped - nudged_min) / scale).astype(qdtype)
    return q, nudged_min, scale, clipped.dtype == np.float64


def f32(values):
    return np.array(values, dtype=np.float32)


def affine_arrays(rng):
    grid = np.float32(-3.0) + np.arange(256, dtype=np.float32) * np.float32(6.0 / 255)
    half_steps = np.arange(0, 256, dtype=np.float32) + np.float32(0.5)
    arrays = {
        "normal": rng.standard_normal(512).astype(np.float32),
        "normal_wide": (rng.standard_normal(512) * 1e3).astype(np.float32),
        "uniform_positive": rng.uniform(3, 7, 512).astype(np.float32),
        "uniform_negative": rng.uniform(-9, -0.5, 512).astype(np.float32),
        "relu_min_zero": np.maximum(rng.standard_normal(300), 0).astype(np.float32),
        "max_zero": -np.abs(rng.standard_normal(300)).astype(np.float32),
        "negative_zero_min": f32([-0.0, 1.0, 2.0, 0.5]),
        "constant": f32([2.5] * 7),
        "constant_zero": f32([0.0] * 3),
        "constant_negative": f32([-1e-3] * 5),
        "single": f32([42.0]),
        "ties_zero_min": np.concatenate([f32([0.0, 255.0]), half_steps[:255]]),
        "ties_shifted": np.concatenate([f32([-1.0, 254.0]), half_steps[:254] - 1]),
        "ties_uint16": np.concatenate([f32([0.0, 65535.0]),
                                       np.arange(0, 65535, 97, dtype=np.float32) + 0.5]),
        "grid_midpoints": np.concatenate([grid, (grid[:-1] + grid[1:]) / 2]),
        "tiny_range": f32([1.0, np.nextafter(np.float32(1), np.float32(2)),
                           np.nextafter(np.float32(1), np.float32(2)) * 2 - 1]),
        "tiny_around_zero": f32([-1e-30, 0.0, 1e-30, 3e-31, -7e-31]),
        "subnormal_range": f32([-1e-45, 0.0, 1e-45]),
        "huge_1e30": np.concatenate([f32([-1e30, 1e30, 0.0]),
                                     (rng.standard_normal(64) * 1e29).astype(np.float32)]),
        "huge_positive": f32([1e30, 3e30, 2e30, 1.5e30]),
        "range_beyond_flt_max": f32([-3e38, 0.0, 1.0, 3e38]),
        "numpy_goes_float64": f32([-3.4e38, 3.4e38, 0.0, 1e38]),
        "near_flt_max_positive": f32([3.39e38, 3.4e38, np.finfo(np.float32).max]),
        "extremes_mixed": f32([-1.0, 1e-38, 1e-45, -1e-45, 0.75, -0.25]),
    }
    return arrays


def golden_arrays():
    """Quantized weights of the golden cases, with their expected bytes."""
    cases = {
        "05-uint8": [("k/kernel", np.uint8), ("k/const", np.uint8), ("k/positive", np.uint8),
                     (None, 8)],
        "06-uint16-float16": [("a", np.uint16), (None, 14)],
        "07-groups-fallthrough": [("enc/w", np.uint8), (None, 4), ("dec/w", np.uint8),
                                  (None, 4)],
    }
    out = []
    for case, layout in cases.items():
        d = os.path.join(GOLDEN, case)
        z = np.load(os.path.join(d, "bundle.npz"))
        manifest = json.load(open(os.path.join(d, "expected", "weights_manifest.json")))
        quant = {w["name"]: w["quantization"] for g in manifest for w in g["weights"]
                 if "quantization" in w}
        blob = b""
        for g in manifest:
            for p in g["paths"]:
                blob += open(os.path.join(d, "expected", p), "rb").read()
        pos = 0
        for name, qd in layout:
            if name is None:  # a weight we do not test here: skip its bytes
                pos += qd
                continue
            n = z[name].size * np.dtype(qd).itemsize
            expected = blob[pos:pos + n]
            pos += n
            q, mn, scale, _ = reference_affine(z[name].ravel(), qd)
            assert q.astype("<" + np.dtype(qd).str[1:]).tobytes() == expected, (case, name)
            assert float(mn) == quant[name]["min"] and float(scale) == quant[name]["scale"]
            assert np.signbit(mn) == np.signbit(quant[name]["min"]), (case, name)
            out.append(("golden_%s_%s" % (case[:2], name.replace("/", "_")),
                        z[name].ravel().astype(np.float32), qd))
    return out


def write_affine(rng):
    blob = bytearray()
    index = []
    vectors = [(k, v, qd) for k, v in affine_arrays(rng).items()
               for qd in (np.uint8, np.uint16)] + golden_arrays()
    input_at = {}
    for name, data, qd in vectors:
        if name not in input_at:
            input_at[name] = len(blob)
            blob += data.astype("<f4").tobytes()
        q, mn, scale, wide = reference_affine(data, qd)
        out_at = len(blob)
        blob += q.astype("<" + np.dtype(qd).str[1:]).tobytes()
        index.append({
            "name": name, "dtype": np.dtype(qd).name, "count": int(data.size),
            "input_offset": input_at[name], "output_offset": out_at,
            "data_min": f64_bits(data.min().astype(np.float64)),
            "data_max": f64_bits(data.max().astype(np.float64)),
            "min": f64_bits(mn), "scale": f64_bits(scale), "float64_step": bool(wide),
            "min_repr": repr(float(mn)), "scale_repr": repr(float(scale)),
        })
    with open(os.path.join(OUT, "affine.bin"), "wb") as f:
        f.write(bytes(blob))
    with open(os.path.join(OUT, "affine.json"), "w") as f:
        json.dump(index, f, indent=1)
    return len(index)


# ---------------------------------------------------------------- elements

def encode_strings(arr):
    """tfjs write_weights' string encoding: <u4 byte length, then UTF-8."""
    out = b""
    for x in arr.ravel().tolist():
        b = x if isinstance(x, bytes) else x.encode("utf-8")
        out += struct.pack("<I", len(b)) + b
    return out


def expected_elements(arr):
    k = arr.dtype.kind
    if k == "f":
        return arr.astype("<f4").tobytes()
    if k in "iu":
        assert arr.size == 0 or (arr.min() >= -2**31 and arr.max() < 2**31)
        return arr.astype("<i4").tobytes()
    if k == "b":
        return (arr.view(np.uint8) != 0).astype(np.uint8).tobytes()
    if k == "c":
        return arr.astype("<c8").tobytes()
    return encode_strings(arr)


def element_arrays(rng):
    ints = rng.integers(-2**31, 2**31, 64)
    floats = np.concatenate([rng.standard_normal(64) * 1e3,
                             [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40, 1e-50, 3.5e38, 1e300,
                              -1e300, 0.1, 1 + 2**-24, 1 + 3 * 2**-24, 65519.99]])
    raw_bool = np.array([0, 1, 2, 255, 0, 128], np.uint8)
    arrays = {
        "f4_le": floats.astype("<f4"), "f4_be": floats.astype(">f4"),
        "f8_le": floats.astype("<f8"), "f8_be": floats.astype(">f8"),
        "f2_le": np.arange(0, 65536, 13, dtype=np.uint32).astype(np.uint16).view("<f2"),
        "f2_be": np.arange(5, 65536, 17, dtype=np.uint32).astype(np.uint16).view("<f2")
                   .astype(">f2"),
        "i1": rng.integers(-128, 128, 40).astype("|i1"),
        "u1": rng.integers(0, 256, 40).astype("|u1"),
        "i2_le": rng.integers(-2**15, 2**15, 40).astype("<i2"),
        "i2_be": rng.integers(-2**15, 2**15, 40).astype(">i2"),
        "u2_le": rng.integers(0, 2**16, 40).astype("<u2"),
        "u2_be": rng.integers(0, 2**16, 40).astype(">u2"),
        "i4_le": ints.astype("<i4"), "i4_be": ints.astype(">i4"),
        "i8_le": np.concatenate([ints, [-2**31, 2**31 - 1]]).astype("<i8"),
        "i8_be": np.concatenate([ints, [-2**31, 2**31 - 1]]).astype(">i8"),
        "u4_le": rng.integers(0, 2**31, 40).astype("<u4"),
        "u4_be": rng.integers(0, 2**31, 40).astype(">u4"),
        "u8_le": np.array([0, 1, 2**31 - 1], "<u8"), "u8_be": np.array([0, 7, 2**31 - 1], ">u8"),
        "b1": raw_bool.view("|b1"),
        "c8_le": (floats[:20] + 1j * floats[20:40]).astype("<c8"),
        "c8_be": (floats[:20] + 1j * floats[20:40]).astype(">c8"),
        "c16_le": (floats[:30] - 1j * floats[30:60]).astype("<c16"),
        "c16_be": (floats[:30] - 1j * floats[30:60]).astype(">c16"),
        "U_le": np.array(["", "a", "é", "😀", "a\x00b", "x😀é\x00\x00", "ünï"], "<U6"),
        "U_be": np.array(["", "a", "é", "😀", "a\x00b", "x😀é\x00\x00", "ünï"], ">U6"),
        "S": np.array([b"", b"hello", b"\x00x", b"a\x00b", b"\xff\xfe", b"ab\x00"], "|S5"),
        "U_2d": np.array([["здраво", "end"], ["test", ""]], "<U6"),
        "empty_f4": np.zeros(0, "<f4"),
    }
    for name, arr in arrays.items():
        assert (arr.dtype.byteorder == ">") == name.endswith("_be"), name
    return arrays


def golden_elements():
    """Unquantized golden weights whose bytes fill a whole expected group."""
    out = []
    for case, names in [("04-auto-conversions", ["f64", "f16", "i64", "c128"]),
                        ("02-strings", ["s", "b"]), ("08-complex", ["c"])]:
        d = os.path.join(GOLDEN, case)
        z = np.load(os.path.join(d, "bundle.npz"))
        manifest = json.load(open(os.path.join(d, "expected", "weights_manifest.json")))
        blob = b"".join(open(os.path.join(d, "expected", p), "rb").read()
                        for g in manifest for p in g["paths"])
        ours = b"".join(expected_elements(z[n]) for n in names)
        assert ours == blob, case
        for n in names:
            out.append(("golden_%s_%s" % (case[:2], n), z[n]))
    return out


def write_elements(rng):
    blob = bytearray()
    index = []
    items = list(element_arrays(rng).items()) + golden_elements()
    for name, arr in items:
        raw = np.ascontiguousarray(arr).tobytes()
        expected = expected_elements(arr)
        index.append({"name": name, "descr": arr.dtype.str, "count": int(arr.size),
                      "input_offset": len(blob), "input_size": len(raw),
                      "output_offset": len(blob) + len(raw), "output_size": len(expected)})
        blob += raw + expected
    with open(os.path.join(OUT, "elements.bin"), "wb") as f:
        f.write(bytes(blob))
    with open(os.path.join(OUT, "elements.json"), "w") as f:
        json.dump(index, f, indent=1)
    return len(index)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240611)
    with np.errstate(all="ignore"):  # overflow to inf is part of what we record
        print("float16 vectors:", write_float16(rng))
        print("affine vectors:", write_affine(rng))
        print("element vectors:", write_elements(rng))
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print("total bytes:", total)
    assert total < 300 * 1024


if __name__ == "__main__":
    main()
