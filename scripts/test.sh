#!/usr/bin/env bash
# test.sh: run all of thaw's tests on a fresh machine with only Go installed.
#
# Installs what the tests need, then runs `go test` over the whole module:
#   - curl (Debian package), which scripts/minio.sh uses for readiness checks;
#   - a MinIO server built from its Go module into .cache/bin (about 2 minutes
#     the first time, cached afterwards), started on loopback for the store's
#     S3 tests and stopped on exit.
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

if ! command -v curl >/dev/null; then
	if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
		echo "test.sh: installing curl" >&2
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null
	else
		echo "test.sh: curl is required by scripts/minio.sh; install it" >&2
		exit 1
	fi
fi

# A private MinIO state directory per run, so a stale server from an earlier
# run cannot interfere.
export THAW_MINIO_DIR="$repo/.cache/minio-test"
scripts/minio.sh clean >/dev/null 2>&1 || true
eval "$(scripts/minio.sh start)"
trap 'scripts/minio.sh stop >/dev/null 2>&1 || true' EXIT

# -p 2: the CI machine has 2 cores; the integration tests and the worker
# tests each boot wasm instances and compile modules, so more packages at
# once only thrash. The whole run must stay well under 30 minutes.
go test -p 2 -timeout 25m ./...
