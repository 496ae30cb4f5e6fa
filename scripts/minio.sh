#!/usr/bin/env bash
# minio.sh: a real S3 server (MinIO) on loopback for thaw's store tests.
#
#   scripts/minio.sh install   build the server into .cache/bin (once; ~2 min, then cached)
#   scripts/minio.sh start     start it (installs if needed), wait until ready, write the env file
#   scripts/minio.sh stop      stop it; data dir and port are kept, so `start` restarts the same store
#   scripts/minio.sh env       print the env file (export lines): eval "$(scripts/minio.sh env)"
#   scripts/minio.sh clean     stop and delete the state directory
#
# State lives in $THAW_MINIO_DIR (default <repo>/.cache/minio): data/, port, pid, log, env.
# Tests that need a private server (e.g. to stop it) set THAW_MINIO_DIR to a temporary directory.
# Credentials are fixed test values; the server listens on 127.0.0.1 only, or on the one
# address $THAW_MINIO_HOST names (e.g. 10.77.0.1, the bridge of scripts/netns.sh, so that
# hosts in network namespaces reach it).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$repo/.cache/bin/minio"
state="${THAW_MINIO_DIR:-$repo/.cache/minio}"
host="${THAW_MINIO_HOST:-127.0.0.1}"
user="thawtest"
pass="thawtest-secret-key"

log() { echo "minio.sh: $*" >&2; }

install() {
	if [[ -x "$bin" ]]; then
		return 0
	fi
	log "building MinIO server into $repo/.cache/bin (takes a few minutes, cached afterwards)"
	mkdir -p "$repo/.cache/bin"
	GOBIN="$repo/.cache/bin" GOFLAGS=-buildvcs=false go install github.com/minio/minio@latest
}

running() {
	[[ -f "$state/pid" ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null
}

ready() {
	curl -fsS -o /dev/null --max-time 2 "http://$host:$1/minio/health/ready" 2>/dev/null
}

port_free() {
	! (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null
}

pick_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 30000))
		if port_free "$p"; then
			echo "$p"
			return 0
		fi
	done
	log "no free port found"
	return 1
}

start() {
	install
	mkdir -p "$state/data"
	if running; then
		log "already running (pid $(cat "$state/pid"), port $(cat "$state/port"))"
		cat "$state/env"
		return 0
	fi
	if [[ -f "$state/port" ]]; then
		local port
		port="$(cat "$state/port")" # a restart keeps its address: clients reconnect
		if ! port_free "$port"; then
			log "port $port (from $state/port) is taken by another process"
			return 1
		fi
		serve "$port"
		return
	fi
	# A fresh port can be taken between the check and MinIO's bind (another
	# test's server, a client's ephemeral port): pick again a few times.
	local try
	for try in 1 2 3 4 5; do
		local port
		port="$(pick_port)"
		echo "$port" >"$state/port"
		if serve "$port"; then
			return 0
		fi
		log "start on port $port failed (try $try)"
	done
	rm -f "$state/port"
	return 1
}

# serve starts the server on port and waits until it is ready.
serve() {
	local port="$1"
	MINIO_ROOT_USER="$user" MINIO_ROOT_PASSWORD="$pass" MINIO_BROWSER=off \
		MINIO_UPDATE=off MINIO_CI_CD=1 \
		nohup "$bin" server --quiet --address "$host:$port" "$state/data" \
		>>"$state/log" 2>&1 </dev/null &
	echo $! >"$state/pid"
	for _ in $(seq 1 300); do
		if ready "$port"; then
			cat >"$state/env" <<ENV
export THAW_TEST_S3_ENDPOINT=$host:$port
export THAW_TEST_S3_ACCESS_KEY=$user
export THAW_TEST_S3_SECRET_KEY=$pass
export THAW_TEST_S3_REGION=us-east-1
export THAW_TEST_MINIO_SCRIPT=$repo/scripts/minio.sh
ENV
			log "ready on $host:$port (pid $(cat "$state/pid")); env in $state/env"
			cat "$state/env"
			return 0
		fi
		if ! running; then
			log "server exited; last log lines:"
			tail -n 20 "$state/log" >&2
			rm -f "$state/pid"
			return 1
		fi
		sleep 0.2
	done
	log "not ready after 60s; see $state/log"
	stop
	return 1
}

stop() {
	if ! running; then
		rm -f "$state/pid"
		return 0
	fi
	local pid
	pid="$(cat "$state/pid")"
	kill "$pid"
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
	rm -f "$state/pid"
	log "stopped (data kept in $state/data)"
}

case "${1:-}" in
install) install ;;
start) start ;;
stop) stop ;;
env)
	if [[ ! -f "$state/env" ]] || ! running; then
		log "not running; run: scripts/minio.sh start"
		exit 1
	fi
	cat "$state/env"
	;;
clean)
	stop
	rm -rf "$state"
	;;
*)
	echo "usage: $0 install|start|stop|env|clean" >&2
	exit 2
	;;
esac
