#!/bin/bash
# Every default function and mode on wasmtime at the head, 2 rounds back to back.
out=$(cd "$(dirname "$0")" && pwd)
for r in 1 2; do
  rm -rf /tmp/hn; mkdir -p /tmp/hn
  (cd /work/main && /tmp/thaw-head bench restore --engine wasmtime --trials 21 --data /tmp/hn/data --json > $out/run-$r.json 2> $out/run-$r.log)
  echo "round $r rc=$? $(cat /proc/loadavg)"
done
