package store

import (
	"context"
	"sync/atomic"
)

// Where a read's chunks came from, for one restore (Tally, WithTally).
//
// A tiered backend counts its tiers' reads for the whole process
// (TierStats); a restore wants its own: did this cold start read the
// object store, a peer's cache, or only local copies? A Tally attached to
// the context of the reads (WithTally) is added to by the layers that
// serve them: the Store for chunks it had decrypted already, a tiered
// backend for the tier that answered.

// TierBytes are the bytes of chunks served to some reads, by class of
// tier. A chunk fetched from a tier counts whole (its stored object); one
// already decrypted in this process counts the bytes read of it, so that
// a lazy restore's faults, a page or a few each, do not count a cached
// chunk once per page.
type TierBytes struct {
	// Cache is what this process's own copies served: the decrypted-chunk
	// cache, the memory and disk cache tiers, and the upload queue.
	Cache int64 `json:"cache,omitempty"`
	// Peer is what other workers' disk caches served (the cluster's chunk
	// tier, internal/store/peer).
	Peer int64 `json:"peer,omitempty"`
	// Remote is what the object store served.
	Remote int64 `json:"remote,omitempty"`
}

// Add returns the sum of b and c.
func (b TierBytes) Add(c TierBytes) TierBytes {
	return TierBytes{Cache: b.Cache + c.Cache, Peer: b.Peer + c.Peer, Remote: b.Remote + c.Remote}
}

// Total is the bytes of every class.
func (b TierBytes) Total() int64 { return b.Cache + b.Peer + b.Remote }

// Most names the class that served the most bytes ("cache", "peer" or
// "remote"; ties go to the nearer tier), "" when nothing was counted.
func (b TierBytes) Most() string {
	switch {
	case b.Total() == 0:
		return ""
	case b.Cache >= b.Peer && b.Cache >= b.Remote:
		return TierCache
	case b.Peer >= b.Remote:
		return TierPeer
	}
	return TierRemote
}

// The classes of TierBytes, as TierBytes.Most names them.
const (
	TierCache  = "cache"
	TierPeer   = "peer"
	TierRemote = "remote"
)

// Tally counts the bytes of chunks served to the reads under a context,
// by class of tier. It is safe for concurrent use (a restore fetches
// chunks in parallel); the zero value is ready.
type Tally struct {
	cache, peer, remote atomic.Int64
}

// Add counts n bytes served by the tier named tier: a tiered backend's
// tier name ("peer", "remote"; any other, such as "mem", "disk" or
// "queue", is this process's cache) or a TierBytes class.
func (t *Tally) Add(tier string, n int64) {
	switch tier {
	case TierPeer:
		t.peer.Add(n)
	case TierRemote:
		t.remote.Add(n)
	default:
		t.cache.Add(n)
	}
}

// Bytes returns the counts so far.
func (t *Tally) Bytes() TierBytes {
	return TierBytes{Cache: t.cache.Load(), Peer: t.peer.Load(), Remote: t.remote.Load()}
}

// tallyKey is the context key of WithTally.
type tallyKey struct{}

// WithTally returns ctx carrying t: the Store and a tiered backend add to
// t the chunks they serve to reads under the returned context.
func WithTally(ctx context.Context, t *Tally) context.Context {
	return context.WithValue(ctx, tallyKey{}, t)
}

// TallyOf returns the Tally WithTally attached to ctx, nil if none.
func TallyOf(ctx context.Context) *Tally {
	t, _ := ctx.Value(tallyKey{}).(*Tally)
	return t
}
