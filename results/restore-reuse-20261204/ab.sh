#!/bin/bash
# A/B: the wasmtime engine keeps a closed instance with its pooled region
# and reuses it for the next restore (B) or not (A). Both binaries run
# from the same tree (the examples are built from it), rounds alternate.
out=$(cd "$(dirname "$0")" && pwd)
for r in 1 2 3 4; do
  for v in A B; do
    rm -rf /tmp/rr$v; mkdir -p /tmp/rr$v
    (cd /work/main && /tmp/thaw-$v bench restore --engine wasmtime --functions hello,jsontransform --modes eager,bulk --trials 41 --data /tmp/rr$v/data --json > $out/run-$r-$v.json 2> $out/run-$r-$v.log)
    echo "round $r $v rc=$? $(cat /proc/loadavg)"
  done
done
