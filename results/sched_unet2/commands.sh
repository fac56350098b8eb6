#!/usr/bin/env bash
# issue 9/10 measurements with the 15k-step U-Net drafter (run from the repo root)
set -euo pipefail
B=runs/base/pusht_d64.h5 D=runs/drafter/unet_u16_15k.h5 T=runs/tsdp-m S=runs/sched2 R=results/sched_unet2
step() { echo "=== $(date +%T) $*" >&2; }
step spec table
SPEC_EXTRA=--overlap TSDP=$T scripts/measure_spec.sh $B $D runs/pusht.h5 results/spec_unet15k 4,6,8,12,16 30 0
step cost models
$T bench cost --ckpt $B --drafter $D --out $S/cost_1t.ini --reps 31 --threads 1
$T bench cost --ckpt $B --drafter $D --out $S/cost_2t.ini --reps 31 --threads 2
for th in 2 1; do
  step rl train exact ${th}t
  $T rl train --config configs/pusht_scheduler.ini --ckpt $B --drafter $D --rollouts runs/sched/ro_train.h5 \
    --out $S/sched_${th}t.h5 --fresh rl.cost_model=$S/cost_${th}t.ini rl.updates=150 train.threads=$th
  step bench spec scheduler ${th}t
  $T bench spec --ckpt $B --drafter $D --rollouts runs/sched/ro_test.h5 --scheduler $S/sched_${th}t.h5 \
    --blocks 4,6,8,12,16 --windows 40 --threads $th --json > $R/bench_spec_${th}t.json.tmp
  mv $R/bench_spec_${th}t.json.tmp $R/bench_spec_${th}t.json
done
step closed loop spec learned drafter L 8 overlapped, 1 thread
$T eval --ckpt $B --episodes 50 --sampler spec --block 8 --drafter $D --overlap --threads 1 --json > results/spec_unet15k/eval_spec_overlap.json.tmp
mv results/spec_unet15k/eval_spec_overlap.json.tmp results/spec_unet15k/eval_spec_overlap.json
step rl train LOSSY 1t
$T rl train --config configs/pusht_scheduler.ini --ckpt $B --drafter $D --rollouts runs/sched/ro_train.h5 \
  --out $S/sched_lossy.h5 --fresh rl.cost_model=$S/cost_1t.ini rl.lossy=true rl.tolerances=0,0.5,1,2 rl.updates=40 \
  rl.sim_episodes=2 rl.score_weight=20 train.threads=1
step bench spec LOSSY 1t
$T bench spec --ckpt $B --drafter $D --rollouts runs/sched/ro_test.h5 --scheduler $S/sched_lossy.h5 \
  --blocks 8 --windows 40 --threads 1 --json > $R/bench_spec_lossy.json.tmp
mv $R/bench_spec_lossy.json.tmp $R/bench_spec_lossy.json
step closed loop LOSSY 1 thread
$T eval --ckpt $B --episodes 50 --sampler spec --drafter $D --scheduler $S/sched_lossy.h5 --threads 1 --json > $R/eval_lossy.json.tmp
mv $R/eval_lossy.json.tmp $R/eval_lossy.json
step TF spec table with overlap
SPEC_EXTRA=--overlap TSDP=$T scripts/measure_spec.sh runs/tf/pusht_tf.h5 runs/drafter/tf_d128_5k.h5 runs/pusht.h5 results/spec_tf2 8,12,16 10 0
step ALLDONE
#!/usr/bin/env bash
# quiet-machine re-measurements (nothing else running)
set -euo pipefail
B=runs/base/pusht_d64.h5 D=runs/drafter/unet_u16_15k.h5 T=runs/tsdp-q S=runs/sched2 R=results/sched_unet2
step() { echo "=== $(date +%T) $*" >&2; }
step spec table quiet
SPEC_EXTRA=--overlap TSDP=$T scripts/measure_spec.sh $B $D runs/pusht.h5 results/spec_unet15k 4,6,8,12,16 30 0
step cost 2t quiet
$T bench cost --ckpt $B --drafter $D --out $S/cost_2t.ini --reps 31 --threads 2
step rl train exact 2t
$T rl train --config configs/pusht_scheduler.ini --ckpt $B --drafter $D --rollouts runs/sched/ro_train.h5 \
  --out $S/sched_2t.h5 --fresh rl.cost_model=$S/cost_2t.ini rl.updates=150
step bench spec scheduler 2t
$T bench spec --ckpt $B --drafter $D --rollouts runs/sched/ro_test.h5 --scheduler $S/sched_2t.h5 \
  --blocks 4,6,8,12,16 --windows 40 --threads 2 --json > $R/bench_spec_2t.json.tmp
mv $R/bench_spec_2t.json.tmp $R/bench_spec_2t.json
step closed loop LOSSY 1 thread
$T eval --ckpt $B --episodes 50 --sampler spec --drafter $D --scheduler $S/sched_lossy.h5 --threads 1 --json > $R/eval_lossy.json.tmp
mv $R/eval_lossy.json.tmp $R/eval_lossy.json
step ALLDONE
