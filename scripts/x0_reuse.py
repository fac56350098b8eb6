#!/usr/bin/env python3
"""How fast does the target's clean-chunk estimate move along its own DDPM chains?

For each diffusion step t of 16 base chains on each of five dataset windows (the PyTorch copy
of the base, through bench_torch.load), the predicted acceptance 2 Phi(-|Delta|/2) of a draft
whose eps is the target's eps from k steps earlier ("eps" reuse: the frozen drafter) or whose
eps reproduces the target's clean estimate x0 from k steps earlier ("x0" reuse: the x0
drafter), averaged over ranges of t. docs/math.md §4 quotes it. DDPM as tsdp runs it:
T = 100, squaredcos_cap_v2, clip_sample, fixed_small variance.

Usage: scripts/x0_reuse.py CKPT.h5 DATA.h5 [TSDP]
"""
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

T, CHAINS, KS = 100, 16, (1, 2, 4, 8)
INDICES = (500, 3000, 7000, 12000, 20000)


def schedule():
    abar = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = torch.tensor([min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)], dtype=torch.float64)
    return torch.cumprod(1 - betas, 0).float()


AC = schedule()


def coef(t):
    a = AC[t]
    ap = AC[t - 1] if t > 0 else torch.tensor(1.0)
    return a, ap, 1 - a / ap


def x0_of(x, eps, t):
    a = AC[t]
    return ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)


def mean_of(x, x0, t):
    a, ap, b = coef(t)
    return ap.sqrt() * b / (1 - a) * x0 + (a / ap).sqrt() * (1 - ap) / (1 - a) * x


def sigma(t):
    a, ap, b = coef(t)
    return ((1 - ap) / (1 - a) * b).sqrt()


def conds(ckpt, data, tsdp):
    """The normalised cond of each dataset window, as `tsdp sample` writes it."""
    out = []
    for idx in INDICES:
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([tsdp, "sample", "--ckpt", ckpt, "--data", data, "--index", str(idx), "--n", "1", "--sampler",
                            "ddpm", "--seed", "1", "--out", d + "/s.h5", "--threads", "1"], check=True, capture_output=True)
            with h5py.File(d + "/s.h5", "r") as f:
                out.append(torch.tensor(f["cond"][()]))
    return out


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    ckpt, data = sys.argv[1], sys.argv[2]
    tsdp = sys.argv[3] if len(sys.argv) > 3 else "build/tsdp"
    torch.set_num_threads(1)
    net, _, _, act_dim = load(ckpt)
    acc = {(m, k): np.zeros(T) for m in ("eps", "x0") for k in KS}
    g = torch.Generator().manual_seed(0)
    cs = conds(ckpt, data, tsdp)
    for c in cs:
        cc = c.expand(CHAINS, -1)
        x = torch.randn(CHAINS, 16, act_dim, generator=g)
        eps_at, x0_at = {}, {}
        with torch.no_grad():
            for t in range(T - 1, -1, -1):
                e = net(x, torch.full((CHAINS,), float(t)), cc)
                x0 = x0_of(x, e, t)
                eps_at[t], x0_at[t] = e, x0
                m = mean_of(x, x0, t)
                if t == 0:
                    break
                s = sigma(t)
                for k in KS:
                    if t + k >= T:
                        continue
                    drafts = {"eps": mean_of(x, x0_of(x, eps_at[t + k], t), t), "x0": mean_of(x, x0_at[t + k], t)}
                    for mode, md in drafts.items():
                        delta = ((md - m).reshape(CHAINS, -1).norm(dim=1) / s).numpy()
                        acc[(mode, k)][t] += sum(math.erfc(v / 2 / math.sqrt(2)) for v in delta)
                x = m + s * torch.randn(x.shape, generator=g)
    for key in acc:
        acc[key] /= CHAINS * len(cs)
    for k in KS:
        for mode in ("eps", "x0"):
            a = acc[(mode, k)]
            print(f"k={k} {mode:3s}: t1-9 {a[1:10].mean():.3f} t10-19 {a[10:20].mean():.3f} t20-49 {a[20:50].mean():.3f} "
                  f"t50-90 {a[50:91 - k].mean():.3f}")


if __name__ == "__main__":
    main()
