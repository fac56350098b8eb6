#!/usr/bin/env bash
# Run on the lent machine from the repository root, with the bundle of scripts/device_bundle.sh
# in .dev: `bench spec` of the slim base and drafter at each thread count of TH (one process
# per count, samplers interleaved window by window inside it), the tables and the acceptance
# plots tarred into $OUT/all.tar.gz after each count (so a cut run still returns what it did).
set -u
O=${OUT:-/tmp/out}; R=/tmp/r; mkdir -p $R $O
W=${W:-30}; B=${B:-4,6,8,12,16}; TH=${TH:-1 2 4 8 16}
cd .dev && mkdir -p b && tar -xJf bund.tar.xz -C b
for z in base.h5.xz pusht.h5.xz; do [ -f $z ] && xz -d -k -f $z; done
T="b/lib/ld-linux-x86-64.so.2 --library-path b/lib b/tsdp"
D=$(cat drafter_arg 2>/dev/null || echo drafter.h5)
{ nproc; lscpu; free -g; } > $R/machine.txt 2>&1
for t in $TH; do
  echo "== threads $t $(date +%T)"
  $T bench spec --ckpt base.h5 --data pusht.h5 --drafter $D --blocks $B --windows $W \
    --threads $t ${OV---overlap} --plot $R/accept_t$t --json > $R/bench_spec_t$t.json 2> $R/bench_spec_t$t.err
  echo "rc $?"; tail -3 $R/bench_spec_t$t.err
  (cd /tmp && tar -czf $O/all.tar.gz r)
done
echo done $(date +%T)
