#!/usr/bin/env bash
# A/B of thaw bench restore: A = the binary before direct reads (e1c0315),
# B = the head of the session; every default function and mode, both engines,
# the order of binaries and engines alternating every round; load before every run.
set -u
out=$(cd "$(dirname "$0")" && pwd)
rounds=${ROUNDS:-3}
for round in $(seq 1 "$rounds"); do
  bins="A B"; [[ $((round % 2)) == 0 ]] && bins="B A"
  engines="wasmtime wazero"; [[ $((round % 2)) == 0 ]] && engines="wazero wasmtime"
  for e in $engines; do
    for b in $bins; do
      bin=/tmp/thaw-$b
      echo "$(date -u +%T) round $round $b $e load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
      "$bin" bench restore --engine "$e" --trials "${TRIALS:-15}" --json \
        > "$out/$b-$e-$round.json" 2> "$out/$b-$e-$round.log" || echo "round $round $b $e failed: see its log"
    done
  done
done
echo "$(date -u +%T) done load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
