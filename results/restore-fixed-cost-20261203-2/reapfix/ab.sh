#!/usr/bin/env bash
# Follow-up: the branch as measured in ../ (after, 6cc4700) against the same with ready = nil for
# modes whose memory is ready at once (after2: no goroutine hand-off for reap), interleaved.
set -u
D=results/restore-fixed-cost-20261203-2/reapfix
for round in 1 2; do
  order="after after2"; [[ $((round % 2)) == 0 ]] && order="after2 after"
  for eng in wazero wasmtime; do
    for v in $order; do
      echo "== $round $eng $v $(date -u +%T) load $(cut -d' ' -f1 /proc/loadavg)"
      /tmp/s3r/thaw-$v bench restore --engine $eng --functions hello --modes bulk,reap --trials 15 --json > $D/restore-$eng-$v-$round.json 2> $D/restore-$eng-$v-$round.log
    done
  done
done
echo "== done $(date -u +%T)"
