#!/bin/bash
# A warm call entering at the worker that has it warm (a) against one entering at the other
# worker (b), which forwards it over NATS: two clustered `thaw serve` on loopback, both with
# --placement hash (a is hello's first rendezvous home, so every call goes to a: served locally
# when it enters at a, forwarded when it enters at b). thaw load alternates between the two entry
# points, ROUNDS times. Run from the repository root with the binary at $BIN.
set -u
out=${OUT:-results/placement/forward-ab}
bin=${BIN:-/tmp/thaw-s3p}
mkdir -p $out
rm -rf /tmp/fab-a /tmp/fab-b
peers=127.0.0.1:18411,127.0.0.1:18412
$bin serve --addr 127.0.0.1:18401 --data /tmp/fab-a --node-id a --cluster-listen 127.0.0.1:18411 --cluster-peers $peers --placement hash > $out/serve-a.log 2>&1 &
pa=$!
$bin serve --addr 127.0.0.1:18402 --data /tmp/fab-b --node-id b --cluster-listen 127.0.0.1:18412 --cluster-peers $peers --placement hash > $out/serve-b.log 2>&1 &
pb=$!
trap 'kill $pa $pb; wait $pa $pb; rm -rf /tmp/fab-a /tmp/fab-b' EXIT
for i in $(seq 300); do curl -sf http://127.0.0.1:18401/healthz >/dev/null && curl -sf http://127.0.0.1:18402/healthz >/dev/null && break; sleep 0.1; done
sleep 3
$bin --server http://127.0.0.1:18401 deploy hello /tmp/hello.wasm >/dev/null
for i in $(seq 600); do $bin --server http://127.0.0.1:18402 ls 2>/dev/null | grep -q hello && break; sleep 0.2; done
curl -s -D - -o /dev/null http://127.0.0.1:18402/fn/hello/ | grep -i server-timing > $out/server-timing-b.txt
for port in 18401 18402; do
  $bin --server http://127.0.0.1:$port load --functions hello --rate 50 --duration 3s --arrivals constant --out $out/warmup-$port >/dev/null 2>&1
done
for round in ${ROUNDS:-1 2 3 4 5}; do
  for entry in a b; do
    port=18401; [ $entry = b ] && port=18402
    $bin --server http://127.0.0.1:$port load --functions hello --rate 100 --duration 8s --arrivals constant --json --out $out/run-$entry-$round > $out/$entry-$round.json 2>/dev/null
  done
done
curl -s http://127.0.0.1:18402/metrics | grep thaw_placements_total > $out/metrics-b.txt
curl -s http://127.0.0.1:18401/metrics | grep thaw_placements_total > $out/metrics-a.txt
python3 - $out <<'PY' > $out/summary.txt
import json, sys, statistics
out = sys.argv[1]
rounds = sorted({int(f.split('-')[1].split('.')[0]) for f in __import__('os').listdir(out) if f.startswith(('a-', 'b-')) and f.endswith('.json')})
print("round  a p50 ms  b p50 ms  extra ms  a p99 ms  b p99 ms  b errors")
extra = []
for r in rounds:
    a = json.load(open(f"{out}/a-{r}.json"))["overall"]; b = json.load(open(f"{out}/b-{r}.json"))["overall"]
    extra.append(b["p50_ms"] - a["p50_ms"])
    print(f"{r:5d}  {a['p50_ms']:8.3f}  {b['p50_ms']:8.3f}  {b['p50_ms']-a['p50_ms']:8.3f}  {a['p99_ms']:8.2f}  {b['p99_ms']:8.2f}  {b['errors']:8d}")
print(f"median extra p50 through b: {statistics.median(extra):.3f} ms")
PY
cat $out/summary.txt
