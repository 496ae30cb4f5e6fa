//go:build cgo

package wasmtime

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/engine"
)

// A closed instance stays with its pooled region and the next restore of
// the same module there reuses it (the conformance suite's PooledRestores
// checks that the answers are a new instance's): only one that never
// failed, whose memory is no larger than the snapshot's, in a region that
// goes back to a pool, of the same Module.
func TestKeptInstanceReused(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t)
	m := compile(t, e, "internal/engine/testdata/probe")
	if !m.KeepsInstances() {
		t.Fatal("the probe, a Go reactor, is not Resettable: its instances are not kept")
	}
	seed := boot(t, m, cfg)
	st, mem := seed.Capture()
	mem = bytes.Clone(mem)
	pool := engine.NewRegionPool(1 << 30)
	defer pool.Close()
	restore := func(mod *Module, pooled bool) *Instance {
		t.Helper()
		region, err := engine.NewRegion(cfg.MemoryLimit)
		if pooled {
			region, err = pool.Get("probe", cfg.MemoryLimit)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := region.Touch(uint64(len(mem))); err != nil {
			t.Fatal(err)
		}
		copy(region.Bytes(), mem)
		inst, err := mod.Restore(ctx, cfg, st, region)
		if err != nil {
			t.Fatal(err)
		}
		return inst.(*Instance)
	}
	grow := get("/count", "")
	grow.Method, grow.Body = http.MethodPost, make([]byte, 16<<20)
	for _, c := range []struct {
		name    string
		use     func(*Instance)
		other   bool // the next restore is of another Module of the same wasm
		notPool bool // the instance's region is not pooled
		reused  bool
	}{
		{"served", func(i *Instance) { body(t, i, "/count") }, false, false, true},
		{"served again", func(i *Instance) { body(t, i, "/count") }, false, false, true},
		{"closed a descriptor", func(i *Instance) {
			if got := body(t, i, "/stdin"); got != "ok" {
				t.Fatalf("descriptor 0 of a restored instance: %s", got)
			}
			body(t, i, "/close-stdin")
			if got := body(t, i, "/stdin"); got == "ok" {
				t.Fatal("descriptor 0 is still open after /close-stdin")
			}
		}, false, false, true},
		{"faulted", func(i *Instance) { _, _ = i.Invoke(ctx, get("/peek", "addr=4294967295")) }, false, false, false},
		{"grew", func(i *Instance) {
			if _, err := i.Invoke(ctx, grow); err != nil {
				t.Fatal(err)
			}
		}, false, false, false},
		{"another module", func(i *Instance) { body(t, i, "/count") }, true, false, false},
		{"region not pooled", func(i *Instance) { body(t, i, "/count") }, false, true, false},
	} {
		first := restore(m, !c.notPool)
		c.use(first)
		first.Close(ctx)
		next := m
		if c.other {
			next = compile(t, e, "internal/engine/testdata/probe")
		}
		second := restore(next, true)
		if got := second == first; got != c.reused {
			t.Errorf("%s: reused %v, want %v", c.name, got, c.reused)
		}
		if got := body(t, second, "/count"); got != "1" {
			t.Errorf("%s: the next restore counted %s, want 1", c.name, got)
		}
		if got := body(t, second, "/stdin"); got != "ok" {
			t.Errorf("%s: the next restore's descriptor 0: %s (a WASI context carried over)", c.name, got)
		}
		second.Close(ctx)
		// Leave the pool empty of kept instances for the next case.
		r, err := pool.Get("probe", cfg.MemoryLimit)
		if err != nil {
			t.Fatal(err)
		}
		r.Free()
		pool.Trim(0)
	}
	// An instance that cannot be reused is closed in the background.
	for deadline := time.Now().Add(10 * time.Second); e.live.Load() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d instances live after the pool was emptied, want 1 (the seed)", e.live.Load())
		}
	}
}

// body invokes path on inst and returns the body of its 200 answer.
func body(t *testing.T, inst *Instance, path string) string {
	t.Helper()
	resp, err := inst.Invoke(context.Background(), get(path, ""))
	if err != nil || resp.Status != http.StatusOK {
		t.Fatalf("%s: %v %+v", path, err, resp)
	}
	return string(resp.Body)
}

// A restore into a pooled region that an earlier owner opened past the
// snapshot's memory closes those pages again (Region.Fit) after the
// memory's ready function has run, which scrubs the region as a reused
// region's restore does and so reopens them: for a new instance
// (instantiated beside ready) and for a kept one (reset before ready).
func TestRestoreClosesPastMemory(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t)
	m := compile(t, e, "internal/engine/testdata/probe")
	seed := boot(t, m, cfg)
	st, mem := seed.Capture()
	mem = bytes.Clone(mem)
	pool := engine.NewRegionPool(1 << 30)
	defer pool.Close()
	region, err := pool.Get("probe", cfg.MemoryLimit)
	if err != nil {
		t.Fatal(err)
	}
	// An earlier owner's memory, 16 pages larger than the snapshot's.
	past := region.Reallocate(uint64(len(mem)) + 16*engine.WasmPageSize)
	if past == nil {
		t.Fatal("the region refused to grow")
	}
	for i := range past {
		past[i] = 0xA5
	}
	region.Free()
	var first engine.Instance
	for _, kept := range []bool{false, true} {
		region, err := pool.Get("probe", cfg.MemoryLimit)
		if err != nil {
			t.Fatal(err)
		}
		if err := region.Touch(uint64(len(mem))); err != nil {
			t.Fatal(err)
		}
		ready := func() error {
			if _, err := region.Scrub(uint64(len(mem)), nil, nil); err != nil {
				return err
			}
			copy(region.Bytes(), mem)
			return nil
		}
		inst, err := m.RestoreWhen(ctx, cfg, st, region, ready)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = inst
		} else if inst != first {
			t.Fatal("the second restore did not reuse the kept instance")
		}
		if got, want := region.Accessible(), uint64(len(mem)); got != want {
			t.Errorf("kept instance %v: %d bytes of the region accessible after the restore, want the memory's %d", kept, got, want)
		}
		if got := body(t, inst.(*Instance), "/count"); got != "1" {
			t.Errorf("kept instance %v: counted %s, want 1", kept, got)
		}
		inst.Close(ctx) // kept with the region for the next round
	}
}
