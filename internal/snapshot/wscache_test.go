package snapshot

import (
	"slices"
	"testing"
)

// ws.json is decoded once per file: a second read of the same file shares
// the decoded runs (clipped, so that a caller's append cannot reach the
// cache), and a working set written anew (a new file under the same name)
// is read afresh.
func TestWorkingSetCache(t *testing.T) {
	s, _ := writeTest(t)
	if _, err := s.WriteWorkingSet([]int{0, 3, 4}); err != nil {
		t.Fatal(err)
	}
	a, err := s.WorkingSet()
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.OpenWorkingSet()
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if &a.Runs[0] != &b.Runs[0] {
		t.Fatal("the same ws.json was decoded twice")
	}
	a.Runs = append(a.Runs, Run{Start: 30, Count: 1})
	a.Runs[0] = Run{Start: 1, Count: 1}
	if want := []Run{{0, 1}, {3, 2}}; !slices.Equal(b.Runs, want) {
		t.Fatalf("a caller's append changed another's runs: %+v, want %+v", b.Runs, want)
	}
	if _, err := s.WriteWorkingSet([]int{17, 31}); err != nil {
		t.Fatal(err)
	}
	c, err := s.WorkingSet()
	if err != nil {
		t.Fatal(err)
	}
	if want := []Run{{17, 1}, {31, 1}}; !slices.Equal(c.Runs, want) || c.Pages != 2 {
		t.Fatalf("after a rewrite: runs %+v (%d pages), want %+v", c.Runs, c.Pages, want)
	}
}
