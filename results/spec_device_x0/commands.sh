#!/usr/bin/env bash
# How results/spec_device_x0/ was made (2026-11-26, commit 20f3981): the U-Net base and the 30k
# drafter as in results/spec_device/, now with the training-free x0 drafter's rows (spec-x0-L),
# on the same lent 16-core machine; 20 windows, blocks 4,6,8,12,16, threads 1,2,4,8,16.
scripts/device_bundle.sh runs/base/pusht_d64.h5 runs/drafter/unet_u16_30k.h5 runs/pusht.h5 .dev
# on the lent machine (113 s):  W=20 B=4,6,8,12,16 TH="1 2 4 8 16" bash .dev/run.sh
for t in 1 2 4 8 16; do /usr/bin/python3 scripts/spec_table.py results/spec_device_x0/bench_spec_t$t.json; echo; done \
  > results/spec_device_x0/bench_spec.md
