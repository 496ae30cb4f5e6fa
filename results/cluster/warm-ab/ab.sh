#!/bin/bash
# Interleaved A/B of warm latency: base (main) vs cluster binary, thaw load against hello.
set -u
out=${OUT:-results/cluster/warm-ab}  # run from the repository root
mkdir -p $out
for round in ${ROUNDS:-1 2 3}; do
  for v in main cluster; do
    bin=/tmp/thaw-$v
    d=/tmp/ab-$v; rm -rf $d
    $bin serve --addr 127.0.0.1:18300 --data $d > $out/serve-$v-$round.log 2>&1 &
    pid=$!
    for i in $(seq 100); do curl -sf http://127.0.0.1:18300/healthz >/dev/null && break; sleep 0.1; done
    $bin --server http://127.0.0.1:18300 deploy hello /tmp/hello.wasm >/dev/null
    $bin --server http://127.0.0.1:18300 load --functions hello --rate 100 --duration 3s --arrivals constant --out $out/warmup-$v-$round >/dev/null 2>&1
    $bin --server http://127.0.0.1:18300 load --functions hello --rate 200 --duration 10s --arrivals constant --json --out $out/run-$v-$round > $out/$v-$round.json 2>/dev/null
    kill $pid; wait $pid
  done
done
