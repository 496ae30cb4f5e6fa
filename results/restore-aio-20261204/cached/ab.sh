#!/bin/bash
# usage: ab.sh rounds outdir variant... ; a variant is VAR=val[,VAR=val]
R=$1; OUT=$2; shift 2
mkdir -p $OUT
cd /tmp/wtp
for r in $(seq 1 $R); do
 for v in "$@"; do
  env ${v//,/ } /tmp/thaw-probe bench restore --engine wasmtime --functions hello,jsontransform --modes bulk --trials 31 --data /tmp/hd/data2 --json 2>/dev/null > "$OUT/$r-$v.json"
 done
done
