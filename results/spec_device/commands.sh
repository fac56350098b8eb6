#!/usr/bin/env bash
# How results/spec_device/ was made (2026-11-26, commit 6803a63 plus the two device scripts):
# the U-Net base of the README (runs/base/pusht_d64.h5) and its 30k-step drafter
# (runs/drafter/unet_u16_30k.h5) timed on a lent machine with 16 Xeon cores (machine.txt),
# 30 dataset windows, blocks 4,6,8,12,16, threads 1,2,4,8,16, with the overlapped rows.
scripts/device_bundle.sh runs/base/pusht_d64.h5 runs/drafter/unet_u16_30k.h5 runs/pusht.h5 .dev
# then, on the lent machine (the device tool, carrying .dev; 137 s of wall time):
#   bash .dev/run.sh            # = scripts/device_spec.sh
# and here: tar -xzf all.tar.gz; copy r/bench_spec_t*.json r/accept_t*.png; then
for t in 1 2 4 8 16; do /usr/bin/python3 scripts/spec_table.py results/spec_device/bench_spec_t$t.json; echo; done \
  > results/spec_device/bench_spec.md
