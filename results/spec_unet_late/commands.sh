#!/usr/bin/env bash
# results/spec_unet_late/ (2026-11-26, commit 3cb242b): a late-step specialist beside the 30k
# U-Net drafter. Only the counts (target calls, drafter calls, acceptance) of bench_spec.* are
# to be read: the run shared the machine with `make reproduce`, so its milliseconds are not
# this CPU's.
# 1. the specialist: the 30k drafter's architecture, started from its weights, trained 10,000
#    steps only on states t < 20 (955 s, 1 thread, beside make reproduce)
build/tsdp distill --config configs/pusht_drafter.ini --base runs/base/pusht_d64.h5 --data runs/pusht.h5 \
  --out runs/drafter/unet_u16_late20.h5 --max-steps 10000 model.type=unet model.down_dims=16,32,64 \
  model.step_embed_dim=64 train.batch_size=128 train.lr=5e-4 train.warmup_steps=200 distill.t_max=20 \
  distill.late_weight=1 distill.init=runs/drafter/unet_u16_30k.h5 distill.buffer_chains=512 \
  distill.refresh_every=100 train.threads=1                     # -> distill_late20.txt, late20_heldout_accept.png
# 2. the 30k drafter's own held-out acceptance on the same held-out chains (t < 20): a run that
#    starts from it with a learning rate too small to move it, stopped after one step
build/tsdp distill --config configs/pusht_drafter.ini --base runs/base/pusht_d64.h5 --data runs/pusht.h5 \
  --out /tmp/main_as_late.h5 --fresh --max-steps 1 model.type=unet model.down_dims=16,32,64 model.step_embed_dim=64 \
  train.batch_size=128 train.lr=1e-30 train.warmup_steps=1 distill.t_max=20 distill.late_weight=1 \
  distill.init=runs/drafter/unet_u16_30k.h5 distill.buffer_chains=64 train.threads=1
#    -> "held-out predicted acceptance 0.898 over 1 <= t < 20 (0.851 at t = 1..9)"
# 3. the pair, 30 windows
build/tsdp bench spec --ckpt runs/base/pusht_d64.h5 --data runs/pusht.h5 \
  --drafter runs/drafter/unet_u16_30k.h5+runs/drafter/unet_u16_late20.h5 --blocks 4,6,8,12,16 --windows 30 \
  --threads 1 --plot results/spec_unet_late/accept --json > results/spec_unet_late/bench_spec.json
