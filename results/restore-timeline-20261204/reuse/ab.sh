#!/bin/bash
# Instance reuse A/B: one binary, 6f7d242 + ../throwaway-experiments.patch (/tmp/thaw-reuse), the
# variant chosen by THAW_REUSE ("" = off, 1 = keep the wasmtime instance with the pooled region),
# hello and jsontransform, bulk, wasmtime, 51 trials, 5 rounds alternating. The stamp probes print
# to stderr (the .log files; their per-trial RAW lines were dropped, the STAMP medians kept).
out=$(dirname "$0")
for r in 1 2 3 4 5; do
  for v in off on; do
    env=""; [ $v = on ] && env=1
    (cd /work/main && THAW_REUSE=$env /tmp/thaw-reuse bench restore --engine wasmtime --functions hello,jsontransform \
      --modes bulk --trials 51 --json --data /tmp/pd/data) > $out/$v-$r.json 2> $out/$v-$r.log
    uptime >> $out/load.txt
  done
done
