#!/usr/bin/env bash
# One reader for small working sets (B) against two (A): thaw bench restore, bulk, alternating.
set -u
out=$(cd "$(dirname "$0")" && pwd)
for round in $(seq 1 "${ROUNDS:-3}"); do
  order="A B"; [[ $((round % 2)) == 0 ]] && order="B A"
  for v in $order; do
    b=$A; [[ $v == B ]] && b=$B
    echo "$(date -u +%T) round $round $v load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
    "$b" bench restore --engine wasmtime --functions "${FUNCTIONS:-hello,jsontransform,initheavy}" --modes bulk --trials "${TRIALS:-15}" --json \
      > "$out/$v-$round.json" 2> "$out/$v-$round.log" || echo "round $round $v failed"
  done
done
