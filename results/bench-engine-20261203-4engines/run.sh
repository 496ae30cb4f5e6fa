#!/usr/bin/env bash
# thaw bench engine over example and suite functions on wazero, wasmtime, the bare wasmtime embedding
# and native, interleaved trial by trial; machine load recorded before, during (every 30 s) and after.
# PART names the output files; FNS and TRIALS choose what runs (defaults: every function, 15 trials).
set -eu
bin=${THAW:-thaw}
out=$(dirname "$0")
part=${PART:-all}
fns=${FNS:-js_html,js_json,js_hello,hello,jsontransform,pyaes,json_serdes,initheavy,initheavy-gather,helloworld,chameleon,image_rotate,lr_serving,cnn_serving,rnn_serving,matmul,compression,dynamic_html,graph_bfs,graph_pagerank,graph_mst,video_frames}
uptime > "$out/$part-uptime-before.txt"
( while sleep 30; do echo "$(date -u +%T) $(cut -d' ' -f1-3 /proc/loadavg)"; done ) > "$out/$part-load.txt" &
sampler=$!
trap 'kill $sampler' EXIT
"$bin" bench engine --functions "$fns" --engines wazero,wasmtime,bare,native --trials "${TRIALS:-15}" --data "${DATA:-/tmp/thaw-bench-engine-data}" --json \
  > "$out/$part-bench-engine.json" 2> "$out/$part-progress.txt"
uptime > "$out/$part-uptime-after.txt"
