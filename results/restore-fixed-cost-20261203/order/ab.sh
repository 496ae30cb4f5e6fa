#!/usr/bin/env bash
# Interleaved A/B of the last commit alone: after (81f6a0e: pager hand-off in the calling goroutine,
# fill in another) against v2 (the same tree with that commit reverted).
set -u
D=results/restore-fixed-cost-20261203/order
for round in 1 2 3 4; do
  order="v2 after"; [[ $((round % 2)) == 0 ]] && order="after v2"
  for v in $order; do
    echo "== $round $v $(date -u +%T) load $(cut -d' ' -f1 /proc/loadavg)"
    /tmp/rc-thaw-$v bench restore --functions hello,jsontransform --modes bulk,reap --trials 15 --json > $D/restore-$v-$round.json 2> $D/restore-$v-$round.log
  done
done
echo "== done $(date -u +%T)"
