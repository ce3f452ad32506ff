"""Generators of malformed and hostile weight bundles for cli_test.py.

Every function returns bytes (or writes a folder) that a careful reader must
refuse with a clear error, or treat harmlessly. Built from NumPy's own writer,
hand-written .npy headers, and zipfile with byte-level patches afterwards.
"""

import io
import os
import struct
import zipfile
import zlib

import numpy as np

NPY_MAGIC = b"\x93NUMPY"


# --- .npy building blocks ---------------------------------------------------

def npy_bytes(arr, allow_pickle=False):
    """What np.save writes for `arr`."""
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


def npy_header(descr_repr, shape, fortran=False, version=(1, 0)):
    """A hand-written .npy header; `descr_repr` is the Python literal text."""
    shape_txt = repr(tuple(shape))
    d = (f"{{'descr': {descr_repr}, 'fortran_order': {fortran}, "
         f"'shape': {shape_txt}, }}")
    len_size = 2 if version[0] == 1 else 4
    prefix = 6 + 2 + len_size
    total = prefix + len(d) + 1
    pad = (64 - total % 64) % 64
    body = (d + " " * pad + "\n").encode("latin1")
    fmt = "<H" if len_size == 2 else "<I"
    return NPY_MAGIC + bytes(version) + struct.pack(fmt, len(body)) + body


def header_length(npy):
    """Bytes of header (magic .. newline) in an .npy blob."""
    major = npy[6]
    if major == 1:
        return 10 + struct.unpack("<H", npy[8:10])[0]
    return 12 + struct.unpack("<I", npy[8:12])[0]


def truncated_npy_in_header(arr):
    """Cut in the middle of the header dict."""
    b = npy_bytes(arr)
    return b[: header_length(b) // 2]


def truncated_npy_in_data(arr, missing=3):
    """Full header, data short by `missing` bytes."""
    return npy_bytes(arr)[:-missing]


def bad_magic_npy(arr):
    b = bytearray(npy_bytes(arr))
    b[1:6] = b"NUMPX"
    return bytes(b)


def declared_vs_actual_npy(declared_count, actual_bytes):
    """float32 header declaring `declared_count` elements, `actual_bytes` of data."""
    hdr = npy_header("'<f4'", (declared_count,))
    data = np.arange(actual_bytes, dtype=np.uint8).tobytes()
    return hdr + data


def float128_npy(n=2):
    return npy_header("'<f16'", (n,)) + b"\x00" * (16 * n)


def absurd_shape_npy():
    """(2**40, 2**40) float32 = 2**82 bytes declared, 64 present."""
    return npy_header("'<f4'", (2 ** 40, 2 ** 40)) + b"\x00" * 64


def object_npy():
    arr = np.empty(2, dtype=object)
    arr[0] = {"a": 1}
    arr[1] = [1, 2]
    return npy_bytes(arr, allow_pickle=True)


def structured_npy():
    return npy_bytes(np.zeros(3, dtype=[("a", "<f4"), ("b", "<i4")]))


def datetime_npy():
    return npy_bytes(np.array(["2020-01-01", "2021-06-30"], dtype="datetime64[D]"))


def timedelta_npy():
    return npy_bytes(np.array([1, 2, 3], dtype="timedelta64[s]"))


def void_npy():
    return npy_bytes(np.zeros(3, dtype="V4"))


# --- .npz building blocks ---------------------------------------------------

def npz_bytes(members, compress=False):
    """An .npz from [(member_name, npy_bytes)], written by zipfile."""
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members:
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data,
                       compress_type=method)
    return buf.getvalue()


def npz_of_arrays(**arrays):
    """np.savez output (stored members)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def empty_npz():
    buf = io.BytesIO()
    np.savez(buf)
    return buf.getvalue()


def npz_without_central_directory(**arrays):
    """A valid np.savez archive cut just before its central directory."""
    b = npz_of_arrays(**arrays)
    cd = b.find(b"PK\x01\x02")
    assert cd > 0
    return b[:cd]


def _member_data_offset(blob, name):
    z = zipfile.ZipFile(io.BytesIO(blob))
    info = z.getinfo(name)
    lh = info.header_offset
    assert blob[lh:lh + 4] == b"PK\x03\x04"
    name_len, extra_len = struct.unpack("<HH", blob[lh + 26:lh + 30])
    return lh + 30 + name_len + extra_len, info.compress_size


def npz_with_bad_crc(name, arr):
    """Stored member whose last data byte is flipped (CRC no longer matches)."""
    blob = bytearray(npz_bytes([(name, npy_bytes(arr))]))
    off, size = _member_data_offset(bytes(blob), name)
    blob[off + size - 1] ^= 0x5A
    return bytes(blob)


def npz_with_wrong_crc_field(name, arr, compress=True):
    """Member data intact, but the CRC-32 recorded in both headers is wrong."""
    blob = bytearray(npz_bytes([(name, npy_bytes(arr))], compress=compress))
    lh = blob.find(b"PK\x03\x04")
    cd = blob.find(b"PK\x01\x02")
    for off in (lh + 14, cd + 16):
        (crc,) = struct.unpack("<I", blob[off:off + 4])
        blob[off:off + 4] = struct.pack("<I", crc ^ 0x01020304)
    return bytes(blob)


def npz_with_hostile_member_name(name, arr):
    """A member whose name is a path, e.g. '../../etc/passwd.npy'."""
    return npz_bytes([(name, npy_bytes(arr))])


def npz_with_invalid_utf8_name(arr):
    """Member named b'bad\\xff\\xfe.npy' with the zip UTF-8 flag (bit 11) set."""
    good = "bad\u00e9.npy"  # é is c3 a9 in UTF-8: zipfile sets bit 11
    blob = bytearray(npz_bytes([(good, npy_bytes(arr))]))
    enc = good.encode("utf-8")
    bad = b"bad\xff\xfe.npy"
    assert len(enc) == len(bad)
    count = 0
    i = blob.find(enc)
    while i >= 0:
        blob[i:i + len(enc)] = bad
        count += 1
        i = blob.find(enc, i + 1)
    assert count == 2, count  # local header + central directory
    # Bit 11 must be set in both headers for the name to claim UTF-8.
    lh = blob.find(b"PK\x03\x04")
    cd = blob.find(b"PK\x01\x02")
    assert struct.unpack("<H", blob[lh + 6:lh + 8])[0] & 0x800
    assert struct.unpack("<H", blob[cd + 8:cd + 10])[0] & 0x800
    return bytes(blob)


def zip64_bomb_npz(declared=1 << 50, stored=False, name="w.npy"):
    """A tiny .npz whose one zip64 member declares `declared` bytes in both
    its local and central headers, with an .npy header to match; only that
    header is actually in the file (deflated, or stored)."""
    header = npy_header("'<f4'", ((declared - 128) // 4,))
    header = npy_header("'<f4'", ((declared - len(header)) // 4,))
    assert len(header) + 4 * ((declared - len(header)) // 4) == declared
    if stored:
        data, method = header, 0
    else:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        data, method = c.compress(header) + c.flush(), 8
    fname = name.encode()
    extra = struct.pack("<HHQQ", 1, 16, declared, len(data))
    crc = crc32(header)
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 0x5021, crc,
                        0xFFFFFFFF, 0xFFFFFFFF, len(fname), len(extra)) + fname + extra
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0,
                          0x5021, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(fname),
                          len(extra), 0, 0, 0, 0, 0) + fname + extra
    body = local + data
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(body), 0)
    return body + central + end


def crc32(data):
    return zlib.crc32(data) & 0xFFFFFFFF


# --- folders ----------------------------------------------------------------

def write(path, data):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def duplicate_name_folder(root, name="dupw"):
    """<name>.npy and x.npz holding member <name>: both are weight <name>."""
    write(os.path.join(root, name + ".npy"), npy_bytes(np.arange(3, dtype=np.float32)))
    write(os.path.join(root, "x.npz"),
          npz_of_arrays(**{name: np.arange(4, dtype=np.float32)}))
    return root


def symlink_folder(root, secret_path):
    """A real weight plus link.npy -> secret_path (outside the bundle)."""
    write(os.path.join(root, "real.npy"), npy_bytes(np.ones(2, dtype=np.float32)))
    os.symlink(secret_path, os.path.join(root, "link.npy"))
    return root


def empty_folder(root):
    """A folder bundle with no .npy/.npz, only a text file."""
    write(os.path.join(root, "README.txt"), b"no weights here\n")
    return root
