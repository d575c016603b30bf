"""Writes golden vectors in the format tests/common/golden.c reads.

One record per line: NAME NDIM D0 .. : V0 V1 ...  Values are float32 numbers printed
with Python's repr of the float32 value widened to double, which round-trips exactly
(dtype=np.float64 writes full doubles instead, for values compared in double precision).
"""
import math

import numpy as np


class GoldenWriter:
    def __init__(self, path, header, dtype=np.float32):
        self.f = open(path, "w", encoding="ascii")
        self.dtype = dtype
        for line in header.splitlines():
            self.f.write("# " + line + "\n")
        self.names = set()

    def add(self, name, value):
        if name in self.names or " " in name:
            raise ValueError(f"bad or duplicate golden name {name!r}")
        self.names.add(name)
        a = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value,
                       dtype=self.dtype)
        vals = []
        for v in a.reshape(-1).tolist():
            if math.isnan(v):
                vals.append("nan")
            elif math.isinf(v):
                vals.append("inf" if v > 0 else "-inf")
            else:
                vals.append(repr(float(v)))
        dims = " ".join(str(d) for d in a.shape)
        self.f.write(f"{name} {a.ndim}{' ' if dims else ''}{dims} : {' '.join(vals)}\n")

    def close(self):
        self.f.close()
