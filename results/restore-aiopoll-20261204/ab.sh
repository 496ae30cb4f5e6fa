#!/bin/bash
# A/B: bulk's working-set read with a blocking pread (A) or Linux AIO with a spin on its completion (B, THAW_AIOPOLL=1), same binary.
cd /tmp/exp3
for r in 1 2 3; do
  for v in A B; do
    if [ $v = B ]; then export THAW_AIOPOLL=1; else unset THAW_AIOPOLL; fi
    /tmp/thaw-X bench restore --engine wasmtime --functions hello,jsontransform --modes bulk --trials 41 --data /tmp/pdX/data --json > /tmp/aioab/run-$r-$v.json 2> /tmp/aioab/run-$r-$v.log
    echo "round $r $v rc=$?"
  done
done
