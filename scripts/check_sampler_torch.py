#!/usr/bin/python3
"""Is tsdp's DDPM sampler the reference's distribution? A two-sample test on one checkpoint.

    /usr/bin/python3 scripts/check_sampler_torch.py --ckpt CKPT.h5 --data D.h5 [--index 500] [--n 500]
        [--sampler ddpm|spec] [--block 4] [--drafter DRAFTER.h5|frozen] [--threads 2]

Draws --n action chunks with `tsdp sample` (DDPM-100 through the C inference engine, Philox
noise; or with --sampler spec, exact speculative DDPM with --block drafted steps per round and the
frozen-target drafter or, with --drafter, a distilled one) and --n chunks with an independent PyTorch DDPM sampler written from docs/math.md §2
(diffusers DDPMScheduler semantics: squaredcos_cap_v2, clip_sample, fixed_small variance) on
the same EMA weights and the same observation window, then compares the two sets of
horizon x action-dim chunks (32-d on Push-T) with an energy-distance permutation test. As a check that the test can see a real
difference, it repeats the comparison against two deliberately wrong PyTorch samplers: noise
scaled by --wrong-scale (default 1.5), and the network fed t + 1 (an off-by-one timestep).
Prints the p-values; the first should be unremarkable, the other two tiny.
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import load  # noqa: E402


def torch_ddpm(net, cond, n, seed, noise_scale=1.0, t_shift=0, T=100, shape=(16, 2)):
    g = torch.Generator().manual_seed(seed)
    abar = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = torch.tensor([min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)], dtype=torch.float64)
    ac = torch.cumprod(1 - betas, 0).float()
    c = cond.expand(n, -1)
    x = torch.randn(n, *shape, generator=g)
    with torch.no_grad():
        for t in range(T - 1, -1, -1):
            eps = net(x, torch.full((n,), float(min(t + t_shift, T - 1))), c)
            a, ap = ac[t], (ac[t - 1] if t > 0 else torch.tensor(1.0))
            b = 1 - a / ap
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
            mean = ap.sqrt() * b / (1 - a) * x0 + (a / ap).sqrt() * (1 - ap) / (1 - a) * x
            if t > 0:
                sigma = ((1 - ap) / (1 - a) * b).clamp(min=1e-20).sqrt()
                x = mean + noise_scale * sigma * torch.randn(x.shape, generator=g)
            else:
                x = mean
    return x.numpy()


def energy_test(X, Y, perms, seed):
    """Energy distance between samples X and Y (rows) and its permutation p-value."""
    Z = np.concatenate([X, Y]).astype(np.float64)
    sq = (Z * Z).sum(1)
    D = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * Z @ Z.T, 0))
    n = len(X)

    def stat(lab):
        a, b = np.where(lab)[0], np.where(~lab)[0]
        return 2 * D[np.ix_(a, b)].mean() - D[np.ix_(a, a)].mean() - D[np.ix_(b, b)].mean()

    lab = np.zeros(len(Z), bool)
    lab[:n] = True
    e0 = stat(lab)
    rng = np.random.default_rng(seed)
    count = sum(stat(rng.permutation(lab)) >= e0 for _ in range(perms))
    return e0, (count + 1) / (perms + 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--tsdp", default="build/tsdp")
    ap.add_argument("--index", type=int, default=500)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--perms", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--wrong-scale", type=float, default=1.5)
    ap.add_argument("--sampler", default="ddpm", help="tsdp's sampler: ddpm, or spec (exact speculative DDPM)")
    ap.add_argument("--block", type=int, default=4, help="spec: drafted steps per round")
    ap.add_argument("--drafter", default="frozen", help="spec: a drafter checkpoint from tsdp distill, or frozen")
    ap.add_argument("--threads", type=int, default=2, help="PyTorch's threads (and tsdp sample's)")
    a = ap.parse_args()
    net, cfg, _, act_dim = load(a.ckpt)
    kw = {"T": int(cfg.get("diffusion", {}).get("num_train_timesteps", 100)),
          "shape": (int(cfg["data"]["horizon"]), act_dim)}
    torch.set_num_threads(a.threads)
    with h5py.File(a.ckpt, "r") as f:
        scale, offset = f["normalizer/action/scale"][()], f["normalizer/action/offset"][()]
    with tempfile.TemporaryDirectory() as d:
        extra = ["--block", str(a.block), "--drafter", a.drafter] if a.sampler == "spec" else []
        out = subprocess.run([a.tsdp, "sample", "--ckpt", a.ckpt, "--data", a.data, "--index", str(a.index), "--n",
                              str(a.n), "--sampler", a.sampler, "--seed", str(a.seed), "--out", d + "/s.h5",
                              "--threads", str(a.threads)] + extra,
                             check=True, capture_output=True, text=True).stdout
        if a.sampler == "spec":
            print(out.strip().splitlines()[-1])
        with h5py.File(d + "/s.h5", "r") as f:
            c_act, cond = f["actions"][()], torch.tensor(f["cond"][()])[None]
    unnorm = lambda x: (x - offset) / scale
    t_act = unnorm(torch_ddpm(net, cond, a.n, a.seed + 1, **kw))
    w_act = unnorm(torch_ddpm(net, cond, a.n, a.seed + 2, noise_scale=a.wrong_scale, **kw))
    o_act = unnorm(torch_ddpm(net, cond, a.n, a.seed + 3, t_shift=1, **kw))
    flat = lambda x: x.reshape(len(x), -1)
    print("index %d, %d chunks each, %d permutations" % (a.index, a.n, a.perms))
    print("mean |tsdp - torch| per coordinate: max %.3f (action units; torch std median %.3f)" %
          (np.abs(c_act.mean(0) - t_act.mean(0)).max(), np.median(t_act.std(0))))
    e, p = energy_test(flat(c_act), flat(t_act), a.perms, a.seed)
    print("tsdp %-4s vs PyTorch DDPM:               energy distance %.4f, p = %.3f" % (a.sampler, e, p))
    e, p = energy_test(flat(w_act), flat(t_act), a.perms, a.seed)
    print("PyTorch with noise x%.2f vs PyTorch DDPM: energy distance %.4f, p = %.3f" % (a.wrong_scale, e, p))
    e, p = energy_test(flat(o_act), flat(t_act), a.perms, a.seed)
    print("PyTorch fed t + 1 vs PyTorch DDPM:       energy distance %.4f, p = %.3f" % (e, p))


if __name__ == "__main__":
    main()
