#!/bin/bash
# Where #16's 1.5x target stands at the head of 2026-12-04 (sixth pass): every example, both
# engines, two rounds, from the repository root. Binary: /tmp/thaw-D built at the head.
out=/work/main/results/restore-calls-20261204
for r in 1 2; do
  for e in wasmtime wazero; do
    (cd /work/main && /tmp/thaw-D bench restore --engine $e --modes reap,bulk --trials 21 --json) \
      > $out/final-$e-$r.json 2> $out/final-$e-$r.log
    uptime >> $out/load.txt
  done
done
