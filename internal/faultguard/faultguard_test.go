package faultguard

import (
	"bytes"
	"fmt"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/thaw-run/thaw/internal/uffd"
)

var words = Words{Begun: 1, Finished: 2, Lost: 5, Errors: 0}

// fixture is a registered region, its shared counter page, and a guard
// watching it.
type fixture struct {
	g      *Guard
	u      *uffd.FD
	mem    []byte
	shared []byte
}

func newFixture(t *testing.T, pages int) *fixture {
	t.Helper()
	if err := uffd.Available(); err != nil {
		t.Skipf("userfaultfd unavailable: %v", err)
	}
	mem, err := uffd.Mmap(uint64(pages) * uffd.PageSize)
	if err != nil {
		t.Fatal(err)
	}
	u, err := uffd.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Register(uffd.Addr(mem), uint64(len(mem))); err != nil {
		t.Fatal(err)
	}
	// The counter page must not be Go memory: the C thread keeps its address.
	shared, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(words, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{g: g, u: u, mem: mem, shared: shared}
	if err := g.Add(1, u.Fd(), uffd.Addr(mem), uint64(len(mem)), shared); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.Remove(1)
		g.Close()
		u.Close()
		uffd.Munmap(mem)
		unix.Munmap(shared)
	})
	return f
}

func (f *fixture) word(i int) uint64 {
	return atomic.LoadUint64((*uint64)(unsafe.Pointer(&f.shared[8*i])))
}

// sleeper starts a process standing in for a pager.
func sleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	c := exec.Command("sleep", "600")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	return c
}

// When both pagers die with faults outstanding, from more goroutines than
// there are Ps, the guard answers them: the faulting goroutines get zero
// pages, a GC started meanwhile completes (without the guard the process
// froze), and every answered fault is counted lost and failed. The pagers
// are killed by a shell, as this process cannot run while its Ps are held
// by blocked threads.
func TestAnswersWhenEveryPagerDies(t *testing.T) {
	n := 2*runtime.GOMAXPROCS(0) + 1
	f := newFixture(t, n+1)
	a, b := sleeper(t), sleeper(t)
	if err := f.g.SetPagers(a.Process.Pid, b.Process.Pid); err != nil {
		t.Fatal(err)
	}
	killer := exec.Command("sh", "-c", fmt.Sprintf("sleep 0.5; kill -KILL %d; sleep 0.2; kill -KILL %d", a.Process.Pid, b.Process.Pid))
	if err := killer.Start(); err != nil {
		t.Fatal(err)
	}
	defer killer.Wait()
	got := make(chan byte, n)
	for i := range n {
		go func() { got <- f.mem[i*uffd.PageSize+7] }()
	}
	gc := make(chan struct{})
	go func() { runtime.GC(); close(gc) }()
	for range n {
		if v := <-got; v != 0 {
			t.Fatalf("a faulting read returned %d, want a zero page", v)
		}
	}
	<-gc
	st := f.g.Stats()
	if st.Orphanings != 1 || st.Zeroed < uint64(n) {
		t.Fatalf("Stats = %+v, want 1 orphaning and at least %d zeroed faults", st, n)
	}
	if lost, errs := f.word(words.Lost), f.word(words.Errors); lost < uint64(n) || errs < uint64(n) {
		t.Fatalf("shared page counts lost %d, errors %d; want at least %d each", lost, errs, n)
	}
}

// A fault a pager took and died before answering (begun != finished) is
// counted lost when the guard takes over, and the thread waiting on it is
// woken to fault again; the guard then stands down once given a live pager,
// which (here the test) reads the next fault itself.
func TestWakesLostFaultsAndStandsDown(t *testing.T) {
	f := newFixture(t, 4)
	a := sleeper(t)
	if err := f.g.SetPagers(a.Process.Pid); err != nil {
		t.Fatal(err)
	}
	// Play the dying pager: take the fault message and never answer it.
	runtime.LockOSThread() // keep this goroutine on a P while the faulter blocks
	defer runtime.UnlockOSThread()
	got := make(chan byte, 1)
	go func() { got <- f.mem[0] }()
	var msgs [1]uffd.Msg
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := f.u.Read(msgs[:])
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fault message: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	atomic.AddUint64((*uint64)(unsafe.Pointer(&f.shared[8*words.Begun])), 1)
	if err := a.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != 0 {
		t.Fatalf("read %d, want a zero page", v)
	}
	if f.word(words.Lost) < 1 || f.word(words.Begun) != f.word(words.Finished) {
		t.Fatalf("lost %d, begun %d, finished %d: the taken fault was not counted lost and settled",
			f.word(words.Lost), f.word(words.Begun), f.word(words.Finished))
	}

	// A live pager again: the guard leaves the next fault to it.
	b := sleeper(t)
	if err := f.g.SetPagers(b.Process.Pid); err != nil {
		t.Fatal(err)
	}
	zeroed := f.g.Stats().Zeroed
	go func() { got <- f.mem[uffd.PageSize] }()
	deadline = time.Now().Add(10 * time.Second)
	for {
		n, err := f.u.Read(msgs[:])
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) || f.g.Stats().Zeroed != zeroed {
			t.Fatalf("the guard answered a fault while a pager lives (zeroed %d -> %d, read: %v)", zeroed, f.g.Stats().Zeroed, err)
		}
		time.Sleep(time.Millisecond)
	}
	page := bytes.Repeat([]byte{9}, uffd.PageSize)
	if _, err := f.u.Copy(uffd.Addr(f.mem)+uffd.PageSize, uintptr(unsafe.Pointer(&page[0])), uffd.PageSize); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != 9 {
		t.Fatalf("read %d, want the page this test installed", v)
	}
}

// The guard leaves the client the grace period to replace dead pagers: a
// fault outstanding while the replacement is handed over within it is
// left to the new pager (here the test), and nothing is counted lost.
func TestGraceLeavesTimeForReplacement(t *testing.T) {
	f := newFixture(t, 2)
	f.g.Close()
	g, err := New(words, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.g = g
	if err := g.Add(1, f.u.Fd(), uffd.Addr(f.mem), uint64(len(f.mem)), f.shared); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	a := sleeper(t)
	if err := g.SetPagers(a.Process.Pid); err != nil {
		t.Fatal(err)
	}
	got := make(chan byte, 1)
	go func() { got <- f.mem[0] }()
	waitPending(t, f.u)
	a.Process.Kill()
	a.Wait()
	b := sleeper(t)
	if err := g.SetPagers(b.Process.Pid); err != nil {
		t.Fatal(err)
	}
	var msgs [1]uffd.Msg
	if n, err := f.u.Read(msgs[:]); err != nil || n != 1 {
		t.Fatalf("the queued fault is gone (n=%d, %v): the guard answered it within its grace", n, err)
	}
	page := bytes.Repeat([]byte{7}, uffd.PageSize)
	if _, err := f.u.Copy(uffd.Addr(f.mem), uintptr(unsafe.Pointer(&page[0])), uffd.PageSize); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != 7 {
		t.Fatalf("read %d, want 7", v)
	}
	if st := g.Stats(); st.Orphanings != 0 || f.word(words.Lost) != 0 {
		t.Fatalf("Stats %+v, lost %d: want nothing done", st, f.word(words.Lost))
	}
}

// waitPending waits up to 10 s for a fault message to be queued on u.
func waitPending(t *testing.T, u *uffd.FD) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ok, err := u.Pending(); err == nil && ok {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no fault message queued")
}

// SetPagers refuses a pid that does not exist and keeps the previous set.
func TestSetPagersRefusesUnknownPid(t *testing.T) {
	g, err := New(words, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if err := g.SetPagers(1<<22 + 12345); err == nil {
		t.Fatal("SetPagers of a pid that does not exist succeeded")
	}
	if err := g.SetPagers(1, 2, 3); err == nil {
		t.Fatal("SetPagers of three pids succeeded")
	}
}
