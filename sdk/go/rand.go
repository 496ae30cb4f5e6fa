package thaw

import (
	crand "crypto/rand"
	"math/rand/v2"
	"sync"
)

// clonedSource is a ChaCha8 source that the SDK reseeds from crypto/rand in
// every restored instance, before any OnRestore hook runs.
type clonedSource struct {
	mu sync.Mutex
	c  *rand.ChaCha8
}

// Uint64 implements rand.Source.
func (s *clonedSource) Uint64() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c.Uint64()
}

// reseed replaces the generator's state with fresh entropy.
func (s *clonedSource) reseed() {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails (Go 1.24+ crashes the program instead)
	s.mu.Lock()
	s.c = rand.NewChaCha8(seed)
	s.mu.Unlock()
}

var (
	source = func() *clonedSource { s := &clonedSource{}; s.reseed(); return s }()
	random = rand.New(source)
)

// Rand returns a fast pseudo-random generator whose sequence differs
// between clones of one snapshot: the SDK reseeds it from crypto/rand in
// each restored instance, before the OnRestore hooks run. Use it instead of
// math/rand/v2's top-level functions, whose runtime-private state every
// clone shares. It is safe for concurrent use.
func Rand() *rand.Rand { return random }
