#!/usr/bin/env bash
# Interleaved A/B of thaw bench restore on both engines: the base binary (before, a3ca9e1)
# and this branch's (after), order swapped every round. Run from the repository root;
# ROUNDS="4" runs only round 4 (rounds 1-3 ran first, round 4 was appended).
set -u
D=results/restore-fixed-cost-20261203-2
for round in ${ROUNDS:-1 2 3 4}; do
  order="before after"; [[ $((round % 2)) == 0 ]] && order="after before"
  for eng in wazero wasmtime; do
    for v in $order; do
      echo "== $round $eng $v $(date -u +%T) load $(cut -d' ' -f1 /proc/loadavg)"
      /tmp/s3r/thaw-$v bench restore --engine $eng --functions hello,jsontransform --modes bulk,reap --trials 15 --json > $D/restore-$eng-$v-$round.json 2> $D/restore-$eng-$v-$round.log
    done
  done
done
echo "== done $(date -u +%T)"
