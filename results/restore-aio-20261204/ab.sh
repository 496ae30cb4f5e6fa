#!/bin/bash
# usage: ab2.sh rounds outdir ; alternates /tmp/thaw-head (A) and /tmp/thaw-b (B), order flipped each round
R=$1; OUT=$2
mkdir -p $OUT
cd /work/main
for r in $(seq 1 $R); do
 if [ $((r % 2)) = 1 ]; then order="A B"; else order="B A"; fi
 for v in $order; do
  bin=/tmp/thaw-head; [ $v = B ] && bin=/tmp/thaw-b
  $bin bench restore --engine wasmtime --functions hello,jsontransform --modes bulk --trials 31 --data /tmp/hd/data-$v --json 2>/dev/null > "$OUT/$r-$v.json"
 done
done
