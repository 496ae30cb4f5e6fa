package abi_test

// These tests prove the ABI end to end without thaw's engine: each example
// is built with the Go toolchain, instantiated in wazero as a reactor, and
// driven through thaw_alloc / thaw_handle exactly as docs/abi.md says.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/thaw-run/thaw/internal/abi"
	"github.com/thaw-run/thaw/internal/errdefs"
	"github.com/thaw-run/thaw/internal/testwasm"
	"golang.org/x/sys/unix"
)

// limitPages caps guest memory in these tests: enough for initheavy's
// index, small enough that /oom fails quickly.
const limitPages = 4096 // 256 MiB

// options selects a wazero configuration.
type options struct {
	// fast leaves out WithCloseOnContextDone: guest code runs several
	// times faster, but nothing can stop an endless loop.
	fast bool
}

var (
	rtMu     sync.Mutex
	runtimes = map[options]wazero.Runtime{}
	compiled = map[string]wazero.CompiledModule{}
	seq      atomic.Int64
)

func runtime(t testing.TB, o options) wazero.Runtime {
	t.Helper()
	rtMu.Lock()
	defer rtMu.Unlock()
	if rt, ok := runtimes[o]; ok {
		return rt
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().
		WithCloseOnContextDone(!o.fast).WithMemoryLimitPages(limitPages))
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		t.Fatal(err)
	}
	runtimes[o] = rt
	return rt
}

// compile builds and compiles an example once per test process.
func compile(t testing.TB, pkg string, o options) wazero.CompiledModule {
	t.Helper()
	if testing.Short() {
		t.Skip("builds wasm modules")
	}
	r := runtime(t, o)
	key := fmt.Sprintf("%s %+v", pkg, o)
	rtMu.Lock()
	defer rtMu.Unlock()
	if cm, ok := compiled[key]; ok {
		return cm
	}
	cm, err := r.CompileModule(context.Background(), testwasm.Build(t, pkg))
	if err != nil {
		t.Fatalf("compile %s: %v", pkg, err)
	}
	compiled[key] = cm
	return cm
}

// guest is one instance driven through the ABI.
type guest struct {
	mod           api.Module
	alloc, handle api.Function
	stderr        *bytes.Buffer
}

// nanoBase is where the guests' monotonic clock starts, far from zero so a
// test can tell the raw WASI clock from a process-relative one.
const nanoBase = int64(1) << 50

func start(t testing.TB, pkg string) *guest { return startWith(t, pkg, options{}) }

func startWith(t testing.TB, pkg string, o options) *guest {
	t.Helper()
	cm := compile(t, pkg, o)
	stderr := &bytes.Buffer{}
	t0 := time.Now()
	mc := wazero.NewModuleConfig().WithName(fmt.Sprintf("%s-%d", pkg, seq.Add(1))).
		WithStartFunctions("_initialize").WithStderr(stderr).WithRandSource(rand.Reader).
		WithSysWalltime().WithNanotime(func() int64 { return nanoBase + int64(time.Since(t0)) }, 1)
	ctx := experimental.WithMemoryAllocator(context.Background(), experimental.MemoryAllocatorFunc(mmapMemory))
	mod, err := runtime(t, o).InstantiateModule(ctx, cm, mc)
	if err != nil {
		t.Fatalf("instantiate %s: %v\n%s", pkg, err, stderr)
	}
	t.Cleanup(func() { mod.Close(context.Background()) })
	return &guest{mod: mod, alloc: mod.ExportedFunction(abi.ExportAlloc), handle: mod.ExportedFunction(abi.ExportHandle), stderr: stderr}
}

// mmapMemory backs guest memory with one reservation of the maximum size,
// as thaw's engine does, so growing it never copies: with wazero's default
// slice-backed memory, growing a 100 MiB heap step by step copies it over
// and over and dominates the timings and the /oom test.
func mmapMemory(_, max uint64) experimental.LinearMemory {
	b, err := unix.Mmap(-1, 0, int(max), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		panic(fmt.Sprintf("reserve %d bytes of guest memory: %v", max, err))
	}
	return &mmapped{b: b}
}

type mmapped struct{ b []byte }

func (m *mmapped) Reallocate(size uint64) []byte {
	if size > uint64(len(m.b)) {
		return nil
	}
	return m.b[:size]
}

func (m *mmapped) Free() { unix.Munmap(m.b) }

// invokeRaw writes in to the guest's request buffer and calls thaw_handle,
// returning the guest's response bytes (copied) or the call's error.
func (g *guest) invokeRaw(ctx context.Context, in []byte) ([]byte, error) {
	res, err := g.alloc.Call(ctx, uint64(len(in)))
	if err != nil {
		return nil, fmt.Errorf("thaw_alloc: %w", err)
	}
	ptr := uint32(res[0])
	if !g.mod.Memory().Write(ptr, in) {
		return nil, fmt.Errorf("request buffer [%d,+%d) outside memory", ptr, len(in))
	}
	res, err = g.handle.Call(ctx, uint64(ptr), uint64(len(in)))
	if err != nil {
		return nil, fmt.Errorf("thaw_handle: %w", err)
	}
	out, ok := g.mod.Memory().Read(uint32(res[0]>>32), uint32(res[0]))
	if !ok {
		return nil, fmt.Errorf("response [%d,+%d) outside memory", res[0]>>32, uint32(res[0]))
	}
	return bytes.Clone(out), nil
}

func (g *guest) invoke(ctx context.Context, req *abi.Request) (*abi.Response, error) {
	out, err := g.invokeRaw(ctx, req.AppendTo(nil))
	if err != nil {
		return nil, err
	}
	return abi.DecodeResponse(out)
}

func (g *guest) get(t *testing.T, target string) *abi.Response {
	t.Helper()
	path, query, _ := strings.Cut(target, "?")
	resp, err := g.invoke(context.Background(), &abi.Request{Method: "GET", Path: path, RawQuery: query, Header: http.Header{}})
	if err != nil {
		t.Fatalf("GET %s: %v\nstderr: %s", target, err, g.stderr)
	}
	return resp
}

var examples = []string{"examples/hello", "examples/jsontransform", "examples/initheavy", "examples/faulty"}

// Every example exports the reactor entry point, its memory and the four
// ABI functions with the documented signatures, and speaks version 1.
func TestExampleExports(t *testing.T) {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	want := map[string][2][]api.ValueType{
		"_initialize":       {nil, nil},
		abi.ExportVersion:   {nil, {i32}},
		abi.ExportAlloc:     {{i32}, {i32}},
		abi.ExportHandle:    {{i32, i32}, {i64}},
		abi.ExportOnRestore: {nil, nil},
	}
	for _, pkg := range examples {
		t.Run(pkg, func(t *testing.T) {
			cm := compile(t, pkg, options{})
			fns := cm.ExportedFunctions()
			for name, sig := range want {
				fn, ok := fns[name]
				if !ok {
					t.Errorf("missing export %s", name)
					continue
				}
				if fmt.Sprint(fn.ParamTypes()) != fmt.Sprint(sig[0]) || fmt.Sprint(fn.ResultTypes()) != fmt.Sprint(sig[1]) {
					t.Errorf("%s: signature %v -> %v, want %v -> %v", name, fn.ParamTypes(), fn.ResultTypes(), sig[0], sig[1])
				}
			}
			if _, ok := cm.ExportedMemories()["memory"]; !ok {
				t.Error("memory is not exported")
			}
			if pkg != "examples/hello" {
				return // one instance is enough to check the version
			}
			res, err := start(t, pkg).mod.ExportedFunction(abi.ExportVersion).Call(context.Background())
			if err != nil || res[0] != abi.Version {
				t.Fatalf("thaw_abi_version = %v, %v; want %d", res, err, abi.Version)
			}
		})
	}
}

func TestHello(t *testing.T) {
	g := start(t, "examples/hello")
	cases := []struct {
		req  *abi.Request
		want string
	}{
		{&abi.Request{Method: "GET", Path: "/", Header: http.Header{}}, "hello, world (GET /)\n"},
		{&abi.Request{Method: "GET", Path: "/", RawQuery: "name=thaw"}, "hello, thaw (GET /)\n"},
		{&abi.Request{Method: "DELETE", Path: "/a%2Fb", RawQuery: "name=%C3%A9t%C3%A9", Body: []byte("ignored")}, "hello, été (DELETE /a/b)\n"},
	}
	for _, c := range cases {
		t.Run(c.req.Method+" "+c.req.Path+"?"+c.req.RawQuery, func(t *testing.T) {
			resp, err := g.invoke(context.Background(), c.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != 200 || string(resp.Body) != c.want || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Fatalf("got %d %v %q, want 200 %q", resp.Status, resp.Header, resp.Body, c.want)
			}
		})
	}
}

// The request buffer is reused across calls of any size, and the guest
// refuses a request that is not where thaw_alloc put its buffer.
func TestRequestBuffer(t *testing.T) {
	g := start(t, "examples/jsontransform")
	ctx := context.Background()
	for _, n := range []int{10, 3 << 20, 100, 0, 5 << 20, 1} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			doc := `"` + strings.Repeat("a", n) + `"`
			resp, err := g.invoke(ctx, &abi.Request{Method: "POST", Path: "/", Body: []byte(doc)})
			if err != nil {
				t.Fatal(err)
			}
			var r struct{ Doc string }
			if err := json.Unmarshal(resp.Body, &r); err != nil || r.Doc != strings.Repeat("A", n) {
				t.Fatalf("status %d, doc of %d bytes, err %v", resp.Status, len(r.Doc), err)
			}
		})
	}
	t.Run("pointer not from thaw_alloc", func(t *testing.T) {
		in := (&abi.Request{Method: "GET", Path: "/"}).AppendTo(nil)
		res, err := g.alloc.Call(ctx, uint64(len(in)))
		if err != nil {
			t.Fatal(err)
		}
		res, err = g.handle.Call(ctx, res[0]+8, uint64(len(in)))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := g.mod.Memory().Read(uint32(res[0]>>32), uint32(res[0]))
		resp, err := abi.DecodeResponse(out)
		if err != nil || resp.Status != 400 {
			t.Fatalf("got %+v, %v; want a 400", resp, err)
		}
	})
	t.Run("malformed request", func(t *testing.T) {
		out, err := g.invokeRaw(ctx, []byte{1, 0xff, 0xff, 0, 0})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := abi.DecodeResponse(out)
		if err != nil || resp.Status != 400 || !strings.Contains(string(resp.Body), "malformed") {
			t.Fatalf("got %+v, %v; want a 400 naming the malformed message", resp, err)
		}
	})
	// After all that, the instance still serves normally.
	resp, err := g.invoke(ctx, &abi.Request{Method: "POST", Path: "/", Body: []byte(`{"b":[1,2],"a":"x"}`)})
	if err != nil || string(resp.Body) != `{"doc":{"a":"X","b":[1,2]},"numbers":2,"sum":3,"strings":1,"depth":3}`+"\n" {
		t.Fatalf("got %q, %v", resp.Body, err)
	}
}

func TestJSONTransformBadInput(t *testing.T) {
	g := start(t, "examples/jsontransform")
	for body, want := range map[string]int{`{"a":`: 400, ``: 400, `[1,2]`: 200} {
		resp, err := g.invoke(context.Background(), &abi.Request{Method: "POST", Path: "/", Body: []byte(body)})
		if err != nil || resp.Status != want {
			t.Errorf("%q: %+v, %v; want %d", body, resp, err, want)
		}
	}
}

func TestInitHeavy(t *testing.T) {
	t0 := time.Now()
	a := start(t, "examples/initheavy")
	t.Logf("initheavy: instantiate + _initialize took %v (Go init %s ns), %d MiB of linear memory",
		time.Since(t0), a.get(t, "/stats").Header.Get("Thaw-Init-Ns"), a.mod.Memory().Size()>>20)
	b := start(t, "examples/initheavy")

	var st struct {
		StateBytes int `json:"state_bytes"`
	}
	if err := json.Unmarshal(a.get(t, "/stats").Body, &st); err != nil || st.StateBytes < 90<<20 {
		t.Fatalf("/stats: %+v, %v", st, err)
	}
	// Two boots build the same index: equal queries, equal answers.
	for _, q := range []string{"/?q=alpha", "/?q=zeta", "/?q=alpha+beta", "/stats"} {
		ra, rb := a.get(t, q), b.get(t, q)
		if ra.Status != 200 || !bytes.Equal(ra.Body, rb.Body) {
			t.Errorf("%s: %d %q vs %q", q, ra.Status, ra.Body, rb.Body)
		}
	}
	var hits struct{ Matches int }
	if err := json.Unmarshal(a.get(t, "/?q=alpha").Body, &hits); err != nil || hits.Matches == 0 {
		t.Fatalf("alpha matched nothing: %+v %v", hits, err)
	}

	// The monotonic reading is the raw WASI clock the host provides.
	var tm struct {
		Unix int64 `json:"unix_ns"`
		Mono int64 `json:"mono_ns"`
	}
	if err := json.Unmarshal(a.get(t, "/time").Body, &tm); err != nil || tm.Mono < nanoBase {
		t.Fatalf("/time: %+v, %v; want mono_ns >= %d", tm, err, nanoBase)
	}

	// thaw_on_restore runs the reseed hook; the instance keeps serving.
	before := a.get(t, "/rand").Body
	if _, err := a.mod.ExportedFunction(abi.ExportOnRestore).Call(context.Background()); err != nil {
		t.Fatalf("thaw_on_restore: %v", err)
	}
	if after := a.get(t, "/rand").Body; bytes.Equal(before, after) {
		t.Fatal("/rand repeated itself")
	}
}

// Each way of failing reaches the host as the error the engine classifies:
// a panic as a *abi.PanicError (ErrGuest), a trap as a wazero error, an
// exit as a sys.ExitError, an endless loop as the deadline's exit code.
func TestFaultyGuest(t *testing.T) {
	cases := []struct {
		path   string
		check  func(err error) bool
		want   string
		stderr string // what the Go runtime must have printed
	}{
		{"/panic", isPanic("deliberate panic"), "PanicError", ""},
		{"/nil", isPanic("nil pointer dereference"), "PanicError", ""},
		{"/trap", isTrap, "an unreachable trap", ""},
		{"/loop", exitCode(sys.ExitCodeDeadlineExceeded), "deadline exit", ""},
		{"/exit", exitCode(3), "exit code 3", ""},
		// Go runtime fatal errors end in runtime.abort, an unreachable
		// trap, after printing the reason.
		{"/oom", isTrap, "an unreachable trap", "out of memory"},
		{"/block", isTrap, "an unreachable trap", "all goroutines are asleep - deadlock!"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			g := start(t, "examples/faulty")
			if resp := g.get(t, "/ok"); resp.Status != 200 || string(resp.Body) != "ok\n" {
				t.Fatalf("/ok: %d %q", resp.Status, resp.Body)
			}
			// /loop needs a deadline to end; the others must end on their
			// own, which on a loaded 2-core machine can take several
			// seconds (the memory bomb grows memory to the cap first).
			timeout := 30 * time.Second
			if c.path == "/loop" {
				timeout = time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			_, err := g.invoke(ctx, &abi.Request{Method: "GET", Path: c.path})
			if err == nil || !c.check(err) {
				t.Fatalf("got %v, want %s\nstderr: %s", err, c.want, tail(g.stderr.String()))
			}
			if !strings.Contains(g.stderr.String(), c.stderr) {
				t.Fatalf("stderr lacks %q:\n%s", c.stderr, tail(g.stderr.String()))
			}
		})
	}
}

func isPanic(msg string) func(error) bool {
	return func(err error) bool {
		var pe *abi.PanicError
		return errors.As(err, &pe) && strings.Contains(pe.Message, msg) && pe.Stack != "" &&
			errors.Is(err, errdefs.ErrGuest)
	}
}

func isTrap(err error) bool {
	var ee *sys.ExitError
	return !errors.As(err, &ee) && strings.Contains(err.Error(), "wasm error: unreachable")
}

func exitCode(code uint32) func(error) bool {
	return func(err error) bool {
		var ee *sys.ExitError
		return errors.As(err, &ee) && ee.ExitCode() == code
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// BenchmarkInvokeHello is the ABI's per-request cost on a warm instance:
// encode, thaw_alloc, copy in, thaw_handle (decode, net/http handler,
// encode), copy out, decode; with and without wazero's termination checks.
func BenchmarkInvokeHello(b *testing.B) {
	for _, o := range []options{{}, {fast: true}} {
		b.Run(fmt.Sprintf("fast=%v", o.fast), func(b *testing.B) {
			g := startWith(b, "examples/hello", o)
			req := &abi.Request{Method: "GET", Path: "/", RawQuery: "name=bench", Header: http.Header{"Accept": {"*/*"}}}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := g.invoke(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
