#!/usr/bin/env bash
# run.sh: replay the Azure Functions 2019 trace sample on three thaw
# workers, each a host in a network namespace (scripts/netns.sh), clustered
# with embedded NATS and sharing one MinIO on the bridge, once per
# placement, and keep the raw results.
#
#   sudo results/cluster-replay/run.sh                     # PLACEMENTS="local"
#   sudo PLACEMENTS="locality random" results/cluster-replay/run.sh
#
# Run from the repository root, as root (network namespaces). Every
# placement runs on a fresh cluster (new data directories, empty caches):
#   - `thaw serve` on 10.77.0.11-13:8080, --cluster-listen IP:6222, the three
#     as --cluster-peers, and `--placement P` unless P is "local" (today's
#     code: every worker serves what it receives; --placement exists once
#     internal/placement is wired into `thaw serve`);
#   - FUNCTIONS copies of examples/hello (DISTINCT=1: distinct modules,
#     thaw new's hello with SALT_KIB KiB of random salt each) deployed
#     through host 1 as fn01..fnNN (one thaw function per trace function),
#     KEEP_ALIVE idle keep-alive so that the trace's gaps cost cold starts;
#   - `thaw load --trace` over the three workers (--servers, --spread
#     SPREAD: the layer-4 balancer in front), one trace minute in
#     MINUTE_SECONDS, for DURATION, the busiest minute capped at MAX_RATE/s;
#     with WARMUP_MINUTES > 0, that many trace minutes are replayed first
#     and not measured (the measured replay starts at the next minute).
# Output under OUT (default results/cluster-replay/<date>): per placement a
# `thaw load` run directory (every invocation with the worker that served
# it, load-summary.json with the per-worker rows) and its JSON summary, the
# workers' logs and /metrics after the run, `thaw store stats` after the
# deploys (store-stats-P.json), and the settings (settings.txt).
#
# Trace: Azure Functions Trace 2019, (c) Microsoft, CC-BY 4.0. M. Shahrad et
# al., "Serverless in the Wild: Characterizing and Optimizing the Serverless
# Workload at a Large Cloud Provider", USENIX ATC 2020 (sample of 500
# functions by vHive's In-Vitro sampler; /work/shared/traces/README.md).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
PLACEMENTS=${PLACEMENTS:-local}
FUNCTIONS=${FUNCTIONS:-12}
MINUTE_SECONDS=${MINUTE_SECONDS:-6}
DURATION=${DURATION:-60s}
MAX_RATE=${MAX_RATE:-20}
KEEP_ALIVE=${KEEP_ALIVE:-10s}
SPREAD=${SPREAD:-random}
SEED=${SEED:-1}
WARMUP_MINUTES=${WARMUP_MINUTES:-0}
TRACE=${TRACE:-/work/shared/traces/azure2019-sample}
OUT=${OUT:-results/cluster-replay/$(date -u +%Y%m%d-%H%M%S)}
TOKEN=replay-token

if [[ "$(id -u)" != 0 ]]; then
	echo "run.sh: needs root (network namespaces)" >&2
	exit 1
fi
mkdir -p "$OUT"
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	scripts/netns.sh destroy >/dev/null 2>&1 || true
	THAW_MINIO_DIR="$work/minio" scripts/minio.sh stop >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/thaw" ./cmd/thaw
thaw="$work/thaw"
"$thaw" build examples/hello -o "$work/hello.wasm" >/dev/null 2>&1 ||
	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o "$work/hello.wasm" ./examples/hello
fns=$(for i in $(seq -w 1 "$FUNCTIONS"); do printf 'fn%s,' "$i"; done)
fns=${fns%,}
# DISTINCT=1: one distinct module per function (`thaw new`, the hello
# template, plus SALT_KIB KiB of random bytes its init reads), so that
# neither modules nor snapshots deduplicate across functions in the store.
module() { echo "$work/hello.wasm"; }
if [[ "${DISTINCT:-0}" == 1 ]]; then
	for f in ${fns//,/ }; do
		(cd "$work" && "$thaw" new "$f" >/dev/null)
		salt=$(head -c $((${SALT_KIB:-256} * 1024)) /dev/urandom | od -An -tx1 | tr -d ' \n')
		printf 'package main\n\nvar salt = "%s"\n\nfunc init() {\n\tif len(salt) == 0 {\n\t\tpanic("no salt")\n\t}\n}\n' "$salt" >"$work/$f/salt.go"
		"$thaw" build "$work/$f" -o "$work/$f.wasm" >/dev/null
	done
	module() { echo "$work/$1.wasm"; }
fi
cat >"$OUT/settings.txt" <<EOF
placements: $PLACEMENTS
functions: $FUNCTIONS functions ($fns): $([[ "${DISTINCT:-0}" == 1 ]] && echo "distinct modules, thaw new's hello with ${SALT_KIB:-256} KiB of random salt each" || echo "copies of examples/hello"), keep-alive $KEEP_ALIVE
trace: $TRACE, $FUNCTIONS trace functions (stratified, seed $SEED), one minute = ${MINUTE_SECONDS}s, warm-up $WARMUP_MINUTES trace minutes (not measured), then duration $DURATION, max rate $MAX_RATE/s
entry: --servers the three workers, --spread $SPREAD
commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)
date: $(date -u +%FT%TZ)
Trace: Azure Functions Trace 2019, (c) Microsoft, CC-BY 4.0. M. Shahrad et al., USENIX ATC 2020.
EOF

for placement in $PLACEMENTS; do
	scripts/netns.sh destroy >/dev/null 2>&1 || true
	scripts/netns.sh create 3 >/dev/null
	# One MinIO on the bridge, fresh per placement: object-store bytes
	# count from an empty cache.
	export THAW_MINIO_HOST=10.77.0.1 THAW_MINIO_DIR="$work/minio"
	scripts/minio.sh clean >/dev/null 2>&1 || true
	eval "$(scripts/minio.sh start)"
	export THAW_S3_ACCESS_KEY=$THAW_TEST_S3_ACCESS_KEY THAW_S3_SECRET_KEY=$THAW_TEST_S3_SECRET_KEY
	THAW_STORE_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n")
	export THAW_STORE_KEY
	extra=()
	[[ "$placement" != local ]] && extra=(--placement "$placement")
	urls=()
	peers=10.77.0.11:6222,10.77.0.12:6222,10.77.0.13:6222
	for i in 1 2 3; do
		ip=10.77.0.$((10 + i))
		ip netns exec thaw-n$i env THAW_TOKEN= "$thaw" serve --addr $ip:8080 --data "$work/data-$placement-$i" \
			--token $TOKEN --node-id n$i --cluster-listen $ip:6222 --cluster-peers $peers \
			--s3-endpoint "$THAW_TEST_S3_ENDPOINT" --s3-bucket "replay-$placement" "${extra[@]}" \
			>"$OUT/serve-$placement-n$i.log" 2>&1 &
		pids+=($!)
		urls+=(http://$ip:8080)
	done
	for u in "${urls[@]}"; do
		for _ in $(seq 600); do curl -sf "$u/healthz" >/dev/null && break; sleep 0.1; done
	done
	export THAW_SERVER=${urls[0]} THAW_TOKEN=$TOKEN
	for f in ${fns//,/ }; do
		# A loaded 2-core machine (three workers compiling what the
		# registry delivers) can miss the registry's 3 s write timeout:
		# the deploy answers 503, and is tried again.
		for try in 1 2 3 4 5; do
			"$thaw" deploy "$f" "$(module "$f")" --keep-alive "$KEEP_ALIVE" >/dev/null && break
			[[ $try == 5 ]] && exit 1
			sleep 2
		done
	done
	# Every worker serves every function before the replay starts.
	for u in "${urls[@]}"; do
		for _ in $(seq 1200); do
			n=$(curl -sf -H "Authorization: Bearer $TOKEN" "$u/v1/functions" | grep -o '"name"' | wc -l || true)
			[[ "$n" -ge "$FUNCTIONS" ]] && break
			sleep 0.1
		done
	done
	# What the store holds: the distinct snapshot bytes that the
	# store-bytes target compares the workers' fetches with.
	"$thaw" store stats --json --s3-endpoint "$THAW_TEST_S3_ENDPOINT" --s3-bucket "replay-$placement" \
		>"$OUT/store-stats-$placement.json" 2>&1 || true
	# Let the deploys' warm instances expire: the replay starts cold.
	sleep "${KEEP_ALIVE%s}"
	servers=$(IFS=,; echo "${urls[*]}")
	first=0
	if [[ "$WARMUP_MINUTES" -gt 0 ]]; then
		# Warm-up: the trace's first minutes, not measured, so that the
		# measured window starts in steady state (every function had its
		# first, compulsory cold start).
		"$thaw" load --servers "$servers" --spread "$SPREAD" --seed "$SEED" --trace "$TRACE" \
			--trace-functions "$FUNCTIONS" --functions "$fns" --minute-seconds "$MINUTE_SECONDS" \
			--duration "$(awk "BEGIN{print $WARMUP_MINUTES*$MINUTE_SECONDS}")s" --max-rate "$MAX_RATE" --timeout 30s \
			--out "$OUT/warmup-$placement" >"$OUT/warmup-table-$placement.txt" 2>"$OUT/warmup-load-$placement.log"
		first=$WARMUP_MINUTES
	fi
	"$thaw" load --servers "$servers" --spread "$SPREAD" --seed "$SEED" --trace "$TRACE" \
		--trace-functions "$FUNCTIONS" --functions "$fns" --minute-seconds "$MINUTE_SECONDS" \
		--first-minute "$first" --duration "$DURATION" --max-rate "$MAX_RATE" --timeout 30s \
		--out "$OUT/run-$placement" >"$OUT/table-$placement.txt" 2>"$OUT/load-$placement.log"
	cp "$OUT/run-$placement/load-summary.json" "$OUT/summary-$placement.json"
	for i in 1 2 3; do
		curl -sf -H "Authorization: Bearer $TOKEN" "${urls[$((i - 1))]}/metrics" >"$OUT/metrics-$placement-n$i.txt" || true
	done
	cat "$OUT/table-$placement.txt"
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	pids=()
	scripts/minio.sh stop >/dev/null 2>&1 || true
done
echo "results: $OUT"
