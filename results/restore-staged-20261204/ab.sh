#!/bin/bash
# A/B of staged direct reads: A = 275b59c (direct reads straight into place),
# B = the head (staged through huge-page buffers). Rounds alternate A and B
# and both engines; run from the repository root. Binaries: /tmp/thaw-A, /tmp/thaw-B.
out=results/restore-staged-20261204
for r in 1 2 3; do
  for e in wasmtime wazero; do
    for v in A B; do
      /tmp/thaw-$v bench restore --engine $e --modes eager,mmap,lazy,reap,bulk --trials 21 --json \
        > $out/$v-$e-$r.json 2> $out/$v-$e-$r.log
      uptime >> $out/load.txt
    done
  done
done
