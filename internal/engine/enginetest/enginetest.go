// Package enginetest is the conformance suite every engine.Engine passes.
//
// Run boots, captures and restores real guests (examples/hello,
// examples/faulty, and the probes under internal/engine/testdata) and
// checks what the worker relies on: a restore answers as the boot did over
// many requests and across a grown heap; deadlines stop loops and sleeps in
// the host, in handlers, idle calls, restore hooks and initialisation;
// cancelling a call stops a running guest long before its deadline; traps,
// panics and memory bombs are guest faults that leave the module usable;
// the monotonic clock never runs backwards across a restore; a clone never
// repeats its snapshot's randomness; a snapshot taken on one engine
// restores on every other. The restore modes over files and the
// store, and concurrent faulting instances, are run per engine by
// internal/restore's tests.
package enginetest

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wabin/binary"
	"github.com/tetratelabs/wabin/leb128"
	wasm2 "github.com/tetratelabs/wabin/wasm"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/engine"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testwasm"
)

// Open starts the engine under test; Run closes it.
type Open func(t *testing.T) engine.Engine

// Cfg is the instance configuration of the suite's guests.
var Cfg = engine.InstanceConfig{MemoryLimit: 256 << 20, Timeout: 10 * time.Second}

// sleepCfg gives guests a short deadline; a guest sleeping in the host
// must be stopped by it.
var sleepCfg = engine.InstanceConfig{MemoryLimit: 128 << 20, Timeout: time.Second, InitTimeout: time.Second}

// Get is a GET request for path?query.
func Get(path, query string) *abi.Request {
	return &abi.Request{Method: http.MethodGet, Path: path, RawQuery: query, Header: http.Header{}}
}

// Run runs the suite against the engines open returns.
func Run(t *testing.T, open Open) {
	s := &suite{open: open}
	t.Run("BootInvoke", s.bootInvoke)
	t.Run("CaptureRestore", s.captureRestore)
	t.Run("Prime", s.prime)
	t.Run("RestoreWhen", s.restoreWhen)
	t.Run("CompileRejects", s.compileRejects)
	t.Run("DataSegments", s.dataSegments)
	t.Run("RestoreGrownSnapshot", s.restoreGrown)
	t.Run("Idle", s.idle)
	t.Run("Faults", s.faults)
	t.Run("OutOfBounds", s.outOfBounds)
	t.Run("PooledRestores", s.pooledRestores)
	t.Run("SleepInHandler", s.sleepInHandler)
	t.Run("SleepInIdle", s.sleepInIdle)
	t.Run("SleepInRestoreHook", s.sleepInRestoreHook)
	t.Run("SleepInInitialise", s.sleepInInitialise)
	t.Run("Cancel", s.cancel)
	t.Run("ClockAndRandomness", s.clockAndRandomness)
	t.Run("CrossEngine", s.crossEngine)
}

type suite struct{ open Open }

func (s *suite) engine(t *testing.T) engine.Engine {
	t.Helper()
	e := s.open(t)
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// compile compiles the guest at pkg (a path in the repository).
func (s *suite) compile(t *testing.T, pkg string) engine.Module {
	t.Helper()
	m, err := s.engine(t).Compile(context.Background(), testwasm.Build(t, pkg))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// boot boots an instance of m that the test closes.
func boot(t *testing.T, m engine.Module, cfg engine.InstanceConfig) engine.Instance {
	t.Helper()
	inst, _, err := m.Boot(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	return inst
}

// Region returns a new region of limit bytes holding a copy of mem at its
// start, as the eager restore mode leaves it.
func Region(t *testing.T, limit uint64, mem []byte) *engine.Region {
	t.Helper()
	region, err := engine.NewRegion(limit)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, region, mem)
	return region
}

// fill copies mem to the start of region, making that range accessible
// first as a restore mode does (Touch).
func fill(t *testing.T, region *engine.Region, mem []byte) {
	t.Helper()
	if err := region.Touch(uint64(len(mem))); err != nil {
		region.Free()
		t.Fatal(err)
	}
	copy(region.Bytes(), mem)
}

// restoreCopy restores m from a copy of st and mem in a new region, as the
// eager restore mode does; the test closes the instance.
func restoreCopy(t *testing.T, m engine.Module, cfg engine.InstanceConfig, st *engine.State, mem []byte) engine.Instance {
	t.Helper()
	region := Region(t, cfg.MemoryLimit, mem)
	inst, err := m.Restore(context.Background(), cfg, st, region)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inst.Close(context.Background()) })
	return inst
}

// body invokes path?query and returns the 200 answer's body.
func body(t *testing.T, inst engine.Instance, path, query string) string {
	t.Helper()
	resp, err := inst.Invoke(context.Background(), Get(path, query))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if resp.Status != http.StatusOK {
		t.Fatalf("%s: status %d %q", path, resp.Status, resp.Body)
	}
	return string(resp.Body)
}

func (s *suite) bootInvoke(t *testing.T) {
	inst := boot(t, s.compile(t, "examples/hello"), Cfg)
	for range 3 {
		if got := body(t, inst, "/x", "name=thaw"); got != "hello, thaw (GET /x)\n" {
			t.Fatalf("got %q", got)
		}
	}
}

// Restoring from a copy of memory and globals continues the instance: the
// same answers, no _initialize, state kept between requests.
func (s *suite) captureRestore(t *testing.T) {
	m := s.compile(t, "internal/engine/testdata/probe")
	inst := boot(t, m, Cfg)
	body(t, inst, "/count", "")
	body(t, inst, "/count", "")
	st, mem := inst.Capture()
	mem = bytes.Clone(mem)
	inst.Close(context.Background())
	for c := range 2 { // two clones of one snapshot: each continues from it
		r := restoreCopy(t, m, Cfg, st, mem)
		for i := range 100 {
			if got, want := body(t, r, "/count", ""), strconv.Itoa(3+i); got != want {
				t.Fatalf("clone %d, request %d: count %s, want %s", c, i, got, want)
			}
		}
	}
}

// The deploy snapshot's hook (engine.CaptureDeploy, thaw_before_snapshot)
// serves the requests the guest registered with thaw.Prime, before and
// after the collection that precedes the snapshot: a booted instance has
// not served it, one restored from the deploy snapshot has, twice, and a
// second deploy capture of that clone does not serve it again. A plain
// Capture (a policy checkpoint) never runs the hook.
func (s *suite) prime(t *testing.T) {
	m := s.compile(t, "internal/engine/testdata/probe")
	inst := boot(t, m, Cfg)
	if got := body(t, inst, "/primed", ""); got != "0" {
		t.Fatalf("booted instance: primed %s, want 0", got)
	}
	if st, _ := inst.Capture(); st == nil || body(t, inst, "/primed", "") != "0" {
		t.Fatal("a plain Capture served the prime")
	}
	st, mem, err := engine.CaptureDeploy(context.Background(), inst)
	if err != nil {
		t.Fatal(err)
	}
	mem = bytes.Clone(mem)
	inst.Close(context.Background())
	r := restoreCopy(t, m, Cfg, st, mem)
	if got := body(t, r, "/primed", ""); got != "2" {
		t.Fatalf("restored from the deploy snapshot: primed %s, want 2", got)
	}
	if _, _, err := engine.CaptureDeploy(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if got := body(t, r, "/primed", ""); got != "2" {
		t.Fatalf("after a second deploy capture: primed %s, want 2 (primes run in the first only)", got)
	}
}

// RestoreWhen instantiates while ready fills the region: no page of the
// region is touched before ready has run (it finds none mapped after
// letting instantiation go first), the instance continues from the memory
// ready wrote, and a ready that fails fails the restore with its error.
func (s *suite) restoreWhen(t *testing.T) {
	m := s.compile(t, "internal/engine/testdata/probe")
	inst := boot(t, m, Cfg)
	body(t, inst, "/count", "")
	st, mem := inst.Capture()
	mem = bytes.Clone(mem)
	inst.Close(context.Background())
	errFill := errors.New("fill failed")
	for _, fail := range []bool{false, true} {
		region, err := engine.NewRegion(Cfg.MemoryLimit)
		if err != nil {
			t.Fatal(err)
		}
		var touched int
		r, err := m.RestoreWhen(context.Background(), Cfg, st, region, func() error {
			time.Sleep(20 * time.Millisecond) // let instantiation run first
			present, err := region.Present(uint64(len(mem)))
			if err != nil {
				return err
			}
			for _, p := range present {
				if p {
					touched++
				}
			}
			if fail {
				return errFill
			}
			if err := region.Touch(uint64(len(mem))); err != nil {
				return err
			}
			copy(region.Bytes(), mem)
			return nil
		})
		if touched > 0 {
			t.Fatalf("%d pages of the region were touched before ready ran", touched)
		}
		if fail {
			if !errors.Is(err, errFill) {
				t.Fatalf("RestoreWhen with a failing ready: %v, want its error", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := body(t, r, "/count", ""); got != "2" {
			t.Fatalf("count %s after RestoreWhen, want 2", got)
		}
		r.Close(context.Background())
	}
}

func (s *suite) compileRejects(t *testing.T) {
	e := s.engine(t)
	for name, b := range map[string][]byte{
		"garbage":      []byte("nope"),
		"empty module": {0, 'a', 's', 'm', 1, 0, 0, 0},
	} {
		_, err := e.Compile(context.Background(), b)
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

// A Go reactor boots from its restore module (engine.Prepared.OneModule):
// the engine compiles one module, and writes the data segments itself. A
// data segment past the memory's minimum fails the boot with
// errdefs.ErrInvalid, as instantiation does, and nothing is written past
// the memory (whose pages there fault).
func (s *suite) dataSegments(t *testing.T) {
	wasm := testwasm.Build(t, "examples/hello")
	p, err := engine.Prepare(wasm)
	if err != nil {
		t.Fatal(err)
	}
	if !p.OneModule() || len(p.Info.Data) == 0 {
		t.Fatalf("a Go reactor: OneModule %v with %d data segments, want the restore module to boot it", p.OneModule(), len(p.Info.Data))
	}
	m, err := binary.DecodeModule(wasm, wasm2.CoreFeaturesV2)
	if err != nil {
		t.Fatal(err)
	}
	end := m.MemorySection.Min * engine.WasmPageSize
	m.DataSection = append(m.DataSection, &wasm2.DataSegment{
		OffsetExpression: &wasm2.ConstantExpression{Opcode: wasm2.OpcodeI32Const, Data: leb128.EncodeInt32(int32(end - 2))},
		Init:             []byte{1, 2, 3, 4},
	})
	bad := binary.EncodeModule(m)
	cm, err := s.engine(t).Compile(context.Background(), bad)
	if err != nil {
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Fatalf("compile with a data segment past the memory: %v, want ErrInvalid or success", err)
		}
		return
	}
	defer cm.Close(context.Background())
	if inst, _, err := cm.Boot(context.Background(), Cfg); !errors.Is(err, errdefs.ErrInvalid) {
		if inst != nil {
			inst.Close(context.Background())
		}
		t.Fatalf("boot with a data segment past the memory: %v, want ErrInvalid", err)
	}
}

// One restore module serves snapshots of every size: an instance whose heap
// grew between two captures restores from both, each at its own size, and
// both answer as the original did.
func (s *suite) restoreGrown(t *testing.T) {
	m := s.compile(t, "examples/hello")
	inst := boot(t, m, Cfg)
	capture := func() (*engine.State, []byte) {
		st, mem := inst.Capture()
		return st, bytes.Clone(mem)
	}
	st1, mem1 := capture()
	big := Get("/big", "name=big")
	big.Method, big.Body = http.MethodPost, make([]byte, 16<<20) // the SDK's request buffer grows the heap
	if _, err := inst.Invoke(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	st2, mem2 := capture()
	if st2.Pages <= st1.Pages {
		t.Fatalf("pages after init %d, after a 16 MiB request %d; want more", st1.Pages, st2.Pages)
	}
	for _, c := range []struct {
		st  *engine.State
		mem []byte
	}{{st1, mem1}, {st2, mem2}} {
		r := restoreCopy(t, m, Cfg, c.st, c.mem)
		if got, _ := r.Capture(); got.Pages != c.st.Pages {
			t.Errorf("restored memory is %d pages, snapshot %d", got.Pages, c.st.Pages)
		}
		if got := body(t, r, "/", "name=r"); got != "hello, r (GET /)\n" {
			t.Errorf("restored instance (%d pages) answered %q", c.st.Pages, got)
		}
	}
}

func (s *suite) idle(t *testing.T) {
	inst := boot(t, s.compile(t, "examples/faulty"), Cfg)
	ctx := context.Background()
	for range 2 {
		if ok, err := inst.Idle(ctx); !ok || err != nil {
			t.Fatalf("Idle = %v, %v; want the export to run", ok, err)
		}
	}
	if got := body(t, inst, "/idles", ""); got != "2\n" {
		t.Fatalf("the guest saw %q idle calls, want 2", got)
	}
	body(t, inst, "/idle-panic", "")
	if _, err := inst.Idle(ctx); err == nil || !strings.Contains(err.Error(), "idle hook") {
		t.Fatalf("a panicking idle hook returned %v", err)
	}
	if !inst.Dead() {
		t.Fatal("the instance serves on after its idle hook panicked")
	}
}

// Every way a guest fails is reported in its category, kills the instance,
// and leaves the module able to boot a new one that answers.
func (s *suite) faults(t *testing.T) {
	m := s.compile(t, "examples/faulty")
	cfg := engine.InstanceConfig{MemoryLimit: 64 << 20, Timeout: 2 * time.Second}
	for _, c := range []struct {
		path string
		want error
		text string // in the error's message
	}{
		{"/loop", errdefs.ErrTimeout, "timeout"},
		{"/panic", errdefs.ErrGuest, "deliberate panic"},
		{"/nil", errdefs.ErrGuest, "nil pointer"},
		{"/trap", errdefs.ErrGuest, ""},
		{"/oom", errdefs.ErrGuest, "memory cap"},
	} {
		inst := boot(t, m, cfg)
		_, err := inst.Invoke(context.Background(), Get(c.path, ""))
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: %v, want %v containing %q", c.path, err, c.want, c.text)
		}
		if !inst.Dead() {
			t.Errorf("%s: the instance serves on", c.path)
		}
	}
	if got := body(t, boot(t, m, cfg), "/ok", ""); got != "ok\n" {
		t.Fatalf("a new instance answered %q", got)
	}
}

// OutOfBounds: a guest's access past its memory's length traps, as a
// guest fault that kills the instance, however near the length (the first
// byte past it) or far (the last byte of the 32-bit address space); the
// last byte within it reads. wasmtime compiles such accesses without a
// bounds check and relies on the region's pages past the length faulting,
// so this holds on a booted instance and on one restored into a region
// from a pool whose previous owner's memory was larger, which had left
// those pages accessible.
func (s *suite) outOfBounds(t *testing.T) {
	ctx := context.Background()
	m := s.compile(t, "internal/engine/testdata/probe")
	warm := func(inst engine.Instance) engine.Instance {
		for range 3 {
			body(t, inst, "/count", "")
		}
		return inst
	}
	seed := warm(boot(t, m, Cfg))
	st, mem := seed.Capture()
	mem = bytes.Clone(mem)
	pool := engine.NewRegionPool(1 << 30)
	defer pool.Close()
	restored := func() engine.Instance {
		prev, err := pool.Get("probe", Cfg.MemoryLimit)
		if err != nil {
			t.Fatal(err)
		}
		if prev.Reallocate(uint64(len(mem))+16<<20) == nil { // grown past the snapshot
			t.Fatal("grow within the cap refused")
		}
		prev.Free()
		region, err := pool.Get("probe", Cfg.MemoryLimit)
		if err != nil {
			t.Fatal(err)
		}
		if !region.Reused() {
			t.Fatal("the pool did not lend the region back")
		}
		if _, err := region.Scrub(uint64(len(mem)), nil, nil); err != nil {
			t.Fatal(err)
		}
		fill(t, region, mem)
		inst, err := m.Restore(ctx, Cfg, st, region)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { inst.Close(ctx) })
		return warm(inst)
	}
	for _, c := range []struct {
		name string
		inst func() engine.Instance
		past func(size uint64) uint64 // the address past the length to read
	}{
		{"boot, first byte past", func() engine.Instance { return warm(boot(t, m, Cfg)) }, func(size uint64) uint64 { return size }},
		{"boot, last 32-bit byte", func() engine.Instance { return warm(boot(t, m, Cfg)) }, func(uint64) uint64 { return 1<<32 - 1 }},
		{"reused region, first byte past", restored, func(size uint64) uint64 { return size }},
	} {
		t.Run(c.name, func(t *testing.T) {
			inst := c.inst()
			size := func() uint64 {
				st, _ := inst.Capture()
				return uint64(st.Pages) * engine.WasmPageSize
			}
			body(t, inst, "/peek", "addr="+strconv.FormatUint(size()-1, 10))
			// The guest may grow its memory while it takes the request in:
			// an address that the grow made part of it reads, so try
			// again past the new length.
			for range 3 {
				sz := size()
				addr := c.past(sz)
				resp, err := inst.Invoke(ctx, Get("/peek", "addr="+strconv.FormatUint(addr, 10)))
				if err == nil && resp.Status == http.StatusOK && addr < size() {
					continue
				}
				if !errors.Is(err, errdefs.ErrGuest) || !inst.Dead() {
					t.Fatalf("read at %#x, past the memory's %#x bytes: %v (dead %v), want a guest fault", addr, sz, err, inst.Dead())
				}
				return
			}
			t.Fatal("the guest grew its memory on every request")
		})
	}
	if got := body(t, boot(t, m, Cfg), "/count", ""); got != "1" {
		t.Fatalf("a new instance counted %s, want 1", got)
	}
}

// Restores of one snapshot, one after another, each in the region the
// pool lends back (where an engine may keep the closed instance for the
// next restore, as the wasmtime engine does): every one continues from the
// snapshot, whatever the instance before it did: count on, grow its memory
// past the snapshot's, fault, or be closed from a failed restore.
func (s *suite) pooledRestores(t *testing.T) {
	ctx := context.Background()
	m := s.compile(t, "internal/engine/testdata/probe")
	seed := boot(t, m, Cfg)
	body(t, seed, "/count", "")
	st, mem := seed.Capture()
	mem = bytes.Clone(mem)
	pool := engine.NewRegionPool(1 << 30)
	defer pool.Close()
	restore := func(ready func() error) (engine.Instance, error) {
		region, err := pool.Get("probe", Cfg.MemoryLimit)
		if err != nil {
			t.Fatal(err)
		}
		if region.Reused() {
			if _, err := region.Scrub(uint64(len(mem)), nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		return m.RestoreWhen(ctx, Cfg, st, region, func() error {
			if err := region.Touch(uint64(len(mem))); err != nil {
				return err
			}
			copy(region.Bytes(), mem)
			if ready != nil {
				return ready()
			}
			return nil
		})
	}
	grow := Get("/count", "")
	grow.Method, grow.Body = http.MethodPost, make([]byte, 16<<20) // the SDK's request buffer grows the heap
	errFill := errors.New("fill failed")
	for _, c := range []struct {
		name    string
		disturb func(engine.Instance)
	}{
		{"counted on", func(inst engine.Instance) {
			for range 5 {
				body(t, inst, "/count", "")
			}
		}},
		{"after counting", func(engine.Instance) {}},
		{"grew its memory", func(inst engine.Instance) {
			if _, err := inst.Invoke(ctx, grow); err != nil {
				t.Fatal(err)
			}
			if got, _ := inst.Capture(); got.Pages <= st.Pages {
				t.Fatalf("memory of %d pages after a 16 MiB request, snapshot %d: want more", got.Pages, st.Pages)
			}
		}},
		{"after growing", func(engine.Instance) {}},
		{"faulted", func(inst engine.Instance) {
			if _, err := inst.Invoke(ctx, Get("/peek", "addr=4294967295")); !errors.Is(err, errdefs.ErrGuest) {
				t.Fatalf("read past the memory: %v, want a guest fault", err)
			}
		}},
		{"after the fault", func(engine.Instance) {}},
	} {
		inst, err := restore(nil)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := body(t, inst, "/count", ""); got != "2" {
			t.Fatalf("restore %s: count %s, want 2 (the snapshot's 1, plus one)", c.name, got)
		}
		c.disturb(inst)
		inst.Close(ctx)
	}
	if _, err := restore(func() error { return errFill }); !errors.Is(err, errFill) {
		t.Fatalf("restore with a failing fill: %v, want its error", err)
	}
	inst, err := restore(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := body(t, inst, "/count", ""); got != "2" {
		t.Fatalf("restore after a failed one: count %s, want 2", got)
	}
	inst.Close(ctx)
}

// stopped runs call and fails the test unless it returns a timeout error
// well before a sleep of 2^63 ns would have ended: 20 s is the slack for a
// slow machine, not a performance bound.
func stopped(t *testing.T, what string, call func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case err := <-done:
		if !errors.Is(err, errdefs.ErrTimeout) {
			t.Fatalf("%s: %v, want ErrTimeout", what, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: still sleeping 20 s after a 1 s deadline", what)
	}
}

// Cancelling a call's context stops the guest long before its deadline (a
// minute), whether it loops in wasm code or sleeps in the host: the call
// returns context.Canceled and the instance is dead. 20 s is the slack for
// a slow machine, not a performance bound.
func (s *suite) cancel(t *testing.T) {
	m := s.compile(t, "examples/faulty")
	cfg := engine.InstanceConfig{MemoryLimit: 64 << 20, Timeout: time.Minute}
	for _, path := range []string{"/loop", "/sleep"} {
		inst := boot(t, m, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := inst.Invoke(ctx, Get(path, "")); done <- err }()
		time.Sleep(500 * time.Millisecond) // let the guest reach its loop or sleep
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("%s: %v, want context.Canceled", path, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s: still running 20 s after its context was cancelled", path)
			<-done // the deadline stops it; closing a running instance is not allowed
			t.FailNow()
		}
		if !inst.Dead() {
			t.Fatalf("%s: the instance serves on after its call was cancelled", path)
		}
	}
	checkServes(t, m)
}

// checkServes boots a new instance of m and checks it answers: a guest
// killed in its sleep leaves the module usable.
func checkServes(t *testing.T, m engine.Module) {
	t.Helper()
	if got := body(t, boot(t, m, sleepCfg), "/ok", ""); got != "ok\n" {
		t.Fatalf("a new instance answered %q", got)
	}
}

// A handler sleeping in WASI poll_oneoff (Go's time.Sleep) is stopped at
// the invocation's deadline and the instance is dead.
func (s *suite) sleepInHandler(t *testing.T) {
	m := s.compile(t, "examples/faulty")
	inst := boot(t, m, sleepCfg)
	stopped(t, "handler", func() error { _, err := inst.Invoke(context.Background(), Get("/sleep", "")); return err })
	if !inst.Dead() {
		t.Fatal("the instance serves on after its deadline")
	}
	checkServes(t, m)
}

// The same in the idle call between requests.
func (s *suite) sleepInIdle(t *testing.T) {
	m := s.compile(t, "examples/faulty")
	inst := boot(t, m, sleepCfg)
	body(t, inst, "/sleep-idle", "")
	stopped(t, "idle", func() error { _, err := inst.Idle(context.Background()); return err })
	if !inst.Dead() {
		t.Fatal("the instance serves on after its idle call overran")
	}
	checkServes(t, m)
}

// The same in the restore hook (thaw_on_restore): Restore fails with a
// timeout and releases the region.
func (s *suite) sleepInRestoreHook(t *testing.T) {
	ctx := context.Background()
	m := s.compile(t, "examples/faulty")
	inst := boot(t, m, sleepCfg)
	body(t, inst, "/sleep-restore", "")
	st, mem := inst.Capture()
	region := Region(t, sleepCfg.MemoryLimit, mem)
	var freed bool
	region.OnFree(func() { freed = true })
	stopped(t, "restore hook", func() error {
		r, err := m.Restore(ctx, sleepCfg, st, region)
		if err == nil {
			r.Close(ctx)
		}
		return err
	})
	if !freed {
		t.Fatal("the failed restore kept its region")
	}
	checkServes(t, m)
}

// The same in _initialize, under the init timeout.
func (s *suite) sleepInInitialise(t *testing.T) {
	m := s.compile(t, "internal/engine/testdata/sleepinit")
	stopped(t, "_initialize", func() error {
		inst, _, err := m.Boot(context.Background(), sleepCfg)
		if err == nil {
			inst.Close(context.Background())
		}
		return err
	})
}

// The guest's monotonic clock continues from the snapshot (never backwards,
// even when the snapshot's clock ran far longer than the restoring
// process's), and every clone draws randomness of its own.
func (s *suite) clockAndRandomness(t *testing.T) {
	m := s.compile(t, "internal/engine/testdata/probe")
	inst := boot(t, m, Cfg)
	seen := map[string]bool{body(t, inst, "/rand", ""): true}
	before, err := strconv.ParseInt(body(t, inst, "/mono", ""), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	st, mem := inst.Capture()
	mem = bytes.Clone(mem)
	// A snapshot whose clock read an hour: the restored guest must not see
	// time run backwards to this process's idea of "now".
	st.Nanotime += int64(time.Hour)
	for range 3 {
		r := restoreCopy(t, m, Cfg, st, mem)
		after, err := strconv.ParseInt(body(t, r, "/mono", ""), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if after < before+int64(time.Hour) {
			t.Fatalf("monotonic time since init: %d before the snapshot, %d after a restore of a clock an hour on", before, after)
		}
		x := body(t, r, "/rand", "")
		if seen[x] {
			t.Fatalf("a clone repeated randomness %s", x)
		}
		seen[x] = true
	}
}

// A snapshot is wasm-level state: one taken on this engine restores on
// every registered engine, and answers the same.
func (s *suite) crossEngine(t *testing.T) {
	m := s.compile(t, "internal/engine/testdata/probe")
	inst := boot(t, m, Cfg)
	body(t, inst, "/count", "")
	st, mem := inst.Capture()
	mem = bytes.Clone(mem)
	wasm := testwasm.Build(t, "internal/engine/testdata/probe")
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) {
			e, err := engine.Open(context.Background(), name, engine.Config{CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Close(context.Background()) })
			om, err := e.Compile(context.Background(), wasm)
			if err != nil {
				t.Fatal(err)
			}
			if got := body(t, restoreCopy(t, om, Cfg, st, mem), "/count", ""); got != "2" {
				t.Fatalf("restored on %s: count %s, want 2", name, got)
			}
		})
	}
}
