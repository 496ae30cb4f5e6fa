#!/bin/bash
# A/B of priming: A = c686edb (staged direct reads; examples unprimed), run from a
# worktree of it at /tmp/wt-A (bench restore builds the examples of the tree it runs in);
# B = the head (examples/hello and examples/jsontransform call thaw.Prime), run from
# the repository root. Rounds alternate A and B and both engines.
# Binaries: /tmp/thaw-A2 (built in /tmp/wt-A), /tmp/thaw-B3 (built at the head).
out=/work/main/results/restore-primed-20261204
for r in 1 2 3; do
  for e in wasmtime wazero; do
    for v in A B; do
      if [ $v = A ]; then dir=/tmp/wt-A; bin=/tmp/thaw-A2; else dir=/work/main; bin=/tmp/thaw-B3; fi
      (cd $dir && $bin bench restore --engine $e --modes reap,bulk --trials 21 --json) \
        > $out/$v-$e-$r.json 2> $out/$v-$e-$r.log
      uptime >> $out/load.txt
    done
  done
done
