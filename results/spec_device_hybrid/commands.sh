#!/usr/bin/env bash
# How results/spec_device_hybrid/ was made (2026-11-26, commit 20f3981 plus the MAIN.h5+x0 form
# of --drafter): the learned 30k drafter at t < 10 and t >= 80 with the x0 drafter between
# (spec-hybrid-L rows), next to the x0 drafter alone, on the same lent 16-core machine;
# 20 windows, blocks 4,6,8,12,16, threads 1,2,4,8,16, no overlap (x0 makes no drafter calls).
scripts/device_bundle.sh runs/base/pusht_d64.h5 runs/drafter/unet_u16_30k.h5+x0 runs/pusht.h5 .dev
# on the lent machine (81 s):  OV= W=20 B=4,6,8,12,16 TH="1 2 4 8 16" bash .dev/run.sh
for t in 1 2 4 8 16; do /usr/bin/python3 scripts/spec_table.py results/spec_device_hybrid/bench_spec_t$t.json; echo; done \
  > results/spec_device_hybrid/bench_spec.md
