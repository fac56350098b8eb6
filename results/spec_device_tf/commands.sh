#!/usr/bin/env bash
# How results/spec_device_tf/ was made (2026-11-26, on commit f518e5b plus the XZ option of
# scripts/device_bundle.sh): the Transformer base (runs/tf/pusht_tf.h5) and its one-block
# drafter (runs/drafter/tf_d128_5k.h5) on the same lent 16-core machine as results/spec_device/,
# 10 dataset windows, blocks 8,12,16, threads 1,2,4,8,16, with the overlapped rows.
XZ=1 scripts/device_bundle.sh runs/tf/pusht_tf.h5 runs/drafter/tf_d128_5k.h5 runs/pusht.h5 .dev
# then, on the lent machine (the device tool, carrying .dev; 203 s of wall time):
#   TH="1 2 4 8 16" W=10 B=8,12,16 bash .dev/run.sh     # = scripts/device_spec.sh
# and here: tar -xzf all.tar.gz; copy r/bench_spec_t*.json r/accept_t*.png; then
for t in 1 2 4 8 16; do /usr/bin/python3 scripts/spec_table.py results/spec_device_tf/bench_spec_t$t.json; echo; done \
  > results/spec_device_tf/bench_spec.md
