#!/usr/bin/env bash
# The session's final binary: thaw bench restore --modes bulk,reap on the four default
# functions, both engines alternating, 4 rounds; load before every run.
set -u
out=$(cd "$(dirname "$0")" && pwd)
bin=${THAW:-thaw}
for round in 1 2 3 4; do
  engines="wasmtime wazero"; [[ $((round % 2)) == 0 ]] && engines="wazero wasmtime"
  for e in $engines; do
    echo "$(date -u +%T) round $round $e load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
    "$bin" bench restore --engine "$e" --modes bulk,reap --trials 21 --json > "$out/$e-$round.json" 2> "$out/$e-$round.log" || echo "round $round $e failed"
  done
done
