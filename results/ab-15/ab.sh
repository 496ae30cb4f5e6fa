#!/usr/bin/env bash
# A/B: the code before #15's consolidation (thaw-before) and after (thaw-after), alternating.
set -u
cd /work/main
eval "$(scripts/minio.sh start 2>/dev/null)"
out=/work/main/results/ab-15
mkdir -p $out
for round in 1 2 3 4; do
  order="before after"; [[ $((round % 2)) == 0 ]] && order="after before"
  for v in $order; do
    echo "== $round $v restore $(date)"
    /work/bin/thaw-$v bench restore --functions initheavy,initheavy-gather --trials 9 --json > $out/restore-$v-$round.json 2> $out/restore-$v-$round.log
    echo "== $round $v store $(date)"
    /work/bin/thaw-$v bench store --modes reap,bulk --trials 6 --dedup-functions= --json > $out/store-$v-$round.json 2> $out/store-$v-$round.log
  done
done
echo "== done $(date)"
