#!/bin/bash
# A/B of MAP_POPULATE on the pager session's shared page: A = aada850 (/tmp/thaw-A; eeab772 differs only in docs), B = the same
# plus the change (/tmp/thaw-B), hello and jsontransform, bulk, wasmtime, binaries alternating.
out=$(dirname "$0")
for r in 1 2 3 4 5; do
  for v in A B; do
    (cd /work/main && /tmp/thaw-$v bench restore --engine wasmtime --functions hello,jsontransform --modes reap,bulk --trials 21 --json) \
      > $out/$v-$r.json 2> $out/$v-$r.log
    uptime >> $out/load.txt
  done
done
