#!/bin/bash
# usage: ab3.sh rounds outdir name=binary... ; alternates binaries, rotating the order each round
R=$1; OUT=$2; shift 2
mkdir -p $OUT
cd /work/main
vs=("$@")
n=${#vs[@]}
for r in $(seq 1 $R); do
 for k in $(seq 0 $((n-1))); do
  v=${vs[$(( (k + r) % n ))]}
  name=${v%%=*}; bin=${v#*=}
  $bin bench restore --engine wasmtime --functions hello,jsontransform --modes bulk --trials 31 --data /tmp/hd/data-$name --json 2>/dev/null > "$OUT/$r-$name.json"
 done
done
