"""Writes one bundle into a drop folder the way an uploader should: under
NAME.part, then renamed to NAME, so the daemon takes it at once.

  make_bundle.py PATH small      an .npz of two float32 weights, its values
                                 seeded by PATH's name (distinct bundles)
  make_bundle.py PATH bad        an .npy whose header is garbage
  make_bundle.py PATH big MIB    one float32 .npy weight of MIB MiB

Runs as the uploading user inside the booted system (systemd_boot_test.sh).
"""

import os
import sys
import zlib

import numpy as np


def main() -> None:
    path, kind = sys.argv[1], sys.argv[2]
    part = path + ".part"
    with open(part, "wb") as f:
        if kind == "small":
            rng = np.random.default_rng(zlib.crc32(os.path.basename(path).encode()))
            np.savez(f, **{"dense/kernel": rng.standard_normal((16, 8), dtype=np.float32),
                           "dense/bias": rng.standard_normal(8, dtype=np.float32)})
        elif kind == "bad":
            f.write(b"\x93NUMPY\x01\x00\x10\x00{'descr': garbage\n" + b"\0" * 64)
        elif kind == "big":
            n = int(sys.argv[3]) * 1024 * 1024 // 4
            np.save(f, np.arange(n, dtype=np.float32))
        else:
            sys.exit(f"make_bundle.py: unknown kind {kind!r}")
    os.rename(part, path)


if __name__ == "__main__":
    main()
