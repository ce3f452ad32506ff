#!/usr/bin/python3
"""Writes a small example bundle the way training code does (np.savez):
a two-layer MLP with an embedding, so grouping and quantization show."""
import sys

import numpy as np

out = sys.argv[1] if len(sys.argv) > 1 else "example.npz"
rng = np.random.default_rng(7)
np.savez(
    out,
    **{
        "embedding/table": rng.standard_normal((1000, 64), dtype=np.float32),
        "dense1/kernel": rng.standard_normal((64, 128), dtype=np.float32) * 0.1,
        "dense1/bias": np.zeros(128, dtype=np.float32),
        "dense2/kernel": rng.standard_normal((128, 10), dtype=np.float32) * 0.1,
        "dense2/bias": np.linspace(-1, 1, 10, dtype=np.float32),
        "vocab": np.array(["<pad>", "hello", "wörld"]),
        "step": np.int64(1200),
    },
)
print(out)
