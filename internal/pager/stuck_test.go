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
