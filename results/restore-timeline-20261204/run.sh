#!/bin/bash
# The timeline of a restore's start at 45df49a (/tmp/thaw-final), wasmtime, hello, jsontransform and
# initheavy in every start that has one (cold, eager, bulk) and warm, 3 rounds of 21 trials; then the
# cost of a TLB shootdown to the next warm call (go test -bench WarmAfterFlush, 5 counts).
out=$(dirname "$0")
for r in 1 2 3; do
  (cd /work/main && /tmp/thaw-final bench restore --engine wasmtime --functions hello,jsontransform,initheavy \
    --modes cold,eager,bulk,warm --trials 21 --json) > $out/run-$r.json 2> $out/run-$r.log
  uptime >> $out/load.txt
done
(cd /work/main && go test -run '^$' -bench WarmAfterFlush -count 5 ./internal/engine/wasmtime/) > $out/flush.txt 2>&1
