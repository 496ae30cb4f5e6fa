#!/bin/bash
# A/B/C of the host side of guest calls, wasmtime engine, from the repository root:
# A = e9256a9 (wasmtime-go Func.Call, a derived context per call),
# B = 1adfa05 (capi.Interrupt.Call: unchecked calls, one run per invocation),
# C = B + watchPager on a timer instead of a goroutine per call.
# Binaries: /tmp/thaw-head (A), /tmp/thaw-B (B), /tmp/thaw-C (C). Rounds alternate A, B, C.
out=/work/main/results/restore-calls-20261204
for r in 1 2 3 4; do
  for v in A B C; do
    bin=/tmp/thaw-$v; [ $v = A ] && bin=/tmp/thaw-head
    (cd /work/main && $bin bench restore --engine wasmtime --functions hello,jsontransform --modes bulk,warm --trials 31 --json) \
      > $out/$v-wasmtime-$r.json 2> $out/$v-wasmtime-$r.log
    uptime >> $out/load.txt
  done
done
