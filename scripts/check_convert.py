#!/usr/bin/python3
"""Round trip of the Diffusion Policy converter: PyTorch -> tsdp -> identical eps.

    /usr/bin/python3 scripts/check_convert.py [--tsdp build/tsdp]

For each architecture (ConditionalUnet1D and TransformerForDiffusion, small random networks
with their normalisers) it saves a Diffusion Policy-style policy state_dict ("model.<key>",
"normalizer.params_dict...") with torch.save, converts it with scripts/convert_dp_ckpt.py,
runs `tsdp forward` on the converted checkpoint and compares the noise predictions with the
PyTorch network's on the same inputs. Exits 1 when any relative error exceeds 1e-4."""
import argparse
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from torch_transformer import TransformerForDiffusion  # noqa: E402
from torch_unet import ConditionalUnet1D  # noqa: E402


def policy_state(net, obs_dim, act_dim, g):
    sd = {"model." + k: v for k, v in net.state_dict().items()}
    for field, d in (("obs", obs_dim), ("action", act_dim)):
        lo = torch.rand(d, generator=g) * 100
        hi = lo + 1 + torch.rand(d, generator=g) * 400
        scale = 2 / (hi - lo)
        p = "normalizer.params_dict.%s." % field
        sd[p + "scale"], sd[p + "offset"] = scale, -1 - scale * lo
        sd[p + "input_stats.min"], sd[p + "input_stats.max"] = lo, hi
    return sd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tsdp", default=os.path.join(HERE, "..", "build", "tsdp"))
    a = ap.parse_args()
    torch.manual_seed(11)
    g = torch.Generator().manual_seed(12)
    n_obs, obs_dim, act_dim, H = 2, 20, 2, 16
    tf = TransformerForDiffusion(act_dim, act_dim, H, n_obs, obs_dim, n_layer=2, n_head=4, n_emb=64)
    unet = ConditionalUnet1D(act_dim, n_obs * obs_dim, 32, [16, 32], 5, 8)
    worst = 0.0
    for name, net, call in (
            ("transformer", tf, lambda x, t, c: tf(x, t, c.reshape(c.shape[0], n_obs, obs_dim))),
            ("unet", unet, lambda x, t, c: unet(x, t, c))):
        for p in net.parameters():  # away from the trivial init so every weight matters
            p.data += 0.05 * torch.randn(p.shape, generator=g)
        net.eval()
        x = torch.randn(5, H, act_dim, generator=g)
        t = torch.tensor([0.0, 1.0, 37.0, 64.0, 99.0])
        cond = torch.rand(5, n_obs * obs_dim, generator=g) * 2 - 1
        with torch.no_grad():
            ref = call(x, t, cond).numpy()
        with tempfile.TemporaryDirectory() as d:
            torch.save(policy_state(net, obs_dim, act_dim, g), d + "/policy.pt")
            subprocess.run([sys.executable, os.path.join(HERE, "convert_dp_ckpt.py"), d + "/policy.pt", d + "/c.h5",
                            "--use", "model"], check=True, stdout=subprocess.DEVNULL)
            with h5py.File(d + "/in.h5", "w") as f:
                f["x"], f["t"], f["cond"] = x.numpy(), t.numpy(), cond.numpy()
            subprocess.run([a.tsdp, "forward", "--ckpt", d + "/c.h5", "--in", d + "/in.h5", "--out", d + "/out.h5"],
                           check=True, stdout=subprocess.DEVNULL)
            with h5py.File(d + "/out.h5", "r") as f:
                eps = f["eps"][()]
        err = float(np.abs(eps - ref).max() / max(np.abs(ref).max(), 1e-2))
        worst = max(worst, err)
        print("%s: PyTorch -> convert_dp_ckpt.py -> tsdp forward: max relative error %.2e" % (name, err))
    if worst > 1e-4:
        sys.exit("converter round trip: relative error %.2e > 1e-4" % worst)
    print("converter round trip: passed")


if __name__ == "__main__":
    main()
