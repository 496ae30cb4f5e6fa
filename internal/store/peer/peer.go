// Package peer is the cluster's chunk tier, after Lambda's
// availability-zone cache: a worker that misses a chunk in its own caches
// asks the peers that hold it, over NATS request/reply, before it fetches
// the chunk from the object store.
//
// A Server answers requests for chunks on its node's subject
// (Subject(node), "thaw.chunk.<node>") from the worker's local disk cache.
// A Client is a store.Backend to put in a tiered backend as the cache tier
// after the disk cache: its Get asks at most MaxPeers of the nodes its
// Peers function names (the workers the cluster state says have the chunk
// cached, or the chunk's rendezvous homes), each for at most Timeout, and
// reports a miss otherwise, so that the tiered backend falls through to the
// remote.
//
// # Trust
//
// Only chunks are asked for and served (names under "chunks/"): a chunk is
// named by a keyed hash of its content and sealed with an authenticated
// cipher, so a peer's copy is checked by the store exactly as a copy from
// S3 is, and a copy that fails (a tampered or corrupt peer) is dropped by
// the tiered backend, which goes on to the next tier and finally the
// remote: a bad peer costs a fetch, never a wrong byte. Manifests are
// replaced in place under one name, so an old copy would authenticate; they
// are never served by peers.
//
// # Protocol
//
// A request is a message to Subject(node) whose data is the object name.
// The reply has a Thaw-Chunk header: "ok" with the object as data,
// "missing" (not in the cache), "refused" (not a chunk name, or larger than
// the server sends) or "busy" (the server is at its concurrency bound). A
// node that is gone answers with NATS's immediate "no responders"; one that
// is slow, by the Client's Timeout.
package peer

import (
	"strings"
)

// SubjectPrefix is the prefix of the subjects servers answer on.
const SubjectPrefix = "thaw.chunk."

// Subject is the subject node's Server answers on.
func Subject(node string) string { return SubjectPrefix + node }

// Header is the reply header that carries the answer's status.
const Header = "Thaw-Chunk"

// Reply statuses (see the package documentation).
const (
	statusOK      = "ok"
	statusMissing = "missing"
	statusRefused = "refused"
	statusBusy    = "busy"
)

// servable reports whether peers ask for and serve name: chunks only.
func servable(name string) bool { return strings.HasPrefix(name, "chunks/") }
