#!/usr/bin/python3
"""safetensors fixtures written by Python's own `safetensors` package, and their values.

Run from anywhere with the system Python that has torch (1.13) and safetensors:
    /usr/bin/python3 -m pip install --break-system-packages safetensors   # once
    /usr/bin/python3 tests/golden/gen_safetensors.py
CI never runs this; the output is committed:
  tests/golden/data/safetensors/basic.safetensors   F32 tensors of rank 0..4, two empty
                                                    ones, UTF-8 metadata
  tests/golden/data/safetensors/dtypes.safetensors  F16, BF16 (subnormals, +-0, +-inf,
                                                    NaN), F64, I64, I32, I16, I8, U8, BOOL
  tests/golden/data/safetensors/model.safetensors   the state_dict of
        nn.Sequential(Conv2d(1,4,3,padding=1), BatchNorm2d(4), ReLU(), MaxPool2d(2),
                      Flatten(), Linear(64,3))
        for (1, 8, 8) inputs, after three train-mode forwards (so the BatchNorm running
        statistics and num_batches_tracked (I64) are not their initial values);
        cltrain's spec for it: "conv(4,3,pad=1) bn relu maxpool(2) flatten linear(3)"
  tests/golden/data/safetensors.txt   the values, as float32 (file.tensor records; integer
                                      and F64 values are chosen exact in float32)
  tests/fuzz/corpus/safetensors/*     the fixtures plus two tiny files, as fuzzing seeds
"""
import os
import shutil
import sys

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from golden_io import GoldenWriter  # noqa: E402

DATA = os.path.join(HERE, "data", "safetensors")
CORPUS = os.path.join(HERE, "..", "fuzz", "corpus", "safetensors")


def main():
    os.makedirs(DATA, exist_ok=True)
    os.makedirs(CORPUS, exist_ok=True)
    g = GoldenWriter(os.path.join(HERE, "data", "safetensors.txt"),
                     "written by tests/golden/gen_safetensors.py; read by "
                     "tests/unit/test_safetensors.c and tests/unit/test_checkpoint.c")
    gen = torch.Generator().manual_seed(20240607)

    basic = {
        "w": torch.randn(3, 4, generator=gen),
        "conv.weight": torch.randn(2, 1, 3, 3, generator=gen),
        "b": torch.rand(5, generator=gen) - 0.5,
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 3),
        "empty1d": torch.zeros(0),
        "cube": torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) / 7,
    }
    save_file(basic, os.path.join(DATA, "basic.safetensors"),
              metadata={"format": "pt", "note": "\u00fcn\u00efc\u00f6d\u00e9 \u2713"})
    for k, v in basic.items():
        g.add("basic." + k, v)

    specials = [0.0, -0.0, 1.0, -2.5, 1.0 / 3.0, 65504.0, 2.0 ** -24, 2.0 ** -14 * 0.75,
                float("inf"), float("-inf"), float("nan"), 1e-3]
    h = torch.tensor(specials, dtype=torch.float16)
    bspecials = specials + [3.0e38, 1.0e-40]
    bf = torch.tensor(bspecials, dtype=torch.bfloat16)
    dtypes = {
        "h": h,
        "bf": bf.reshape(2, 7),
        "d": torch.tensor([0.5, -2.25, 1024.0, 2.0 ** -20], dtype=torch.float64),
        "i64": torch.tensor([-7, 0, 123456, 16777216], dtype=torch.int64),
        "i32": torch.tensor([[-2147483648, 5], [77, 2147483647]], dtype=torch.int32),
        "i16": torch.tensor([-32768, 32767], dtype=torch.int16),
        "i8": torch.tensor([-128, 127, 3], dtype=torch.int8),
        "u8": torch.tensor([0, 255, 17], dtype=torch.uint8),
        "flags": torch.tensor([True, False, True]),
        "count": torch.tensor(42, dtype=torch.int64),
    }
    save_file(dtypes, os.path.join(DATA, "dtypes.safetensors"))
    g.add("dtypes.h", h.float())
    g.add("dtypes.bf", bf.reshape(2, 7).float())
    g.add("dtypes.d", dtypes["d"].float())
    g.add("dtypes.i64", dtypes["i64"].float())
    g.add("dtypes.count", dtypes["count"].float())

    torch.manual_seed(7)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
        torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 3))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(5, 1, 8, 8, generator=gen))
    sd = model.state_dict()
    save_file(sd, os.path.join(DATA, "model.safetensors"))
    for k, v in sd.items():
        g.add("model." + k, v.float())
    g.close()

    for name in ("basic", "dtypes", "model"):
        shutil.copy(os.path.join(DATA, name + ".safetensors"),
                    os.path.join(CORPUS, name + ".safetensors"))
    save_file({}, os.path.join(CORPUS, "empty.safetensors"))
    save_file({"x": torch.ones(1, dtype=torch.float16)},
              os.path.join(CORPUS, "tiny.safetensors"), metadata={"k": "v"})


if __name__ == "__main__":
    main()
