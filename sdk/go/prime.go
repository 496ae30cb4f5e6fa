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

// Prime registers a request that the SDK serves once, through the handler
// and the SDK's own request path, after initialisation and before the
// host takes the function's snapshot. What the function's first request
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
// The host calls the hook that serves them only before a deploy snapshot,
// and each is served once.
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

// runPrimes serves the primes through b with h, once.
func runPrimes(h http.Handler, b *buffers) {
	if primed {
		return
	}
	primed = true
	for _, r := range primes {
		in := r.AppendTo(nil)
		copy(b.alloc(len(in)), in)
		b.handle(h, len(in), true)
	}
}
