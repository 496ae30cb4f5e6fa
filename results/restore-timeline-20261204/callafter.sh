#!/bin/bash
# hello's call after evicting the caches, hot, and after a TLB shootdown, interleaved in one loop
# (BenchmarkCallAfter, reported as evicted-call-ns, hot-call-ns, flushed-call-ns and flush-ns), 5
# counts. It replaces run.sh's BenchmarkWarmAfterFlush and a first version of this benchmark that
# timed each condition in its own sub-benchmark and subtracted the disturbance's cost.
out=$(dirname "$0")
(cd /work/main && go test -run '^$' -bench CallAfter -count 5 ./internal/engine/wasmtime/) > $out/callafter.txt 2>&1
