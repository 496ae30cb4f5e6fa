package pager

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/testproc"
)

// TestBothPagersKilled: the primary and the standby are frozen while more
// threads than GOMAXPROCS fault, a GC is started (it waits for the
// faulting threads' Ps, freezing this process), and both pagers are
// killed from outside at once. No pager is left to answer; the fault
// guard's C thread does: the threads get zero pages, the GC completes, the
// session counts them lost, and the client then starts a new primary that
// serves new sessions correctly. Before the guard the process stayed
// frozen (the chaos run found it). Run in a subprocess so a failure is a
// deadline, not a hang.
func TestBothPagersKilled(t *testing.T) {
	needUffd(t)
	if raceEnabled {
		// Known flake under the detector: the kill can come before the
		// client has told the guard about the current pagers (the
		// SetPagers of a restart fails on a pid already killed), so the
		// guard never orphans them and a restarted pager answers instead.
		// The scenario runs without the detector in every full test run.
		t.Skip("timing scenario; flaky under the race detector (see the comment)")
	}
	out, err := runSubprocess(t, "bothkilled", "")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "bothkilled ok") {
		t.Fatalf("scenario did not report success:\n%s", out)
	}
	t.Log(strings.TrimSpace(out))
}

func bothKilledScenario() error { return withStandby(bothKilledBody) }

func bothKilledBody(st *stubT, dir string, p *Pager) error {
	p.mu.Lock()
	sb := p.standby
	p.mu.Unlock()
	n := 2*runtime.GOMAXPROCS(0) + 1
	pages := n + 1
	img := writeImage(st, dir, 6, pages, pages, 0)
	r := newRegion(st, pages)
	s := serve(st, p, r, img, Spec{})
	primary, standby := p.Pid(), sb.proc.Pid
	for _, pid := range []int{primary, standby} {
		testproc.Stop(st, pid)
	}
	// Another process kills both while this one is frozen.
	killer := exec.Command("sh", "-c", fmt.Sprintf("sleep 0.5; kill -KILL %d %d", primary, standby))
	if err := killer.Start(); err != nil {
		return err
	}
	done := make(chan byte, n)
	for i := range n {
		go func() { done <- r.mem[i*pageSize] }()
	}
	runtime.GC() // needs every P, including the blocked threads'
	for range n {
		<-done // a zero page: the guard answered
	}
	_ = killer.Wait()
	if f := s.Failures(); f.Lost == 0 || s.Errors() == 0 {
		return fmt.Errorf("Failures = %+v, Errors = %d: the faults answered without a pager were not counted", f, s.Errors())
	}
	if st := p.guard.Stats(); st.Orphanings == 0 || st.Zeroed == 0 {
		return fmt.Errorf("guard stats %+v: the guard did not answer", st)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		cur, err := p.current()
		if err != nil {
			return fmt.Errorf("the client gave up: %w", err)
		}
		if cur.proc.Pid != primary && cur.proc.Pid != standby && cur.deadErr() == nil {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the client did not start a new primary")
		}
		time.Sleep(time.Millisecond)
	}
	// The new primary serves new sessions: the guard has stood down.
	if err := serveFresh(st, p, img, pages); err != nil {
		return err
	}
	return nil
}
