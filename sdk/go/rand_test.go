package thaw

import (
	"slices"
	"testing"
)

// A restore reseeds Rand: two clones of one memory image, which start with
// the same generator state, draw different sequences afterwards. The
// reseed waits for the first draw, so a restore whose function never draws
// makes no host call for it.
func TestRandReseededOnRestore(t *testing.T) {
	draw := func() []uint64 {
		out := make([]uint64, 4)
		for i := range out {
			out[i] = Rand().Uint64()
		}
		return out
	}
	saved := *source.c // the state a snapshot would hold
	runRestoreHooks()
	if *source.c != saved {
		t.Fatal("the restore hook reseeded Rand itself: the host call belongs to its first draw")
	}
	first := draw()
	*source.c = saved // a second clone of the same snapshot
	runRestoreHooks()
	second := draw()
	if slices.Equal(first, second) {
		t.Fatalf("two restores drew the same sequence %v", first)
	}
	*source.c = saved // without a restore the sequence repeats: the test can tell
	a := draw()
	*source.c = saved
	if b := draw(); !slices.Equal(a, b) {
		t.Fatalf("the same state drew %v then %v", a, b)
	}
}
