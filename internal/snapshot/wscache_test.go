package snapshot

import (
	"errors"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
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

// ReopenWorkingSet hands back the working set it is given, ws.img still
// open, while ws.json is the file it was read from; once the working set
// is written anew, or for another snapshot's, it closes the one given and
// opens the current one. SetDirect changes the image's O_DIRECT flag and
// remembers it.
func TestReopenWorkingSet(t *testing.T) {
	s, _ := writeTest(t)
	if _, err := s.WriteWorkingSet([]int{0, 3, 4}); err != nil {
		t.Fatal(err)
	}
	a, err := s.OpenWorkingSet()
	if err != nil {
		t.Fatal(err)
	}
	fd := a.Image().Fd()
	b, err := s.ReopenWorkingSet(a)
	if err != nil {
		t.Fatal(err)
	}
	if b != a || b.Image() == nil || b.Image().Fd() != fd {
		t.Fatal("an unchanged working set was opened again")
	}
	direct := func(ws *WorkingSet) bool {
		fl, err := unix.FcntlInt(ws.Image().Fd(), unix.F_GETFL, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fl&unix.O_DIRECT != 0
	}
	for _, on := range []bool{true, true, false, false} {
		if err := b.SetDirect(on); err != nil {
			if errors.Is(err, unix.EINVAL) {
				t.Skip("the file system refuses O_DIRECT")
			}
			t.Fatal(err)
		}
		if got := direct(b); got != on {
			t.Fatalf("SetDirect(%v): O_DIRECT is %v", on, got)
		}
	}
	if err := b.SetDirect(true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteWorkingSet([]int{17, 31}); err != nil {
		t.Fatal(err)
	}
	c, err := s.ReopenWorkingSet(b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c == b || b.Image() != nil {
		t.Fatal("a working set written anew was not reopened, or the old one not closed")
	}
	if want := []Run{{17, 1}, {31, 1}}; !slices.Equal(c.Runs, want) || direct(c) {
		t.Fatalf("reopened: runs %+v, O_DIRECT %v; want %+v, buffered", c.Runs, direct(c), want)
	}
	data := make([]byte, c.Bytes())
	if _, err := c.Image().ReadAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.CheckWorkingSetData(c, data); err != nil {
		t.Fatalf("the reopened ws.img does not match its ws.json: %v", err)
	}
	other, _ := writeTest(t)
	if _, err := other.WriteWorkingSet([]int{1}); err != nil {
		t.Fatal(err)
	}
	d, err := other.ReopenWorkingSet(c)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d == c || c.Image() != nil || d.Pages != 1 {
		t.Fatal("another snapshot's working set was handed back")
	}
}
