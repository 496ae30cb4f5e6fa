package engine

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testwasm"
)

func newEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := New(context.Background(), Config{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

var cfg = InstanceConfig{MemoryLimit: 256 << 20, Timeout: 10 * time.Second}

func get(path, query string) *abi.Request {
	return &abi.Request{Method: http.MethodGet, Path: path, RawQuery: query, Header: http.Header{}}
}

// bootHello compiles examples/hello and boots an instance of it; the caller
// closes the instance.
func bootHello(t *testing.T) (*Module, *Instance) {
	t.Helper()
	ctx := context.Background()
	m, err := newEngine(t).Compile(ctx, testwasm.Build(t, "examples/hello"))
	if err != nil {
		t.Fatal(err)
	}
	inst, _, err := m.Boot(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, inst
}

func TestBootInvoke(t *testing.T) {
	ctx := context.Background()
	_, inst := bootHello(t)
	defer inst.Close(ctx)
	for i := 0; i < 3; i++ {
		resp, err := inst.Invoke(ctx, get("/x", "name=thaw"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Status != 200 || string(resp.Body) != "hello, thaw (GET /x)\n" {
			t.Fatalf("got %d %q", resp.Status, resp.Body)
		}
	}
}

// Restoring from a copy of memory and globals continues the instance: the
// same answers, no _initialize.
func TestCaptureRestore(t *testing.T) {
	ctx := context.Background()
	m, inst := bootHello(t)
	st, mem := inst.Capture()
	region, err := NewRegion(cfg.MemoryLimit)
	if err != nil {
		t.Fatal(err)
	}
	copy(region.Bytes(), mem)
	inst.Close(ctx)
	r, err := m.Restore(ctx, cfg, st, region)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	for i := 0; i < 100; i++ {
		resp, err := r.Invoke(ctx, get("/", "name=r"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if string(resp.Body) != "hello, r (GET /)\n" {
			t.Fatalf("restored instance answered %q", resp.Body)
		}
	}
}

func TestCompileRejects(t *testing.T) {
	e := newEngine(t)
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

func TestRegionCap(t *testing.T) {
	r, err := NewRegion(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Free()
	if b := r.Reallocate(2 << 20); b != nil || !r.grewPastLimit() {
		t.Fatal("a grow past the cap was allowed")
	}
	if b := r.Reallocate(1 << 20); len(b) != 1<<20 {
		t.Fatal("a grow within the cap failed")
	}
}

// One restore module serves snapshots of every size: an instance whose heap
// grew between two captures restores from both, each at its own size, and
// both answer as the original did.
func TestRestoreGrownSnapshot(t *testing.T) {
	ctx := context.Background()
	m, inst := bootHello(t)
	defer inst.Close(ctx)
	capture := func() (*State, []byte) {
		st, mem := inst.Capture()
		return st, append([]byte(nil), mem...)
	}
	st1, mem1 := capture()
	big := get("/big", "name=big")
	big.Method, big.Body = http.MethodPost, make([]byte, 16<<20) // the SDK's request buffer grows the heap
	if _, err := inst.Invoke(ctx, big); err != nil {
		t.Fatal(err)
	}
	st2, mem2 := capture()
	if st2.Pages <= st1.Pages || st1.Pages <= m.info.MemoryMinPages {
		t.Fatalf("pages: boot minimum %d, after init %d, after a 16 MiB request %d; want increasing", m.info.MemoryMinPages, st1.Pages, st2.Pages)
	}
	var compiled any
	for _, c := range []struct {
		st  *State
		mem []byte
	}{{st1, mem1}, {st2, mem2}} {
		region, err := NewRegion(cfg.MemoryLimit)
		if err != nil {
			t.Fatal(err)
		}
		copy(region.Bytes(), c.mem)
		r, err := m.Restore(ctx, cfg, c.st, region)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.mod.Memory().Size(); got != c.st.Pages*WasmPageSize {
			t.Errorf("restored memory is %d bytes, snapshot %d pages", got, c.st.Pages)
		}
		resp, err := r.Invoke(ctx, get("/", "name=r"))
		if err != nil || string(resp.Body) != "hello, r (GET /)\n" {
			t.Errorf("restored instance (%d pages) answered %v, %v", c.st.Pages, resp, err)
		}
		r.Close(ctx)
		if compiled == nil {
			compiled = m.restore
		} else if compiled != m.restore {
			t.Error("a second snapshot size compiled a second restore module")
		}
	}
}

func TestIdle(t *testing.T) {
	ctx := context.Background()
	m, err := newEngine(t).Compile(ctx, testwasm.Build(t, "examples/faulty"))
	if err != nil {
		t.Fatal(err)
	}
	inst, _, err := m.Boot(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	body := func(path string) string {
		t.Helper()
		resp, err := inst.Invoke(ctx, get(path, ""))
		if err != nil || resp.Status != http.StatusOK {
			t.Fatalf("%s: %v %+v", path, err, resp)
		}
		return string(resp.Body)
	}
	for range 2 {
		if ok, err := inst.Idle(ctx); !ok || err != nil {
			t.Fatalf("Idle = %v, %v; want the export to run", ok, err)
		}
	}
	if got := body("/idles"); got != "2\n" {
		t.Fatalf("the guest saw %q idle calls, want 2", got)
	}
	body("/idle-panic")
	if _, err := inst.Idle(ctx); err == nil || !strings.Contains(err.Error(), "idle hook") {
		t.Fatalf("a panicking idle hook returned %v", err)
	}
	if !inst.Dead() {
		t.Fatal("the instance serves on after its idle hook panicked")
	}
}
