#!/bin/bash
# Calls after a bulk restore: A and B serve side by side (fresh data dirs);
# per round and binary, each function is restored (X-Thaw-Mode: bulk), then
# called 8 more times; exec of every call from Server-Timing.
# usage: run.sh BIN_A BIN_B OUT ROUNDS
A=$1; B=$2; OUT=$3; ROUNDS=${4:-10}
mkdir -p "$OUT"
start() { rm -rf "$OUT/data-$1"; "$2" serve --data "$OUT/data-$1" --addr 127.0.0.1:$3 >"$OUT/serve-$1.log" 2>&1 & }
start A "$A" 18101; start B "$B" 18102; sleep 3
for v in A:18101 B:18102; do
  p=${v#*:}
  "$A" --server http://127.0.0.1:$p deploy js_hello examples/js/hello/handler.js --max 1 >/dev/null
  "$A" --server http://127.0.0.1:$p deploy jsontransform /tmp/jsd-jt.wasm --max 1 >/dev/null
  "$A" --server http://127.0.0.1:$p deploy hello /tmp/jsd-hello.wasm --max 1 >/dev/null
done
exec_of() { curl -s -o /dev/null -D - "$@" | grep -i server-timing | sed 's/.*exec;dur=\([0-9.]*\).*/\1/'; }
for r in $(seq 1 $ROUNDS); do
  order="A:18101 B:18102"; [ $((r % 2)) = 0 ] && order="B:18102 A:18101"
  for v in $order; do
    n=${v%%:*}; p=${v#*:}
    for fn in hello js_hello jsontransform; do
      args=("http://127.0.0.1:$p/fn/$fn/?name=thaw")
      [ $fn = jsontransform ] && args=(-X POST -H 'Content-Type: application/json' --data '{"items":[{"name":"b","price":2.5,"qty":4},{"name":"a","price":1,"qty":3}]}' "http://127.0.0.1:$p/fn/$fn/")
      line="$r $n $fn $(exec_of -H 'X-Thaw-Mode: bulk' "${args[@]}")"
      for j in 1 2 3 4 5 6 7 8; do line="$line $(exec_of "${args[@]}")"; done
      echo "$line" >> "$OUT/calls.txt"
    done
  done
done
kill %1 %2 2>/dev/null; wait
