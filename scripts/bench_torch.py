#!/usr/bin/python3
"""Time tsdp against PyTorch on this CPU, side by side in one run.

    /usr/bin/python3 scripts/bench_torch.py --ckpt CKPT.h5 [--data D.h5] [--tsdp build/tsdp]
                                            [--quick] [--no-train] [--json-out FILE]

Builds the checkpoint's network in PyTorch (ConditionalUnet1D from scripts/torch_unet.py or
TransformerForDiffusion from scripts/torch_transformer.py, as its model.type says), loads the
checkpoint's EMA weights by their state_dict names, checks that PyTorch and `tsdp forward` agree on the same
inputs, then times (best of 1 and 2 threads on each side, over --rounds alternating rounds):
  - one forward at each batch size, against `tsdp bench step --json` (its inference engine,
    and the same engine with the timestep path computed per call instead of tabled);
  - one DDPM-100 action chunk at batch 1;
  - training samples/s (forward, backward, AdamW) at --train-batch, against
    `tsdp train --max-steps` on the same data (when --data is given).
Prints the C/PyTorch ratios.

--no-train skips the training throughput; --quick (what `tsdp pipeline`'s torch reference stage
runs) times batch 1 only, in one round, without training. --json-out FILE also writes (temp file +
rename) the DDPM chunk at batch 1 on both sides: torch_ddpm_chunk_ms and torch_threads (the best
thread count), tsdp_ddpm_chunk_ms and tsdp_threads, tsdp_speedup (torch / tsdp), torch_version,
agreement_error, ckpt (absolute path), model, ddpm_steps."""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_transformer import TransformerForDiffusion  # noqa: E402
from torch_unet import ConditionalUnet1D  # noqa: E402


class FlatCond(torch.nn.Module):
    """TransformerForDiffusion called as tsdp calls every model: cond (B, n_obs_steps * obs_dim)."""

    def __init__(self, net, n_obs):
        super().__init__()
        self.net, self.n_obs = net, n_obs

    def forward(self, x, t, cond):
        return self.net(x, t, cond.reshape(cond.shape[0], self.n_obs, -1))


def parse_ini(text):
    cfg, sec = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in ";#":
            continue
        if line.startswith("["):
            sec = line[1:-1]
            cfg[sec] = {}
        else:
            k, v = line.split("=", 1)
            cfg[sec][k.strip()] = v.strip()
    return cfg


def load(ckpt):
    with h5py.File(ckpt, "r") as f:
        cfg = parse_ini(f.attrs["config"])
        obs_dim = f["normalizer/obs/scale"].shape[0]
        act_dim = f["normalizer/action/scale"].shape[0]
        m, n_obs = cfg["model"], int(cfg["data"]["n_obs_steps"])
        if m.get("type", "unet") == "transformer":
            tf = TransformerForDiffusion(act_dim, act_dim, int(cfg["data"]["horizon"]), n_obs, obs_dim,
                                         int(m["n_layer"]), int(m["n_head"]), int(m["n_emb"]), float(m["p_drop_emb"]),
                                         float(m["p_drop_attn"]), m["causal_attn"] in ("1", "true"))
            # the masks and the empty parameter are not in a tsdp checkpoint: keep the module's own
            sd = {k: torch.tensor(f["ema/" + k][()]) if "ema/" + k in f else v for k, v in tf.state_dict().items()}
            tf.load_state_dict(sd)
            net = FlatCond(tf, n_obs)
        else:
            net = ConditionalUnet1D(act_dim, n_obs * obs_dim, int(m["step_embed_dim"]),
                                    [int(x) for x in m["down_dims"].split(",")], int(m["kernel_size"]),
                                    int(m["n_groups"]))
            net.load_state_dict({k: torch.tensor(f["ema/" + k][()]) for k in net.state_dict()})
    return net.eval(), cfg, obs_dim, act_dim


def median_time(fn, reps=5):
    fn()
    ts = []
    for _ in range(reps):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            if time.perf_counter() - t0 > 0.2:
                break
        ts.append((time.perf_counter() - t0) / n)
    return sorted(ts)[len(ts) // 2]


def ddpm_chunk(net, cond, T=100, horizon=16, act_dim=2):
    abar = lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
    betas = torch.tensor([min(1 - abar((i + 1) / T) / abar(i / T), 0.999) for i in range(T)], dtype=torch.float32)
    ac = torch.cumprod(1 - betas, 0)
    x = torch.randn(cond.shape[0], horizon, act_dim)
    with torch.no_grad():
        for t in range(T - 1, -1, -1):
            eps = net(x, torch.full((cond.shape[0],), float(t)), cond)
            a, ap = ac[t], ac[t - 1] if t > 0 else torch.tensor(1.0)
            b = 1 - a / ap
            x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-1, 1)
            mean = ap.sqrt() * b / (1 - a) * x0 + (a / ap).sqrt() * (1 - ap) / (1 - a) * x
            x = mean + ((1 - ap) / (1 - a) * b).clamp(min=1e-20).sqrt() * torch.randn_like(x) if t > 0 else mean
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--data")
    ap.add_argument("--tsdp", default="build/tsdp")
    ap.add_argument("--batch", default="1,2,4,8,16")
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--train-steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-train", action="store_true", help="skip the training throughput (even with --data)")
    ap.add_argument("--quick", action="store_true", help="batch 1 only, one round, no training")
    ap.add_argument("--json-out", help="write the batch-1 DDPM chunk comparison here as JSON")
    a = ap.parse_args()
    if a.quick:
        a.batch, a.rounds, a.no_train = "1", 1, True
    batches = [int(b) for b in a.batch.split(",")]
    net, cfg, obs_dim, act_dim = load(a.ckpt)
    cond_dim = int(cfg["data"]["n_obs_steps"]) * obs_dim
    horizon = int(cfg["data"].get("horizon", 16))
    T = int(cfg.get("diffusion", {}).get("num_train_timesteps", 100))

    # 1. Agreement: the same inputs through PyTorch and `tsdp forward`.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, horizon, act_dim, generator=g)
    t = torch.tensor([0.0, 0.1 * (T - 1), 0.5 * (T - 1), T - 1.0]).round()  # first, early, middle and last steps
    cond = torch.rand(4, cond_dim, generator=g) * 2 - 1
    with tempfile.TemporaryDirectory() as d:
        with h5py.File(d + "/in.h5", "w") as f:
            f["x"], f["t"], f["cond"] = x.numpy(), t.numpy(), cond.numpy()
        subprocess.run([a.tsdp, "forward", "--ckpt", a.ckpt, "--in", d + "/in.h5", "--out", d + "/out.h5"], check=True,
                       stdout=subprocess.DEVNULL)
        with h5py.File(d + "/out.h5", "r") as f:
            c_eps = f["eps"][()]
    with torch.no_grad():
        t_eps = net(x, t, cond).numpy()
    err = np.abs(c_eps - t_eps).max() / max(np.abs(t_eps).max(), 1e-2)
    print("agreement: max |tsdp - torch| / max |torch| = %.2e on a batch of 4 forwards" % err)

    # 2. Forward latency per batch size, and a DDPM-100 chunk: best of 1 and 2 threads for
    # each side, over --rounds rounds that alternate tsdp and PyTorch (the machine is shared).
    best = {}  # (who, key) -> (ms, threads)

    def keep(who, key, ms, th):
        if ms < best.get((who, key), (1e99, 0))[0]:
            best[(who, key)] = (ms, th)

    chunk_threads, untimed = set(), ""  # thread counts whose PyTorch chunk was timed; why one was not
    for _ in range(a.rounds):
        for th in (1, 2):
            r = json.loads(subprocess.run([a.tsdp, "bench", "step", "--ckpt", a.ckpt, "--batch", a.batch, "--threads",
                                           str(th), "--json"], check=True, capture_output=True, text=True).stdout)
            for i, b in enumerate(r["batch"]):
                keep("tsdp", b, r["ms"][i], th)
                keep("tsdp-no-table", b, r["ms_no_step_table"][i], th)
            keep("tsdp", "chunk", r["ddpm_chunk_ms"], th)
        fwd1 = {}  # threads -> ms of a batch-1 forward in this round
        for th in (1, 2):
            torch.set_num_threads(th)
            for b in batches:
                xb, tb, cb = torch.randn(b, horizon, act_dim), torch.randint(0, T, (b,)).float(), torch.rand(b, cond_dim)
                with torch.no_grad():
                    ms = 1e3 * median_time(lambda: net(xb, tb, cb))
                keep("torch", b, ms, th)
                if b == 1:
                    fwd1[th] = ms
            # --quick: a chunk is T batch-1 forwards; where this thread count's forward is far
            # slower than 1 thread's (OpenMP threads on a busy machine), its chunk cannot be the
            # best and is not timed (it could take minutes)
            if a.quick and th > 1 and th in fwd1 and fwd1[th] > 1.5 * fwd1[1]:
                untimed = ("%d threads not timed for the chunk: a batch-1 forward took %.1f ms there, %.1f ms at 1 thread"
                           % (th, fwd1[th], fwd1[1]))
                print("PyTorch DDPM chunk: " + untimed)
                continue
            chunk_threads.add(th)
            cb = torch.rand(1, cond_dim)
            keep("torch", "chunk", 1e3 * median_time(lambda: ddpm_chunk(net, cb, T, horizon, act_dim), reps=3), th)
    print("\n%-20s %14s %18s %14s %9s %14s" % ("Transformer forward" if isinstance(net, FlatCond) else "U-Net forward", "tsdp ms", "tsdp no-table ms", "PyTorch ms", "speed-up",
                                             "(no table)"))
    for b in batches:
        (c, ct), (n, nt), (t, tt) = best[("tsdp", b)], best[("tsdp-no-table", b)], best[("torch", b)]
        print("%-20s %10.3f (%dt) %14.3f (%dt) %10.3f (%dt) %8.2fx %13.2fx" % ("batch %d" % b, c, ct, n, nt, t, tt, t / c,
                                                                          t / n))
    (c, ct), (t, tt) = best[("tsdp", "chunk")], best[("torch", "chunk")]
    print("%-20s %10.1f (%dt) %19s %10.1f (%dt) %8.2fx" % ("DDPM-%d chunk, b=1" % T, c, ct, "", t, tt, t / c))
    if a.json_out:
        res = {"ckpt": os.path.abspath(a.ckpt), "model": "transformer" if isinstance(net, FlatCond) else "unet",
               "ddpm_steps": T, "batch": 1, "torch_version": torch.__version__, "agreement_error": float(err),
               "torch_ddpm_chunk_ms": t, "torch_threads": tt, "tsdp_ddpm_chunk_ms": c, "tsdp_threads": ct,
               "tsdp_speedup": t / c, "rounds": a.rounds, "torch_chunk_threads_timed": sorted(chunk_threads),
               "torch_threads_note": "best of 1 and 2 threads: %d" % tt if len(chunk_threads) > 1 else
                                     "%d thread%s" % (tt, "; " + untimed if untimed else "")}
        d = os.path.dirname(os.path.abspath(a.json_out))
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(a.json_out) + ".tmp-", dir=d)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(res, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, a.json_out)
        except BaseException:
            os.unlink(tmp)
            raise

    # 3. Training throughput on the same model and batch.
    if a.data and not a.no_train:
        B = a.train_batch
        is_tf = isinstance(net, FlatCond)
        recipe = "configs/pusht_lowdim_transformer.ini" if is_tf else "configs/pusht_lowdim.ini"
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.run([a.tsdp, "train", "--config", recipe, "--data", a.data, "--out",
                                  d + "/t.h5", "--max-steps", str(a.train_steps), "--fresh", "--json",
                                  "train.batch_size=%d" % B, "train.checkpoint_every=100000"],
                                 check=True, capture_output=True, text=True).stdout
        # the training steps alone (checkpoint writing excluded); OpenBLAS's default (2) threads
        c_sps = json.loads(out)["step_samples_per_s"]
        best_sps = 0
        for th in (1, 2):
            torch.set_num_threads(th)
            tnet = load(a.ckpt)[0].train()
            if is_tf:  # the reference's two parameter groups
                decay = tnet.net.decay_names()
                named = dict(tnet.net.named_parameters())
                groups = [{"params": [p for n, p in named.items() if n in decay], "weight_decay": 0.1},
                          {"params": [p for n, p in named.items() if n not in decay], "weight_decay": 0.0}]
                opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.95), eps=1e-8)
            else:
                opt = torch.optim.AdamW(tnet.parameters(), lr=1e-4, betas=(0.95, 0.999), eps=1e-8, weight_decay=1e-6)
            xb, tb, cb = torch.randn(B, horizon, act_dim), torch.randint(0, T, (B,)).float(), torch.rand(B, cond_dim)

            def step():
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(tnet(xb, tb, cb), xb)
                loss.backward()
                opt.step()
            s = median_time(step, reps=3)
            best_sps = max(best_sps, B / s)
        print("%-20s %14.0f %18s %14.0f %8.2fx" % ("train samples/s, b=%d" % B, c_sps, "", best_sps, c_sps / best_sps))


if __name__ == "__main__":
    main()
