package policy

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/thaw-run/thaw/internal/errdefs"
)

// fixed snapshots every lineage after request n and restores that
// snapshot: Pronghorn's "snapshot after request 1" baseline when n is 1.
// It learns nothing, so its state is empty.
type fixed struct{ n int }

func (f fixed) Name() string { return fmt.Sprintf("fixed:%d", f.n) }

// Choose prefers the snapshot with the highest request number <= n (the
// fixed:n one once taken; the initialisation one before), newest first on
// ties, else Cold. Snapshots past n (left by another policy) are ignored:
// restoring them would skip the checkpoint this policy wants.
func (f fixed) Choose(pool []Candidate) int {
	best := Cold
	for i, c := range pool {
		if c.Request <= f.n && (best == Cold || c.Request >= pool[best].Request) {
			best = i
		}
	}
	return best
}

// CheckpointAt is n for an instance that will serve request n, else 0:
// instances restored from the fixed:n snapshot start past it.
func (f fixed) CheckpointAt(start int) int {
	if start <= f.n {
		return f.n
	}
	return 0
}

func (fixed) Observe(int, time.Duration) {}

// Prune keeps the capacity snapshots Choose would pick first: request
// numbers <= n from the highest down, newest first, then the rest.
func (f fixed) Prune(pool []Candidate, capacity int) []int {
	if len(pool) <= capacity {
		return allIndices(len(pool))
	}
	if capacity < 1 {
		return nil
	}
	order := allIndices(len(pool))
	rank := func(c Candidate) int {
		if c.Request <= f.n {
			return c.Request
		}
		return -1 - c.Request // after every usable one, nearest first
	}
	slices.SortStableFunc(order, func(a, b int) int {
		if ra, rb := rank(pool[a]), rank(pool[b]); ra != rb {
			return rb - ra
		}
		return b - a
	})
	keep := order[:capacity]
	slices.Sort(keep)
	return keep
}

func (fixed) MarshalState() ([]byte, error) { return []byte("{}"), nil }

func (fixed) UnmarshalState(b []byte) error { return checkEmptyState(b) }

// checkEmptyState accepts the state of a policy that learns nothing: empty,
// or any JSON object (say, a pronghorn state left from a policy change).
func checkEmptyState(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("policy state: %w: %v", errdefs.ErrCorrupt, err)
	}
	return nil
}
