#!/usr/bin/python3
"""Golden vectors for linear, activations, softmax and batch norm
(tests/golden/test_elem_golden.c).

Run from anywhere with the system Python that has torch (1.13):
    /usr/bin/python3 tests/golden/gen_elem.py
Writes tests/golden/data/elem.txt. CI never runs this; the output is committed.

Everything is computed by PyTorch in float32 (torch.nn.functional and torch.nn modules,
gradients by autograd), to pin down PyTorch's semantics where a hand-written reference
could share a misunderstanding with the kernels: the running-statistics update of batch
norm (unbiased variance, momentum), eval mode, the backward at ReLU/LeakyReLU kinks,
log-softmax of large logits. Records:
  lin.x lin.w lin.b lin.dy           inputs; lin.y = relu(x w^T + b); lin.y_nobias_norelu
  lin.dx lin.dw lin.db               gradients of sum(dy * (x w^T + b))
  act.x act.dy                       inputs (with exact zeros)
  act.<k>.y act.<k>.dx               k in relu, leaky001 (slope 0.01), leaky02 (0.2),
                                     sigmoid, tanh
  sm.x sm.y lsm.y                    softmax / log_softmax over dim 1 of (5, 11)
  bn2d.* bn1d.*                      BatchNorm2d(3) on (4, 3, 5, 6), BatchNorm1d(7) on (9, 7),
                                     eps 1e-5 and momentum 0.1 (2d) / eps 1e-3, momentum 0.25 (1d):
    .w .b                            affine parameters
    .x0 .x1 .x2                      three training batches, in order
    .y2                              training output of the third batch
    .rm .rv                          running_mean / running_var after the three batches
    .dy .dx .dw .db                  backward of sum(dy * y2) (training mode)
    .xe .ye                          an eval-mode batch and its output
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_io import GoldenWriter  # noqa: E402

torch.manual_seed(20240601)


def uniform(*shape, lo=-1.0, hi=1.0):
    return torch.rand(*shape, dtype=torch.float32) * (hi - lo) + lo


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "data", "elem.txt")
    g = GoldenWriter(out, __doc__.strip() + "\n\ntorch " + torch.__version__)

    # linear
    x, w, b, dy = uniform(5, 13), uniform(7, 13), uniform(7), uniform(5, 7)
    g.add("lin.x", x)
    g.add("lin.w", w)
    g.add("lin.b", b)
    g.add("lin.dy", dy)
    g.add("lin.y", F.relu(F.linear(x, w, b)))
    g.add("lin.y_nobias_norelu", F.linear(x, w))
    xr, wr, br = (t.clone().requires_grad_(True) for t in (x, w, b))
    F.linear(xr, wr, br).backward(dy)
    g.add("lin.dx", xr.grad)
    g.add("lin.dw", wr.grad)
    g.add("lin.db", br.grad)

    # activations
    x = uniform(45, lo=-5.0, hi=5.0)
    x[::6] = 0.0
    x[1] = 12.0
    x[2] = -12.0
    dy = uniform(45)
    g.add("act.x", x)
    g.add("act.dy", dy)
    acts = {
        "relu": F.relu,
        "leaky001": lambda t: F.leaky_relu(t, 0.01),
        "leaky02": lambda t: F.leaky_relu(t, 0.2),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
    }
    for name, fn in acts.items():
        xr = x.clone().requires_grad_(True)
        y = fn(xr)
        y.backward(dy)
        g.add(f"act.{name}.y", y)
        g.add(f"act.{name}.dx", xr.grad)

    # softmax
    x = uniform(5, 11, lo=-6.0, hi=6.0)
    x[1] += 80.0
    x[3] -= 60.0
    g.add("sm.x", x)
    g.add("sm.y", F.softmax(x, dim=1))
    g.add("lsm.y", F.log_softmax(x, dim=1))

    # batch norm
    for name, mod, shape in (
        ("bn2d", torch.nn.BatchNorm2d(3, eps=1e-5, momentum=0.1), (4, 3, 5, 6)),
        ("bn1d", torch.nn.BatchNorm1d(7, eps=1e-3, momentum=0.25), (9, 7)),
    ):
        with torch.no_grad():
            mod.weight.copy_(uniform(mod.num_features, lo=0.5, hi=1.5))
            mod.bias.copy_(uniform(mod.num_features))
        g.add(f"{name}.w", mod.weight)
        g.add(f"{name}.b", mod.bias)
        mod.train()
        offset = torch.arange(mod.num_features, dtype=torch.float32) * 3.0 - 4.0
        offset = offset.reshape((1, -1) + (1,) * (len(shape) - 2))
        for step in range(3):
            xs = (uniform(*shape, lo=-2.0, hi=2.0) + offset).requires_grad_(True)
            g.add(f"{name}.x{step}", xs)
            y = mod(xs)
        dy = uniform(*shape)
        y.backward(dy)
        g.add(f"{name}.y2", y)
        g.add(f"{name}.rm", mod.running_mean)
        g.add(f"{name}.rv", mod.running_var)
        g.add(f"{name}.dy", dy)
        g.add(f"{name}.dx", xs.grad)
        g.add(f"{name}.dw", mod.weight.grad)
        g.add(f"{name}.db", mod.bias.grad)
        mod.eval()
        xe = uniform(*shape, lo=-2.0, hi=2.0) + offset
        with torch.no_grad():
            g.add(f"{name}.xe", xe)
            g.add(f"{name}.ye", mod(xe))
    g.close()
    print("wrote", out)


if __name__ == "__main__":
    main()
