#!/usr/bin/env python3
"""Golden vectors for the optimizers, gradient clipping and learning-rate schedules.

Run with the system Python that has torch (1.13): /usr/bin/python3 tests/golden/gen_optim.py
Writes tests/golden/data/optim.txt (float32 records, GoldenWriter) and
tests/golden/data/sched.txt (same record format, values written as full doubles: the
schedules are compared in double precision). CI never runs this script.

optim.txt
  p0 (37)                 starting parameters, shared by every configuration
  grads (20, 37)          gradient of step s in row s, shared
  <cfg>.cfg (15)          kind lr weight_decay maximize momentum dampening nesterov beta1
                          beta2 eps amsgrad alpha centered lr_decay initial_accumulator_value
                          (kind: 0 sgd, 1 adam, 2 adamw, 3 rmsprop, 4 adagrad); every value
                          is a float32 number, handed to torch as that exact double
  <cfg>.groups (G, 2)     lr, weight_decay per group (absent: one group from .cfg)
  <cfg>.ranges (R, 3)     offset, length, group (absent: the whole buffer is group 0)
  <cfg>.sched (k)         optional schedule stepped after every optimizer step:
                          [1, max_lr, total_steps, pct_start, three_phase, linear] OneCycleLR
                          [2, step_size, gamma, warmup_iters, warmup_start_factor]
                              SequentialLR([LinearLR(f, 1, w), StepLR], [w])
  <cfg>.clip (1)          optional clip_grad_norm_(max_norm) before every step
  <cfg>.traj (20, 37)     parameters after each step (the flat layout)
  <cfg>.state.<name> (37) final optimizer state in the flat layout (untouched elements
                          hold the initial value: 0, or Adagrad's initial accumulator)
  clip.<case>.in / .max_norm / .norm / .out   clip_grad_norm_ over several tensors
  clipv.in / clipv.value / clipv.out          clip_grad_value_

The flat buffer is four tensors, like a two-layer model: weight (12), bias (5),
weight (16), bias (4). Groups put weights and biases apart, as "no weight decay on biases".
"""
import os

import numpy as np
import torch

from golden_io import GoldenWriter

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = [12, 5, 16, 4]
N = sum(SIZES)
STEPS = 20
KINDS = {"sgd": 0, "adam": 1, "adamw": 2, "rmsprop": 3, "adagrad": 4}


def f32(x):
    """x as the nearest float32, as a Python float: the C side reads the same double."""
    return float(np.float32(x))


def offsets():
    o, out = 0, []
    for s in SIZES:
        out.append(o)
        o += s
    return out


def make_params(p0):
    out, o = [], 0
    for s in SIZES:
        out.append(torch.nn.Parameter(torch.tensor(p0[o:o + s].copy())))
        o += s
    return out


def flat(tensors):
    return np.concatenate([t.detach().numpy().reshape(-1) for t in tensors])


DEFAULTS = dict(lr=1e-3, weight_decay=0.0, maximize=False, momentum=0.0, dampening=0.0,
                nesterov=False, beta1=0.9, beta2=0.999, eps=1e-8, amsgrad=False, alpha=0.99,
                centered=False, lr_decay=0.0, initial_accumulator_value=0.0)


def build_optimizer(kind, cfg, param_groups):
    c = cfg
    if kind == "sgd":
        return torch.optim.SGD(param_groups, lr=c["lr"], momentum=c["momentum"],
                               dampening=c["dampening"], weight_decay=c["weight_decay"],
                               nesterov=c["nesterov"], maximize=c["maximize"], foreach=False)
    if kind in ("adam", "adamw"):
        cls = torch.optim.Adam if kind == "adam" else torch.optim.AdamW
        return cls(param_groups, lr=c["lr"], betas=(c["beta1"], c["beta2"]), eps=c["eps"],
                   weight_decay=c["weight_decay"], amsgrad=c["amsgrad"],
                   maximize=c["maximize"], foreach=False)
    if kind == "rmsprop":
        return torch.optim.RMSprop(param_groups, lr=c["lr"], alpha=c["alpha"], eps=c["eps"],
                                   weight_decay=c["weight_decay"], momentum=c["momentum"],
                                   centered=c["centered"], maximize=c["maximize"],
                                   foreach=False)
    if kind == "adagrad":
        return torch.optim.Adagrad(param_groups, lr=c["lr"], lr_decay=c["lr_decay"],
                                   weight_decay=c["weight_decay"],
                                   initial_accumulator_value=c["initial_accumulator_value"],
                                   eps=c["eps"], maximize=c["maximize"], foreach=False)
    raise ValueError(kind)


STATE_INIT = {"sum": "initial_accumulator_value"}


def run_config(w, name, kind, groups=None, sched=None, clip=None, p0=None, grads=None, **kw):
    cfg = dict(DEFAULTS)
    if kind == "adamw":
        cfg["weight_decay"] = 1e-2
    if kind in ("rmsprop", "adagrad"):
        cfg["lr"] = 1e-2
    if kind == "adagrad":
        cfg["eps"] = 1e-10
    cfg.update(kw)
    cfg = {k: (f32(v) if isinstance(v, float) else v) for k, v in cfg.items()}
    params = make_params(p0)
    offs = offsets()
    if groups is None:
        param_groups = [{"params": params}]
        ranges = None
    else:
        # groups: list of (param indices, lr, weight_decay)
        param_groups, ranges = [], []
        for gi, (idx, lr, wd) in enumerate(groups):
            param_groups.append({"params": [params[i] for i in idx], "lr": f32(lr),
                                 "weight_decay": f32(wd)})
            for i in idx:
                ranges.append([offs[i], SIZES[i], gi])
    opt = build_optimizer(kind, cfg, param_groups)
    sch = None
    if sched is not None:
        if sched[0] == 1:
            _, max_lr, total, pct, three, linear = sched
            sch = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=f32(max_lr), total_steps=int(total), pct_start=f32(pct),
                three_phase=bool(three), anneal_strategy="linear" if linear else "cos")
        elif sched[0] == 2:
            _, step, gamma, wi, wf = sched
            warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=f32(wf), end_factor=1.0,
                                                     total_iters=int(wi))
            main = torch.optim.lr_scheduler.StepLR(opt, step_size=int(step), gamma=f32(gamma))
            sch = torch.optim.lr_scheduler.SequentialLR(opt, [warm, main], milestones=[int(wi)])
        sched = [f32(v) for v in sched]
    traj = np.zeros((STEPS, N), dtype=np.float32)
    for s in range(STEPS):
        o = 0
        for p, size in zip(params, SIZES):
            p.grad = torch.tensor(grads[s, o:o + size].copy())
            o += size
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, f32(clip))
        opt.step()
        if sch is not None:
            sch.step()
        traj[s] = flat(params)

    w.add(f"{name}.cfg", np.array([KINDS[kind], cfg["lr"], cfg["weight_decay"],
                                   cfg["maximize"], cfg["momentum"], cfg["dampening"],
                                   cfg["nesterov"], cfg["beta1"], cfg["beta2"], cfg["eps"],
                                   cfg["amsgrad"], cfg["alpha"], cfg["centered"],
                                   cfg["lr_decay"], cfg["initial_accumulator_value"]],
                                  dtype=np.float64))
    if groups is not None:
        w.add(f"{name}.groups", np.array([[f32(lr), f32(wd)] for _, lr, wd in groups]))
        w.add(f"{name}.ranges", np.array(ranges, dtype=np.float64))
    if sched is not None:
        w.add(f"{name}.sched", np.array(sched))
    if clip is not None:
        w.add(f"{name}.clip", np.array([f32(clip)]))
    w.add(f"{name}.traj", traj)
    # final state, flat
    names = set()
    for p in params:  # SGD without momentum keeps momentum_buffer = None: no state
        names.update(k for k, v in opt.state[p].items() if k != "step" and v is not None)
    for sname in sorted(names):
        init = cfg["initial_accumulator_value"] if sname == "sum" else 0.0
        buf = np.full(N, init, dtype=np.float32)
        for p, off, size in zip(params, offs, SIZES):
            st = opt.state[p].get(sname)
            if st is not None:
                buf[off:off + size] = st.detach().numpy().reshape(-1)
        w.add(f"{name}.state.{sname}", buf)


def optim_configs():
    W_B = [([0, 2], 0.05, 0.01), ([1, 3], 0.2, 0.0)]  # weights decay, biases not
    return [
        ("sgd_plain", "sgd", dict(lr=0.05)),
        ("sgd_wd", "sgd", dict(lr=0.05, weight_decay=0.01)),
        ("sgd_momentum", "sgd", dict(lr=0.05, momentum=0.9)),
        ("sgd_dampening", "sgd", dict(lr=0.05, momentum=0.9, dampening=0.3)),
        ("sgd_nesterov", "sgd", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02)),
        ("sgd_maximize", "sgd", dict(lr=0.05, momentum=0.5, maximize=True)),
        ("sgd_groups", "sgd", dict(momentum=0.9, groups=W_B)),
        ("adam_default", "adam", dict(lr=0.01)),
        ("adam_wd", "adam", dict(lr=0.01, weight_decay=0.05)),
        ("adam_amsgrad", "adam", dict(lr=0.01, amsgrad=True)),
        ("adam_betas_eps", "adam", dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6)),
        ("adam_maximize", "adam", dict(lr=0.01, maximize=True, amsgrad=True, weight_decay=0.01)),
        ("adam_groups", "adam", dict(groups=[([0, 2], 0.01, 0.05), ([1, 3], 0.03, 0.0)])),
        ("adam_partial", "adam", dict(groups=[([0, 1, 2], 0.01, 0.0)])),
        ("adamw_default", "adamw", dict(lr=0.01)),
        ("adamw_amsgrad", "adamw", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
        ("adamw_maximize", "adamw", dict(lr=0.01, maximize=True, beta1=0.5)),
        ("adamw_groups", "adamw", dict(groups=[([0, 2], 0.01, 0.1), ([1, 3], 0.01, 0.0)])),
        ("rmsprop_default", "rmsprop", dict()),
        ("rmsprop_wd", "rmsprop", dict(weight_decay=0.05)),
        ("rmsprop_momentum", "rmsprop", dict(momentum=0.9)),
        ("rmsprop_centered", "rmsprop", dict(centered=True)),
        ("rmsprop_all", "rmsprop", dict(centered=True, momentum=0.5, weight_decay=0.1,
                                        alpha=0.9, eps=1e-6)),
        ("rmsprop_maximize", "rmsprop", dict(maximize=True, momentum=0.3)),
        ("rmsprop_groups", "rmsprop", dict(momentum=0.9, groups=[([0, 2], 0.01, 0.01),
                                                                 ([1, 3], 0.002, 0.0)])),
        ("adagrad_default", "adagrad", dict(lr=0.1)),
        ("adagrad_lr_decay", "adagrad", dict(lr=0.1, lr_decay=0.05)),
        ("adagrad_wd_init", "adagrad", dict(lr=0.1, weight_decay=0.1,
                                            initial_accumulator_value=0.5, eps=1e-6)),
        ("adagrad_maximize", "adagrad", dict(lr=0.1, maximize=True)),
        # a large eps makes where it is added visible (outside the sqrt, after the bias
        # correction for Adam)
        ("adam_big_eps", "adam", dict(lr=0.01, eps=0.1)),
        ("rmsprop_big_eps", "rmsprop", dict(eps=0.3, centered=True)),
        ("adagrad_big_eps", "adagrad", dict(lr=0.1, eps=0.5)),
        ("adagrad_groups", "adagrad", dict(groups=[([0, 2], 0.1, 0.01), ([1, 3], 0.3, 0.0)])),
        # schedules and clipping driving an optimizer
        ("sgd_onecycle", "sgd", dict(lr=0.05, momentum=0.9, sched=[1, 0.1, 20, 0.3, 0, 0])),
        ("sgd_nomom_onecycle", "sgd", dict(lr=0.05, sched=[1, 0.2, 20, 0.25, 1, 1])),
        ("adam_onecycle", "adam", dict(sched=[1, 0.02, 20, 0.4, 0, 0])),
        ("adamw_warmup_step", "adamw", dict(lr=0.02, sched=[2, 4, 0.5, 5, 0.1])),
        ("sgd_clip", "sgd", dict(lr=0.05, momentum=0.9, clip=1.0)),
        ("adam_clip", "adam", dict(lr=0.01, clip=0.5, groups=W_B)),
    ]


def clip_cases(w, gen):
    cases = [
        ("clips", [12, 5, 16, 4], 1.0, 1.0),
        ("below", [12, 5, 16, 4], 100.0, 1.0),
        ("large", [1000, 17, 1100, 1], 2.0, 0.5),
        ("zero", [7, 9], 1.0, 0.0),
        ("tiny", [7, 9], 1e-7, 1e-7),  # the + 1e-6 dominates the denominator
        ("inf", [7, 9], 1.0, 1.0),
        ("nan", [7, 9], 1.0, 1.0),
    ]
    for name, sizes, max_norm, scale in cases:
        g = (gen.standard_normal(sum(sizes)) * scale).astype(np.float32)
        if name == "inf":
            g[3] = np.inf
        if name == "nan":
            g[10] = np.nan
        params, o = [], 0
        for s in sizes:
            p = torch.nn.Parameter(torch.zeros(s))
            p.grad = torch.tensor(g[o:o + s].copy())
            params.append(p)
            o += s
        total = torch.nn.utils.clip_grad_norm_(params, f32(max_norm))
        w.add(f"clip.{name}.in", g)
        w.add(f"clip.{name}.max_norm", np.float32(max_norm))
        w.add(f"clip.{name}.norm", total)
        w.add(f"clip.{name}.out", np.concatenate([p.grad.numpy() for p in params]))
    g = (gen.standard_normal(50) * 2).astype(np.float32)
    g[1], g[2], g[3] = np.nan, np.inf, -np.inf
    p = torch.nn.Parameter(torch.zeros(50))
    p.grad = torch.tensor(g.copy())
    torch.nn.utils.clip_grad_value_([p], f32(0.75))
    w.add("clipv.in", g)
    w.add("clipv.value", np.float32(0.75))
    w.add("clipv.out", p.grad)


def write_optim():
    gen = np.random.default_rng(20240521)
    p0 = gen.uniform(-1, 1, N).astype(np.float32)
    grads = (gen.standard_normal((STEPS, N)) * 0.5).astype(np.float32)
    grads[3, 5] = 0.0  # an exact zero gradient
    path = os.path.join(HERE, "data", "optim.txt")
    w = GoldenWriter(path, f"optimizers, clipping: tests/golden/gen_optim.py, torch {torch.__version__}, "
                           "single-tensor (foreach=False) paths")
    w.add("p0", p0)
    w.add("grads", grads)
    for name, kind, kw in optim_configs():
        run_config(w, name, kind, p0=p0, grads=grads, **kw)
    clip_cases(w, gen)
    w.close()


# ---- schedules --------------------------------------------------------------------------


LRS = [0.1, 0.05]  # two groups, different initial lrs


def sched_optimizer(kind="sgd", momentum=0.9):
    ps = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    groups = [{"params": [ps[0]], "lr": LRS[0]}, {"params": [ps[1]], "lr": LRS[1]}]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=LRS[0], momentum=momentum)
    if kind == "adam":
        return torch.optim.Adam(groups, lr=LRS[0])
    raise ValueError(kind)


def lrs(opt):
    return [g["lr"] for g in opt.param_groups]


def moms(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def warm(opt, main, wi, wf):
    w = torch.optim.lr_scheduler.LinearLR(opt, start_factor=wf, end_factor=1.0, total_iters=wi)
    return torch.optim.lr_scheduler.SequentialLR(opt, [w, main], milestones=[wi])


def sched_configs():
    S = torch.optim.lr_scheduler
    # name -> (optimizer kind, constructor(opt), steps, momentum recorded)
    return [
        ("step", "sgd", lambda o: S.StepLR(o, step_size=3, gamma=0.5), 25, False),
        ("multistep", "sgd", lambda o: S.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3), 15,
         False),
        ("multistep_zero", "sgd", lambda o: S.MultiStepLR(o, milestones=[0, 3], gamma=0.1), 8,
         False),
        ("exponential", "sgd", lambda o: S.ExponentialLR(o, gamma=0.9), 30, False),
        ("cosine", "sgd", lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001), 45, False),
        ("cosine_eta0", "sgd", lambda o: S.CosineAnnealingLR(o, T_max=7), 30, False),
        ("linear", "sgd", lambda o: S.LinearLR(o, start_factor=0.25, total_iters=6), 10, False),
        ("linear_decay", "sgd",
         lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=8), 12, False),
        ("warmup_cosine", "sgd",
         lambda o: warm(o, S.CosineAnnealingLR(o, T_max=20, eta_min=1e-4), 5, 0.1), 30, False),
        ("warmup_step", "sgd", lambda o: warm(o, S.StepLR(o, step_size=4, gamma=0.5), 3, 0.2), 20,
         False),
        ("warmup_multistep", "sgd",
         lambda o: warm(o, S.MultiStepLR(o, milestones=[3, 6], gamma=0.1), 2, 0.5), 12, False),
        ("warmup_exp", "sgd", lambda o: warm(o, S.ExponentialLR(o, gamma=0.95), 4, 1.0 / 3), 15,
         False),
        ("warmup_linear", "sgd",
         lambda o: warm(o, S.LinearLR(o, start_factor=1.0, end_factor=0.5, total_iters=4), 3, 0.5),
         12, False),
        ("onecycle_cos", "sgd", lambda o: S.OneCycleLR(o, max_lr=[0.5, 0.2], total_steps=30), 30,
         True),
        ("onecycle_linear", "sgd",
         lambda o: S.OneCycleLR(o, max_lr=0.3, total_steps=40, pct_start=0.25,
                                anneal_strategy="linear", div_factor=10.0,
                                final_div_factor=100.0), 40, True),
        ("onecycle_three", "sgd",
         lambda o: S.OneCycleLR(o, max_lr=0.4, total_steps=30, three_phase=True), 30, True),
        ("onecycle_adam", "adam",
         lambda o: S.OneCycleLR(o, max_lr=0.01, total_steps=20, base_momentum=0.8,
                                max_momentum=0.9), 20, True),
        ("onecycle_nomom", "sgd",
         lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=25, cycle_momentum=False), 25, False),
    ]


PLATEAU_METRICS = [1.0, 0.9, 0.95, 0.91, 0.905, 0.9, 0.89, 0.92, 0.93, 0.94, 0.95, 0.7, 0.71,
                   0.72, 0.73, 0.74, 0.75, 0.76, float("nan"), 0.5, 0.6, 0.6, 0.6, 0.6]


def plateau_configs():
    P = torch.optim.lr_scheduler.ReduceLROnPlateau
    return [
        ("plateau_min_rel", lambda o: P(o, factor=0.5, patience=2, threshold=1e-2, cooldown=1,
                                        min_lr=[0.01, 0.02]), PLATEAU_METRICS),
        ("plateau_min_abs", lambda o: P(o, patience=1, threshold=0.05, threshold_mode="abs"),
         PLATEAU_METRICS),
        ("plateau_max_rel", lambda o: P(o, mode="max", factor=0.3, patience=0, cooldown=2),
         PLATEAU_METRICS),
        ("plateau_max_abs", lambda o: P(o, mode="max", factor=0.5, patience=1, threshold=0.1,
                                        threshold_mode="abs", min_lr=0.004), PLATEAU_METRICS),
        ("plateau_eps", lambda o: P(o, factor=0.5, patience=0, eps=0.01),
         [1.0 + i for i in range(12)]),
    ]


def write_sched():
    path = os.path.join(HERE, "data", "sched.txt")
    w = GoldenWriter(path, f"schedules: tests/golden/gen_optim.py, torch {torch.__version__}. "
                           "Values are doubles.\n<name>.lr (steps+1, groups): get_last_lr() "
                           "after construction, then after each step; <name>.mom likewise for "
                           "the momentum/beta1 OneCycleLR sets. Groups start at lr 0.1, 0.05 "
                           "(SGD momentum 0.9, or Adam).\nplateau: <name>.metric (steps), "
                           "<name>.lr (steps, groups) after each step.\nchain_exp_cos: "
                           "ExponentialLR(0.9) and CosineAnnealingLR(8, 0.01) both stepping.",
                     dtype=np.float64)
    for name, kind, make, steps, record_mom in sched_configs():
        opt = sched_optimizer(kind)
        sch = make(opt)
        lr_seq, mom_seq = [lrs(opt)], [moms(opt)]
        for _ in range(steps):
            opt.step()
            sch.step()
            lr_seq.append(lrs(opt))
            mom_seq.append(moms(opt))
        w.add(f"{name}.lr", np.array(lr_seq))
        if record_mom:
            w.add(f"{name}.mom", np.array(mom_seq))
    for name, make, metrics in plateau_configs():
        opt = sched_optimizer("sgd")
        sch = make(opt)
        seq = []
        for m in metrics:
            opt.step()
            sch.step(m)
            seq.append(lrs(opt))
        w.add(f"{name}.metric", np.array(metrics))
        w.add(f"{name}.lr", np.array(seq))
    opt = sched_optimizer("sgd")
    s1 = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
    s2 = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8, eta_min=0.01)
    seq = [lrs(opt)]
    for _ in range(20):
        opt.step()
        s1.step()
        s2.step()
        seq.append(lrs(opt))
    w.add("chain_exp_cos.lr", np.array(seq))
    w.close()


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")  # the epoch-argument deprecation SequentialLR triggers
    torch.set_num_threads(1)
    write_optim()
    write_sched()
