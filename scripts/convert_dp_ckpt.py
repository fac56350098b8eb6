#!/usr/bin/python3
"""Convert a Diffusion Policy low-dim checkpoint (ConditionalUnet1D or TransformerForDiffusion)
into a tsdp checkpoint.

    /usr/bin/python3 scripts/convert_dp_ckpt.py IN.ckpt OUT.h5 [--use model|ema_model] [--n-head 4]

IN is Diffusion Policy's workspace checkpoint (torch.save payload with state_dicts; needs
python3-dill to unpickle) or a plain policy state_dict saved with torch.save. Keys are the
policy's: "model.<network key>" and "normalizer.params_dict.{obs,action}.{scale,offset,
input_stats.min,input_stats.max}". The architecture is recognised from the keys. Its shape is
read from the weights themselves: for the U-Net down_dims, kernel size, step embedding, action
and observation sizes; for the Transformer n_emb, n_layer, horizon, observation steps and size,
and whether it has the causal masks. The Transformer's head count is not in its weights
(--n-head, default 4 as in the Push-T recipe). The remaining settings come from
configs/pusht_lowdim.ini or configs/pusht_lowdim_transformer.ini unless --config names
another. The Transformer's mask buffers and its empty _dummy_variable are not weights and are
left out. Written through a temporary file and renamed.
"""
import argparse
import os
import re
import sys

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
NOT_WEIGHTS = {"mask", "memory_mask", "_dummy_variable"}


def load_state(path, use):
    try:
        import dill  # Diffusion Policy pickles its payload with dill
        obj = torch.load(path, map_location="cpu", pickle_module=dill)
    except ImportError:
        obj = torch.load(path, map_location="cpu")
    if isinstance(obj, dict) and "state_dicts" in obj:
        sds = obj["state_dicts"]
        if use not in sds:
            sys.exit("%s: no state_dicts['%s'] (have %s)" % (path, use, ", ".join(sds)))
        return sds[use]
    if isinstance(obj, dict):
        return obj
    sys.exit("%s: not a Diffusion Policy checkpoint or state_dict" % path)


def unet_settings(net, n_obs_steps):
    downs = sorted({int(m.group(1)) for k in net for m in [re.match(r"down_modules\.(\d+)\.0\.", k)] if m})
    dims = [net["down_modules.%d.0.blocks.0.block.0.weight" % l].shape[0] for l in downs]
    k = net["down_modules.0.0.blocks.0.block.0.weight"].shape[2]
    step = net["diffusion_step_encoder.3.weight"].shape[0]
    cond = net["down_modules.0.0.cond_encoder.1.weight"].shape[1] - step
    over = {"down_dims": ", ".join(str(d) for d in dims), "kernel_size": str(k), "step_embed_dim": str(step),
            "n_obs_steps": str(n_obs_steps)}
    return over, "down_dims %s, kernel %d, step embedding %d, obs %d" % (dims, k, step, cond)


def transformer_settings(net, n_head):
    E = net["input_emb.weight"].shape[0]
    L = len({int(m.group(1)) for k in net for m in [re.match(r"decoder\.layers\.(\d+)\.", k)] if m})
    horizon = net["pos_emb"].shape[1]
    n_obs = net["cond_pos_emb"].shape[1] - 1
    if E % n_head:
        sys.exit("n_emb %d is not divisible by --n-head %d" % (E, n_head))
    over = {"type": "transformer", "n_emb": str(E), "n_layer": str(L), "n_head": str(n_head),
            "horizon": str(horizon), "n_obs_steps": str(n_obs), "causal_attn": "true" if "mask" in net else "false"}
    return over, "n_emb %d, %d layers, %d heads, horizon %d, %d obs steps of %d" % (
        E, L, n_head, horizon, n_obs, net["cond_obs_emb.weight"].shape[1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--use", default="ema_model", help="state_dicts entry of a workspace checkpoint")
    ap.add_argument("--config", help="base INI (default: the Push-T config of the detected architecture)")
    ap.add_argument("--n-obs-steps", type=int, default=2, help="U-Net only (the Transformer's is in its weights)")
    ap.add_argument("--n-head", type=int, default=4, help="Transformer only: attention heads")
    a = ap.parse_args()
    sd = load_state(a.inp, a.use)
    net = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    if not net:
        sys.exit("%s: no 'model.*' keys: not a Diffusion Policy policy" % a.inp)
    if "decoder.layers.0.self_attn.in_proj_weight" in net:
        if "encoder.0.weight" not in net or "cond_obs_emb.weight" not in net:
            sys.exit("%s: only the obs-as-cond Transformer with an MLP condition encoder (n_cond_layers 0) converts"
                     % a.inp)
        over, desc = transformer_settings(net, a.n_head)
        cfg = a.config or os.path.join(HERE, "..", "configs", "pusht_lowdim_transformer.ini")
    elif "down_modules.0.0.blocks.0.block.0.weight" in net:
        over, desc = unet_settings(net, a.n_obs_steps)
        cfg = a.config or os.path.join(HERE, "..", "configs", "pusht_lowdim.ini")
    else:
        sys.exit("%s: neither a ConditionalUnet1D nor a TransformerForDiffusion" % a.inp)
    norm = {}
    for field in ("obs", "action"):
        p = "normalizer.params_dict.%s." % field
        try:
            norm[field] = {"scale": sd[p + "scale"], "offset": sd[p + "offset"],
                           "input_min": sd[p + "input_stats.min"], "input_max": sd[p + "input_stats.max"]}
        except KeyError as e:
            sys.exit("%s: missing normalizer key %s" % (a.inp, e))
    lines, seen = [], set()
    for line in open(cfg).read().splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line and not line.lstrip().startswith(";") else None
        if key in over:
            seen.add(key)
            lines.append("%s = %s" % (key, over[key]))
        else:
            lines.append(line)
    if set(over) - seen:
        sys.exit("%s: keys %s not in the base config" % (cfg, ", ".join(sorted(set(over) - seen))))
    tmp = a.out + ".tmp-%d" % os.getpid()
    try:
        with h5py.File(tmp, "w") as f:
            for name, v in net.items():
                if name in NOT_WEIGHTS:
                    continue
                arr = v.detach().float().numpy()
                if not np.all(np.isfinite(arr)):
                    sys.exit("%s: tensor %s holds NaN or Inf" % (a.inp, name))
                f.create_dataset("model/" + name, data=arr)
                f.create_dataset("ema/" + name, data=arr)
            for field, d in norm.items():
                for key, v in d.items():
                    f["normalizer/%s/%s" % (field, key)] = v.detach().float().numpy().reshape(-1)
            f.attrs["config"] = "\n".join(lines) + "\n"
            f.attrs["step"] = np.int64(0)
            f.attrs["source"] = os.path.abspath(a.inp)
        os.replace(tmp, a.out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print("wrote %s: %s" % (a.out, desc))


if __name__ == "__main__":
    main()
