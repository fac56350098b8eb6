#!/usr/bin/env bash
# results/spec_unet_x0/ (2026-11-26, this 2-core machine, with the make-reproduce job paused by
# SIGSTOP for the 54 s of the run so that nothing else ran): the x0 drafter and the learned 30k
# drafter with x0 in the middle steps (MAIN.h5+x0: the learned one at t < 10 and t >= 80).
scripts/measure_spec.sh runs/base/pusht_d64.h5 runs/drafter/unet_u16_30k.h5+x0 runs/pusht.h5 results/spec_unet_x0 4,6,8,12,16 30 0
/usr/bin/python3 scripts/x0_reuse.py runs/base/pusht_d64.h5 runs/pusht.h5 > results/spec_unet_x0/x0_reuse.txt
# closed loop and the PyTorch sampler checks: runs/x0_eval.sh (the commands below)
build/tsdp eval --ckpt runs/base/pusht_d64.h5 --episodes 50 --sampler spec --block 12 --drafter runs/drafter/unet_u16_30k.h5+x0 --threads 1 --json > results/spec_unet_x0/eval_hybrid12.json
build/tsdp eval --ckpt runs/base/pusht_d64.h5 --episodes 50 --sampler spec --block 4 --drafter x0 --threads 1 --json > results/spec_unet_x0/eval_x0_4.json
for i in 500 12000; do
  /usr/bin/python3 scripts/check_sampler_torch.py --ckpt runs/base/pusht_d64.h5 --data runs/pusht.h5 --sampler spec --block 8 --drafter x0 --index $i --n 500 --threads 1 > results/spec_unet_x0/check_sampler_torch_x0_$i.txt
  /usr/bin/python3 scripts/check_sampler_torch.py --ckpt runs/base/pusht_d64.h5 --data runs/pusht.h5 --sampler spec --block 12 --drafter runs/drafter/unet_u16_30k.h5+x0 --index $i --n 500 --threads 1 > results/spec_unet_x0/check_sampler_torch_hybrid_$i.txt
done
# the pair (30k drafter + its late-step specialist) at t < 10 and t >= 80, x0 between; 30 windows.
# Run while `make asan` loaded the machine: read only its counts (calls, acceptance), not its ms.
build/tsdp bench spec --ckpt runs/base/pusht_d64.h5 --data runs/pusht.h5 \
  --drafter runs/drafter/unet_u16_30k.h5+runs/drafter/unet_u16_late20.h5+x0 --blocks 4,6,8,12,16 --windows 30 \
  --threads 1 --plot results/spec_unet_x0/accept_pair_x0 --json > results/spec_unet_x0/bench_spec_pair_x0.json
/usr/bin/python3 scripts/spec_table.py results/spec_unet_x0/bench_spec_pair_x0.json > results/spec_unet_x0/bench_spec_pair_x0.md
