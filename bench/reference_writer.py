#!/usr/bin/python3
"""The real reference writer: tensorflowjs' write_weights on a NumPy bundle.

Timed by measure.py only where `import tensorflowjs.write_weights` works
(it imports TensorFlow; this project's standard box has neither, and the
report then says "reference writer: not available"). Loads the bundle with
np.load as numpy_baseline.py does, then one group of every weight in bundle
order, 4 MiB shards, and --quantize DTYPE for every float32 weight
(quantization_dtype_map {DTYPE: True}, tfjs-converter's "all weights").
Written from tfjs-converter's write_weights signature, not run on this box.

Usage: reference_writer.py BUNDLE OUT_DIR [--quantize uint8|uint16|float16]
"""

import argparse
import os

import numpy as np
from tensorflowjs import write_weights

from numpy_baseline import load_bundle


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("out_dir")
    parser.add_argument("--quantize", choices=["uint8", "uint16", "float16"])
    args = parser.parse_args()
    group = [{"name": name, "data": np.asarray(data)}
             for name, data in load_bundle(args.bundle)]
    os.makedirs(args.out_dir, exist_ok=True)
    write_weights.write_weights(
        [group], args.out_dir, shard_size_bytes=4 * 1024 * 1024,
        quantization_dtype_map={args.quantize: True} if args.quantize else None)


if __name__ == "__main__":
    main()
