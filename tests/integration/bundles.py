"""NumPy weight bundles for the integration tests, and what tfjs must decode.

Every `write_*` function writes one bundle (an .npz file, or a folder for
`write_folder`) at `path` and returns the source arrays as a dict
{weight name: np.ndarray}, in bundle order (docs/formats.md). `tfjs_values`
turns a source array into what a tfjs client must decode for it when it is
not quantized (docs/formats.md, Dtypes); `encode_tfjs` gives the bytes
the reference writer stores for it. Run with /usr/bin/python3 (needs NumPy).
"""

import os

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def _savez(path, arrays, compressed=False):
    """Writes `arrays` (insertion order = member order) to `path`."""
    saver = np.savez_compressed if compressed else np.savez
    with open(path, "wb") as f:  # a file object: NumPy adds no ".npz"
        saver(f, **arrays)
    return dict(arrays)


def _raw_bool(byte_values):
    """A bool array whose stored bytes are `byte_values` (e.g. 2, 255)."""
    return np.frombuffer(bytes(byte_values), dtype=np.uint8).view(np.bool_)


def _fortran_3d():
    return np.asfortranarray(np.arange(1, 25, dtype=np.float32).reshape(2, 3, 4) / 7)


def write_numeric(path):
    """Every numeric NumPy dtype the spec maps, with edge values; no strings."""
    f2 = np.array([0.5, -0.0, 65504, 6e-8, np.inf, -np.inf, np.nan, 1 / 3], np.float16)
    f8 = np.array([0.1, 1e-40, -3.5, 1e300, -1e-300, 1 / 3, np.nan], np.float64)
    arrays = {
        "f2": f2,
        "f4": np.array([1.5, -0.0, np.inf, np.nan, 1e-45, -3.4028235e38], np.float32),
        "f8": f8,
        "ints/i1": np.array([-128, 127, 0, -1], np.int8),
        "ints/i2": np.array([-32768, 32767, 5], np.int16),
        "ints/i4": np.array([[INT32_MIN, INT32_MAX], [0, -7]], np.int32),
        "ints/i8": np.array([INT32_MIN, INT32_MAX, 42], np.int64),
        "ints/u1": np.array([0, 255, 128], np.uint8),
        "ints/u2": np.array([0, 65535, 300], np.uint16),
        "ints/u4": np.array([0, INT32_MAX, 1], np.uint32),
        "ints/u8": np.array([INT32_MAX, 0, 9], np.uint64),
        "b1": _raw_bool([0, 1, 2, 255, 0]),
        "c8": np.array([1 + 2j, -0.5 - 0j, np.inf + 1j], np.complex64),
        "c16": np.array([[1e-3 + 1j / 3], [-2.0 + 1e38j]], np.complex128),
        "fortran3d": _fortran_3d(),
        "be/f4": np.array([1.25, -2.0, 3e-5], ">f4"),
        "be/i8": np.array([INT32_MIN, 17, -1], ">i8"),
        "be/c16": np.array([1.5 - 2.5j, 1j / 3], ">c16"),
        "scalar": np.array(2.718281828, np.float64),
        "empty/f4": np.zeros((0,), np.float32),
        "empty/i4x2x0": np.zeros((2, 0), np.int32),
        "tail": np.arange(1, 6, dtype=np.float32),
    }
    return _savez(path, arrays)


def write_strings_mixed(path, compressed=False):
    """String weights (U and S, non-ASCII, empty, inner NULs) among numbers."""
    arrays = {
        "pre": np.arange(3, dtype=np.int32) + 10,
        "u": np.array([["здраво", "end"], ["", "日本語🙂"]], "<U6"),
        "s": np.array([b"hello", b"a\x00b", b"", b"\xc3\xa9"], "S5"),
        "mid": np.array([0.25, -1.0], np.float32),
        "be/u3": np.array(["abc", "é", ""], ">U3"),
        "u/empty": np.zeros((0,), "<U4"),
        "u/scalar": np.array("ß"),
        "post": np.array([True, False, True]),
    }
    return _savez(path, arrays, compressed)


def write_compressed(path):
    """np.savez_compressed members: fortran order, big-endian, 3-D."""
    arrays = {
        "t": _fortran_3d(),
        "m": np.asfortranarray(np.arange(6, dtype=">i4").reshape(2, 3) - 3),
        "be/f8": np.array([[1.0, 2.5], [-1e-3, 7.0]], ">f8"),
        "c": np.array([3 - 4j], np.complex64),
    }
    return _savez(path, arrays, compressed=True)


def write_folder(path, with_model_json=True):
    """A folder bundle with nested dirs, hidden and partial files to ignore."""
    arrays = {
        "a": np.arange(4, dtype=np.float32) - 1.5,
        "dense/bias": np.array([0.5, -0.5], np.float64),
        "dense/kernel": np.arange(6, dtype=np.int16).reshape(2, 3),
        "dense/sub/deep/w": np.asfortranarray(np.arange(6, dtype=">f4").reshape(3, 2)),
        "z": np.array([[True], [False]]),
    }
    for name, arr in arrays.items():
        file_path = os.path.join(path, *name.split("/")) + ".npy"
        os.makedirs(os.path.dirname(file_path), exist_ok=True)
        np.save(file_path, arr)
    ignored = {".hidden.npy": 1.0, "dense/x.npy.tmp": 2.0, "dense/y.npy.part": 3.0}
    for rel, value in ignored.items():
        with open(os.path.join(path, rel), "wb") as f:
            np.save(f, np.array([value], np.float32))
    if with_model_json:
        with open(os.path.join(path, "model.json"), "w") as f:
            f.write('{"format": "graph-model", "generatedBy": "bundles.py",'
                    ' "modelTopology": {"node": []}}')
    return arrays


def write_quantize(path):
    """Weights for a quantization map: q8/* uint8, q16/* uint16, h/* float16.

    Names outside the patterns, and non-float weights inside them, stay
    unquantized (`QUANTIZE_CONFIG` / `QUANTIZE_FLAGS` express the map).
    """
    rng = np.random.default_rng(7)
    h = [65504, 65519, -65519, 6e-8, 3e-8, 1e-8, 2049, 0.1, -0.0, 1 + 2**-11]
    arrays = {
        "q8/w": (rng.standard_normal(50) * 3).astype(np.float32),
        "q8/const": np.full(4, 2.5, np.float32),
        "q8/positive": np.linspace(3, 9, 11).astype(np.float32),
        "q8/negative": np.linspace(-9, -3, 7).astype(np.float64),
        "q8/ints": np.array([5, 300], np.int32),
        "q16/w": (rng.standard_normal(40) * 0.01).astype(np.float32),
        "q16/f16": np.array([-1, 0.5, 2, 1e-4], np.float16),
        "h/w": np.array(h, np.float32),
        "h/special": np.array([np.inf, -np.inf, np.nan, 1.0], np.float32),
        "h/f8": np.array([[1 / 3, 1e-9], [-70.123456789, 12345.678]], np.float64),
        "plain/w": np.array([0.1, 0.2], np.float32),
    }
    return _savez(path, arrays)


QUANTIZE_CONFIG = """shard_size: 64
groups: single
quantize:
  uint8: ["q8/*"]
  uint16: ["q16/*"]
  float16: "h/*"
"""
QUANTIZE_FLAGS = ["--shard-size", "64", "--quantize", "uint8=q8/*",
                  "--quantize", "uint16=q16/*", "--quantize", "float16=h/*"]
QUANTIZED = {"q8/w": "uint8", "q8/const": "uint8", "q8/positive": "uint8",
             "q8/negative": "uint8", "q16/w": "uint16", "q16/f16": "uint16",
             "h/w": "float16", "h/special": "float16", "h/f8": "float16"}


def write_layers(path):
    """A Keras-like per-layer bundle for `groups: {by_prefix: 1}` and
    explicit groups; sizes chosen so weights straddle small shards."""
    arrays = {}
    for layer in range(1, 5):
        arrays[f"layer{layer}/kernel"] = (
            np.arange(layer * 9, dtype=np.float32).reshape(3, layer * 3) / (layer + 1))
        arrays[f"layer{layer}/bias"] = np.arange(layer * 3, dtype=np.int64) - layer
    arrays["layer3/scale"] = np.array([0.125, -4.0], np.float64)
    arrays["global_step"] = np.array(1234, np.int64)
    return _savez(path, arrays)


def write_hazard(path, groups):
    """Float32/int32 weights given as groups [[(name, n_elements), ...], ...]:
    names ending in 'i' are int32, others float32; values are non-zero so a
    weight decoded as zeros is always visibly wrong."""
    arrays = {}
    for group in groups:
        for name, count in group:
            values = np.arange(1, count + 1)
            if name.endswith("i"):
                arrays[name] = values.astype(np.int32) * -3
            else:
                arrays[name] = values.astype(np.float32) / 8 + 0.5
    return _savez(path, arrays)


def write_hazard_strings(path):
    """A small first group, then numbers and strings in the last group."""
    arrays = {
        "a/i": np.array([7, 8, 9], np.int32),
        "b/f": np.arange(1, 11, dtype=np.float32),
        "b/s": np.array(["héllo", "", "x" * 30, "end"], "<U30"),
        "b/g": np.array([2.5, 3.5], np.float32),
    }
    return _savez(path, arrays)


def tfjs_dtype(arr):
    """The tfjs dtype of an unquantized source array (docs/formats.md, Dtypes)."""
    kind = arr.dtype.kind
    return {"f": "float32", "i": "int32", "u": "int32", "b": "bool",
            "c": "complex64", "U": "string", "S": "string"}[kind]


def tfjs_values(arr):
    """What tfjs must decode for `arr` unquantized: a flat C-order array of
    float32 / int32 / uint8 (bool as 0/1) / complex64, or for strings a
    list of bytes objects (UTF-8 for U, raw for S, trailing NULs stripped)."""
    dtype = tfjs_dtype(arr)
    flat = np.ascontiguousarray(arr).reshape(-1)
    if dtype == "string":
        if arr.dtype.kind == "U":
            return [str(x).encode("utf-8") for x in flat]
        return [bytes(x) for x in flat]
    if dtype == "bool":
        return (flat.view(np.uint8) != 0).astype(np.uint8)
    if dtype == "int32":
        wide = flat.astype(np.int64)
        if wide.size and (wide.min() < INT32_MIN or wide.max() > INT32_MAX):
            raise ValueError("bundle generator produced an int out of int32 range")
        return wide.astype(np.int32)
    if dtype == "complex64":
        return flat.astype(np.complex64)
    with np.errstate(over="ignore"):
        return flat.astype(np.float32)


def encode_tfjs(arr):
    """The bytes the reference writer stores for unquantized `arr`."""
    values = tfjs_values(arr)
    if isinstance(values, list):
        return b"".join(len(v).to_bytes(4, "little") + v for v in values)
    return values.astype(values.dtype.newbyteorder("<")).tobytes()
