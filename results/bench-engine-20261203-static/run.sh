#!/usr/bin/env bash
# thaw bench engine, wasmtime against the bare wasmtime embedding and wazero, on pyaes, json_serdes and
# initheavy: the static-region build (STATIC, this branch) and the dynamic-memory build it replaces
# (DYNAMIC, its parent commit), alternated run by run, ROUNDS rounds; machine load recorded before,
# during (every 30 s) and after. Each run interleaves its engines trial by trial, so the ratio to bare
# holds within one run; alternating the builds lets the two ratios be compared under the same load.
set -eu
out=$(dirname "$0")
fns=${FNS:-pyaes,json_serdes,initheavy}
uptime > "$out/uptime-before.txt"
( while sleep 30; do echo "$(date -u +%T) $(cut -d' ' -f1-3 /proc/loadavg)"; done ) > "$out/load.txt" &
sampler=$!
trap 'kill $sampler' EXIT
for round in $(seq 1 "${ROUNDS:-3}"); do
  for build in static dynamic; do
    bin=$STATIC
    [ "$build" = dynamic ] && bin=$DYNAMIC
    echo "$(date -u +%T) round $round $build" >> "$out/progress.txt"
    "$bin" bench engine --functions "$fns" --engines wasmtime,bare,wazero --trials "${TRIALS:-31}" \
      --data "${DATA:-/tmp/thaw-bench-engine-data}" --json \
      > "$out/$build-$round.json" 2>> "$out/progress.txt"
  done
done
uptime > "$out/uptime-after.txt"
