#!/usr/bin/env bash
# test.sh: run all of thaw's tests on a fresh machine with only Go installed.
#
# Checks the tree (gofmt, go vet, go mod tidy, staticcheck), installs what
# the tests need, runs `go test` over the whole module, then the race
# detector over the packages with concurrency:
#   - curl (Debian package), which scripts/minio.sh uses for readiness checks;
#   - a C compiler (Debian's gcc), for thaw's two cgo packages,
#     internal/engine/wasmtime/capi and internal/faultguard (the Go
#     toolchain calls it);
#   - Node.js (Debian's nodejs, 18 or later), which runs the JavaScript
#     templates' own tests (handler.test.mjs) as `thaw new --lang js`
#     writes them (internal/scaffold); thaw itself never runs Node;
#   - a MinIO server built from its Go module into .cache/bin (about 2 minutes
#     the first time, cached afterwards), started on loopback for the store's
#     S3 tests and stopped on exit;
#   - staticcheck, built from its Go module into .cache/bin (once);
#   - iproute2 (Debian package), when run as root: the cluster tests run
#     `thaw serve` hosts in network namespaces (scripts/netns.sh,
#     internal/testnet; skipped without root);
#   - nats-server (Debian package, 2.9.10 in bookworm), when run as root:
#     one cluster scenario runs the workers on an external three-node NATS
#     cluster (--nats-url) instead of the NATS embedded in thaw.
# Everything else (the example functions, the thaw binary for the integration
# tests) is built by the tests themselves with the Go toolchain.
#
# The go test output is printed as is, so its closing lines tell the result.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

if ! command -v go >/dev/null; then
	echo "test.sh: the Go toolchain is required (https://go.dev/dl)" >&2
	exit 1
fi

# need CMD PACKAGE WHY: install a Debian package when its command is missing.
need() {
	if command -v "$1" >/dev/null; then
		return 0
	fi
	if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
		echo "test.sh: installing $2" >&2
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
	else
		echo "test.sh: $1 is required ($3); install $2" >&2
		exit 1
	fi
}
need curl curl "scripts/minio.sh checks readiness with it"
need gcc gcc "cgo builds internal/engine/wasmtime/capi and internal/faultguard"
if [[ "$(id -u)" == 0 ]]; then
	need ip iproute2 "the cluster tests put hosts in network namespaces with ip netns"
	need nats-server nats-server "a cluster scenario runs the workers on an external NATS cluster"
fi
need node nodejs "internal/scaffold runs the JavaScript templates' tests with node --test"

# The tree's basics first: they fail in seconds, the tests take minutes.
unformatted="$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))"
if [[ -n "$unformatted" ]]; then
	echo "test.sh: gofmt would change:" >&2
	echo "$unformatted" >&2
	exit 1
fi
# The Go SDK (sdk/go) and the JavaScript runtime (sdk/js) are modules of
# their own, which ./... from the root does not reach: each check runs in
# all three.
modules=(. sdk/go sdk/js)
for m in "${modules[@]}"; do
	(cd "$m" && go vet ./...)
	if ! (cd "$m" && go mod tidy -diff); then
		echo "test.sh: $m/go.mod is not tidy: run go mod tidy there" >&2
		exit 1
	fi
done
if [[ ! -x .cache/bin/staticcheck ]]; then
	echo "test.sh: building staticcheck into .cache/bin" >&2
	GOBIN="$repo/.cache/bin" go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
for m in "${modules[@]}"; do
	(cd "$m" && "$repo/.cache/bin/staticcheck" ./...)
done

# A private MinIO state directory per run, so a stale server from an earlier
# run cannot interfere.
export THAW_MINIO_DIR="$repo/.cache/minio-test"
scripts/minio.sh clean >/dev/null 2>&1 || true
eval "$(scripts/minio.sh start)"
trap 'scripts/minio.sh stop >/dev/null 2>&1 || true' EXIT

# -p 2: the CI machine has 2 cores; the integration tests and the worker
# tests each boot wasm instances and compile modules, so more packages at
# once only thrash. The whole run must stay well under 30 minutes: the
# integration package, the longest (about 17 minutes), is named first so
# that it starts at once and the other packages share the second slot.
go test -p 2 -timeout 25m ./internal/integration/ ./...
(cd sdk/go && go test ./...)
(cd sdk/js && go test ./...)

# The race detector over the packages whose goroutines share state: the
# pager, the store and its tiers, the HTTP server, and the worker's tests
# of its pools, queues, budget, settling, checkpoints and concurrent faults
# (the whole worker package takes over 20 minutes under the detector on
# this 2-core machine, which CI's 30-minute budget cannot afford). Its
# closing lines follow the full run's; a failure in either stops the
# script.
go test -race -p 2 -timeout 20m ./internal/pager/ ./internal/faultguard/ ./internal/store/... ./internal/server/
go test -race -timeout 20m -run 'TestPublicSkipsFunctionLock|TestMemoryBudget$|TestInstancePool|TestAcquireWaitsForOneSettlingInstance|TestIdleCallsBetweenRequests|TestQueueBound|TestNoDeadlockUnderConcurrentFaults|TestCheckpointLiveInstance|TestSleepingHandlerReleasesSlot' ./internal/worker/
