#!/bin/bash
# A/B: SDK serves its primes again after the snapshot's GC (B) or not (A).
for r in 1 2 3; do
  for v in A B; do
    if [ $v = A ]; then dir=/work/main; else dir=/tmp/exp; fi
    mkdir -p /tmp/pd$v
    (cd $dir && /tmp/thaw-$v bench restore --engine wasmtime --functions hello,jsontransform --modes eager,bulk --trials 31 --data /tmp/pd$v/data --json > /tmp/gcab/run-$r-$v.json 2> /tmp/gcab/run-$r-$v.log)
    echo "round $r $v rc=$?"
  done
done
