package pager

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/uffd"
)

// A standby that fails to start is tried again later, not given up on
// until the next pager death (the chaos run found a worker whose standby
// had failed while the object store was down, so killing its primary later
// left no pager at all). Here the standby fails because a session's source
// file was closed (its descriptor cannot be handed over); once that
// session is gone, the retry succeeds.
func TestStandbyRetried(t *testing.T) {
	needUffd(t)
	defer func(d time.Duration) { standbyRetry = d }(standbyRetry)
	standbyRetry = 50 * time.Millisecond
	p := startPager(t)
	const pages = 4
	img := writeImage(t, t.TempDir(), 12, pages, pages, 0)
	r := newRegion(t, pages)
	f, err := os.Open(img.path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := p.Serve(r.u, f, Spec{Base: uffd.Addr(r.mem), Length: uint64(len(r.mem))})
	if err != nil {
		t.Fatal(err)
	}
	f.Close() // breaks the rule that sources stay open: no new pager can be handed it
	p.mu.Lock()
	sb := p.standby
	p.mu.Unlock()
	if sb == nil {
		t.Fatal("no standby started")
	}
	if err := syscall.Kill(sb.proc.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The replacement fails while the session lives, again and again:
	// failed starts do not spend the budget of standby deaths (3).
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		failed := p.sbFails >= 3 && p.standby == nil
		p.mu.Unlock()
		if failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the standby's replacement did not fail")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for {
		p.mu.Lock()
		sb := p.standby
		p.mu.Unlock()
		if sb != nil && sb.deadErr() == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no standby was started again")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
