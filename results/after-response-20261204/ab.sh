#!/bin/bash
# Warm calls over HTTP, two binaries alternating by round: A starts the
# instance's settling inside Invoke, B after the response is sent. One curl
# process per round sends N requests over one keep-alive connection; its
# time_total per request is what the client waited.
# usage: ab.sh BIN_A BIN_B OUTDIR ROUNDS N [RATE, e.g. 100/s: requests spaced, curl --rate]
set -e
A=$1; B=$2; OUT=$3; ROUNDS=${4:-6}; N=${5:-300}; RATE=${6:-}
mkdir -p "$OUT"
WASM=$OUT/hello.wasm
[ -f "$WASM" ] || "$A" build "$(git rev-parse --show-toplevel)/examples/hello" -o "$WASM" >/dev/null
port=18700
for round in $(seq 1 "$ROUNDS"); do
  order="A B"; [ $((round % 2)) = 0 ] && order="B A"
  for v in $order; do
    bin=$A; [ $v = B ] && bin=$B
    port=$((port+1))
    "$bin" serve --data "$OUT/data-$v" --addr 127.0.0.1:$port --log-level warn >"$OUT/serve-$v.log" 2>&1 &
    pid=$!
    for i in $(seq 50); do curl -sf http://127.0.0.1:$port/v1/functions >/dev/null 2>&1 && break; sleep 0.1; done
    "$bin" --server http://127.0.0.1:$port deploy hello "$WASM" >/dev/null 2>&1
    url=http://127.0.0.1:$port/fn/hello/
    curl -s -o /dev/null "$url"; curl -s -o /dev/null "$url"
    args=()
    for i in $(seq "$N"); do args+=(-o /dev/null "$url"); done
    curl -s ${RATE:+--rate $RATE} -w "round=$round variant=$v total=%{time_total} start=%{time_starttransfer}\n" "${args[@]}" >>"$OUT/raw.txt"
    kill $pid; wait $pid 2>/dev/null || true
  done
done
