#!/usr/bin/env bash
# First deploys (empty compilation cache every run): the binary before direct I/O for the
# snapshot image (OLD, dc94596) and after it (NEW, 5a548a1), on wazero and wasmtime, interleaved, the order
# reversed every round; the Go build cache is kept (GOCACHE); `thaw bench restore` reports each function's deploy stages ("deploys").
set -u
out=$(cd "$(dirname "$0")" && pwd)
rounds=${ROUNDS:-3}
gocache=$(go env GOCACHE)
fns=${FUNCTIONS:-hello,initheavy,js_hello}
for round in $(seq 1 "$rounds"); do
  order="old-wazero new-wazero old-wasmtime new-wasmtime"
  [[ $((round % 2)) == 0 ]] && order="new-wasmtime old-wasmtime new-wazero old-wazero"
  for run in $order; do
    bin=${run%%-*}; e=${run#*-}
    b=$OLD; [[ $bin == new ]] && b=$NEW
    cache=$(mktemp -d)
    echo "$(date -u +%T) round $round $run load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
    XDG_CACHE_HOME=$cache GOCACHE=$gocache "$b" bench restore --engine "$e" --functions "$fns" --modes warm --trials 3 --json \
      > "$out/$run-$round.json" 2> "$out/$run-$round.log" || echo "round $round $run failed: see its log"
    rm -rf "$cache"
  done
done
echo "$(date -u +%T) done load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt"
