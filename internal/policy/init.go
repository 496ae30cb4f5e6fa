package policy

import "time"

// initPolicy restores the snapshot taken right after initialisation and
// never takes another: the behaviour of every snapshotting platform that
// does not learn (Lambda SnapStart, REAP), and thaw's default.
type initPolicy struct{}

func (initPolicy) Name() string { return "init" }

// Choose returns the newest request-0 snapshot, or Cold when there is none.
func (initPolicy) Choose(pool []Candidate) int { return newestAt(pool, 0) }

func (initPolicy) CheckpointAt(int) int { return 0 }

func (initPolicy) Observe(int, time.Duration) {}

// Prune keeps the newest request-0 snapshot (the one Choose restores) or,
// when there is none, the newest snapshot. The pool is oldest first.
func (initPolicy) Prune(pool []Candidate, capacity int) []int {
	if len(pool) <= capacity {
		return allIndices(len(pool))
	}
	if capacity < 1 {
		return nil
	}
	if i := newestAt(pool, 0); i != Cold {
		return []int{i}
	}
	return []int{len(pool) - 1}
}

func (initPolicy) MarshalState() ([]byte, error) { return []byte("{}"), nil }

func (initPolicy) UnmarshalState(b []byte) error { return checkEmptyState(b) }

// newestAt returns the index of the last candidate taken after request
// req, or Cold.
func newestAt(pool []Candidate, req int) int {
	for i := len(pool) - 1; i >= 0; i-- {
		if pool[i].Request == req {
			return i
		}
	}
	return Cold
}

func allIndices(n int) []int {
	keep := make([]int, n)
	for i := range keep {
		keep[i] = i
	}
	return keep
}
