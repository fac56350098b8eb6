#!/usr/bin/env bash
# Kill test: `tsdp train`, `tsdp distill` and `tsdp rl train` are SIGKILLed at random moments
# and resumed; every resumed run must end in the state of an uninterrupted one, with no stray
# files beside it.
#
#   scripts/kill_test.sh BUILD/tsdp [KILLS]        (KILLS per command, default 20)
#
# Environment: KILL_SEED (default 1) seeds the kill delays (bash's RANDOM), so the schedule of
# delays is reproducible (where a delay lands in the run still depends on the machine's speed);
# KILL_DATA names an imported dataset (default: import $DATA_DIR/pusht/pusht_cchi_v7_replay.zarr,
# DATA_DIR default ../shared/data from the repository root); KILL_CMDS picks commands, in order
# (distill needs train, rl both: their references are its base and drafter; default
# "train distill rl"); KILL_WORK a scratch folder (default a new temporary one, removed at the
# end unless KILL_KEEP=1).
#
# Per command: one uninterrupted run with --fresh into ref/ (timed: D seconds). Then chains in
# kill/: an empty folder, a start with --fresh, SIGKILL after a delay drawn uniformly from
# [0, D) (startup, steps, checkpoint writes alike), a resume (the same command without --fresh)
# killed the same way, ... 1 to 3 kills per chain, then a resume left to finish. A run that
# ends before its kill ends the chain (counted as "finished first"). Every kill is followed by
# a resume. At each chain's end:
#   - checkpoint content: every dataset (dtype, shape and raw bytes) and every attribute of
#     every object (root: config, step, RNG state, optimiser step) of each .h5 in ref/ equals
#     kill/'s, with python3-h5py, excluding only the log/*_per_s rows (wall-clock rates, which
#     differ between any two runs). The files' bytes are not compared: HDF5 stores object
#     times.
#   - the CSV logs equal without their *_per_s columns; the PNG figures equal byte for byte;
#   - the folder holds exactly the files ref/ holds: no *.tmp-PID, no partial file.
# A kill that leaves a *.tmp-PID of the killed process behind landed while it was writing a
# file (checkpoint, CSV or figure; "mid-write"); the next resume must sweep it.
# Exit status: 0 when every chain matched, 1 on any mismatch or failure.
set -u -o pipefail

die() { echo "kill_test: $*" >&2; exit 2; }
[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: scripts/kill_test.sh BUILD/tsdp [KILLS]"
BIN=$(readlink -f "$1") || die "$1: not found"
[ -x "$BIN" ] || die "$1: not an executable"
KILLS=${2:-20}
[[ "$KILLS" =~ ^[0-9]+$ ]] && [ "$KILLS" -ge 1 ] || die "KILLS must be a positive integer"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CFG=$ROOT/configs
SEED=${KILL_SEED:-1}
CMDS=${KILL_CMDS:-train distill rl}
PY=${PYTHON:-/usr/bin/python3}
"$PY" -c 'import h5py, numpy' 2>/dev/null || die "needs python3 with h5py and numpy (scripts/deps.sh --dev)"
export OPENBLAS_NUM_THREADS=1
RANDOM=$SEED

if [ -n "${KILL_WORK:-}" ]; then
  W=$KILL_WORK
  mkdir -p "$W" || die "cannot make $W"
else
  W=$(mktemp -d "${TMPDIR:-/tmp}/tsdp_kill.XXXXXX") || die "cannot make a scratch folder"
fi
W=$(readlink -f "$W")
cleanup() { [ "${KILL_KEEP:-0}" = 1 ] || rm -rf "$W"; }
trap cleanup EXIT

if [ -n "${KILL_DATA:-}" ]; then
  DATA=$(readlink -f "$KILL_DATA") || die "$KILL_DATA: not found"
else
  DD=${DATA_DIR:-../shared/data}
  [[ "$DD" = /* ]] || DD=$ROOT/$DD
  ZARR=$DD/pusht/pusht_cchi_v7_replay.zarr
  [ -d "$ZARR" ] || die "no dataset: $ZARR is absent (set KILL_DATA=D.h5 or DATA_DIR)"
  DATA=$W/pusht.h5
  "$BIN" data import --zarr "$ZARR" --out "$DATA" >/dev/null 2>"$W/import.err" || die "data import failed: $(cat "$W/import.err")"
fi

# ---- the three commands, tiny: a run lasts about a second, with a checkpoint every few steps
# (train also evaluates one closed-loop episode every 20 steps) ----
# (the train reference's base.h5 is distill's and rl train's base, distill's drafter.h5 rl's)
train_args=(train --config "$CFG/pusht_lowdim.ini" --data "$DATA" --out base.h5 --max-steps 60
  model.down_dims=8,16 model.step_embed_dim=16 train.batch_size=4 train.warmup_steps=2
  train.checkpoint_every=7 train.log_every=5 train.threads=1 data.val_ratio=0 train.eval_every=20
  train.eval_episodes=1)
distill_args=(distill --config "$CFG/pusht_drafter.ini" --base "$W/train/ref/base.h5" --data "$DATA"
  --out drafter.h5 --max-steps 80 model.n_emb=16 model.n_head=2 train.batch_size=8 train.threads=1
  train.warmup_steps=2 train.checkpoint_every=5 train.log_every=4 distill.chains=2 distill.buffer_chains=4
  distill.refresh_every=10 distill.heldout_chains=2)
rl_args=(rl train --config "$CFG/pusht_scheduler.ini" --ckpt "$W/train/ref/base.h5"
  --drafter "$W/distill/ref/drafter.h5" --rollouts "$W/rollouts.h5" --cost "$W/cost.ini" --out sched.h5
  --threads 1 rl.blocks=1,2,4,8 rl.hidden=8 rl.layers=1 rl.chains_per_update=2 rl.updates=20
  rl.minibatch=16 rl.accept_chains=2 rl.accept_block=8 rl.checkpoint_every=2)

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# same_content REF_DIR KILL_DIR: prints the differences, exit status 0 when none.
same_content() {
  "$PY" - "$1" "$2" <<'EOF'
import csv, os, re, sys
import h5py, numpy as np
ref, got = sys.argv[1], sys.argv[2]
skip = re.compile(r"^log/.*_per_s$")
bad = []
def walk(f):
    out = {"/": f}
    f.visititems(lambda n, o: out.__setitem__(n, o))
    return out
def attrs(o):
    return {k: o.attrs[k] for k in o.attrs.keys()}
def same_val(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, (np.generic,)) or isinstance(b, (np.generic,)):
        return type(a) == type(b) and np.asarray(a).tobytes() == np.asarray(b).tobytes()
    return type(a) == type(b) and a == b
for name in sorted(os.listdir(ref)):
    p, q = os.path.join(ref, name), os.path.join(got, name)
    if not os.path.exists(q):
        continue  # the file listing is compared by the caller
    if name.endswith(".h5"):
        with h5py.File(p, "r") as a, h5py.File(q, "r") as b:
            oa, ob = walk(a), walk(b)
            if set(oa) != set(ob):
                bad.append(f"{name}: objects differ: {sorted(set(oa) ^ set(ob))[:5]}")
            for n in sorted(set(oa) & set(ob)):
                x, y = oa[n], ob[n]
                if type(x) != type(y):
                    bad.append(f"{name}:{n}: kind differs"); continue
                ax, ay = attrs(x), attrs(y)
                if set(ax) != set(ay):
                    bad.append(f"{name}:{n}: attributes differ: {sorted(set(ax) ^ set(ay))}")
                for k in sorted(set(ax) & set(ay)):
                    if not same_val(ax[k], ay[k]):
                        bad.append(f"{name}:{n}: attribute {k}: {ax[k]!r} vs {ay[k]!r}"[:300])
                if isinstance(x, h5py.Dataset) and not skip.match(n):
                    u, v = x[()], y[()]
                    if not same_val(u, v):
                        bad.append(f"{name}:{n}: dataset differs (dtype {x.dtype}/{y.dtype}, shape {x.shape}/{y.shape})")
    elif name.endswith(".csv"):
        def rows(path):
            with open(path, newline="") as f:
                r = list(csv.reader(f))
            keep = [i for i, h in enumerate(r[0]) if not h.endswith("_per_s")] if r else []
            return [[row[i] for i in keep] for row in r]
        if rows(p) != rows(q):
            bad.append(f"{name}: CSV differs (without its *_per_s columns)")
    else:
        with open(p, "rb") as f, open(q, "rb") as g:
            if f.read() != g.read():
                bad.append(f"{name}: bytes differ")
for b in bad[:20]:
    print("  " + b)
sys.exit(1 if bad else 0)
EOF
}

fail=0
summary=()
for cmd in $CMDS; do
  case $cmd in
    train) args=("${train_args[@]}") ;;
    distill)
      args=("${distill_args[@]}")
      [ -f "$W/train/ref/base.h5" ] || die "distill needs train before it in KILL_CMDS (its base)"
      ;;
    rl)
      args=("${rl_args[@]}")
      [ -f "$W/distill/ref/drafter.h5" ] || die "rl needs train and distill before it in KILL_CMDS (its base and drafter)"
      printf '[cost]\ntarget_ms = 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5\ndrafter_ms = 0.25\nthreads = 1\n' >"$W/cost.ini"
      [ -f "$W/rollouts.h5" ] || "$BIN" rl record --ckpt "$W/train/ref/base.h5" --episodes 2 --sampler ddim --steps 4 \
        --threads 1 --out "$W/rollouts.h5" >/dev/null 2>"$W/record.err" || die "rl record failed: $(tail -1 "$W/record.err")"
      ;;
    *) die "unknown command '$cmd' in KILL_CMDS (train, distill, rl)" ;;
  esac
  name=$cmd; [ "$cmd" = rl ] && name="rl train"
  D=$W/$cmd
  mkdir -p "$D/ref"
  t0=$(now_ms)
  (cd "$D/ref" && exec "$BIN" "${args[@]}" --fresh) >"$D/ref.log" 2>&1 || die "$name: the reference run failed: $(tail -1 "$D/ref.log")"
  dur=$(($(now_ms) - t0))
  [ "$dur" -ge 1 ] || dur=1
  t_cmd=$(now_ms)
  kills=0 mid=0 resumes=0 chains=0 finished_first=0 same=0 differ=0 stray=0 swept=0 n=0
  while [ "$kills" -lt "$KILLS" ]; do
    chains=$((chains + 1))
    rm -rf "$D/kill"
    mkdir -p "$D/kill"
    chain_len=$((1 + RANDOM % 3))
    ck=0
    fresh=(--fresh)
    while :; do
      n=$((n + 1))
      log=$D/run$n.log
      [ ${#fresh[@]} -eq 0 ] && resumes=$((resumes + 1))
      if [ "$ck" -lt "$chain_len" ] && [ "$kills" -lt "$KILLS" ]; then
        u=$(((RANDOM << 15) | RANDOM))
        delay_ms=$((dur * u / 1073741824))
        (cd "$D/kill" && exec "$BIN" "${args[@]}" "${fresh[@]}") >"$log" 2>&1 &
        pid=$!
        sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
        kill -KILL "$pid" 2>/dev/null
        { wait "$pid"; } 2>/dev/null # (without bash's "Killed" line)
        rc=$?
        fresh=()
        if [ "$rc" -eq 137 ]; then
          kills=$((kills + 1))
          ck=$((ck + 1))
          if ls -A "$D/kill" | grep -q "\.tmp-$pid\$"; then mid=$((mid + 1)); fi
          continue
        elif [ "$rc" -eq 0 ]; then
          finished_first=$((finished_first + 1))
        else
          echo "$name: run $n exited $rc: $(tail -1 "$log")" >&2
          differ=$((differ + 1))
          break
        fi
      else
        (cd "$D/kill" && exec "$BIN" "${args[@]}" "${fresh[@]}") >"$log" 2>&1
        rc=$?
        if [ "$rc" -ne 0 ]; then
          echo "$name: the final resume (run $n) exited $rc: $(tail -1 "$log")" >&2
          differ=$((differ + 1))
          break
        fi
      fi
      # the chain's run finished: compare with the reference
      if diff <(ls -A "$D/ref") <(ls -A "$D/kill") >"$D/ls.diff"; then :; else
        stray=$((stray + 1))
        echo "$name: chain $chains: the folder's files differ from the reference's:" >&2
        sed 's/^/  /' "$D/ls.diff" >&2
      fi
      if same_content "$D/ref" "$D/kill" >"$D/cmp.txt" 2>&1; then
        same=$((same + 1))
      else
        differ=$((differ + 1))
        echo "$name: chain $chains ($ck kills): not the reference's end state:" >&2
        cat "$D/cmp.txt" >&2
        [ "${KILL_KEEP:-0}" = 1 ] && cp -r "$D/kill" "$D/kill.chain$chains"
      fi
      break
    done
    [ "$differ" -gt 0 ] && [ "${KILL_KEEP:-0}" != 1 ] && break
  done
  swept=$(cat "$D"/run*.log 2>/dev/null | grep -c "no longer running")
  wall=$(($(now_ms) - t_cmd))
  ok=yes
  [ "$differ" -eq 0 ] && [ "$stray" -eq 0 ] || ok=no
  [ "$ok" = yes ] || fail=1
  line=$(printf '%-10s kills %d (mid-write %d), resumes %d, chains %d (finished before a kill %d), identical %s (%d/%d chains), stray files %d, temps swept %d; run %.1f s, test %.1f s' \
    "$name:" "$kills" "$mid" "$resumes" "$chains" "$finished_first" "$ok" "$same" "$chains" "$stray" "$swept" \
    "$(echo "$dur" | awk '{print $1/1000}')" "$(echo "$wall" | awk '{print $1/1000}')")
  echo "$line"
  summary+=("$line")
done
[ "$fail" -eq 0 ] && echo "kill test: passed (seed $SEED, $KILLS kills per command)" || echo "kill test: FAILED (seed $SEED)"
exit "$fail"
