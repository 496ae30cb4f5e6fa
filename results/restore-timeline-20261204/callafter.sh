#!/bin/bash
# hello's warm call after a TLB shootdown and after evicting the caches (BenchmarkCallAfter, the
# renamed and extended BenchmarkWarmAfterFlush of run.sh), 5 counts.
out=$(dirname "$0")
(cd /work/main && go test -run '^$' -bench CallAfter -count 5 ./internal/engine/wasmtime/) > $out/callafter.txt 2>&1
