#!/usr/bin/env bash
# make demo: run the parts of the TS-DP pipeline that exist, end to end, on small defaults.
# Usage: scripts/demo.sh BUILD/tsdp DATA_DIR
set -euo pipefail
tsdp=${1:-build/tsdp}
data=${2:-../shared/data}
out=runs/demo
mkdir -p "$out"
echo "== tsdp demo: outputs in $out"

echo "== 1. tensor core: GEMM throughput of the U-Net's shapes (tsdp bench gemm)"
"$tsdp" bench gemm

zarr="$data/pusht/pusht_cchi_v7_replay.zarr"
if [ -d "$zarr" ]; then
  echo "== 2. data: import the Push-T demonstrations ($zarr)"
  "$tsdp" data import --zarr "$zarr" --out "$out/pusht.h5"
  "$tsdp" data info "$out/pusht.h5"
  echo "== 3. sim: replay recorded actions in the C Push-T simulator, GIF of episode 0"
  "$tsdp" sim replay --data "$out/pusht.h5" --episode 0 --gif "$out/replay_ep0.gif"
else
  echo "== 2-3 skipped: no dataset at $zarr (see README: getting the data)"
fi

echo "== stages still to come: base U-Net training (train), evaluation (eval), drafter"
echo "   distillation (distill), PPO scheduler (rl), speculative sampling benchmarks (bench step)"
