#!/usr/bin/env python3
"""PyTorch counterpart of `cltrain bench`: the same model, batch, optimizer and synthetic
data, trained with PyTorch on the CPU with a given number of threads (or, with
--device cuda, on an NVIDIA GPU, to set beside a `cltrain bench` run on that GPU's OpenCL).

    python3 bench/pytorch_minicnn.py --threads 2                  # MiniCNN, batch 64
    python3 bench/pytorch_minicnn.py --model cifar --input 3,32,32
    python3 bench/pytorch_minicnn.py --device cuda

A training step is PyTorch's ordinary loop,

    opt.zero_grad(); loss = F.cross_entropy(model(x), y); loss.backward(); opt.step()

with Adam(lr=1e-3) unless --optimizer says otherwise. Both memory formats are timed (NCHW
and channels_last, each with its own model and optimizer built from the same seed) and
the faster one is PyTorch's best configuration. Each is timed as `cltrain bench` times
itself: --warmup untimed steps, then --runs runs of --steps steps, median step time.
The last line is machine-readable:

    RESULT torch=<version> device=<cpu|cuda> model=<name> batch=<N> threads=<T> train_ips=<images/s>
           train_format=<fmt> infer_ips=<images/s> infer_format=<fmt>
"""
import argparse
import re
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

BUILTIN = {
    "minicnn": "conv(32,3,pad=1) relu maxpool(2) conv(64,3,pad=1) relu maxpool(2) flatten "
               "linear(128) relu linear(10)",
    "cifar": "conv(64,3,pad=1) relu conv(64,3,pad=1) relu maxpool(2) "
             "conv(128,3,pad=1) relu conv(128,3,pad=1) relu maxpool(2) "
             "conv(256,3,pad=1) relu conv(256,3,pad=1) relu maxpool(2) "
             "flatten linear(256) relu linear(10)",
}


def parse_spec(spec, in_shape):
    """The subset of cltrain's layer spec (include/cltrain/model.h) the benchmarks use:
    conv(out, kernel[, stride, pad]), maxpool(kernel[, stride]), relu, flatten,
    linear(out); keyword arguments pad/padding and stride. Returns an nn.Sequential whose
    indices match cltrain's layer indices."""
    spec = BUILTIN.get(spec.strip(), spec)
    layers = []
    shape = tuple(in_shape)
    for m in re.finditer(r"(\w+)(?:\(([^)]*)\))?", spec):
        name, args = m.group(1).lower(), m.group(2)
        pos, kw = [], {}
        for a in (args.split(",") if args else []):
            a = a.strip()
            if "=" in a:
                k, v = a.split("=", 1)
                kw[k.strip()] = int(v)
            elif a:
                pos.append(int(a))
        if name in ("conv", "conv2d"):
            out, k = pos[0], pos[1]
            stride = pos[2] if len(pos) > 2 else kw.get("stride", 1)
            pad = pos[3] if len(pos) > 3 else kw.get("pad", kw.get("padding", 0))
            layer = nn.Conv2d(shape[0], out, k, stride=stride, padding=pad)
        elif name in ("maxpool", "maxpool2d"):
            k = pos[0]
            layer = nn.MaxPool2d(k, stride=pos[1] if len(pos) > 1 else kw.get("stride", k))
        elif name == "relu":
            layer = nn.ReLU()
        elif name == "flatten":
            layer = nn.Flatten()
        elif name in ("linear", "fc", "dense"):
            layer = nn.Linear(shape[0], pos[0])
        else:
            sys.exit(f"pytorch_minicnn.py: layer '{name}' is not supported here")
        layers.append(layer)
        with torch.no_grad():
            shape = tuple(layer(torch.zeros((1,) + shape)).shape[1:])
    return nn.Sequential(*layers), shape


def timed(fn, warmup, runs, steps, sync):
    """Median seconds per call of fn over `runs` runs of `steps` calls, after `warmup`;
    sync() waits for the device before each clock reading."""
    for _ in range(warmup):
        fn()
    per = []
    for _ in range(runs):
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        sync()
        per.append((time.perf_counter() - t0) / steps)
    return statistics.median(per), min(per)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="minicnn")
    ap.add_argument("--input", default="1,28,28", help="C,H,W")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--formats", default="nchw,channels_last")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="torch device: cpu (default) or cuda to compare with a GPU run")
    a = ap.parse_args()
    dev = torch.device(a.device)
    if dev.type == "cuda":
        sync = torch.cuda.synchronize
    else:
        def sync():
            pass

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    in_shape = tuple(int(v) for v in a.input.split(","))
    g = torch.Generator().manual_seed(a.seed)
    x0 = torch.rand((a.batch,) + in_shape, generator=g) * 2 - 1
    probe, out_shape = parse_spec(a.model, in_shape)
    y = torch.randint(0, out_shape[0], (a.batch,), generator=g)
    nparams = sum(p.numel() for p in probe.parameters())
    x0, y = x0.to(dev), y.to(dev)
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"pytorch {torch.__version__} on {where}: {a.model}, input {in_shape}, batch {a.batch}, "
          f"{nparams} parameters, {a.optimizer} lr {a.lr}, {torch.get_num_threads()} threads; "
          f"{a.runs} runs of {a.steps} steps after {a.warmup} warm-up steps")

    best = {"train": (0.0, None), "infer": (0.0, None)}
    for fmt in a.formats.split(","):
        torch.manual_seed(a.seed)
        model, _ = parse_spec(a.model, in_shape)
        mf = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
        model = model.to(dev, memory_format=mf)
        x = x0.contiguous(memory_format=mf) if x0.dim() == 4 else x0
        if a.optimizer == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=a.lr)
        else:
            opt = torch.optim.SGD(model.parameters(), lr=a.lr)

        def step():
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()

        med, fast = timed(step, a.warmup, a.runs, a.steps, sync)
        ips = a.batch / med
        print(f"  {fmt:14s} train  median {med * 1e3:9.3f} ms/step = {ips:8.0f} images/s "
              f"(best {a.batch / fast:8.0f})")
        if ips > best["train"][0]:
            best["train"] = (ips, fmt)

        model.eval()

        def infer():
            with torch.no_grad():
                model(x)

        med, fast = timed(infer, a.warmup, a.runs, a.steps, sync)
        ips = a.batch / med
        print(f"  {fmt:14s} infer  median {med * 1e3:9.3f} ms/batch = {ips:8.0f} images/s "
              f"(best {a.batch / fast:8.0f})")
        if ips > best["infer"][0]:
            best["infer"] = (ips, fmt)

    print(f"RESULT torch={torch.__version__} device={a.device} model={a.model} batch={a.batch} "
          f"threads={torch.get_num_threads()} train_ips={best['train'][0]:.1f} "
          f"train_format={best['train'][1]} infer_ips={best['infer'][0]:.1f} "
          f"infer_format={best['infer'][1]}")


if __name__ == "__main__":
    main()
