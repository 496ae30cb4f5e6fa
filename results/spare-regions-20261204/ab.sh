#!/bin/bash
# Spare regions on and off, one binary (thaw serve --spare-regions), rounds
# alternating: fresh bulk restores of hello (X-Thaw-Mode: bulk) beside the
# instances already idle, so that each restore needs a region of its own;
# GAP seconds between requests. Records Server-Timing per request.
# usage: ab.sh BIN OUTDIR ROUNDS N GAP
set -e
BIN=$1; OUT=$2; ROUNDS=${3:-6}; N=${4:-25}; GAP=${5:-0.05}
mkdir -p "$OUT"
WASM=$OUT/hello.wasm
[ -f "$WASM" ] || "$BIN" build "$(git rev-parse --show-toplevel)/examples/hello" -o "$WASM" >/dev/null
port=18600
for round in $(seq 1 "$ROUNDS"); do
  for v in on off; do
    [ $((round % 2)) = 0 ] && v=$([ $v = on ] && echo off || echo on)
    data=$OUT/data-$v
    port=$((port+1))
    flag=true; [ $v = off ] && flag=false
    "$BIN" serve --data "$data" --addr 127.0.0.1:$port --log-level warn --spare-regions=$flag >"$OUT/serve-$v.log" 2>&1 &
    pid=$!
    for i in $(seq 50); do curl -sf http://127.0.0.1:$port/v1/functions >/dev/null 2>&1 && break; sleep 0.1; done
    "$BIN" --server http://127.0.0.1:$port deploy hello "$WASM" --max 64 --keep-alive 10m >/dev/null 2>&1
    # Records the working set on the first deploy; warms the code.
    curl -s -o /dev/null -H 'X-Thaw-Mode: bulk' http://127.0.0.1:$port/fn/hello/
    sleep 0.2
    for i in $(seq "$N"); do
      curl -s -o /dev/null -D - -w 'total=%{time_total}\n' -H 'X-Thaw-Mode: bulk' http://127.0.0.1:$port/fn/hello/ \
        | grep -E '^Server-Timing|^total=' | tr '\n' ' ' | sed "s/^/round=$round variant=$v /"
      echo
      sleep "$GAP"
    done >>"$OUT/raw.txt"
    curl -s http://127.0.0.1:$port/metrics | grep -E '^thaw_spare_regions_total|^thaw_region_pool_regions' | sed "s/^/round=$round variant=$v /" >>"$OUT/metrics.txt"
    kill $pid; wait $pid 2>/dev/null || true
  done
done
