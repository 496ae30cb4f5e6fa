#!/usr/bin/env bash
# Interleaved A/B of thaw bench restore: main's binary (before) and this branch's (after),
# order swapped every round. Run from the repository root.
set -u
D=results/restore-fixed-cost-20261203
for round in 1 2 3; do
  order="before after"; [[ $((round % 2)) == 0 ]] && order="after before"
  for v in $order; do
    echo "== $round $v $(date -u +%T) load $(cut -d' ' -f1 /proc/loadavg)"
    /tmp/rc-thaw-$v bench restore --functions hello,jsontransform,initheavy,initheavy-gather --modes bulk,reap,eager --trials 11 --json > $D/restore-$v-$round.json 2> $D/restore-$v-$round.log
  done
done
echo "== done $(date -u +%T)"
