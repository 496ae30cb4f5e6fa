package restore

import (
	"testing"

	"github.com/thaw-run/thaw/internal/snapshot"
)

// splitRuns must cover every run exactly once, in order, with each part's
// file offset equal to the bytes of the runs before it.
func TestSplitRuns(t *testing.T) {
	runs := []snapshot.Run{{Start: 0, Count: 3}, {Start: 10, Count: 1}, {Start: 20, Count: 4}, {Start: 30, Count: 2}, {Start: 40, Count: 6}}
	for _, n := range []int{1, 2, 3, 8} {
		parts := splitRuns(runs, n)
		if len(parts) > n || len(parts) == 0 {
			t.Fatalf("n=%d: %d parts", n, len(parts))
		}
		var all []snapshot.Run
		var off int64
		for _, p := range parts {
			if p.fileOff != off {
				t.Fatalf("n=%d: part at file offset %d, want %d", n, p.fileOff, off)
			}
			for _, r := range p.runs {
				off += int64(r.Count) * snapshot.PageSize
			}
			all = append(all, p.runs...)
		}
		if len(all) != len(runs) {
			t.Fatalf("n=%d: parts hold %d runs, want %d", n, len(all), len(runs))
		}
		for i := range runs {
			if all[i] != runs[i] {
				t.Fatalf("n=%d: run %d is %+v, want %+v", n, i, all[i], runs[i])
			}
		}
	}
}

func TestAdvance(t *testing.T) {
	a, b := make([]byte, 8), make([]byte, 4)
	got := advance([][]byte{a, b}, 10)
	if len(got) != 1 || len(got[0]) != 2 {
		t.Fatalf("advance by 10 over 8+4 left %d buffers, first %d bytes", len(got), len(got[0]))
	}
}
