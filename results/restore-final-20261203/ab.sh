#!/usr/bin/env bash
# thaw bench restore on wasmtime and wazero with one binary (the head of the session), every
# default function and mode, the engines alternating every round; load before every run.
set -u
bin=${THAW:-thaw}
out=$(cd "$(dirname "$0")" && pwd)
rounds=${ROUNDS:-3}
for round in $(seq 1 "$rounds"); do
  order="wasmtime wazero"; [[ $((round % 2)) == 0 ]] && order="wazero wasmtime"
  for e in $order; do
    echo "$(date -u +%T) round $round $e load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
    "$bin" bench restore --engine "$e" --trials "${TRIALS:-15}" --json \
      > "$out/restore-$e-$round.json" 2> "$out/restore-$e-$round.log" || echo "round $round $e failed: see its log"
  done
done
echo "$(date -u +%T) done load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
