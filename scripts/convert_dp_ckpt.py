#!/usr/bin/python3
"""Convert a Diffusion Policy low-dim ConditionalUnet1D checkpoint into a tsdp checkpoint.

    /usr/bin/python3 scripts/convert_dp_ckpt.py IN.ckpt OUT.h5 [--down-dims 256,512,1024] [--use model|ema_model]

IN is Diffusion Policy's workspace checkpoint (torch.save payload with state_dicts; needs
python3-dill to unpickle) or a plain policy state_dict saved with torch.save. Keys are the
policy's: "model.<ConditionalUnet1D key>" and "normalizer.params_dict.{obs,action}.{scale,offset,
input_stats.min,input_stats.max}". The U-Net's shape (down_dims, kernel size, step embedding,
action and observation sizes) is read from the weights themselves; the remaining settings come
from configs/pusht_lowdim.ini unless given. Written through a temporary file and renamed.
"""
import argparse
import os
import re
import sys

import h5py
import numpy as np
import torch


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


def infer_shape(unet):
    downs = sorted({int(m.group(1)) for k in unet for m in [re.match(r"down_modules\.(\d+)\.0\.", k)] if m})
    dims = [unet["down_modules.%d.0.blocks.0.block.0.weight" % l].shape[0] for l in downs]
    k = unet["down_modules.0.0.blocks.0.block.0.weight"].shape[2]
    step = unet["diffusion_step_encoder.3.weight"].shape[0]
    act = unet["final_conv.1.weight"].shape[0]
    cond = unet["down_modules.0.0.cond_encoder.1.weight"].shape[1] - step
    return dims, k, step, act, cond


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--use", default="ema_model", help="state_dicts entry of a workspace checkpoint")
    ap.add_argument("--config", default=os.path.join(os.path.dirname(__file__), "..", "configs", "pusht_lowdim.ini"))
    ap.add_argument("--n-obs-steps", type=int, default=2)
    a = ap.parse_args()
    sd = load_state(a.inp, a.use)
    unet = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    if not unet:
        sys.exit("%s: no 'model.*' keys: not a Diffusion Policy U-Net policy" % a.inp)
    dims, k, step, act, cond = infer_shape(unet)
    obs_dim = cond // a.n_obs_steps
    norm = {}
    for field in ("obs", "action"):
        p = "normalizer.params_dict.%s." % field
        try:
            norm[field] = {"scale": sd[p + "scale"], "offset": sd[p + "offset"],
                           "input_min": sd[p + "input_stats.min"], "input_max": sd[p + "input_stats.max"]}
        except KeyError as e:
            sys.exit("%s: missing normalizer key %s" % (a.inp, e))
    text = open(a.config).read()
    over = {"down_dims": ", ".join(str(d) for d in dims), "kernel_size": str(k), "step_embed_dim": str(step),
            "n_obs_steps": str(a.n_obs_steps)}
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line else None
        lines.append("%s = %s" % (key, over[key]) if key in over else line)
    tmp = a.out + ".tmp-%d" % os.getpid()
    try:
        with h5py.File(tmp, "w") as f:
            for name, v in unet.items():
                arr = v.detach().float().numpy()
                if not np.all(np.isfinite(arr)):
                    sys.exit("%s: tensor %s holds NaN or Inf" % (a.inp, name))
                f.create_dataset("model/" + name, data=arr, compression="gzip")
                f.create_dataset("ema/" + name, data=arr, compression="gzip")
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
    print("wrote %s: down_dims %s, kernel %d, step embedding %d, action %d, obs %d x %d" %
          (a.out, dims, k, step, act, a.n_obs_steps, obs_dim))


if __name__ == "__main__":
    main()
