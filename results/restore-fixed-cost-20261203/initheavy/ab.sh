#!/usr/bin/env bash
# Interleaved A/B, initheavy bulk only (checking the all-4 run's initheavy figures).
set -u
D=results/restore-fixed-cost-20261203/initheavy
for round in 1 2 3 4; do
  order="before after"; [[ $((round % 2)) == 0 ]] && order="after before"
  for v in $order; do
    echo "== $round $v $(date -u +%T) load $(cut -d' ' -f1 /proc/loadavg)"
    /tmp/rc-thaw-$v bench restore --functions initheavy --modes bulk --trials 11 --json > $D/restore-$v-$round.json 2> $D/restore-$v-$round.log
  done
done
echo "== done $(date -u +%T)"
