#!/bin/bash
# Every target of `thaw bench restore` on both engines at the head of 2026-12-04 (closing #16):
# every example, every mode, engines alternating, two rounds, from the repository root.
# Binary: /tmp/thaw-E built at the head (go build -o /tmp/thaw-E ./cmd/thaw).
out=/work/main/results/restore-targets-20261204
for r in 1 2; do
  for e in wasmtime wazero; do
    (cd /work/main && /tmp/thaw-E bench restore --engine $e --trials 21 --json) \
      > $out/$e-$r.json 2> $out/$e-$r.log
    uptime >> $out/load.txt
  done
done
