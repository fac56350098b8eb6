#!/usr/bin/env bash
# results/spec_unet_x0/ (2026-11-26, this 2-core machine, with the make-reproduce job paused by
# SIGSTOP for the 54 s of the run so that nothing else ran): the x0 drafter and the learned 30k
# drafter with x0 in the middle steps (MAIN.h5+x0: the learned one at t < 10 and t >= 80).
scripts/measure_spec.sh runs/base/pusht_d64.h5 runs/drafter/unet_u16_30k.h5+x0 runs/pusht.h5 results/spec_unet_x0 4,6,8,12,16 30 0
