#!/usr/bin/python3
"""Writes a small example bundle the way training code does (np.savez): a
two-layer MLP with an embedding and a training step counter, so grouping and
quantization show.

  make_example_bundle.py [--strings] OUT

--strings adds a string weight, "vocab" (a NumPy U array, published as a
tfjs string weight). tf.io.loadWeights cannot load such a manifest; see the
README, "String weights". OUT is written as given, with no ".npz" appended,
so it may be a name the daemon ignores until renamed (drop/mlp.npz.part).
"""
import argparse

import numpy as np

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("out", nargs="?", default="example.npz")
parser.add_argument("--strings", action="store_true", help='add the string weight "vocab"')
args = parser.parse_args()

rng = np.random.default_rng(7)
weights = {
    "embedding/table": rng.standard_normal((1000, 64), dtype=np.float32),
    "dense1/kernel": rng.standard_normal((64, 128), dtype=np.float32) * 0.1,
    "dense1/bias": np.zeros(128, dtype=np.float32),
    "dense2/kernel": rng.standard_normal((128, 10), dtype=np.float32) * 0.1,
    "dense2/bias": np.linspace(-1, 1, 10, dtype=np.float32),
}
if args.strings:
    weights["vocab"] = np.array(["<pad>", "hello", "wörld"])
weights["step"] = np.int64(1200)
# A file object: np.savez appends ".npz" to a file name that lacks it.
with open(args.out, "wb") as f:
    np.savez(f, **weights)
print(args.out)
