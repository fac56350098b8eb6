#!/usr/bin/env bash
# The speculation measurements for one base and its distilled drafter, into OUTDIR (committed
# under results/ so every README number has a file):
#   bench_spec.json   `tsdp bench spec` on 1 and on 2 threads in one run: DDPM-100, DDIM-10, the
#                     frozen and the learned drafter at each block, the verify-cost curve and
#                     the bound, samplers interleaved window by window
#   accept-*.png      measured acceptance per diffusion step, per drafter and thread count
#   bench_spec.md     the same as tables (scripts/spec_table.py)
#   eval_*.json       closed loop on the test seeds: DDPM-100 and spec with the learned drafter
# Usage: scripts/measure_spec.sh BASE.h5 DRAFTER.h5 DATA.h5 OUTDIR [BLOCKS] [WINDOWS] [EPISODES] [EVAL_BLOCK]
# SPEC_EXTRA (environment) is added to bench spec's options, e.g. SPEC_EXTRA=--overlap.
set -euo pipefail
base=$1 drafter=$2 data=$3 out=$4
blocks=${5:-4,6,8,10,12,16} windows=${6:-20} episodes=${7:-50} eblock=${8:-8}
tsdp=${TSDP:-build/tsdp}
mkdir -p "$out"
echo "measure_spec: bench spec ($blocks, $windows windows, threads 1,2)" >&2
"$tsdp" bench spec --ckpt "$base" --data "$data" --drafter "$drafter" --blocks "$blocks" --windows "$windows" \
  --threads 1,2 --plot "$out/accept" ${SPEC_EXTRA:-} --json > "$out/bench_spec.json.tmp"
mv "$out/bench_spec.json.tmp" "$out/bench_spec.json"
/usr/bin/python3 "$(dirname "$0")/spec_table.py" "$out/bench_spec.json" > "$out/bench_spec.md"
cat "$out/bench_spec.md"
if [ "$episodes" -gt 0 ]; then
  for s in ddpm spec; do
    echo "measure_spec: closed loop, $s, $episodes episodes" >&2
    extra=()
    [ $s = spec ] && extra=(--block "$eblock" --drafter "$drafter")
    "$tsdp" eval --ckpt "$base" --episodes "$episodes" --sampler $s "${extra[@]}" --threads 1 --json > "$out/eval_$s.json.tmp"
    mv "$out/eval_$s.json.tmp" "$out/eval_$s.json"
  done
fi
