#!/usr/bin/python3
"""Train a small Diffusion Policy (low-dim, ConditionalUnet1D, observations as global condition)
in PyTorch with the reference recipe's pieces, and save it as Diffusion Policy saves a policy:
a plain state_dict with keys "model.<network key>" and "normalizer.params_dict.{obs,action}.
{scale,offset,input_stats.{min,max,mean,std}}" (plus "mask_generator._dummy_variable"), the
input of scripts/convert_dp_ckpt.py. This stands in for a checkpoint trained with the Diffusion
Policy code base, which is not installed here; the network is scripts/torch_unet.py, whose
state_dict keys are the reference's.

    /usr/bin/python3 scripts/train_torch_dp.py --data D.h5 --config C.ini --out policy.pt
        [--steps 300] [--batch 64] [--down-dims 32,64,128] [--step-embed 64] [--lr 1e-3] [--seed 0]

--data is any robomimic-layout low-dim HDF5 (tsdp data import of Push-T, or
scripts/make_robomimic_toy.py); --config names the obs keys and the window sizes ([data]
obs_keys, horizon, n_obs_steps, pad_before, pad_after; the rest of the file is not read).
Recipe (Diffusion Policy's diffusion_policy_cnn low-dim workspace, scaled down):
  - windows: every start from -pad_before to T - horizon + pad_after of every episode, edge
    padded (SequenceSampler); the first n_obs_steps observations flattened are the condition;
  - LinearNormalizer, mode "limits", fitted on all steps: [-1, 1] per dimension, a range below
    1e-4 gets scale 1 and maps the min to 0;
  - DDPM with 100 steps, squaredcos_cap_v2 betas, epsilon prediction, the plain MSE loss;
  - AdamW (betas 0.95, 0.999, weight decay 1e-6), linear warm-up then cosine decay per step;
  - EMA of the weights (power 0.75, max decay --ema-max-decay); the saved policy holds the EMA
    weights unless --no-ema.
Single-threaded by default (--threads).
"""
import argparse
import configparser
import math
import os
import sys
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet import ConditionalUnet1D  # noqa: E402


def read_config(path):
    cp = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
    cp.read(path)
    d = cp["data"]
    return {"obs_keys": [k.strip() for k in d.get("obs_keys", "keypoint, agent_pos").split(",")],
            "horizon": d.getint("horizon", 16), "n_obs_steps": d.getint("n_obs_steps", 2),
            "pad_before": d.getint("pad_before", 1), "pad_after": d.getint("pad_after", 7)}


def load_episodes(path, keys):
    eps = []
    with h5py.File(path, "r") as f:
        names = sorted(f["data"].keys(), key=lambda s: int(s.split("_")[1]))
        for n in names:
            g = f["data"][n]
            T = g["actions"].shape[0]
            obs = np.concatenate([g["obs"][k][()].reshape(T, -1) for k in keys], 1).astype(np.float32)
            eps.append((obs, g["actions"][()].reshape(T, -1).astype(np.float32)))
    return eps


def limits(x):
    lo, hi = x.min(0), x.max(0)
    rng = hi - lo
    small = rng < 1e-4
    scale = np.where(small, 1.0, 2.0 / np.where(small, 1.0, rng)).astype(np.float32)
    offset = np.where(small, -lo, -1.0 - scale * lo).astype(np.float32)
    return {"scale": scale, "offset": offset, "input_stats.min": lo, "input_stats.max": hi,
            "input_stats.mean": x.mean(0), "input_stats.std": x.std(0)}


def windows(eps, horizon, pad_before, pad_after):
    """(episode, start) pairs of SequenceSampler; a frame index is clamped into its episode."""
    out = []
    for e, (o, _) in enumerate(eps):
        T = len(o)
        for s in range(-pad_before, T - horizon + pad_after + 1):
            out.append((e, s))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--down-dims", default="32,64,128")
    ap.add_argument("--step-embed", type=int, default=64)
    ap.add_argument("--kernel", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--ema-max-decay", type=float, default=0.999)
    ap.add_argument("--no-ema", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    c = read_config(a.config)
    H, No = c["horizon"], c["n_obs_steps"]
    eps = load_episodes(a.data, c["obs_keys"])
    nobs = limits(np.concatenate([o for o, _ in eps]))
    nact = limits(np.concatenate([x for _, x in eps]))
    norm = lambda x, p: x * p["scale"] + p["offset"]
    eps = [(norm(o, nobs), norm(x, nact)) for o, x in eps]
    win = windows(eps, H, c["pad_before"], c["pad_after"])
    obs_dim, act_dim = eps[0][0].shape[1], eps[0][1].shape[1]
    print("%s: %d episodes, %d windows, obs %d (%s), actions %d" % (a.data, len(eps), len(win), obs_dim,
                                                                     ", ".join(c["obs_keys"]), act_dim))

    net = ConditionalUnet1D(act_dim, No * obs_dim, a.step_embed, [int(x) for x in a.down_dims.split(",")],
                            a.kernel, 8)
    ema = ConditionalUnet1D(act_dim, No * obs_dim, a.step_embed, [int(x) for x in a.down_dims.split(",")],
                            a.kernel, 8)
    ema.load_state_dict(net.state_dict())
    for p in ema.parameters():
        p.requires_grad_(False)
    print("ConditionalUnet1D down_dims %s, step embedding %d: %.2f M parameters" % (
        a.down_dims, a.step_embed, sum(p.numel() for p in net.parameters()) / 1e6))

    T = 100  # squaredcos_cap_v2 (diffusers betas_for_alpha_bar, max beta 0.999)
    abar = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = torch.tensor([min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)], dtype=torch.float64)
    ac = torch.cumprod(1 - betas, 0).float()
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, betas=(0.95, 0.999), eps=1e-8, weight_decay=1e-6)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: s / max(1, a.warmup) if s < a.warmup else
                                              0.5 * (1 + math.cos(math.pi * (s - a.warmup) / max(1, a.steps - a.warmup))))

    def batch():
        idx = rng.integers(0, len(win), a.batch)
        obs = np.empty((a.batch, No, obs_dim), np.float32)
        act = np.empty((a.batch, H, act_dim), np.float32)
        for b, i in enumerate(idx):
            e, s = win[i]
            o, x = eps[e]
            fr = np.clip(np.arange(s, s + H), 0, len(o) - 1)
            obs[b], act[b] = o[fr[:No]], x[fr]
        return torch.from_numpy(obs).reshape(a.batch, -1), torch.from_numpy(act)

    t0, run = time.time(), 0.0
    for step in range(1, a.steps + 1):
        cond, x0 = batch()
        noise = torch.randn_like(x0)
        t = torch.randint(0, T, (a.batch,))
        at = ac[t][:, None, None]
        xt = at.sqrt() * x0 + (1 - at).sqrt() * noise
        loss = torch.nn.functional.mse_loss(net(xt, t.float(), cond), noise)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        decay = min(a.ema_max_decay, max(0.0, 1 - (1 + step - 1) ** -0.75)) if step > 1 else 0.0
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.mul_(decay).add_(p.detach(), alpha=1 - decay)
            for be, b in zip(ema.buffers(), net.buffers()):
                be.copy_(b)
        run = loss.item() if step == 1 else 0.95 * run + 0.05 * loss.item()
        if step % 50 == 0 or step == a.steps:
            print("step %d/%d loss %.5f (smoothed %.5f) lr %.2e | %.1f s" % (step, a.steps, loss.item(), run,
                                                                           sched.get_last_lr()[0], time.time() - t0))
    src = net if a.no_ema else ema
    sd = {"model." + k: v.detach().clone() for k, v in src.state_dict().items()}
    for field, p in (("obs", nobs), ("action", nact)):
        for k, v in p.items():
            sd["normalizer.params_dict.%s.%s" % (field, k)] = torch.tensor(np.asarray(v, np.float32))
    sd["mask_generator._dummy_variable"] = torch.empty(0)
    tmp = a.out + ".tmp-%d" % os.getpid()
    torch.save(sd, tmp)
    os.replace(tmp, a.out)
    print("trained %d steps in %.1f s, final smoothed loss %.5f; wrote %s (%s weights)" % (
        a.steps, time.time() - t0, run, a.out, "model" if a.no_ema else "EMA"))


if __name__ == "__main__":
    main()
