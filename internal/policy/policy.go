// Package policy decides when to snapshot a function's instances and which
// snapshot a new instance restores (Pronghorn, EuroSys'24).
//
// A request number counts the requests an instance lineage has served: an
// instance booted cold starts at request 1; an instance restored from a
// snapshot taken after request k starts at request k+1.
//
// The worker drives a Policy per function:
//
//	c := p.Choose(pool)            // at instance start: which snapshot (or cold)
//	n := p.CheckpointAt(start)     // snapshot after request n (0: never)
//	p.Observe(req, latency)        // after every request
//	keep := p.Prune(pool, cap)     // when a new snapshot exceeds the pool
//
// Policies are not safe for concurrent use; the worker serialises calls.
package policy

import "time"

// Candidate is a snapshot in a function's pool.
type Candidate struct {
	// ID names the snapshot.
	ID string
	// Request is the request number after which it was taken (0: right
	// after initialisation).
	Request int
}

// Cold is the choice "boot cold, restore nothing".
const Cold = -1

// Policy is a snapshot policy.
type Policy interface {
	// Name is the policy's spec string, e.g. "init", "fixed:5", "pronghorn".
	Name() string
	// Choose returns the index in pool of the snapshot a new instance
	// restores, or Cold.
	Choose(pool []Candidate) int
	// CheckpointAt returns the request number after which an instance that
	// starts at request start should be snapshotted, or 0 for never.
	CheckpointAt(start int) int
	// Observe records the latency of request number req.
	Observe(req int, latency time.Duration)
	// Prune returns the indices of the pool's snapshots to keep when it
	// holds more than capacity.
	Prune(pool []Candidate, capacity int) []int
	// MarshalState and UnmarshalState persist the policy's learned state
	// (kept small) across restarts.
	MarshalState() ([]byte, error)
	UnmarshalState([]byte) error
}
