"""A small safetensors writer for the tests, from the published format:

    file   = length header data
    length = uint64 little-endian: the bytes in `header`
    header = UTF-8 JSON object, padded with spaces (0x20) at its end:
             {NAME: {"dtype": DTYPE, "shape": [dim, ...],
                     "data_offsets": [begin, end]}, ...,
              "__metadata__": {string: string}}       (optional)
    data   = the tensors' bytes, little-endian, C order; `data_offsets` are
             relative to the start of `data`, and the tensors cover it
             exactly, with no hole and no overlap.

The writer lays tensors out back to back in the order given, writes the
header keys "__metadata__" first and then the tensor names sorted (as the
reference Rust implementation does), and pads the header to a multiple of 8
bytes. Keyword arguments break each rule on purpose (serialize()), so the
malformed cases in safetensors_test.py are made here and nowhere else.

Only NumPy is used; BF16 and the float8 types are given as their raw bit
patterns (uint16 / uint8 arrays), because NumPy has no such dtypes.
"""

import json
import os

import numpy as np

# dtype -> NumPy storage dtype (little-endian) of its elements.
STORAGE = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "F8_E4M3": "u1", "F8_E5M2": "u1",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
    "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
    "BOOL": "u1", "C64": "<c8",
}


class Tensor:
    """One tensor: a name, a safetensors dtype and its values as a NumPy
    array in that dtype's storage type (shape taken from the array)."""

    def __init__(self, name, dtype, values, shape=None):
        self.name = name
        self.dtype = dtype
        arr = np.asarray(values, dtype=STORAGE[dtype]) if dtype in STORAGE else \
            np.asarray(values, dtype=np.uint8)
        self.array = arr.reshape(shape) if shape is not None else arr
        self.shape = list(self.array.shape)

    def data(self):
        return np.ascontiguousarray(self.array).tobytes()


def header_dict(tensors, metadata=None):
    """The header as a dict (insertion order = the order it is written):
    "__metadata__" first, then tensor names sorted; offsets are those of
    the tensors laid out back to back in the order given."""
    entries, at = {}, 0
    for t in tensors:
        n = len(t.data())
        entries[t.name] = {"dtype": t.dtype, "shape": t.shape, "data_offsets": [at, at + n]}
        at += n
    out = {}
    if metadata is not None:
        out["__metadata__"] = metadata
    for name in sorted(entries):
        out[name] = entries[name]
    return out


def serialize(tensors, metadata=None, *, edit=None, header=None, align=8, pad=b" ",
              length=None, extra=b"", cut=0):
    """The bytes of a safetensors file holding `tensors` (in data order).

    Rule breakers, for malformed files:
      edit(h)  changes the header dict in place before it is written
      header   bytes written as the JSON text instead of the dict's
      pad      the padding byte (b" " is the only valid one)
      align    pad the header to a multiple of this (1: no padding)
      length   the header length written, instead of the true one
      extra    bytes appended after the data
      cut      bytes cut off the end of the file
    """
    h = header_dict(tensors, metadata)
    if edit is not None:
        edit(h)
    text = header if header is not None else json.dumps(h, separators=(",", ":")).encode()
    if align > 1 and (8 + len(text)) % align:
        text += pad * (align - (8 + len(text)) % align)
    n = len(text) if length is None else length
    blob = n.to_bytes(8, "little") + text + b"".join(t.data() for t in tensors) + extra
    return blob[:len(blob) - cut] if cut else blob


def write(path, tensors, metadata=None, **kw):
    """Writes serialize(...) to `path` (folders made as needed); returns path."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(serialize(tensors, metadata, **kw))
    return path


def shard_name(i, n, stem="model"):
    return "%s-%05d-of-%05d.safetensors" % (stem, i, n)


def write_sharded(folder, shards, metadata=None, *, stem="model", edit_index=None):
    """A sharded Hugging Face checkpoint in `folder`: `shards` is a list of
    tensor lists, one file each (<stem>-0000i-of-0000n.safetensors), plus
    <stem>.safetensors.index.json whose weight_map names each tensor's file.
    edit_index(index) may change the index dict before it is written.
    Returns the shard file names."""
    os.makedirs(folder, exist_ok=True)
    names = [shard_name(i, len(shards), stem) for i in range(1, len(shards) + 1)]
    weight_map, total = {}, 0
    for name, tensors in zip(names, shards):
        write(os.path.join(folder, name), tensors, metadata)
        for t in tensors:
            weight_map[t.name] = name
            total += len(t.data())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    if edit_index is not None:
        edit_index(index)
    with open(os.path.join(folder, stem + ".safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
    return names
