#!/bin/bash
# thaw bench restore, two binaries alternating by round (A first in odd
# rounds, B first in even ones), each run a fresh deploy in its own data
# directory; the JSON of every run is kept.
# usage: ab.sh BIN_A BIN_B OUTDIR ROUNDS [FUNCTIONS] [MODES] [TRIALS]
set -e
A=$1; B=$2; OUT=$3; ROUNDS=${4:-6}; FNS=${5:-hello}; MODES=${6:-bulk}; TRIALS=${7:-41}
mkdir -p "$OUT"
for round in $(seq 1 "$ROUNDS"); do
  order="A B"; [ $((round % 2)) = 0 ] && order="B A"
  for v in $order; do
    bin=$A; [ $v = B ] && bin=$B
    rm -rf "$OUT/data-$v"
    "$bin" bench restore --functions "$FNS" --modes "$MODES" --trials "$TRIALS" --data "$OUT/data-$v" --json >"$OUT/r$round-$v.json" 2>"$OUT/r$round-$v.err"
  done
done
rm -rf "$OUT"/data-*
