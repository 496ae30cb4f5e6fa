#!/usr/bin/env bash
# A/B: thaw bench restore on wazero and on wasmtime, one binary, alternating the order every round
# (wazero-wasmtime, wasmtime-wazero, ...); machine load recorded before every run (load.txt).
set -u
bin=${THAW:-thaw}
out=$(cd "$(dirname "$0")" && pwd)
rounds=${ROUNDS:-4}
for round in $(seq 1 "$rounds"); do
  order="wazero wasmtime"; [[ $((round % 2)) == 0 ]] && order="wasmtime wazero"
  for e in $order; do
    echo "$(date -u +%T) round $round $e load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
    "$bin" bench restore --engine "$e" --trials "${TRIALS:-9}" --json \
      > "$out/restore-$e-$round.json" 2> "$out/restore-$e-$round.log" || echo "round $round $e failed: see its log"
  done
done
echo "$(date -u +%T) done load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
