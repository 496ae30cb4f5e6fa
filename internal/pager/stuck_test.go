package pager

import (
	"bytes"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/testproc"
)

// A primary pager that is alive but stopped (SIGSTOP) while threads fault
// on its region is detected by the standby's watchdog, which kills it and
// takes over: the threads, more of them than GOMAXPROCS, get the image's
// pages, and the session counts the faults outstanding at the takeover as
// lost, so its owner discards the instance. A GC runs meanwhile: the
// standby needs nothing from this process.
func TestStandbyKillsStuckPrimary(t *testing.T) {
	needUffd(t)
	p := startPager(t)
	const pages = 16
	img := writeImage(t, t.TempDir(), 11, pages, pages, 0)
	r := newRegion(t, pages)
	s := serve(t, p, r, img, Spec{})
	if err := checkPage(r, img, 0); err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	testproc.Stop(t, pid)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	n := 2*runtime.GOMAXPROCS(0) + 1
	got := make(chan error, n)
	t0 := time.Now()
	for i := range n {
		go func() { got <- checkPage(r, img, 1+i) }()
	}
	runtime.GC()
	for range n {
		if err := <-got; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("faults answered %v after the primary stopped", time.Since(t0).Round(time.Millisecond))
	if f := s.Failures(); f.Lost == 0 || s.Errors() == 0 {
		t.Fatalf("Failures = %+v, Errors = %d: the faults outstanding at the takeover were not counted", f, s.Errors())
	}
	deadline := time.Now().Add(30 * time.Second)
	for p.Pid() == pid {
		if time.Now().After(deadline) {
			t.Fatal("the client never replaced the stuck primary")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The new primary serves the rest of the region.
	if err := checkPage(r, img, pages-1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.mem[:pageSize], img.content[:pageSize]) {
		t.Fatal("page 0 changed")
	}
}

// stallWatch declares a stall after stuckAfter of outstanding faults with
// no progress, even when most observations catch the queue empty (threads
// bounced out of their faults by signals); progress, or quietAfter with
// nothing outstanding, ends a stall, and an idle session never stalls.
func TestStallWatch(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	step := watchInterval
	past := int(stuckAfter/step) + 2 // observations just past stuckAfter
	quiet := int(quietAfter/step) + 1
	cases := []struct {
		name string
		// obs gives, for the i-th observation, the counters and whether a
		// fault is seen outstanding; n is the number of observations.
		obs   func(i int) (begun, finished uint64, outstanding bool)
		n     int
		stuck bool
	}{
		{"flickering", func(i int) (uint64, uint64, bool) { return 3, 3, i%3 == 0 }, past, true},
		{"taken and not finished", func(int) (uint64, uint64, bool) { return 4, 3, true }, past, true},
		{"progress", func(i int) (uint64, uint64, bool) { return uint64(i), uint64(i), true }, past, false},
		{"idle", func(int) (uint64, uint64, bool) { return 7, 7, false }, past, false},
		{"quiet after one fault", func(i int) (uint64, uint64, bool) { return 7, 7, i == 2 }, past, false},
		// Outstanding, then quiet for longer than quietAfter, then
		// outstanding again: the clock restarts at the second, and the
		// observations end short of stuckAfter from it.
		{"quiet gap", func(i int) (uint64, uint64, bool) { return 1, 1, i < 8 || i >= 8+quiet }, past + quiet, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var w stallWatch
			fired := false
			for i := range c.n {
				b, f, o := c.obs(i)
				if w.stuck(at(time.Duration(i)*step), b, f, o) {
					fired = true
				}
			}
			if fired != c.stuck || w.fired != c.stuck {
				t.Fatalf("stuck = %v (fired %v), want %v", fired, w.fired, c.stuck)
			}
		})
	}
}
