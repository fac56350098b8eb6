#!/usr/bin/env bash
# make demo / make reproduce: the whole TS-DP pipeline (`tsdp pipeline`, cli/pipeline.c) on a
# pipeline config, then its report, figures, GIFs and result files copied to a results folder.
# Usage: scripts/demo.sh BUILD/tsdp DATA_DIR CONFIG OUT RESULTS
#   make demo:      configs/demo_tsdp.ini into runs/demo, copied to results/demo (~10 min, 2 cores)
#   make reproduce: configs/pusht_tsdp.ini into runs/pusht, copied to results/pusht (hours)
# Re-running skips every finished stage (and resumes a killed training stage).
set -euo pipefail
tsdp=${1:-build/tsdp}
data=${2:-../shared/data}
config=${3:-configs/demo_tsdp.ini}
out=${4:-runs/demo}
results=${5:-results/demo}

zarr="$data/pusht/pusht_cchi_v7_replay.zarr"
if [ ! -d "$zarr" ]; then
  echo "no dataset at $zarr (see README: getting the data); running the tensor-core benchmark only"
  "$tsdp" bench gemm
  exit 0
fi

"$tsdp" pipeline --config "$config" --out "$out" "pipeline.data=$zarr"

# the report with what it links, at the same relative paths
mkdir -p "$results"
( cd "$out" && find . -maxdepth 1 \( -name 'report.md' -o -name 'report.json' -o -name '*.png' -o -name 'bench_spec.json' -o -name 'torch_ref.json' -o -name 'torch_ref.txt' \
    -o -name '*.csv' \) -print0; find eval -name '*.json' -print0; [ -d gifs ] && find gifs -name '*.gif' -print0 || true ) |
  while IFS= read -r -d '' f; do
    mkdir -p "$results/$(dirname "$f")"
    cp "$out/$f" "$results/$f"
  done
echo "== report: $results/report.md (outputs and checkpoints in $out)"
