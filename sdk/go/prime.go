package thaw

import (
	"io"
	"net/http"

	"github.com/thaw-run/thaw/sdk/go/wire"
)

// primes are the requests registered with Prime; primed is set once they
// have been served, and is part of every snapshot taken after.
var (
	primes []*wire.Request
	primed bool
)

// Prime registers a request that the SDK serves through the handler and
// the SDK's own request path after initialisation, before the host takes
// the function's first snapshot: once before the collection that precedes
// the snapshot and once after it (prepareSnapshot). What the function's first request
// builds lazily (encoders and parsers created on first use, caches, the
// SDK's buffers) is then in the snapshot, and no instance restored from it
// builds it again on its first request: measured on examples/jsontransform,
// the first call after a restore took half as long (docs/restore.md,
// "Priming"). This is what snapshotting platforms call
// priming.
//
// The request must be safe to serve without a client: no side effects
// outside the instance, nothing that must differ between the instances
// restored from the snapshot (see "Snapshots and uniqueness"). Its
// response is discarded, and so is a panic in serving it. Call Prime from
// an init function, after Handle; a body is read at once. A nil request
// panics, which fails the module's initialisation, as Handle(nil) does.
// The host calls the hook that serves them only before a deploy snapshot:
// each is served once, then, after the collection that precedes the
// snapshot, once more, so that the snapshot also holds the allocator's
// state of a warm instance.
func Prime(r *http.Request) {
	if r == nil || r.URL == nil {
		panic("thaw: Prime of a nil request") // fails initialisation, so the deploy says so
	}
	req := &wire.Request{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Header: r.Header.Clone()}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if r.Host != "" {
		req.Header.Set("Host", r.Host)
	}
	if r.Body != nil {
		req.Body, _ = io.ReadAll(r.Body)
		_ = r.Body.Close()
	}
	primes = append(primes, req)
}

// prepareSnapshot is the work of the hook before a snapshot: it serves the
// primes, collects the garbage with collect, then serves the primes once
// more; from the second snapshot of an instance on (primed is in its
// memory), it only collects. A collection empties the allocator's
// per-size-class caches, and a restored instance's first request used to
// refill them, touching spans no warm request touches: measured on
// examples/jsontransform, the second serving shrank the working set from
// 796 to 416 KiB and the first response after a bulk restore by a fifth
// (docs/restore.md, "Priming after the collection"). Its garbage is a
// request's worth.
func prepareSnapshot(h http.Handler, b *buffers, collect func()) {
	if primed {
		collect()
		return
	}
	primed = true
	servePrimes(h, b)
	collect()
	servePrimes(h, b)
}

// servePrimes serves every prime through b with h.
func servePrimes(h http.Handler, b *buffers) {
	for _, r := range primes {
		in := r.AppendTo(nil)
		copy(b.alloc(len(in)), in)
		b.handle(h, len(in), true)
	}
}
