#!/bin/bash
# Run each libFuzzer harness RUNS times, one after another, from its committed seed corpus
# (new inputs go to a scratch folder, so tests/fuzz/corpus/ only changes by hand), and print
# its executions, coverage and findings.
#   scripts/fuzz.sh FUZZDIR RUNS NAME...     (make fuzz: build/fuzz, FUZZ_RUNS, all harnesses)
set -u
dir=$1 runs=$2
shift 2
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
root=$PWD
fail=0
for name in "$@"; do
  work=$(mktemp -d /tmp/tsdp-fuzz-$name-XXXXXX)
  mkdir -p "$work/corpus"
  log=$work/log.txt
  echo "fuzz $name: $runs runs (log $log)"
  if ! (cd "$work" && ASAN_OPTIONS=detect_leaks=1 "$dir/fuzz_$name" -runs="$runs" -rss_limit_mb=2048 \
        -malloc_limit_mb=1024 -max_len=8192 -timeout=10 -print_final_stats=1 corpus "$root/tests/fuzz/corpus/$name") \
       >"$log" 2>&1; then
    echo "fuzz $name: FINDING (crash-*, leak-*, oom-*, timeout-* in $work):"
    grep -m5 -E "ERROR|SUMMARY|runtime error|Test unit written" "$log"
    fail=1
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$log" | tr '\n' ' '
  grep -oE "cov: [0-9]+ ft: [0-9]+" "$log" | tail -1
done
exit $fail
