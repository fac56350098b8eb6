#!/usr/bin/env bash
# Bring your own task or checkpoint, end to end, at toy size (README: "Bring your own task or
# checkpoint"; about 10 minutes on one core).
#   (a) a robomimic-layout low-dim dataset of a task with no simulator here (the point-mass
#       reaching toy of scripts/make_robomimic_toy.py), a config naming its obs keys
#       (configs/byo_robomimic.ini): data info -> train -> distill -> bench spec (speed) ->
#       check_sampler_torch.py (exactness of the speculative sampler with the drafter);
#   (b) a Diffusion Policy checkpoint trained in PyTorch (scripts/train_torch_dp.py, on Push-T
#       when the zarr is there, else on the toy) -> convert_dp_ckpt.py -> forward / sample check
#       -> distill a drafter for it -> bench spec -> check_sampler_torch.py -> (Push-T) eval.
# Usage: scripts/byo.sh [OUT=runs/byo] [RESULTS=results/byo] [DATA_DIR=../shared/data]
# Env: TSDP (build/tsdp), PY (/usr/bin/python3), N (chunks per sampler in the two-sample
# tests, 500: at 200 the off-by-one-timestep sampler went undetected on the toy), THREADS (1).
set -euo pipefail
out=${1:-runs/byo}
results=${2:-results/byo}
data_dir=${3:-../shared/data}
tsdp=${TSDP:-build/tsdp}
py=${PY:-/usr/bin/python3}
n=${N:-500}
th=${THREADS:-1}
mkdir -p "$out" "$results"
times="$results/times.tsv"
printf 'stage\tseconds\n' > "$times"

# run NAME CMD...: run a stage, echo it, log its wall time
run() {
  local name=$1
  shift
  echo "== $name: $*" >&2
  local t0 t1
  t0=$(date +%s.%N)
  "$@"
  t1=$(date +%s.%N)
  printf '%s\t%.1f\n' "$name" "$(echo "$t1 - $t0" | bc)" >> "$times"
}

# ---------------- (a) a robomimic-layout dataset and a config naming its obs keys ----------------
toy="$out/toy.h5"
run make_dataset "$py" scripts/make_robomimic_toy.py "$toy" --demos 50 --seed 0
run data_info "$tsdp" data info "$toy"
run train_base "$tsdp" train --config configs/byo_robomimic.ini --data "$toy" --out "$out/toy_base.h5" --fresh \
  train.threads="$th"
run distill "$tsdp" distill --config configs/byo_drafter.ini --base "$out/toy_base.h5" --data "$toy" \
  --out "$out/toy_drafter.h5" --fresh train.threads="$th"
run bench_spec "$tsdp" bench spec --ckpt "$out/toy_base.h5" --data "$toy" --drafter "$out/toy_drafter.h5" \
  --blocks 2,4,8 --windows 20 --threads "$th" --json > "$results/toy_bench_spec.json"
run check_sampler sh -c "'$py' scripts/check_sampler_torch.py --ckpt '$out/toy_base.h5' --data '$toy' --index 0 \
  --n $n --sampler spec --block 4 --threads $th --drafter '$out/toy_drafter.h5' | tee '$results/toy_check_sampler.txt'"

# ---------------- (b) a checkpoint trained in PyTorch Diffusion Policy ----------------
zarr="$data_dir/pusht/pusht_cchi_v7_replay.zarr"
if [ -d "$zarr" ]; then
  task=pusht
  bdata="$out/pusht.h5"
  bcfg=configs/pusht_lowdim.ini
  [ -f "$bdata" ] || run import "$tsdp" data import --zarr "$zarr" --out "$bdata"
else
  echo "== no Push-T zarr at $zarr: part (b) on the toy dataset"
  task=toy
  bdata="$toy"
  bcfg=configs/byo_robomimic.ini
fi
run torch_train "$py" scripts/train_torch_dp.py --data "$bdata" --config "$bcfg" --out "$out/dp_policy.pt" \
  --steps "${TORCH_STEPS:-600}" --batch 64 --down-dims 32,64,128 --step-embed 64 --lr 1e-3 --seed 0 --threads "$th"
run convert "$py" scripts/convert_dp_ckpt.py "$out/dp_policy.pt" "$out/dp_converted.h5" --config "$bcfg"
# the converted checkpoint's eps against the PyTorch policy's on random inputs, then DDPM samples
run forward_check "$py" - "$tsdp" "$out/dp_policy.pt" "$out/dp_converted.h5" "$out" <<'EOF' | tee "$results/dp_forward_check.txt"
import subprocess, sys
import h5py, numpy as np, torch
sys.path.insert(0, "scripts")
from bench_torch import load
tsdp, pt, ck, out = sys.argv[1:5]
sd = torch.load(pt, map_location="cpu")
net, cfg, obs_dim, act_dim = load(ck)
n_obs, H = int(cfg["data"]["n_obs_steps"]), int(cfg["data"]["horizon"])
for k, v in net.state_dict().items():  # the converted weights are the policy's
    assert torch.equal(v, sd["model." + k]), k
g = torch.Generator().manual_seed(0)
x, t = torch.randn(8, H, act_dim, generator=g), torch.randint(0, 100, (8,), generator=g).float()
c = torch.rand(8, n_obs * obs_dim, generator=g) * 2 - 1
with h5py.File(out + "/fwd_in.h5", "w") as f:
    f["x"], f["t"], f["cond"] = x.numpy(), t.numpy(), c.numpy()
subprocess.run([tsdp, "forward", "--ckpt", ck, "--in", out + "/fwd_in.h5", "--out", out + "/fwd_out.h5"], check=True)
with torch.no_grad():
    ref = net(x, t, c).numpy()
got = h5py.File(out + "/fwd_out.h5", "r")["eps"][()]
err = np.abs(got - ref).max() / np.abs(ref).max()
print("tsdp forward on the converted checkpoint vs the PyTorch policy: max relative error %.2e" % err)
sys.exit(1 if err > 1e-4 else 0)
EOF
run sample "$tsdp" sample --ckpt "$out/dp_converted.h5" --data "$bdata" --index 0 --n 4 --sampler ddpm --seed 0 \
  --out "$out/dp_samples.h5" --threads "$th"
run dp_distill "$tsdp" distill --config configs/byo_drafter.ini --base "$out/dp_converted.h5" --data "$bdata" \
  --out "$out/dp_drafter.h5" --fresh train.threads="$th"
run dp_bench_spec "$tsdp" bench spec --ckpt "$out/dp_converted.h5" --data "$bdata" --drafter "$out/dp_drafter.h5" \
  --blocks 2,4,8 --windows 20 --threads "$th" --json > "$results/dp_bench_spec.json"
run dp_check_sampler sh -c "'$py' scripts/check_sampler_torch.py --ckpt '$out/dp_converted.h5' --data '$bdata' \
  --index 500 --n $n --sampler spec --block 4 --threads $th --drafter '$out/dp_drafter.h5' | tee '$results/dp_check_sampler.txt'"
if [ "$task" = pusht ]; then
  run dp_eval sh -c "'$tsdp' eval --ckpt '$out/dp_converted.h5' --episodes 5 --sampler ddim --steps 10 --threads $th \
    --json > '$results/dp_eval_ddim10.json'"
  cat "$results/dp_eval_ddim10.json"
fi
echo "== wall times (s):"
cat "$times"
echo "== results in $results, checkpoints and datasets in $out"
