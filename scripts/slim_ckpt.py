#!/usr/bin/env python3
"""Copy a tsdp checkpoint (base policy or drafter) keeping only what inference reads: the EMA
weights, the normalizer and the file's attributes (config, step, base hash). The training state
(raw weights, optimizer moments, distillation buffers, logs) is dropped, so the copy is about a
fifth of the size and can only be sampled from, not resumed. Used to ship checkpoints to a robot
or another machine. Usage: scripts/slim_ckpt.py IN.h5 OUT.h5"""
import os
import sys

import h5py

KEEP = ("ema", "normalizer")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    tmp = dst + ".tmp"
    with h5py.File(src, "r") as f, h5py.File(tmp, "w") as g:
        for k, v in f.attrs.items():
            g.attrs[k] = v
        missing = [k for k in KEEP if k not in f]
        if missing:
            sys.exit(f"{src}: no group {missing[0]!r}; not a tsdp checkpoint")
        for k in KEEP:
            f.copy(k, g)
    os.replace(tmp, dst)
    print(f"{dst}: {os.path.getsize(dst) / 1e6:.1f} MB (from {os.path.getsize(src) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
