#!/usr/bin/python3
"""Writes the small .npy/.npz fixtures the reader tests use (tests/data/reader/).

Run with the system Python (it has NumPy): /usr/bin/python3 make_reader_fixtures.py
The output is deterministic (fixed zip timestamps), so re-running it leaves
git clean unless NumPy or zipfile change what they write.
"""
import io
import os
import struct
import time
import warnings
import zipfile

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reader")
STAMP = (2024, 1, 2, 3, 4, 6)
FIXED_EPOCH = 1704164646.0  # 2024-01-02T03:04:06Z


def arrays():
    """The weights every archive fixture holds, in this order."""
    return {
        "dense/kernel": np.arange(12, dtype=np.float32).reshape(3, 4),
        "dense/bias": np.array([0.5, -1.5, 2.0, 4.25], dtype=np.float32),
        "step": np.array(7, dtype=np.int64),
        "mask": np.array([True, False, True]),
        "words": np.array(["a", "héllo", ""]),
        "raw": np.array([b"xy", b"z"]),
        "big_endian": np.array([1, 2, 3], dtype=">i4"),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
    }


def npy_bytes(arr, version=None):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, version=version, allow_pickle=False)
    return buf.getvalue()


def write_zip(path, members, force_zip64=False, stream=None):
    """members: (name, bytes, compress_type). NumPy's own way: zf.open(w)."""
    target = stream if stream is not None else path
    with zipfile.ZipFile(target, "w") as zf:
        for name, data, ctype in members:
            info = zipfile.ZipInfo(name, date_time=STAMP)
            info.compress_type = ctype
            with zf.open(info, "w", force_zip64=force_zip64) as f:
                f.write(data)


class NonSeekable(io.RawIOBase):
    """A write-only stream without seek/tell: zipfile then writes data descriptors."""

    def __init__(self):
        self.buf = bytearray()

    def writable(self):
        return True

    def write(self, b):
        self.buf += b
        return len(b)


def savez_members(compress):
    ctype = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    return [(k + ".npy", npy_bytes(v), ctype) for k, v in arrays().items()]


def write_numpy_archives():
    # Real np.savez / np.savez_compressed output (zip64 local extras). zipfile
    # stamps members with time.time(): pin it so the bytes are reproducible.
    real_time = time.time
    time.time = lambda: FIXED_EPOCH
    try:
        for name, fn in (("savez.npz", np.savez), ("savez_compressed.npz", np.savez_compressed)):
            fn(os.path.join(OUT, name), **arrays())
    finally:
        time.time = real_time


def write_descriptor_archive():
    # Data descriptors (general-purpose flag bit 3): sizes and CRC after the data.
    s = NonSeekable()
    members = savez_members(False)[:2] + savez_members(True)[2:4]
    write_zip(None, members, stream=s)
    with open(os.path.join(OUT, "descriptor.npz"), "wb") as f:
        f.write(bytes(s.buf))


def write_zip64_archive():
    # Force full zip64: zip64 extras in the central directory, zip64 end of
    # central directory record and locator (as a > 4 GiB archive would have).
    old = zipfile.ZIP64_LIMIT
    zipfile.ZIP64_LIMIT = 0
    try:
        members = [(n, d, zipfile.ZIP_DEFLATED if i % 2 else zipfile.ZIP_STORED)
                   for i, (n, d, _) in enumerate(savez_members(False)[:3])]
        write_zip(os.path.join(OUT, "zip64.npz"), members, force_zip64=True)
    finally:
        zipfile.ZIP64_LIMIT = old


def patch(name, old, new):
    path = os.path.join(OUT, name)
    data = open(path, "rb").read()
    assert data.count(old) >= 1, (name, old)
    with open(path, "wb") as f:
        f.write(data.replace(old, new))


def write_bad_crc():
    # One stored member with a data byte flipped: the CRC no longer matches.
    path = os.path.join(OUT, "bad_crc.npz")
    write_zip(path, savez_members(False)[:2])
    data = bytearray(open(path, "rb").read())
    name_len, extra_len = struct.unpack_from("<HH", data, 26)
    first_data = 30 + name_len + extra_len
    header_len = len(npy_bytes(arrays()["dense/kernel"])) - 48
    data[first_data + header_len + 5] ^= 0x40
    open(path, "wb").write(bytes(data))


def write_bomb():
    # A deflated member that inflates to 1 MiB but declares 1000 bytes in
    # both the local header and the central directory.
    path = os.path.join(OUT, "bomb.npz")
    big = npy_bytes(np.zeros(1 << 18, dtype=np.float32))
    write_zip(path, [("w.npy", big, zipfile.ZIP_DEFLATED)])
    data = bytearray(open(path, "rb").read())
    real = struct.pack("<I", len(big))
    lie = struct.pack("<I", 1000)
    assert data.count(real) == 2
    open(path, "wb").write(bytes(data.replace(real, lie)))


def write_short():
    # A deflated member that declares 100 bytes more than it inflates to.
    path = os.path.join(OUT, "short.npz")
    data = npy_bytes(np.arange(64, dtype=np.float32))
    write_zip(path, [("w.npy", data, zipfile.ZIP_DEFLATED)])
    patch("short.npz", struct.pack("<I", len(data)), struct.pack("<I", len(data) + 100))


def write_refused_methods():
    small = npy_bytes(np.array([1.0], dtype=np.float32))
    write_zip(os.path.join(OUT, "bzip2.npz"), [("w.npy", small, zipfile.ZIP_BZIP2)])
    # Set general-purpose flag bit 0 (encrypted) in the local and central
    # headers of a stored member; zipfile cannot write encrypted members.
    path = os.path.join(OUT, "encrypted.npz")
    write_zip(path, [("w.npy", small, zipfile.ZIP_STORED)])
    data = bytearray(open(path, "rb").read())
    data[6] |= 1
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 1
    open(path, "wb").write(bytes(data))


def write_odd_names():
    small = npy_bytes(np.array([1.0], dtype=np.float32))
    s = zipfile.ZIP_STORED
    # A member whose header declares (4,) float32 but holds 3 elements.
    cut = npy_bytes(np.zeros(4, dtype=np.float32))[:-4]
    write_zip(os.path.join(OUT, "mismatch.npz"), [("w.npy", cut, s)])
    write_zip(os.path.join(OUT, "notes.npz"), [("w.npy", small, s), ("notes.txt", b"hi\n", s)])
    warnings.filterwarnings("ignore", "Duplicate name")
    write_zip(os.path.join(OUT, "dup.npz"), [("w.npy", small, s), ("w.npy", small, s)])
    # Invalid UTF-8 in a member name (0xff), patched in place: same length.
    write_zip(os.path.join(OUT, "badname.npz"), [("badX.npy", small, s)])
    patch("badname.npz", b"badX.npy", b"bad\xff.npy")


def write_npy_versions():
    arr = np.arange(6, dtype="<f4").reshape(2, 3)
    for version in ((1, 0), (2, 0), (3, 0)):
        with open(os.path.join(OUT, "v%d.npy" % version[0]), "wb") as f:
            f.write(npy_bytes(arr, version))


def main():
    os.environ["TZ"] = "UTC"
    time.tzset()
    os.makedirs(OUT, exist_ok=True)
    write_numpy_archives()
    write_descriptor_archive()
    write_zip64_archive()
    write_bad_crc()
    write_bomb()
    write_short()
    write_refused_methods()
    write_odd_names()
    write_npy_versions()


if __name__ == "__main__":
    main()
