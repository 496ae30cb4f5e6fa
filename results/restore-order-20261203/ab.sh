#!/usr/bin/env bash
# A/B: `ready` (a bulk restore's read of the working set) on a new goroutine while the caller
# instantiates (A, 5a548a1) against `ready` in the caller while instantiation runs on a new
# goroutine (B): thaw bench restore, small functions, bulk, both engines, the order alternating
# every round; machine load recorded before every run (load.txt).
set -u
out=$(cd "$(dirname "$0")" && pwd)
rounds=${ROUNDS:-4}
for round in $(seq 1 "$rounds"); do
  order="A B"; [[ $((round % 2)) == 0 ]] && order="B A"
  for v in $order; do
    bin=$A; [[ $v == B ]] && bin=$B
    for e in ${ENGINES:-wasmtime wazero}; do
      echo "$(date -u +%T) round $round $v $e load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
      "$bin" bench restore --engine "$e" --functions hello,jsontransform --modes bulk --trials "${TRIALS:-21}" --json \
        > "$out/$v-$e-$round.json" 2> "$out/$v-$e-$round.log" || echo "round $round $v $e failed: see its log"
    done
  done
done
echo "$(date -u +%T) done load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
