#!/usr/bin/python3
"""Golden vectors for MiniCNN (tests/golden/test_minicnn_golden.c).

Run from anywhere with the system Python that has torch:
    /usr/bin/python3 tests/golden/gen_minicnn.py
Writes tests/golden/data/minicnn.txt. CI never runs this; the output is committed.

The model is torch.nn.Sequential(Conv2d(C,32,3,padding=1), ReLU(), MaxPool2d(2),
Conv2d(32,64,3,padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(64*H/4*W/4,128), ReLU(),
Linear(128,10)), cltrain's builtin spec "minicnn".

Weights: instead of storing ~400k weights, both sides generate them. This script
re-implements cltrain's documented initialisation (include/cltrain/model.h,
ct_model_init_params): a splitmix64 stream seeded with SEED, drawn in
model.parameters() order, u = (next >> 40) * 2^-24, w = float32(bound * (2u - 1)),
bound = 1/sqrt(fan_in) for weights and biases alike (PyTorch's default bounds). The file
records the first and last 8 values and the float64 sum of every parameter, so the C test
first proves that ct_model_init_params produced exactly these weights.

References are computed in float64 (the float32 weights and inputs widened), so the C
test's tolerance only has to cover cltrain's own float32 rounding. Records:
  x, target            the batch (8, 1, 28, 28) and its labels (as floats)
  logits, loss         forward in float64, CrossEntropyLoss(mean)
  dlogits              d loss / d logits, rounded to float32; the backward below starts
                       from exactly these float32 values
  grad.<param>         full gradients of tensors up to 20000 elements; for bigger ones
                       (7.weight, 128x3136): sub.grad.<p> = flat[::61], rowsum.grad.<p>,
                       colsum.grad.<p> (sums over dim 1 and dim 0)
  init_head.<p>, init_tail.<p>, init_sum.<p>
  c.*                  the same spec on a (4, 3, 32, 32) batch: init records and logits

It also writes tests/golden/data/minicnn_train.txt for tests/golden/test_train_e2e.c:
five full training steps (zero_grad, forward, CrossEntropyLoss(mean), backward, step) on
the batch above (x, target of minicnn.txt), from the same initial weights, in float64:
  <opt>.loss           the loss of each of the 5 steps (before that step's update)
  <opt>.final.<param>  the weights after the 5th step, full or, for 7.weight, as
                       sub./rowsum./colsum. records like the gradients above
for <opt> = adam (torch.optim.Adam(lr=1e-3), other arguments default) and sgd
(torch.optim.SGD(lr=1e-2, momentum=0.9)).
"""
import math
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_io import GoldenWriter  # noqa: E402

SEED_MNIST = 1234
SEED_CIFAR = 99
BIG = 20000
STRIDE = 61
MASK64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.s = seed & MASK64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)


def minicnn(c, h, w):
    return nn.Sequential(
        nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), 128), nn.ReLU(), nn.Linear(128, 10))


def cltrain_init(model, seed):
    """Overwrites the parameters with cltrain's ct_model_init_params(seed) values."""
    rng = SplitMix64(seed)
    with torch.no_grad():
        for mod in model:
            if not isinstance(mod, (nn.Conv2d, nn.Linear)):
                continue
            fan_in = mod.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            for p in (mod.weight, mod.bias):
                vals = np.empty(p.numel(), dtype=np.float32)
                for i in range(p.numel()):
                    u = (rng.next() >> 40) * 2.0 ** -24
                    vals[i] = np.float32(bound * (2.0 * u - 1.0))
                p.copy_(torch.from_numpy(vals).view_as(p))


def write_init(gw, prefix, model):
    for name, p in model.named_parameters():
        flat = p.detach().reshape(-1)
        gw.add(f"{prefix}init_head.{name}", flat[:8])
        gw.add(f"{prefix}init_tail.{name}", flat[-8:])
        gw.add(f"{prefix}init_sum.{name}", np.array(flat.double().sum().item()))


def write_big_or_full(gw, name, t):
    """Records `name`: the whole tensor, or for a big 2-D one a strided subset and its
    row and column sums (prefixes sub., rowsum., colsum. before the name's last part
    that starts with grad/final, e.g. sub.grad.7.weight, adam.sub.final.7.weight)."""
    if t.numel() <= BIG:
        gw.add(name, t)
        return
    head, sep, tail = name.rpartition(".final.")
    pre, key = (head + ".", "final." + tail) if sep else ("", name)
    gw.add(pre + "sub." + key, t.reshape(-1)[::STRIDE])
    gw.add(pre + "rowsum." + key, t.sum(dim=1))
    gw.add(pre + "colsum." + key, t.sum(dim=0))


def train_golden(x, target):
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "minicnn_train.txt")
    gw = GoldenWriter(out, "MiniCNN, 5 training steps in float64 (tests/golden/test_train_e2e.c).\n"
                      f"Generated by gen_minicnn.py with torch {torch.__version__}; see that "
                      "script for the records.")
    optimizers = {
        "adam": lambda params: torch.optim.Adam(params, lr=1e-3),
        "sgd": lambda params: torch.optim.SGD(params, lr=1e-2, momentum=0.9),
    }
    for name, make in optimizers.items():
        model = minicnn(1, 28, 28)
        cltrain_init(model, SEED_MNIST)
        model = model.double()
        opt = make(model.parameters())
        losses = []
        for _ in range(5):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x.double()), target)
            loss.backward()
            losses.append(loss.item())
            opt.step()
        gw.add(f"{name}.loss", np.array(losses))
        for pname, p in model.named_parameters():
            write_big_or_full(gw, f"{name}.final.{pname}", p.detach())
    gw.close()


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "minicnn.txt")
    gw = GoldenWriter(out, __doc__.split("\n\n")[0] + "\nGenerated by gen_minicnn.py with "
                      f"torch {torch.__version__}; see that script for the records.")

    # ---- MNIST-shaped batch: forward, cross-entropy, backward ----
    model = minicnn(1, 28, 28)
    cltrain_init(model, SEED_MNIST)
    write_init(gw, "", model)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(8, 1, 28, 28, generator=g)
    target = torch.randint(0, 10, (8,), generator=g)
    gw.add("x", x)
    gw.add("target", target.float())

    m64 = model.double()
    logits = m64(x.double())
    loss = nn.functional.cross_entropy(logits, target)
    dlogits = torch.autograd.grad(loss, logits, retain_graph=True)[0].float()
    m64.zero_grad()
    logits.backward(dlogits.double())
    gw.add("logits", logits)
    gw.add("loss", np.array(loss.item()))
    gw.add("dlogits", dlogits)
    for name, p in m64.named_parameters():
        write_big_or_full(gw, "grad." + name, p.grad)

    train_golden(x, target)

    # ---- the same spec on CIFAR-shaped input: forward only ----
    model = minicnn(3, 32, 32)
    cltrain_init(model, SEED_CIFAR)
    write_init(gw, "c.", model)
    xc = torch.randn(4, 3, 32, 32, generator=g)
    gw.add("c.x", xc)
    with torch.no_grad():
        gw.add("c.logits", model.double()(xc.double()))
    gw.close()


if __name__ == "__main__":
    main()
