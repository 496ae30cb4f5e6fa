#!/usr/bin/env bash
# netns.sh: hosts in network namespaces on one bridge, for thaw's cluster tests.
#
#   scripts/netns.sh create N    bridge thawbr0 with 10.77.0.1/24 (the host side: a MinIO
#                                or NATS listening there is reachable from every namespace),
#                                namespaces thaw-n1..thaw-nN, each with loopback up and a veth
#                                (host side thaw-vI on the bridge, eth0 inside) addressed
#                                10.77.0.(10+I)/24; idempotent: creates only what is missing
#   scripts/netns.sh destroy     SIGKILL every process inside a thaw-n* namespace, delete the
#                                namespaces, the thaw-v* veths and the bridge; idempotent
#   scripts/netns.sh partition I cut host I off the bridge (ip link set thaw-vI down)
#   scripts/netns.sh heal I      reconnect it (ip link set thaw-vI up)
#   scripts/netns.sh list        the namespaces and their addresses
#
# Run a command on host I with: ip netns exec thaw-nI CMD...
# Needs root and iproute2. The names are fixed, so one set of hosts exists at a time:
# internal/testnet serialises its users with a lock file and destroys what an aborted
# earlier run left before it creates its own.
set -euo pipefail

br=thawbr0
prefix=thaw-n
vprefix=thaw-v
net=10.77.0

log() { echo "netns.sh: $*" >&2; }

index() {
	if [[ ! "${1:-}" =~ ^[0-9]+$ ]] || ((10#$1 < 1 || 10#$1 > 200)); then
		log "host index must be 1..200, got '${1:-}'"
		exit 2
	fi
	echo $((10#$1))
}

create() {
	local n i ns veth
	n="$(index "${1:-}")"
	ip link show "$br" >/dev/null 2>&1 || ip link add "$br" type bridge
	ip addr replace "$net.1/24" dev "$br"
	ip link set "$br" up
	for i in $(seq 1 "$n"); do
		ns="$prefix$i"
		veth="$vprefix$i"
		[[ -e "/run/netns/$ns" ]] || ip netns add "$ns"
		# A host-side veth whose peer is not in the namespace (the namespace was
		# deleted and made again) is stale: remove it and pair a new one.
		if ip link show "$veth" >/dev/null 2>&1 && ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
			ip link del "$veth"
		fi
		ip link show "$veth" >/dev/null 2>&1 || ip link add "$veth" type veth peer name eth0 netns "$ns"
		ip link set "$veth" master "$br" up
		ip -n "$ns" link set lo up
		ip -n "$ns" addr replace "$net.$((10 + i))/24" dev eth0
		ip -n "$ns" link set eth0 up
	done
}

destroy() {
	local ns pids link
	for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix[0-9]*$" || true); do
		pids="$(ip netns pids "$ns" 2>/dev/null || true)"
		if [[ -n "$pids" ]]; then
			kill -9 $pids 2>/dev/null || true
			# A namespace deleted with processes inside lives on, and so does
			# its veth: wait (bounded) until they are gone.
			for _ in $(seq 1 100); do
				[[ -z "$(ip netns pids "$ns" 2>/dev/null || true)" ]] && break
				sleep 0.1
			done
		fi
		ip netns del "$ns" 2>/dev/null || true
	done
	for link in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$vprefix[0-9]*$" || true); do
		ip link del "$link" 2>/dev/null || true
	done
	if ip link show "$br" >/dev/null 2>&1; then
		ip link del "$br"
	fi
}

linkstate() {
	local i
	i="$(index "${1:-}")"
	ip link set "$vprefix$i" "$2"
}

case "${1:-}" in
create) create "${2:-}" ;;
destroy) destroy ;;
partition) linkstate "${2:-}" down ;;
heal) linkstate "${2:-}" up ;;
list)
	for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix[0-9]*$" | sort -V || true); do
		echo "$ns $(ip -n "$ns" -o -4 addr show dev eth0 2>/dev/null | awk '{print $4}')"
	done
	;;
*)
	echo "usage: $0 create N | destroy | partition I | heal I | list" >&2
	exit 2
	;;
esac
