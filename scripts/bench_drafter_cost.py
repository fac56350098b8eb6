#!/usr/bin/python3
"""Cost of a drafter call against a base call, for both base architectures, in one run.

    /usr/bin/python3 scripts/bench_drafter_cost.py [--tsdp build/tsdp] [--data runs/pusht.h5]
        [--unet CKPT] [--transformer CKPT] [--drafters 64,128] [--rounds 3]

Speed does not depend on the weights, so models without a checkpoint are made with one
training step (`tsdp train --max-steps 1`): the README's U-Net base (down_dims 64, 128, 256),
the reference Transformer base (n_emb 256, 4 heads, 8 layers) and one-block Transformer
drafters of each --drafters width. Each model's batch-1 engine forward is timed with
`tsdp bench step --json` on 1 and 2 threads, the models interleaved over --rounds rounds (the
machine is shared and noisy); the best of the rounds is kept. Prints ms per call and the
drafter/base ratios."""
import argparse
import json
import os
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")


def make(tsdp, data, out, config, over):
    subprocess.run([tsdp, "train", "--config", config, "--data", data, "--out", out, "--max-steps", "1", "--fresh",
                    "train.batch_size=2"] + over, check=True, capture_output=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tsdp", default=os.path.join(ROOT, "build", "tsdp"))
    ap.add_argument("--data", default=os.path.join(ROOT, "runs", "pusht.h5"))
    ap.add_argument("--unet")
    ap.add_argument("--transformer")
    ap.add_argument("--drafters", default="64,128")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    unet_ini = os.path.join(ROOT, "configs", "pusht_lowdim.ini")
    tf_ini = os.path.join(ROOT, "configs", "pusht_lowdim_transformer.ini")
    with tempfile.TemporaryDirectory() as d:
        models = []
        if not a.unet:
            a.unet = d + "/unet.h5"
            make(a.tsdp, a.data, a.unet, unet_ini, [])
        models.append(("U-Net base 64-128-256", a.unet))
        if not a.transformer:
            a.transformer = d + "/tf.h5"
            make(a.tsdp, a.data, a.transformer, tf_ini, [])
        models.append(("Transformer base 256x8", a.transformer))
        for w in [int(x) for x in a.drafters.split(",")]:
            path = "%s/drafter%d.h5" % (d, w)
            make(a.tsdp, a.data, path, tf_ini, ["model.n_layer=1", "model.n_emb=%d" % w])
            models.append(("drafter, 1 block, n_emb %d" % w, path))
        best = {}
        for _ in range(a.rounds):
            for th in (1, 2):
                for name, path in models:
                    out = subprocess.run([a.tsdp, "bench", "step", "--ckpt", path, "--batch", "1", "--threads",
                                          str(th), "--json"], check=True, capture_output=True, text=True).stdout
                    ms = json.loads(out)["ms"][0]
                    best[(name, th)] = min(best.get((name, th), 1e99), ms)
    print("%-28s %12s %12s %16s %16s" % ("model (engine, batch 1)", "1 thread ms", "2 threads ms",
                                        "/ U-Net base", "/ Transformer base"))
    for name, _ in models:
        r = [best[(name, th)] for th in (1, 2)]
        ru = [best[(name, th)] / best[(models[0][0], th)] for th in (1, 2)]
        rt = [best[(name, th)] / best[(models[1][0], th)] for th in (1, 2)]
        print("%-28s %12.3f %12.3f %7.3f / %6.3f %8.3f / %6.3f" % (name, r[0], r[1], ru[0], ru[1], rt[0], rt[1]))
    print("(ratios on 1 / 2 threads; best of %d interleaved rounds)" % a.rounds)


if __name__ == "__main__":
    main()
