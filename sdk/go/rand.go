package thaw

import (
	crand "crypto/rand"
	"math/rand/v2"
	"sync"
)

// clonedSource is a ChaCha8 source that the SDK reseeds from crypto/rand in
// every restored instance, before the first number it gives there.
//
// The reseed waits for that first draw instead of running in the restore
// hook: crypto/rand is a host call, the first of a restored instance, and
// cost about 40 µs of hello's restore on wasmtime (docs/restore.md), which
// a function that never calls Rand has no reason to pay.
type clonedSource struct {
	mu sync.Mutex
	c  *rand.ChaCha8
	// stale is set by a restore: the state is a snapshot's, which every
	// clone shares, and the next draw reseeds it first.
	stale bool
}

// Uint64 implements rand.Source.
func (s *clonedSource) Uint64() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stale {
		s.seedLocked()
	}
	return s.c.Uint64()
}

// restored marks the state as the snapshot's: the next draw reseeds.
func (s *clonedSource) restored() {
	s.mu.Lock()
	s.stale = true
	s.mu.Unlock()
}

// seedLocked replaces the generator's state with fresh entropy.
func (s *clonedSource) seedLocked() {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails (Go 1.24+ crashes the program instead)
	s.c, s.stale = rand.NewChaCha8(seed), false
}

var (
	source = func() *clonedSource { s := &clonedSource{}; s.seedLocked(); return s }()
	random = rand.New(source)
)

// Rand returns a fast pseudo-random generator whose sequence differs
// between clones of one snapshot: in each restored instance the SDK
// reseeds it from crypto/rand before it gives its first number there (in
// an OnRestore hook or a request alike). Use it instead of math/rand/v2's
// top-level functions, whose runtime-private state every clone shares. It
// is safe for concurrent use.
func Rand() *rand.Rand { return random }
