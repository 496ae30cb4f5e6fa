package restore

import (
	"math/rand/v2"
	"testing"

	"github.com/thaw-run/thaw/internal/snapshot"
)

// TestWSSegments checks that the pieces handed out chunk by chunk cover
// every page of every working-set run exactly once and map each ws.img page
// to its place in the image, for chunk sizes that cut runs anywhere.
func TestWSSegments(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		ws := &snapshot.WorkingSet{}
		page := 0
		for range 1 + r.IntN(40) {
			page += r.IntN(20)
			n := 1 + r.IntN(300)
			ws.Runs = append(ws.Runs, snapshot.Run{Start: page, Count: n})
			ws.Pages += n
			page += n
		}
		cs := int64(1+r.IntN(64)) * snapshot.PageSize
		starts := runStarts(ws)
		// want[i] is the image page of ws.img page i.
		var want []int
		for _, run := range ws.Runs {
			for p := range run.Count {
				want = append(want, run.Start+p)
			}
		}
		seen := make([]int, len(want))
		for off := int64(0); off < ws.Bytes(); off += cs {
			end := min(off+cs, ws.Bytes())
			err := wsSegments(ws, starts, off, end, func(dst, lo, hi int64) error {
				if lo < off || hi > end || lo%snapshot.PageSize != 0 || hi%snapshot.PageSize != 0 {
					t.Fatalf("trial %d: piece [%d,%d) outside chunk [%d,%d) or not whole pages", trial, lo, hi, off, end)
				}
				for i := lo / snapshot.PageSize; i < hi/snapshot.PageSize; i++ {
					if got := int(dst/snapshot.PageSize) + int(i-lo/snapshot.PageSize); got != want[i] {
						t.Fatalf("trial %d: ws page %d placed at image page %d, want %d", trial, i, got, want[i])
					}
					seen[i]++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		for i, n := range seen {
			if n != 1 {
				t.Fatalf("trial %d: ws page %d placed %d times", trial, i, n)
			}
		}
	}
}
