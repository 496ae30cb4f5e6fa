package engine

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// closer counts its Close calls.
type closer struct{ closed int }

func (c *closer) Close() error { c.closed++; return nil }

// What an owner bequeaths goes with the region to the next owner of the
// same key, and is closed exactly once wherever the region goes instead:
// not taken by that owner, unmapped by the pool (over its budget, Trim,
// Close), not pooled at all, or replaced by a later Bequeath.
func TestBequeath(t *testing.T) {
	// get takes a region of key f from p, touched so that it counts.
	get := func(t *testing.T, p *RegionPool) *Region {
		t.Helper()
		r, err := p.Get("f", 16*PageSize)
		if err != nil {
			t.Fatal(err)
		}
		r.Touch(4 * PageSize)
		return r
	}
	t.Run("inherited", func(t *testing.T) {
		p := NewRegionPool(1 << 30)
		defer p.Close()
		r := get(t, p)
		c := &closer{}
		r.OnFree(func() { r.Bequeath("k", c) })
		r.Free()
		n := get(t, p)
		if got := n.Inherit("k"); got != c || c.closed != 0 {
			t.Fatalf("the next owner inherited %v (closed %d times), want the bequest, open", got, c.closed)
		}
		if n.Inherit("k") != nil {
			t.Fatal("a bequest was inherited twice")
		}
		n.Free()
		if c.closed != 0 {
			t.Fatal("the region closed what its owner had inherited")
		}
	})
	t.Run("not taken", func(t *testing.T) {
		p := NewRegionPool(1 << 30)
		defer p.Close()
		r := get(t, p)
		c := &closer{}
		r.Bequeath("k", c)
		r.Free()
		get(t, p).Free()
		if c.closed != 1 {
			t.Fatalf("a bequest the next owner did not take: closed %d times, want 1", c.closed)
		}
	})
	t.Run("trimmed", func(t *testing.T) {
		p := NewRegionPool(1 << 30)
		defer p.Close()
		r := get(t, p)
		c := &closer{}
		r.Bequeath("k", c)
		r.Free()
		p.Trim(0)
		if c.closed != 1 {
			t.Fatalf("the bequest of a region the pool unmapped: closed %d times, want 1", c.closed)
		}
	})
	t.Run("pool closed", func(t *testing.T) {
		p := NewRegionPool(1 << 30)
		r := get(t, p)
		c := &closer{}
		r.Bequeath("k", c)
		r.Free()
		p.Close()
		if c.closed != 1 {
			t.Fatalf("the bequest of an idle region when the pool closed: closed %d times, want 1", c.closed)
		}
	})
	t.Run("over budget", func(t *testing.T) {
		p := NewRegionPool(PageSize)
		defer p.Close()
		r := get(t, p)
		c := &closer{}
		r.Bequeath("k", c)
		r.Free()
		if c.closed != 1 {
			t.Fatalf("the bequest of a region the pool would not keep: closed %d times, want 1", c.closed)
		}
	})
	t.Run("not pooled", func(t *testing.T) {
		r, err := NewRegion(16 * PageSize)
		if err != nil {
			t.Fatal(err)
		}
		if r.Pooled() {
			t.Fatal("a region without a pool reports Pooled")
		}
		c := &closer{}
		r.Bequeath("k", c)
		if c.closed != 1 {
			t.Fatalf("a bequest to a region that is not pooled: closed %d times, want 1", c.closed)
		}
		r.Free()
	})
	t.Run("replaced", func(t *testing.T) {
		p := NewRegionPool(1 << 30)
		defer p.Close()
		r := get(t, p)
		first, second := &closer{}, &closer{}
		r.Bequeath("k", first)
		r.Bequeath("k", second)
		if first.closed != 1 || second.closed != 0 {
			t.Fatalf("closed %d and %d times, want the replaced one once", first.closed, second.closed)
		}
		r.Free()
		n := get(t, p)
		defer n.Free()
		if n.Inherit("k") != second {
			t.Fatal("the next owner did not inherit the last bequest")
		}
	})
	t.Run("keys", func(t *testing.T) {
		p := NewRegionPool(1 << 30)
		defer p.Close()
		r := get(t, p)
		a, b := &closer{}, &closer{}
		r.Bequeath("a", a)
		r.Bequeath("b", b)
		r.Free()
		n := get(t, p)
		if n.Inherit("b") != b || n.Inherit("c") != nil {
			t.Fatal("a key did not inherit its own bequest")
		}
		n.Free()
		if a.closed != 1 || b.closed != 0 {
			t.Fatalf("closed %d and %d times, want the one not taken once, the taken one never", a.closed, b.closed)
		}
	})
}

func TestWhileReady(t *testing.T) {
	r, err := NewRegion(16 * PageSize)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Free()

	t.Run("concurrent", func(t *testing.T) {
		// instantiate waits for ready to start, and ready for instantiate:
		// run one after the other, they would never return.
		readyStarted, instantiated := make(chan struct{}), make(chan struct{})
		done := make(chan struct{})
		var v int
		var ierr, rerr error
		go func() {
			defer close(done)
			v, ierr, rerr = WhileReady(r, func() error {
				close(readyStarted)
				<-instantiated
				return nil
			}, func() (int, error) {
				<-readyStarted
				close(instantiated)
				return 7, nil
			}, false)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("ready and instantiate did not run at the same time")
		}
		if v != 7 || ierr != nil || rerr != nil {
			t.Fatalf("got %d, %v, %v; want 7, nil, nil", v, ierr, rerr)
		}
	})
	t.Run("errors", func(t *testing.T) {
		bad := errors.New("read failed")
		v, ierr, rerr := WhileReady(r, func() error { return bad }, func() (int, error) { return 1, nil }, false)
		if v != 1 || ierr != nil || !errors.Is(rerr, bad) {
			t.Fatalf("got %d, %v, %v; want 1, nil, %v", v, ierr, rerr, bad)
		}
	})
	t.Run("panic", func(t *testing.T) {
		for _, short := range []bool{false, true} {
			ran := false
			_, ierr, rerr := WhileReady(r, func() error { ran = true; return nil }, func() (int, error) { panic("boom") }, short)
			if ierr == nil || !strings.Contains(ierr.Error(), "boom") || rerr != nil || !ran {
				t.Fatalf("short %v: got %v, %v, ready ran %v; want the panic as instantiate's error and ready run", short, ierr, rerr, ran)
			}
		}
	})
	t.Run("no ready", func(t *testing.T) {
		v, ierr, rerr := WhileReady(r, nil, func() (int, error) { return 3, nil }, false)
		if v != 3 || ierr != nil || rerr != nil {
			t.Fatalf("got %d, %v, %v; want 3, nil, nil", v, ierr, rerr)
		}
	})
	t.Run("short", func(t *testing.T) {
		// A short instantiate runs first, in the caller's goroutine, and
		// ready runs after it even when it fails; Free waits for ready.
		var order []string
		bad := errors.New("reset failed")
		v, ierr, rerr := WhileReady(r, func() error {
			order = append(order, "ready")
			return nil
		}, func() (int, error) {
			order = append(order, "instantiate")
			return 5, bad
		}, true)
		if v != 5 || !errors.Is(ierr, bad) || rerr != nil || strings.Join(order, ",") != "instantiate,ready" {
			t.Fatalf("got %d, %v, %v, order %v; want 5, %v, nil, instantiate then ready", v, ierr, rerr, order, bad)
		}
	})
	t.Run("ready panics", func(t *testing.T) {
		// The panic reaches the caller, and the region's Free does not
		// wait for a ready that will never return.
		for _, short := range []bool{false, true} {
			r, err := NewRegion(16 * PageSize)
			if err != nil {
				t.Fatal(err)
			}
			func() {
				defer func() {
					if recover() == nil {
						t.Errorf("short %v: ready's panic did not reach the caller", short)
					}
				}()
				_, _, _ = WhileReady(r, func() error { panic("boom") }, func() (int, error) { return 1, nil }, short)
			}()
			freed := make(chan struct{})
			go func() { r.Free(); close(freed) }()
			select {
			case <-freed:
			case <-time.After(10 * time.Second):
				t.Fatalf("short %v: Free still waits for a ready that panicked", short)
			}
		}
	})
}

func TestFillDelaysFree(t *testing.T) {
	r, err := NewRegion(16 * PageSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Touch(PageSize); err != nil {
		t.Fatal(err)
	}
	filled := r.Fill()
	freed := make(chan struct{})
	go func() {
		r.Free()
		close(freed)
	}()
	// The writer is still at work: the region must stay mapped.
	select {
	case <-freed:
		t.Fatal("Free returned while a Fill was under way")
	case <-time.After(50 * time.Millisecond):
	}
	r.Bytes()[0] = 1 // would fault if Free had unmapped it
	filled()
	select {
	case <-freed:
	case <-time.After(10 * time.Second):
		t.Fatal("Free did not return once the Fill was done")
	}
}
