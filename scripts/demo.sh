#!/usr/bin/env bash
# make demo: run the parts of the TS-DP pipeline that exist, end to end, on small defaults
# (a few minutes on 2 cores). Usage: scripts/demo.sh BUILD/tsdp DATA_DIR
set -euo pipefail
tsdp=${1:-build/tsdp}
data=${2:-../shared/data}
out=runs/demo
mkdir -p "$out"
echo "== tsdp demo: outputs in $out"

zarr="$data/pusht/pusht_cchi_v7_replay.zarr"
if [ ! -d "$zarr" ]; then
  echo "no dataset at $zarr (see README: getting the data); running the tensor-core benchmark only"
  "$tsdp" bench gemm
  exit 0
fi

echo "== 1. data: import the Push-T demonstrations"
"$tsdp" data import --zarr "$zarr" --out "$out/pusht.h5"
"$tsdp" data info "$out/pusht.h5"

echo "== 2. sim: replay the recorded actions in the C simulator (GIF of episode 0)"
"$tsdp" sim replay --data "$out/pusht.h5" --episode 0 --gif "$out/replay_ep0.gif"
"$tsdp" sim replay --data "$out/pusht.h5" | tail -3

echo "== 3. train: a small U-Net for 300 steps (the full recipe: configs/pusht_lowdim.ini)"
"$tsdp" train --config configs/pusht_lowdim.ini --data "$out/pusht.h5" --out "$out/base.h5" --fresh \
  --max-steps 300 model.down_dims=32,64,128 train.batch_size=64 train.log_every=50 train.checkpoint_every=100 \
  train.warmup_steps=50 train.lr=1e-3

echo "== 4. eval: closed loop on 5 test seeds with DDIM-10 (GIFs of two episodes)"
"$tsdp" eval --ckpt "$out/base.h5" --episodes 5 --sampler ddim --steps 10 --gif "$out/eval_gifs" --gif-count 2

echo "== 5. bench: U-Net forward latency per batch size"
"$tsdp" bench step --ckpt "$out/base.h5" --batch 1,4,16

echo "== 6. spec: exact speculative DDPM (frozen-target drafter) against DDPM, batch 1"
"$tsdp" bench spec --ckpt "$out/base.h5" --data "$out/pusht.h5" --blocks 2,4 --windows 5

echo "== done: training curves $out/base.h5.png, rollouts $out/eval_gifs/, replay $out/replay_ep0.gif"
echo "== not in the demo yet: drafter distillation (tsdp distill exists; see README), PPO scheduler (rl)"
